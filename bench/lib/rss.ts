// Resident memory of the serving processes over a run, sampled from /proc (VmRSS). Peak RSS
// (VmHWM) says how high memory went, not when: a slow client's buffer grows while it stalls and
// should fall once it reads again, which only a series shows.
import { rssMiB } from './procs.js';

export interface RssSeries {
  intervalMs: number;
  /** Seconds since sampling started. */
  t: number[];
  /** MiB per process name, aligned with t (NaN once a process is gone). */
  mib: Record<string, number[]>;
}

export function sampleRss(procs: () => { name: string; pid: number }[], intervalMs = 250): { stop(): RssSeries } {
  const series: RssSeries = { intervalMs, t: [], mib: {} };
  const t0 = Date.now();
  const sample = () => {
    series.t.push(Math.round(Date.now() - t0) / 1000);
    for (const p of procs()) (series.mib[p.name] ??= []).push(Math.round(rssMiB(p.pid) * 10) / 10);
  };
  sample();
  const timer = setInterval(sample, intervalMs);
  return { stop() { clearInterval(timer); sample(); return series; } };
}

/** The series summed over processes (the whole serving side), or one process's. */
export function rssLine(s: RssSeries, names = Object.keys(s.mib)): number[] {
  return s.t.map((_, i) => names.reduce((sum, n) => sum + (s.mib[n]?.[i] ?? 0), 0));
}
