// Generators for the fuzz tests (test/fuzz.test.ts): raw msgpack written byte by byte (so that it
// can use every encoding form, lie about lengths and carry extension types), mutations of valid
// frames, client messages whose validity is known by construction (an oracle written from
// PROTOCOL.md, not from the validator), and valid server frames.
import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { testSeed } from '../prng.js';
import { SYNCER_TYPES } from '../../../src/model/views.js';
import { encodeItem, itemsFrame } from '../../../src/protocol/frames.js';
import { packr } from '../../../src/protocol/codec.js';

// ---- run counts --------------------------------------------------------------------------

/**
 * Runs per property. Short by default (npm test: 300 per pure property, 15 of the server one, 30
 * of the hostile-server one); FUZZ_RUNS=<n> for a deep run of the pure properties,
 * FUZZ_NET_RUNS=<n> for the two over sockets (default with FUZZ_RUNS: n/400 and n/100, at least
 * the short counts). FUZZ_SEED replays a failure that fast-check reported.
 */
export function runs(kind: 'pure' | 'server' | 'client'): number {
  const deep = Number(process.env.FUZZ_RUNS) || 0;
  const net = Number(process.env.FUZZ_NET_RUNS) || 0;
  const short = { pure: 300, server: 15, client: 30 }[kind];
  if (kind === 'pure') return deep || short;
  return net || Math.max(short, Math.round(deep / (kind === 'server' ? 400 : 100)));
}

let seed: number | undefined;
/** fast-check's seed: FUZZ_SEED (as fast-check reports it), else TEST_SEED, else the fixed default; printed once. */
export function fuzzSeed(): number {
  if (seed !== undefined) return seed;
  const env = process.env.FUZZ_SEED;
  if (env) console.log(`fuzz: FUZZ_SEED=${env}`);
  seed = env ? Number(env) : testSeed('fuzz');
  return seed;
}

export function fcParams<T>(kind: 'pure' | 'server' | 'client'): fc.Parameters<T> {
  return { numRuns: runs(kind), seed: fuzzSeed(), endOnFailure: kind !== 'pure' };
}

/**
 * Open product bugs (reported with failing tests in test/fuzz-regressions.test.ts): the inputs
 * that trigger them are left out unless FUZZ_OPEN_BUGS=1, so that the fuzz tests keep looking for
 * other problems instead of failing on those at random. Remove the switch once they are fixed.
 */
export const OPEN_BUGS = process.env.FUZZ_OPEN_BUGS === '1';

// ---- raw msgpack writers -------------------------------------------------------------------

export type Form = 0 | 1 | 2 | 3; // fix (or the shortest), 8-bit, 16-bit, 32-bit length

const u8 = (...b: number[]) => Buffer.from(b);
const be16 = (n: number) => { const b = Buffer.alloc(2); b.writeUInt16BE(n & 0xffff); return b; };
const be32 = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32BE(n >>> 0); return b; };

export function strBytes(s: string | Buffer, form?: Form, len?: number): Buffer {
  const b = typeof s === 'string' ? Buffer.from(s) : s;
  const n = len ?? b.length;
  const f = form ?? (n < 32 ? 0 : n < 0x100 ? 1 : n < 0x10000 ? 2 : 3);
  const head = f === 0 && n < 32 ? u8(0xa0 | n) : f <= 1 && n < 0x100 ? u8(0xd9, n) : f <= 2 && n < 0x10000 ? Buffer.concat([u8(0xda), be16(n)]) : Buffer.concat([u8(0xdb), be32(n)]);
  return Buffer.concat([head, b]);
}

export function binBytes(b: Buffer, form?: Form, len?: number): Buffer {
  const n = len ?? b.length;
  const f = form ?? (n < 0x100 ? 1 : n < 0x10000 ? 2 : 3);
  const head = f <= 1 && n < 0x100 ? u8(0xc4, n) : f <= 2 && n < 0x10000 ? Buffer.concat([u8(0xc5), be16(n)]) : Buffer.concat([u8(0xc6), be32(n)]);
  return Buffer.concat([head, b]);
}

export function arrayHead(n: number, form?: Form): Buffer {
  const f = form ?? (n < 16 ? 0 : n < 0x10000 ? 2 : 3);
  if (f === 0 && n < 16) return u8(0x90 | n);
  if (f <= 2 && n < 0x10000) return Buffer.concat([u8(0xdc), be16(n)]);
  return Buffer.concat([u8(0xdd), be32(n)]);
}

export function mapHead(n: number, form?: Form): Buffer {
  const f = form ?? (n < 16 ? 0 : n < 0x10000 ? 2 : 3);
  if (f === 0 && n < 16) return u8(0x80 | n);
  if (f <= 2 && n < 0x10000) return Buffer.concat([u8(0xde), be16(n)]);
  return Buffer.concat([u8(0xdf), be32(n)]);
}

