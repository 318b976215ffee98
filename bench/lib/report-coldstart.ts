// Results of the coldstart scenario: results.json and a Markdown report, each checkout's time to
// ready against the range read of the same run (medians over runs, the range in brackets).
import type { ColdStartResult } from '../scenarios/coldstart.js';
import { median, writeReportFiles } from './report.js';

const spread = (xs: number[], fmt: (n: number) => string) => (xs.length > 1 ? `${fmt(median(xs))} (${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))})` : fmt(xs[0]!));
const s2 = (n: number) => n.toFixed(2);

export function coldStartMarkdown(title: string, command: string, r: ColdStartResult, machine: string): string {
  const checkouts = r.runs[0]?.serve.map((s) => s.checkout) ?? [];
  const lines = [
    `# ${title}`, '', `Command: \`${command}\``, '', machine, '',
    `| checkout | runs | ready s | range read s | ready ÷ range read (per run) | calico-fanout CPU s by then | peak RSS MiB |`,
    '|---|---|---|---|---|---|---|',
  ];
  for (const c of checkouts) {
    const runs = r.runs.map((x) => ({ range: x.rangeReadS, s: x.serve.find((y) => y.checkout === c)! }));
    lines.push(`| ${c} | ${runs.length} | ${spread(runs.map((x) => x.s.readyS), s2)} | ${spread(runs.map((x) => x.range), s2)} | ${spread(runs.map((x) => x.s.readyS / x.range), s2)} | ${spread(runs.map((x) => x.s.cpuS), s2)} | ${spread(runs.map((x) => x.s.peakRssMiB), (n) => n.toFixed(0))} |`);
  }
  lines.push('', `${r.keys} keys. Ready: \`serve\` spawned → \`/readyz\` 200 (node start, listing etcd, the store built, in sync).`,
    'Range read: one unpaged range of the prefix with the etcd3 client, in the harness, before the servers of the same run.',
    `calico-fanout and the reader on cores ${r.serverCpus || '(unpinned)'}, etcd on ${r.etcdCpus || '(unpinned)'}.`);
  return lines.join('\n') + '\n';
}

export function writeColdStartResults(dir: string, title: string, command: string, r: ColdStartResult, machine: string): string {
  return writeReportFiles(dir, { scenario: title, command, machine, ...r }, { 'report.md': coldStartMarkdown(title, command, r, machine) });
}
