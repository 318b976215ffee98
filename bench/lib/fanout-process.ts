// A calico-fanout the harness started, seen from outside: its arguments as /proc shows them (another
// replica or a tier below reuses them on its own ports), its readiness and its /metrics.
import { readFileSync } from 'node:fs';

/** A running process's arguments, its executable first. */
export const argvOf = (pid: number): string[] => readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').slice(0, -1);

/** The port a calico-fanout serves /metrics on (and /readyz: the harness gives both the same). */
export const metricsPortOf = (pid: number): number => { const argv = argvOf(pid); return Number(argv[argv.indexOf('--metrics-port') + 1]); };

/** calico-fanout's arguments with its client and health/metrics ports replaced. */
export function withPorts(argv: string[], ports: { server: number; health: number }): string[] {
  const out = [...argv];
  const set = (flag: string, v: number) => { const i = out.indexOf(flag); if (i < 0) throw new Error(`calico-fanout started without ${flag}`); out[i + 1] = String(v); };
  set('--server-port', ports.server);
  set('--health-port', ports.health);
  set('--metrics-port', ports.health);
  return out;
}

export const isReady = (health: number): Promise<boolean> => fetch(`http://127.0.0.1:${health}/readyz`).then((r) => r.ok).catch(() => false);

/** Metrics of calico-fanout's /metrics, each summed over its labels, from one scrape (a scrape resets its event-loop gauges). */
export async function metricSums(port: number, names: readonly string[]): Promise<Record<string, number>> {
  const text = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(5000) }).then((r) => r.text());
  return Object.fromEntries(names.map((name) => {
    let sum = 0;
    for (const m of text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))) sum += Number(m[1]);
    return [name, sum];
  }));
}

/** One metric of calico-fanout's /metrics, summed over its labels. */
export async function metricSum(port: number, name: string): Promise<number> {
  return (await metricSums(port, [name]))[name]!;
}