/** A map of string keys to already-encoded values. */
export function rawMap(entries: readonly (readonly [string, Buffer])[], form?: Form): Buffer {
  return Buffer.concat([mapHead(entries.length, form), ...entries.flatMap(([k, v]) => [strBytes(k), v])]);
}

/** Every msgpack encoding of a non-negative integer, or of an integer-valued float. */
export function uintForms(n: number): Buffer[] {
  const out: Buffer[] = [];
  if (n < 0x80) out.push(u8(n));
  if (n < 0x100) out.push(u8(0xcc, n));
  if (n < 0x10000) out.push(Buffer.concat([u8(0xcd), be16(n)]));
  if (n < 2 ** 32) out.push(Buffer.concat([u8(0xce), be32(n)]));
  if (n < 2 ** 64) { const b64 = Buffer.alloc(9); b64[0] = 0xcf; b64.writeBigUInt64BE(BigInt(n), 1); out.push(b64); }
  if (n < 0x80) out.push(u8(0xd0, n));
  if (n < 0x8000) { const b = Buffer.alloc(3); b[0] = 0xd1; b.writeInt16BE(n, 1); out.push(b); }
  if (n < 2 ** 31) { const b = Buffer.alloc(5); b[0] = 0xd2; b.writeInt32BE(n, 1); out.push(b); }
  if (n < 2 ** 63) { const i64 = Buffer.alloc(9); i64[0] = 0xd3; i64.writeBigInt64BE(BigInt(n), 1); out.push(i64); }
  out.push(float64(n));
  if (Math.fround(n) === n) out.push(float32(n));
  return out;
}

export function intBytes(n: number | bigint): Buffer {
  const v = BigInt(n);
  if (v >= 0n && v < 128n) return u8(Number(v));
  if (v < 0n && v >= -32n) return u8(Number(v) & 0xff);
  const b = Buffer.alloc(9);
  if (v >= 0n) { b[0] = 0xcf; b.writeBigUInt64BE(BigInt.asUintN(64, v), 1); } else { b[0] = 0xd3; b.writeBigInt64BE(BigInt.asIntN(64, v), 1); }
  return b;
}

export function float64(x: number): Buffer { const b = Buffer.alloc(9); b[0] = 0xcb; b.writeDoubleBE(x, 1); return b; }
export function float32(x: number): Buffer { const b = Buffer.alloc(5); b[0] = 0xca; b.writeFloatBE(x, 1); return b; }

/** msgpackr's BigInt extension (type 0x42): the value as a big-endian two's-complement number. */
export function bigIntExt(n: bigint): Buffer {
  const data = Buffer.alloc(8);
  data.writeBigInt64BE(BigInt.asIntN(64, n));
  return Buffer.concat([u8(0xd7, 0x42), data]);
}

export function extBytes(type: number, data: Buffer, form?: 'fix' | 8 | 16 | 32): Buffer {
  const fixHead: Record<number, number> = { 1: 0xd4, 2: 0xd5, 4: 0xd6, 8: 0xd7, 16: 0xd8 };
  const f = form ?? (fixHead[data.length] ? 'fix' : data.length < 0x100 ? 8 : data.length < 0x10000 ? 16 : 32);
  if (f === 'fix' && fixHead[data.length]) return Buffer.concat([u8(fixHead[data.length]!, type & 0xff), data]);
  if (f === 8 && data.length < 0x100) return Buffer.concat([u8(0xc7, data.length, type & 0xff), data]);
  if (f !== 32 && data.length < 0x10000) return Buffer.concat([u8(0xc8), be16(data.length), u8(type & 0xff), data]);
  return Buffer.concat([u8(0xc9), be32(data.length), u8(type & 0xff), data]);
}

// ---- raw msgpack arbitraries -----------------------------------------------------------------

const form = fc.constantFrom<Form>(0, 1, 2, 3);
/** Mostly honest lengths; sometimes one off, sometimes absurd. */
const lie = fc.oneof({ weight: 12, arbitrary: fc.constant(0) }, fc.constantFrom(-1, 1, 2, 1000, 0xffff, 0x7fffffff, 0xffffffff));
const withLie = (n: number, l: number) => Math.max(0, Math.min(0xffffffff, n + l));

const interestingInts = [0, 1, 31, 32, 127, 128, 255, 256, 65535, 65536, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1, 2 ** 53, 2 ** 63, 2 ** 64 - 1];

const intArb: fc.Arbitrary<Buffer> = fc.oneof(
  fc.constantFrom(...interestingInts).chain((n) => fc.constantFrom(...uintForms(n))),
  fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }).map((n) => (n >= 0 ? uintForms(n)[0]! : intBytes(n))),
  fc.bigInt({ min: -(2n ** 63n), max: 2n ** 64n - 1n }).map(intBytes),
);

const floatArb: fc.Arbitrary<Buffer> = fc.oneof(
  fc.double().map(float64),
  fc.float().map(float32),
  fc.constantFrom(NaN, Infinity, -Infinity, -0, 1e308, -1e308, 5e-324, 0.5, 1.5, 2 ** 53 + 2).chain((x) => fc.constantFrom(float64(x), float32(x))),
);

