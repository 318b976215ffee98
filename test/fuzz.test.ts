// Property-based fuzzing (fast-check) of everything that reads bytes from the other side:
//   1. decodeClientMessage (server side), on any bytes: a valid ClientMessage or a ProtocolError,
//      quickly; for hellos built field by field, exactly the verdict PROTOCOL.md gives.
//   2. decodeServerFrame (client side), on any bytes: a frame or a ProtocolError; valid frames
//      round-trip; mutated ones never yield items outside the frame.
//   3. A real server over real sockets, fed random frames from many connections: each bad one
//      gets the close (and error frame) the protocol prescribes, a well-behaved client alongside
//      is untouched, nothing is left behind.
//   4. The client library against a hostile server: it never throws out of its handlers, drops
//      the connection on every frame it must refuse without keeping anything of it, and syncs
//      with a good server afterwards.
// Short by default; FUZZ_RUNS / FUZZ_NET_RUNS for deep runs, FUZZ_SEED to replay (gen.ts).
import assert from 'node:assert/strict';
import { randomBytes as cryptoRandomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import fc from 'fast-check';
import { pack } from 'msgpackr';
import { SyncClient } from '../client/index.js';
import { SYNCER_TYPES } from '../src/model/views.js';
import { entryHash } from '../src/protocol/checksum.js';
import { decodeClientMessage, encode, packr, ProtocolError } from '../src/protocol/codec.js';
import { compressFrame, decompressFrame } from '../src/protocol/compression.js';
import { decodeServerFrame, type DecodedFrame } from '../src/protocol/frames.js';
import { MsgReader } from '../src/protocol/msgpack-raw.js';
import type { ClientMessage } from '../src/protocol/messages.js';
import { assertClientMatches, expectedView } from './support/expected.js';
import {
  assertProperty, fcParams, helloCase, itemsFrameCase, mutated, otherClientCase, packedAnything, randomBytes, rawMessage,
  OPEN_BUGS, rawMsgpack, validClientMessage, validHelloCase,
} from './support/fuzz/gen.js';
import { bomb, HostileServer, sessionArb, type Session } from './support/fuzz/hostile.js';
import { Clients, node, rawConnect, sleep, startTestServer, waitFor, wep, type TestServer } from './support/harness.js';

/** No single decode may take longer (inputs here are at most a few hundred KiB). */
const DECODE_MS = 500;

const hex = (b: Uint8Array) => `${Buffer.from(b.subarray(0, 200)).toString('hex')}${b.length > 200 ? `… (${b.length} B)` : ''}`;

function timed<T>(f: () => T): { ms: number; ok: true; value: T } | { ms: number; ok: false; error: unknown } {
  const t = performance.now();
  try {
    const value = f();
    return { ms: performance.now() - t, ok: true, value };
  } catch (error) {
    return { ms: performance.now() - t, ok: false, error };
  }
}

/** Uncaught exceptions and unhandled rejections while this file runs: there must be none. */
const uncaught: unknown[] = [];
const onUncaught = (err: unknown) => { uncaught.push(err); };
before(() => { process.on('uncaughtException', onUncaught); process.on('unhandledRejection', onUncaught); });
after(() => { process.off('uncaughtException', onUncaught); process.off('unhandledRejection', onUncaught); });
const noUncaught = (what: string) => assert.deepEqual(uncaught.map(String), [], `${what}: nothing thrown out of an event handler`);

// ---- 1. decodeClientMessage ----------------------------------------------------------------

const REFERENCE_HELLO = packr.pack({ t: 'hello', v: 1, syncer: 'node-status', node: 'n1', clientName: 'ref', resume: { epoch: 'e', seq: 3 }, digest: { scheme: 1, buckets: 2, hashes: Buffer.alloc(16, 7) }, compression: ['brotli'], flow: true });
const REFERENCE_DECODED = decodeClientMessage(REFERENCE_HELLO);
const CLIENT_CODES = new Set([4001, 4002, 4003, 4005]);
const isCount = (x: unknown) => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;

/** What PROTOCOL.md says a decoded client message is. */
function assertClientMessage(m: ClientMessage, input: Buffer): void {
  const where = `decoded from ${hex(input)}`;
  const keys = (o: object, allowed: string[]) => assert.deepEqual(Object.keys(o).filter((k) => !allowed.includes(k)), [], `${where}: no other fields`);
  switch (m.t) {
    case 'hello': {
      keys(m, ['t', 'v', 'syncer', 'node', 'clientName', 'clientVersion', 'resume', 'known', 'revision', 'digest', 'compression', 'flow']);
      if (m.revision !== undefined) assert.match(m.revision, /^[0-9]{1,20}$/, where);
      assert.equal(m.v, 1, where);
      assert.ok((SYNCER_TYPES as readonly string[]).includes(m.syncer), where);
      assert.ok(m.node === '' || /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(m.node), `${where}: node ${JSON.stringify(m.node)}`);
      if (m.syncer === 'node-status' || m.syncer === 'tunnel-ip-allocation') assert.notEqual(m.node, '', `${where}: a node-scoped view names its node`);
      for (const s of [m.clientName, m.clientVersion]) assert.ok(typeof s === 'string' && s.length <= 256, where);
      for (const r of [m.resume, m.known]) {
        if (r === undefined) continue;
        keys(r, ['epoch', 'seq']);
        assert.ok(typeof r.epoch === 'string' && isCount(r.seq), `${where}: token ${String(r.seq)}`);
      }
      if (m.digest) {
        assert.equal(m.digest.scheme, 1, where);
        assert.ok(Number.isInteger(m.digest.buckets) && m.digest.buckets >= 1 && m.digest.buckets <= 16384 && (m.digest.buckets & (m.digest.buckets - 1)) === 0, where);
        assert.ok(m.digest.hashes instanceof Uint8Array && m.digest.hashes.byteLength === 8 * m.digest.buckets, where);
      }
      if (m.compression !== undefined) assert.ok(Array.isArray(m.compression) && m.compression.every((c) => typeof c === 'string'), where);
      if (m.flow !== undefined) assert.equal(typeof m.flow, 'boolean', where);
      return;
    }
    case 'pong':
      keys(m, ['t', 'ts']);
      assert.equal(typeof m.ts, 'number', where);
      return;
    case 'ack':
      keys(m, ['t', 'seq', 'bytes']);
      assert.ok(isCount(m.seq) && (m.bytes === undefined || isCount(m.bytes)), where);
      return;
    default:
      assert.fail(`${where}: unexpected message type ${String((m as { t: unknown }).t)}`);
  }
}

/** The one rule for any input: a valid message or a ProtocolError with a protocol close code; quick; nothing left behind. */
function checkClientDecode(input: Buffer): ReturnType<typeof timed<ClientMessage>> {
  const r = timed(() => decodeClientMessage(input));
  assert.ok(r.ms < DECODE_MS, `decode took ${r.ms.toFixed(0)} ms on ${hex(input)}`);
  if (r.ok) assertClientMessage(r.value, input);
  else {
    assert.ok(r.error instanceof ProtocolError, `not a ProtocolError: ${String(r.error)} (${(r.error as Error)?.constructor?.name}) on ${hex(input)}`);
    assert.ok(CLIENT_CODES.has(r.error.code), `code ${r.error.code} on ${hex(input)}`);
    assert.ok(typeof r.error.message === 'string' && r.error.message.length > 0 && r.error.message.length < 1000, `message ${r.error.message.slice(0, 100)}`);
  }
  // The decoder is shared by every connection: no input may leave state behind in it.
  assert.deepEqual(decodeClientMessage(REFERENCE_HELLO), REFERENCE_DECODED, `the decoder still works after ${hex(input)}`);
  return r;
}

describe('1. decodeClientMessage on hostile bytes', () => {
  test('arbitrary bytes', async () => {
    await assertProperty(fc.property(randomBytes, (b) => { checkClientDecode(b); }), fcParams('pure'));
  });

  test('arbitrary JavaScript values encoded by msgpackr (records, structured clone, bundled strings, BigInt, typed arrays, …)', async () => {
    await assertProperty(fc.property(packedAnything, (b) => { checkClientDecode(b); }), fcParams('pure'));
  });

  test('raw msgpack: every encoding form, extension types, nesting, lying lengths', async () => {
    await assertProperty(fc.property(fc.oneof(rawMsgpack, rawMessage), (b) => { checkClientDecode(b); }), fcParams('pure'));
  });

  test('valid messages with bytes flipped, set, inserted, deleted, duplicated, truncated', async () => {
    await assertProperty(fc.property(mutated(validClientMessage), (b) => { checkClientDecode(b); }), fcParams('pure'));
  });

  test('hellos built field by field get exactly the verdict of PROTOCOL.md', async () => {
    await assertProperty(fc.property(helloCase, ({ bytes, expect }) => {
      const r = checkClientDecode(bytes);
      if (!expect.ok) {
        assert.ok(!r.ok, `accepted a hello that must get ${expect.code}: ${JSON.stringify(r.ok && r.value, (_k, v) => (typeof v === 'bigint' ? String(v) : v instanceof Uint8Array ? `bin(${v.length})` : v))}`);
        assert.equal((r.error as ProtocolError).code, expect.code, (r.error as Error).message);
        return;
      }
      assert.ok(r.ok, `refused a valid hello: ${!r.ok && (r.error as Error).message}`);
      const h = r.value;
      assert.equal(h.t, 'hello');
      if (h.t !== 'hello') return;
      assert.equal(h.syncer, expect.syncer);
      assert.equal(h.node, expect.node);
      assert.equal(h.digest !== undefined, expect.digest, 'a digest of scheme 1 is kept, others are dropped');
      assert.equal(h.resume?.seq, expect.resumeSeq);
      assert.equal(h.known?.seq, expect.knownSeq);
      assert.equal(h.flow, expect.flow);
      assert.deepEqual(h.compression, expect.compression);
    }), fcParams('pure'));
  });

  test('pong, ack and other message types get exactly the verdict of PROTOCOL.md', async () => {
    await assertProperty(fc.property(otherClientCase, ({ bytes, expect }) => {
      const r = checkClientDecode(bytes);
      if (expect.ok) assert.ok(r.ok && r.value.t === expect.t, `refused: ${!r.ok && (r.error as Error).message}`);
      else assert.ok(!r.ok && (r.error as ProtocolError).code === expect.code, `expected ${expect.code}, got ${r.ok ? 'accepted' : (r.error as ProtocolError).code}`);
    }), fcParams('pure'));
  });
});

// ---- 2. decodeServerFrame --------------------------------------------------------------------

const REFERENCE_FRAME = itemsFrameReference();
function itemsFrameReference(): { frame: Buffer; decoded: DecodedFrame } {
  const frame = Buffer.concat([
    packr.pack({ t: 'delta', from: 1, to: 2, u: [] }).subarray(0, -1), Buffer.from([0x92]),
    Buffer.from(pack(['/k/1', packr.pack({ a: 1 }), '7'])), Buffer.from(pack(['/k/2', null, '8'])),
  ]);
  return { frame, decoded: decodeServerFrame(frame) };
}

/** Any input: a decoded frame whose items lie inside it, or a ProtocolError (4001); quickly. */
function checkServerDecode(input: Buffer): ReturnType<typeof timed<DecodedFrame>> {
  const r = timed(() => decodeServerFrame(input));
  assert.ok(r.ms < DECODE_MS, `decode took ${r.ms.toFixed(0)} ms on ${hex(input)}`);
  if (!r.ok) {
    assert.ok(r.error instanceof ProtocolError, `not a ProtocolError: ${String(r.error)} on ${hex(input)}`);
    assert.equal(r.error.code, 4001);
  } else {
    assert.equal(typeof r.value.msg.t, 'string');
    for (const it of r.value.items ?? []) {
      assert.equal(typeof it.key, 'string');
      assert.equal(typeof it.revision, 'string');
      assert.equal(typeof it.hash, 'bigint');
      assert.ok(it.hash >= 0n && it.hash < 2n ** 64n);
      if (it.value === null) assert.equal(it.hash, 0n);
      else {
        assert.ok(Buffer.isBuffer(it.value) && it.value.buffer === input.buffer, 'a value is a view into the frame');
        assert.ok(it.value.byteOffset >= input.byteOffset && it.value.byteOffset + it.value.length <= input.byteOffset + input.length, 'inside the frame');
      }
    }
  }
  // The hash module's memory is shared: items are still hashed right afterwards.
  assert.deepEqual(decodeServerFrame(REFERENCE_FRAME.frame), REFERENCE_FRAME.decoded, `the decoder still works after ${hex(input)}`);
  return r;
}

/** The client's whole pipeline for a frame, compressed or not (sync-client.ts handle 'compressed'). */
function clientPipeline(input: Buffer, alg: 'brotli' | 'deflate'): void {
  const outer = checkServerDecode(input);
  if (!outer.ok || outer.value.msg.t !== 'compressed' || !(outer.value.msg.data instanceof Uint8Array)) return;
  const inflated = timed(() => decompressFrame(outer.value.msg.data as Uint8Array, alg, 16 << 20));
  assert.ok(inflated.ms < DECODE_MS);
  // zlib's own errors are fine: the client turns any error into a protocol error.
  if (!inflated.ok) { assert.ok(inflated.error instanceof Error); return; }
  checkServerDecode(inflated.value);
}

describe('2. decodeServerFrame on hostile bytes', () => {
  test('short strings taken from the table of those seen before are the strings decoding gives, bytes and all', async () => {
    // MsgReader.shortStr keeps short strings in a fixed table of slots: strings that share a
    // slot, differ only in length or are not UTF-8 must each still read as what str() reads.
    const fixstr = (b: Uint8Array) => Buffer.concat([Buffer.from([0xa0 | b.length]), b]);
    const short = fc.oneof(fc.uint8Array({ maxLength: 9 }), fc.constantFrom(...['t', 'u', 'h', 'from', 'to', 'delta', '\0', '\0\0'].map((x) => Buffer.from(x))));
    await assertProperty(fc.property(fc.array(short, { minLength: 1, maxLength: 600 }), (strings) => {
      const buf = Buffer.concat(strings.map(fixstr));
      for (let pass = 0; pass < 2; pass++) {
        const a = new MsgReader(buf);
        const b = new MsgReader(buf);
        while (!a.done) {
          assert.equal(a.shortStr(), b.str());
          assert.equal(a.pos, b.pos);
        }
      }
    }), fcParams('pure'));
  });

  test('arbitrary bytes, msgpack and msgpackr values', async () => {
    await assertProperty(fc.property(fc.oneof(randomBytes, rawMsgpack, rawMessage, packedAnything), (b) => { checkServerDecode(b); }), fcParams('pure'));
  });

  test('valid snapshot, repair and delta frames round-trip, items hashed as the server hashes them', async () => {
    await assertProperty(fc.property(itemsFrameCase, fc.constantFrom('plain', 'brotli', 'deflate'), ({ head, items, frame }, how) => {
      let f = frame;
      if (how !== 'plain') {
        const z = decodeServerFrame(compressFrame(frame, how));
        assert.equal(z.msg.t, 'compressed');
        f = decompressFrame(z.msg.data as Uint8Array, how, 16 << 20);
      }
      const r = checkServerDecode(f);
      assert.ok(r.ok);
      const { msg, items: got } = r.value;
      for (const [k, v] of Object.entries(head)) {
        if (Buffer.isBuffer(v)) assert.deepEqual(Buffer.from(msg[k] as Uint8Array), v, k);
        else assert.equal(msg[k], v, k);
      }
      assert.equal(got?.length, items.length);
      items.forEach((it, i) => {
        const g = got![i]!;
        assert.equal(g.key, it.key);
        assert.equal(g.revision, it.revision);
        assert.deepEqual(g.value, it.value);
        assert.equal(g.hash, it.value ? entryHash(it.key, it.value) : 0n, 'the in-place hash is the entry hash');
      });
    }), fcParams('pure'));
  });

  test('mutated snapshot, repair, delta, control and compressed frames', async () => {
    const control = fc.constantFrom(
      encode({ t: 'welcome', v: 1, serverId: 's', serverVersion: '1', epoch: 'e', syncer: 'felix', node: '', mode: 'snapshot', compression: 'brotli', window: 1 << 20 }),
      encode({ t: 'checksum', seq: 5, value: '0123456789abcdef', count: 2 }),
      encode({ t: 'goaway', reason: 'shutdown', retryAfterMs: 100, resume: { epoch: 'e', seq: 9 }, peers: ['ws://a:1'] }),
      encode({ t: 'status', status: 'in-sync' }), encode({ t: 'ping', ts: Date.now() }), encode({ t: 'error', code: 4001, message: 'x' }),
    );
    const frames = fc.oneof({ weight: 3, arbitrary: itemsFrameCase.map((c) => c.frame) }, control);
    const compressed = fc.tuple(frames, fc.constantFrom('brotli' as const, 'deflate' as const)).map(([f, alg]) => ({ f: compressFrame(f, alg), alg }));
    await assertProperty(fc.property(fc.oneof(
      mutated(frames).map((f) => ({ f, alg: 'brotli' as const })),
      // Mutated outside (the compressed bytes) or inside (the frame it holds).
      compressed.chain(({ f, alg }) => mutated(fc.constant(f)).map((m) => ({ f: m, alg }))),
      fc.tuple(mutated(frames), fc.constantFrom('brotli' as const, 'deflate' as const)).map(([f, alg]) => ({ f: compressFrame(f, alg), alg })),
    ), ({ f, alg }) => { clientPipeline(f, alg); }), fcParams('pure'));
  });
});

// ---- 3. a real server, many hostile connections ------------------------------------------------

const MAX_INBOUND = 8192;
const HANDSHAKE_SECS = 0.3;

interface ClientFrame { data: Buffer; text?: boolean; what: string }
type Script = { kind: 'ws'; frames: ClientFrame[] } | { kind: 'tcp'; chunks: Buffer[]; cooperative: boolean; hello: boolean };

const utf8 = new TextDecoder('utf-8', { fatal: true });
const validUtf8 = (b: Buffer) => { try { utf8.decode(b); return true; } catch { return false; } };

const clientFrame: fc.Arbitrary<ClientFrame> = fc.oneof(
  { weight: 4, arbitrary: validHelloCase.map((c) => ({ data: c.bytes, what: 'valid hello' })) },
  { weight: 4, arbitrary: otherClientCase.filter((c) => c.expect.ok).map((c) => ({ data: c.bytes, what: 'valid pong/ack' })) },
  helloCase.map((c) => ({ data: c.bytes, what: 'hello' })),
  otherClientCase.map((c) => ({ data: c.bytes, what: 'pong/ack/other' })),
  randomBytes.map((data) => ({ data, what: 'random bytes' })),
  fc.oneof(rawMsgpack, rawMessage).map((data) => ({ data, what: 'raw msgpack' })),
  packedAnything.map((data) => ({ data, what: 'msgpackr value' })),
  mutated(validClientMessage).map((data) => ({ data, what: 'mutated message' })),
  fc.oneof(fc.constant(Buffer.from(JSON.stringify({ t: 'hello', v: 1, syncer: 'felix' }))), fc.string({ unit: 'binary' }).map((s) => Buffer.from(s)), fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b)))
    .map((data) => ({ data, text: true, what: 'text frame' })),
  fc.tuple(fc.integer({ min: MAX_INBOUND - 2, max: 4 * MAX_INBOUND }), fc.nat({ max: 255 })).map(([n, fill]) => ({ data: Buffer.alloc(n, fill), what: `${n} bytes` })),
  fc.integer({ min: MAX_INBOUND - 200, max: 2 * MAX_INBOUND }).map((n) => ({ data: packr.pack({ t: 'hello', v: 1, syncer: 'felix', node: '', clientName: 'x'.repeat(n) }), what: 'a long hello' })),
);

