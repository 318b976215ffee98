// Frames that carry updates (`snapshot`, `delta`) are assembled from pre-encoded items, never
// re-encoded: an item is the msgpack array [key, bin(value) | nil, revision] with the value's
// canonical bytes spliced in as they sit in the store. The bin wrapper lets a reader step over a
// value in O(1) instead of walking it. One frame is built once and written to every client that
// needs it.
import { arrayHeader, binSize, MsgReader, MsgpackFormatError, NOT_SCALAR, strSize, writeBinHeader, writeStr } from './msgpack-raw.js';
import { CloseCode } from './messages.js';
import { halvesHex, halvesToBigInt, hashLoadedHalves, loadForHashing, writeHashLoaded } from './checksum.js';
import { ProtocolError, packr, unpackr } from './codec.js';

/** The item [key, bin(value) | nil, revision], written in one allocation. */
export function encodeItem(key: string, value: Buffer | null, revision: string): Buffer {
  const keyLen = Buffer.byteLength(key);
  const revLen = Buffer.byteLength(revision);
  const item = Buffer.allocUnsafe(1 + strSize(keyLen) + (value ? binSize(value.length) : 1) + strSize(revLen));
  item[0] = 0x93;
  let o = writeStr(item, 1, key, keyLen);
  if (value) {
    o = writeBinHeader(item, o, value.length);
    o += value.copy(item, o);
  }
  else item[o++] = 0xc0;
  writeStr(item, o, revision, revLen);
  return item;
}

export interface DeltaHead { t: 'delta'; from: number; to: number }
export interface SnapshotHead { t: 'snapshot'; seq: number; i: number; last: boolean }
/**
 * A digest resync reply, chunked like a snapshot. The first chunk names the bucket count and the
 * buckets being replaced (`differ`, 4 bytes each, big-endian): the client deletes its keys in
 * those buckets that the reply does not contain.
 */
export interface RepairHead { t: 'repair'; seq: number; i: number; last: boolean; buckets?: number; differ?: Buffer }
type ItemsHead = DeltaHead | SnapshotHead | RepairHead;

/**
 * A map frame whose last field `u` is the array of the given items. A delta frame also carries
 * `h` just before it: the items' entry hashes (8 bytes each, big-endian; zeros for a deletion),
 * once for every client that gets it, instead of by each of them: `hashes` (by the same index as
 * `items`, 0n for a deletion) when the caller has them, as the store does, else taken here from
 * the item bytes as they lie in the frame. Snapshot and repair chunks, which travel compressed,
 * carry none: 8 incompressible bytes an item grew a compressed snapshot by 13-22%, more than
 * hashing the items costs a client.
 */
export function itemsFrame(head: ItemsHead, items: readonly Buffer[], start = 0, end = items.length, hashes?: readonly bigint[]): Buffer {
  const n = end - start;
  const hashed = head.t === 'delta';
  const h = packr.pack(hashed ? { ...head, h: EMPTY_BIN, u: [] } : { ...head, u: [] });
  // The head ends with `u` and an empty fixarray (0x90), after `h` and an empty bin (c4 00).
  const headLen = h.length - (hashed ? 5 : 3);
  const hashesAt = headLen + (hashed ? binSize(8 * n) - 8 * n : 0);
  const uAt = hashesAt + (hashed ? 8 * n : 0);
  const uHeader = arrayHeader(n);
  let itemBytes = 0;
  for (let i = start; i < end; i++) itemBytes += items[i]!.length;
  const frame = Buffer.allocUnsafe(uAt + U_FIELD.length + uHeader.length + itemBytes);
  frame.set(h.subarray(0, headLen), 0);
  if (hashed) writeBinHeader(frame, headLen, 8 * n);
  frame.set(U_FIELD, uAt);
  frame.set(uHeader, uAt + U_FIELD.length);
  const itemsAt = uAt + U_FIELD.length + uHeader.length;
  for (let i = start, o = itemsAt; i < end; i++) {
    const item = items[i]!;
    frame.set(item, o);
    o += item.length;
  }
  if (!hashed) return frame;
  const out = new DataView(frame.buffer, frame.byteOffset, frame.length);
  if (hashes) {
    for (let i = start; i < end; i++) out.setBigUint64(hashesAt + 8 * (i - start), hashes[i]!);
    return frame;
  }
  // Each item's hashed bytes, str(key) ‖ bin(value), are found by stepping over them in place.
  loadForHashing(frame);
  const r = new MsgReader(frame, itemsAt);
  for (let i = 0; i < n; i++) {
    r.arrayLength();
    const keyAt = r.pos;
    r.skip();
    if (r.nil()) frame.fill(0, hashesAt + 8 * i, hashesAt + 8 * i + 8);
    else {
      r.bin();
      writeHashLoaded(keyAt, r.pos, out, hashesAt + 8 * i);
    }
    r.skip();
  }
  return frame;
}

