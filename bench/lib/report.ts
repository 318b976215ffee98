// Results as JSON, a Markdown report with side-by-side tables and ratios, and an SVG chart of the
// latency distribution per system (a CDF on a log time axis), written to a results folder.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as hdr from 'hdr-histogram-js';
import type { RunResult } from '../scenarios/steady.js';
import { rssLine } from './rss.js';

export const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b'];

export const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[Math.floor((s.length - 1) / 2)]! : NaN; };
export const fmtMs = (ms: number) => (ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : ms >= 10 ? ms.toFixed(0) : ms.toFixed(1));
const k = (n: number) => (n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : n >= 1e3 ? `${Math.round(n / 1e3)}k` : String(n));

/** Runs of the same system and load, summarised by their medians (with the range). */
export function summarise(runs: RunResult[]): Map<string, RunResult[]> {
  const groups = new Map<string, RunResult[]>();
  for (const r of runs) {
    const key = `${r.system} N=${r.clients} R=${r.rate}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  return groups;
}

function row(runs: RunResult[], baseline?: RunResult[]): string {
  const r = runs[0]!;
  const m = (f: (x: RunResult) => number) => median(runs.map(f));
  const range = (f: (x: RunResult) => number, fmt: (n: number) => string) => {
    const xs = runs.map(f);
    return runs.length > 1 ? `${fmt(median(xs))} (${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))})` : fmt(xs[0]!);
  };
  // In lean mode the probes' p99 is the agent's view; the lean readers' is the generator's.
  const probeP99 = (xs: RunResult[]) => median(xs.map((x) => x.probeLatencyMs?.p99 ?? NaN));
  const p99 = r.probeLatencyMs ? probeP99(runs) : m((x) => x.latencyMs.p99);
  const baseP99 = baseline?.length ? (r.probeLatencyMs && baseline[0]!.probeLatencyMs ? probeP99(baseline) : median(baseline.map((x) => x.latencyMs.p99))) : NaN;
  const cpu = m((x) => x.servingCpuUsPerDelivered);
  const ratio = (a: number, b?: number) => (b && Number.isFinite(b) ? `${(a / b).toFixed(2)}×` : '—');
  const superseded = m((x) => (x.allComplete && x.expectedDeliveries ? (100 * (x.expectedDeliveries - x.delivered)) / x.expectedDeliveries : NaN));
  const probes = r.probeLatencyMs ? `${r.probes}: ${fmtMs(median(runs.map((x) => x.probeLatencyMs!.p50)))} / ${range((x) => x.probeLatencyMs!.p99, fmtMs)}` : '—';
  const base = baseline?.length ? baseline : undefined;
  const serving = Object.keys(r.cpuS.serving).map((n) => `${n} ${m((x) => x.cpuS.serving[n] ?? NaN).toFixed(2)}`).join(' + ');
  const rss = Object.keys(r.peakRssMiB).map((n) => `${n} ${m((x) => x.peakRssMiB[n] ?? NaN)}`).join(', ');
  return `| ${r.system} | ${r.clients} | ${r.rate} | ${runs.length} | ${k(m((x) => x.deliveredPerSec))} (${k(r.written * r.clients / r.durationS)}) | ${runs.every((x) => x.allComplete) ? 'yes' : `no: ${runs.map((x) => x.completeClients).join(', ')} of ${r.clients} complete when the drain timed out`} | ${fmtMs(m((x) => x.latencyMs.p50))} | ${range((x) => x.latencyMs.p99, fmtMs)} | ${fmtMs(m((x) => x.latencyMs.max))} | ${m((x) => x.drainS).toFixed(2)} | ${serving} | ${m((x) => x.cpuS.clients).toFixed(2)} | ${range((x) => x.servingCpuUsPerDelivered, (n) => n.toFixed(2))} | ${rss} | ${r.upstreamWatches ?? '—'} | ${m((x) => x.reconnects)} | ${probes} | ${Number.isFinite(superseded) ? `${superseded.toFixed(1)}%` : '—'} | ${base ? ratio(p99, baseP99) : '—'} | ${base ? ratio(cpu, median(base.map((x) => x.servingCpuUsPerDelivered))) : '—'} |`;
}

export function markdown(title: string, command: string, runs: RunResult[], machine: string): string {
  const groups = summarise(runs);
  const baselineFor = (r: RunResult) => groups.get(`raw-batch N=${r.clients} R=${r.rate}`);
  const lines = [
    `# ${title}`, '', `Command: \`${command}\``, '', machine, '',
    '| system | N | R/s | runs | delivered/s (ideal) | every client complete? | p50 ms | p99 ms | max ms | drain s | serving CPU s | client CPU s | serving CPU µs / delivered | peak RSS MiB (serving) | upstream watches | reconnects | probes: p50 / p99 ms | superseded | p99 ÷ raw-batch | CPU/delivered ÷ raw-batch |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
    ...[...groups.values()].map((g) => row(g, baselineFor(g[0]!))),
    '', 'Medians over runs (range in brackets). Latency is write → client callback on the shared monotonic clock; serving side = calico-fanout + etcd, etcd (+ grpc-proxy), or the raw server. Complete: the client ended with the last written value of every key; a calico-fanout client that falls a window behind gets each key\'s latest value once rather than every value in between, so it may count fewer deliveries (superseded: the share of updates not delivered to clients that ended complete).',
    'Client mode lean: lean protocol readers plus a few probes (full client libraries, their count before the colon); p50/p99 are everyone\'s, the probes\' column theirs alone, and "p99 ÷ raw-batch" compares the probes\' p99 when both systems ran with probes.',
    '', '![latency CDF](latency.svg)',
    ...(runs.some((r) => r.rssSeries) ? ['', 'Serving side RSS (VmRSS, all its processes) during the measured pass and drain:', '', '![serving RSS over time](rss.svg)'] : []),
  ];
  return lines.join('\n') + '\n';
}