const textArb = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.constantFrom('', 't', 'hello', 'ack', 'pong', 'u', '__proto__', 'constructor', 'toString', 'valueOf', 'brotli', 'deflate', 'felix'),
);
const invalidUtf8 = fc.uint8Array({ minLength: 1, maxLength: 20 }).map((b) => Buffer.concat([Buffer.from(b), u8(0xff, 0xc0, 0xed, 0xa0, 0x80)]));

const strArb: fc.Arbitrary<Buffer> = fc.oneof(
  { weight: 4, arbitrary: textArb.map((s) => strBytes(s)) },
  fc.tuple(textArb, form).map(([s, f]) => strBytes(s, f)),
  fc.tuple(fc.oneof(textArb.map((s) => Buffer.from(s)), invalidUtf8), form, lie).map(([b, f, l]) => strBytes(b, f, withLie(b.length, l))),
);

const binArb: fc.Arbitrary<Buffer> = fc.tuple(fc.uint8Array({ maxLength: 40 }), form, lie)
  .map(([b, f, l]) => binBytes(Buffer.from(b), f, withLie(b.length, l)));

/** msgpackr's own extensions (BigInt, Error, structured-clone ids and pointers, records, Set, typed arrays, RegExp, bundled strings, timestamps) and others. */
const extTypes = fc.oneof(fc.constantFrom(0x00, 0x42, 0x62, 0x65, 0x69, 0x70, 0x72, 0x73, 0x74, 0x78, 0xff, 0x01, 0x7f, 0x80), fc.integer({ min: 0, max: 255 }));
const extArb = (inner: fc.Arbitrary<Buffer>): fc.Arbitrary<Buffer> => fc.oneof(
  fc.tuple(extTypes, fc.constantFrom(1, 2, 4, 8, 16).chain((n) => fc.uint8Array({ minLength: n, maxLength: n }))).map(([t, d]) => extBytes(t, Buffer.from(d), 'fix')),
  fc.tuple(extTypes, fc.uint8Array({ maxLength: 24 }), fc.constantFrom<8 | 16 | 32>(8, 16, 32)).map(([t, d, f]) => extBytes(t, Buffer.from(d), f)),
  // Extensions that read the value after them (msgpackr's Error, Set, RegExp) or hold one.
  fc.tuple(extTypes, inner).map(([t, v]) => Buffer.concat([extBytes(t, u8(0), 'fix'), v])),
  fc.tuple(extTypes, inner).map(([t, v]) => extBytes(t, v)),
  fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map(bigIntExt),
);

const scalarArb: fc.Arbitrary<Buffer> = fc.oneof(
  fc.constantFrom(u8(0xc0), u8(0xc2), u8(0xc3)),
  intArb, floatArb, strArb, binArb,
  { weight: 1, arbitrary: fc.constantFrom(u8(0xc1), u8(0xdd, 0xff, 0xff, 0xff, 0xff), u8(0xdf, 0xff, 0xff, 0xff, 0xff), u8(0xdb, 0xff, 0xff, 0xff, 0xff)) },
);

/**
 * Any msgpack value, written byte by byte: every encoding form, extension types, nesting, and
 * now and then a length that lies. Most of it is valid msgpack; some is not (by design).
 */
export const rawMsgpack: fc.Arbitrary<Buffer> = fc.letrec<{ node: Buffer; array: Buffer; map: Buffer; ext: Buffer }>((tie) => ({
  node: fc.oneof({ depthIdentifier: 'msgpack', maxDepth: 4, withCrossShrink: true },
    { weight: 6, arbitrary: scalarArb }, { weight: 2, arbitrary: tie('array') }, { weight: 2, arbitrary: tie('map') }, { weight: 1, arbitrary: tie('ext') }),
  array: fc.tuple(fc.array(tie('node'), { maxLength: 6, depthIdentifier: 'msgpack' }), form, lie)
    .map(([els, f, l]) => Buffer.concat([arrayHead(withLie(els.length, l), f), ...els])),
  map: fc.tuple(fc.array(fc.tuple(fc.oneof({ weight: 5, arbitrary: strArb }, tie('node')), tie('node')), { maxLength: 6, depthIdentifier: 'msgpack' }), form, lie)
    .map(([kvs, f, l]) => Buffer.concat([mapHead(withLie(kvs.length, l), f), ...kvs.flat()])),
  ext: extArb(tie('node')),
})).node;

