// Test support: reading prom-client metrics of one server, and plain HTTP helpers for its
// health and metrics listeners.
import { get } from 'node:http';
import { createServer } from 'node:net';
import type { Metrics } from '../../src/metrics.js';

interface Readable {
  get(): Promise<{ values: { value: number; labels: Record<string, unknown>; metricName?: string }[] }>;
}

const labelsMatch = (have: Record<string, unknown>, want: Record<string, string>) =>
  Object.entries(want).every(([k, v]) => String(have[k]) === v);

/** Sum of a counter's or gauge's values whose labels include `labels` (0 when none). */
export async function metricValue(metric: Readable, labels: Record<string, string> = {}): Promise<number> {
  const m = await metric.get();
  // Counters and gauges report no metricName; histograms do (…_bucket, …_sum, …_count).
  return m.values.filter((v) => v.metricName === undefined && labelsMatch(v.labels, labels)).reduce((s, v) => s + v.value, 0);
}

/** metricValue of a metric found by name in a server's registry. */
export async function metricNamed(metrics: Metrics, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = metrics.registry.getSingleMetric(name);
  if (!m) throw new Error(`no metric ${name}`);
  return metricValue(m as unknown as Readable, labels);
}

/** A histogram's observation count and sum (over all label sets matching `labels`). */
export async function histogram(metric: Readable, labels: Record<string, string> = {}): Promise<{ count: number; sum: number }> {
  const m = await metric.get();
  const pick = (suffix: string) => m.values
    .filter((v) => v.metricName?.endsWith(suffix) && labelsMatch(v.labels, labels))
    .reduce((s, v) => s + v.value, 0);
  return { count: pick('_count'), sum: pick('_sum') };
}

export interface HttpResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** GET http://127.0.0.1:<port><path>, without keep-alive (so closing the server is not held up). */
export function httpGet(port: number, path: string): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = get({ host: '127.0.0.1', port, path, agent: false, headers: { connection: 'close' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(5000, () => req.destroy(new Error(`GET ${path} timed out`)));
  });
}

/** A loopback port nothing listens on right now (bound, then released). */
export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve, reject) => { s.once('error', reject); s.listen(0, '127.0.0.1', () => resolve()); });
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

/**
 * A free port in 20000-32767, below Linux's ephemeral range (32768-60999), for a process that
 * restarts on the same port: an outgoing connection may take a freed ephemeral port meanwhile.
 */
export async function stablePort(): Promise<number> {
  for (;;) {
    const port = 20000 + Math.floor(Math.random() * 12768);
    const s = createServer();
    const ok = await new Promise<boolean>((resolve) => { s.once('error', () => resolve(false)); s.listen(port, '127.0.0.1', () => resolve(true)); });
    if (ok) { await new Promise((r) => s.close(r)); return port; }
  }
}
