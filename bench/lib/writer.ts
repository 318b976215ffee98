// The writer: puts updates into etcd at a steady rate, in one transaction per 10 ms tick (one
// put each costs etcd3 ~0.4 ms of CPU: the writer must not be the bottleneck). Each value is
// stamped just before its transaction is sent, so commit latency counts in the measured latency.
import type { Etcd3 } from 'etcd3';
import { putAll } from '../../src/datastore/etcd.js';
import { keyOf, nowUs, valueOf } from './payload.js';

export interface WriteResult { written: number; lastSeq: number[]; lastPutAt: number; putErrors: number }

export async function writeSteady(client: Etcd3, o: { rate: number; durationS: number; keys: number; firstSeq: number; lastSeq?: number[] }): Promise<WriteResult> {
  const total = Math.round(o.rate * o.durationS);
  const lastSeq = o.lastSeq ?? new Array<number>(o.keys).fill(0);
  const start = Date.now();
  let i = 0;
  let putErrors = 0;
  const inflight: Promise<unknown>[] = [];
  while (i < total) {
    const due = Math.min(total, Math.floor(((Date.now() - start) / 1000) * o.rate) + 1);
    if (due > i) {
      const ts = nowUs();
      const success = [];
      for (; i < due; i++) {
        const key = i % o.keys;
        const seq = o.firstSeq > 0 ? o.firstSeq + i : 0;
        if (seq > 0) lastSeq[key] = seq;
        success.push({ request_put: { key: Buffer.from(keyOf(key)), value: Buffer.from(JSON.stringify(valueOf(key, seq, ts))) } });
      }
      inflight.push(client.kv.txn({ success }).catch(() => { putErrors++; }));
      if (inflight.length > 64) await inflight.shift();
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  await Promise.all(inflight);
  return { written: total, lastSeq, lastPutAt: nowUs(), putErrors };
}

/** The keys' initial values (seq 0), so every system starts from the same content. */
export function preload(client: Etcd3, keys: number): Promise<void> {
  return putAll(client, Array.from({ length: keys }, (_, i) => ({ key: keyOf(i), value: valueOf(i, 0, 0) })));
}
