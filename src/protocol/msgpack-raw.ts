// Just enough msgpack to splice pre-encoded values into frames and to find them again without
// decoding: header writers and a bounds-checked reader. Everything else goes through msgpackr.

export class MsgpackFormatError extends Error {}

/** Buffer's own UTF-8 decoder, which `toString('utf8', …)` ends in; bounds-checked natively. */
interface Utf8Slicer { utf8Slice(start: number, end: number): string }

export const NOT_SCALAR: unique symbol = Symbol('not a scalar');

/** Short strings read lately (MsgReader.shortStr): a fixed table, whatever a peer sends. */
const SHORT_SLOTS = 256;
const shortStrings: ({ len: number; lo: number; hi: number; s: string } | undefined)[] = new Array(SHORT_SLOTS).fill(undefined);

/** The header of an array of `n` elements. */
export function arrayHeader(n: number): Buffer {
  if (n < 16) return Buffer.from([0x90 | n]);
  if (n < 0x10000) {
    const b = Buffer.allocUnsafe(3);
    b[0] = 0xdc;
    b.writeUInt16BE(n, 1);
    return b;
  }
  const b = Buffer.allocUnsafe(5);
  b[0] = 0xdd;
  b.writeUInt32BE(n, 1);
  return b;
}

/** Writes a string in its shortest msgpack form at `o`; returns the offset after it. */
export function writeStr(b: Buffer, o: number, s: string, len = Buffer.byteLength(s)): number {
  if (len < 32) b[o++] = 0xa0 | len;
  else if (len < 0x100) { b[o++] = 0xd9; b[o++] = len; }
  else if (len < 0x10000) { b[o++] = 0xda; b.writeUInt16BE(len, o); o += 2; }
  else { b[o++] = 0xdb; b.writeUInt32BE(len, o); o += 4; }
  return o + b.write(s, o, len, 'utf8');
}

/**
 * A cursor over untrusted msgpack. Every read is bounds-checked and nesting is walked with a
 * counter instead of recursion, so hostile input can neither overrun the buffer nor the stack.
 */
export class MsgReader {
  pos: number;
  constructor(readonly buf: Buffer, pos = 0) { this.pos = pos; }

  get done(): boolean { return this.pos >= this.buf.length; }

  private need(n: number): void {
    if (this.pos + n > this.buf.length) throw new MsgpackFormatError(`truncated msgpack at byte ${this.pos}`);
  }

  private byte(): number { this.need(1); return this.buf[this.pos++]!; }
  private u16(): number { this.need(2); const v = this.buf.readUInt16BE(this.pos); this.pos += 2; return v; }
  private u32(): number { this.need(4); const v = this.buf.readUInt32BE(this.pos); this.pos += 4; return v; }

  mapLength(): number {
    const b = this.byte();
    if ((b & 0xf0) === 0x80) return b & 0x0f;
    if (b === 0xde) return this.u16();
    if (b === 0xdf) return this.u32();
    throw new MsgpackFormatError(`expected a map at byte ${this.pos - 1}`);
  }

  arrayLength(): number {
    const b = this.byte();
    if ((b & 0xf0) === 0x90) return b & 0x0f;
    if (b === 0xdc) return this.u16();
    if (b === 0xdd) return this.u32();
    throw new MsgpackFormatError(`expected an array at byte ${this.pos - 1}`);
  }

  str(): string {
    const b = this.byte();
    let len: number;
    if ((b & 0xe0) === 0xa0) len = b & 0x1f;
    else if (b === 0xd9) len = this.byte();
    else if (b === 0xda) len = this.u16();
    else if (b === 0xdb) len = this.u32();
    else throw new MsgpackFormatError(`expected a string at byte ${this.pos - 1}`);
    this.need(len);
    // toString's encoding dispatch cost as much as decoding a 50-byte key: go to the decoder.
    const s = (this.buf as unknown as Utf8Slicer).utf8Slice(this.pos, this.pos + len);
    this.pos += len;
    return s;
  }

  /**
   * Reads a string like `str`, but one of at most 8 bytes (a protocol field name, a message type)
   * comes from a small table of those seen before: a frame's head would otherwise decode the same
   * few names on every frame, which cost as much as its items at a few items per frame.
   */
  shortStr(): string {
    this.need(1);
    const buf = this.buf;
    const h = buf[this.pos]!;
    const len = h & 0x1f;
    const at = this.pos + 1;
    if ((h & 0xe0) !== 0xa0 || len > 8 || at + len > buf.length) return this.str();
    // Length and bytes (four in each half) identify the string exactly; the slot is any mix of them.
    let lo = 0;
    let hi = 0;
    for (let i = 0; i < len; i++) {
      if (i < 4) lo = (lo << 8) | buf[at + i]!;
      else hi = (hi << 8) | buf[at + i]!;
    }
    const slot = (lo ^ (lo >>> 13) ^ hi ^ (hi >>> 9) ^ (len << 5)) & (SHORT_SLOTS - 1);
    const e = shortStrings[slot];
    if (e !== undefined && e.len === len && e.lo === lo && e.hi === hi) {
      this.pos = at + len;
      return e.s;
    }
    const s = this.str();
    shortStrings[slot] = { len, lo, hi, s };
    return s;
  }

