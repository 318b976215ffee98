// Results of the burst scenario: results.json and a Markdown report with one row per checkout
// (medians over runs, the range in brackets).
import type { BurstResult } from '../scenarios/burst.js';
import { median, writeReportFiles } from './report.js';

const spread = (xs: number[], fmt: (n: number) => string) => (xs.length > 1 ? `${fmt(median(xs))} (${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))})` : fmt(xs[0]!));

export function burstMarkdown(title: string, command: string, runs: BurstResult[], machine: string): string {
  const checkouts = [...new Set(runs.map((r) => r.checkout))];
  const lines = [
    `# ${title}`, '', `Command: \`${command}\``, '', machine, '',
    '| checkout | runs | every agent complete | batches published | calico-fanout CPU s | µs per transaction | etcd CPU s | agents CPU s | latency p50 ms | p99 ms | max ms | writing s | drain s |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const c of checkouts) {
    const g = runs.filter((r) => r.checkout === c);
    const m = (f: (r: BurstResult) => number, fmt = (n: number) => n.toFixed(2)) => spread(g.map(f), fmt);
    lines.push(`| ${c} | ${g.length} | ${g.every((r) => r.complete === r.clients) ? 'yes' : g.map((r) => `${r.complete}/${r.clients}`).join(', ')} | ${m((r) => r.batches, (n) => n.toFixed(0))} | ${m((r) => r.cpuS['calico-fanout'])} | ${m((r) => r.fanoutCpuUsPerTxn, (n) => n.toFixed(0))} | ${m((r) => r.cpuS.etcd)} | ${m((r) => r.cpuS.clients)} | ${m((r) => r.latencyMs.p50, (n) => n.toFixed(1))} | ${m((r) => r.latencyMs.p99, (n) => n.toFixed(1))} | ${m((r) => r.latencyMs.max, (n) => n.toFixed(1))} | ${m((r) => r.writeS)} | ${m((r) => r.drainS)} |`);
  }
  const r = runs[0]!;
  lines.push('', `${r.txns} single-key transactions (${r.inFlight} in flight) to ${r.clients} light agents of the felix view.`,
    'Batches: calico-fanout\'s delta frames built over the burst (one view: one per published batch). CPU from the first',
    'write until every agent holds every key\'s last value. Latency: write sent → agent receipt, every update of every agent.');
  return lines.join('\n') + '\n';
}

export function writeBurstResults(dir: string, title: string, command: string, runs: BurstResult[], machine: string): string {
  return writeReportFiles(dir, { scenario: title, command, machine, runs }, { 'report.md': burstMarkdown(title, command, runs, machine) });
}
