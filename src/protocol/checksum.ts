// Entry hashes and view checksums: xxh64 (seed 0) of the key as a msgpack string followed by the
// canonical value bytes as a msgpack bin, XOR-ed over a view's live entries. Those are exactly the
// contiguous bytes of an item on the wire ([key, bin(value), revision] after the array header), so
// both ends hash an item where it lies instead of assembling the input. XOR makes the sum
// order-independent and incrementally maintainable: adding and removing an entry are the same
// operation.
//
// The hash runs on xxhash-wasm's WebAssembly module, instantiated here rather than through the
// package's wrapper, which copies each input into the module's memory from a view of its own: in
// Node 20 making a view (or copying a range) costs more than hashing a 450-byte item. Here a frame
// is copied in once and each item hashed where it lies. Pinned against the wrapper by a test.
import { readFileSync } from 'node:fs';
import { binSize, strSize, writeBinHeader, writeStr } from './msgpack-raw.js';

interface XxhashExports { mem: WebAssembly.Memory; xxh64(ptr: number, len: number, seed: bigint): bigint }
const wasmFile = new URL('../workerd/xxhash.wasm', import.meta.resolve('xxhash-wasm'));
const { exports: wasm } = (await WebAssembly.instantiate(readFileSync(wasmFile))).instance as unknown as { exports: XxhashExports };
let mem = Buffer.from(wasm.mem.buffer);

function reserve(len: number): void {
  if (len <= mem.length) return;
  wasm.mem.grow(Math.ceil((len - mem.length) / 65536));
  mem = Buffer.from(wasm.mem.buffer);
}

/** Copies `bytes` into the hash module for `hashLoaded`; valid until the next load or `entryHash`. */
export function loadForHashing(bytes: Uint8Array): void {
  reserve(bytes.length);
  mem.set(bytes, 0);
}

/** The entry hash of loaded bytes `[start, end)` laid out as msgpack str(key) ‖ bin(canonical value). */
export function hashLoaded(start: number, end: number): bigint {
  // The module returns a signed i64; the checksum is defined over the unsigned value.
  return BigInt.asUintN(64, wasm.xxh64(start, end - start, 0n));
}

/** Writes the entry hash of loaded bytes `[start, end)` at byte `at` of `out`, big-endian. */
export function writeHashLoaded(start: number, end: number, out: DataView, at: number): void {
  // Signed or not, a 64-bit integer's big-endian bytes are the same: no conversion needed.
  out.setBigInt64(at, wasm.xxh64(start, end - start, 0n));
}

const scratch = new DataView(new ArrayBuffer(8));
/** The entry hash of loaded bytes `[start, end)` as signed 32-bit halves: out[0] high, out[1] low. */
export function hashLoadedHalves(start: number, end: number, out: Int32Array): void {
  scratch.setBigInt64(0, wasm.xxh64(start, end - start, 0n));
  out[0] = scratch.getInt32(0);
  out[1] = scratch.getInt32(4);
}

/** The entry hash of a key and its canonical value bytes. */
export function entryHash(key: string, value: Uint8Array): bigint {
  const keyLen = Buffer.byteLength(key);
  reserve(strSize(keyLen) + binSize(value.length));
  const n = writeBinHeader(mem, writeStr(mem, 0, key, keyLen), value.length);
  mem.set(value, n);
  return hashLoaded(0, n + value.length);
}

/**
 * A key's bucket bits for digests: the low 32 bits of xxh64 (seed 0) of its UTF-8 bytes. Not the
 * entry hash: a key stays in its bucket whatever its value.
 */
export function keyBits(key: string): number {
  reserve(3 * key.length);
  const len = mem.write(key, 0);
  return Number(BigInt.asUintN(32, wasm.xxh64(0, len, 0n)));
}

/** The wire form of a checksum: 16 lowercase hex digits. */
export function checksumHex(x: bigint): string {
  return x.toString(16).padStart(16, '0');
}

/**
 * A hash kept as two signed 32-bit halves (the client's form: XOR-ing numbers allocates nothing)
 * as one unsigned number.
 */
export function halvesToBigInt(hi: number, lo: number): bigint {
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
}

/** The wire form of a checksum kept as halves: 16 lowercase hex digits. */
export function halvesHex(hi: number, lo: number): string {
  return (hi >>> 0).toString(16).padStart(8, '0') + (lo >>> 0).toString(16).padStart(8, '0');
}
