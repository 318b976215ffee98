// cluster: N simulated nodes, each with its four agents (felix, bgp, tunnel-ip-allocation and
// node-status, the last two scoped to the node), while the writer plays a busy cluster into the
// datastore (bench/lib/cluster-model.ts). Most agents are lean protocol readers, cheap enough
// that the load generator stays well below the server; the agents of a few probe nodes are the
// real client library, whose latency is reported and whose caches must equal the datastore's view
// at the end. Per run: serving CPU per delivered update, the probes' latency, serving RSS and RSS
// per connection, upstream watches, the generator's CPU. Then, for calico-fanout, a reconnect
// storm: a second replica starts, the first is killed, and every agent reconnects to the second
// at once; time until all are in sync.
//
//   fanout      calico-fanout serving etcd, the cluster written into etcd
//   raw-batch   the raw server (bench/systems/raw-server.ts) making the same cluster's changes
//               itself and serving each view its frames: the transport's ceiling
//   fanout-tier2  two tiers: a root calico-fanout serving etcd, two calico-fanout servers below it
//               reading its mirror view (bench/lib/tiers.ts), the agents split between those two;
//               with fanout in the same command, what a tier adds. No storm.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as hdr from 'hdr-histogram-js';
import { putAll } from '../../src/datastore/etcd.js';
import { freePort } from '../../test/support/metrics.js';
import type { ClusterCommand, ClusterProgress, ClusterReport, StormAgent } from '../cluster-worker.js';
import { matches, type ProbeCheck } from '../lib/probe-check.js';
import type { WorkerCommand } from '../agent-worker.js';
import { ClusterModel, DEFAULT_SHAPE, STATUS_PERIOD_MS, type ClusterShape } from '../lib/cluster-model.js';
import { loadCluster, playCluster } from '../lib/cluster-writer.js';
import { argvOf, isReady, metricSums, metricsPortOf, withPorts } from '../lib/fanout-process.js';
import { nowUs } from '../lib/payload.js';
import { cpuSeconds, peakRssMiB, start, waitUntil } from '../lib/procs.js';
import { startDownstreams } from '../lib/tiers.js';
import { pollDelivered, type Meter } from '../lib/progress.js';
import { median } from '../lib/report.js';
import { rssLine, sampleRss, type RssSeries } from '../lib/rss.js';
import { forkWorkers, nextMessage, pin, serve, stopWorkers, Worker, type SteadyOptions } from './steady.js';

export const CLUSTER_SYSTEMS = ['fanout', 'raw-batch', 'fanout-tier2'] as const;
export type ClusterSystem = (typeof CLUSTER_SYSTEMS)[number];

export interface ClusterOptions {
  nodes: number;
  /** Cluster changes (datastore writes) per second, besides each node's status every 10 s. */
  rate: number;
  durationS: number;
  /** A pass of unstamped changes first (the first frames' one-time costs), then a second's pause; 0: none. */
  warmupS: number;
  podsPerNode: number;
  /** Nodes whose four agents are full client libraries (at least one per worker). */
  probeNodes: number;
  workers: number;
  /** Lean readers each worker connects at a time (the next wave once they are in sync). */
  wave: number;
  compression: 'brotli' | 'none';
  serverCpus: string;
  clientCpus: string;
  /** Cores for this process, which writes to etcd; undefined: the agents'. */
  writerCpus?: string;
  /** After the measured pass: kill the replica, every agent reconnects to a second one (fanout). */
  storm: boolean;
  /** Bound on connecting, on the drain after the last write, and on the storm. */
  timeoutS: number;
  progress?: (msg: string) => void;
  meter?: Meter;
}

type Percentiles = { p50: number; p90: number; p99: number; max: number };

/** One serving process over the measured pass and drain. */
export interface ClusterProcess { cpuS: number; cores: number; rssMedianMiB: number; rssMaxMiB: number; peakRssMiB: number }