/** Latency CDF per system: x = latency (ms, log), y = share of deliveries at or below it. */
export function latencySvg(runs: RunResult[]): string {
  return cdfSvg([...summarise(runs).entries()].map(([name, g]) => ({ name, histogram: g[0]!.histogram }))); // first run of each group
}

/** Latency CDF of named histograms (HDR, compressed base64, in µs), one curve each. */
export function cdfSvg(curves: { name: string; histogram: string }[]): string {
  const W = 720, H = 400, L = 60, B = 40, T = 20, R = 160;
  const series = curves.map(({ name, histogram }) => {
    const h = hdr.decodeFromCompressedBase64(histogram);
    const pts: [number, number][] = [];
    for (let p = 0; p <= 100; p += 0.5) pts.push([Math.max(0.01, h.getValueAtPercentile(Math.min(p, 99.999)) / 1000), p / 100]);
    return { name, pts };
  });
  const xs = series.flatMap((s) => s.pts.map((p) => p[0]));
  const [lo, hi] = [Math.log10(Math.max(0.01, Math.min(...xs))), Math.log10(Math.max(...xs) * 1.1)];
  const x = (ms: number) => L + ((Math.log10(ms) - lo) / (hi - lo || 1)) * (W - L - R);
  const y = (f: number) => T + (1 - f) * (H - T - B);
  const ticks = [];
  for (let e = Math.floor(lo); e <= Math.ceil(hi); e++) {
    const v = 10 ** e;
    if (Math.log10(v) < lo || Math.log10(v) > hi) continue;
    ticks.push(`<line x1="${x(v)}" x2="${x(v)}" y1="${T}" y2="${H - B}" stroke="#ddd"/><text x="${x(v)}" y="${H - B + 16}" font-size="11" text-anchor="middle">${v >= 1000 ? `${v / 1000} s` : `${v} ms`}</text>`);
  }
  const paths = series.map((s, i) => `<path fill="none" stroke="${COLORS[i % COLORS.length]}" stroke-width="2" d="${s.pts.map((p, j) => `${j ? 'L' : 'M'}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join('')}"/>` +
    `<text x="${W - R + 10}" y="${T + 16 + i * 18}" font-size="12" fill="${COLORS[i % COLORS.length]}">${s.name}</text>`);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>${ticks.join('')}
