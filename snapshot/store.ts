// The versioned store: the current value of every key, the change log behind catch-up, per-view
// checksums, and the sequence numbers that order it all. Single writer (the ingest stage);
// readers are the server's connections and the snapshot cache, all on the one event loop.
import { randomBytes } from 'node:crypto';
import type { Change } from '../src/model/change.js';
import type { ViewFilter } from '../src/model/view-filter.js';
import { VIEW_NAMES, viewsOfKind, type ViewDef, type ViewName } from '../src/model/views.js';
import { hashLoaded, keyBits, loadForHashing } from '../src/protocol/checksum.js';
import { differing, xorInto } from '../src/protocol/digest.js';
import { encodeItem } from '../src/protocol/frames.js';
import { strSize } from '../src/protocol/msgpack-raw.js';
import type { SyncStatus } from '../src/protocol/messages.js';
import type { Metrics } from '../src/metrics.js';
import { BucketIndex, FINE_BUCKETS } from './buckets.js';
import { ChangeLog } from './change-log.js';
import { ViewChecksums, type Checksum } from './checksums.js';
import type { Entry } from './entry.js';
import { LiveIndex } from './live.js';
import { NodeGroups } from './node-groups.js';

/** One published change as views see it. */
export interface Published {
  readonly kind: string;
  readonly node: string | undefined;
  readonly item: Buffer;
  /** The item's entry hash, 0n for a deletion: delta frames carry it as it is (no rehashing). */
  readonly hash: bigint;
}

/** Changes `from+1 .. to`, published together. */
export interface Batch {
  readonly from: number;
  readonly to: number;
  readonly changes: readonly Published[];
  readonly at: number;
}

export interface StoreListener {
  onBatch(batch: Batch): void;
  onStatus(status: SyncStatus): void;
  /** The datastore reported how far it has delivered (see maxRevision). */
  onProgress?(): void;
}

export class Store {
  /** Names this store's sequence space: a position is only meaningful with the same epoch. */
  readonly epoch = randomBytes(8).toString('hex');
  private readonly byKey = new Map<string, Entry>();
  private readonly live = new LiveIndex();
  private readonly log: ChangeLog;
  private readonly checksums = new ViewChecksums((kind) => this.live.ofKind(kind));
  private readonly buckets = new BucketIndex();
  private readonly listeners: StoreListener[] = [];
  private _head = 0;
  private _status: SyncStatus = 'wait-for-datastore';
  private _complete = false;
  private _maxRevision = 0;
  private _revised = 0;

  /** Per-view series, looked up once: labels() costs more than the increment. */
  private readonly published: Record<ViewName, { inc(n: number): void }>;
  private readonly cacheSize: Record<ViewName, { set(n: number): void }>;

  constructor(historyMaxBytes: number, private readonly metrics: Metrics) {
    this.log = new ChangeLog(historyMaxBytes);
    const bySyncer = <T>(f: (v: ViewName) => T) => Object.fromEntries(VIEW_NAMES.map((v) => [v, f(v)])) as Record<ViewName, T>;
    this.published = bySyncer((v) => metrics.updatesPublished.labels(v));
    this.cacheSize = bySyncer((v) => metrics.cacheSize.labels(v));
  }

  get head(): number { return this._head; }
  get floor(): number { return this.log.floor; }
  get status(): SyncStatus { return this._status; }
  /**
   * True once the datastore has been in sync: from then on the state is whole, if perhaps stale
   * while the datastore is away. Before that it is a partial list, which must not be handed out
   * as a snapshot: a client would sweep (delete) every key the list had not reached yet.
   */
  get complete(): boolean { return this._complete; }
  get historyBytes(): number { return this.log.bytes; }
  /** The newest datastore revision ingested (numeric revisions: etcd's, Kubernetes' in practice). */
  get maxRevision(): number { return this._progress ?? this._maxRevision; }
  /** The datastore's own watermark (DatastoreSink.onProgress), when it reports one. */
  private _progress: number | undefined;
  setProgress(revision: number): void {
    // A first report of 0 says the datastore reports watermarks: none is known until the next one.
    if (this._progress === undefined || revision > this._progress) this._progress = revision;
    // Clients held for a newer store may go now.
    for (const l of this.listeners) l.onProgress?.();
  }

  subscribe(l: StoreListener): () => void {
    this.listeners.push(l);
    return () => { const i = this.listeners.indexOf(l); if (i >= 0) this.listeners.splice(i, 1); };
  }

