// Catch-up and repair frames shared by the clients that need the same ones, as snapshots are.
// Clients of a view at the same position (stalled together by a burst, or resuming on the same
// server) catch up from one walk of the history, grouped by node, and one set of frames per node;
// clients failing over with the same differing buckets get one repair, compressed once. Entries
// hold for one head (and at most the reuse time); a byte budget bounds what they keep, and a
// transfer over it is built for its one client.
import type { Metrics } from '../src/metrics.js';
import type { ViewFilter } from '../src/model/view-filter.js';
import { compressEach, type Compression } from '../src/protocol/compression.js';
import { bucketsToWire } from '../src/protocol/digest.js';
import { chunkFrames } from '../src/protocol/frames.js';
import type { NodeGroups } from './node-groups.js';
import { snapshotFrames, type SnapshotCache } from './snapshots.js';
import type { Store } from './store.js';

/** Item bytes the cached transfers may hold at once. */
const BUDGET_BYTES = 32 << 20;

export interface Transfer {
  /** The frames to write, in order; each client iterates them on its own. */
  readonly frames: Iterable<Buffer>;
  /** The client's position once it has read them all. */
  readonly end: number;
}

interface Cached { readonly at: number; readonly bytes: number }
interface CatchUp extends Cached { readonly groups: NodeGroups; readonly byNode: Map<string | undefined, Iterable<Buffer>> }
interface Repair extends Cached, Transfer {}

export class TransferCache {
  private readonly catchUps = new Map<string, CatchUp>();
  private readonly repairs = new Map<string, Repair>();
  /** The store's head and revision count the cached transfers were built at. */
  private head = -1;
  private revised = -1;
  private kept = 0;
  private lastSweep = 0;
  private readonly built: Record<'catch-up' | 'repair', { inc(): void }>;

  constructor(
    private readonly store: Store,
    private readonly snapshots: SnapshotCache,
    private readonly chunkBytes: number,
    private readonly reuseMs: number,
    metrics: Metrics,
  ) {
    this.built = { 'catch-up': metrics.transferFrames.labels('catch-up'), repair: metrics.transferFrames.labels('repair') };
  }

  /** Delta frames taking a client of `filter` from `from` to the head; undefined → snapshot. */
  catchUp(filter: ViewFilter, from: number): Transfer | undefined {
    this.refresh();
    const to = this.store.head;
    const key = `${filter.syncer}\n${from}`;
    let c = this.valid(this.catchUps.get(key));
    if (!c) {
      const groups = this.store.catchUpGroups(from, filter.def);
      if (!groups) return undefined;
      c = this.keep(this.catchUps, key, { at: Date.now(), bytes: groups.bytes, groups, byNode: new Map() });
    }
    // Clients whose node has nothing of its own share the view's frames (under undefined).
    const own = c.groups.owns(filter.node) ? filter.node : undefined;
    let frames = c.byNode.get(own);
    if (!frames) {
      const { items, hashes } = c.groups.itemsFor(filter.node);
      // Position advances only with the last frame, so a cut mid-way resumes from `from`.
      frames = items.length === 0 ? [] : new SharedFrames(this.counted('catch-up', chunkFrames(items, this.chunkBytes, (_i, last) => ({ t: 'delta', from, to: last ? to : from }), hashes)));
      c.byNode.set(own, frames);
    }
    return { frames, end: to };
  }

  /**
   * Digest resync: the buckets a client with digest `theirs` has wrong, whole, as of the head,
   * compressed with `alg`. When most buckets differ (a small view has one bucket) the shared
   * compressed snapshot may be smaller: the client gets whichever is.
   */
  repair(filter: ViewFilter, theirs: Uint32Array, alg: Compression | 'none'): Transfer & { differing: number } {
    this.refresh();
    const seq = this.store.head;
    const count = theirs.length / 2;
    const buckets = this.store.differingBuckets(filter, theirs);
    const differ = bucketsToWire(buckets);
    const key = `${filter.key}\n${alg}\n${count}\n${differ.toString('latin1')}`;
    const cached = this.valid(this.repairs.get(key));
    if (cached) return { ...cached, differing: buckets.length };
    const items = this.store.inBuckets(filter, buckets, count);
    let transfer: Transfer = {
      frames: new SharedFrames(this.counted('repair', compressEach(chunkFrames(items, this.chunkBytes, (i, last) => (
        i === 0 ? { t: 'repair', seq, i, last, buckets: count, differ } : { t: 'repair', seq, i, last })), alg))),
      end: seq,
    };
    // A node's own snapshot is built for that node alone: building and sorting the whole view to
    // weigh it against the repair cost a reconnect storm more than the bytes it could save.
    if (buckets.length * 2 >= count && !filter.node) {
      const snap = this.snapshots.get(filter, seq, true);
      const snapFrames = [...snapshotFrames(snap, alg)];
      if (bytes(snapFrames) < bytes(transfer.frames)) transfer = { frames: snapFrames, end: snap.seq };
    }
    let bytesOfItems = 0;
    for (const item of items) bytesOfItems += item.length;
    return { ...this.keep(this.repairs, key, { ...transfer, at: Date.now(), bytes: bytesOfItems }), differing: buckets.length };
  }

  /** Drops every transfer once the head or a revision moves on, and old ones every reuse time. */
  private refresh(): void {
    const { head, revised } = this.store;
    const now = Date.now();
    if (head !== this.head || revised !== this.revised) {
      this.catchUps.clear();
      this.repairs.clear();
      this.kept = 0;
      this.head = head;
      this.revised = revised;
    } else if (now - this.lastSweep >= this.reuseMs) {
      for (const map of [this.catchUps, this.repairs] as Map<string, Cached>[]) {
        for (const [k, c] of map) if (!this.valid(c)) { map.delete(k); this.kept -= c.bytes; }
      }
    } else return;
    this.lastSweep = now;
  }

  private valid<T extends Cached>(c: T | undefined): T | undefined {
    return c && Date.now() - c.at < this.reuseMs ? c : undefined;
  }

  /** Caches `c` when the budget allows; either way returns it for the client asking. */
  private keep<T extends Cached>(map: Map<string, T>, key: string, c: T): T {
    const old = map.get(key);
    if (old) { map.delete(key); this.kept -= old.bytes; }
    if (this.kept + c.bytes <= BUDGET_BYTES) {
      map.set(key, c);
      this.kept += c.bytes;
    }
    return c;
  }

  private *counted(transfer: 'catch-up' | 'repair', frames: Iterable<Buffer>): Generator<Buffer> {
    for (const f of frames) { this.built[transfer].inc(); yield f; }
  }
}

/** A frame sequence built once, as far as its furthest reader has gone, for all its readers. */
class SharedFrames implements Iterable<Buffer> {
  private readonly done: Buffer[] = [];
  private source: Iterator<Buffer> | undefined;

  constructor(source: Iterable<Buffer>) {
    this.source = source[Symbol.iterator]();
  }

  *[Symbol.iterator](): Generator<Buffer> {
    for (let i = 0; ; i++) {
      if (i === this.done.length) {
        const next = this.source?.next();
        if (!next || next.done) { this.source = undefined; return; }
        this.done.push(next.value);
      }
      yield this.done[i]!;
    }
  }
}

function bytes(frames: Iterable<Buffer>): number {
  let n = 0;
  for (const f of frames) n += f.length;
  return n;
}
