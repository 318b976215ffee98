// Hostile and malformed client input against a real server: every violation gets an `error`
// frame and a close carrying the same code, is counted in calico_fanout_bad_frames_total, and
// leaves the server (and a well-behaved client already connected to it) untouched.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pack } from 'msgpackr';
import type WebSocket from 'ws';
import type { SyncClient } from '../client/index.js';
import { decodeClientMessage, ProtocolError } from '../src/protocol/codec.js';
import type { DecodedFrame } from '../src/protocol/frames.js';
import { CloseCode } from '../src/protocol/messages.js';
import { Clients, node, rawConnect, startTestServer, waitFor, wep, type RawConn, type TestServer } from './support/harness.js';
import { freePort } from './support/metrics.js';

const MAX_INBOUND = 2048;
const HANDSHAKE_SECS = 0.3;

const HELLO = { t: 'hello', v: 1, syncer: 'felix', node: '', clientName: 'bad-input-test', clientVersion: '0.0.0' };

/** Deterministic PRNG (mulberry32), so the "random" frames are the same on every run. */
function mulberry32(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomBuffer(seed: number): Buffer {
  const r = mulberry32(seed);
  // Below MAX_INBOUND: these must reach the msgpack decoder, not the size limit.
  const len = 1 + Math.floor(r() * 1000);
  const b = Buffer.alloc(len);
  for (let i = 0; i < len; i++) b[i] = Math.floor(r() * 256);
  // Every other buffer starts like a map, to get past the first byte and into the fields.
  if (seed % 2 === 0) b[0] = 0x80 | (b[0]! & 0x0f);
  return b;
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_r, reject) => { timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms); }),
  ]);
}

const errorFrames = (frames: DecodedFrame[]) => frames.filter((f) => f.msg.t === 'error');

