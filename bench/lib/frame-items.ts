// Stepping through a protocol frame's items ([key, bin(value) | nil, revision], PROTOCOL.md)
// without decoding them, for readers that only look for a stamp near the start of each value:
// searching a whole frame (mostly values) cost a lean reader more than everything else it does.

/** How far into a value its stamp may start: a stamped value puts its annotations first in metadata. */
export const STAMP_WITHIN = 192;

/**
 * For each of `count` items from byte `at`, the offset just past `mark` in the first `within`
 * bytes of its value, or nothing for a value without it (and for deletions, which have none).
 */
export function forEachMark(buf: Buffer, at: number, count: number, mark: Buffer, within: number, fn: (after: number) => void): void {
  let o = at;
  for (let i = 0; i < count && o < buf.length; i++) {
    o = skipStr(buf, o + 1); // the array header (0x93), then the key
    const b = buf[o]!;
    if (b === 0xc0) { o = skipStr(buf, o + 1); continue; }
    const len = b === 0xc4 ? buf[o + 1]! : b === 0xc5 ? buf.readUInt16BE(o + 1) : buf.readUInt32BE(o + 1);
    const start = o + (b === 0xc4 ? 2 : b === 0xc5 ? 3 : 5);
    const found = findMark(buf, mark, start, Math.min(start + len, start + within));
    if (found >= 0) fn(found + mark.length);
    o = skipStr(buf, start + len);
  }
}

/** Where `mark` starts in buf[from, to), or -1: a plain loop, cheaper over a few hundred bytes than a view and a native search. */
function findMark(buf: Buffer, mark: Buffer, from: number, to: number): number {
  const first = mark[0]!;
  const last = to - mark.length;
  outer: for (let i = from; i <= last; i++) {
    if (buf[i] !== first) continue;
    for (let j = 1; j < mark.length; j++) if (buf[i + j] !== mark[j]) continue outer;
    return i;
  }
  return -1;
}

/** The offset after the msgpack string at `o`. */
function skipStr(buf: Buffer, o: number): number {
  const b = buf[o]!;
  if ((b & 0xe0) === 0xa0) return o + 1 + (b & 0x1f);
  if (b === 0xd9) return o + 2 + buf[o + 1]!;
  if (b === 0xda) return o + 3 + buf.readUInt16BE(o + 1);
  return o + 5 + buf.readUInt32BE(o + 1);
}

/** The value of the run of decimal digits at or after `i`, its end in `digitsEnd`. */
export function digitsAt(buf: Buffer, i: number): number {
  while (i < buf.length && (buf[i]! < 0x30 || buf[i]! > 0x39)) i++;
  let n = 0;
  while (i < buf.length && buf[i]! >= 0x30 && buf[i]! <= 0x39) n = n * 10 + buf[i++]! - 0x30;
  digitsEnd = i;
  return n;
}
export let digitsEnd = 0;
