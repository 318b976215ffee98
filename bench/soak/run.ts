// The soak itself (bench/soak.ts is its command line; test/soak.test.ts runs it for a minute).
//
// One process: the whole server (startApp: memory datastore, ingest, store, WebSocket server,
// health and metrics listeners on loopback) and its SyncClients. In-process rather than a child
// server because the failure conditions need to look inside the server: its handles and timers
// (getActiveResourcesInfo), the listeners on its objects, `MaxListenersExceededWarning` (a
// process 'warning'), and the datastore's exact content to compare every client with. The price:
// RSS, handle counts and event-loop lag are those of server and clients together (the client
// library is product too, and its leaks count as much); a single loop serves both, so the loop
// lag is an upper bound of what the server alone would see.
//
// While it runs: a rolling deployment (RollingDeployment: waves of pods deleted and recreated
// under new names) and, every few seconds, one client restarted (alternately resuming with the
// same client, and replaced by a fresh one that takes a snapshot), so that connections are opened
// and closed throughout and a per-connection leak shows as a slope.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import * as hdr from 'hdr-histogram-js';
import { SyncClient } from '../../client/index.js';
import { ViewFilter } from '../../src/model/view-filter.js';
import { startApp, type App } from '../../cmd/app.js';
import { loadConfig, type Config } from '../../src/config.js';
import { MemoryDatastore } from '../../src/datastore/memory.js';
import { loadResources } from '../../src/datastore/seed.js';
import { silentLogger } from '../../src/logging.js';
import type { SyncerType } from '../../src/model/views.js';
import { checksumHex } from '../../src/protocol/checksum.js';
import { assertClientMatches, expectedView } from '../../test/support/expected.js';
import { nowUs, stampsIn } from '../lib/payload.js';
import {
  fdCount, fdLimit, grown, processListenerCounts, resourceCounts, round, serverListeners, slope, total, type ServerListeners,
} from './process-stats.js';
import { RollingDeployment, seedPods } from './rolling.js';

const DEMO = fileURLToPath(new URL('../../examples/demo-cluster', import.meta.url));

export interface SoakOptions {
  /** Measured duration (after every client's first sync). */
  minutes: number;
  clients: number;
  /** Clients that keep values and are compared key by key with the datastore at the end; the rest keep hashes. */
  fullClients: number;
  /** Pods (WorkloadEndpoints) alive at any time, on top of the demo cluster. */
  pods: number;
  waveSize: number;
  /** Pod deletions and creations per second during a wave. */
  rate: number;
  pauseS: number;
  /** Restart one client this often (0: never). */
  restartEveryS: number;
  sampleMs: number;
  /** Samples before this are left out of the slopes (default: 20% of the run, within 10–60 s). */
  warmupS?: number;
  /** Failure thresholds, per minute over the samples after the warm-up. */
  maxHandleSlope: number;
  maxFdSlope: number;
  /** MiB/min; Infinity (the default) reports the RSS slope without failing on it. */
  maxRssSlope: number;
  /** How long the clients get, once the churn stops, to reach the server's state. */
  settleTimeoutS: number;
  progress?: (line: string) => void;
}

export const DEFAULT_SOAK: SoakOptions = {
  minutes: 10, clients: 200, fullClients: 10, pods: 1000, waveSize: 100, rate: 50, pauseS: 5, restartEveryS: 3, sampleMs: 1000,
  maxHandleSlope: 10, maxFdSlope: 10, maxRssSlope: Infinity, settleTimeoutS: 30,
};

interface Sample { t: number; rssMiB: number; heapMiB: number; externalMiB: number; arrayBuffersMiB: number; fds: number; handles: number; connections: number }
interface Window { minute: number; latencyMs: Stats; loopLagMs: Stats; rssMiB: number; handles: number; fds: number }
interface Stats { p50: number; p99: number; max: number; n?: number }

