// The writer: puts updates (or churn's deletions and creations) into etcd at a steady rate, in one transaction per 10 ms tick (one
// put each costs etcd3 ~0.4 ms of CPU: the writer must not be the bottleneck). Each value is
// stamped just before its transaction is sent, so commit latency counts in the measured latency.
import type { Etcd3 } from 'etcd3';
import { putAll } from '../../src/datastore/etcd.js';
import { keyOf, nowUs, valueOf } from './payload.js';

export interface WriteResult { written: number; lastSeq: number[]; lastPutAt: number; putErrors: number }

export async function writeSteady(client: Etcd3, o: { rate: number; durationS: number; keys: number; firstSeq: number; lastSeq?: number[] }): Promise<WriteResult> {
  const total = Math.round(o.rate * o.durationS);
  const lastSeq = o.lastSeq ?? new Array<number>(o.keys).fill(0);
  const putErrors = await paced(client, total, o.rate, (i, ts) => {
    const key = i % o.keys;
    const seq = o.firstSeq > 0 ? o.firstSeq + i : 0;
    if (seq > 0) lastSeq[key] = seq;
    return { request_put: { key: Buffer.from(keyOf(key)), value: Buffer.from(JSON.stringify(valueOf(key, seq, ts))) } };
  });
  return { written: total, lastSeq, lastPutAt: nowUs(), putErrors };
}

type TxnOp = { request_put: { key: Buffer; value: Buffer } } | { request_delete_range: { key: Buffer } };

/** Sends `total` operations at `rate`/s, those due in one transaction per 10 ms tick; returns the failed transactions. */
async function paced(client: Etcd3, total: number, rate: number, op: (i: number, ts: number) => TxnOp): Promise<number> {
  const start = Date.now();
  let i = 0;
  let putErrors = 0;
  const inflight: Promise<unknown>[] = [];
  while (i < total) {
    const due = Math.min(total, Math.floor(((Date.now() - start) / 1000) * rate) + 1);
    if (due > i) {
      const ts = nowUs();
      const success: TxnOp[] = [];
      for (; i < due; i++) success.push(op(i, ts));
      inflight.push(client.kv.txn({ success }).catch(() => { putErrors++; }));
      if (inflight.length > 64) await inflight.shift();
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  await Promise.all(inflight);
  return putErrors;
}

export interface ChurnResult { created: number; deleted: number; createdKeys: number[]; deletedKeys: number[]; lastPutAt: number; putErrors: number }

/**
 * A rolling deployment: each wave deletes the `waveSize` oldest pods, then creates as many under
 * new names (key indices from `keys` up), `rate` operations/s, `pauseS` between waves. Creations
 * are stamped (seq from `firstSeq`); deletions carry nothing, clients learn them by key.
 */
export async function writeChurn(client: Etcd3, o: { waves: number; waveSize: number; keys: number; rate: number; pauseS: number; firstSeq: number }): Promise<ChurnResult> {
  const live = Array.from({ length: o.keys }, (_, i) => i);
  const createdKeys: number[] = [];
  const deletedKeys: number[] = [];
  let putErrors = 0;
  for (let w = 0; w < o.waves; w++) {
    if (w > 0) await new Promise((r) => setTimeout(r, o.pauseS * 1000));
    const gone = live.splice(0, Math.min(o.waveSize, live.length));
    putErrors += await paced(client, gone.length, o.rate, (i) => ({ request_delete_range: { key: Buffer.from(keyOf(gone[i]!)) } }));
    deletedKeys.push(...gone);
    putErrors += await paced(client, o.waveSize, o.rate, (_i, ts) => {
      const key = o.keys + createdKeys.length;
      createdKeys.push(key);
      live.push(key);
      return { request_put: { key: Buffer.from(keyOf(key)), value: Buffer.from(JSON.stringify(valueOf(key, o.firstSeq + createdKeys.length - 1, ts))) } };
    });
  }
  return { created: createdKeys.length, deleted: deletedKeys.length, createdKeys, deletedKeys, lastPutAt: nowUs(), putErrors };
}

/** The keys' initial values (seq 0), so every system starts from the same content. */
export function preload(client: Etcd3, keys: number): Promise<void> {
  return putAll(client, Array.from({ length: keys }, (_, i) => ({ key: keyOf(i), value: valueOf(i, 0, 0) })));
}
