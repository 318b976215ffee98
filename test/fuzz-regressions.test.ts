// Regressions found by fuzzing (test/fuzz.test.ts): each test is the smallest input that showed
// the bug. They failed against the tree of 2026-11-26 00:39 (the cache-revision ones against the
// tree of 01:07-01:44, when hello.revision was new); the broken-framing one is still open.
// RELIABILITY.md ("Fuzzing") describes them.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { SyncClient } from '../client/index.js';
import { checksumHex, entryHash } from '../src/protocol/checksum.js';
import { encode, packr } from '../src/protocol/codec.js';
import { decodeServerFrame, encodeItem, itemsFrame } from '../src/protocol/frames.js';
import { float64, rawMap, strBytes } from './support/fuzz/gen.js';
import { HostileServer, type Outbound, type Session } from './support/fuzz/hostile.js';
import { node, rawConnect, startTestServer, waitFor, wep, type TestServer } from './support/harness.js';

const uncaught: unknown[] = [];
const onUncaught = (err: unknown) => { uncaught.push(err); };
before(() => { process.on('uncaughtException', onUncaught); });
after(() => { process.off('uncaughtException', onUncaught); });

// ---- server ---------------------------------------------------------------------------------

test('server: a pong whose ts is -Infinity does not throw out of the message handler (it killed the process)', async () => {
  // {t: 'pong', ts: -Infinity} is a valid pong (ts is a number); the RTT observed from it is
  // Infinity, and prom-client's Histogram.observe throws on a non-finite value. The throw happens
  // after decoding, outside connection.ts onMessage's try: it escapes the ws 'message' handler.
  const ts = await startTestServer({}, [node('n1')]);
  const c = rawConnect(ts.url);
  try {
    await c.opened;
    c.ws.send(packr.pack({ t: 'hello', v: 1, syncer: 'felix', node: '' }));
    await waitFor(() => c.frames.some((f) => f.msg.t === 'welcome'), 'the welcome');
    const before = uncaught.length;
    c.ws.send(Buffer.from('82a174a4706f6e67a27473cbfff0000000000000', 'hex')); // {t: 'pong', ts: -Infinity}
    // The server reads one socket in order: once it has answered a WebSocket ping sent after the
    // pong, or closed the connection over it (today: 4001), it has handled the pong.
    await Promise.race([new Promise<void>((r) => { c.ws.once('pong', () => r()); c.ws.ping(); }), c.closed]);
    assert.deepEqual(uncaught.slice(before).map(String), [], 'nothing thrown out of the server\'s handlers');
    // And the server is still there for a new client.
    const again = rawConnect(ts.url);
    await again.opened;
    again.ws.send(packr.pack({ t: 'hello', v: 1, syncer: 'felix', node: '' }));
    await waitFor(() => again.frames.some((f) => f.msg.t === 'welcome'), 'a welcome for a new client');
    again.ws.terminate();
  } finally {
    c.ws.terminate();
    await ts.close();
  }
});

