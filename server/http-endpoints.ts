// Plain HTTP beside the client port: liveness and readiness for the kubelet, metrics for
// Prometheus. When both are configured on the same port they share one listener.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Metrics } from '../src/metrics.js';
import { isSyncerType, type SyncerType } from '../src/model/views.js';
import type { ReloadingTls } from './tls.js';

export type Handler = (req: IncomingMessage, res: ServerResponse) => boolean | Promise<boolean>;

export interface Readiness {
  /** Why the process is not live (a stuck event loop or a stopped pipeline), or undefined. */
  notLive(): string | undefined;
  ready(): boolean;
  detail(): Record<string, unknown>;
  /** What /readyz?view=<syncer> adds about one view. */
  view(syncer: SyncerType): Record<string, unknown>;
}

export function healthHandler(readiness: Readiness): Handler {
  return (req, res) => {
    const path = req.url?.split('?')[0];
    if (path === '/livez' || path === '/liveness') {
      const why = readiness.notLive();
      res.writeHead(why ? 503 : 200, { 'content-type': 'text/plain' }).end(`${why ?? 'ok'}\n`);
      return true;
    }
    if (path === '/readyz' || path === '/readiness') {
      // One store serves every view, so a view is ready when the store is; the view adds its size.
      const view = new URL(req.url ?? '/', 'http://x').searchParams.get('view');
      if (view !== null && !isSyncerType(view)) {
        res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: `unknown view ${JSON.stringify(view)}` }) + '\n');
        return true;
      }
      const ok = readiness.ready();
      const body = { ready: ok, ...readiness.detail(), ...(view ? { view, ...readiness.view(view) } : {}) };
      res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify(body) + '\n');
      return true;
    }
    return false;
  };
}

export function metricsHandler(metrics: Metrics): Handler {
  return async (req, res) => {
    if (req.url?.split('?')[0] !== '/metrics') return false;
    const body = await metrics.registry.metrics();
    res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(body);
    return true;
  };
}

/** An HTTP listener serving the given handlers, 404 for anything else. */
export async function listenHttp(host: string, port: number, handlers: Handler[], tls?: ReloadingTls): Promise<Server> {
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    try {
      for (const h of handlers) if (await h(req, res)) return;
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    } catch (err) {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(`error: ${(err as Error).message}\n`);
    }
  };
  let server: Server;
  if (tls) {
    const https = createHttpsServer(tls.serverOptions(), handle);
    tls.attach(https);
    server = https;
  } else {
    server = createServer(handle);
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => { server.off('error', reject); resolve(); });
  });
  return server;
}

export const portOf = (s: Server): number => (s.address() as AddressInfo).port;
