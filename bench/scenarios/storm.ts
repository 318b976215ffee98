// storm: K keys in etcd, N agents connect at once: how long until every one holds all K keys,
// what it costs the serving side, and how many bytes each agent received. Then, for calico-fanout,
// the restart an operator runs (a rolling update): a new replica starts beside the old one, the
// old one gets SIGTERM, sends its agents away one by one over its shutdown timeout and exits; the
// agents go to the new replica by themselves (the next URL they know): the same figures for the
// resync, and each agent's own time from leaving the old replica to being in sync on the new one.
// Serving side on CPU 0, the agents' processes on CPU 1, as in steady.
//
//   fanout       calico-fanout serving etcd; agents are SyncClients (light or full)
//   direct       N etcd readers, each listing the prefix in pages of 10,000 at one revision
//   grpc-proxy   the same readers through `etcd grpc-proxy start`
import { fileURLToPath } from 'node:url';
import type { WorkerCommand } from '../agent-worker.js';
import type { ClientFigures, StormCommand, StormReply } from '../storm-worker.js';
import { argvOf, isReady, metricSum, metricsPortOf, withPorts } from '../lib/fanout-process.js';
import { nowUs } from '../lib/payload.js';
import { cpuSeconds, peakRssMiB, rssMiB, start, waitUntil } from '../lib/procs.js';
import { median } from '../lib/report.js';
import { freePort } from '../../test/support/metrics.js';
import { forkWorkers, serve, stopWorkers, Worker, type SteadyOptions } from './steady.js';

export const STORM_SYSTEMS = ['fanout', 'direct', 'grpc-proxy'] as const;
export type StormSystem = (typeof STORM_SYSTEMS)[number];

export interface StormOptions {
  keys: number;
  clients: number;
  workers: number;
  mode: 'full' | 'light';
  /** What fanout clients offer for snapshot chunks: an algorithm, or 'none'. */
  compression: string;
  serverCpus: string;
  clientCpus: string;
  /** Bound on each phase. */
  timeoutS: number;
  /** calico-fanout's TYPHA_SHUTDOWNTIMEOUTSECS: the old replica spreads its goaways over this long; undefined: its default. */
  shutdownTimeoutS?: number;
  progress?: (msg: string) => void;
}

export interface StormPhase {
  /** Start of the phase → the last agent in sync (the last reader done). */
  timeS: number;
  /** The same per agent. */
  clientS: { p50: number; max: number };
  keysPerClient: { min: number; max: number };
  /** Agents holding exactly K keys. */
  completeClients: number;
  /** Agents: bytes of frames received; etcd readers: bytes of keys and values. */
  bytesPerClient: { min: number; median: number; max: number };
  bytesTotal: number;
  cpuS: Record<string, number>;
  clientCpuS: number;
  peakRssMiB: Record<string, number>;
  /** calico-fanout's typha_snapshots_generated, all views (null for etcd). */
  snapshotsGenerated: number | null;
}

export interface StormReconnect extends StormPhase {
  /** The new replica's start → ready (before the SIGTERM, as in a rolling update). */
  serverReadyS: number;
  /** SIGTERM → the old replica exited, having sent every agent away. */
  oldExitS: number;
  /** The old replica's shutdown timeout, over which it spreads its goaways (null: its default). */
  shutdownTimeoutS: number | null;
  /** Per agent: leaving the old replica → in sync on the new one. */
  resyncS: { p50: number; max: number };
  /** SIGTERM → the first and the last agent leaving the old replica: the drain's spread. */
  leftS: { first: number; last: number };
  /** How the agents synced with the new process, as their libraries count it. */
  snapshotSyncs: number;
  resumeSyncs: number;
  digestSyncs: number;
  /** typha_connections_streaming of the new process once every agent is in sync. */
  streamingOnNewServer: number;
}

export interface StormResult {
  system: StormSystem;
  keys: number;
  clients: number;
  mode: 'full' | 'light' | null;
  compression: string | null;
  workers: number;
  rssBeforeMiB: Record<string, number>;
  sync: StormPhase;
  /** calico-fanout only: a direct or proxied etcd reader that reconnects lists everything again (the sync phase). */
  reconnect: StormReconnect | null;
}

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const WORKER = fileURLToPath(new URL('../storm-worker.ts', import.meta.url));
const PAGE = 10_000;

/** Worker speaks agent-worker's commands by type; storm-worker's travel the same IPC channel. */
const ask = <T>(w: Worker, c: StormCommand) => w.ask<T>(c as unknown as WorkerCommand);

export async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms); });
  try { return await Promise.race([p, late]); } finally { clearTimeout(timer); }
}

/** serve() reads only the keys to preload, the serving cores and calico-fanout's settings. */
export const serveOptions = (keys: number, serverCpus: string, workers = 0, fanoutEnv?: Record<string, string>): SteadyOptions => ({
  keys, serverCpus, workers, clients: 0, rate: 0, durationS: 0, mode: 'light', clientCpus: '', drainTimeoutS: 0, fanoutEnv,
});