describe('bad client input against a real server', () => {
  let ts: TestServer;
  const clients = new Clients();
  let healthy: SyncClient;
  const raws: RawConn[] = [];
  let rejected = 0;

  const badFrames = async (code: number): Promise<number> => {
    const m = await ts.app.metrics.badFrames.get();
    return m.values.filter((v) => String(v.labels.code) === String(code)).reduce((s, v) => s + v.value, 0);
  };

  /**
   * Opens a raw socket, lets `send` misbehave on it, and checks the outcome: the close code, an
   * error frame with the same code as the last frame (unless the violation is caught by the
   * WebSocket layer itself), and one more bad frame counted under that code.
   */
  async function expectRejected(
    send: (ws: WebSocket) => void | Promise<void>,
    code: number,
    { errorFrame = true }: { errorFrame?: boolean } = {},
  ): Promise<{ frames: DecodedFrame[]; close: { code: number; reason: string } }> {
    const before = await badFrames(code);
    const c = rawConnect(ts.url);
    raws.push(c);
    await withTimeout(c.opened, 5000, 'raw socket open');
    await send(c.ws);
    const close = await withTimeout(c.closed, 5000, `close with code ${code}`);
    assert.equal(close.code, code, `close code (reason: ${close.reason})`);
    if (errorFrame) {
      const errs = errorFrames(c.frames);
      assert.equal(errs.length, 1, `exactly one error frame, got ${JSON.stringify(c.frames.map((f) => f.msg))}`);
      assert.equal(c.frames.at(-1), errs[0], 'the error frame is the last frame before the close');
      assert.equal(errs[0]!.msg.code, code, `error frame code (message: ${String(errs[0]!.msg.message)})`);
      assert.equal(typeof errs[0]!.msg.message, 'string');
      assert.ok((errs[0]!.msg.message as string).length > 0, 'error frame names the problem');
    } else {
      assert.equal(errorFrames(c.frames).length, 0, 'no error frame');
    }
    rejected++;
    assert.ok(healthy.isInSync, 'the healthy client is still in sync');
    assert.equal(await badFrames(code), before + 1, `calico_fanout_bad_frames_total{code="${code}"} +1`);
    return { frames: c.frames, close };
  }

  before(async () => {
    const seed = [node('node-a'), node('node-b'), wep('node-a', 'pod-1'), wep('node-b', 'pod-2')];
    ts = await startTestServer({ serverHandshakeTimeoutSecs: HANDSHAKE_SECS, serverMaxInboundMessageBytes: MAX_INBOUND }, seed);
    healthy = clients.make({ url: ts.url, syncerType: 'felix', node: 'node-a', clientName: 'healthy' });
    await withTimeout(healthy.inSync(), 5000, 'healthy client in sync');
    assert.equal(healthy.size, seed.length + 1, 'the seed and the built-in default-allow profile');
  });

  after(async () => {
    for (const c of raws) c.ws.terminate();
    await clients.stopAll();
    await ts?.close();
  });

  test('random bytes (seeded) are malformed', async () => {
    for (let seed = 1; seed <= 8; seed++) {
      const buf = randomBuffer(seed);
      await expectRejected((ws) => ws.send(buf), CloseCode.malformed);
    }
  });

  test('truncated msgpack (a valid hello cut in half) is malformed', async () => {
    const full = pack(HELLO);
    assert.equal(decodeClientMessage(full).t, 'hello', 'the untruncated hello is valid');
    const half = full.subarray(0, full.length >> 1);
    const { frames } = await expectRejected((ws) => ws.send(half), CloseCode.malformed);
    assert.equal(frames.length, 1, 'nothing but the error frame: no welcome');
  });

  test('a msgpack array instead of a map is malformed', async () => {
    await expectRejected((ws) => ws.send(pack(['hello', 1, 'felix'])), CloseCode.malformed);
  });

  test('a map without t is malformed', async () => {
    const { v, syncer, node: n, clientName, clientVersion } = HELLO;
    await expectRejected((ws) => ws.send(pack({ v, syncer, node: n, clientName, clientVersion })), CloseCode.malformed);
  });

  test('a map whose t is not a string is malformed', async () => {
    await expectRejected((ws) => ws.send(pack({ ...HELLO, t: 7 })), CloseCode.malformed);
  });

  test('an unknown message type is an unexpected message', async () => {
    await expectRejected((ws) => ws.send(pack({ t: 'nope' })), CloseCode.unexpectedMessage);
  });

  test('a first message that is not hello is an unexpected message', async () => {
    const { frames } = await expectRejected((ws) => ws.send(pack({ t: 'ack', seq: 1 })), CloseCode.unexpectedMessage);
    assert.match(String(frames[0]!.msg.message), /hello/);
  });

  test('a wrong protocol version is unsupportedVersion (4003)', async () => {
    assert.equal(CloseCode.unsupportedVersion, 4003);
    const { frames } = await expectRejected((ws) => ws.send(pack({ ...HELLO, v: 99 })), CloseCode.unsupportedVersion);
    assert.match(String(frames[0]!.msg.message), /99/);
  });

  test('an unknown syncer is a bad hello', async () => {
    await expectRejected((ws) => ws.send(pack({ ...HELLO, syncer: 'calico-everything' })), CloseCode.badHello);
  });

  test('node-status hello without a node is a bad hello (4005)', async () => {
    assert.equal(CloseCode.badHello, 4005);
    const { frames } = await expectRejected((ws) => ws.send(pack({ ...HELLO, syncer: 'node-status', node: '' })), CloseCode.badHello);
    assert.match(String(frames[0]!.msg.message), /node/);
  });

  test('hello fields that do not validate are a bad hello', async () => {
    const bad: [string, Record<string, unknown>][] = [
      ['node that is not a DNS-1123 name', { node: 'Not_A_Node' }],
      ['node that is not a string', { node: 42 }],
      ['clientName over 256 characters', { clientName: 'x'.repeat(300) }],
      ['resume without an epoch', { resume: { seq: 3 } }],
      ['resume with a negative seq', { resume: { epoch: 'e', seq: -1 } }],
      ['compression that is not a list of strings', { compression: 'zstd' }],
      ['tunnel-ip-allocation without a node', { syncer: 'tunnel-ip-allocation', node: '' }],
    ];
    for (const [what, fields] of bad) {
      await expectRejected((ws) => ws.send(pack({ ...HELLO, ...fields })), CloseCode.badHello).catch((err: Error) => {
        throw new Error(`${what}: ${err.message}`);
      });
    }
  });

  test('bad pong and ack after the handshake are malformed', async () => {
    const bad: [string, Record<string, unknown>][] = [
      ['pong without ts', { t: 'pong' }],
      ['pong with a string ts', { t: 'pong', ts: 'now' }],
      ['ack with a negative seq', { t: 'ack', seq: -1 }],
      ['ack with a fractional seq', { t: 'ack', seq: 1.5 }],
    ];
    for (const [what, msg] of bad) {
      const { frames } = await expectRejected((ws) => { ws.send(pack(HELLO)); ws.send(pack(msg)); }, CloseCode.malformed).catch((err: Error) => {
        throw new Error(`${what}: ${err.message}`);
      });
      assert.equal(frames[0]!.msg.t, 'welcome', `${what}: sent while streaming`);
    }
  });

  test('a text frame is malformed', async () => {
    await expectRejected((ws) => ws.send(JSON.stringify(HELLO)), CloseCode.malformed);
  });

  test('a hello sent twice is an unexpected message (after the welcome)', async () => {
    const { frames } = await expectRejected((ws) => { ws.send(pack(HELLO)); ws.send(pack(HELLO)); }, CloseCode.unexpectedMessage);
    assert.equal(frames[0]!.msg.t, 'welcome', 'the first hello was answered');
  });

  test('a frame above serverMaxInboundMessageBytes is closed with 1009', async () => {
    assert.equal(CloseCode.tooBig, 1009);
    const closedTooBig = async () => (await ts.app.metrics.connectionsClosed.get()).values.find((v) => v.labels.reason === 'too-big')?.value ?? 0;
    const before = await closedTooBig();
    await expectRejected((ws) => ws.send(Buffer.alloc(10 * 1024, 0xa1)), CloseCode.tooBig, { errorFrame: false });
    await waitFor(() => ts.app.server.connections.size === 1, 'the oversize connection to be gone', 5000);
    assert.equal(await closedTooBig(), before + 1, 'calico_fanout_connections_closed_total{reason="too-big"} +1');
  });

  test('no hello within the handshake timeout is closed with 4004', async () => {
    const started = Date.now();
    await expectRejected(() => {}, CloseCode.handshakeTimeout);
    const took = Date.now() - started;
    assert.ok(took >= HANDSHAKE_SECS * 1000 - 50, `closed after ${took} ms, not before the timeout`);
    assert.ok(took < HANDSHAKE_SECS * 1000 + 3000, `closed after ${took} ms, not long after the timeout`);
  });

  test('hostile msgpack claiming huge lengths is malformed, quickly', async () => {
    const hostile: [string, Buffer][] = [
      ['array32 of 4G elements', Buffer.from([0xdd, 0xff, 0xff, 0xff, 0xff])],
      ['map32 of 4G entries', Buffer.from([0xdf, 0xff, 0xff, 0xff, 0xff])],
      ['str32 of 4 GB', Buffer.concat([Buffer.from([0xdb, 0xff, 0xff, 0xff, 0xff]), Buffer.from('abc')])],
      ['bin32 of 4 GB', Buffer.from([0xc6, 0xff, 0xff, 0xff, 0xff, 0x00])],
      ['ext32 of 4 GB', Buffer.from([0xc9, 0xff, 0xff, 0xff, 0xff, 0x01])],
      ['array16 of 65535 elements', Buffer.from([0xdc, 0xff, 0xff])],
      // {t: 'hello', v: <array32 of 4G elements>}
      ['a hello whose v claims 4G elements', Buffer.from('82a174a568656c6c6fa176ddffffffff', 'hex')],
      ['nested arrays 1500 deep', Buffer.concat([Buffer.alloc(1500, 0x91), Buffer.from([0xc0])])],
    ];
    for (const [what, buf] of hostile) {
      const started = Date.now();
      await expectRejected((ws) => ws.send(buf), CloseCode.malformed).catch((err: Error) => {
        throw new Error(`${what}: ${err.message}`);
      });
      assert.ok(Date.now() - started < 2000, `${what}: rejected within 2 s`);
    }
  });

  test('the server is unharmed: the healthy client stays connected and sees new writes, connections drain', async () => {
    const late = node('node-late');
    const lateWep = wep('node-b', 'pod-late');
    ts.ds.put(late.key, late.value);
    ts.ds.put(lateWep.key, lateWep.value);
    await waitFor(() => healthy.get(late.key) !== undefined && healthy.get(lateWep.key) !== undefined, 'healthy client to see the new keys', 5000);
    assert.equal(healthy.stats.connects, 1, 'the healthy client never reconnected');
    assert.ok(healthy.isInSync);
    assert.equal(healthy.size, ts.ds.size + 1, 'and the built-in default-allow profile');

    // A new well-behaved raw client is still welcomed.
    const ok = rawConnect(ts.url);
    raws.push(ok);
    await withTimeout(ok.opened, 5000, 'open');
    ok.ws.send(pack(HELLO));
    await waitFor(() => ok.frames.some((f) => f.msg.t === 'status' && f.msg.status === 'in-sync'), 'welcome, snapshot and status', 5000);
    assert.equal(ok.frames[0]!.msg.t, 'welcome');
    assert.equal(errorFrames(ok.frames).length, 0);
    ok.ws.close();
    await withTimeout(ok.closed, 5000, 'close');

    await waitFor(() => ts.app.server.connections.size === 1, 'only the healthy client to remain', 5000);
    assert.equal(ts.app.server.connections.size, 1);
    assert.equal((await ts.app.metrics.connectionsActive.get()).values[0]!.value, 1, 'typha_connections_active');
    const streaming = (await ts.app.metrics.connectionsStreaming.get()).values;
    assert.equal(streaming.find((v) => v.labels.syncer === 'felix')!.value, 1, 'typha_connections_streaming{syncer="felix"}');
    assert.equal(streaming.reduce((s, v) => s + v.value, 0), 1, 'typha_connections_streaming, all syncers');
    const total = (await ts.app.metrics.badFrames.get()).values.reduce((s, v) => s + v.value, 0);
    assert.ok(rejected >= 40, `all cases ran (${rejected})`);
    assert.equal(total, rejected, 'one bad frame counted per rejected connection, no more');
  });
});

