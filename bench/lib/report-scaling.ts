// Delivered rate against the number of clients, across steady runs at one rate: how each system
// scales with N on this machine (the ideal is N × R). Reads the results.json files steady writes.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RunResult } from '../scenarios/steady.js';
import { COLORS, median } from './report.js';

interface Point { n: number; perSec: number }

/** Median delivered/s per system and N, over every run of the given results folders at rate `rate`. */
export function scalingPoints(dirs: string[], rate: number): Map<string, Point[]> {
  const runs = dirs.flatMap((d) => (JSON.parse(readFileSync(join(d, 'results.json'), 'utf8')) as { runs: RunResult[] }).runs).filter((r) => r.rate === rate);
  const by = new Map<string, Map<number, number[]>>();
  for (const r of runs) {
    const m = by.get(r.system) ?? new Map<number, number[]>();
    m.set(r.clients, [...(m.get(r.clients) ?? []), r.deliveredPerSec]);
    by.set(r.system, m);
  }
  return new Map([...by].map(([s, m]) => [s, [...m].map(([n, xs]) => ({ n, perSec: median(xs) })).sort((a, b) => a.n - b.n)]));
}

export function scalingSvg(points: Map<string, Point[]>, rate: number): string {
  const W = 720, H = 400, L = 70, B = 40, T = 20, R = 160;
  const all = [...points.values()].flat();
  const nMax = Math.max(...all.map((p) => p.n)) * 1.05;
  const yMax = Math.max(nMax * rate, ...all.map((p) => p.perSec)) * 1.05;
  const x = (n: number) => L + (n / nMax) * (W - L - R);
  const y = (v: number) => T + (1 - v / yMax) * (H - T - B);
  const k = (v: number) => (v >= 1e6 ? `${v / 1e6}M` : `${v / 1e3}k`);
  const yStep = [1e4, 2e4, 5e4, 1e5, 2e5, 5e5, 1e6].find((s) => yMax / s <= 6)!;
  const grid: string[] = [];
  for (let v = 0; v <= yMax; v += yStep) grid.push(`<line x1="${L}" x2="${W - R}" y1="${y(v)}" y2="${y(v)}" stroke="#eee"/><text x="${L - 6}" y="${y(v) + 4}" font-size="11" text-anchor="end">${k(v)}/s</text>`);
  for (const n of [...new Set(all.map((p) => p.n))]) grid.push(`<line x1="${x(n)}" x2="${x(n)}" y1="${T}" y2="${H - B}" stroke="#ddd"/><text x="${x(n)}" y="${H - B + 16}" font-size="11" text-anchor="middle">${n}</text>`);
  const lines = [...points].map(([name, pts], i) => {
    const c = COLORS[i % COLORS.length];
    return `<path fill="none" stroke="${c}" stroke-width="2" d="${pts.map((p, j) => `${j ? 'L' : 'M'}${x(p.n).toFixed(1)},${y(p.perSec).toFixed(1)}`).join('')}"/>` +
      pts.map((p) => `<circle cx="${x(p.n).toFixed(1)}" cy="${y(p.perSec).toFixed(1)}" r="3" fill="${c}"/>`).join('') +
      `<text x="${W - R + 10}" y="${T + 16 + i * 18}" font-size="12" fill="${c}">${name}</text>`;
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>${grid.join('')}
<path d="M${x(0)},${y(0)}L${x(nMax)},${y(nMax * rate)}" stroke="#999" stroke-dasharray="4 4"/><text x="${W - R + 10}" y="${T + 16 + points.size * 18}" font-size="12" fill="#999">ideal (N × ${rate}/s)</text>
<line x1="${L}" x2="${W - R}" y1="${H - B}" y2="${H - B}" stroke="black"/><line x1="${L}" x2="${L}" y1="${T}" y2="${H - B}" stroke="black"/>
<text x="${(L + W - R) / 2}" y="${H - 6}" font-size="12" text-anchor="middle">clients (N), R = ${rate} updates/s</text>
${lines.join('\n')}
</svg>
`;
}

export function writeScaling(out: string, dirs: string[], rate: number): void {
  writeFileSync(out, scalingSvg(scalingPoints(dirs, rate), rate));
}