const U_FIELD = Buffer.from([0xa1, 0x75]);
const EMPTY_BIN = Buffer.alloc(0);

/**
 * Splits items into frames of about `maxBytes` each (an item larger than that gets its own);
 * `hashes` as itemsFrame takes them.
 */
export function* chunkFrames(
  items: readonly Buffer[], maxBytes: number, head: (index: number, last: boolean) => ItemsHead, hashes?: readonly bigint[],
): Generator<Buffer> {
  let start = 0;
  let index = 0;
  while (start < items.length || index === 0) {
    let end = start;
    let bytes = 0;
    while (end < items.length && (end === start || bytes + items[end]!.length <= maxBytes)) bytes += items[end++]!.length;
    yield itemsFrame(head(index++, end >= items.length), items, start, end, hashes);
    start = end;
  }
}

const MAX_ITEMS_PER_FRAME = 1 << 20;

/**
 * One item of a received frame, read in place: the value stays bytes in the frame (a view is made
 * only when asked for) and the entry hash is kept as two signed 32-bit halves, so taking an item
 * allocates neither a Buffer nor a BigInt.
 */
export class RawItem {
  /** The entry hash's high and low 32 bits (PROTOCOL.md); 0 for a deletion. */
  hi = 0;
  lo = 0;
  constructor(
    readonly key: string,
    readonly revision: string,
    /** The frame the item lies in. */
    readonly frame: Buffer,
    /** Where the item's key begins in the frame: the entry hash covers [keyAt, end). */
    readonly keyAt: number,
    /** The canonical value bytes are frame[start, end); start is -1 for a deletion. */
    readonly start: number,
    readonly end: number,
  ) {}

  /** Canonical value bytes, a view into the frame; null for a deletion. */
  get value(): Buffer | null { return this.start < 0 ? null : this.frame.subarray(this.start, this.end); }

  /** The entry hash as one number; 0n for a deletion. */
  get hash(): bigint { return halvesToBigInt(this.hi, this.lo); }
}
export interface DecodedFrame { msg: Record<string, unknown> & { t: string }; items?: RawItem[] }

/**
 * What to make of a frame's `h`: `trust` takes the server's hashes as they are; `verify` also
 * hashes every item and refuses the frame when one differs. Items of a frame without `h` (an
 * older server) are hashed either way.
 */
export type ItemHashes = 'trust' | 'verify';

/**
 * Decodes any server frame. Items keep their value as raw bytes so the client can hash or decode
 * exactly what the server sent; the caller decodes values it wants as objects. `hashes` is the
 * client's setting (verifyItemHashes); checking by default suits tests and tools.
 */
