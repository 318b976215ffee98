// A TCP proxy on loopback that a test can cut: every open connection dropped at once, and new
// ones refused while blocked; or stalled: nothing passes either way until resumed, as a peer that
// hangs. It stands between the server and etcd to make network outages, and between tiers.
import { createServer, connect, type Server, type Socket } from 'node:net';

export interface TcpProxy {
  port: number;
  /** Drops every connection now (both sides see a reset). */
  cut(): void;
  /** Refuses new connections (and cuts the open ones) until unblock(). */
  block(): void;
  unblock(): void;
  /** Nothing passes, on open or new connections, until resume(): the peer hangs. */
  pause(): void;
  resume(): void;
  close(): Promise<void>;
  connections: number;
}

export async function startProxy(targetPort: number, listenPort = 0): Promise<TcpProxy> {
  const open = new Set<Socket>();
  const pairs = new Set<[Socket, Socket]>();
  let blocked = false;
  let paused = false;
  const flow = ([down, up]: [Socket, Socket]) => { down.pipe(up); up.pipe(down); };
  const stop = ([down, up]: [Socket, Socket]) => { down.unpipe(up); up.unpipe(down); down.pause(); up.pause(); };
  const server: Server = createServer((down) => {
    if (blocked) { down.destroy(); return; }
    const up = connect(targetPort, '127.0.0.1');
    const pair: [Socket, Socket] = [down, up];
    open.add(down);
    open.add(up);
    pairs.add(pair);
    const drop = () => { down.destroy(); up.destroy(); open.delete(down); open.delete(up); pairs.delete(pair); };
    down.on('error', drop).on('close', drop);
    up.on('error', drop).on('close', drop);
    if (paused) stop(pair);
    else flow(pair);
  });
  await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(listenPort, '127.0.0.1', resolve); });
  const proxy: TcpProxy = {
    port: (server.address() as { port: number }).port,
    cut() { for (const s of [...open]) s.resetAndDestroy(); open.clear(); pairs.clear(); },
    block() { blocked = true; proxy.cut(); },
    unblock() { blocked = false; },
    pause() { paused = true; for (const p of pairs) stop(p); },
    resume() { paused = false; for (const p of pairs) flow(p); },
    close() { proxy.block(); return new Promise((r) => server.close(() => r())); },
    get connections() { return open.size / 2; },
  };
  return proxy;
}