export interface ClusterStorm {
  /** The second replica's start → ready (it lists the cluster from etcd). */
  replicaReadyS: number;
  /** SIGKILL of the first replica → the last agent in sync on the second. */
  allInSyncS: number;
  /** Per agent: lost the first replica → in sync on the second. */
  agentS: { p50: number; p99: number; max: number };
  /** How the agents synced with the second replica. */
  synced: { digest: number; snapshot: number; resume: number; unknown: number };
  /** Agents that needed more than one connection to get there (refused, timed out, closed midway). */
  retried: number;
  /**
   * Connection attempts the kernel dropped because a listen queue was full, machine-wide, over the
   * storm (TcpExtListenOverflows): each costs its client a SYN retransmission, 1 s and then doubling.
   */
  listenOverflows: number;
  /** CPU over the storm: etcd and the second replica. */
  cpuS: Record<string, number>;
  generatorCpuS: number;
  /** The second replica's peak RSS (VmHWM: its start included). */
  peakRssMiB: number;
}

export interface ClusterResult {
  system: ClusterSystem;
  nodes: number;
  /** Agents: four per node. */
  connections: number;
  probes: number;
  rate: number;
  durationS: number;
  podsPerNode: number;
  /** Keys the cluster holds at the start (etcd, IPAM handles included). */
  initialKeys: number;
  /** Datastore writes in the measured pass (cluster changes and statuses). */
  writes: number;
  connectS: number;
  /** Items delivered to all agents in the measured pass and the drain. */
  delivered: number;
  deliveredPerSec: number;
  deliveredByView: Record<string, number>;
  /** Frames received in the measured pass and the drain, by view: with deliveredByView, how well changes are batched. */
  framesByView: Record<string, number>;
  latencyMs: { probes: Percentiles; lean: Percentiles };
  /** fanout: stamp → etcd's answer for the writer's requests (what of the latency is the datastore's and the writer's). */
  commitMs: { p50: number; p99: number; max: number } | null;
  /**
   * fanout: calico-fanout's own counters over the measured pass and drain (datastore updates in,
   * coalesced, delta frames built and written, bytes written), and its event loop's delay p99 and
   * max over the pass (ms; prom-client resets them at each scrape, and one came just before).
   */
  serverMetrics: Record<string, number> | null;
  /** The last write → every agent holding the marker written after it. */
  drainS: number;
  /** Agents that held the marker when the drain ended (all, unless it timed out). */
  markerSeen: number;
  cpuS: { serving: Record<string, number>; servingTotal: number; server: number; generator: number; writer: number };
  /** The serving side's CPU per item delivered, µs. */
  servingCpuUsPerDelivered: number;
  /** The serving process alone (calico-fanout, or the raw server), in cores over the measured pass and drain. */
  serverCores: number;
  /** The whole serving side (etcd + calico-fanout, or the raw server), in cores. */
  servingCores: number;
  generatorCores: number;
  /** The machine's 1-minute load average when the run began: other work on a shared machine shows here. */
  loadAverage: number;
  rss: { beforeClientsMiB: number; measuredMaxMiB: number; measuredMedianMiB: number; peakMiB: number; kibPerConnection: number };
  upstreamWatches: number | null;
  probeChecks: ProbeCheck[];
  probesMatch: boolean;
  /** Connects beyond each agent's first, over the measured pass. */
  reconnects: number;
  protocolErrors: number;
  /** Lean readers' connections closed, by the server's close code ('none': no close frame), and goaways they got. */
  closes: Record<string, number>;
  goaways: number;
  probeHistogram: string;
  leanHistogram: string;
  rssSeries: RssSeries;
  /** Every serving process (etcd, each calico-fanout, or the raw server) on its own. */
  processes: Record<string, ClusterProcess>;
  /**
   * fanout-tier2: the root's open connections after the drain (its /metrics), which are the
   * tier-2 servers' alone. The server figures above (server cores, RSS, counters) are the two
   * tier-2 servers' together.
   */
  rootConnections: number | null;
  storm: ClusterStorm | null;
}

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const WORKER = fileURLToPath(new URL('../cluster-worker.ts', import.meta.url));
const r2 = (n: number) => Math.round(n * 100) / 100;
const ms = (us: number) => Math.round(us / 10) / 100;
const percentiles = (h: hdr.Histogram): Percentiles => ({ p50: ms(h.getValueAtPercentile(50)), p90: ms(h.getValueAtPercentile(90)), p99: ms(h.getValueAtPercentile(99)), max: ms(h.maxValue) });