export interface SoakResult {
  options: Omit<SoakOptions, 'progress'>;
  where: string;
  measuredS: number;
  warmupS: number;
  churn: { waves: number; created: number; deleted: number; opsPerSec: number };
  restarts: { resume: number; fresh: number };
  /** Creation → every client's onUpdates, for clients in sync at the time. */
  latencyMs: Stats & { n: number };
  loopLagMs: Stats;
  byMinute: Window[];
  rss: { startMiB: number; endMiB: number; peakMiB: number; slopeMiBPerMin: number };
  heap: { startMiB: number; endMiB: number; slopeMiBPerMin: number };
  /** Off-heap memory V8 knows of (Buffers and other ArrayBuffers are most of it). */
  external: { startMiB: number; endMiB: number; slopeMiBPerMin: number; arrayBuffersSlopeMiBPerMin: number };
  handles: { start: number; end: number; min: number; max: number; slopePerMin: number; byTypeStart: Record<string, number>; byTypeEnd: Record<string, number> };
  fds: { start: number; end: number; max: number; slopePerMin: number; limit: number };
  listeners: { start: { process: Record<string, number>; server: ServerListeners }; end: { process: Record<string, number>; server: ServerListeners } };
  warnings: { name: string; message: string }[];
  sync: { clients: number; inSync: number; checksumMatch: number; fullClients: number; fullMatch: number; serverCountsMatchDatastore: boolean; checksumMismatches: number; unplannedReconnects: number; settleMs: number; problems: string[] };
  server: { accepted: number; closedByReason: Record<string, number>; resyncsByMode: Record<string, number>; storeKeys: number; historyBytes: number };
  shutdown: { fdsBefore: number; fdsAfter: number; resourcesGrown: Record<string, [number, number]> };
  /** Every 10th sample, for plotting. */
  series: Sample[];
  failures: string[];
  ok: boolean;
}

interface Slot { client: SyncClient; syncer: SyncerType; node: string; full: boolean; expectedConnects: number }

const mib = (b: number) => round(b / 2 ** 20, 1);
const newHist = () => hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 2 });
const histMs = (h: hdr.Histogram): Stats & { n: number } => ({
  p50: round(h.getValueAtPercentile(50) / 1000, 2), p99: round(h.getValueAtPercentile(99) / 1000, 2), max: round(h.maxValue / 1000, 2), n: h.totalCount,
});
/** monitorEventLoopDelay records each interval of its timer, so the lag is what exceeds its resolution. */
const LAG_RESOLUTION_MS = 10;
const lagMs = (h: ReturnType<typeof monitorEventLoopDelay>): Stats => {
  const lag = (ns: number) => round(Math.max(0, ns / 1e6 - LAG_RESOLUTION_MS), 2);
  return { p50: lag(h.percentile(50)), p99: lag(h.percentile(99)), max: lag(h.max) };
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function labelled(m: { get(): Promise<{ values: { value: number; labels: Record<string, unknown> }[] }> }, label: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const v of (await m.get()).values) if (v.value) out[String(v.labels[label])] = v.value;
  return out;
}