export function decodeServerFrame(buf: Buffer, hashes: ItemHashes = 'verify'): DecodedFrame {
  try {
    const r = new MsgReader(buf);
    const n = r.mapLength();
    const msg: Record<string, unknown> = {};
    let items: RawItem[] | undefined;
    let hashesAt = -1;
    let hashesEnd = -1;
    for (let i = 0; i < n; i++) {
      const field = r.shortStr();
      if (field === 'u') {
        if (items) throw new MsgpackFormatError('field u twice');
        const count = r.arrayLength();
        // Every item is an object here: a few-KiB compressed frame of millions of tiny items
        // would otherwise exhaust the heap. A server's frames hold a chunk's worth (thousands).
        if (count > MAX_ITEMS_PER_FRAME) throw new MsgpackFormatError(`${count} items in one frame (at most ${MAX_ITEMS_PER_FRAME})`);
        items = [];
        for (let j = 0; j < count; j++) {
          if (r.arrayLength() !== 3) throw new MsgpackFormatError('an item must be [key, bin(value) | nil, revision]');
          const keyAt = r.pos;
          const key = r.str();
          if (r.nil()) { items.push(new RawItem(key, r.str(), buf, keyAt, -1, -1)); continue; }
          const start = r.bin();
          const end = r.pos;
          items.push(new RawItem(key, r.str(), buf, keyAt, start, end));
        }
      } else if (field === 'h' && isBin(buf, r.pos)) {
        if (hashesAt >= 0) throw new MsgpackFormatError('field h twice');
        hashesAt = r.bin();
        hashesEnd = r.pos;
      } else {
        // Head fields are nearly always scalars: read in place, as unpackr costs a call each.
        const v = r.scalar();
        if (v !== NOT_SCALAR) { msg[field] = v; continue; }
        const start = r.pos;
        r.skip();
        msg[field] = unpackr.unpack(buf.subarray(start, r.pos));
      }
    }
    if (!r.done) throw new MsgpackFormatError('trailing bytes after the message');
    if (typeof msg.t !== 'string') throw new MsgpackFormatError('message has no string field "t"');
    if (items) takeHashes(buf, items, hashesAt, hashesEnd, hashes);
    // Item hashes mean nothing without items: any other message keeps its `h` as a field.
    else if (hashesAt >= 0) msg.h = buf.subarray(hashesAt, hashesEnd);
    return { msg: msg as DecodedFrame['msg'], items };
  } catch (err) {
    if (err instanceof ProtocolError) throw err;
    throw new ProtocolError(CloseCode.malformed, `bad frame from server: ${(err as Error).message}`);
  }
}

const isBin = (buf: Buffer, at: number): boolean => at < buf.length && buf[at]! >= 0xc4 && buf[at]! <= 0xc6;

const halves = new Int32Array(2);

/** Gives each item its entry hash: from `h` where the frame has one, else hashed in place. */
function takeHashes(buf: Buffer, items: RawItem[], at: number, end: number, mode: ItemHashes): void {
  const sent = at >= 0;
  if (sent && end - at !== 8 * items.length) throw new MsgpackFormatError(`h holds ${end - at} bytes for ${items.length} items (8 each)`);
  const hashHere = !sent || mode === 'verify';
  if (hashHere) loadForHashing(buf);
  for (let j = 0; j < items.length; j++) {
    const it = items[j]!;
    if (it.start < 0) continue;
    if (sent) {
      const p = at + 8 * j;
      it.hi = (buf[p]! << 24) | (buf[p + 1]! << 16) | (buf[p + 2]! << 8) | buf[p + 3]!;
      it.lo = (buf[p + 4]! << 24) | (buf[p + 5]! << 16) | (buf[p + 6]! << 8) | buf[p + 7]!;
    }
    if (!hashHere) continue;
    hashLoadedHalves(it.keyAt, it.end, halves);
    const hi = halves[0]!;
    const lo = halves[1]!;
    if (sent && (hi !== it.hi || lo !== it.lo)) throw new MsgpackFormatError(`item ${j} (${it.key}): h says ${halvesHex(it.hi, it.lo)}, its bytes hash to ${halvesHex(hi, lo)}`);
    it.hi = hi;
    it.lo = lo;
  }
}
