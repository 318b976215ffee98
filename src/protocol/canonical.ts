// Canonical value bytes: the one encoding of a resource that the store keeps, compares, hashes
// and splices into frames. Equal content gives equal bytes, whatever order the datastore wrote
// the fields in, so a no-op is a byte comparison and two servers hash the same state alike.
// PROTOCOL.md ("Canonical value bytes") is the normative description.
//
// This is the hottest code of ingest, so it writes msgpack itself, straight from the parsed value
// into a shared slab: no sorted copy of the object, no second encoding pass, no copy out of a
// scratch buffer. The bytes are those msgpackr produces for the key-sorted value (the tests hold
// the two against each other).

// Each value is a view of the slab it was written into, as small Buffers are views of Node's
// 8 KiB pool: a value kept alive keeps its slab alive. Values live until the store copies them
// into its items, so slabs are short-lived.
const SLAB_BYTES = 16 * 1024;
let buf = Buffer.allocUnsafeSlow(SLAB_BYTES);
/** Where the value being encoded starts in `buf`, and where its next byte goes. */
let base = 0;
let pos = 0;

function ensure(n: number): void {
  if (pos + n <= buf.length) return;
  // The value so far moves to the start of a new slab with room for it to double.
  const next = Buffer.allocUnsafeSlow(Math.max(SLAB_BYTES, 2 * (pos - base + n)));
  buf.copy(next, 0, base, pos);
  pos -= base;
  base = 0;
  buf = next;
}

function header(n: number, fix: number, fixMax: number, b16: number, b32: number): void {
  ensure(5);
  if (n < fixMax) buf[pos++] = fix | n;
  else if (n < 0x10000) { buf[pos++] = b16; buf.writeUInt16BE(n, pos); pos += 2; }
  else { buf[pos++] = b32; buf.writeUInt32BE(n, pos); pos += 4; }
}

/** Bytes of the shortest str header for a string of `len` bytes. */
const strHeader = (len: number) => (len < 32 ? 1 : len < 0x100 ? 2 : len < 0x10000 ? 3 : 5);

function str(s: string): void {
  const n = s.length;
  if (n < 32) {
    // Short ASCII strings (most keys and values) are copied in JS, four characters a step: below
    // 32 characters (a fixstr) that is cheaper than a native write's fixed cost.
    ensure(1 + n);
    const b = buf;
    const at = pos + 1;
    let or = 0;
    let i = 0;
    for (; i + 4 <= n; i += 4) {
      const c0 = s.charCodeAt(i), c1 = s.charCodeAt(i + 1), c2 = s.charCodeAt(i + 2), c3 = s.charCodeAt(i + 3);
      or |= c0 | c1 | c2 | c3;
      b[at + i] = c0; b[at + i + 1] = c1; b[at + i + 2] = c2; b[at + i + 3] = c3;
    }
    for (; i < n; i++) {
      const c = s.charCodeAt(i);
      or |= c;
      b[at + i] = c;
    }
    if (or < 0x80) {
      b[at - 1] = 0xa0 | n;
      pos = at + n;
      return;
    }
    // Not ASCII: written again below.
  }
  // Worst case 3 bytes per UTF-16 unit. Written after a header sized for ASCII (n bytes), and
  // moved when the real length needs a longer one (or, for short non-ASCII strings, a shorter one).
  ensure(n * 3 + 5);
  const h = strHeader(n);
  const len = (buf as Buffer & { utf8Write(s: string, offset: number): number }).utf8Write(s, pos + h);
  const real = strHeader(len);
  if (real !== h) buf.copyWithin(pos + real, pos + h, pos + h + len);
  if (real === 1) buf[pos] = 0xa0 | len;
  else if (real === 2) { buf[pos] = 0xd9; buf[pos + 1] = len; }
  else if (real === 3) { buf[pos] = 0xda; buf.writeUInt16BE(len, pos + 1); }
  else { buf[pos] = 0xdb; buf.writeUInt32BE(len, pos + 1); }
  pos += real + len;
}