export async function runSoak(opts: Partial<SoakOptions> = {}): Promise<SoakResult> {
  const o: SoakOptions = { ...DEFAULT_SOAK, ...opts };
  const say = o.progress ?? (() => {});
  const durationS = o.minutes * 60;
  const warmupS = o.warmupS ?? Math.min(60, Math.max(10, durationS * 0.2));
  const warnings: { name: string; message: string }[] = [];
  const onWarning = (w: Error) => warnings.push({ name: w.name, message: w.message });
  process.on('warning', onWarning);
  const pre = { fds: fdCount(), resources: resourceCounts() };

  const ds = new MemoryDatastore([...loadResources([DEMO]), ...seedPods(o.pods)]);
  const config: Config = {
    ...loadConfig({ env: {} }),
    serverHost: '127.0.0.1', serverPort: -1, healthHost: '127.0.0.1', healthPort: -1, prometheusMetricsHost: '127.0.0.1', prometheusMetricsPort: -1,
    // Clients verify their view this often: a divergence would show (and count) during the run.
    checksumIntervalSecs: 10,
  };
  let app: App | undefined;
  const slots: Slot[] = [];
  let unplannedFromReplaced = 0;
  const latency = newHist();
  let latencyWindow = newHist();
  const loopAll = monitorEventLoopDelay({ resolution: LAG_RESOLUTION_MS });
  const loopWindow = monitorEventLoopDelay({ resolution: LAG_RESOLUTION_MS });
  const rolling = new RollingDeployment(ds, { pods: o.pods, waveSize: o.waveSize, rate: o.rate, pauseMs: o.pauseS * 1000 });
  const restarts = { resume: 0, fresh: 0 };
  let restarting: Promise<void> | undefined;
  let running = true;
  let sampler: NodeJS.Timeout | undefined;

  const makeClient = (slot: Omit<Slot, 'client' | 'expectedConnects'>): SyncClient => {
    const holder: { c?: SyncClient } = {};
    const c = new SyncClient({
      url: `ws://127.0.0.1:${app!.ports.server}`, syncerType: slot.syncer, node: slot.node, keepValues: slot.full, clientName: 'soak',
      onUpdates: (updates) => {
        // Only live deltas: a snapshot or catch-up reports old creations.
        if (!holder.c?.isInSync) return;
        const now = nowUs();
        for (const u of updates) {
          if (u.bytes) stampsIn(u.bytes, (_k, _seq, ts) => { if (ts > 0) { latency.recordValue(Math.max(1, now - ts)); latencyWindow.recordValue(Math.max(1, now - ts)); } });
        }
      },
    });
    holder.c = c;
    c.start();
    return c;
  };

  try {
    app = await startApp(config, silentLogger, ds);
    const server = app.server;
    say(`soak: server on 127.0.0.1:${app.ports.server}, ${ds.size} keys; connecting ${o.clients} clients`);
    for (let i = 0; i < o.clients; i++) {
      const spec = { syncer: (i % 4 === 3 ? 'bgp' : 'felix') as SyncerType, node: `node-${i % 500}`, full: i < o.fullClients };
      slots.push({ ...spec, client: makeClient(spec), expectedConnects: 1 });
    }
    let giveUp: NodeJS.Timeout | undefined;
    const synced = await Promise.race([
      Promise.all(slots.map((s) => s.client.inSync())).then(() => true),
      new Promise<boolean>((r) => { giveUp = setTimeout(() => r(false), 120_000); }),
    ]);
    clearTimeout(giveUp);
    if (!synced) throw new Error('clients not in sync within 120 s of connecting');

    // ---- the measured run ----------------------------------------------------------------
    const samples: Sample[] = [];
    const byMinute: Window[] = [];
    const t0 = performance.now();
    const resourcesStart = resourceCounts();
    const listenersStart = { process: processListenerCounts(), server: serverListeners(server) };
    loopAll.enable();
    loopWindow.enable();
    rolling.start();
    const sample = () => {
      const m = process.memoryUsage();
      const s: Sample = {
        t: round((performance.now() - t0) / 1000, 2), rssMiB: mib(m.rss), heapMiB: mib(m.heapUsed), externalMiB: mib(m.external), arrayBuffersMiB: mib(m.arrayBuffers), fds: fdCount(),
        handles: total(resourceCounts()), connections: server.connections.size,
      };
      samples.push(s);
      if (s.t >= (byMinute.length + 1) * 60) {
        const w: Window = { minute: byMinute.length + 1, latencyMs: histMs(latencyWindow), loopLagMs: lagMs(loopWindow), rssMiB: s.rssMiB, handles: s.handles, fds: s.fds };
        byMinute.push(w);
        latencyWindow = newHist();
        loopWindow.reset();
        say(`soak: minute ${w.minute}/${o.minutes}: rss ${w.rssMiB} MiB, handles ${w.handles}, fds ${w.fds}, connections ${s.connections}, latency p50/p99 ${w.latencyMs.p50}/${w.latencyMs.p99} ms, loop lag p99 ${w.loopLagMs.p99} ms, ${rolling.created} pods created`);
      }
    };
    sample();
    sampler = setInterval(sample, o.sampleMs);
    if (o.restartEveryS > 0) {
      restarting = (async () => {
        let n = 0;
        while (running) {
          await sleep(o.restartEveryS * 1000);
          if (!running) break;
          const slot = slots[(n * 37) % slots.length]!;
          if (n % 2 === 0) {
            // The same client again: it resumes from its position.
            await slot.client.stop();
            slot.expectedConnects++;
            slot.client.start();
            restarts.resume++;
          } else {
            // A new agent in its place: a snapshot.
            await slot.client.stop();
            unplannedFromReplaced += slot.client.stats.connects - slot.expectedConnects;
            slot.client = makeClient(slot);
            slot.expectedConnects = 1;
            restarts.fresh++;
          }
          n++;
        }
      })();
    }
    while (performance.now() - t0 < durationS * 1000) await sleep(Math.min(1000, durationS * 1000 - (performance.now() - t0)));
    running = false;
    await restarting;
    await rolling.stop();
    clearInterval(sampler);
    sample();
    const measuredS = round((performance.now() - t0) / 1000, 1);
    loopAll.disable();
    loopWindow.disable();
    if (samples.at(-1)!.t > byMinute.length * 60 + 5) {
      byMinute.push({ minute: round(samples.at(-1)!.t / 60, 2), latencyMs: histMs(latencyWindow), loopLagMs: lagMs(loopWindow), rssMiB: samples.at(-1)!.rssMiB, handles: samples.at(-1)!.handles, fds: samples.at(-1)!.fds });
    }
    const resourcesEnd = resourceCounts();
    const listenersEnd = { process: processListenerCounts(), server: serverListeners(server) };

    // ---- the end state: every client holds the datastore's view ---------------------------
    const settleStart = performance.now();
    const serverView = (s: Slot) => app!.store.checksum(new ViewFilter(s.syncer, s.node));
    const agrees = (s: Slot) => {
      const want = serverView(s);
      const got = s.client.checksum();
      return s.client.isInSync && got.value === checksumHex(want.value) && got.count === want.count;
    };
    while (!slots.every(agrees) && performance.now() - settleStart < o.settleTimeoutS * 1000) await sleep(100);
    const settleMs = Math.round(performance.now() - settleStart);
    const problems: string[] = [];
    const views = new Map<string, number>();
    for (const s of slots) {
      const k = `${s.syncer}/${s.node}`;
      if (!views.has(k)) views.set(k, expectedView(ds, s.syncer, s.node).size);
    }
    const serverCountsMatchDatastore = slots.every((s) => serverView(s).count === views.get(`${s.syncer}/${s.node}`));
    if (!serverCountsMatchDatastore) problems.push('the server\'s view key counts differ from the datastore\'s');
    let fullMatch = 0;
    for (const [i, s] of slots.entries()) {
      if (!s.full) continue;
      try {
        assertClientMatches(s.client, expectedView(ds, s.syncer, s.node), `client ${i} (${s.syncer})`);
        fullMatch++;
      } catch (err) {
        if (problems.length < 10) problems.push((err as Error).message.split('\n')[0]!);
      }
    }
    for (const [i, s] of slots.entries()) if (!agrees(s) && problems.length < 10) problems.push(`client ${i} (${s.syncer}): checksum ${JSON.stringify(s.client.checksum())} vs server ${checksumHex(serverView(s).value)}/${serverView(s).count}, in sync ${s.client.isInSync}`);
    const sync = {
      clients: slots.length, inSync: slots.filter((s) => s.client.isInSync).length, checksumMatch: slots.filter(agrees).length,
      fullClients: slots.filter((s) => s.full).length, fullMatch, serverCountsMatchDatastore,
      checksumMismatches: slots.reduce((n, s) => n + s.client.stats.checksumMismatches, 0),
      unplannedReconnects: unplannedFromReplaced + slots.reduce((n, s) => n + s.client.stats.connects - s.expectedConnects, 0),
      settleMs, problems,
    };
    const metrics = app.metrics;
    const serverStats = {
      accepted: (await metrics.connectionsAccepted.get()).values[0]?.value ?? 0,
      closedByReason: await labelled(metrics.connectionsClosed, 'reason'),
      resyncsByMode: await labelled(metrics.resyncs, 'mode'),
      storeKeys: app.store.size, historyBytes: app.store.historyBytes,
    };

    // ---- shutdown releases everything -----------------------------------------------------
    await Promise.all(slots.map((s) => s.client.stop()));
    await app.close();
    app = undefined;
    let shutdown = { fdsBefore: pre.fds, fdsAfter: fdCount(), resourcesGrown: grown(pre.resources, resourceCounts(), 3) };
    for (const end = Date.now() + 10_000; (shutdown.fdsAfter > pre.fds + 5 || Object.keys(shutdown.resourcesGrown).length) && Date.now() < end;) {
      await sleep(100);
      shutdown = { fdsBefore: pre.fds, fdsAfter: fdCount(), resourcesGrown: grown(pre.resources, resourceCounts(), 3) };
    }

    // ---- figures and verdict --------------------------------------------------------------
    const measured = samples.filter((s) => s.t >= warmupS);
    const ts = measured.map((s) => s.t);
    const perMin = (f: (s: Sample) => number) => round(slope(ts, measured.map(f)) * 60, 2);
    const handles = samples.map((s) => s.handles);
    const result: SoakResult = {
      options: { ...o, progress: undefined } as Omit<SoakOptions, 'progress'>,
      where: 'server and clients in one process (loopback)',
      measuredS, warmupS,
      churn: { waves: rolling.waves, created: rolling.created, deleted: rolling.deleted, opsPerSec: round((rolling.created + rolling.deleted) / measuredS, 1) },
      restarts,
      latencyMs: histMs(latency),
      loopLagMs: lagMs(loopAll),
      byMinute,
      rss: { startMiB: samples[0]!.rssMiB, endMiB: samples.at(-1)!.rssMiB, peakMiB: Math.max(...samples.map((s) => s.rssMiB)), slopeMiBPerMin: perMin((s) => s.rssMiB) },
      heap: { startMiB: samples[0]!.heapMiB, endMiB: samples.at(-1)!.heapMiB, slopeMiBPerMin: perMin((s) => s.heapMiB) },
      external: { startMiB: samples[0]!.externalMiB, endMiB: samples.at(-1)!.externalMiB, slopeMiBPerMin: perMin((s) => s.externalMiB), arrayBuffersSlopeMiBPerMin: perMin((s) => s.arrayBuffersMiB) },
      handles: { start: handles[0]!, end: handles.at(-1)!, min: Math.min(...handles), max: Math.max(...handles), slopePerMin: perMin((s) => s.handles), byTypeStart: resourcesStart, byTypeEnd: resourcesEnd },
      fds: { start: samples[0]!.fds, end: samples.at(-1)!.fds, max: Math.max(...samples.map((s) => s.fds)), slopePerMin: perMin((s) => s.fds), limit: fdLimit() },
      listeners: { start: listenersStart, end: listenersEnd },
      warnings,
      sync,
      server: serverStats,
      shutdown,
      series: samples.filter((_, i) => i % 10 === 0 || i === samples.length - 1),
      failures: [],
      ok: false,
    };
    result.failures = verdict(result, o);
    result.ok = result.failures.length === 0;
    return result;
  } finally {
    running = false;
    clearInterval(sampler);
    loopAll.disable();
    loopWindow.disable();
    await rolling.stop();
    await restarting?.catch(() => {});
    if (app) {
      await Promise.all(slots.map((s) => s.client.stop()));
      await app.close();
    }
    process.off('warning', onWarning);
  }
}

