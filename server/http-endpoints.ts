// Plain HTTP beside the client port: liveness and readiness for the kubelet, metrics for
// Prometheus. When both are configured on the same port they share one listener.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Metrics } from '../src/metrics.js';

export type Handler = (req: IncomingMessage, res: ServerResponse) => boolean | Promise<boolean>;

export interface Readiness {
  ready(): boolean;
  detail(): Record<string, unknown>;
}

export function healthHandler(readiness: Readiness): Handler {
  return (req, res) => {
    const path = req.url?.split('?')[0];
    if (path === '/livez' || path === '/liveness') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      return true;
    }
    if (path === '/readyz' || path === '/readiness') {
      const ok = readiness.ready();
      res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify({ ready: ok, ...readiness.detail() }) + '\n');
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
export async function listenHttp(host: string, port: number, handlers: Handler[]): Promise<Server> {
  const server = createServer(async (req, res) => {
    try {
      for (const h of handlers) if (await h(req, res)) return;
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    } catch (err) {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(`error: ${(err as Error).message}\n`);
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => { server.off('error', reject); resolve(); });
  });
  return server;
}

export const portOf = (s: Server): number => (s.address() as AddressInfo).port;