const ask = <T>(w: Worker, c: ClusterCommand) => w.ask<T>(c as unknown as WorkerCommand);
const askAll = <T>(ws: Worker[], c: ClusterCommand | ((i: number) => ClusterCommand)) => Promise.all(ws.map((w, i) => ask<T>(w, typeof c === 'function' ? c(i) : c)));

export const shapeOf = (o: Pick<ClusterOptions, 'nodes' | 'podsPerNode'>): ClusterShape => ({ ...DEFAULT_SHAPE, nodes: o.nodes, podsPerNode: o.podsPerNode });

/** Node i's agents run in worker i mod W; the probe nodes come first, so every worker holds some (its lean readers' digest donors). */
export function layout(o: Pick<ClusterOptions, 'nodes' | 'probeNodes' | 'workers'>): { nodes: string[][]; probeNodes: string[] } {
  const probes = Math.min(o.nodes, Math.max(o.probeNodes, o.workers));
  const nodes = Array.from({ length: o.workers }, () => [] as string[]);
  for (let i = 0; i < o.nodes; i++) nodes[i % o.workers]!.push(ClusterModel.nodeName(i));
  return { nodes, probeNodes: Array.from({ length: probes }, (_, i) => ClusterModel.nodeName(i)) };
}

function startWorkers(o: ClusterOptions): Worker[] {
  return forkWorkers(WORKER, o.workers, o.clientCpus);
}

/** The median of an RSS process's samples over half a second. */
async function settledRss(pid: number): Promise<number> {
  const s = sampleRss(() => [{ name: 'p', pid }], 100);
  await new Promise((r) => setTimeout(r, 500));
  return median(s.stop().mib.p!);
}