/** The failure conditions; empty when the soak passed. */
export function verdict(r: SoakResult, o: SoakOptions): string[] {
  const f: string[] = [];
  const maxListeners = r.warnings.filter((w) => w.name === 'MaxListenersExceededWarning');
  if (maxListeners.length) f.push(`MaxListenersExceededWarning ×${maxListeners.length}: ${maxListeners[0]!.message}`);
  if (r.handles.slopePerMin > o.maxHandleSlope) f.push(`active handles grow ${r.handles.slopePerMin}/min (limit ${o.maxHandleSlope}/min; ${r.handles.start} → ${r.handles.end})`);
  if (r.fds.slopePerMin > o.maxFdSlope) f.push(`open fds grow ${r.fds.slopePerMin}/min (limit ${o.maxFdSlope}/min; ${r.fds.start} → ${r.fds.end})`);
  if (r.rss.slopeMiBPerMin > o.maxRssSlope) f.push(`RSS grows ${r.rss.slopeMiBPerMin} MiB/min (limit ${o.maxRssSlope})`);
  const s = r.sync;
  if (s.inSync !== s.clients || s.checksumMatch !== s.clients || s.fullMatch !== s.fullClients || !s.serverCountsMatchDatastore) {
    f.push(`clients out of sync at the end: ${s.inSync}/${s.clients} in sync, ${s.checksumMatch}/${s.clients} checksums equal the server's, ${s.fullMatch}/${s.fullClients} caches equal the datastore's${s.problems.length ? `; ${s.problems.join('; ')}` : ''}`);
  }
  if (s.checksumMismatches > 0) f.push(`${s.checksumMismatches} checksum mismatches during the run`);
  if (s.unplannedReconnects !== 0) f.push(`${s.unplannedReconnects} reconnects nobody asked for`);
  const ls = r.listeners;
  const grewProcess = grown(ls.start.process, ls.end.process, 0);
  if (Object.keys(grewProcess).length) f.push(`process listeners grew: ${JSON.stringify(grewProcess)}`);
  const grewServer = { ...grown(ls.start.server.http, ls.end.server.http, 0), ...grown(ls.start.server.wss, ls.end.server.wss, 0), ...grown(ls.start.server.perSocketMax, ls.end.server.perSocketMax, 0) };
  if (Object.keys(grewServer).length || ls.end.server.storeListeners > ls.start.server.storeListeners) f.push(`server listeners grew: ${JSON.stringify(grewServer)}, store ${ls.start.server.storeListeners} → ${ls.end.server.storeListeners}`);
  if (r.shutdown.fdsAfter > r.shutdown.fdsBefore + 5 || Object.keys(r.shutdown.resourcesGrown).length) {
    f.push(`not everything released at shutdown: fds ${r.shutdown.fdsBefore} → ${r.shutdown.fdsAfter}, grown ${JSON.stringify(r.shutdown.resourcesGrown)}`);
  }
  return f;
}

