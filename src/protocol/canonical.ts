// Canonical value bytes: the one encoding of a resource that the store keeps, compares, hashes
// and splices into frames. Equal content gives equal bytes, whatever order the datastore wrote
// the fields in, so a no-op is a byte comparison and two servers hash the same state alike.
// PROTOCOL.md ("Canonical value bytes") is the normative description.
//
// This is the hottest code of ingest, so it writes msgpack itself, straight from the parsed value
// into one scratch buffer: no sorted copy of the object, no second encoding pass. The bytes are
// those msgpackr produces for the key-sorted value (the tests hold the two against each other).

let buf = Buffer.allocUnsafe(64 * 1024);
let pos = 0;

function ensure(n: number): void {
  if (pos + n <= buf.length) return;
  const next = Buffer.allocUnsafe(Math.max(buf.length * 2, pos + n));
  buf.copy(next, 0, 0, pos);
  buf = next;
}

function header(n: number, fix: number, fixMax: number, b16: number, b32: number): void {
  ensure(5);
  if (n < fixMax) buf[pos++] = fix | n;
  else if (n < 0x10000) { buf[pos++] = b16; buf.writeUInt16BE(n, pos); pos += 2; }
  else { buf[pos++] = b32; buf.writeUInt32BE(n, pos); pos += 4; }
}

function str(s: string): void {
  const n = s.length;
  if (n < 32) {
    // Short ASCII strings (nearly every key and most values) are copied byte by byte: a native
    // utf8 write costs more than the copy for strings this short.
    ensure(1 + n);
    let i = 0;
    for (; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) break;
      buf[pos + 1 + i] = c;
    }
    if (i === n) {
      buf[pos] = 0xa0 | n;
      pos += 1 + n;
      return;
    }
  }
  // Worst case 3 bytes per UTF-16 unit; the header is written once the length is known.
  const max = s.length * 3;
  ensure(max + 5);
  const h = max < 32 ? 1 : max < 0x100 ? 2 : max < 0x10000 ? 3 : 5;
  const len = buf.write(s, pos + h, 'utf8');
  // Shortest header for the real length: move the bytes if a shorter one fits.
  const real = len < 32 ? 1 : len < 0x100 ? 2 : len < 0x10000 ? 3 : 5;
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

function map(o: Record<string, unknown>, depth: number, skip: string | undefined): void {
  const keys = Object.keys(o).sort();
  let count = 0;
  for (const k of keys) if (o[k] !== undefined && k !== skip) count++;
  header(count, 0x80, 16, 0xde, 0xdf);
  for (const k of keys) {
    if (o[k] === undefined || k === skip) continue;
    str(k);
    // metadata.resourceVersion travels as the update's revision, not inside the value.
    if (depth === 0 && k === 'metadata' && o[k] !== null && typeof o[k] === 'object' && !Array.isArray(o[k])) {
      map(o[k] as Record<string, unknown>, depth + 1, 'resourceVersion');
    } else {
      value(o[k], depth + 1);
    }
  }
}

/**
 * Canonical msgpack of a value. `metadata.resourceVersion` is left out: it travels as the
 * update's revision, so a rewrite that changed nothing else is recognisably a no-op.
 */
export function encodeValue(v: unknown): Buffer {
  pos = 0;
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) map(v as Record<string, unknown>, 0, undefined);
  else value(v, 0);
  // An exact-size copy: the scratch buffer is reused for the next value.
  return Buffer.from(buf.subarray(0, pos));
}
