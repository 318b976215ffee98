// Entry hashes and view checksums: xxh64 (seed 0) of the key as a msgpack string followed by the
// canonical value bytes as a msgpack bin, XOR-ed over a view's live entries. Those are exactly the
// contiguous bytes of an item on the wire ([key, bin(value), revision] after the array header), so
// both ends hash the item in place, without copying. XOR makes the sum order-independent and incrementally
// maintainable: adding and removing an entry are the same operation.
import xxhash from 'xxhash-wasm';
import { binSize, strSize, writeBinHeader, writeStr } from './msgpack-raw.js';

const { h64Raw } = await xxhash();
let scratch = Buffer.allocUnsafe(64 * 1024);

/** The entry hash of bytes already laid out as msgpack str(key) ‖ bin(canonical value). */
export const hashEntryBytes: (entry: Uint8Array) => bigint = h64Raw;

/** The entry hash of a key and its canonical value bytes. */
export function entryHash(key: string, value: Uint8Array): bigint {
  const keyLen = Buffer.byteLength(key);
  const need = strSize(keyLen) + binSize(value.length);
  if (need > scratch.length) scratch = Buffer.allocUnsafe(Math.max(need, scratch.length * 2));
  const n = writeBinHeader(scratch, writeStr(scratch, 0, key, keyLen), value.length);
  scratch.set(value, n);
  return h64Raw(scratch.subarray(0, n + value.length));
}

/** The wire form of a checksum: 16 lowercase hex digits. */
export function checksumHex(x: bigint): string {
  return x.toString(16).padStart(16, '0');
}