/** A map with a string `t` (any string, or one of the known types) and arbitrary fields. */
export const rawMessage: fc.Arbitrary<Buffer> = fc.tuple(
  fc.oneof(fc.constantFrom('hello', 'pong', 'ack', 'welcome', 'snapshot', 'delta', 'repair', 'compressed', 'status', 'checksum', 'ping', 'goaway', 'error'), textArb),
  fc.array(fc.tuple(fc.oneof(fc.constantFrom('v', 'syncer', 'node', 'resume', 'known', 'digest', 'compression', 'flow', 'ts', 'seq', 'bytes', 'from', 'to', 'i', 'last', 'u', 'data', 'epoch', 'mode', 't'), textArb), rawMsgpack), { maxLength: 8 }),
  fc.nat({ max: 8 }),
).map(([t, fields, at]) => {
  const entries = fields.map(([k, v]) => Buffer.concat([strBytes(k), v]));
  entries.splice(Math.min(at, entries.length), 0, Buffer.concat([strBytes('t'), strBytes(t)]));
  return Buffer.concat([mapHead(entries.length), ...entries]);
});

/** Values of every JavaScript type fast-check knows, encoded by msgpackr with various options (records, structured clone, bundled strings, …). */
const packrs = [
  new Packr({ useRecords: false }),
  new Packr({ useRecords: true }),
  new Packr({ structuredClone: true }),
  new Packr({ bundleStrings: true, useRecords: false }),
  new Packr({ moreTypes: true, useRecords: false, useFloat32: 1 }),
  new Packr({ variableMapSize: true, useRecords: false, largeBigIntToFloat: true }),
];
export const packedAnything: fc.Arbitrary<Buffer> = fc.tuple(
  fc.anything({
    maxDepth: 4, withBigInt: true, withBoxedValues: true, withDate: true, withMap: true, withSet: true,
    withNullPrototype: true, withObjectString: true, withSparseArray: true, withTypedArray: true,
  }),
  fc.nat({ max: packrs.length - 1 }),
  fc.boolean(),
).map(([v, i, asMessage]) => {
  const value = asMessage && v !== null && typeof v === 'object' && !Array.isArray(v) ? { t: 'hello', ...(v as object) } : v;
  try {
    return packrs[i]!.pack(value);
  } catch {
    return packrs[0]!.pack(null);
  }
});

export const randomBytes: fc.Arbitrary<Buffer> = fc.oneof(
  fc.uint8Array({ maxLength: 64 }),
  fc.uint8Array({ maxLength: 2048 }),
  // Starting like a map, to get past the first byte.
  fc.tuple(fc.integer({ min: 0x80, max: 0x8f }), fc.uint8Array({ maxLength: 256 })).map(([h, b]) => Uint8Array.from([h, ...b])),
).map((b) => Buffer.from(b));

// ---- mutations -------------------------------------------------------------------------------

type Mutation =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'set'; at: number; byte: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'delete'; at: number; len: number }
  | { kind: 'dup'; at: number; len: number }
  | { kind: 'u32'; at: number; value: number };

/** Bytes that mean something to a msgpack reader: headers, lengths, nil, the never-used 0xc1. */
const INTERESTING = [0x00, 0x01, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc9, 0xca, 0xcb, 0xcc, 0xcf, 0xd3, 0xd4, 0xd7, 0xd8, 0xd9, 0xda, 0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xe0, 0xff];

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.nat({ max: 7 }) }),
  fc.record({ kind: fc.constant('set' as const), at: fc.nat(), byte: fc.oneof(fc.constantFrom(...INTERESTING), fc.nat({ max: 255 })) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 8 }) }),
  fc.record({ kind: fc.constant('dup' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 16 }) }),
  fc.record({ kind: fc.constant('u32' as const), at: fc.nat(), value: fc.constantFrom(0, 1, 0x7fffffff, 0xffffffff, 0x10000) }),
);

export function mutate(input: Buffer, muts: readonly Mutation[]): Buffer {
  let b = Buffer.from(input);
  for (const m of muts) {
    if (b.length === 0) break;
    const at = m.at % b.length;
    switch (m.kind) {
      case 'flip': b[at] = b[at]! ^ (1 << m.bit); break;
      case 'set': b[at] = m.byte; break;
      case 'truncate': b = b.subarray(0, at); break;
      case 'insert': b = Buffer.concat([b.subarray(0, at), m.bytes, b.subarray(at)]); break;
      case 'delete': b = Buffer.concat([b.subarray(0, at), b.subarray(at + m.len)]); break;
      case 'dup': b = Buffer.concat([b.subarray(0, at + m.len), b.subarray(at)]); break;
      case 'u32': if (at + 4 <= b.length) b.writeUInt32BE(m.value, at); break;
    }
  }
  return Buffer.from(b);
}

export const mutationsArb = fc.array(mutationArb, { minLength: 1, maxLength: 5 });
export const mutated = (base: fc.Arbitrary<Buffer>): fc.Arbitrary<Buffer> => fc.tuple(base, mutationsArb).map(([b, ms]) => mutate(b, ms));

// ---- client messages with a known verdict ----------------------------------------------------

/** One field of a generated message: its encoded value and whether PROTOCOL.md allows it. */
export interface Field { bytes: Buffer | undefined; valid: boolean; value?: unknown }

