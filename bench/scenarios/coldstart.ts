// coldstart: K keys in etcd; how long `calico-fanout serve` takes from its start to /readyz 200
// (listed etcd, built its store, in sync), against one plain range read of the same prefix with
// the etcd3 client, in the same run. Repeated; this checkout and, with --against, another.
// calico-fanout and the range reader run on the server cores; etcd too, unless given its own.
import { Etcd3 } from 'etcd3';
import { noop } from 'cockatiel';
import { startEtcd } from '../../test/support/etcd.js';
import { prefixEnd } from '../../src/datastore/etcd.js';
import { cpuSeconds, killOnExit, peakRssMiB, waitUntil } from '../lib/procs.js';
import { isReady } from '../lib/fanout-process.js';
import { checkoutName, serveCheckout } from '../lib/serve-checkout.js';
import { preload } from '../lib/writer.js';
import { pin } from './steady.js';

export interface ColdStartOptions {
  keys: number;
  repeat: number;
  /** Checkouts whose `serve` is timed, this one first. */
  roots: string[];
  serverCpus: string;
  /** etcd's cores; '' for the server cores. */
  etcdCpus: string;
  timeoutS: number;
  progress?: (msg: string) => void;
}

export interface ColdStartRun {
  /** One plain range read of the prefix (no paging): request sent → every key decoded. */
  rangeReadS: number;
  /** Per checkout: spawn → /readyz 200, calico-fanout's CPU and peak RSS by then. */
  serve: { checkout: string; readyS: number; cpuS: number; peakRssMiB: number }[];
}

export interface ColdStartResult { keys: number; serverCpus: string; etcdCpus: string; runs: ColdStartRun[] }

/** What `serve` lists (its default etcd prefix); the preloaded keys are all under it. */
const PREFIX = Buffer.from('/calico/');
const RANGE_END = prefixEnd(PREFIX);

export async function runColdStart(o: ColdStartOptions): Promise<ColdStartResult> {
  const say = o.progress ?? (() => {});
  const etcd = await startEtcd({ cpus: o.etcdCpus || o.serverCpus, progressNotifyMs: 5000 });
  const forget = killOnExit(() => etcd.pid);
  const reader = new Etcd3({ hosts: etcd.endpoint, grpcOptions: { 'grpc.max_receive_message_length': 1 << 30 }, faultHandling: { host: () => noop, global: noop } });
  try {
    say(`loading ${o.keys} keys into etcd`);
    await preload(etcd.client, o.keys);
    // The reader runs where calico-fanout does: on the server cores.
    pin(process.pid, o.serverCpus);
    await reader.kv.range({ key: PREFIX, range_end: RANGE_END, count_only: true }); // connected
    const runs: ColdStartRun[] = [];
    for (let i = 0; i < o.repeat; i++) {
      const t0 = process.hrtime.bigint();
      const res = await reader.kv.range({ key: PREFIX, range_end: RANGE_END });
      const rangeReadS = Number(process.hrtime.bigint() - t0) / 1e9;
      if (res.kvs.length !== o.keys) throw new Error(`range read ${res.kvs.length} keys, not ${o.keys}`);
      say(`[${i + 1}/${o.repeat}] range read: ${rangeReadS.toFixed(2)} s`);
      const serve: ColdStartRun['serve'] = [];
      for (const root of o.roots) {
        const s = await serveCheckout(root, etcd.endpoint, o.serverCpus);
        try {
          await waitUntil(() => isReady(s.health), 'calico-fanout ready', o.timeoutS * 1000);
          const readyS = (Date.now() - s.startedAt) / 1000;
          serve.push({ checkout: checkoutName(root), readyS, cpuS: cpuSeconds(s.proc.pid), peakRssMiB: Math.round(peakRssMiB(s.proc.pid)) });
          say(`[${i + 1}/${o.repeat}] ${checkoutName(root)}: ready in ${readyS.toFixed(2)} s`);
        } finally {
          await s.proc.stop('SIGTERM', 10_000);
        }
      }
      runs.push({ rangeReadS, serve });
    }
    return { keys: o.keys, serverCpus: o.serverCpus, etcdCpus: o.etcdCpus || o.serverCpus, runs };
  } finally {
    reader.close();
    await etcd.stop();
    forget();
  }
}
