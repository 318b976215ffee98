// steady: N agents, R updates/s for D seconds, on each system in turn, the same payload and the
// same client processes. Serving side and writer pinned to CPU 0, clients to CPU 1. Per run: latency write → client callback, delivered/s, completeness, CPU and peak RSS
// of every process, upstream watches.
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as hdr from 'hdr-histogram-js';
import type { Etcd3 } from 'etcd3';
import { startEtcd, type EtcdServer } from '../../test/support/etcd.js';
import { freePort } from '../../test/support/metrics.js';
import type { StalledClient, System, WorkerCommand, WorkerProgress, WorkerReport } from '../agent-worker.js';
import { preload, writeSteady } from '../lib/writer.js';
import { isReady } from '../lib/fanout-process.js';
import { nowUs } from '../lib/payload.js';
import { cpuSeconds, killOnExit, peakRssMiB, PRODUCTION_V8_FLAGS, start, waitUntil, type Proc } from '../lib/procs.js';
import { pollDelivered, type Meter } from '../lib/progress.js';
import { sampleRss, type RssSeries } from '../lib/rss.js';

export const SYSTEMS = ['fanout', 'raw-batch', 'raw-frame', 'direct', 'grpc-proxy'] as const;
export type SystemName = (typeof SYSTEMS)[number];

export interface SteadyOptions {
  clients: number;
  rate: number;
  durationS: number;
  keys: number;
  workers: number;
  /** lean: lean protocol readers and `probes` full client libraries (fanout and raw-batch). */
  mode: 'full' | 'light' | 'lean';
  /** Lean mode: how many of the clients are probes (SyncClients decoding and keeping every value). */
  probes?: number;
  serverCpus: string;
  clientCpus: string;
  /** Cores for this process, which writes to the datastore; undefined: the serving side's. */
  writerCpus?: string;
  drainTimeoutS: number;
  progress?: (msg: string) => void;
  /** Progress of the measured pass and drain (the CLI's progress bar). */
  meter?: Meter;
  /** slow: this many clients stop reading for stallS seconds in the middle of the measured pass. */
  stalled?: number;
  stallS?: number;
  /** TYPHA_* settings for calico-fanout (e.g. its high-water mark and stall timeout). */
  fanoutEnv?: Record<string, string>;
  /** What etcd holds before calico-fanout starts, instead of `keys` of steady's payload (cluster). */
  load?: (client: Etcd3) => Promise<void>;
}

type Percentiles = { p50: number; p90: number; p99: number; max: number };

export interface RunResult {
  system: SystemName;
  clients: number;
  rate: number;
  durationS: number;
  written: number;
  expectedDeliveries: number;
  delivered: number;
  deliveredPerSec: number;
  allComplete: boolean;
  completeClients: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number };
  drainS: number;
  cpuS: { serving: Record<string, number>; servingTotal: number; clients: number; writer: number };
  servingCpuUsPerDelivered: number;
  peakRssMiB: Record<string, number>;
  upstreamWatches: number | null;
  reconnects: number;
  snapshots: number;
  histogram: string;
  /** Lean mode: the probes (full client libraries) among the clients, and their latency alone. */
  probes?: number;
  probeLatencyMs?: Percentiles;
  probeHistogram?: string;
  /** VmRSS of each serving process every 250 ms, from the start of the measured pass to the end of the drain. */
  rssSeries?: RssSeries;
  /** slow: the stalled clients, measured apart (latencyMs and histogram above are everyone else's). */
  stalled?: { atS: number; forS: number; clients: StalledClient[]; othersComplete: number; latencyMs: Percentiles; histogram: string };
}

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const WORKER = fileURLToPath(new URL('../agent-worker.ts', import.meta.url));