const absent: Field = { bytes: undefined, valid: true, value: undefined };
const nilField = (valid: boolean, value?: unknown): Field => ({ bytes: u8(0xc0), valid, value });

/** Valid msgpack that is neither of the expected types (nothing that can fail to decode). */
const otherValue = (not: 'string' | 'number' | 'bool' | 'map' | 'array' | 'bin'): fc.Arbitrary<Buffer> => fc.constantFrom(
  ...[
    ['string', strBytes('x')], ['string', strBytes('')], ['number', u8(0x07)], ['number', float64(0.5)], ['number', float64(-1)],
    ['bool', u8(0xc3)], ['bool', u8(0xc2)], ['map', u8(0x80)], ['map', rawMap([['epoch', strBytes('e')]])], ['array', u8(0x90)],
    ['array', Buffer.concat([arrayHead(1), strBytes('x')])], ['bin', binBytes(Buffer.alloc(8))], ['ext', bigIntExt(1n)],
  ].filter(([k]) => k !== not).map(([, b]) => b as Buffer),
);

/** A safe non-negative integer in any of its encodings; or something that is not one. */
export const countField: fc.Arbitrary<Field> = fc.oneof(
  fc.oneof(fc.constantFrom(0, 1, 127, 128, 65535, 65536, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1), fc.nat())
    .chain((n) => fc.constantFrom(...uintForms(n)).map((bytes) => ({ bytes, valid: true, value: n }))),
  fc.oneof(
    fc.constantFrom(float64(1.5), float64(-1), float64(NaN), float64(Infinity), float64(2 ** 53), intBytes(-1), intBytes(-(2n ** 40n)), intBytes(2n ** 64n - 1n), bigIntExt(5n), strBytes('5'), u8(0xc3)),
    otherValue('number'),
  ).map((bytes) => ({ bytes, valid: false })),
);

const DNS = fc.stringMatching(/^[a-z0-9]([-a-z0-9.]{0,30}[a-z0-9])?$/);
const longDns = fc.constantFrom('a'.repeat(253), `${'a'.repeat(63)}.${'b'.repeat(63)}`);
const badDns = fc.oneof(
  fc.constantFrom('A', 'node_1', '-node', 'node-', '.node', 'node.', 'nöde', 'node 1', 'a'.repeat(254), '\u0000', 'node\n'),
  DNS.map((s) => `${s}_`), DNS.map((s) => s.toUpperCase() + 'X'),
);

/** A `hello` whose verdict is known from how it was built: ok, or the close code it must get. */
export interface HelloCase { bytes: Buffer; expect: { ok: true; syncer: string; node: string; digest: boolean; resumeSeq?: number; knownSeq?: number; flow?: boolean; compression?: string[] } | { ok: false; code: number } }

const strField = (s: string, valid: boolean): fc.Arbitrary<Field> => form.map((f) => ({ bytes: strBytes(s, f), valid, value: s }));

const vField: fc.Arbitrary<Field> = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...uintForms(1)).map((bytes) => ({ bytes, valid: true, value: 1 })) },
  fc.oneof(fc.constantFrom(u8(0), u8(2), u8(99), intBytes(-1), float64(1.5), strBytes('1'), bigIntExt(1n), u8(0xc3), u8(0xc0)), otherValue('number'))
    .map((bytes) => ({ bytes, valid: false })),
  fc.constant({ bytes: undefined, valid: false }),
);

const syncerField: fc.Arbitrary<Field> = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...SYNCER_TYPES).chain((s) => strField(s, true)) },
  fc.constantFrom('Felix', 'felix ', '', 'typha', '__proto__', 'constructor').chain((s) => strField(s, false)),
  otherValue('string').map((bytes) => ({ bytes, valid: false })),
  fc.constant({ bytes: undefined, valid: false }),
);

const nodeField: fc.Arbitrary<Field> = fc.oneof(
  { weight: 4, arbitrary: fc.oneof(DNS, longDns).chain((s) => strField(s, true)) },
  strField('', true), fc.constant({ ...absent, value: '' }), fc.constant(nilField(true, '')),
  badDns.chain((s) => strField(s, false)),
  otherValue('string').map((bytes) => ({ bytes, valid: false })),
);

const textField: fc.Arbitrary<Field> = fc.oneof(
  { weight: 3, arbitrary: fc.string({ maxLength: 256 }).chain((s) => strField(s, true)) },
  fc.constant(absent),
  fc.integer({ min: 257, max: 600 }).chain((n) => strField('x'.repeat(n), false)),
  fc.constant(nilField(false)),
  otherValue('string').map((bytes) => ({ bytes, valid: false })),
);

