// ingest: the pipeline in process, no sockets: datastore events → dedupe (validate, encode,
// coalesce, no-op check) → store (items, hashes, change log) → one delta frame per view. How many
// updates per second one core pushes through everything a server does before the first write.
// The pipeline is loaded from a checkout: this one, or another (--against) to compare in one run.
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { DatastoreEvent } from '../../src/datastore/datastore.js';
import { silentLogger } from '../../src/logging.js';
import { SYNCER_TYPES } from '../../src/model/views.js';
import { Ingest } from '../../dedupe/ingest.js';
import { Store } from '../../snapshot/store.js';
import { ViewFilter } from '../../src/model/view-filter.js';
import { Metrics } from '../../src/metrics.js';
import { itemsFrame } from '../../src/protocol/frames.js';
import { keyOf, valueOf } from '../lib/payload.js';

export interface IngestResult {
  checkout: string; updates: number; keys: number; seconds: number; updatesPerSec: number;
  /** The same over the CPU time of the timed calls: steadier than wall time on a shared machine. */
  cpuSeconds: number; updatesPerCpuSec: number;
  framesBuilt: number; frameBytes: number; rssMiB: number;
}

/** The stages of one checkout's pipeline. */
export interface Pipeline {
  checkout: string;
  Ingest: typeof Ingest;
  Store: typeof Store;
  ViewFilter: typeof ViewFilter;
  Metrics: typeof Metrics;
  itemsFrame: typeof itemsFrame;
}

const THIS: Pipeline = { checkout: 'this', Ingest, Store, ViewFilter, Metrics, itemsFrame };

/** Another checkout's pipeline, from its TypeScript sources (as this one's runs here). */
export async function loadPipeline(root: string, checkout = root): Promise<Pipeline> {
  const load = (path: string) => import(pathToFileURL(join(root, path)).href);
  const [i, s, f, m, fr] = await Promise.all([
    load('dedupe/ingest.ts'), load('snapshot/store.ts'), load('src/model/view-filter.ts'), load('src/metrics.ts'), load('src/protocol/frames.ts'),
  ]);
  return { checkout, Ingest: i.Ingest, Store: s.Store, ViewFilter: f.ViewFilter, Metrics: m.Metrics, itemsFrame: fr.itemsFrame };
}

export function runIngest(o: { updates: number; keys: number; batch: number }, p: Pipeline = THIS): IngestResult {
  const metrics = new p.Metrics(false);
  const store = new p.Store(64 << 20, metrics);
  const filters = SYNCER_TYPES.map((v) => new p.ViewFilter(v, 'node-1'));
  let framesBuilt = 0;
  let frameBytes = 0;
  store.subscribe({
    onBatch: (b) => {
      for (const f of filters) {
        const changes = b.changes.filter((c) => f.matches(c.kind, c.node));
        if (!changes.length) continue;
        const items = changes.map((c) => c.item);
        // The store's entry hashes, as the server passes them on; a checkout whose batches carry
        // none (older ones) has its frames hash the items.
        const hashes = changes[0]!.hash === undefined ? undefined : changes.map((c) => c.hash);
        frameBytes += p.itemsFrame({ t: 'delta', from: b.from, to: b.to }, items, 0, items.length, hashes).length;
        framesBuilt++;
      }
    },
    onStatus: () => {},
  });
  const ingest = new p.Ingest(store, { windowMs: 10, maxBatchBytes: 256 << 10 }, metrics, silentLogger);
  // Each batch is made as a datastore adapter hands it over (parsed JSON) just before it is fed
  // in, and only the pipeline is timed. Making all events up front would keep millions of
  // objects alive and time the garbage collector's marking of them instead.
  let ns = 0n;
  let cpuUs = 0;
  for (let i = 0; i < o.updates; i += o.batch) {
    const events: DatastoreEvent[] = [];
    for (let j = i; j < Math.min(o.updates, i + o.batch); j++) events.push({ key: keyOf(j % o.keys), value: valueOf(j % o.keys, j + 1, j), revision: String(j + 1) });
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    ingest.onUpdates(events);
    ingest.flush(); // one datastore response per flush: no coalescing helps here
    ns += process.hrtime.bigint() - t0;
    const c = process.cpuUsage(c0);
    cpuUs += c.user + c.system;
  }
  ingest.stop();
  const seconds = Number(ns) / 1e9;
  const cpuSeconds = cpuUs / 1e6;
  return {
    checkout: p.checkout, updates: o.updates, keys: o.keys, seconds, updatesPerSec: Math.round(o.updates / seconds),
    cpuSeconds, updatesPerCpuSec: Math.round(o.updates / cpuSeconds),
    framesBuilt, frameBytes, rssMiB: Math.round(process.memoryUsage().rss / 2 ** 20),
  };
}