test('server: a streaming client that sends broken WebSocket framing and then goes silent is let go within seconds, not 30 s', { timeout: 60_000 }, async () => {
  // ws answers a framing error (here RSV bits set) with a close frame and waits up to its own
  // closeTimeout (30 s) for the peer's; Connection's 'error' handler only notes the reason, so
  // the connection stays in server.connections, streaming, until then (and the violation is not
  // counted in calico_fanout_bad_frames_total).
  const ts = await startTestServer({}, [node('n1')]);
  const sock = connect(ts.app.ports.server, '127.0.0.1');
  sock.on('error', () => {});
  try {
    await new Promise((r) => sock.once('connect', r));
    sock.write(`GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    const hello = packr.pack({ t: 'hello', v: 1, syncer: 'felix', node: '' });
    const mask = Buffer.from([1, 2, 3, 4]);
    sock.write(Buffer.concat([Buffer.from([0x82, 0x80 | hello.length]), mask, Buffer.from(hello.map((b, i) => b ^ mask[i % 4]!))]));
    await waitFor(() => [...ts.app.server.connections].some((c) => c.streaming), 'the hello to be taken');
    sock.write(Buffer.from([0xf2, 0x00])); // a frame with the reserved bits set
    await waitFor(() => ts.app.server.connections.size === 0, 'the connection to be let go', 5000);
  } finally {
    sock.destroy();
    await ts.close();
  }
});

// ---- client ---------------------------------------------------------------------------------

describe('client against a hostile server', () => {
  let good: TestServer;
  let hostile: HostileServer;
  const started: SyncClient[] = [];

  before(async () => {
    good = await startTestServer({}, [node('node-a'), wep('node-a', 'pod-1')]);
    hostile = await HostileServer.start();
  });
  after(async () => {
    await Promise.all(started.map((c) => c.stop()));
    await hostile?.close();
    await good?.close();
  });

  const welcome = (extra: Record<string, unknown> = {}): Outbound => ({ data: encode({ t: 'welcome', v: 1, serverId: 'h', serverVersion: '0', epoch: 'e', syncer: 'felix', node: '', mode: 'snapshot', compression: 'none', ...extra } as never), what: 'welcome' });
  /** welcome, an empty snapshot at seq 3, in-sync, its checksum: the client is in sync at 3. */
  const inSyncAt3 = (extra: Record<string, unknown> = {}): Outbound[] => [
    welcome(extra),
    { data: itemsFrame({ t: 'snapshot', seq: 3, i: 0, last: true }, []), what: 'snapshot' },
    { data: encode({ t: 'status', status: 'in-sync' }), what: 'status' },
    { data: encode({ t: 'checksum', seq: 3, value: checksumHex(0n), count: 0 }), what: 'checksum' },
  ];
  const POISON = '/calico/resources/v3/projectcalico.org/networkpolicies/default/poison';
  const poisonItem = encodeItem(POISON, packr.pack({ kind: 'NetworkPolicy' }), '9');

  /** Plays sessions to a new client, then points it at the good server; resolves with it once the sessions are played. */
  async function play(sessions: Session[], opts: { maxBackoffMs?: number } = {}): Promise<{ client: SyncClient; inCacheAtEnd: boolean[] }> {
    hostile.results.length = 0;
    hostile.load(sessions);
    const client = new SyncClient({
      discover: async () => { await hostile.idle(); return [hostile.pending > 0 ? hostile.url : good.url]; },
      syncerType: 'felix', initialBackoffMs: 5, maxBackoffMs: opts.maxBackoffMs ?? 50,
    });
    started.push(client);
    const inCacheAtEnd: boolean[] = [];
    hostile.probe = (key) => { const has = client.get(key) !== undefined; inCacheAtEnd.push(has); return has; };
    client.start();
    await waitFor(() => hostile.results.length === sessions.length, 'the hostile sessions to be played', 5000);
    return { client, inCacheAtEnd };
  }

  const syncsWithGood = async (client: SyncClient, what: string) => {
    try {
      await waitFor(() => client.isInSync && [...good.app.server.connections].some((c) => c.streaming), what, 5000);
    } finally {
      await client.stop();
    }
  };

  test('a goaway whose resume seq is not an integer does not wedge the client (every later hello was refused, 4005)', async () => {
    // sync-client.ts handle('goaway') takes resume.seq as it comes when `r.seq >= this.pos`: a
    // string "7" or 3.5 becomes the resume token, every hello after it is a bad hello (4005) to
    // any server, and the client never syncs again.
    for (const seq of [strBytes('7'), float64(3.5), float64(2 ** 60)]) {
      const goaway = rawMap([['t', strBytes('goaway')], ['reason', strBytes('shutdown')], ['retryAfterMs', Buffer.from([0])], ['resume', rawMap([['epoch', strBytes('e')], ['seq', seq]])]]);
      const { client } = await play([{ frames: [...inSyncAt3(), { data: goaway, what: 'goaway' }], closeCode: 1001 }]);
      const token = client.resumeToken;
      assert.ok(token === undefined || Number.isSafeInteger(token.seq), `resume token ${JSON.stringify(token)}`);
      await syncsWithGood(client, `the client in sync with the good server after a goaway with resume.seq ${seq.toString('hex')}`);
    }
  });

  test('a welcome with a 300 KB epoch does not wedge the client (every later hello was over the server\'s limit, 1009)', async () => {
    // The epoch goes back verbatim in hello.known (and resume): 2 × 300 KB > the server's 256 KiB
    // inbound limit, so every later connection is closed with 1009, and the epoch is never replaced.
    const { client } = await play([{ frames: inSyncAt3({ epoch: 'e'.repeat(300_000) }), closeCode: 1000 }]);
    await syncsWithGood(client, 'the client in sync with the good server after a huge epoch');
  });

  test('a goaway with a retryAfterMs of 24 days does not hold the client off for longer than maxBackoffMs', async () => {
    // retryAfterMs is obeyed uncapped (setTimeout takes up to 2^31 - 1 ms): one server, or a
    // buggy replica that sends seconds for milliseconds, keeps the client away from all of them.
    const { client } = await play([{ frames: [...inSyncAt3(), { data: encode({ t: 'goaway', reason: 'overload', retryAfterMs: 2 ** 31 - 2, resume: { epoch: 'e', seq: 3 } }), what: 'goaway' }], closeCode: 1013 }], { maxBackoffMs: 200 });
    await syncsWithGood(client, 'the client to come back within seconds');
  });

  test('a delta refused for its `to` leaves nothing of it in the cache', async () => {
    // handle('delta') applies the items, then reads `to` (num() throws): the items stay in the
    // cache, the agent is never told (report() is not reached), the frame counts as refused.
    const delta = Buffer.concat([rawMap([['t', strBytes('delta')], ['from', Buffer.from([3])], ['to', strBytes('x')], ['u', Buffer.from([0x90])]]).subarray(0, -1), Buffer.from([0x91]), poisonItem]);
    const { client, inCacheAtEnd } = await play([{ frames: [...inSyncAt3(), { data: delta, what: 'delta', fatal: 'semantic', poison: [POISON] }], designated: 4, closeCode: 1000 }]);
    await client.stop();
    assert.equal(client.stats.protocolErrors, 1, 'the delta was refused');
    assert.deepEqual(inCacheAtEnd, [false], 'no key of the refused delta in the cache');
  });

  test('a delta refused for an undecodable value leaves nothing of it in the cache', async () => {
    // Items are applied one by one and values decoded as they are applied: the items before the
    // bad one stay in the cache though the frame is refused.
    const frame = itemsFrame({ t: 'delta', from: 3, to: 4 }, [poisonItem, encodeItem(`${POISON}-2`, Buffer.from([0x81]), '9')]);
    const { client, inCacheAtEnd } = await play([{ frames: [...inSyncAt3(), { data: frame, what: 'delta', fatal: 'semantic', poison: [POISON] }], designated: 4, closeCode: 1000 }]);
    await client.stop();
    assert.equal(client.stats.protocolErrors, 1, 'the delta was refused');
    assert.deepEqual(inCacheAtEnd, [false], 'no key of the refused delta in the cache');
  });

  test('frames that arrive after the client dropped the connection are not processed', async () => {
    // The 'message' handler checks only `this.ws !== ws`, and this.ws is cleared on 'close':
    // frames ws has already read are still handled after terminate(). Here a complete snapshot
    // that follows a bad frame is applied (and its position kept) on a connection given up.
    const snapshot = itemsFrame({ t: 'snapshot', seq: 9, i: 0, last: true }, [poisonItem]);
    const { client, inCacheAtEnd } = await play([{
      frames: [...inSyncAt3(), { data: Buffer.from([0xc1]), what: 'garbage' }, { data: snapshot, what: 'snapshot', fatal: 'semantic', poison: [POISON] }],
      designated: 5, closeCode: 1000,
    }]);
    await client.stop();
    assert.equal(client.stats.protocolErrors, 1, 'one bad frame, one protocol error');
    assert.deepEqual(inCacheAtEnd, [false], 'nothing of what followed the bad frame was applied');
  });

  test('a checksum mismatch followed by a delta in flight is a resync, not a protocol error', async () => {
    // Same cause: after the mismatch the client forgets its position and closes, but the delta
    // the server had already sent is still handled, and "from 3 is behind position undefined"
    // counts as a protocol error (and turns the close into a terminate).
    const key = '/calico/resources/v3/projectcalico.org/networkpolicies/default/a';
    const value = packr.pack({ kind: 'NetworkPolicy' });
    const { client } = await play([{
      frames: [
        welcome(),
        { data: itemsFrame({ t: 'snapshot', seq: 3, i: 0, last: true }, [encodeItem(key, value, '1')]), what: 'snapshot' },
        { data: encode({ t: 'status', status: 'in-sync' }), what: 'status' },
        { data: encode({ t: 'checksum', seq: 3, value: checksumHex(entryHash(key, value) ^ 1n), count: 1 }), what: 'wrong checksum' },
        { data: itemsFrame({ t: 'delta', from: 3, to: 4 }, [encodeItem(`${key}-2`, value, '2')]), what: 'delta' },
      ],
      closeCode: 1000,
    }]);
    await client.stop();
    assert.equal(client.stats.checksumMismatches, 1);
    assert.equal(client.stats.protocolErrors, 0, 'a mismatch is not a protocol error');
  });
});

describe('client cache revision (hello.revision) against a hostile or restored datastore', () => {
  // The client sends the newest revision its cache holds; a replica behind it holds the client,
  // then sends it away ('behind'). The cache takes that revision from any item it applies and
  // never lowers it, and formats it through Number.
  let good: TestServer;
  let hostile: HostileServer;
  const started: SyncClient[] = [];

  before(async () => {
    good = await startTestServer({ serverHandshakeTimeoutSecs: 0.5 }, [node('node-a'), wep('node-a', 'pod-1')]);
    hostile = await HostileServer.start();
  });
  after(async () => {
    await Promise.all(started.map((c) => c.stop()));
    await hostile?.close();
    await good?.close();
  });

  /** A session that leaves one key of the given revision in the client's cache (in sync at 3). */
  const withRevision = (revision: string): Session => {
    const key = '/calico/resources/v3/projectcalico.org/networkpolicies/default/from-elsewhere';
    const value = packr.pack({ kind: 'NetworkPolicy' });
    return {
      frames: [
        { data: encode({ t: 'welcome', v: 1, serverId: 'h', serverVersion: '0', epoch: 'e', syncer: 'felix', node: '', mode: 'snapshot', compression: 'none' }), what: 'welcome' },
        { data: itemsFrame({ t: 'snapshot', seq: 3, i: 0, last: true }, [encodeItem(key, value, revision)]), what: 'snapshot' },
        { data: encode({ t: 'status', status: 'in-sync' }), what: 'status' },
        { data: encode({ t: 'checksum', seq: 3, value: checksumHex(entryHash(key, value)), count: 1 }), what: 'checksum' },
      ],
      closeCode: 1001,
    };
  };

  async function syncsAfter(session: Session, what: string, ms: number): Promise<void> {
    hostile.results.length = 0;
    hostile.load([session]);
    const log: string[] = [];
    const push = (o: object, m?: string) => { log.push(`${m} ${JSON.stringify(o)}`.slice(0, 200)); };
    const client = new SyncClient({
      discover: async () => { await hostile.idle(); return [hostile.pending > 0 ? hostile.url : good.url]; },
      syncerType: 'felix', initialBackoffMs: 5, maxBackoffMs: 200, logger: { debug() {}, info: push, warn: push },
    });
    started.push(client);
    client.start();
    try {
      await waitFor(() => client.isInSync && hostile.results.length === 1 && [...good.app.server.connections].some((c) => c.streaming), what, ms);
    } catch (err) {
      throw new Error(`${(err as Error).message}; client log:\n${log.slice(0, 12).join('\n')}`);
    } finally {
      await client.stop();
    }
  }

  test('an item revision that is not a plain decimal ("1e21") does not make every later hello a bad hello (4005)', async () => {
    // ClientCache.apply keeps Number(revision) = 1e21; the hello sends String(1e21) = "1e+21",
    // which the server's /^[0-9]{1,20}$/ refuses: 4005 on every connection, forever.
    await syncsAfter(withRevision('1e21'), 'the client in sync with the good server', 5000);
  });

  test('a cache revision newer than every replica (a hostile server, a datastore restored from backup) does not keep the client out forever', async () => {
    // The only replica is "behind" the cache's revision 999999999: it holds the client for the
    // handshake timeout, then sends it away ('behind'); the client comes back with the same
    // claim, and no sync ever completes. (The revision is never lowered: not even a completed
    // snapshot from a good server would lower it, and none can complete.)
    await syncsAfter(withRevision('999999999'), 'the client in sync with the only replica there is', 10_000);
  });
});

test('client: a frame repeating its `u` field decodes in linear time (each `u` copied the whole frame)', () => {
  // decodeServerFrame calls loadForHashing(buf), a copy of the whole frame, at every `u` field:
  // n fields cost n × frame size. 512 KiB of `u: []` (3 bytes each) takes seconds; the same
  // inside a `compressed` frame (up to 256 MiB inflated, a few KiB on the wire) hangs the client.
  const n = (512 << 10) / 3;
  const head = Buffer.from([0xdf, 0, 0, 0, 0]);
  head.writeUInt32BE(n + 1, 1);
  const frame = Buffer.concat([head, packr.pack('t'), packr.pack('delta'), Buffer.alloc(3 * n, Buffer.from([0xa1, 0x75, 0x90]))]);
  const started = performance.now();
  try { decodeServerFrame(frame); } catch { /* refusing it is fine too */ }
  const ms = performance.now() - started;
  assert.ok(ms < 300, `decoding a ${frame.length} B frame took ${ms.toFixed(0)} ms`);
});

test('client: a compressed frame of a few hundred bytes that inflates to tens of millions of items does not kill the client (out of memory)', { timeout: 120_000 }, async () => {
  // 255 MiB of 4-byte deletion items is under the client's 256 MiB cap (MAX_FRAME_BYTES);
  // decodeServerFrame makes an object per item (~70 B of heap each): 4.7 GB, over Node's default
  // heap limit. Run in a child with a 1 GiB heap so that it fails in seconds.
  const child = spawn(process.execPath, ['--import', 'tsx', '--max-old-space-size=1024', fileURLToPath(new URL('./support/fuzz/bomb-child.ts', import.meta.url))],
    { cwd: fileURLToPath(new URL('..', import.meta.url)), stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, BOMB_KIND: 'items', BOMB_WAIT_MS: '60000' } });
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { out += d; });
  const killer = setTimeout(() => child.kill('SIGKILL'), 100_000);
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((r) => child.once('exit', (c, s) => r([c, s])));
  clearTimeout(killer);
  assert.ok(code === 0 && /survived/.test(out), `the client process ended with ${code ?? signal}: ${out.split('\n').filter((l) => /bomb|survived|verdict|FATAL/.test(l)).join(' | ')}`);
});