export class Worker {
  private readonly waiters: { resolve: (m: any) => void; reject: (e: Error) => void }[] = [];
  private failed?: Error;
  constructor(readonly child: ChildProcess) {
    child.on('message', (m: any) => {
      if (m.ev === 'error') this.fail(new Error(`client worker failed: ${m.message}`));
      else this.waiters.shift()?.resolve(m);
    });
    // A worker that dies fails the run (which then cleans up) instead of leaving it waiting forever.
    child.on('error', (err) => this.fail(err));
    child.once('exit', (code, signal) => this.fail(new Error(`client worker exited (${code ?? signal})`)));
  }
  private fail(err: Error): void {
    this.failed ??= err;
    for (const w of this.waiters.splice(0)) w.reject(this.failed);
  }
  ask<T>(cmd: WorkerCommand): Promise<T> {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => { this.waiters.push({ resolve, reject }); this.child.send(cmd); });
  }
}

/** The next IPC message of a child; rejects if the child exits first instead of waiting forever. */
export function nextMessage<T>(child: ChildProcess, what: string): Promise<T> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.reject(new Error(`${what} has exited`));
  return new Promise((resolve, reject) => {
    const onMessage = (m: T) => { child.off('exit', onExit); resolve(m); };
    const onExit = (code: number | null, signal: NodeJS.Signals | null) => {
      child.off('message', onMessage);
      reject(new Error(`${what} exited (${code ?? signal})`));
    };
    child.once('message', onMessage);
    child.once('exit', onExit);
  });
}

export function startWorkers(o: SteadyOptions): Worker[] {
  return forkWorkers(WORKER, o.workers);
}

/** `count` client processes running `script` (pinned to `cpus` when given), each behind a Worker. */
export function forkWorkers(script: string, count: number, cpus?: string): Worker[] {
  return Array.from({ length: count }, () => {
    const w = new Worker(fork(script, [], {
      execArgv: ['--import', 'tsx', '--max-old-space-size=4096', ...profileArgs()], stdio: ['ignore', 'ignore', 'inherit', 'ipc'], cwd: ROOT,
    }));
    if (cpus !== undefined) pin(w.child.pid!, cpus);
    killOnExit(() => (w.child.exitCode === null ? w.child.pid : undefined));
    return w;
  });
}

/** What precedes bin/calico-fanout.js when the harness starts it: production's V8 flags, and a profile if asked for. */
export const serveNodeArgs = (): string[] => [...PRODUCTION_V8_FLAGS, ...profileArgs()];

/** BENCH_CPU_PROF=<dir>: calico-fanout and every client process write a V8 CPU profile there when it stops. */
export function profileArgs(): string[] {
  const dir = process.env.BENCH_CPU_PROF;
  return dir ? ['--cpu-prof', `--cpu-prof-dir=${dir}`] : [];
}

/** Asks the workers to exit (so profiles get written), then kills what is left after 3 s. */
export async function stopWorkers(workers: Worker[]): Promise<void> {
  const exited = workers.map((w) => w.child.exitCode !== null || w.child.signalCode !== null
    ? Promise.resolve()
    : new Promise<void>((resolve) => { w.child.once('exit', () => resolve()); try { w.child.send({ cmd: 'stop' }); } catch { /* already gone */ } }));
  await Promise.race([Promise.all(exited), new Promise((r) => setTimeout(r, 3000))]);
  for (const w of workers) w.child.kill('SIGKILL');
}

