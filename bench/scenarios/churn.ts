// churn: a rolling deployment on etcd. In waves, the oldest pods' workload endpoints are deleted
// and as many are created under new names. Measures how fast creations reach every client and
// checks that at the end every client's view of the churned keys is etcd's: deleted keys gone,
// created keys present with their last seq. Systems served by etcd only (the raw server does not
// delete).
import * as hdr from 'hdr-histogram-js';
import type { Etcd3 } from 'etcd3';
import type { WorkerProgress, WorkerReport } from '../agent-worker.js';
import { indexOfKey, nowUs, PREFIX, stampsIn } from '../lib/payload.js';
import { cpuSeconds, peakRssMiB } from '../lib/procs.js';
import { pollDelivered } from '../lib/progress.js';
import { sampleRss, type RssSeries } from '../lib/rss.js';
import { writeChurn, writeSteady } from '../lib/writer.js';
import { pin, serve, startWorkers, stopWorkers, type SteadyOptions } from './steady.js';

export const CHURN_SYSTEMS = ['fanout', 'direct', 'grpc-proxy'] as const;
export type ChurnSystem = (typeof CHURN_SYSTEMS)[number];

export interface ChurnOptions extends Omit<SteadyOptions, 'durationS' | 'stalled' | 'stallS'> {
  waves: number;
  waveSize: number;
  /** Seconds between waves. */
  pauseS: number;
}

export interface ChurnResult {
  system: ChurnSystem;
  clients: number;
  keys: number;
  waves: number;
  waveSize: number;
  rate: number;
  created: number;
  deleted: number;
  putErrors: number;
  /** etcd holds exactly what the writer meant: every created key, none of the deleted ones. */
  etcdAsWritten: boolean;
  /** Creations and deletions, times clients. */
  expectedDeliveries: number;
  delivered: number;
  /** Clients whose view of every churned key equals etcd's. */
  viewsMatchingEtcd: number;
  allMatch: boolean;
  /** Creations only: a deletion carries no stamp. */
  latencyMs: { p50: number; p90: number; p99: number; max: number };
  churnS: number;
  drainS: number;
  cpuS: { serving: Record<string, number>; servingTotal: number; clients: number };
  peakRssMiB: Record<string, number>;
  rssSeries: RssSeries;
  reconnects: number;
  snapshots: number;
  histogram: string;
}

