// ingest: the pipeline in process, no sockets: datastore events → dedupe (validate, encode,
// coalesce, no-op check) → store (items, hashes, change log) → one delta frame per view. How many
// updates per second one core pushes through everything a server does before the first write.
import { Ingest } from '../../dedupe/ingest.js';
import { ViewFilter } from '../../src/model/view-filter.js';
import { Store } from '../../snapshot/store.js';
import type { DatastoreEvent } from '../../src/datastore/datastore.js';
import { silentLogger } from '../../src/logging.js';
import { Metrics } from '../../src/metrics.js';
import { itemsFrame } from '../../src/protocol/frames.js';
import { SYNCER_TYPES } from '../../src/model/views.js';
import { keyOf, valueOf } from '../lib/payload.js';

export interface IngestResult { updates: number; keys: number; seconds: number; updatesPerSec: number; framesBuilt: number; frameBytes: number; rssMiB: number }

export function runIngest(o: { updates: number; keys: number; batch: number }): IngestResult {
  const metrics = new Metrics(false);
  const store = new Store(64 << 20, metrics);
  const filters = SYNCER_TYPES.map((v) => new ViewFilter(v, 'node-1'));
  let framesBuilt = 0;
  let frameBytes = 0;
  store.subscribe({
    onBatch: (b) => {
      for (const f of filters) {
        const items = b.changes.filter((c) => f.matches(c.kind, c.node)).map((c) => c.item);
        if (!items.length) continue;
        frameBytes += itemsFrame({ t: 'delta', from: b.from, to: b.to }, items).length;
        framesBuilt++;
      }
    },
    onStatus: () => {},
  });
  const ingest = new Ingest(store, { windowMs: 10, maxBatchBytes: 256 << 10 }, metrics, silentLogger);
  // Each batch is made as a datastore adapter hands it over (parsed JSON) just before it is fed
  // in, and only the pipeline is timed. Making all events up front would keep millions of
  // objects alive and time the garbage collector's marking of them instead.
  let ns = 0n;
  for (let i = 0; i < o.updates; i += o.batch) {
    const events: DatastoreEvent[] = [];
    for (let j = i; j < Math.min(o.updates, i + o.batch); j++) events.push({ key: keyOf(j % o.keys), value: valueOf(j % o.keys, j + 1, j), revision: String(j + 1) });
    const t0 = process.hrtime.bigint();
    ingest.onUpdates(events);
    ingest.flush(); // one datastore response per flush: no coalescing helps here
    ns += process.hrtime.bigint() - t0;
  }
  const seconds = Number(ns) / 1e9;
  return { updates: o.updates, keys: o.keys, seconds, updatesPerSec: Math.round(o.updates / seconds), framesBuilt, frameBytes, rssMiB: Math.round(process.memoryUsage().rss / 2 ** 20) };
}
