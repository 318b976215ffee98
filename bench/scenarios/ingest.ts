// ingest: the pipeline in process, no sockets: datastore events → dedupe (validate, encode,
// coalesce, no-op check) → store (items, hashes, change log) → one delta frame per view. How many
// updates per second one core pushes through everything a server does before the first write.
import { Ingest } from '../../dedupe/ingest.js';
import { ViewFilter } from '../../dedupe/view-filter.js';
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
  // Values are produced up front as a datastore adapter would hand them over (parsed JSON).
  const events: DatastoreEvent[] = Array.from({ length: o.updates }, (_, i) => ({ key: keyOf(i % o.keys), value: valueOf(i % o.keys, i + 1, i), revision: String(i + 1) }));
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < events.length; i += o.batch) {
    ingest.onUpdates(events.slice(i, i + o.batch));
    ingest.flush(); // one datastore response per flush: no coalescing helps here
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return { updates: o.updates, keys: o.keys, seconds, updatesPerSec: Math.round(o.updates / seconds), framesBuilt, frameBytes, rssMiB: Math.round(process.memoryUsage().rss / 2 ** 20) };
}