/** After a valid hello: pongs and acks of every kind, and the rest (what the server does after decoding). */
const streamingFrame: fc.Arbitrary<ClientFrame> = fc.oneof(
  { weight: 3, arbitrary: otherClientCase.map((c) => ({ data: c.bytes, what: 'pong/ack/other' })) },
  clientFrame,
);

const script: fc.Arbitrary<Script> = fc.oneof(
  { weight: 3, arbitrary: fc.array(clientFrame, { maxLength: 4 }).map((frames) => ({ kind: 'ws' as const, frames })) },
  { weight: 3, arbitrary: fc.tuple(validHelloCase, fc.array(streamingFrame, { minLength: 1, maxLength: 4 })).map(([h, rest]) => ({ kind: 'ws' as const, frames: [{ data: h.bytes, what: 'valid hello' }, ...rest] })) },
  fc.record({
    kind: fc.constant('tcp' as const),
    chunks: fc.array(fc.oneof(fc.uint8Array({ minLength: 1, maxLength: 64 }), fc.uint8Array({ minLength: 1, maxLength: 2048 })).map((b) => Buffer.from(b)), { minLength: 1, maxLength: 3 }),
    cooperative: fc.boolean(),
    hello: fc.boolean(),
  }).map((s) => (s.hello && !OPEN_BUGS ? { ...s, cooperative: true } : s)), // open bug: a silent streaming peer lingers 30 s
);

