// A TCP proxy on loopback that a test can cut: every open connection dropped at once, and new
// ones refused while blocked. It stands between the server and etcd to make network outages.
import { createServer, connect, type Server, type Socket } from 'node:net';

export interface TcpProxy {
  port: number;
  /** Drops every connection now (both sides see a reset). */
  cut(): void;
  /** Refuses new connections (and cuts the open ones) until unblock(). */
  block(): void;
  unblock(): void;
  close(): Promise<void>;
  connections: number;
}

export async function startProxy(targetPort: number): Promise<TcpProxy> {
  const open = new Set<Socket>();
  let blocked = false;
  const server: Server = createServer((down) => {
    if (blocked) { down.destroy(); return; }
    const up = connect(targetPort, '127.0.0.1');
    open.add(down);
    open.add(up);
    const drop = () => { down.destroy(); up.destroy(); open.delete(down); open.delete(up); };
    down.on('error', drop).on('close', drop);
    up.on('error', drop).on('close', drop);
    down.pipe(up);
    up.pipe(down);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const proxy: TcpProxy = {
    port: (server.address() as { port: number }).port,
    cut() { for (const s of [...open]) s.resetAndDestroy(); open.clear(); },
    block() { blocked = true; proxy.cut(); },
    unblock() { blocked = false; },
    close() { proxy.block(); return new Promise((r) => server.close(() => r())); },
    get connections() { return open.size / 2; },
  };
  return proxy;
}