function num(n: number): void {
  ensure(9);
  if (Number.isInteger(n) && n >= -0x80000000 && n < 0x100000000) {
    if (n >= 0) {
      if (n < 0x80) buf[pos++] = n;
      else if (n < 0x100) { buf[pos++] = 0xcc; buf[pos++] = n; }
      else if (n < 0x10000) { buf[pos++] = 0xcd; buf.writeUInt16BE(n, pos); pos += 2; }
      else { buf[pos++] = 0xce; buf.writeUInt32BE(n, pos); pos += 4; }
    } else if (n >= -0x20) buf[pos++] = 0xe0 | (n + 0x20);
    else if (n >= -0x80) { buf[pos++] = 0xd0; buf.writeInt8(n, pos); pos += 1; }
    else if (n >= -0x8000) { buf[pos++] = 0xd1; buf.writeInt16BE(n, pos); pos += 2; }
    else { buf[pos++] = 0xd2; buf.writeInt32BE(n, pos); pos += 4; }
    return;
  }
  buf[pos++] = 0xcb;
  buf.writeDoubleBE(n, pos);
  pos += 8;
}

function value(v: unknown, depth: number): void {
  if (depth > 512) throw new Error('value nested deeper than 512 levels');
  switch (typeof v) {
    case 'string': return str(v);
    case 'number': return num(v);
    case 'boolean': ensure(1); buf[pos++] = v ? 0xc3 : 0xc2; return;
    case 'object':
      if (v === null) { ensure(1); buf[pos++] = 0xc0; return; }
      if (Array.isArray(v)) {
        header(v.length, 0x90, 16, 0xdc, 0xdd);
        for (const x of v) value(x === undefined ? null : x, depth + 1);
        return;
      }
      return map(v as Record<string, unknown>, depth, undefined);
    default:
      throw new Error(`a ${typeof v} cannot be part of a value`);
  }
}

/**
 * Sorts property names in place as Array.prototype.sort() does (by UTF-16 code units). Objects
 * have few keys, often already in order: an insertion sort with `<` is several times faster than
 * the built-in sort's generic comparison for them.
 */
function sortKeys(keys: string[]): void {
  const n = keys.length;
  if (n > 32) { keys.sort(); return; }
  for (let i = 1; i < n; i++) {
    const k = keys[i]!;
    let j = i - 1;
    if (!(k < keys[j]!)) continue;
    do { keys[j + 1] = keys[j]!; j--; } while (j >= 0 && k < keys[j]!);
    keys[j + 1] = k;
  }
}

function map(o: Record<string, unknown>, depth: number, skip: string | undefined): void {
  const keys = Object.keys(o);
  sortKeys(keys);
  const n = keys.length;
  // The header is written once the entries are counted (undefined ones are left out), in the
  // room reserved for the largest count possible; a map16 reserved for what fits a fixmap is moved.
  ensure(5);
  // Relative to the value's start: the value may move to another slab meanwhile.
  const at = pos - base;
  const room = n < 16 ? 1 : n < 0x10000 ? 3 : 5;
  pos += room;
  let count = 0;
  for (let i = 0; i < n; i++) {
    const k = keys[i]!;
    const v = o[k];
    if (v === undefined || k === skip) continue;
    count++;
    str(k);
    // metadata.resourceVersion travels as the update's revision, not inside the value.
    if (depth === 0 && k === 'metadata' && v !== null && typeof v === 'object' && !Array.isArray(v)) {
      map(v as Record<string, unknown>, depth + 1, 'resourceVersion');
    } else {
      value(v, depth + 1);
    }
  }
  const start = base + at;
  if (count < 16) {
    if (room !== 1) { buf.copyWithin(start + 1, start + room, pos); pos -= room - 1; }
    buf[start] = 0x80 | count;
  } else if (room === 3 || count < 0x10000) {
    if (room === 5) { buf.copyWithin(start + 3, start + 5, pos); pos -= 2; }
    buf[start] = 0xde; buf.writeUInt16BE(count, start + 1);
  } else {
    buf[start] = 0xdf; buf.writeUInt32BE(count, start + 1);
  }
}

/**
 * Canonical msgpack of a value. `metadata.resourceVersion` is left out: it travels as the
 * update's revision, so a rewrite that changed nothing else is recognisably a no-op.
 */
export function encodeValue(v: unknown): Buffer {
  base = pos;
  try {
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) map(v as Record<string, unknown>, 0, undefined);
    else value(v, 0);
  } catch (err) {
    pos = base;
    throw err;
  }
  return buf.subarray(base, pos);
}