/** The protocol's verdict on a connection's frames (decoding per property 1): the close it must get. */
function verdict(frames: ClientFrame[]): { code: number; errorFrame: boolean; welcomed: boolean; probe: boolean } {
  if (frames.length === 0) return { code: 4004, errorFrame: true, welcomed: false, probe: false };
  let welcomed = false;
  for (const f of frames) {
    if (f.text) return validUtf8(f.data) ? { code: 4001, errorFrame: true, welcomed, probe: false } : { code: 1007, errorFrame: false, welcomed, probe: false };
    if (f.data.length > MAX_INBOUND) return { code: 1009, errorFrame: false, welcomed, probe: false };
    let m: ClientMessage;
    try { m = decodeClientMessage(f.data); } catch (err) { return { code: (err as ProtocolError).code, errorFrame: true, welcomed, probe: false }; }
    if (!welcomed && m.t !== 'hello') return { code: 4002, errorFrame: true, welcomed, probe: false };
    if (welcomed && m.t === 'hello') return { code: 4002, errorFrame: true, welcomed, probe: false };
    welcomed = true;
  }
  // Still fine: a last frame of an unknown type shows that all of it was read (4002).
  return { code: 4002, errorFrame: true, welcomed, probe: true };
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_r, reject) => { timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms); }),
  ]);
}