export async function runCluster(system: ClusterSystem, o: ClusterOptions): Promise<ClusterResult> {
  const cleanup: (() => Promise<void>)[] = [];
  const say = o.progress ?? (() => {});
  const timeoutMs = o.timeoutS * 1000;
  const model = new ClusterModel(shapeOf(o), o.rate);
  const { nodes: shares, probeNodes } = layout(o);
  const connections = o.nodes * 4;
  const loadAverage = loadavg()[0]!;
  const tmp = mkdtempSync(join(tmpdir(), 'bench-cluster-'));
  cleanup.push(async () => rmSync(tmp, { recursive: true, force: true }));
  try {
    say(`${system}: starting the serving side with a cluster of ${o.nodes} nodes`);
    const tiered = system === 'fanout-tier2';
    let initialKeys = 0;
    const serveOpts: SteadyOptions = {
      clients: connections, rate: o.rate, durationS: o.durationS, keys: 0, workers: o.workers, mode: 'light', serverCpus: o.serverCpus, clientCpus: o.clientCpus, drainTimeoutS: o.timeoutS,
      // One replica takes every agent here (and a few more, the probes reconnecting); a root
      // serves the tier below its mirror view.
      fanoutEnv: {
        TYPHA_MAXCONNECTIONSUPPERLIMIT: String(connections + 1000), TYPHA_MAXCONNECTIONSLOWERLIMIT: String(connections + 1000),
        ...(tiered ? { TYPHA_ALLOWUNAUTHENTICATEDMIRROR: 'true' } : {}),
      },
      load: async (client) => { initialKeys = await loadCluster(client, model); },
    };
    const s = await serve(tiered ? 'fanout' : system, serveOpts, cleanup);
    if (s.raw) {
      s.raw.send({ cmd: 'load', source: 'cluster', shape: shapeOf(o), rate: o.rate });
      await nextMessage(s.raw, 'raw server');
      initialKeys = new Set(new ClusterModel(shapeOf(o), o.rate).initial().map((w) => w.key)).size;
    }
    const rootName = s.raw ? 'server' : 'calico-fanout';
    const rootPid = s.procs.find((p) => p.name === rootName)!.pid();
    if (tiered) say(`${system}: starting two calico-fanout servers below the root`);
    const downstreams = tiered
      ? await startDownstreams({ pid: rootPid, url: s.urls[0]! }, ['calico-fanout tier-2 a', 'calico-fanout tier-2 b'], { cpus: o.serverCpus, env: serveOpts.fanoutEnv!, timeoutMs }, cleanup)
      : [];
    const procs = [...s.procs, ...downstreams.map((d) => ({ name: d.name, pid: () => d.pid }))];
    const pids = () => procs.map((p) => ({ name: p.name, pid: p.pid() }));
    // The processes the agents connect to: the "server" of the figures below.
    const servers = tiered ? downstreams.map((d) => d.name) : [rootName];
    const pidOf = (name: string) => pids().find((p) => p.name === name)!.pid;
    // Worker i's agents on tier-2 server i mod 2: with an even number of workers, node i's too.
    const agentUrls = (i: number) => (tiered ? [downstreams[i % downstreams.length]!.url] : urls);
    // The writer (an etcd3 client, every write its own request: ~0.5 ms of CPU each) goes with the
    // agents by default: on the serving core it took a fifth of it from calico-fanout and etcd.
    pin(process.pid, o.writerCpus ?? o.clientCpus);
    const rssBefore = (await Promise.all(servers.map((n) => settledRss(pidOf(n))))).reduce((a, b) => a + b, 0);

    // The second replica of the storm: its URL is the agents' second from the start.
    const spare = o.storm && system === 'fanout' ? { server: await freePort(), health: await freePort() } : undefined;
    const urls = spare ? [...s.urls, `ws://127.0.0.1:${spare.server}`] : s.urls;
    const workers = startWorkers(o);
    cleanup.push(() => stopWorkers(workers));
    say(`${system}: connecting ${connections} agents (${probeNodes.length * 4} probes) from ${o.workers} processes`);
    const c0 = nowUs();
    await askAll(workers, (i) => ({ cmd: 'start', urls: agentUrls(i), nodes: shares[i]!, probeNodes, compression: o.compression, wave: o.wave, timeoutMs }));
    const connectS = Math.round((nowUs() - c0) / 1e4) / 100;

    // The raw server makes the changes itself; for fanout this process writes them to etcd.
    const play = async (durationS: number, stamped: boolean): Promise<{ writes: number; lastSeq: number; commitMs: ClusterResult['commitMs'] }> => {
      if (s.raw) {
        const done = nextMessage<{ written: number; lastSeq: number }>(s.raw, 'raw server');
        s.raw.send({ cmd: 'play', durationS, stamped });
        const d = await done;
        return { writes: d.written, lastSeq: d.lastSeq, commitMs: null };
      }
      const r = await playCluster(s.etcd!.client, model, { durationS, stamped });
      if (r.putErrors) throw new Error(`${r.putErrors} of ${r.writes} writes to etcd failed`);
      return { writes: r.writes, lastSeq: r.lastSeq, commitMs: r.commitMs };
    };
    if (o.warmupS > 0) {
      say(`${system}: warm-up`);
      await play(o.warmupS, false);
      await new Promise((r) => setTimeout(r, 1000));
    }

    // calico-fanout's counters, summed over the servers the agents use (their event-loop delays: the worst).
    const metricsPorts = s.raw ? [] : servers.map((n) => metricsPortOf(pidOf(n)));
    const scrape = async () => {
      const each = await Promise.all(metricsPorts.map((port) => metricSums(port, SERVER_METRICS).catch(() => Object.fromEntries(SERVER_METRICS.map((n) => [n, NaN])))));
      return Object.fromEntries(SERVER_METRICS.map((n) => [n, each.map((e) => e[n]!).reduce((a, b) => (GAUGES.has(n) ? Math.max(a, b) : a + b))]));
    };
    const metrics0 = metricsPorts.length ? await scrape() : undefined;
    const generatorCpu = () => workers.reduce((n, w) => n + cpuSeconds(w.child.pid!), 0);
    const cpu0 = Object.fromEntries(pids().map((p) => [p.name, cpuSeconds(p.pid)]));
    const gen0 = generatorCpu();
    const writer0 = process.cpuUsage();
    await askAll(workers, { cmd: 'measure', on: true });
    const rssSampler = sampleRss(pids);
    const t0 = nowUs();
    say(`${system}: ${o.rate} changes/s and ${Math.round((o.nodes * 1000) / STATUS_PERIOD_MS)} statuses/s for ${o.durationS} s to ${connections} agents`);
    o.meter?.phase(`${system} N=${o.nodes} measured`);
    const poll = pollDelivered(o.meter, async () => (await askAll<ClusterProgress>(workers, { cmd: 'progress' })).reduce((n, p) => n + p.delivered, 0));
    const { writes, lastSeq, commitMs } = await play(o.durationS, true);
    const lastPutAt = nowUs();
    await poll.stop();

    // Drain: a marker every agent sees, written after everything else (a burst of a status per
    // node, kept out of the latency).
    await askAll(workers, { cmd: 'fence', seq: lastSeq + 1 });
    let markerSeq: number;
    if (s.raw) {
      const m = nextMessage<{ firstSeq: number }>(s.raw, 'raw server');
      s.raw.send({ cmd: 'marker' });
      markerSeq = (await m).firstSeq;
    } else {
      const marker = model.marker(nowUs());
      markerSeq = model.lastSeq - marker.length + 1;
      await putAll(s.etcd!.client, marker);
    }
    o.meter?.phase(`${system} N=${o.nodes} drain`, connections);
    let progress: ClusterProgress[] = [];
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      progress = await askAll<ClusterProgress>(workers, { cmd: 'progress', markerSeq });
      const seen = progress.reduce((n, p) => n + p.markerSeen, 0);
      o.meter?.delivered(seen);
      if (seen >= connections || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const tEnd = nowUs();
    await askAll(workers, { cmd: 'measure', on: false });
    const rssSeries = rssSampler.stop();
    const cpu1 = Object.fromEntries(pids().map((p) => [p.name, r2(cpuSeconds(p.pid) - cpu0[p.name]!)]));
    const generator = r2(generatorCpu() - gen0);
    const writerUsage = process.cpuUsage(writer0);
    const peaks = Object.fromEntries(pids().map((p) => [p.name, peakRssMiB(p.pid)]));
    const watches = await s.watches();
    const metrics1 = metricsPorts.length ? await scrape() : undefined;
    const rootConnections = tiered ? (await metricSums(metricsPortOf(rootPid), ['typha_connections_active']))['typha_connections_active']! : null;
    const serverMetrics = metrics0 && metrics1
      ? Object.fromEntries(SERVER_METRICS.map((n) => [n, GAUGES.has(n) ? r2(metrics1[n]! * 1000) : metrics1[n]! - metrics0[n]!]))
      : null;
    const reports = await askAll<ClusterReport>(workers, { cmd: 'report' });

    say(`${system}: checking the probes' caches against the datastore`);
    const dump = join(tmp, 'content.json');
    if (s.raw) {
      const d = nextMessage(s.raw, 'raw server');
      s.raw.send({ cmd: 'dump', path: dump });
      await d;
    } else {
      const all = await s.etcd!.client.getAll().prefix('/calico/').strings();
      writeFileSync(dump, JSON.stringify(Object.entries(all).map(([k, v]) => [k, JSON.parse(v)])));
    }
    const probeChecks = (await askAll<{ probes: ProbeCheck[] }>(workers, { cmd: 'verify', path: dump })).flatMap((v) => v.probes);

    const storm = spare ? await stormOf({ o, spare, env: serveOpts.fanoutEnv!, workers, cleanup, say, etcdPid: s.etcd!.pid, fanoutPid: rootPid, generatorCpu }) : null;

    const merge = (pick: (r: ClusterReport) => string) => {
      const h = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 2 });
      for (const r of reports) h.add(hdr.decodeFromCompressedBase64(pick(r)));
      return h;
    };
    const probeH = merge((r) => r.probeHistogram);
    const leanH = merge((r) => r.leanHistogram);
    const deliveredByView: Record<string, number> = {};
    for (const r of reports) for (const [v, n] of Object.entries(r.deliveredByView)) deliveredByView[v] = (deliveredByView[v] ?? 0) + n;
    const delivered = Object.values(deliveredByView).reduce((a, b) => a + b, 0);
    const framesByView: Record<string, number> = {};
    for (const r of reports) for (const [v, n] of Object.entries(r.framesByView)) framesByView[v] = (framesByView[v] ?? 0) + n;
    const servingTotal = r2(Object.values(cpu1).reduce((a, b) => a + b, 0));
    const seconds = (tEnd - t0) / 1e6;
    const measured = rssLine(rssSeries, servers).filter(Number.isFinite);
    const measuredMedian = median(measured);
    const serverCpu = r2(servers.reduce((n, name) => n + cpu1[name]!, 0));
    const processes = Object.fromEntries(Object.entries(cpu1).map(([name, cpu]): [string, ClusterProcess] => {
      const line = rssLineOf(rssSeries, name);
      return [name, { cpuS: cpu, cores: r2(cpu / seconds), rssMedianMiB: r2(median(line)), rssMaxMiB: r2(Math.max(...line)), peakRssMiB: r2(peaks[name]!) }];
    }));
    return {
      system, nodes: o.nodes, connections, probes: probeNodes.length * 4, rate: o.rate, durationS: o.durationS, podsPerNode: o.podsPerNode, initialKeys,
      writes, connectS, delivered, deliveredPerSec: Math.round(delivered / seconds), deliveredByView, framesByView,
      latencyMs: { probes: percentiles(probeH), lean: percentiles(leanH) },
      commitMs, serverMetrics, drainS: Math.round((tEnd - lastPutAt) / 1e4) / 100,
      markerSeen: progress.reduce((n, p) => n + p.markerSeen, 0),
      cpuS: { serving: cpu1, servingTotal, server: serverCpu, generator, writer: r2((writerUsage.user + writerUsage.system) / 1e6) },
      servingCpuUsPerDelivered: delivered ? r2((servingTotal * 1e6) / delivered) : NaN,
      serverCores: r2(serverCpu / seconds), servingCores: r2(servingTotal / seconds), generatorCores: r2(generator / seconds), loadAverage,
      rss: {
        beforeClientsMiB: r2(rssBefore), measuredMaxMiB: r2(Math.max(...measured)), measuredMedianMiB: r2(measuredMedian), peakMiB: r2(servers.reduce((n, name) => n + peaks[name]!, 0)),
        kibPerConnection: r2(((measuredMedian - rssBefore) * 1024) / connections),
      },
      upstreamWatches: s.raw ? null : watches,
      probeChecks, probesMatch: probeChecks.length > 0 && probeChecks.every(matches),
      reconnects: reports.reduce((n, r) => n + r.connects - r.agents, 0),
      protocolErrors: reports.reduce((n, r) => n + r.protocolErrors, 0),
      closes: reports.reduce((acc, r) => { for (const [c, n] of Object.entries(r.closes)) acc[c] = (acc[c] ?? 0) + n; return acc; }, {} as Record<string, number>),
      goaways: reports.reduce((n, r) => n + r.goaways, 0),
      probeHistogram: hdr.encodeIntoCompressedBase64(probeH), leanHistogram: hdr.encodeIntoCompressedBase64(leanH),
      rssSeries, processes, rootConnections, storm,
    };
  } finally {
    for (const c of cleanup.reverse()) await c().catch(() => {});
  }
}

