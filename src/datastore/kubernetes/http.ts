// Requests to the Kubernetes API. @kubernetes/client-node (1.4.x) provides the configuration:
// kubeconfig or in-cluster service account, credentials and TLS, applied to plain node:http(s)
// requests. Its informer is not used: it stops for good on any error but 410, requests no
// bookmarks, has no inactivity timeout and drops unparseable lines silently; the list/watch loop
// in collection.ts does each of those right.
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { KubeConfig } from '@kubernetes/client-node';
import { credentialsFor, loadDefaultKubeconfig, loadKubeconfigFile, userForTls, type Authorization } from './credentials.js';

/** A non-2xx answer, with the Status object's reason and message when the server sent one. */
export class KubeApiError extends Error {
  /** How long the server asked to wait before retrying (429's Retry-After), if it said. */
  retryAfterMs: number | undefined;
  constructor(readonly status: number, readonly reason: string | undefined, message: string) { super(message); }
}

export interface KubeHttp {
  /** The API server's base URL. */
  readonly server: string;
  getJson(path: string, signal: AbortSignal, timeoutMs: number): Promise<any>;
  /** A streaming GET: resolves with the response once its status is 200. */
  stream(path: string, signal: AbortSignal): Promise<IncomingMessage>;
}

/**
 * Configuration as Calico components find it: an explicit kubeconfig file, else the in-cluster
 * service account when KUBERNETES_SERVICE_HOST is set, else $KUBECONFIG or ~/.kube/config.
 */
export function loadKubeConfig(kubeconfig: string): KubeConfig {
  const kc = new KubeConfig();
  if (kubeconfig) loadKubeconfigFile(kc, kubeconfig);
  else if (process.env.KUBERNETES_SERVICE_HOST) kc.loadFromCluster();
  else loadDefaultKubeconfig(kc);
  if (!kc.getCurrentCluster()) throw new KubeApiError(0, undefined, 'the kubeconfig names no current cluster');
  return kc;
}

export async function kubeHttp(kc: KubeConfig): Promise<KubeHttp> {
  const cluster = kc.getCurrentCluster()!;
  const server = cluster.server.replace(/\/+$/, '');
  const base: https.RequestOptions = { headers: { Accept: 'application/json' } };
  // The CA, skipTLSVerify and client certificate files, once; the token per request (credentials.ts).
  const tls = new KubeConfig();
  const user = userForTls(kc);
  tls.loadFromClusterAndUser(cluster, user ?? { name: 'anonymous' });
  // A plain-http server (a local apiserver, kubectl proxy) has no TLS to set up; the client
  // library refuses such a cluster unless told to skip a verification that cannot happen.
  if (new URL(server).protocol === 'https:') await tls.applyToHTTPSOptions(base);
  // Not Node's global keep-alive agent: a pooled socket keeps the abort signal of the request that
  // opened it, and a watch aborted later destroyed it with an error nobody was listening for.
  else base.agent = false;
  const creds = credentialsFor(kc);
  const once = (path: string, signal: AbortSignal, auth: Authorization): Promise<IncomingMessage> => new Promise((resolve, reject) => {
    const url = new URL(server + path);
    const headers = { ...base.headers, ...(auth.header ? { Authorization: auth.header } : {}) };
    const opts: https.RequestOptions = { ...base, headers, method: 'GET', signal, ...(auth.cert ? { cert: auth.cert, key: auth.key } : {}) };
    const req = (url.protocol === 'https:' ? https : http).request(url, opts, resolve);
    req.on('error', reject);
    req.end();
  });
  // A 401 means the token rotated under us: fetch new credentials and try once more, so the
  // caller (a list page, a watch) never sees it unless the new ones are refused too.
  const request = async (path: string, signal: AbortSignal): Promise<IncomingMessage> => {
    const auth = await creds.current();
    const res = await once(path, signal, auth);
    if (res.statusCode !== 401) return res;
    res.resume();
    creds.rejected(auth);
    return once(path, signal, await creds.current());
  };
  return {
    server,
    async getJson(path, signal, timeoutMs) {
      const res = await request(path, AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]));
      const body = await readBody(res);
      if (res.statusCode !== 200) throw withRetryAfter(statusError(res.statusCode ?? 0, body), res);
      try { return JSON.parse(body); } catch { throw new KubeApiError(res.statusCode, undefined, `${path}: the response is not JSON`); }
    },
    async stream(path, signal) {
      const res = await request(path, signal);
      if (res.statusCode !== 200) throw withRetryAfter(statusError(res.statusCode ?? 0, await readBody(res)), res);
      return res;
    },
  };
}

async function readBody(res: IncomingMessage): Promise<string> {
  res.setEncoding('utf8');
  let body = '';
  for await (const chunk of res) body += chunk;
  return body;
}

/** Retry-After in seconds (the form the apiserver sends), else the Status's details.retryAfterSeconds. */
function withRetryAfter(err: KubeApiError, res: IncomingMessage): KubeApiError {
  const secs = Number(res.headers['retry-after']);
  if (res.headers['retry-after'] !== undefined && Number.isFinite(secs) && secs >= 0) err.retryAfterMs = secs * 1000;
  return err;
}

/** The error of a failed request or an ERROR watch event, from its Status object if any. */
export function statusError(status: number, body: string | object): KubeApiError {
  let s: { reason?: string; message?: string; code?: number; details?: { retryAfterSeconds?: unknown } } = {};
  try { s = typeof body === 'string' ? JSON.parse(body) : body; } catch { /* not a Status */ }
  const code = typeof s.code === 'number' ? s.code : status;
  const err = new KubeApiError(code, s.reason, `HTTP ${code}${s.reason ? ` ${s.reason}` : ''}: ${s.message ?? (typeof body === 'string' ? body.slice(0, 200) : 'error')}`);
  const secs = s.details?.retryAfterSeconds;
  if (typeof secs === 'number' && secs > 0) err.retryAfterMs = secs * 1000;
  return err;
}