const alive = (pid: number) => { try { process.kill(pid, 0); return true; } catch { return false; } };

function startWorkers(o: StormOptions): Worker[] {
  return forkWorkers(WORKER, o.workers, o.clientCpus);
}

const r2 = (n: number) => Math.round(n * 100) / 100;

type Serving = Pick<StormPhase, 'cpuS' | 'clientCpuS' | 'peakRssMiB' | 'snapshotsGenerated'>;

/** Figures of one phase from the workers' replies; `t0` on the shared monotonic clock. */
function phase(o: StormOptions, t0: number, replies: StormReply[], serving: Serving): StormPhase {
  const all: ClientFigures[] = replies.flatMap((r) => r.clients);
  const done = all.map((c) => Math.round((c.doneAt - t0) / 1e3) / 1e3);
  const bytes = all.map((c) => c.bytes);
  const keys = all.map((c) => c.keys);
  return {
    timeS: Math.max(...done), clientS: { p50: median(done), max: Math.max(...done) },
    keysPerClient: { min: Math.min(...keys), max: Math.max(...keys) },
    completeClients: keys.filter((k) => k === o.keys).length,
    bytesPerClient: { min: Math.min(...bytes), median: median(bytes), max: Math.max(...bytes) },
    bytesTotal: bytes.reduce((a, b) => a + b, 0),
    ...serving, clientCpuS: r2(serving.clientCpuS),
  };
}

interface Run { o: StormOptions; workers: Worker[]; cleanup: (() => Promise<void>)[]; say: (m: string) => void; clientCpu: () => number }

/** The new replica's ports, chosen before the agents start so that their URL list holds it. */
interface Spare { server: number; health: number }

/**
 * The operator's restart: a new replica starts beside the old one and becomes ready; then the old
 * one gets SIGTERM, sends its agents away one by one (Typha's pacing: at most one a second, over
 * its shutdown timeout) and exits. Times the agents' move to the new replica, and the old one's exit.
 */
async function restart(r: Run, fanoutPid: number, etcdPid: number, spare: Spare): Promise<StormReconnect> {
  const { o, workers } = r;
  const timeoutMs = o.timeoutS * 1000;
  const argv = withPorts(argvOf(fanoutPid), spare);
  r.say('fanout: starting the new replica');
  const started = nowUs();
  const next = start('calico-fanout', argv[0]!, argv.slice(1), { cpus: o.serverCpus, cwd: ROOT, env: { ...process.env, ...fanoutEnv(o) } });
  // SIGINT: closes at once (SIGTERM would drain the connected agents one a second).
  r.cleanup.push(() => next.stop('SIGINT'));
  await waitUntil(() => isReady(spare.health), 'the new calico-fanout ready', timeoutMs);
  const serverReadyS = Math.round((nowUs() - started) / 1e3) / 1e3;

  await within(Promise.all(workers.map((w) => ask(w, { cmd: 'arm' }))), 10_000, 'arm');
  // The last agent is sent away only at the end of the drain: the bound covers it.
  const drainMs = (o.shutdownTimeoutS ?? FANOUT_SHUTDOWN_TIMEOUT_S) * 1000;
  const resyncMs = timeoutMs + drainMs;
  const resynced = within(Promise.all(workers.map((w) => ask<StormReply>(w, { cmd: 'resync', timeoutMs: resyncMs }))), resyncMs + 5000, 'clients in sync again');
  resynced.catch(() => {}); // awaited below; a failure before then must not go unhandled
  const etcd0 = cpuSeconds(etcdPid);
  const next0 = cpuSeconds(next.pid);
  const old0 = cpuSeconds(fanoutPid);
  let oldCpu = 0;
  const client0 = r.clientCpu();
  r.say('fanout: SIGTERM to the old replica');
  const t0 = nowUs();
  process.kill(fanoutPid, 'SIGTERM');
  // The old replica takes its whole drain (one agent a second by default) and then closes: the
  // bound follows from its shutdown timeout, not from a guess.
  const exitBoundMs = drainMs + 30_000;
  const exited = waitUntil(() => {
    const c = cpuSeconds(fanoutPid);
    if (Number.isFinite(c)) oldCpu = c - old0;
    return !alive(fanoutPid);
  }, 'the old calico-fanout to exit after draining', exitBoundMs).then(() => nowUs());
  exited.catch(() => {});
  const replies = await resynced;
  const oldExitS = Math.round((await exited - t0) / 1e3) / 1e3;
  const figures = phase(o, t0, replies, {
    cpuS: { etcd: r2(cpuSeconds(etcdPid) - etcd0), 'calico-fanout': r2(cpuSeconds(next.pid) - next0), 'calico-fanout (old)': r2(oldCpu) },
    clientCpuS: r.clientCpu() - client0,
    peakRssMiB: { etcd: Math.round(peakRssMiB(etcdPid)), 'calico-fanout': Math.round(peakRssMiB(next.pid)) },
    snapshotsGenerated: await metricSum(spare.health, 'typha_snapshots_generated'),
  });
  const all = replies.flatMap((x) => x.clients);
  const resync = all.map((c) => Math.round((c.doneAt - (c.leftAt ?? t0)) / 1e3) / 1e3);
  const left = all.map((c) => Math.round(((c.leftAt ?? t0) - t0) / 1e3) / 1e3);
  const count = (f: 'snapshots' | 'resumes' | 'digests') => all.reduce((n, c) => n + (c[f] ?? 0), 0);
  return {
    ...figures, serverReadyS, oldExitS, shutdownTimeoutS: o.shutdownTimeoutS ?? null,
    resyncS: { p50: median(resync), max: Math.max(...resync) }, leftS: { first: Math.min(...left), last: Math.max(...left) },
    snapshotSyncs: count('snapshots'), resumeSyncs: count('resumes'), digestSyncs: count('digests'),
    streamingOnNewServer: await metricSum(spare.health, 'typha_connections_streaming'),
  };
}

