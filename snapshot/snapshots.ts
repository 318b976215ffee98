// Pre-encoded snapshots, shared. A snapshot of a view at seq S is a list of immutable frames of
// about `chunkBytes` each, built once and written to every client that syncs from it. A client
// handed a snapshot older than the head catches up from S like any other client, so a storm of
// connecting clients costs one build per view per reuse window, not one per client.
import type { ViewFilter } from '../src/model/view-filter.js';
import { compressLarge, type Compression } from '../src/protocol/compression.js';
import { bucketOrder } from '../src/protocol/digest.js';
import { chunkFrames } from '../src/protocol/frames.js';
import type { Entry } from './entry.js';
import type { Metrics } from '../src/metrics.js';
import type { Store } from './store.js';

export interface Snapshot {
  readonly seq: number;
  readonly frames: readonly Buffer[];
  /** The frames compressed, per algorithm, each on first use: once for every client. */
  readonly compressed: Map<Compression, Buffer[]>;
  readonly bytes: number;
  readonly count: number;
  readonly builtAt: number;
  /** Store.revised when built. */
  readonly revised: number;
}

export class SnapshotCache {
  private readonly cache = new Map<string, Snapshot>();
  private lastSweep = 0;

  constructor(
    private readonly store: Store,
    private readonly chunkBytes: number,
    private readonly reuseMs: number,
    private readonly metrics: Metrics,
  ) {}

  /**
   * A snapshot of the view at a seq of at least `minSeq`: a client that already holds newer
   * state than a cached snapshot would otherwise see its keys go back in time. `current`: also
   * with every revision the store has now (for a client whose cache came from another replica).
   */
  get(filter: ViewFilter, minSeq = 0, current = false): Snapshot {
    const now = Date.now();
    this.sweep(now);
    const cached = this.cache.get(filter.key);
    // Below the floor a snapshot is useless: the catch-up that must follow it no longer exists.
    if (cached && cached.seq >= Math.max(minSeq, this.store.floor) && this.fresh(cached, now) && (!current || cached.revised === this.store.revised)) {
      this.metrics.snapshotsReused.labels(filter.syncer).inc();
      return cached;
    }
    const snap = this.build(filter, now);
    this.cache.set(filter.key, snap);
    this.metrics.snapshotsGenerated.labels(filter.syncer).inc();
    if (!filter.node) this.metrics.snapshotBytes.labels(filter.syncer).set(snap.bytes);
    return snap;
  }

  private fresh(s: Snapshot, now: number): boolean {
    return s.seq === this.store.head || now - s.builtAt < this.reuseMs;
  }

  private build(filter: ViewFilter, now: number): Snapshot {
    const seq = this.store.head;
    const items = inBucketOrder([...this.store.entries(filter)]);
    const frames = [...chunkFrames(items, this.chunkBytes, (i, last) => ({ t: 'snapshot', seq, i, last }))];
    return { seq, frames, compressed: new Map(), bytes: frames.reduce((n, f) => n + f.length, 0), count: items.length, builtAt: now, revised: this.store.revised };
  }

  /** Stale snapshots are dropped so memory follows the number of views in use, not history. */
  private sweep(now: number): void {
    if (now - this.lastSweep < this.reuseMs) return;
    this.lastSweep = now;
    for (const [k, s] of this.cache) if (!this.fresh(s, now)) this.cache.delete(k);
  }
}

/** A snapshot's frames as a client of `alg` receives them. */
export function* snapshotFrames(snap: Snapshot, alg: Compression | 'none'): Generator<Buffer> {
  if (alg === 'none') return yield* snap.frames;
  let done = snap.compressed.get(alg);
  if (!done) snap.compressed.set(alg, (done = []));
  for (let i = 0; i < snap.frames.length; i++) {
    // Chunks are compressed as the first client reaches them, so the work spreads over the
    // transfer instead of stalling the event loop for a whole snapshot.
    yield (done[i] ??= compressLarge(snap.frames[i]!, alg));
  }
}

/**
 * Items in digest bucket order (digest.ts bucketOrder): a client whose snapshot is cut midway
 * holds whole buckets, and its digest resync asks for about the part it did not get.
 */
function inBucketOrder(entries: Entry[]): Buffer[] {
  // Sort keys packed as order · 2^21 + index sort natively as doubles (exact below 2^53).
  if (entries.length >= 1 << 21) return entries.sort((a, b) => bucketOrder(a.bits) - bucketOrder(b.bits)).map((e) => e.item);
  const keys = new Float64Array(entries.length);
  for (let i = 0; i < entries.length; i++) keys[i] = bucketOrder(entries[i]!.bits) * 2 ** 21 + i;
  keys.sort();
  return Array.from(keys, (k) => entries[k % 2 ** 21]!.item);
}
