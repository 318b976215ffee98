// The client's copy of its view: values decoded once, plus each key's hash so the view checksum
// can be kept as the server keeps it (XOR over entries) and checked without re-encoding.
import { parseKey } from '../src/model/kinds.js';
import { entryHash, keyBits } from '../src/protocol/checksum.js';
import { unpackr } from '../src/protocol/codec.js';
import { bucketCountFor, DIGEST_SCHEME, digestToWire, emptyDigest, xorInto } from '../src/protocol/digest.js';
import type { RawItem } from '../src/protocol/frames.js';
import type { CacheDigest } from '../src/protocol/messages.js';

/**
 * One changed key as the agent hears of it. The value is decoded on first read: decoding is most
 * of a client's cost per update, and an agent that skips an update by key or kind, or only needs
 * the bytes, should not pay for it.
 */
export class Update {
  private decoded: Record<string, any> | null | undefined;

  constructor(
    readonly key: string,
    readonly revision: string,
    /**
     * The value's canonical msgpack bytes as received (PROTOCOL.md); null for a deletion. A view
     * into the received frame: copy it to keep it beyond the callback without pinning the frame.
     */
    readonly bytes: Buffer | null,
    decoded?: Record<string, any> | null,
  ) {
    this.decoded = decoded;
  }

  /** The Calico kind, from the key's path. */
  get kind(): string { return kindOf(this.key); }

  /** The resource with `metadata.resourceVersion` set to the revision; null for a deletion. */
  get value(): Record<string, any> | null {
    if (this.decoded === undefined) this.decoded = this.bytes && decodeValue(this.bytes, this.revision);
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
  hash: bigint;
}

/** A cached key as held: its digest bucket bits are worked out the first time a digest needs them. */
interface Slot extends CachedValue { bits?: number }

/** Where a sweep may delete: everywhere (snapshot), or the buckets a digest resync replaces. */
export interface SweepScope { buckets: number; differ: ReadonlySet<number> }

export class ClientCache {
  private readonly map = new Map<string, Slot>();
  private xor = 0n;
  /** Keys seen since a snapshot or repair began; what is not seen again in scope is swept at its end. */
  private marked: Set<string> | undefined;
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
  checksum(): { value: bigint; count: number } { return { value: this.xor, count: this.map.size }; }
  get revision(): number { return this.maxRev; }

  /**
   * Applies one item; returns the update to report, or undefined when nothing changed. Items from
   * a frame come with their entry hash, taken in place.
   */
  /**
   * Applies a frame's items, all or none: the values to keep are decoded before anything
   * changes, so a frame with one undecodable value is refused whole.
   */
  applyAll(items: readonly RawItem[]): Update[] {
    const decoded = this.keepValues
      ? items.map((it) => (it.value && this.map.get(it.key)?.hash !== it.hash ? decodeValue(it.value, it.revision) : undefined))
      : undefined;
    const out: Update[] = [];
    for (let i = 0; i < items.length; i++) {
      const it = items[i]!;
      const u = this.apply(it.key, it.value, it.revision, it.hash, decoded?.[i]);
      if (u) out.push(u);
    }
    return out;
  }

  apply(key: string, raw: Buffer | null, revision: string, hash = raw ? entryHash(key, raw) : 0n, decoded?: Record<string, any>): Update | undefined {
    this.marked?.add(key);
    // Only plain integers: the hello sends it back as a decimal string ("1e21" would not be one).
    const rev = Number(revision);
    if (Number.isSafeInteger(rev) && rev > this.maxRev) this.maxRev = rev;
    const cur = this.map.get(key);
    if (raw === null) {
      if (!cur) return undefined;
      this.map.delete(key);
      this.xor ^= cur.hash;
      return new Update(key, revision, null, null);
    }
    if (cur && cur.hash === hash) {
      // The same value from another replica may carry an older revision: the newer one stays.
      if (!(Number(cur.revision) > rev)) cur.revision = revision;
      return undefined;
    }
    const value = this.keepValues ? (decoded ?? decodeValue(raw, revision)) : undefined;
    if (cur) {
      this.xor ^= cur.hash;
      cur.value = value ?? null;
      cur.revision = revision;
      cur.hash = hash;
    } else {
      this.map.set(key, { value: value ?? null, revision, hash });
    }
    this.xor ^= hash;
    return new Update(key, revision, raw, value);
  }

  beginMark(scope?: SweepScope): void {
    this.marked = new Set();
    this.scope = scope;
  }

  get marking(): boolean { return this.marked !== undefined; }

  /**
   * Ends a snapshot or repair: deletes every key in scope that it did not contain. The datastore
   * revision of such a deletion is unknown; it is reported with the key's last known revision.
   * The checksum is recomputed from the entries: a resync is where a cache that went wrong is put
   * right, so the running XOR must not carry an old error across it.
   */
  sweep(): Update[] {
    const seen = this.marked;
    const scope = this.scope;
    this.abandonMark();
    if (!seen) return [];
    const gone: Update[] = [];
    let xor = 0n;
    // After a whole snapshot the cache is the server's state: so is its newest revision (a
    // revision from a hostile server or a restored datastore must not outlive it).
    if (!scope) this.maxRev = 0;
    for (const [key, cur] of this.map) {
      if (seen.has(key) || (scope && !scope.differ.has(bitsOf(key, cur) & (scope.buckets - 1)))) {
        xor ^= cur.hash;
        const rev = Number(cur.revision);
        if (!scope && Number.isSafeInteger(rev) && rev > this.maxRev) this.maxRev = rev;
        continue;
      }
      this.map.delete(key);
      gone.push(new Update(key, cur.revision, null, null));
    }
    this.xor = xor;
    return gone;
  }

  abandonMark(): void {
    this.marked = undefined;
    this.scope = undefined;
  }

  /** The cache's digest for a digest resync; undefined when empty (a snapshot costs the same). */
  digest(): CacheDigest | undefined {
    if (this.map.size === 0) return undefined;
    const buckets = bucketCountFor(this.map.size);
    const d = emptyDigest(buckets);
    for (const [key, cur] of this.map) xorInto(d, bitsOf(key, cur) & (buckets - 1), cur.hash);
    return { scheme: DIGEST_SCHEME, buckets, hashes: digestToWire(d) };
  }
}

function bitsOf(key: string, slot: Slot): number {
  return (slot.bits ??= keyBits(key));
}

function decodeValue(raw: Buffer, revision: string): Record<string, any> {
  const v = unpackr.unpack(raw);
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
