// The client's copy of its view: values decoded once, plus each key's hash so the view checksum
// can be kept as the server keeps it (XOR over entries) and checked without re-encoding.
import { parseKey } from '../src/model/kinds.js';
import { entryHash, halvesHex, halvesToBigInt, keyBits } from '../src/protocol/checksum.js';
import { unpackr } from '../src/protocol/codec.js';
import { bucketCountFor, DIGEST_SCHEME, digestToWire, emptyDigest } from '../src/protocol/digest.js';
import { RawItem } from '../src/protocol/frames.js';
import type { CacheDigest } from '../src/protocol/messages.js';

/**
 * One changed key as the agent hears of it. The value is decoded on first read: decoding is most
 * of a client's cost per update, and an agent that skips an update by key or kind, or only needs
 * the bytes, should not pay for it. The bytes too are a view made when first read.
 */
export class Update {
  private decoded: Record<string, any> | null | undefined;
  private view: Buffer | null | undefined;

  constructor(
    readonly key: string,
    readonly revision: string,
    /** The frame holding the value at [start, end); null (start -1) for a deletion. */
    private readonly frame: Buffer | null,
    private readonly start: number,
    private readonly end: number,
    decoded?: Record<string, any> | null,
  ) {
    this.decoded = decoded;
  }

  /**
   * The value's canonical msgpack bytes as received (PROTOCOL.md); null for a deletion. A view
   * into the received frame: copy it to keep it beyond the callback without pinning the frame.
   */
  get bytes(): Buffer | null {
    if (this.view === undefined) this.view = this.frame && this.start >= 0 ? this.frame.subarray(this.start, this.end) : null;
    return this.view;
  }

  /** The Calico kind, from the key's path. */
  get kind(): string { return kindOf(this.key); }

  /** The resource with `metadata.resourceVersion` set to the revision; null for a deletion. */
  get value(): Record<string, any> | null {
    if (this.decoded === undefined) this.decoded = this.frame && this.start >= 0 ? decodeValue(this.frame, this.start, this.end, this.revision) : null;
    return this.decoded;
  }

  toJSON(): object {
    return { key: this.key, kind: this.kind, value: this.value, revision: this.revision };
  }
}

export interface CachedValue {
  /** null when the cache keeps hashes only (keepValues false). */
  value: Record<string, any> | null;
  revision: string;
  /** The entry hash (PROTOCOL.md). */
  readonly hash: bigint;
}

/**
 * A cached key as held: its entry hash in two signed 32-bit halves (XOR-ed into the checksum with
 * no allocation), and its digest bucket bits, worked out the first time a digest needs them.
 */
class Slot implements CachedValue {
  bits = -1;
  constructor(
    public value: Record<string, any> | null, public revision: string, public hi: number, public lo: number,
    /** The mark (ClientCache.mark) of the last snapshot or repair that contained the key. */
    public seen: number,
  ) {}
  get hash(): bigint { return halvesToBigInt(this.hi, this.lo); }
}

/** Where a sweep may delete: everywhere (snapshot), or the buckets a digest resync replaces. */
export interface SweepScope { buckets: number; differ: ReadonlySet<number> }

const NO_BYTES = Buffer.alloc(0);

export class ClientCache {
  private readonly map = new Map<string, Slot>();
  /** The view checksum: XOR of every slot's hash, in halves. */
  private xhi = 0;
  private xlo = 0;
  /**
   * While a snapshot or repair is under way, the number its keys are stamped with (Slot.seen);
   * what in scope is not stamped with it is swept at its end. 0 when none is: a number per
   * snapshot costs nothing per key, where a set of the keys seen cost a hash insertion each.
   */
  private mark = 0;
  private lastMark = 0;
  private scope: SweepScope | undefined;
  /** The newest datastore revision applied (numeric revisions only). */
  private maxRev = 0;

  /**
   * `keepValues` false keeps only hashes, enough to verify checksums; the updates reported still
   * carry the values (decoded when read), they are just not kept.
   */
  constructor(private readonly keepValues = true) {}

  get size(): number { return this.map.size; }
  get(key: string): CachedValue | undefined { return this.map.get(key); }
  entries(): IterableIterator<[string, CachedValue]> { return this.map.entries(); }
  checksum(): { value: bigint; count: number } { return { value: halvesToBigInt(this.xhi, this.xlo), count: this.map.size }; }
  /** The checksum's value in its wire form. */
  checksumHex(): string { return halvesHex(this.xhi, this.xlo); }
  get revision(): number { return this.maxRev; }