/** Serving side of one system; returns the URLs clients use and the processes to account for. */
export async function serve(system: SystemName, o: SteadyOptions, cleanup: (() => Promise<void>)[]): Promise<{
  clientSystem: System; urls: string[]; procs: { name: string; pid: () => number }[]; etcd?: EtcdServer; raw?: ChildProcess; watches: () => Promise<number | null>;
}> {
  if (system === 'raw-batch' || system === 'raw-frame') {
    const raw = fork(fileURLToPath(new URL('../systems/raw-server.ts', import.meta.url)), [], {
      execArgv: ['--import', 'tsx'], stdio: ['ignore', 'ignore', 'inherit', 'ipc'], cwd: ROOT,
    });
    cleanup.push(async () => { raw.kill('SIGKILL'); });
    killOnExit(() => (raw.exitCode === null ? raw.pid : undefined));
    raw.on('error', () => {}); // a send to a dead server: its exit fails the run (nextMessage)
    const { port } = await nextMessage<{ port: number }>(raw, 'raw server');
    pin(raw.pid!, o.serverCpus);
    return { clientSystem: 'raw', urls: [`ws://127.0.0.1:${port}`], procs: [{ name: 'server', pid: () => raw.pid! }], raw, watches: async () => null };
  }
  const etcd = await startEtcd({ cpus: o.serverCpus, progressNotifyMs: 5000 });
  const forget = killOnExit(() => etcd.pid);
  cleanup.push(async () => { await etcd.stop(); forget(); });
  await (o.load ? o.load(etcd.client) : preload(etcd.client, o.keys));
  const watches = () => etcdWatchers(etcd.endpoint);
  if (system === 'direct') {
    return { clientSystem: 'etcd', urls: [etcd.endpoint], procs: [{ name: 'etcd', pid: () => etcd.pid }], etcd, watches };
  }
  if (system === 'grpc-proxy') {
    const port = await freePort();
    const proxy = start('grpc-proxy', 'etcd', ['grpc-proxy', 'start', `--endpoints=${etcd.endpoint.replace('http://', '')}`, `--listen-addr=127.0.0.1:${port}`], { cpus: o.serverCpus });
    cleanup.push(() => proxy.stop());
    await waitUntil(async () => (await fetch(`http://127.0.0.1:${port}/health`).then((r) => r.ok).catch(() => false)), 'grpc-proxy', 15_000);
    return { clientSystem: 'etcd', urls: [`http://127.0.0.1:${port}`], procs: [{ name: 'etcd', pid: () => etcd.pid }, { name: 'grpc-proxy', pid: () => proxy.pid }], etcd, watches };
  }
  const [port, health] = [await freePort(), await freePort()];
  const server: Proc = start('calico-fanout', process.execPath, [
    ...serveNodeArgs(), 'bin/calico-fanout.js', 'serve', '--datastore', 'etcdv3', '--etcd-endpoints', etcd.endpoint, '--server-host', '127.0.0.1',
    '--server-port', String(port), '--health-port', String(health), '--health-host', '127.0.0.1', '--metrics-port', String(health), '--log-level', 'WARNING',
  ], { cpus: o.serverCpus, cwd: ROOT, env: { ...process.env, ...o.fanoutEnv } });
  cleanup.push(() => server.stop());
  await waitUntil(() => isReady(health), 'calico-fanout ready', 30_000);
  return {
    clientSystem: 'fanout', urls: [`ws://127.0.0.1:${port}`], etcd, watches,
    procs: [{ name: 'etcd', pid: () => etcd.pid }, { name: 'calico-fanout', pid: () => server.pid }],
  };
}

/** Pauses the stalled clients' reading for stallS seconds centred on the measured pass. */
function stallMidway(workers: Worker[], o: SteadyOptions): { window: { atS: number; forS: number }; cancel(): void } {
  const forS = o.stallS ?? 5;
  const window = { atS: Math.max(0, (o.durationS - forS) / 2), forS };
  if (!o.stalled) return { window, cancel() {} };
  const toAll = (paused: boolean) => () => { void Promise.all(workers.map((x) => x.ask({ cmd: 'stall', paused }))).catch(() => {}); };
  const timers = [setTimeout(toAll(true), window.atS * 1000), setTimeout(toAll(false), (window.atS + forS) * 1000)];
  // Not resumed by the end of the drain: the report resumes them.
  return { window, cancel() { for (const t of timers) clearTimeout(t); } };
}

/** Moves a running process to the given cores ('' leaves it where it is, as smoke tests do). */
export function pin(pid: number, cpus: string): void {
  if (cpus) start('taskset', 'taskset', ['-pc', cpus, String(pid)]);
}

/** Watchers etcd itself counts (its debugging gauge), whatever sits between it and the clients. */
export async function etcdWatchers(endpoint: string): Promise<number | null> {
  const text = await fetch(`${endpoint}/metrics`).then((r) => r.text()).catch(() => '');
  const m = /^etcd_debugging_mvcc_watcher_total (\d+)/m.exec(text);
  return m ? Number(m[1]) : null;
}