/** `resume` / `known`: {epoch: string, seq: count}, possibly with extra fields; or not that. */
const tokenField: fc.Arbitrary<Field> = fc.oneof(
  fc.constant(absent), fc.constant(nilField(true)),
  fc.tuple(fc.oneof(fc.string({ maxLength: 20 }).map((s) => ({ bytes: strBytes(s), valid: true, value: s })), otherValue('string').map((bytes) => ({ bytes, valid: false, value: undefined }))), countField, fc.boolean(), fc.boolean())
    .map(([epoch, seq, extra, epochFirst]) => {
      const entries: [string, Buffer][] = [['epoch', epoch.bytes], ['seq', seq.bytes!]];
      if (!epochFirst) entries.reverse();
      if (extra) entries.push(['x-extra', strBytes('ignored')]);
      return { bytes: rawMap(entries), valid: epoch.valid && seq.valid, value: { epoch: epoch.value, seq: seq.value } };
    }),
  fc.constantFrom(rawMap([['seq', u8(3)]]), rawMap([['epoch', strBytes('e')]]), u8(0x90), strBytes('e:3'), u8(0x07), u8(0xc3), binBytes(Buffer.alloc(4))).map((bytes) => ({ bytes, valid: false })),
);

const bucketsValid = fc.constantFrom(1, 2, 4, 8, 16, 64, 1024, 16384);
const digestField: fc.Arbitrary<Field> = fc.oneof(
  fc.constant(absent), fc.constant(nilField(true)),
  fc.tuple(
    fc.oneof({ weight: 4, arbitrary: fc.constant(1) }, fc.constantFrom(0, 2, 99, -1, 1.5)),
    fc.oneof({ weight: 3, arbitrary: bucketsValid.map((n) => ({ n, valid: true })) }, fc.constantFrom(0, 3, 12, 32768, 65536, -2, 2.5, 2 ** 32).map((n) => ({ n, valid: false }))),
    fc.oneof({ weight: 4, arbitrary: fc.constant(0) }, fc.constantFrom(-8, -1, 1, 8)),
    fc.nat({ max: 3 }),
    fc.boolean(),
  ).chain(([scheme, buckets, skew, how, floatBuckets]) => {
    const n = buckets.n;
    const hashLen = Number.isInteger(n) && n > 0 && n <= 65536 ? Math.max(0, 8 * n + skew) : 8 + Math.max(0, skew);
    const hashes = Buffer.alloc(hashLen, 0x5a);
    const schemeBytes = Number.isInteger(scheme) && scheme >= 0 ? uintForms(scheme)[0]! : float64(scheme);
    const bucketBytes = floatBuckets || !(Number.isInteger(n) && n >= 0) ? float64(n) : uintForms(n)[0]!;
    // how: 0 valid shape, 1 scheme not a number, 2 hashes not a bin, 3 buckets missing
    const entries: [string, Buffer][] = [
      ['scheme', how === 1 ? strBytes(String(scheme)) : schemeBytes],
      ...(how === 3 ? [] : [['buckets', bucketBytes] as [string, Buffer]]),
      ['hashes', how === 2 ? strBytes('x'.repeat(Math.min(hashLen, 64))) : binBytes(hashes)],
    ];
    const valid = how === 0 && buckets.valid && skew === 0;
    return fc.constant({ bytes: rawMap(entries), valid, value: { scheme } });
  }),
  otherValue('map').map((bytes) => ({ bytes, valid: false })),
);

const compressionField: fc.Arbitrary<Field> = fc.oneof(
  fc.constant(absent),
  fc.array(fc.oneof(fc.constantFrom('brotli', 'deflate', 'zstd', 'none', ''), fc.string({ maxLength: 10 })), { maxLength: 5 })
    .map((list) => ({ bytes: Buffer.concat([arrayHead(list.length), ...list.map((s) => strBytes(s))]), valid: true, value: list })),
  fc.constantFrom(Buffer.concat([arrayHead(2), strBytes('brotli'), u8(0x01)]), Buffer.concat([arrayHead(1), u8(0xc0)]), strBytes('brotli'), u8(0xc0), rawMap([])).map((bytes) => ({ bytes, valid: false })),
);

const flowField: fc.Arbitrary<Field> = fc.oneof(
  fc.constant(absent), fc.constant({ bytes: u8(0xc3), valid: true, value: true }), fc.constant({ bytes: u8(0xc2), valid: true, value: false }),
  fc.constantFrom(u8(0xc0), u8(0x01), u8(0x00), strBytes('true')).map((bytes) => ({ bytes, valid: false })),
);

/** hello.revision (messages.ts): the newest datastore revision in the cache, a decimal string. */
const revisionField: fc.Arbitrary<Field> = fc.oneof(
  fc.constant(absent), fc.constant(nilField(true)),
  fc.oneof(fc.nat().map(String), fc.constantFrom('0', '18446744073709551615', '99999999999999999999')).chain((s) => strField(s, true)),
  fc.constantFrom('', '-1', '1e21', '1.5', ' 7', '0x10', '123456789012345678901', 'Infinity').chain((s) => strField(s, false)),
  otherValue('string').map((bytes) => ({ bytes, valid: false })),
);