/** A WebSocket upgrade by hand, then raw bytes: invalid framing, unmasked frames, lying lengths. */
async function rawTcp(port: number, chunks: Buffer[], cooperative: boolean, hello: boolean): Promise<void> {
  const sock: Socket = connect(port, '127.0.0.1');
  sock.on('error', () => {});
  const closed = new Promise<void>((r) => sock.once('close', () => r()));
  await new Promise<void>((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject); });
  sock.write(`GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${cryptoRandomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
  let got = '';
  await withTimeout(new Promise<void>((resolve) => {
    const onData = (d: Buffer) => { got += d.toString('latin1'); if (got.includes('\r\n\r\n')) { sock.off('data', onData); resolve(); } };
    sock.on('data', onData);
  }), 5000, 'the upgrade');
  assert.match(got, /^HTTP\/1\.1 101/);
  if (hello) {
    // A valid hello in a masked frame first: the garbage then hits a streaming connection.
    const h = packr.pack({ t: 'hello', v: 1, syncer: 'felix', node: '' });
    const mask = cryptoRandomBytes(4);
    sock.write(Buffer.concat([Buffer.from([0x82, 0x80 | h.length]), mask, Buffer.from(h.map((b, i) => b ^ mask[i % 4]!))]));
  }
  for (const c of chunks) sock.write(c);
  // A cooperative peer goes once the server says anything; the other never answers.
  if (cooperative) sock.once('data', () => sock.end());
  // Handshake timeout, then the server's 2 s wait for the close handshake.
  await withTimeout(closed, 5000, 'the server to close a connection sending garbage');
}

describe('3. a real server fed random frames from many connections', () => {
  let ts: TestServer;
  const clients = new Clients();
  let good: SyncClient;
  let gc: (() => void) | undefined;
  const socketsOf = (t: TestServer) => (t.app.server as unknown as { sockets: Set<Socket> }).sockets;

  before(async () => {
    try { setFlagsFromString('--expose-gc'); gc = runInNewContext('gc') as () => void; } catch { gc = undefined; }
    ts = await startTestServer({ serverHandshakeTimeoutSecs: HANDSHAKE_SECS, serverMaxInboundMessageBytes: MAX_INBOUND },
      [node('node-a'), wep('node-a', 'pod-1'), wep('node-b', 'pod-2')]);
    good = clients.make({ url: ts.url, syncerType: 'felix', clientName: 'good' });
    await withTimeout(good.inSync(), 5000, 'the good client in sync');
  });

  after(async () => {
    await clients.stopAll();
    await ts?.close();
  });

  test('every bad connection gets its close and error frame; the good client and the server are unharmed; nothing is left', { timeout: 4 * 3_600_000 }, async () => {
    const badFrames = async () => (await ts.app.metrics.badFrames.get()).values.reduce((s, v) => s + v.value, 0);
    const heapBefore = (gc?.(), process.memoryUsage().heapUsed);
    let run = 0;
    let connections = 0;
    await assertProperty(fc.asyncProperty(fc.array(script, { minLength: 1, maxLength: 10 }), async (scripts) => {
      run++;
      const before = await badFrames();
      let counted = 0;
      await Promise.all(scripts.map(async (s, i) => {
        connections++;
        if (s.kind === 'tcp') return rawTcp(ts.app.ports.server, s.chunks, s.cooperative, s.hello);
        const v = verdict(s.frames);
        if (v.code !== 1007) counted++;
        const frames = v.probe ? [...s.frames, { data: packr.pack({ t: 'fuzz-probe' }), what: 'probe' }] : s.frames;
        const c = rawConnect(ts.url, { maxPayload: 1 << 20 });
        const raw: Buffer[] = [];
        c.ws.on('message', (d: Buffer) => raw.push(Buffer.from(d)));
        await withTimeout(c.opened, 5000, 'open');
        for (const f of frames) c.ws.send(f.data, { binary: !f.text });
        const label = `connection ${i} of run ${run}: ${frames.map((f) => `${f.what}${f.text ? ' (text)' : ''} ${hex(f.data).slice(0, 60)}`).join(' | ')}`;
        const close = await withTimeout(c.closed, 5000, `close of ${label}`).catch((err: Error) => {
          throw new Error(`${err.message}; uncaught: ${uncaught.map(String).join('; ') || 'none'}`);
        });
        assert.equal(close.code, v.code, `${label}: close code (reason: ${close.reason})`);
        const got = raw.map((d) => decodeServerFrame(d));
        const errors = got.filter((f) => f.msg.t === 'error');
        if (v.errorFrame) {
          assert.equal(errors.length, 1, `${label}: one error frame`);
          assert.equal(got.at(-1), errors[0], `${label}: the error frame comes last`);
          assert.equal(errors[0]!.msg.code, v.code, `${label}: error frame code`);
        } else {
          assert.equal(errors.length, 0, `${label}: no error frame`);
        }
        if (v.welcomed) assert.equal(got[0]?.msg.t, 'welcome', `${label}: the hello was answered`);
        else assert.ok(got.every((f) => f.msg.t !== 'welcome'), `${label}: no welcome without a hello`);
      }));
      noUncaught(`run ${run}`);
      // Everything but the good client goes; each violation is counted once.
      await waitFor(() => ts.app.server.connections.size === 1, `run ${run}: only the good client to remain (${ts.app.server.connections.size})`, 5000);
      assert.ok(await badFrames() >= before + counted, `run ${run}: calico_fanout_bad_frames_total grew by at least ${counted}`);
      assert.ok(good.isInSync, 'the good client is in sync');
      assert.equal(good.stats.connects, 1, 'the good client never reconnected');
      assert.equal(good.stats.protocolErrors, 0);
      const late = node(`node-late-${run}`);
      ts.ds.put(late.key, late.value);
      await waitFor(() => good.get(late.key) !== undefined, `run ${run}: the good client to see a new key`, 5000);
    }), fcParams('server'));
    // Nothing left behind: connections, sockets, memory.
    await waitFor(() => socketsOf(ts).size === 1, `the sockets to go (${socketsOf(ts).size} left)`, 10_000);
    assert.equal(ts.app.server.connections.size, 1);
    assertClientMatches(good, expectedView(ts.ds, 'felix', ''), 'the good client');
    if (gc) {
      await sleep(50);
      gc();
      const grown = process.memoryUsage().heapUsed - heapBefore;
      assert.ok(grown < 64 << 20, `heap grew by ${(grown / 2 ** 20).toFixed(1)} MiB over ${connections} connections`);
    }
    noUncaught('the server property');
  });
});

// ---- 4. the client library against a hostile server ----------------------------------------------

describe('4. the client library against a hostile server', () => {
  let goodServer: TestServer;
  let hostile: HostileServer;
  let bombs: { brotli: Buffer; deflate: Buffer };

  before(async () => {
    goodServer = await startTestServer({}, [node('node-a'), node('node-b'), wep('node-a', 'pod-1'), wep('node-b', 'pod-2')]);
    hostile = await HostileServer.start();
    bombs = { brotli: await bomb('brotli'), deflate: await bomb('deflate') };
  });

  after(async () => {
    await hostile?.close();
    await goodServer?.close();
  });

  const badFramesAtGood = async () => (await goodServer.app.metrics.badFrames.get()).values.reduce((s, v) => s + v.value, 0);

  /** Plays the sessions to a fresh client, then lets it go to the good server; checks everything. */
  async function playAndRecover(sessions: Session[], label: string): Promise<SyncClient> {
    const name = `fuzz-${Math.random().toString(36).slice(2)}`;
    const goodBefore = await badFramesAtGood();
    hostile.results.length = 0;
    hostile.load(sessions);
    const log: string[] = [];
    const push = (o: object, m?: string) => { log.push(`${m} ${JSON.stringify(o)}`.slice(0, 300)); };
    const logger = { debug() {}, info: push, warn: push };
    const client = new SyncClient({
      logger,
      // One URL at a time: the hostile server while it has sessions to play, then the good one.
      discover: async () => { await hostile.idle(); return [hostile.pending > 0 ? hostile.url : goodServer.url]; },
      syncerType: 'felix', clientName: name, initialBackoffMs: 1, maxBackoffMs: 10, connectTimeoutMs: 10_000, serverTimeoutMs: 20_000,
      onUpdates: (us) => { for (const u of us) void u.kind; },
    });
    hostile.probe = (key) => client.get(key) !== undefined;
    client.start();
    try {
      const onGood = () => [...goodServer.app.server.connections].some((c) => c.hello?.clientName === name && c.streaming);
      await waitFor(() => hostile.pending === 0 && onGood() && client.isInSync, `${label}: the client in sync with the good server`, 20_000).catch((err: Error) => {
        throw new Error(`${err.message} after ${sessions.length} hostile sessions (${hostile.results.length} played, ${hostile.pending} pending, ${hostile.playing} playing; ${JSON.stringify(client.stats)}; uncaught: ${uncaught.map(String).join('; ')}); client log:\n${log.join('\n')}`);
      });
      noUncaught(label);
      assert.equal(hostile.results.length, sessions.length, `${label}: every session played`);
      for (const [i, r] of hostile.results.entries()) {
        const s = `${label}, session ${i} (${r.session.frames.map((f) => f.what).join(', ')})`;
        // What the client sends stays valid, whatever it was told.
        const hello = decodeClientMessage(r.hello);
        assert.equal(hello.t, 'hello', s);
        assert.ok(r.hello.length <= 256 << 10, `${s}: a ${r.hello.length} B hello is over the server's default inbound limit`);
        const d = r.session.designated === undefined ? undefined : r.session.frames[r.session.designated];
        if (d?.fatal) {
          assert.equal(r.code, 1006, `${s}: the client must drop the connection on "${d.what}" (${d.fatal}), it closed with ${r.code}`);
          assert.deepEqual(r.poisoned, [], `${s}: keys of the refused frame "${d.what}" are in the cache`);
        }
      }
      const dropped = hostile.results.filter((r) => r.code === 1006).length;
      // Each dropped connection is one protocol error, and nothing else is: frames read after the
      // client gave a connection up (a bad frame, a checksum mismatch) are not processed.
      assert.equal(client.stats.protocolErrors, dropped, `${label}: one protocol error per connection the client dropped; client log:\n${log.join('\n')}`);

      assert.equal(await badFramesAtGood(), goodBefore, `${label}: the good server saw no bad frame from the client`);
      assertClientMatches(client, expectedView(goodServer.ds, 'felix', ''), `${label}: the client's content`);
      const late = wep('node-a', `late-${name}`);
      goodServer.ds.put(late.key, late.value);
      await waitFor(() => client.get(late.key) !== undefined, `${label}: a later change`, 5000);
      goodServer.ds.delete(late.key);
      return client;
    } finally {
      await client.stop();
    }
  }

  test('decompression bombs (300 MB of zeros, brotli and deflate) are refused and survived', { timeout: 120_000 }, async () => {
    const prefix = (alg: 'brotli' | 'deflate'): Session['frames'] => [
      { data: encode({ t: 'welcome', v: 1, serverId: 'h', serverVersion: '0', epoch: 'e', syncer: 'felix', node: '', mode: 'snapshot', compression: alg }), what: 'welcome' },
    ];
    const client = await playAndRecover([
      { frames: [...prefix('brotli'), { data: bombs.brotli, what: 'brotli bomb', fatal: 'decode' }], designated: 1, closeCode: 1000 },
      { frames: [...prefix('deflate'), { data: bombs.deflate, what: 'deflate bomb', fatal: 'decode' }], designated: 1, closeCode: 1000 },
    ], 'bombs');
    assert.equal(client.stats.protocolErrors, 2);
  });

  test('random sessions of odd, broken and hostile frames: no throw, every refusal a reconnect, then in sync with a good server', { timeout: 4 * 3_600_000 }, async () => {
    let run = 0;
    await assertProperty(fc.asyncProperty(fc.array(sessionArb(bombs), { minLength: 1, maxLength: 3 }), async (sessions) => {
      run++;
      await playAndRecover(sessions, `run ${run}`);
    }), fcParams('client'));
  });
});