  /** Current canonical bytes of a key: null when deleted (tombstone), undefined when unknown. */
  valueOf(key: string): Buffer | null | undefined {
    return this.byKey.get(key)?.value;
  }

  /** Applies changes that the ingest stage has already deduplicated, and publishes them. */
  apply(changes: readonly Change[]): void {
    if (changes.length === 0) return;
    const from = this._head;
    const published: Published[] = [];
    // Counted per kind here, added per view once per batch.
    const perKind = new Map<string, number>();
    for (const c of changes) {
      const seq = ++this._head;
      const rev = Number(c.revision);
      if (rev > this._maxRevision) this._maxRevision = rev;
      const { item, value, valueEnd } = entryItem(c);
      // The item holds str(key) ‖ bin(value) contiguously after its array header: hashed in place.
      let hash = 0n;
      if (value) { loadForHashing(item); hash = hashLoaded(1, valueEnd); }
      let e = this.byKey.get(c.key);
      if (!e) {
        e = { key: c.key, kind: c.kind, node: c.node, item, value, revision: c.revision, seq, hash, bits: keyBits(c.key), tombstoneBytes: 0, prev: null, next: null, bprev: null, bnext: null };
        this.byKey.set(c.key, e);
        this.buckets.add(e);
        this.checksums.update(c.kind, e.bits, undefined, value ? e : undefined);
        if (value) this.live.add(e);
      } else {
        const old = e.value ? { node: e.node, hash: e.hash } : undefined;
        if (!e.value) this.log.revived(e);
        // A deletion keeps the node it had, so node-scoped clients still see it go. A value
        // that moves to another node is a deletion for the clients of the node it left: now for
        // the live ones, and remembered for those catching up. A tombstone revived on another
        // node leaves its own deletion behind for the node it was on.
        if (value && c.node !== e.node) {
          const gone = old ? { seq, item: encodeItem(c.key, null, c.revision) } : { seq: e.seq, item: e.item };
          (e.left ??= new Map()).set(e.node, gone);
          if (old) published.push({ kind: c.kind, node: old.node, item: gone.item, hash: 0n });
        }
        if (old && (!value || c.node !== old.node)) this.live.remove(e, old.node);
        if (value) e.node = c.node;
        e.item = item; e.value = value; e.revision = c.revision; e.seq = seq; e.hash = hash;
        this.checksums.update(c.kind, e.bits, old, value ? e : undefined);
        // A value replacing one on the same node is already where the index holds it.
        if (value && !(old && old.node === e.node)) this.live.add(e);
      }
      this.log.touch(e);
      published.push({ kind: c.kind, node: e.node, item, hash });
      perKind.set(c.kind, (perKind.get(c.kind) ?? 0) + 1);
    }
    for (const [kind, n] of perKind) for (const v of viewsOfKind(kind)) this.published[v].inc(n);
    for (const gone of this.log.evict()) {
      this.byKey.delete(gone.key);
      this.buckets.remove(gone);
    }
    this.metrics.headSeq.set(this._head);
    this.metrics.historyBytes.set(this.log.bytes);
    this.metrics.historyFloor.set(this.log.floor);
    for (const v of VIEW_NAMES) this.cacheSize[v].set(this.checksums.size(v));
    const batch: Batch = { from, to: this._head, changes: published, at: Date.now() };
    for (const l of this.listeners) l.onBatch(batch);
  }

  /**
   * Writes that change nothing but the revision (the same value written again, or changes that
   * coalesced back to the stored value): the entry takes the newer revision, unpublished. Two
   * replicas that saw different intermediate values then agree on each key's revision, so a
   * client moving between them never hears one go back.
   */
  revise(changes: readonly Change[]): void {
    for (const c of changes) {
      const e = this.byKey.get(c.key);
      if (!e?.value || !c.value || !(Number(c.revision) > Number(e.revision))) continue;
      ({ item: e.item, value: e.value } = entryItem(c));
      e.revision = c.revision;
      this._revised++;
    }
  }

  /** Counts revise()d entries: a snapshot built before a revision moved carries the older one. */
  get revised(): number { return this._revised; }

  setStatus(status: SyncStatus): void {
    if (status === this._status) return;
    this._status = status;
    this.metrics.setDatastoreStatus(status);
    if (status === 'in-sync') this._complete = true;
    for (const l of this.listeners) l.onStatus(status);
  }

  /** Whether the history still reaches back to `seq` (a position of this epoch). */
  canCatchUp(seq: number): boolean {
    return seq >= this.log.floor && seq <= this._head;
  }