export async function runChurn(system: ChurnSystem, o: ChurnOptions): Promise<ChurnResult> {
  const cleanup: (() => Promise<void>)[] = [];
  const say = o.progress ?? (() => {});
  const steadyLike: SteadyOptions = { ...o, durationS: 0 };
  const keySpace = o.keys + o.waves * o.waveSize;
  try {
    say(`${system}: starting the serving side`);
    const s = await serve(system, steadyLike, cleanup);
    const etcd = s.etcd!;
    const workers = startWorkers(steadyLike);
    cleanup.push(() => stopWorkers(workers));
    for (const w of workers) pin(w.child.pid!, o.clientCpus);
    pin(process.pid, o.writerCpus ?? o.serverCpus); // as steady: the writer on the serving side's core
    say(`${system}: connecting ${o.clients} clients`);
    const per = Math.ceil(o.clients / o.workers);
    await Promise.all(workers.map((w, i) => w.ask({
      cmd: 'start', system: s.clientSystem, urls: s.urls, first: i * per, count: Math.max(0, Math.min(per, o.clients - i * per)), keys: keySpace, mode: o.mode,
    })));
    say(`${system}: warm-up`);
    await writeSteady(etcd.client, { rate: Math.min(200, o.rate), durationS: 1, keys: o.keys, firstSeq: 0 });
    await new Promise((r) => setTimeout(r, 1000));

    const pids = () => s.procs.map((p) => ({ name: p.name, pid: p.pid() }));
    const cpu0 = Object.fromEntries(pids().map((p) => [p.name, cpuSeconds(p.pid)]));
    const clientCpu0 = workers.reduce((n, w) => n + cpuSeconds(w.child.pid!), 0);
    const rss = sampleRss(pids);
    const ask = () => Promise.all(workers.map((x) => x.ask<WorkerProgress>({ cmd: 'progress' })));
    const seen = async () => (await ask()).reduce((n, x) => n + x.received + x.removed, 0);
    say(`${system}: ${o.waves} waves of ${o.waveSize} pods at ${o.rate}/s to ${o.clients} clients`);
    o.meter?.phase(`${system} churn`, 2 * o.waves * Math.min(o.waveSize, o.keys) * o.clients);
    const poll = pollDelivered(o.meter, seen);
    const t0 = nowUs();
    const c = await writeChurn(etcd.client, { waves: o.waves, waveSize: o.waveSize, keys: o.keys, rate: o.rate, pauseS: o.pauseS, firstSeq: 1 });
    await poll.stop();
    const expected = (c.created + c.deleted) * o.clients;

    o.meter?.phase(`${system} drain`, expected);
    let delivered = 0;
    const deadline = Date.now() + o.drainTimeoutS * 1000;
    while (Date.now() < deadline) {
      delivered = await seen();
      o.meter?.delivered(delivered);
      if (delivered >= expected) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const tEnd = nowUs();
    const rssSeries = rss.stop();
    const cpu1 = Object.fromEntries(pids().map((p) => [p.name, cpuSeconds(p.pid) - cpu0[p.name]!]));
    const clientCpu = workers.reduce((n, x) => n + cpuSeconds(x.child.pid!), 0) - clientCpu0;
    const peak = Object.fromEntries(pids().map((p) => [p.name, Math.round(peakRssMiB(p.pid))]));

    const want = await etcdState(etcd.client, keySpace, [...c.createdKeys, ...c.deletedKeys]);
    const created = new Set(c.createdKeys);
    const etcdAsWritten = c.createdKeys.every((k) => want[k]! > 0) && c.deletedKeys.every((k) => created.has(k) || want[k] === -1);
    const reports = await Promise.all(workers.map((x) => x.ask<WorkerReport>({ cmd: 'report', lastSeq: want })));
    const merged = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 2 });
    for (const r of reports) merged.add(hdr.decodeFromCompressedBase64(r.histogram));
    delivered = reports.reduce((n, r) => n + r.received.reduce((a, b) => a + b, 0) + r.removed.reduce((a, b) => a + b, 0), 0);
    const matching = reports.reduce((n, r) => n + r.complete, 0);
    const ms = (us: number) => Math.round(us / 10) / 100;
    return {
      system, clients: o.clients, keys: o.keys, waves: o.waves, waveSize: o.waveSize, rate: o.rate,
      created: c.created, deleted: c.deleted, putErrors: c.putErrors, etcdAsWritten,
      expectedDeliveries: expected, delivered, viewsMatchingEtcd: matching, allMatch: matching === o.clients,
      latencyMs: { p50: ms(merged.getValueAtPercentile(50)), p90: ms(merged.getValueAtPercentile(90)), p99: ms(merged.getValueAtPercentile(99)), max: ms(merged.maxValue) },
      churnS: Math.round((c.lastPutAt - t0) / 1e4) / 100,
      drainS: Math.round((tEnd - c.lastPutAt) / 1e4) / 100,
      cpuS: { serving: cpu1, servingTotal: Object.values(cpu1).reduce((a, b) => a + b, 0), clients: clientCpu },
      peakRssMiB: peak, rssSeries,
      reconnects: reports.reduce((n, r) => n + r.reconnects, 0),
      snapshots: reports.reduce((n, r) => n + r.snapshots, 0),
      histogram: hdr.encodeIntoCompressedBase64(merged),
    };
  } finally {
    for (const c of cleanup.reverse()) await c().catch(() => {});
  }
}

/**
 * What every client must end with, read from etcd itself: per key index, the seq of a churned key
 * etcd holds, -1 for one it does not, 0 (not checked) for keys the churn did not touch.
 */
async function etcdState(client: Etcd3, keySpace: number, churned: number[]): Promise<number[]> {
  const want = new Array<number>(keySpace).fill(0);
  for (const k of churned) want[k] = -1;
  const all = await client.getAll().prefix(PREFIX).buffers();
  for (const [key, value] of Object.entries(all)) {
    const k = indexOfKey(key);
    if (k >= 0 && k < keySpace && want[k] !== 0) stampsIn(value, (_key, seq) => { want[k] = seq; });
  }
  return want;
}