const NODE_SCOPED = new Set(['tunnel-ip-allocation', 'node-status']);

const validOnly = (f: fc.Arbitrary<Field>) => f.filter((x) => x.valid);

/** A hello built field by field, with its verdict per PROTOCOL.md (`valid`: from valid fields only). */
export const helloCase: fc.Arbitrary<HelloCase> = helloCaseOf((f) => f);
export const validHelloCase: fc.Arbitrary<HelloCase> = helloCaseOf(validOnly).filter((c) => c.expect.ok);

function helloCaseOf(field: (f: fc.Arbitrary<Field>) => fc.Arbitrary<Field>): fc.Arbitrary<HelloCase> {
  return fc.record({
    v: field(vField), syncer: field(syncerField), node: field(nodeField), clientName: field(textField), clientVersion: field(textField),
    resume: field(tokenField), known: field(tokenField), digest: field(digestField), compression: field(compressionField), flow: field(flowField),
    revision: field(revisionField),
    extra: fc.array(fc.tuple(fc.constantFrom('x-a', 'x-b', 'peers', 'window', 'mode'), fc.jsonValue({ maxDepth: 2 })), { maxLength: 3 }),
    order: fc.array(fc.nat(), { minLength: 16, maxLength: 16 }),
    tForm: form,
  }).map((r) => {
    const fields: [string, Field][] = [
      ['v', r.v], ['syncer', r.syncer], ['node', r.node], ['clientName', r.clientName], ['clientVersion', r.clientVersion],
      ['resume', r.resume], ['known', r.known], ['digest', r.digest], ['compression', r.compression], ['flow', r.flow],
      ['revision', r.revision],
    ];
    const entries: [string, Buffer][] = [['t', strBytes('hello', r.tForm)]];
    for (const [k, f] of fields) if (f.bytes) entries.push([k, f.bytes]);
    const seen = new Set(entries.map(([k]) => k));
    for (const [k, v] of r.extra) if (!seen.has(k)) { seen.add(k); entries.push([k, packr.pack(v)]); }
    // Field order is free.
    const keyed = entries.map((e, i) => ({ e, k: r.order[i % 16]! * 100 + i })).sort((a, b) => a.k - b.k).map((x) => x.e);
    const bytes = rawMap(keyed);
    const syncer = r.syncer.value as string;
    const node = (r.node.valid ? r.node.value : undefined) as string | undefined;
    let expect: HelloCase['expect'];
    if (!r.v.valid) expect = { ok: false, code: 4003 };
    else if (fields.some(([, f]) => !f.valid) || (NODE_SCOPED.has(syncer) && node === '')) expect = { ok: false, code: 4005 };
    else {
      const token = (f: Field) => (f.value as { seq?: number } | undefined)?.seq;
      expect = {
        ok: true, syncer, node: node!, digest: r.digest.bytes !== undefined && (r.digest.value as { scheme?: number } | undefined)?.scheme === 1,
        resumeSeq: token(r.resume), knownSeq: token(r.known), flow: r.flow.value as boolean | undefined, compression: r.compression.value as string[] | undefined,
      };
    }
    return { bytes, expect };
  });
}

/** pong / ack / other types, with their verdict. */
export const otherClientCase: fc.Arbitrary<{ bytes: Buffer; expect: { ok: true; t: string } | { ok: false; code: number } }> = fc.oneof(
  // ts echoes a ping's ts (ms since the epoch): any finite number.
  fc.oneof(
    fc.double().map((x) => ({ bytes: float64(x), valid: Number.isFinite(x) })),
    fc.float().map((x) => ({ bytes: float32(x), valid: Number.isFinite(x) })),
    countField.filter((f) => f.valid).map((f) => ({ bytes: f.bytes!, valid: true })),
    fc.constantFrom(float64(1.5), float64(-1), intBytes(-(2n ** 40n)), intBytes(2n ** 64n - 1n)).map((bytes) => ({ bytes, valid: true })),
    fc.constantFrom(float64(NaN), float64(Infinity), float64(-Infinity), float32(-Infinity)).map((bytes) => ({ bytes, valid: false })),
    otherValue('number').map((bytes) => ({ bytes, valid: false })),
    fc.constant({ bytes: undefined, valid: false }),
  ).map((ts) => ({ bytes: rawMap([['t', strBytes('pong')], ...(ts.bytes ? [['ts', ts.bytes] as [string, Buffer]] : [])]), expect: ts.valid ? { ok: true as const, t: 'pong' } : { ok: false as const, code: 4001 } })),
  fc.tuple(countField, fc.oneof(fc.constant(absent), countField, fc.constant(nilField(false)))).map(([seq, bytes]) => ({
    bytes: rawMap([['t', strBytes('ack')], ['seq', seq.bytes!], ...(bytes.bytes ? [['bytes', bytes.bytes] as [string, Buffer]] : [])]),
    expect: seq.valid && bytes.valid ? { ok: true as const, t: 'ack' } : { ok: false as const, code: 4001 },
  })),
  fc.oneof(fc.constantFrom('welcome', 'goaway', 'Hello', 'HELLO', '', 'hello\u0000', 'snapshot'), fc.string({ unit: 'binary', maxLength: 30 }).filter((s) => !['hello', 'pong', 'ack'].includes(s)))
    .map((t) => ({ bytes: rawMap([['t', strBytes(t)]]), expect: { ok: false as const, code: 4002 } })),
  otherValue('string').map((t) => ({ bytes: rawMap([['t', t]]), expect: { ok: false as const, code: 4001 } })),
);