  /**
   * Applies a frame's items, all or none: the values to keep are decoded before anything
   * changes, so a frame with one undecodable value is refused whole. Returns the updates to
   * report: the items that changed something.
   */
  applyAll(items: readonly RawItem[]): Update[] {
    const map = this.map;
    const keep = this.keepValues;
    let decoded: (Record<string, any> | undefined)[] | undefined;
    if (keep) {
      decoded = new Array(items.length);
      for (let i = 0; i < items.length; i++) {
        const it = items[i]!;
        if (it.start < 0) continue;
        const cur = map.get(it.key);
        if (!cur || cur.hi !== it.hi || cur.lo !== it.lo) decoded[i] = decodeValue(it.frame, it.start, it.end, it.revision);
      }
    }
    const out: Update[] = [];
    const mark = this.mark;
    for (let i = 0; i < items.length; i++) {
      const it = items[i]!;
      const key = it.key;
      const revision = it.revision;
      // Only plain integers: the hello sends it back as a decimal string ("1e21" would not be one).
      const rev = Number(revision);
      if (rev > this.maxRev && Number.isSafeInteger(rev)) this.maxRev = rev;
      const cur = map.get(key);
      if (it.start < 0) {
        if (!cur) continue;
        map.delete(key);
        this.xhi ^= cur.hi;
        this.xlo ^= cur.lo;
        out.push(new Update(key, revision, null, -1, -1, null));
        continue;
      }
      const { hi, lo } = it;
      if (cur && cur.hi === hi && cur.lo === lo) {
        // The same value from another replica may carry an older revision: the newer one stays.
        if (!(Number(cur.revision) > rev)) cur.revision = revision;
        if (mark) cur.seen = mark;
        continue;
      }
      const value = keep ? (decoded![i] ?? decodeValue(it.frame, it.start, it.end, revision)) : null;
      if (cur) {
        this.xhi ^= cur.hi ^ hi;
        this.xlo ^= cur.lo ^ lo;
        cur.value = value;
        cur.revision = revision;
        cur.hi = hi;
        cur.lo = lo;
        if (mark) cur.seen = mark;
      } else {
        map.set(key, new Slot(value, revision, hi, lo, mark));
        this.xhi ^= hi;
        this.xlo ^= lo;
      }
      out.push(new Update(key, revision, it.frame, it.start, it.end, keep ? value : undefined));
    }
    return out;
  }

  /** Applies one key's canonical value bytes (null: a deletion), hashed here; as applyAll. */
  apply(key: string, raw: Buffer | null, revision: string): Update | undefined {
    const it = new RawItem(key, revision, raw ?? NO_BYTES, 0, raw ? 0 : -1, raw ? raw.length : -1);
    if (raw) {
      const h = entryHash(key, raw);
      it.hi = Number(h >> 32n) | 0;
      it.lo = Number(h & 0xffffffffn) | 0;
    }
    return this.applyAll([it])[0];
  }

  beginMark(scope?: SweepScope): void {
    this.mark = ++this.lastMark;
    this.scope = scope;
  }

  get marking(): boolean { return this.mark !== 0; }

  /**
   * Ends a snapshot or repair: deletes every key in scope that it did not contain. The datastore
   * revision of such a deletion is unknown; it is reported with the key's last known revision.
   * The checksum is recomputed from the entries: a resync is where a cache that went wrong is put
   * right, so the running XOR must not carry an old error across it.
   */
  sweep(): Update[] {
    const mark = this.mark;
    const scope = this.scope;
    this.abandonMark();
    if (!mark) return [];
    const gone: Update[] = [];
    let xhi = 0;
    let xlo = 0;
    // After a whole snapshot the cache is the server's state: so is its newest revision (a
    // revision from a hostile server or a restored datastore must not outlive it).
    if (!scope) this.maxRev = 0;
    for (const [key, cur] of this.map) {
      if (cur.seen === mark || (scope && !scope.differ.has(bitsOf(key, cur) & (scope.buckets - 1)))) {
        xhi ^= cur.hi;
        xlo ^= cur.lo;
        const rev = Number(cur.revision);
        if (!scope && Number.isSafeInteger(rev) && rev > this.maxRev) this.maxRev = rev;
        continue;
      }
      this.map.delete(key);
      gone.push(new Update(key, cur.revision, null, -1, -1, null));
    }
    this.xhi = xhi;
    this.xlo = xlo;
    return gone;
  }

  abandonMark(): void {
    this.mark = 0;
    this.scope = undefined;
  }

  /** The cache's digest for a digest resync; undefined when empty (a snapshot costs the same). */
  digest(): CacheDigest | undefined {
    if (this.map.size === 0) return undefined;
    const buckets = bucketCountFor(this.map.size);
    const d = emptyDigest(buckets);
    for (const [key, cur] of this.map) {
      const b = bitsOf(key, cur) & (buckets - 1);
      d[2 * b] ^= cur.hi;
      d[2 * b + 1] ^= cur.lo;
    }
    return { scheme: DIGEST_SCHEME, buckets, hashes: digestToWire(d) };
  }
}

function bitsOf(key: string, slot: Slot): number {
  if (slot.bits < 0) slot.bits = keyBits(key);
  return slot.bits;
}

/** Decodes frame[start, end) in place: a view per value would cost msgpackr a DataView each. */
function decodeValue(frame: Buffer, start: number, end: number, revision: string): Record<string, any> {
  const v = unpackr.unpack(frame, { start, end });
  // The revision travels beside the value; agents expect it back where Kubernetes puts it.
  if (v && typeof v === 'object' && v.metadata && typeof v.metadata === 'object') v.metadata.resourceVersion = revision;
  return v;
}

// The kind is read on demand (many agents dispatch on the key alone) and depends only on the
// path's collection, so it is remembered per collection prefix: parsing each path showed in profiles.
const kindByPrefix = new Map<string, string>();

function kindOf(key: string): string {
  const prefix = key.slice(0, key.lastIndexOf('/'));
  let kind = kindByPrefix.get(prefix);
  if (kind === undefined) {
    kind = parseKey(key)?.kind ?? 'Unknown';
    if (kindByPrefix.size < 10_000) kindByPrefix.set(prefix, kind);
  }
  return kind;
}