  /** Items a client of `filter` at position `seq` needs to reach the head; undefined → snapshot. */
  catchUp(seq: number, filter: ViewFilter): Buffer[] | undefined {
    return this.catchUpGroups(seq, filter.def)?.itemsFor(filter.node).items;
  }

  /**
   * What every client of a view at position `seq` needs to reach the head, grouped by node: one
   * walk of the history for all of the view's nodes. Undefined when it no longer reaches back.
   */
  catchUpGroups(seq: number, def: ViewDef): NodeGroups | undefined {
    if (!this.canCatchUp(seq)) return undefined;
    const changed = this.log.changedSince(seq);
    return changed && NodeGroups.ofEntries(changed, def, seq);
  }

  /** Live entries of the kinds a view carries, for building snapshots (and its tombstones, filter.tombstones). */
  *entries(filter: ViewFilter): Generator<Entry> {
    for (const kind of filter.def.kinds) {
      if (filter.def.nodeScoped.has(kind)) yield* this.live.ofNode(kind, filter.node);
      else yield* this.live.ofKind(kind);
    }
    if (filter.tombstones) for (const e of this.byKey.values()) if (!e.value && filter.matches(e.kind, e.node)) yield e;
  }

  /** The view's digest in `buckets` buckets (PROTOCOL.md "Digest resync"). */
  digest(filter: ViewFilter, buckets: number): Uint32Array {
    const d = this.checksums.sharedDigest(filter.syncer, buckets);
    // A node's own part is a few keys (its Node, its status): added here rather than kept per node.
    for (const kind of filter.def.nodeScoped) {
      for (const e of this.live.ofNode(kind, filter.node)) xorInto(d, e.bits & (buckets - 1), e.hash);
    }
    return d;
  }

  /**
   * What a client whose cache has digest `theirs` lacks: the buckets that differ from the view's,
   * with every live item of the view in them, bucket by bucket, as of the head.
   */
  repair(filter: ViewFilter, theirs: Uint32Array): { seq: number; buckets: number[]; items: Buffer[] } {
    const buckets = this.differingBuckets(filter, theirs);
    return { seq: this._head, buckets, items: this.inBuckets(filter, buckets, theirs.length / 2) };
  }

  /** The buckets (ascending) where digest `theirs` differs from the view's. */
  differingBuckets(filter: ViewFilter, theirs: Uint32Array): number[] {
    return differing(this.digest(filter, theirs.length / 2), theirs);
  }

  /** The view's live items in `buckets` (ascending, out of `count`), bucket by bucket. */
  inBuckets(filter: ViewFilter, buckets: readonly number[], count: number): Buffer[] {
    if (buckets.length === 0) return [];
    // The bucket index visits FINE_BUCKETS / count lists per bucket, holding that share of every
    // key of the store; walking the view visits its keys once. Whichever is fewer.
    const viaIndex = (buckets.length / count) * (FINE_BUCKETS + this.byKey.size);
    if (viaIndex < this.checksums.get(filter).count) {
      const items: Buffer[] = [];
      for (const b of buckets) {
        for (const e of this.buckets.inBucket(b, count)) if ((e.value || filter.tombstones) && filter.matches(e.kind, e.node)) items.push(e.item);
      }
      return items;
    }
    const wanted = new Uint8Array(count);
    for (const b of buckets) wanted[b] = 1;
    const byBucket = new Map<number, Buffer[]>();
    for (const e of this.entries(filter)) {
      const b = e.bits & (count - 1);
      if (!wanted[b]) continue;
      const l = byBucket.get(b);
      if (l) l.push(e.item);
      else byBucket.set(b, [e.item]);
    }
    return buckets.flatMap((b) => byBucket.get(b) ?? []);
  }

  checksum(filter: ViewFilter): Checksum {
    return this.checksums.get(filter);
  }

  /**
   * No client of the view is left to ask for its checksum or digest: its hashes need not be kept
   * on every change until one is asked for again (then they are summed from the live entries).
   */
  releaseChecksums(view: ViewName): void {
    this.checksums.release(view);
  }

  /** Number of keys held, tombstones included. */
  get size(): number { return this.byKey.size; }
}

/** A change's wire item, and its canonical value bytes where they lie inside it (ending at valueEnd). */
function entryItem(c: Change): { item: Buffer; value: Buffer | null; valueEnd: number } {
  const item = encodeItem(c.key, c.value, c.revision);
  const valueEnd = item.length - strSize(Buffer.byteLength(c.revision));
  return { item, value: c.value ? item.subarray(valueEnd - c.value.length, valueEnd) : null, valueEnd };
}