/** calico-fanout's default TYPHA_SHUTDOWNTIMEOUTSECS (README's settings table). */
export const FANOUT_SHUTDOWN_TIMEOUT_S = 300;

const fanoutEnv = (o: StormOptions): Record<string, string> =>
  (o.shutdownTimeoutS === undefined ? {} : { TYPHA_SHUTDOWNTIMEOUTSECS: String(o.shutdownTimeoutS) });

export async function runStorm(system: StormSystem, o: StormOptions): Promise<StormResult> {
  const cleanup: (() => Promise<void>)[] = [];
  const say = o.progress ?? (() => {});
  const timeoutMs = o.timeoutS * 1000;
  try {
    say(`${system}: starting the serving side and preloading ${o.keys} keys`);
    const s = await serve(system, serveOptions(o.keys, o.serverCpus, 0, fanoutEnv(o)), cleanup);
    const workers = startWorkers(o);
    cleanup.push(() => stopWorkers(workers));
    await within(Promise.all(workers.map((w) => ask(w, { cmd: 'ping' }))), 30_000, 'client processes up');

    const pidOf = (name: string) => s.procs.find((p) => p.name === name)?.pid();
    const each = (f: (pid: number) => number) => Object.fromEntries(s.procs.map((p) => [p.name, r2(f(p.pid()))]));
    const clientCpu = () => workers.reduce((n, w) => n + cpuSeconds(w.child.pid!), 0);
    const rssBeforeMiB = each(rssMiB);
    const per = Math.ceil(o.clients / o.workers);
    const share = (i: number) => ({ first: i * per, count: Math.max(0, Math.min(per, o.clients - i * per)) });
    const fanoutPid = pidOf('calico-fanout');
    // The agents know both replicas from the start, as they would find them through the Service.
    const spare: Spare | undefined = fanoutPid ? { server: await freePort(), health: await freePort() } : undefined;
    const urls = spare ? [...s.urls, `ws://127.0.0.1:${spare.server}`] : s.urls;

    say(`${system}: ${o.clients} clients connect at once`);
    const cpu0 = each(cpuSeconds);
    const client0 = clientCpu();
    const t0 = nowUs();
    const replies = await within(Promise.all(workers.map((w, i) => ask<StormReply>(w, fanoutPid
      ? { cmd: 'sync', urls, ...share(i), mode: o.mode, compression: o.compression === 'none' ? [] : [o.compression], timeoutMs }
      : { cmd: 'read', urls: s.urls, count: share(i).count, pageSize: PAGE }))), timeoutMs + 5000, `${system}: clients in sync`);
    const cpu1 = each(cpuSeconds);
    const sync = phase(o, t0, replies, {
      cpuS: Object.fromEntries(Object.entries(cpu1).map(([n, v]) => [n, r2(v - cpu0[n]!)])),
      clientCpuS: clientCpu() - client0,
      peakRssMiB: each(peakRssMiB),
      snapshotsGenerated: fanoutPid ? await metricSum(metricsPortOf(fanoutPid), 'typha_snapshots_generated') : null,
    });
    say(`${system}: all in sync after ${sync.timeS} s`);
    const reconnect = fanoutPid ? await restart({ o, workers, cleanup, say, clientCpu }, fanoutPid, pidOf('etcd')!, spare!) : null;
    if (reconnect) say(`${system}: all in sync again ${reconnect.timeS} s after the restart`);
    return { system, keys: o.keys, clients: o.clients, mode: fanoutPid ? o.mode : null, compression: fanoutPid ? o.compression : null, workers: o.workers, rssBeforeMiB, sync, reconnect };
  } finally {
    for (const c of cleanup.reverse()) await c().catch(() => {});
  }
}
