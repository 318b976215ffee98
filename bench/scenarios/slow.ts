// slow: steady's load, but some clients stop reading their socket for a while in the middle of
// the measured pass, then read again. Each system runs twice back to back, without and with the
// stalled clients, so the cost of a stalled client shows as a difference: serving memory, the
// other clients' p99, and what became of the stalled ones (caught up, or closed and resynced).
// calico-fanout bounds a slow client by its high-water mark and closes it after its stall
// timeout; the raw server buffers for it without bound.
import type { StalledClient } from '../agent-worker.js';
import { runSteady, type RunResult, type SteadyOptions } from './steady.js';

export const SLOW_SYSTEMS = ['fanout', 'raw-batch', 'raw-frame'] as const;
export type SlowSystem = (typeof SLOW_SYSTEMS)[number];

export interface SlowOptions extends Omit<SteadyOptions, 'stalled' | 'stallS' | 'fanoutEnv'> {
  stalled: number;
  stallS: number;
  /** calico-fanout's stall timeout (TYPHA_SERVERWRITETIMEOUTSECS); undefined: its default. */
  stallTimeoutS?: number;
  /** calico-fanout's per-client high-water mark (TYPHA_SERVERHIGHWATERMARKBYTES); undefined: its default. */
  highWaterMarkBytes?: number;
}

export interface SlowResult {
  system: SlowSystem;
  /** The process holding the client connections, whose memory a stalled client costs. */
  servingProcess: string;
  baseline: RunResult;
  stalledRun: RunResult;
  /** VmHWM of servingProcess; delta = with stalled − baseline (target ≤ 1 MiB for one of 500). */
  peakRssMiB: { baseline: number; stalled: number; delta: number };
  /**
   * Growth of servingProcess's VmRSS over the stall window (highest sample in it − the sample at
   * its start), same window in the baseline. Within one process, so two processes' different
   * starting sizes (several MiB apart, run to run) do not swamp a 1 MiB target.
   */
  stallWindowRssMiB: { baseline: number; stalled: number; delta: number };
  /** p99 of the clients that never stalled; change in % (target ≤ 10%). */
  othersP99Ms: { baseline: number; stalled: number; changePct: number };
  othersComplete: { baseline: number; stalled: number; of: number };
  stalledClients: (StalledClient & { outcome: string })[];
  settings: { stallTimeoutS?: number; highWaterMarkBytes?: number };
}

export async function runSlow(system: SlowSystem, o: SlowOptions): Promise<SlowResult> {
  const fanoutEnv: Record<string, string> = {};
  if (o.stallTimeoutS !== undefined) fanoutEnv.TYPHA_SERVERWRITETIMEOUTSECS = String(o.stallTimeoutS);
  if (o.highWaterMarkBytes !== undefined) fanoutEnv.TYPHA_SERVERHIGHWATERMARKBYTES = String(o.highWaterMarkBytes);
  const say = o.progress ?? (() => {});
  say(`${system}: baseline, no stalled client`);
  const baseline = await runSteady(system, { ...o, fanoutEnv, stalled: 0 });
  say(`${system}: ${o.stalled} stalled for ${o.stallS} s`);
  const stalledRun = await runSteady(system, { ...o, fanoutEnv, stalled: o.stalled, stallS: o.stallS });
  return compare(system, baseline, stalledRun, { stallTimeoutS: o.stallTimeoutS, highWaterMarkBytes: o.highWaterMarkBytes });
}

function compare(system: SlowSystem, baseline: RunResult, run: RunResult, settings: SlowResult['settings']): SlowResult {
  const proc = system === 'fanout' ? 'calico-fanout' : 'server';
  const window = run.stalled!;
  const inWindow = (r: RunResult) => {
    const s = r.rssSeries;
    const mib = s?.mib[proc] ?? [];
    const at = s ? s.t.findIndex((t) => t >= window.atS) : -1;
    const xs = mib.filter((_, i) => s!.t[i]! >= window.atS && s!.t[i]! <= window.atS + window.forS + 0.5);
    return at >= 0 && xs.length ? Math.round((Math.max(...xs) - mib[at]!) * 10) / 10 : NaN;
  };
  const round = (n: number) => Math.round(n * 10) / 10;
  const pair = (b: number, s: number) => ({ baseline: b, stalled: s, delta: round(s - b) });
  const stalledCount = window.clients.length;
  return {
    system, servingProcess: proc, baseline, stalledRun: run,
    peakRssMiB: pair(baseline.peakRssMiB[proc] ?? NaN, run.peakRssMiB[proc] ?? NaN),
    stallWindowRssMiB: pair(inWindow(baseline), inWindow(run)),
    othersP99Ms: {
      baseline: baseline.latencyMs.p99, stalled: run.latencyMs.p99,
      changePct: round(((run.latencyMs.p99 - baseline.latencyMs.p99) / baseline.latencyMs.p99) * 100),
    },
    othersComplete: { baseline: baseline.completeClients, stalled: window.othersComplete, of: run.clients - stalledCount },
    stalledClients: window.clients.map((c) => ({ ...c, outcome: outcomeOf(c) })),
    settings,
  };
}

/** In words: caught up on the same connection, or closed and back by resume or snapshot. */
function outcomeOf(c: StalledClient): string {
  const state = c.complete ? 'complete' : 'INCOMPLETE';
  if (c.closed) return `${state}, connection closed, not reopened`;
  // A SyncClient's first connect is a snapshot; anything beyond is a reconnect.
  if (c.connects <= 1) return `${state}, caught up on the same connection`;
  const via = [c.resumes ? `${c.resumes} resume(s)` : '', c.snapshots > 1 ? `${c.snapshots - 1} new snapshot(s)` : ''].filter(Boolean).join(' + ');
  return `${state}, reconnected ${c.connects - 1}× (${via || 'no sync'})`;
}