/** The kernel's count of connections dropped at a full listen queue, machine-wide (NaN where /proc does not say). */
function listenOverflows(): number {
  const lines = readFileSync('/proc/net/netstat', 'utf8').split('\n').filter((l) => l.startsWith('TcpExt:'));
  if (lines.length < 2) return NaN;
  const [names, values] = lines.map((l) => l.trim().split(/\s+/));
  return Number(values![names!.indexOf('ListenOverflows')]);
}

/** calico-fanout's counters read before and after the measured pass; the event loop's delays (gauges) once, after. */
const SERVER_METRICS = [
  'calico_fanout_datastore_updates_total', 'calico_fanout_updates_coalesced_total', 'calico_fanout_delta_frames_built_total',
  'calico_fanout_frames_sent_total', 'calico_fanout_bytes_sent_total', 'nodejs_eventloop_lag_p99_seconds', 'nodejs_eventloop_lag_max_seconds',
];
const GAUGES = new Set(['nodejs_eventloop_lag_p99_seconds', 'nodejs_eventloop_lag_max_seconds']);

function rssLineOf(s: RssSeries, name: string): number[] {
  return (s.mib[name] ?? []).filter(Number.isFinite);
}

interface StormRun {
  o: ClusterOptions;
  /** The second replica's ports, chosen before the agents started (they hold its URL). */
  spare: { server: number; health: number };
  env: Record<string, string>;
  workers: Worker[];
  cleanup: (() => Promise<void>)[];
  say: (m: string) => void;
  etcdPid: number;
  fanoutPid: number;
  generatorCpu: () => number;
}