export async function runSteady(system: SystemName, o: SteadyOptions): Promise<RunResult> {
  const cleanup: (() => Promise<void>)[] = [];
  const say = o.progress ?? (() => {});
  try {
    say(`${system}: starting the serving side`);
    const s = await serve(system, o, cleanup);
    const workers = startWorkers(o);
    cleanup.push(() => stopWorkers(workers));
    for (const w of workers) pin(w.child.pid!, o.clientCpus);
    // The writer is a datastore client and costs etcd3 ~1 ms of CPU per transaction: on the
    // client core it took 12% of it and tipped it into saturation. The raw server makes its
    // updates on the serving core too, so this keeps the systems alike.
    pin(process.pid, o.writerCpus ?? o.serverCpus);
    const lean = o.mode === 'lean';
    if (lean && s.clientSystem === 'etcd') throw new Error(`lean mode speaks the calico-fanout protocol: ${system} does not`);
    // The raw server serves protocol clients its view from the same preload as etcd holds.
    if (lean && s.raw) { s.raw.send({ cmd: 'load', source: 'steady', keys: o.keys }); await nextMessage(s.raw, 'raw server'); }
    const probes = lean ? Math.min(o.probes ?? 0, o.clients) : 0;
    say(`${system}: connecting ${o.clients} clients${lean ? ` (${probes} probes)` : ''}`);
    const per = Math.ceil(o.clients / o.workers);
    await Promise.all(workers.map((w, i) => w.ask({
      cmd: 'start', system: s.clientSystem, urls: s.urls, first: i * per, count: Math.max(0, Math.min(per, o.clients - i * per)), keys: o.keys, mode: o.mode,
      stalled: Math.max(0, (o.stalled ?? 0) - i * per),
      // Spread over the workers, so each holds some.
      probes: Math.floor(probes / o.workers) + (i < probes % o.workers ? 1 : 0),
    })));

    // Warm-up (seq 0, ignored by the clients), then the measured pass.
    const write = async (rate: number, durationS: number, firstSeq: number) => {
      if (s.raw) {
        const done = nextMessage(s.raw, 'raw server');
        s.raw.send({ cmd: 'run', rate, durationS, keys: o.keys, mode: system === 'raw-frame' ? 'frame' : 'batch', firstSeq });
        await done;
        const lastSeq = new Array<number>(o.keys).fill(0);
        const total = Math.round(rate * durationS);
        if (firstSeq > 0) for (let i = 0; i < total; i++) lastSeq[i % o.keys] = firstSeq + i;
        return { written: total, lastSeq, lastPutAt: nowUs() };
      }
      return writeSteady(s.etcd!.client, { rate, durationS, keys: o.keys, firstSeq });
    };
    say(`${system}: warm-up`);
    await write(Math.min(200, o.rate), 1, 0);
    await new Promise((r) => setTimeout(r, 1000));

    const pids = () => s.procs.map((p) => ({ name: p.name, pid: p.pid() }));
    const cpu0 = Object.fromEntries(pids().map((p) => [p.name, cpuSeconds(p.pid)]));
    const clientCpu0 = workers.reduce((n, w) => n + cpuSeconds(w.child.pid!), 0);
    const writer0 = process.cpuUsage();
    const t0 = nowUs();
    say(`${system}: ${o.rate}/s for ${o.durationS} s to ${o.clients} clients`);
    const rssSampler = sampleRss(pids);
    const ask = (lastSeq?: number[]) => Promise.all(workers.map((x) => x.ask<WorkerProgress>({ cmd: 'progress', lastSeq })));
    o.meter?.phase(`${system} measured`, Math.round(o.rate * o.durationS) * o.clients);
    const poll = pollDelivered(o.meter, async () => (await ask()).reduce((n, x) => n + x.received, 0));
    const stall = stallMidway(workers, o);
    const w = await write(o.rate, o.durationS, 1);
    await poll.stop();
    const expected = w.written * o.clients;

    // Drain: until every client has every update, or the drain timeout. A client that fell
    // behind the server's high-water mark (or stalled) rightly ends with fewer deliveries: its
    // catch-up sends each key's latest value only. So a client also counts as done once its final
    // state is complete, which is what the slow scenario's stalled clients are held to.
    o.meter?.phase(`${system} drain`, expected);
    let delivered = 0;
    const deadline = Date.now() + o.drainTimeoutS * 1000;
    while (Date.now() < deadline) {
      const p = await ask(w.lastSeq);
      delivered = p.reduce((n, x) => n + x.received, 0);
      o.meter?.delivered(delivered);
      const complete = p.reduce((n, x) => n + x.complete, 0);
      if (delivered >= expected || complete === o.clients) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    stall.cancel();
    const tEnd = nowUs();
    const rssSeries = rssSampler.stop();
    const cpu1 = Object.fromEntries(pids().map((p) => [p.name, cpuSeconds(p.pid) - cpu0[p.name]!]));
    const clientCpu = workers.reduce((n, x) => n + cpuSeconds(x.child.pid!), 0) - clientCpu0;
    const writerCpu = process.cpuUsage(writer0);
    const rss = Object.fromEntries(pids().map((p) => [p.name, Math.round(peakRssMiB(p.pid))]));
    const watches = await s.watches();

    const reports = await Promise.all(workers.map((x) => x.ask<WorkerReport>({ cmd: 'report', lastSeq: w.lastSeq })));
    const merge = (pick: (r: WorkerReport) => string) => {
      const h = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 2 });
      for (const r of reports) h.add(hdr.decodeFromCompressedBase64(pick(r)));
      return h;
    };
    const merged = merge((r) => r.histogram);
    const received = reports.flatMap((r) => r.received);
    delivered = received.reduce((a, b) => a + b, 0);
    const completeClients = reports.reduce((n, r) => n + r.complete, 0);
    const servingTotal = Object.values(cpu1).reduce((a, b) => a + b, 0);
    const ms = (us: number) => Math.round(us / 10) / 100;
    const percentiles = (h: hdr.Histogram): Percentiles => ({ p50: ms(h.getValueAtPercentile(50)), p90: ms(h.getValueAtPercentile(90)), p99: ms(h.getValueAtPercentile(99)), max: ms(h.maxValue) });
    const stalledClients = reports.flatMap((r) => r.stalled);
    const stalledHistogram = merge((r) => r.stalledHistogram);
    return {
      system, clients: o.clients, rate: o.rate, durationS: o.durationS, written: w.written,
      expectedDeliveries: expected, delivered,
      deliveredPerSec: Math.round(delivered / ((tEnd - t0) / 1e6)),
      allComplete: completeClients === o.clients, completeClients,
      latencyMs: percentiles(merged),
      drainS: Math.round((tEnd - w.lastPutAt) / 1e4) / 100,
      cpuS: { serving: cpu1, servingTotal, clients: clientCpu, writer: (writerCpu.user + writerCpu.system) / 1e6 },
      servingCpuUsPerDelivered: delivered ? Math.round((servingTotal * 1e6 / delivered) * 100) / 100 : NaN,
      peakRssMiB: rss,
      upstreamWatches: system === 'fanout' || system === 'direct' || system === 'grpc-proxy' ? watches : null,
      reconnects: reports.reduce((n, r) => n + r.reconnects, 0),
      snapshots: reports.reduce((n, r) => n + r.snapshots, 0),
      histogram: hdr.encodeIntoCompressedBase64(merged),
      ...(lean ? (() => { const ph = merge((r) => r.probeHistogram); return { probes, probeLatencyMs: percentiles(ph), probeHistogram: hdr.encodeIntoCompressedBase64(ph) }; })() : {}),
      rssSeries,
      ...(o.stalled ? {
        stalled: {
          ...stall.window, clients: stalledClients, othersComplete: completeClients - stalledClients.filter((c) => c.complete).length,
          latencyMs: percentiles(stalledHistogram), histogram: hdr.encodeIntoCompressedBase64(stalledHistogram),
        },
      } : {}),
    };
  } finally {
    for (const c of cleanup.reverse()) await c().catch(() => {});
  }
}
