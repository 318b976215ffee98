// Entry hashes and view checksums: xxh64 (seed 0) of UTF-8(key) ‖ 0x00 ‖ canonical value bytes,
// XOR-ed over a view's live entries. XOR makes the sum order-independent and incrementally
// maintainable: adding and removing an entry are the same operation.
import xxhash from 'xxhash-wasm';

const { h64Raw } = await xxhash();
let scratch = Buffer.allocUnsafe(64 * 1024);

export function entryHash(key: string, value: Uint8Array): bigint {
  const need = Buffer.byteLength(key) + 1 + value.length;
  if (need > scratch.length) scratch = Buffer.allocUnsafe(Math.max(need, scratch.length * 2));
  const n = scratch.write(key, 0, 'utf8');
  scratch[n] = 0;
  scratch.set(value, n + 1);
  return h64Raw(scratch.subarray(0, n + 1 + value.length));
}

/** The wire form of a checksum: 16 lowercase hex digits. */
export function checksumHex(x: bigint): string {
  return x.toString(16).padStart(16, '0');
}