// ---- regression: untrusted values in error messages ----------------------------------------

// {t: 'hello', v: <msgpackr extension 0x42, a BigInt>}: msgpackr decodes ext 0x42 to a BigInt,
// and building the error message with JSON.stringify(m.v) used to throw a TypeError that escaped
// the ws 'message' handler and killed the process.
const BIGINT_VERSION_HELLO = Buffer.from('82a174a568656c6c6fa176d44201', 'hex');

test('a hello whose v is a msgpackr BigInt (ext 0x42) is rejected as unsupportedVersion', () => {
  assert.throws(() => decodeClientMessage(BIGINT_VERSION_HELLO), (err: unknown) => err instanceof ProtocolError && err.code === CloseCode.unsupportedVersion);
});

test('a 14-byte BigInt-version hello does not crash the server process', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fanout-bigint-'));
  writeFileSync(join(dir, 'node.yaml'), 'apiVersion: projectcalico.org/v3\nkind: Node\nmetadata:\n  name: n1\nspec: {}\n');
  const port = await freePort();
  let child: ChildProcess | undefined;
  const conns: RawConn[] = [];
  try {
    child = spawn(process.execPath, ['bin/calico-fanout.js', 'serve', '--server-host', '127.0.0.1', '--server-port', String(port),
      '--health-host', '127.0.0.1', '--health-port', '-1', '--metrics-host', '127.0.0.1', '--metrics-port', '-1', '--seed', dir, '--log-level', 'NONE'],
    { cwd: new URL('..', import.meta.url).pathname, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d) => { stderr += d; });
    const exited = new Promise<number | null>((r) => child!.once('exit', (code) => r(code)));
    // Wait for the port.
    const deadline = Date.now() + 15_000;
    let c: RawConn;
    for (;;) {
      c = rawConnect(`ws://127.0.0.1:${port}`);
      conns.push(c);
      try { await c.opened; break; } catch {
        if (Date.now() > deadline) throw new Error(`server did not start: ${stderr}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    c.ws.send(BIGINT_VERSION_HELLO);
    const close = await withTimeout(c.closed, 5000, 'close');
    const code = await Promise.race([exited, new Promise<string>((r) => setTimeout(() => r('running'), 300))]);
    assert.equal(code, 'running', `server process exited with ${String(code)}; stderr: ${stderr.slice(0, 300)}`);
    assert.equal(close.code, CloseCode.unsupportedVersion);
  } finally {
    for (const c of conns) c.ws.terminate();
    if (child && child.exitCode === null && child.signalCode === null) {
      const gone = new Promise((r) => child!.once('exit', r));
      child.kill('SIGKILL');
      await gone;
    }
    rmSync(dir, { recursive: true, force: true });
  }
});
