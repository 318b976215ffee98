// Plays a ClusterModel into etcd: every write its own request, as the cluster's many writers
// (CNI plugins, calico-node, kube-controllers) each make theirs, paced on a 10 ms tick. Writes
// to one key keep their order (the next waits for the previous); others run concurrently up to
// a bound. Each value is stamped just before its tick's requests are sent, so commit latency
// counts in the measured latency.
import type { Etcd3 } from 'etcd3';
import * as hdr from 'hdr-histogram-js';
import { putAll } from '../../src/datastore/etcd.js';
import type { ClusterModel, Write } from './cluster-model.js';
import { nowUs } from './payload.js';

export interface PlayResult {
  /** Datastore writes (puts and deletions) made. */
  writes: number;
  /** The model's last stamped seq. */
  lastSeq: number;
  lastPutAt: number;
  putErrors: number;
  durationS: number;
  /**
   * Stamp → etcd's answer, ms: what of the agents' latency the writer and etcd account for
   * (a write waits for the one before it to the same key, and for a free slot).
   */
  commitMs: { p50: number; p99: number; max: number };
}

const MAX_IN_FLIGHT = 256;
const TICK_MS = 10;

/** Loads the cluster's initial content (seq 0), in transactions of 100 puts; returns how many keys it holds. */
export async function loadCluster(client: Etcd3, model: ClusterModel): Promise<number> {
  const writes = model.initial();
  await putAll(client, writes.filter((w) => w.value !== null));
  return new Set(writes.map((w) => w.key)).size;
}

/** Plays `durationS` seconds of the model's changes; `stamped` false for a warm-up (seq 0). */
export async function playCluster(client: Etcd3, model: ClusterModel, o: { durationS: number; stamped: boolean }): Promise<PlayResult> {
  const chains = new Map<string, Promise<unknown>>();
  const inflight = new Set<Promise<unknown>>();
  let writes = 0;
  let putErrors = 0;
  const commit = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 2 });
  const send = (w: Write, stampedAt: number) => {
    const key = Buffer.from(w.key);
    const request = (): Promise<unknown> => (w.value === null ? client.kv.deleteRange({ key }) : client.kv.put({ key, value: Buffer.from(JSON.stringify(w.value)) }));
    const p = (chains.get(w.key) ?? Promise.resolve()).then(request).then(() => { commit.recordValue(Math.max(1, nowUs() - stampedAt)); }, () => { putErrors++; });
    chains.set(w.key, p);
    inflight.add(p);
    void p.finally(() => { inflight.delete(p); if (chains.get(w.key) === p) chains.delete(w.key); });
    writes++;
  };
  const start = Date.now();
  // The model's clock goes on from where the last play left it (a pause in between is not played).
  const base = model.clockMs;
  for (;;) {
    const elapsed = Date.now() - start;
    const ts = nowUs();
    for (const w of model.due(base + Math.min(elapsed, o.durationS * 1000), ts, o.stamped)) {
      while (inflight.size >= MAX_IN_FLIGHT) await Promise.race(inflight);
      send(w, ts);
    }
    if (elapsed >= o.durationS * 1000) break;
    await new Promise((r) => setTimeout(r, TICK_MS));
  }
  await Promise.all(inflight);
  const ms = (us: number) => Math.round(us / 10) / 100;
  return {
    writes, lastSeq: model.lastSeq, lastPutAt: nowUs(), putErrors, durationS: o.durationS,
    commitMs: { p50: ms(commit.getValueAtPercentile(50)), p99: ms(commit.getValueAtPercentile(99)), max: ms(commit.maxValue) },
  };
}
