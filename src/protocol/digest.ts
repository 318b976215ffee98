// Cache digests for resync (PROTOCOL.md "Digest resync"). A digest splits a view into B buckets,
// B a power of two, by the low bits of each key's hash; a bucket's hash is the XOR of the entry
// hashes (checksum.ts) of the keys in it. Server and client compute it alike from the same key
// and value bytes, so a replica or a restarted server can tell which buckets a client has wrong
// without knowing where the client was, and send only those.
//
// A hash is kept as two 32-bit halves in a Uint32Array (hi at 2b, lo at 2b + 1): XOR-ing and
// folding numbers costs nothing next to allocating a BigInt per bucket.

/** Bumped whenever what is hashed, or how, changes; a server falls back to a snapshot on others. */
export const DIGEST_SCHEME = 1;
/** Buckets a client may ask for at most (128 KiB of hashes in the hello). */
export const MAX_DIGEST_BUCKETS = 1 << 14;
/** Keys per bucket a client aims at: the price of a wrong key is resending its bucket. */
const KEYS_PER_BUCKET = 16;

/** The bucket count for a cache of `keys` keys: a power of two near keys / 16, within bounds. */
export function bucketCountFor(keys: number): number {
  let b = 1;
  while (b < MAX_DIGEST_BUCKETS && b * KEYS_PER_BUCKET < keys) b *= 2;
  return b;
}

export const isBucketCount = (n: unknown): n is number =>
  typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= MAX_DIGEST_BUCKETS && (n & (n - 1)) === 0;

export function emptyDigest(buckets: number): Uint32Array {
  return new Uint32Array(2 * buckets);
}

/** XORs an entry hash into bucket `b`. */
export function xorInto(d: Uint32Array, b: number, hash: bigint): void {
  d[2 * b] ^= Number(hash >> 32n);
  d[2 * b + 1] ^= Number(hash & 0xffffffffn);
}

/** Folds a digest onto `buckets` (a power of two no larger): bucket b takes every i ≡ b mod buckets. */
export function fold(fine: Uint32Array, buckets: number): Uint32Array {
  const out = emptyDigest(buckets);
  const mask = 2 * buckets - 1;
  for (let i = 0; i < fine.length; i += 2) {
    const j = i & mask;
    out[j] ^= fine[i]!;
    out[j + 1] ^= fine[i + 1]!;
  }
  return out;
}

/** Buckets whose hashes differ, ascending. */
export function differing(a: Uint32Array, b: Uint32Array): number[] {
  const out: number[] = [];
  for (let i = 0; i < a.length; i += 2) if (a[i] !== b[i] || a[i + 1] !== b[i + 1]) out.push(i / 2);
  return out;
}

/** Wire form: 8 bytes per bucket, each hash big-endian. */
export function digestToWire(d: Uint32Array): Buffer {
  const buf = Buffer.allocUnsafe(4 * d.length);
  for (let i = 0; i < d.length; i++) buf.writeUInt32BE(d[i]!, 4 * i);
  return buf;
}

export function digestFromWire(buf: Uint8Array): Uint32Array {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const d = new Uint32Array(buf.byteLength / 4);
  for (let i = 0; i < d.length; i++) d[i] = view.getUint32(4 * i);
  return d;
}

/** A list of bucket numbers on the wire: 4 bytes each, big-endian. */
export function bucketsToWire(buckets: readonly number[]): Buffer {
  const buf = Buffer.allocUnsafe(4 * buckets.length);
  buckets.forEach((b, i) => buf.writeUInt32BE(b, 4 * i));
  return buf;
}

export function bucketsFromWire(buf: Uint8Array): number[] {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  return Array.from({ length: buf.byteLength >> 2 }, (_, i) => view.getUint32(4 * i));
}

/**
 * Position of a key in a snapshot or repair: its key bits reversed. In that order the keys of any
 * bucket, for every bucket count, are contiguous, so a transfer cut midway leaves the client
 * with whole buckets right and costs only the rest on the next digest resync.
 */
export function bucketOrder(keyBits: number): number {
  let x = keyBits >>> 0;
  x = ((x >>> 1) & 0x55555555) | ((x & 0x55555555) << 1);
  x = ((x >>> 2) & 0x33333333) | ((x & 0x33333333) << 2);
  x = ((x >>> 4) & 0x0f0f0f0f) | ((x & 0x0f0f0f0f) << 4);
  x = ((x >>> 8) & 0x00ff00ff) | ((x & 0x00ff00ff) << 8);
  return ((x >>> 16) | (x << 16)) >>> 0;
}