/**
 * A second replica starts on its own ports (the agents have known its URL from the start, as
 * they would find it through the Service) and becomes ready; then the first is killed outright
 * (a node lost, a crashed pod): every agent reconnects at once, to the second, and resyncs there.
 */
async function stormOf(r: StormRun): Promise<ClusterStorm> {
  const { o, workers } = r;
  const timeoutMs = o.timeoutS * 1000;
  const argv = withPorts(argvOf(r.fanoutPid), r.spare);
  const health = r.spare.health;
  r.say('fanout: storm: starting a second replica');
  const started = nowUs();
  const next = start('calico-fanout', argv[0]!, argv.slice(1), { cpus: o.serverCpus, cwd: ROOT, env: { ...process.env, ...r.env } });
  // SIGINT: closes at once (SIGTERM would drain the connected agents one a second).
  r.cleanup.push(() => next.stop('SIGINT'));
  await waitUntil(() => isReady(health), 'the second calico-fanout ready', timeoutMs);
  const replicaReadyS = Math.round((nowUs() - started) / 1e3) / 1e3;
  await askAll(workers, { cmd: 'arm' });
  const etcd0 = cpuSeconds(r.etcdPid);
  const next0 = cpuSeconds(next.pid);
  const gen0 = r.generatorCpu();
  r.say(`fanout: storm: killing the first replica; ${o.nodes * 4} agents reconnect`);
  const overflows0 = listenOverflows();
  const t0 = nowUs();
  process.kill(r.fanoutPid, 'SIGKILL');
  const agents = (await askAll<{ agents: StormAgent[] }>(workers, { cmd: 'storm', timeoutMs })).flatMap((x) => x.agents);
  const overflows = listenOverflows() - overflows0;
  const cpuS = { etcd: r2(cpuSeconds(r.etcdPid) - etcd0), 'calico-fanout': r2(cpuSeconds(next.pid) - next0) };
  const per = agents.map((a) => (a.doneAt - a.leftAt) / 1e6).sort((a, b) => a - b);
  const at = (q: number) => Math.round(per[Math.min(per.length - 1, Math.floor(q * per.length))]! * 1000) / 1000;
  const synced = { digest: 0, snapshot: 0, resume: 0, unknown: 0 };
  for (const a of agents) synced[a.mode]++;
  return {
    replicaReadyS, allInSyncS: Math.round((Math.max(...agents.map((a) => a.doneAt)) - t0) / 1e3) / 1e3,
    agentS: { p50: at(0.5), p99: at(0.99), max: at(1) }, synced, retried: agents.filter((a) => a.connects > 1).length, listenOverflows: overflows, cpuS, generatorCpuS: r2(r.generatorCpu() - gen0), peakRssMiB: r2(peakRssMiB(next.pid)),
  };
}