  /** Reads a bin; returns the offset of its first byte (its end is the new `pos`). */
  bin(): number {
    const b = this.byte();
    let len: number;
    if (b === 0xc4) len = this.byte();
    else if (b === 0xc5) len = this.u16();
    else if (b === 0xc6) len = this.u32();
    else throw new MsgpackFormatError(`expected a bin at byte ${this.pos - 1}`);
    const start = this.pos;
    this.advance(len);
    return start;
  }

  /** True (and consumed) when the next value is nil. */
  nil(): boolean {
    this.need(1);
    if (this.buf[this.pos] !== 0xc0) return false;
    this.pos++;
    return true;
  }

  /** Skips one complete value, however deeply nested. */
  skip(): void {
    let pending = 1;
    while (pending > 0) {
      pending--;
      const b = this.byte();
      if (b < 0x80 || b >= 0xe0) continue; // fixint
      if (b < 0x90) { pending += 2 * (b & 0x0f); continue; }
      if (b < 0xa0) { pending += b & 0x0f; continue; }
      if (b < 0xc0) { this.advance(b & 0x1f); continue; }
      switch (b) {
        case 0xc0: case 0xc2: case 0xc3: break;
        case 0xc4: case 0xd9: this.advance(this.byte()); break;
        case 0xc5: case 0xda: this.advance(this.u16()); break;
        case 0xc6: case 0xdb: this.advance(this.u32()); break;
        case 0xc7: this.advance(this.byte() + 1); break;
        case 0xc8: this.advance(this.u16() + 1); break;
        case 0xc9: this.advance(this.u32() + 1); break;
        case 0xca: case 0xce: case 0xd2: this.advance(4); break;
        case 0xcb: case 0xcf: case 0xd3: this.advance(8); break;
        case 0xcc: case 0xd0: this.advance(1); break;
        case 0xcd: case 0xd1: this.advance(2); break;
        case 0xd4: this.advance(2); break;
        case 0xd5: this.advance(3); break;
        case 0xd6: this.advance(5); break;
        case 0xd7: this.advance(9); break;
        case 0xd8: this.advance(17); break;
        case 0xdc: pending += this.u16(); break;
        case 0xdd: pending += this.u32(); break;
        case 0xde: pending += 2 * this.u16(); break;
        case 0xdf: pending += 2 * this.u32(); break;
        default: throw new MsgpackFormatError(`invalid msgpack byte 0x${b.toString(16)} at ${this.pos - 1}`);
      }
    }
  }

  /**
   * Reads the next value when it is a string, a boolean, nil or an integer that fits a double
   * exactly (everything a frame head holds); returns NOT_SCALAR, consuming nothing, otherwise.
   */
  scalar(): string | number | boolean | null | typeof NOT_SCALAR {
    this.need(1);
    const b = this.buf[this.pos]!;
    if (b < 0x80) { this.pos++; return b; }
    if (b >= 0xe0) { this.pos++; return b - 0x100; }
    if ((b & 0xe0) === 0xa0) return this.shortStr();
    if (b === 0xd9 || b === 0xda || b === 0xdb) return this.str();
    switch (b) {
      case 0xc0: this.pos++; return null;
      case 0xc2: this.pos++; return false;
      case 0xc3: this.pos++; return true;
      case 0xcc: this.pos++; return this.byte();
      case 0xcd: this.pos++; return this.u16();
      case 0xce: this.pos++; return this.u32();
      case 0xd0: this.pos++; return (this.byte() << 24) >> 24;
      case 0xd1: this.pos++; return (this.u16() << 16) >> 16;
      case 0xd2: this.pos++; return this.u32() | 0;
      default: return NOT_SCALAR;
    }
  }

  private advance(n: number): void { this.need(n); this.pos += n; }
}

/** Writes the header of a bin of `len` bytes at `o`; returns the offset after it. */
export function writeBinHeader(b: Buffer, o: number, len: number): number {
  if (len < 0x100) { b[o++] = 0xc4; b[o++] = len; }
  else if (len < 0x10000) { b[o++] = 0xc5; b.writeUInt16BE(len, o); o += 2; }
  else { b[o++] = 0xc6; b.writeUInt32BE(len, o); o += 4; }
  return o;
}

/** Encoded size of a bin of `len` bytes, header included. */
export function binSize(len: number): number {
  return len + (len < 0x100 ? 2 : len < 0x10000 ? 3 : 5);
}

/** Encoded size of a string of `len` UTF-8 bytes, header included. */
export function strSize(len: number): number {
  return len + (len < 32 ? 1 : len < 0x100 ? 2 : len < 0x10000 ? 3 : 5);
}
