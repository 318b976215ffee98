// The slow scenario's results folder: JSON, a Markdown table of baseline vs stalled per system
// against the issue's targets, the latency CDFs (others and stalled apart) and RSS over time.
import type { SlowResult } from '../scenarios/slow.js';
import { cdfSvg, fmtMs, rssSvg, writeReportFiles } from './report.js';

const RSS_TARGET_MIB = 1;
const P99_TARGET_PCT = 10;
const mib = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : '—');
const signed = (n: number, unit: string) => (Number.isFinite(n) ? `${n >= 0 ? '+' : ''}${n.toFixed(1)}${unit}` : '—');

function row(r: SlowResult): string {
  const n = r.stalledClients.length;
  const meets = (ok: boolean) => (ok ? 'yes' : '**no**');
  return `| ${r.system} | ${r.servingProcess} | ${r.baseline.clients} | ${n} | ${mib(r.peakRssMiB.baseline)} → ${mib(r.peakRssMiB.stalled)} (${signed(r.peakRssMiB.delta, ' MiB')}) | ${mib(r.stallWindowRssMiB.baseline)} → ${mib(r.stallWindowRssMiB.stalled)} (${signed(r.stallWindowRssMiB.delta, ' MiB')}) | ${meets(r.stallWindowRssMiB.delta <= RSS_TARGET_MIB * n)} | ${fmtMs(r.othersP99Ms.baseline)} → ${fmtMs(r.othersP99Ms.stalled)} (${signed(r.othersP99Ms.changePct, '%')}) | ${meets(Math.abs(r.othersP99Ms.changePct) <= P99_TARGET_PCT)} | ${r.othersComplete.baseline}/${r.baseline.clients} → ${r.othersComplete.stalled}/${r.othersComplete.of} | ${r.stalledClients.map((c) => c.outcome).join('; ')} | ${r.stalledRun.stalled ? fmtMs(r.stalledRun.stalled.latencyMs.p99) : '—'} |`;
}

export function slowMarkdown(title: string, command: string, results: SlowResult[], machine: string): string {
  const first = results[0]?.stalledRun;
  const settings = results.find((r) => r.system === 'fanout')?.settings;
  return [
    `# ${title}`, '', `Command: \`${command}\``, '', machine, '',
    first?.stalled ? `Stalled clients stop reading at ${first.stalled.atS} s of the ${first.durationS} s measured pass for ${first.stalled.forS} s.` : '',
    settings ? `calico-fanout settings: stall timeout ${settings.stallTimeoutS ?? 'default (120)'} s, high-water mark ${settings.highWaterMarkBytes ?? 'default (1 MiB)'} bytes.` : '',
    '', `Targets: one stalled client adds ≤ ${RSS_TARGET_MIB} MiB to the serving process; the other clients' p99 moves by ≤ ${P99_TARGET_PCT}%.`, '',
    '| system | serving process | N | stalled | peak RSS MiB (VmHWM), baseline → stalled | RSS growth MiB over the stall window (max − at its start), baseline → stalled | RSS target met? | p99 of the others | p99 target met? | others complete | stalled clients | stalled clients\' p99 |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|',
    ...results.map(row),
    '', 'Each system runs twice back to back, same load: baseline without, then with the stalled clients. RSS is VmRSS sampled every 250 ms; the stall window extends 0.5 s past the resume.',
    '', '![latency CDF](latency.svg)', '', '![serving process RSS over time](rss.svg)',
  ].join('\n') + '\n';
}

export function writeSlowResults(dir: string, name: string, command: string, results: SlowResult[], machine: string): string {
  return writeReportFiles(dir, { scenario: name, command, machine, results }, {
    'latency.svg': cdfSvg(results.flatMap((r) => [
      { name: `${r.system} baseline`, histogram: r.baseline.histogram },
      { name: `${r.system} others`, histogram: r.stalledRun.histogram },
      ...(r.stalledRun.stalled ? [{ name: `${r.system} stalled`, histogram: r.stalledRun.stalled.histogram }] : []),
    ])),
    'rss.svg': rssSvg(results.flatMap((r) => [r.baseline, r.stalledRun].filter((x) => x.rssSeries).map((x) => ({
      name: `${r.system} ${x.stalled ? `${x.stalled.clients.length} stalled` : 'baseline'}`, t: x.rssSeries!.t, mib: x.rssSeries!.mib[r.servingProcess] ?? [],
    })))),
    'report.md': slowMarkdown(name, command, results, machine),
  });
}