const countBy = (xs: string[]): Record<string, number> => {
  const out: Record<string, number> = {};
  for (const x of xs) out[x] = (out[x] ?? 0) + 1;
  return out;
};

/** A few lines for people. */
export function summary(r: SoakResult): string {
  return [
    `soak ${r.ok ? 'PASSED' : 'FAILED'}: ${r.measuredS} s, ${r.sync.clients} clients (${r.where}), ${r.churn.waves} waves: ${r.churn.created} pods created, ${r.churn.deleted} deleted (${r.churn.opsPerSec}/s); ${r.restarts.resume} resumes + ${r.restarts.fresh} fresh clients`,
    `  latency create→client p50 ${r.latencyMs.p50} ms, p99 ${r.latencyMs.p99} ms, max ${r.latencyMs.max} ms (${r.latencyMs.n} deliveries); event-loop lag p50 ${r.loopLagMs.p50} ms, p99 ${r.loopLagMs.p99} ms, max ${r.loopLagMs.max} ms`,
    `  RSS ${r.rss.startMiB} → ${r.rss.endMiB} MiB (peak ${r.rss.peakMiB}), slope ${r.rss.slopeMiBPerMin} MiB/min after ${r.warmupS} s warm-up; heap used ${r.heap.startMiB} → ${r.heap.endMiB} MiB, ${r.heap.slopeMiBPerMin} MiB/min; external ${r.external.startMiB} → ${r.external.endMiB} MiB, ${r.external.slopeMiBPerMin} MiB/min`,
    `  handles ${r.handles.start} → ${r.handles.end} (min ${r.handles.min}, max ${r.handles.max}), ${r.handles.slopePerMin}/min; fds ${r.fds.start} → ${r.fds.end} (max ${r.fds.max}, limit ${r.fds.limit}), ${r.fds.slopePerMin}/min`,
    `  end: ${r.sync.inSync}/${r.sync.clients} in sync, ${r.sync.checksumMatch} checksums equal, ${r.sync.fullMatch}/${r.sync.fullClients} full caches equal the datastore, ${r.sync.checksumMismatches} mismatches, ${r.sync.unplannedReconnects} unplanned reconnects (settled in ${r.sync.settleMs} ms)`,
    `  warnings: ${r.warnings.length ? Object.entries(countBy(r.warnings.map((w) => w.name))).map(([n, c]) => `${n} ×${c}`).join(', ') : 'none'}; shutdown fds ${r.shutdown.fdsBefore} → ${r.shutdown.fdsAfter}`,
    ...r.failures.map((x) => `  FAIL: ${x}`),
  ].join('\n');
}