${[0, 0.5, 0.9, 0.99, 1].map((f) => `<line x1="${L}" x2="${W - R}" y1="${y(f)}" y2="${y(f)}" stroke="#eee"/><text x="${L - 6}" y="${y(f) + 4}" font-size="11" text-anchor="end">${f * 100}%</text>`).join('')}
<line x1="${L}" x2="${W - R}" y1="${H - B}" y2="${H - B}" stroke="black"/><line x1="${L}" x2="${L}" y1="${T}" y2="${H - B}" stroke="black"/>
<text x="${(L + W - R) / 2}" y="${H - 6}" font-size="12" text-anchor="middle">latency, write → client callback</text>
${paths.join('\n')}
</svg>
`;
}

/** RSS over time, one line per named series: x = seconds, y = MiB around the data (a few MiB must show). */
export function rssSvg(lines: { name: string; t: number[]; mib: number[] }[], caption = 'seconds since the measured pass began'): string {
  const W = 720, H = 400, L = 60, B = 40, T = 20, R = 200;
  const finite = (v: number) => Number.isFinite(v);
  const tMax = Math.max(1, ...lines.flatMap((l) => l.t));
  const vs = lines.flatMap((l) => l.mib.filter(finite));
  const pad = Math.max(1, (Math.max(...vs, 1) - Math.min(...vs, 0)) * 0.1);
  const [yMin, yMax] = vs.length ? [Math.max(0, Math.min(...vs) - pad), Math.max(...vs) + pad] : [0, 1];
  const x = (t: number) => L + (t / tMax) * (W - L - R);
  const y = (v: number) => T + (1 - (v - yMin) / (yMax - yMin)) * (H - T - B);
  const step = (span: number) => { const e = 10 ** Math.floor(Math.log10(span / 4)); return [1, 2, 5, 10].map((m) => m * e).find((s) => span / s <= 6)!; };
  const grid = (lo: number, hi: number, f: (v: number) => string) => {
    const st = step(hi - lo);
    const out = [];
    for (let v = Math.ceil(lo / st) * st; v <= hi; v += st) out.push(f(Math.round(v * 1000) / 1000));
    return out.join('');
  };
  const paths = lines.map((l, i) => {
    const c = COLORS[i % COLORS.length];
    const d = l.t.map((t, j) => [t, l.mib[j]!] as const).filter(([, v]) => finite(v)).map(([t, v], j) => `${j ? 'L' : 'M'}${x(t).toFixed(1)},${y(v).toFixed(1)}`).join('');
    return `<path fill="none" stroke="${c}" stroke-width="2" d="${d || `M${L},${H - B}`}"/><text x="${W - R + 10}" y="${T + 16 + i * 18}" font-size="12" fill="${c}">${l.name}</text>`;
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
${grid(0, tMax, (t) => `<line x1="${x(t).toFixed(1)}" x2="${x(t).toFixed(1)}" y1="${T}" y2="${H - B}" stroke="#ddd"/><text x="${x(t).toFixed(1)}" y="${H - B + 16}" font-size="11" text-anchor="middle">${t} s</text>`)}
${grid(yMin, yMax, (v) => `<line x1="${L}" x2="${W - R}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#eee"/><text x="${L - 6}" y="${(y(v) + 4).toFixed(1)}" font-size="11" text-anchor="end">${v} MiB</text>`)}
<line x1="${L}" x2="${W - R}" y1="${H - B}" y2="${H - B}" stroke="black"/><line x1="${L}" x2="${L}" y1="${T}" y2="${H - B}" stroke="black"/>
<text x="${(L + W - R) / 2}" y="${H - 6}" font-size="12" text-anchor="middle">${caption}</text>
${paths.join('\n')}
</svg>
`;
}

/** steady's RSS lines: the whole serving side of each run (numbered when a system ran more than once). */
export function steadyRssLines(runs: RunResult[]): { name: string; t: number[]; mib: number[] }[] {
  const seen = new Map<string, number>();
  return runs.filter((r) => r.rssSeries).map((r) => {
    const key = `${r.system} N=${r.clients} R=${r.rate}`;
    const n = (seen.get(key) ?? 0) + 1;
    seen.set(key, n);
    const repeated = runs.filter((x) => `${x.system} N=${x.clients} R=${x.rate}` === key).length > 1;
    return { name: repeated ? `${key} #${n}` : key, t: r.rssSeries!.t, mib: rssLine(r.rssSeries!) };
  });
}

/** A results folder: results.json holding `json`, plus the given files (undefined: not written). */
export function writeReportFiles(dir: string, json: object, files: Record<string, string | undefined>): string {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'results.json'), JSON.stringify(json, null, 2));
  for (const [name, text] of Object.entries(files)) if (text !== undefined) writeFileSync(join(dir, name), text);
  return dir;
}

export function writeResults(dir: string, name: string, command: string, runs: RunResult[], machine: string): string {
  return writeReportFiles(dir, { scenario: name, command, machine, runs }, {
    'latency.svg': latencySvg(runs),
    'rss.svg': runs.some((r) => r.rssSeries) ? rssSvg(steadyRssLines(runs)) : undefined,
    'report.md': markdown(name, command, runs, machine),
  });
}
