// burst: a burst of single-key etcd transactions (as many agents and controllers each writing one
// resource do) to N agents. etcd sends one watch response per transaction; what calico-fanout
// makes of them: how many batches it published (delta frames built), its CPU, write → agent
// latency. Run on this checkout and, in the same command, on another (--against) to compare.
// Serving side (etcd, calico-fanout) and the writer on the server cores, agents on the client cores.
import * as hdr from 'hdr-histogram-js';
import type { WorkerProgress, WorkerReport } from '../agent-worker.js';
import { startEtcd } from '../../test/support/etcd.js';
import { keyOf, nowUs, valueOf } from '../lib/payload.js';
import { cpuSeconds, killOnExit, waitUntil } from '../lib/procs.js';
import { isReady, metricSum } from '../lib/fanout-process.js';
import { checkoutName, serveCheckout } from '../lib/serve-checkout.js';
import { preload } from '../lib/writer.js';
import { pin, startWorkers, stopWorkers, type SteadyOptions } from './steady.js';

export interface BurstOptions {
  /** Single-key transactions in the burst. */
  txns: number;
  /** Transactions in flight at once. */
  inFlight: number;
  keys: number;
  clients: number;
  workers: number;
  serverCpus: string;
  clientCpus: string;
  drainTimeoutS: number;
  progress?: (msg: string) => void;
}

export interface BurstResult {
  checkout: string;
  txns: number;
  clients: number;
  inFlight: number;
  /** First write sent → last write acknowledged. */
  writeS: number;
  /** Last write acknowledged → every agent holds every key's last value. */
  drainS: number;
  complete: number;
  delivered: number;
  /** calico-fanout's delta frames built over the burst: one per published batch (one view). */
  batches: number;
  cpuS: { 'calico-fanout': number; etcd: number; clients: number };
  /** calico-fanout CPU per transaction, µs. */
  fanoutCpuUsPerTxn: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number };
}

export async function runBurst(root: string, o: BurstOptions): Promise<BurstResult> {
  const cleanup: (() => Promise<void>)[] = [];
  const say = o.progress ?? (() => {});
  const name = checkoutName(root);
  try {
    say(`${name}: etcd with ${o.keys} keys, calico-fanout, ${o.clients} agents`);
    const etcd = await startEtcd({ cpus: o.serverCpus, progressNotifyMs: 5000 });
    const forget = killOnExit(() => etcd.pid);
    cleanup.push(async () => { await etcd.stop(); forget(); });
    await preload(etcd.client, o.keys);
    const s = await serveCheckout(root, etcd.endpoint, o.serverCpus);
    cleanup.push(() => s.proc.stop());
    await waitUntil(() => isReady(s.health), 'calico-fanout ready', 120_000);
    const workers = startWorkers({ workers: o.workers } as SteadyOptions);
    cleanup.push(() => stopWorkers(workers));
    for (const w of workers) pin(w.child.pid!, o.clientCpus);
    pin(process.pid, o.serverCpus);
    const per = Math.ceil(o.clients / o.workers);
    await Promise.all(workers.map((w, i) => w.ask({
      cmd: 'start', system: 'fanout', urls: [s.url], first: i * per, count: Math.max(0, Math.min(per, o.clients - i * per)), keys: o.keys, mode: 'light',
    })));

    const frames0 = await metricSum(s.health, 'calico_fanout_delta_frames_built_total');
    const clientCpu = () => workers.reduce((n, w) => n + cpuSeconds(w.child.pid!), 0);
    const cpu0 = { fanout: cpuSeconds(s.proc.pid), etcd: cpuSeconds(etcd.pid), clients: clientCpu() };
    say(`${name}: ${o.txns} single-key transactions, ${o.inFlight} in flight`);
    const lastSeq = new Array<number>(o.keys).fill(0);
    const t0 = nowUs();
    let next = 0;
    // Each write stamped when sent, so commit and watch latency count.
    const writer = async () => {
      while (next < o.txns) {
        const i = next++;
        const k = i % o.keys;
        lastSeq[k] = i + 1;
        await etcd.client.put(keyOf(k)).value(JSON.stringify(valueOf(k, i + 1, nowUs())));
      }
    };
    await Promise.all(Array.from({ length: o.inFlight }, writer));
    const tWritten = nowUs();
    const expected = o.txns * o.clients;
    const deadline = Date.now() + o.drainTimeoutS * 1000;
    for (;;) {
      const p = await Promise.all(workers.map((w) => w.ask<WorkerProgress>({ cmd: 'progress', lastSeq })));
      if (p.reduce((n, x) => n + x.complete, 0) === o.clients || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const tDone = nowUs();
    const r2 = (n: number) => Math.round(n * 100) / 100;
    const cpuS = { 'calico-fanout': r2(cpuSeconds(s.proc.pid) - cpu0.fanout), etcd: r2(cpuSeconds(etcd.pid) - cpu0.etcd), clients: r2(clientCpu() - cpu0.clients) };
    const batches = (await metricSum(s.health, 'calico_fanout_delta_frames_built_total')) - frames0;
    const reports = await Promise.all(workers.map((w) => w.ask<WorkerReport>({ cmd: 'report', lastSeq })));
    const h = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 2 });
    for (const r of reports) h.add(hdr.decodeFromCompressedBase64(r.histogram));
    const ms = (us: number) => Math.round(us / 10) / 100;
    const delivered = reports.reduce((n, r) => n + r.received.reduce((a, b) => a + b, 0), 0);
    return {
      checkout: name, txns: o.txns, clients: o.clients, inFlight: o.inFlight,
      writeS: Math.round((tWritten - t0) / 1e4) / 100, drainS: Math.round((tDone - tWritten) / 1e4) / 100,
      complete: reports.reduce((n, r) => n + r.complete, 0), delivered: Math.min(delivered, expected),
      batches, cpuS, fanoutCpuUsPerTxn: Math.round(cpuS['calico-fanout'] * 1e6 / o.txns),
      latencyMs: { p50: ms(h.getValueAtPercentile(50)), p90: ms(h.getValueAtPercentile(90)), p99: ms(h.getValueAtPercentile(99)), max: ms(h.maxValue) },
    };
  } finally {
    for (const c of cleanup.reverse()) await c().catch(() => {});
  }
}
