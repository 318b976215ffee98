// Frames that carry updates (`snapshot`, `delta`) are assembled from pre-encoded items, never
// re-encoded: an item is the msgpack array [key, bin(value) | nil, revision] with the value's
// canonical bytes spliced in as they sit in the store. The bin wrapper lets a reader step over a
// value in O(1) instead of walking it. One frame is built once and written to every client that
// needs it.
import { arrayHeader, binSize, MsgReader, MsgpackFormatError, NOT_SCALAR, strSize, writeBinHeader, writeStr } from './msgpack-raw.js';
import { CloseCode } from './messages.js';
import { hashLoaded, loadForHashing } from './checksum.js';
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

/** A map frame whose last field `u` is the array of the given items. */
export function itemsFrame(head: ItemsHead, items: readonly Buffer[], start = 0, end = items.length): Buffer {
  const h = packr.pack({ ...head, u: [] });
  // The head ends with `u` and an empty fixarray (0x90): swap that byte for the real header.
  const parts: Buffer[] = [h.subarray(0, h.length - 1), arrayHeader(end - start)];
  for (let i = start; i < end; i++) parts.push(items[i]!);
  return Buffer.concat(parts);
}

/** Splits items into frames of about `maxBytes` each (an item larger than that gets its own). */
export function* chunkFrames(
  items: readonly Buffer[], maxBytes: number, head: (index: number, last: boolean) => ItemsHead,
): Generator<Buffer> {
  let start = 0;
  let index = 0;
  while (start < items.length || index === 0) {
    let end = start;
    let bytes = 0;
    while (end < items.length && (end === start || bytes + items[end]!.length <= maxBytes)) bytes += items[end++]!.length;
    yield itemsFrame(head(index++, end >= items.length), items, start, end);
    start = end;
  }
}

const MAX_ITEMS_PER_FRAME = 1 << 20;

export interface RawItem {
  key: string;
  /** Canonical value bytes, a view into the frame; null for a deletion. */
  value: Buffer | null;
  /** The entry hash (PROTOCOL.md), taken from the frame in place; 0n for a deletion. */
  hash: bigint;
  revision: string;
}
export interface DecodedFrame { msg: Record<string, unknown> & { t: string }; items?: RawItem[] }

/**
 * Decodes any server frame. Items keep their value as raw bytes so the client can hash exactly
 * what the server hashed; the caller decodes values it wants as objects.
 */
export function decodeServerFrame(buf: Buffer): DecodedFrame {
  try {
    const r = new MsgReader(buf);
    const n = r.mapLength();
    const msg: Record<string, unknown> = {};
    let items: RawItem[] | undefined;
    for (let i = 0; i < n; i++) {
      const field = r.str();
      if (field === 'u') {
        if (items) throw new MsgpackFormatError('field u twice');
        const count = r.arrayLength();
        // Every item is an object here: a few-KiB compressed frame of millions of tiny items
        // would otherwise exhaust the heap. A server's frames hold a chunk's worth (thousands).
        if (count > MAX_ITEMS_PER_FRAME) throw new MsgpackFormatError(`${count} items in one frame (at most ${MAX_ITEMS_PER_FRAME})`);
        items = [];
        loadForHashing(buf);
        for (let j = 0; j < count; j++) {
          if (r.arrayLength() !== 3) throw new MsgpackFormatError('an item must be [key, bin(value) | nil, revision]');
          const keyAt = r.pos;
          const key = r.str();
          if (r.nil()) { items.push({ key, value: null, hash: 0n, revision: r.str() }); continue; }
          const value = buf.subarray(r.bin(), r.pos);
          items.push({ key, value, hash: hashLoaded(keyAt, r.pos), revision: r.str() });
        }
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
    return { msg: msg as DecodedFrame['msg'], items };
  } catch (err) {
    if (err instanceof ProtocolError) throw err;
    throw new ProtocolError(CloseCode.malformed, `bad frame from server: ${(err as Error).message}`);
  }
}