// ---- valid client messages (for mutation) ----------------------------------------------------

export const validClientMessage: fc.Arbitrary<Buffer> = fc.oneof(
  { weight: 4, arbitrary: validHelloCase.map((c) => c.bytes) },
  fc.constantFrom(
    packr.pack({ t: 'hello', v: 1, syncer: 'felix', node: '', clientName: 'fuzz', clientVersion: '1', compression: ['brotli', 'deflate'], flow: true }),
    packr.pack({ t: 'hello', v: 1, syncer: 'node-status', node: 'n1', resume: { epoch: 'abc', seq: 12 }, known: { epoch: 'abc', seq: 12 }, digest: { scheme: 1, buckets: 2, hashes: Buffer.alloc(16, 1) } }),
    packr.pack({ t: 'pong', ts: 1_700_000_000_000 }),
    packr.pack({ t: 'ack', seq: 42, bytes: 123_456 }),
  ),
);

// ---- valid server frames ----------------------------------------------------------------------

export interface ItemSpec { key: string; value: Buffer | null; revision: string }

const keyArb = fc.oneof(
  fc.tuple(fc.constantFrom('workloadendpoints', 'networkpolicies', 'nodes', 'ippools'), fc.stringMatching(/^[a-z0-9-]{1,20}$/))
    .map(([plural, name]) => `/calico/resources/v3/projectcalico.org/${plural}/${name}`),
  fc.string({ unit: 'binary', maxLength: 40 }),
);
export const valueBytesArb: fc.Arbitrary<Buffer> = fc.jsonValue({ maxDepth: 3 }).map((v) => packr.pack({ apiVersion: 'projectcalico.org/v3', kind: 'X', spec: v }));
export const itemArb: fc.Arbitrary<ItemSpec> = fc.record({
  key: keyArb,
  value: fc.option(valueBytesArb, { freq: 4 }),
  revision: fc.oneof(fc.nat().map(String), fc.string({ maxLength: 10 })),
});

export type Head =
  | { t: 'snapshot'; seq: number; i: number; last: boolean }
  | { t: 'repair'; seq: number; i: number; last: boolean; buckets?: number; differ?: Buffer }
  | { t: 'delta'; from: number; to: number };

const seqArb = fc.oneof(fc.nat({ max: 1000 }), fc.constantFrom(2 ** 31, 2 ** 32 + 5, 2 ** 53 - 1));
export const headArb: fc.Arbitrary<Head> = fc.oneof(
  fc.record({ t: fc.constant('snapshot' as const), seq: seqArb, i: fc.nat({ max: 5 }), last: fc.boolean() }),
  fc.record({ t: fc.constant('delta' as const), from: seqArb, to: seqArb }),
  fc.tuple(seqArb, fc.nat({ max: 5 }), fc.boolean(), bucketsValid, fc.array(fc.nat({ max: 16383 }), { maxLength: 8 })).map(([seq, i, last, buckets, differ]): Head => (
    i === 0 ? { t: 'repair', seq, i, last, buckets, differ: Buffer.concat(differ.map((d) => be32(d % buckets))) } : { t: 'repair', seq, i, last })),
);

export interface FrameCase { head: Head; items: ItemSpec[]; frame: Buffer }
export const itemsFrameCase: fc.Arbitrary<FrameCase> = fc.tuple(headArb, fc.array(itemArb, { maxLength: 12 })).map(([head, items]) => ({
  head, items, frame: itemsFrame(head, items.map((it) => encodeItem(it.key, it.value, it.revision))),
}));

/**
 * fc.assert, with the cause of a failure in the message (node:test does not print an error's
 * cause) and the counterexample cut short (bombs are hundreds of KiB).
 */
export async function assertProperty<Ts>(prop: fc.IProperty<Ts> | fc.IAsyncProperty<Ts>, params: fc.Parameters<Ts>): Promise<void> {
  const out = await fc.check(prop as fc.IAsyncProperty<Ts>, params);
  if (!out.failed) return;
  const cause = out.errorInstance instanceof Error ? out.errorInstance.stack ?? out.errorInstance.message : String(out.errorInstance);
  const report = fc.defaultReportMessage(out) ?? '';
  throw new Error(`${cause}\n\n${report.length > 6000 ? `${report.slice(0, 6000)}…` : report}`);
}
