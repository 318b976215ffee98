// Keepalive in both directions: the server pings and closes a client that stops answering
// (goaway pong-timeout, close 4006); the client answers pings, acknowledges what it applied (the
// server turns acks into the client-lag histogram) and reconnects, resuming, when the server
// falls silent for longer than its server timeout.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encode } from '../src/protocol/codec.js';
import { decodeServerFrame } from '../src/protocol/frames.js';
import { CloseCode } from '../src/protocol/messages.js';
import { assertClientMatches, expectedView } from './support/expected.js';
import { cleanupAfterFile, LIMIT, rawConnect, sleep, startTestServer, waitFor, wep, type RawConn, type TestServer } from './support/harness.js';
import { histogram, metricValue } from './support/metrics.js';

const { clients, track } = cleanupAfterFile();

const FAST_PINGS = { serverPingIntervalSecs: 0.1, serverPongTimeoutSecs: 0.5 };
const seed = Array.from({ length: 20 }, (_, i) => wep(`node-${i % 2}`, `pod-${i}`));

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_r, reject) => { timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms); }),
  ]);
}

async function rawHello(ts: TestServer, clientName: string): Promise<RawConn> {
  const raw = rawConnect(ts.url);
  await raw.opened;
  raw.ws.send(encode({ t: 'hello', v: 1, syncer: 'felix', node: '', clientName, clientVersion: '0' }));
  return raw;
}

/** Polls an async reading until `ok` holds; returns the last reading. */
async function until<T>(read: () => Promise<T>, ok: (x: T) => boolean, what: string, timeoutMs = 10_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const x = await read();
    if (ok(x)) return x;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

const pings = (raw: RawConn) => raw.frames.filter((f) => f.msg.t === 'ping');

test('a client that never answers pings gets goaway pong-timeout and close 4006', LIMIT, async () => {
  const ts = track(await startTestServer(FAST_PINGS, seed));
  try {
    const t0 = Date.now();
    const raw = await rawHello(ts, 'mute');
    await waitFor(() => pings(raw).length > 0, 'a ping');
    const ping = pings(raw)[0]!.msg;
    assert.equal(typeof ping.ts, 'number', 'ping carries a numeric ts');
    assert.ok(Math.abs((ping.ts as number) - Date.now()) < 5000, `ping ts is wall-clock ms: ${String(ping.ts)}`);

    const closed = await withTimeout(raw.closed, 5000, 'server to close the mute client');
    const elapsed = Date.now() - t0;
    assert.equal(closed.code, CloseCode.pongTimeout);
    const goaway = raw.frames.find((f) => f.msg.t === 'goaway');
    assert.ok(goaway, 'a goaway came before the close');
    assert.equal(goaway.msg.reason, 'pong-timeout');
    assert.deepEqual(goaway.msg.resume, { epoch: ts.app.store.epoch, seq: ts.app.store.head }, 'goaway carries the position');
    assert.equal(raw.frames.at(-1)!.msg.t, 'goaway', 'nothing after the goaway');
    assert.ok(elapsed >= 490, `closed only after the pong timeout (after ${elapsed} ms)`);
    assert.ok(pings(raw).length >= 2, `pinged several times before giving up (${pings(raw).length})`);

    assert.equal(await metricValue(ts.app.metrics.connectionsClosed, { reason: 'pong-timeout' }), 1);
    await waitFor(() => ts.app.server.connections.size === 0, 'connection dropped from the server');
    assert.equal(await metricValue(ts.app.metrics.connectionsActive), 0);
  } finally {
    await ts.close();
  }
});

test('a raw client that answers every ping stays connected past several pong timeouts', LIMIT, async () => {
  const ts = track(await startTestServer(FAST_PINGS, seed));
  try {
    const raw = await rawHello(ts, 'ponger');
    let pongs = 0;
    raw.ws.on('message', (d: Buffer) => {
      const { msg } = decodeServerFrame(d);
      // A ping read after our close() began gets no pong (the socket is closing): not counted.
      if (msg.t !== 'ping' || raw.ws.readyState !== raw.ws.OPEN) return;
      raw.ws.send(encode({ t: 'pong', ts: msg.ts as number }));
      pongs++;
    });
    let closedEarly = false;
    void raw.closed.then(() => { closedEarly = true; });
    await waitFor(() => raw.frames.some((f) => f.msg.t === 'checksum'), 'sync');

    // Time must pass here (nothing may happen): counted in the server's own pings, not in wall
    // time, so that a slow machine only makes it longer: 16 pings are 1.6 s, over three pong timeouts.
    await waitFor(() => pongs >= 16 || closedEarly, '16 pings answered', 30_000);
    assert.equal(closedEarly, false, 'still connected');
    assert.ok(!raw.frames.some((f) => f.msg.t === 'goaway'), 'no goaway');
    assert.ok(pongs >= 4, `answered ${pongs} pings`);
    assert.equal(ts.app.server.connections.size, 1);
    assert.equal(await metricValue(ts.app.metrics.connectionsClosed, { reason: 'pong-timeout' }), 0);

    // Every pong is an RTT observation; the close frame follows the pongs, so once the server has
    // seen the close it has seen them all.
    raw.ws.close(1000);
    await raw.closed;
    await waitFor(() => ts.app.server.connections.size === 0, 'server sees the close');
    const rtt = await histogram(ts.app.metrics.pingRtt);
    assert.equal(rtt.count, pongs, 'one ping_rtt observation per pong');
    assert.ok(rtt.sum >= 0 && rtt.sum / rtt.count < 1, `mean rtt ${rtt.sum / rtt.count} s`);
    assert.equal(await metricValue(ts.app.metrics.connectionsClosed, { reason: 'client-closed' }), 1);
  } finally {
    await ts.close();
  }
});

test('a SyncClient answers pings by itself and stays on one connection', LIMIT, async () => {
  const ts = track(await startTestServer(FAST_PINGS, seed));
  try {
    const plain = clients.make({ url: ts.url, syncerType: 'felix' });
    // Pings are the only traffic here: they must also keep the client's own idle timer quiet.
    const watchful = clients.make({ url: ts.url, syncerType: 'felix', serverTimeoutMs: 600 });
    await Promise.all([plain.inSync(), watchful.inSync()]);
    const framesBefore = watchful.stats.framesReceived;
    // Time must pass (no reconnect may happen): counted in the server's pings, 20 of them (2 s, over
    // three of the watchful client's timeouts), so that a slow machine only makes it longer.
    await waitFor(() => watchful.stats.framesReceived - framesBefore >= 20 || watchful.stats.connects > 1 || plain.stats.connects > 1, '20 pings', 30_000);
    for (const [c, label] of [[plain, 'plain'], [watchful, 'watchful']] as const) {
      assert.equal(c.stats.connects, 1, `${label} client never reconnected`);
      assert.ok(c.isInSync, `${label} client still in sync`);
    }
    assert.ok(watchful.stats.framesReceived - framesBefore >= 20, `pings kept arriving (${watchful.stats.framesReceived - framesBefore} frames)`);
    assert.equal(await metricValue(ts.app.metrics.connectionsClosed, { reason: 'pong-timeout' }), 0);
    assert.equal(ts.app.server.connections.size, 2);
    assert.ok((await histogram(ts.app.metrics.pingRtt)).count >= 5, 'the server received pongs');
  } finally {
    await clients.stopAll();
    await ts.close();
  }
});

test('client acks turn into client-lag observations', LIMIT, async () => {
  const ts = track(await startTestServer({}, seed));
  try {
    const c = clients.make({ url: ts.url, syncerType: 'felix', ackIntervalMs: 20 });
    await c.inSync();
    // The ack sent on reaching in-sync acknowledges the seed's batch.
    let lag = await until(() => histogram(ts.app.metrics.clientLag), (h) => h.count >= 1, 'the in-sync ack to be observed');
    const before = lag.count;

    for (let i = 0; i < 5; i++) {
      const r = wep('node-0', `pod-${i}`, 'default', { round: String(i) });
      ts.ds.put(r.key, r.value);
      await waitFor(() => c.get(r.key)?.value?.metadata.labels.round === String(i), `write ${i} reaches the client`);
    }
    lag = await until(() => histogram(ts.app.metrics.clientLag), (h) => h.count > before, 'acks after the writes to be observed');
    assert.ok(lag.count > before, `acks after the writes were observed (${before} → ${lag.count})`);
    assert.ok(lag.sum / lag.count < 5, `lag is plausible: mean ${lag.sum / lag.count} s`);
  } finally {
    await clients.stopAll();
    await ts.close();
  }
});

test('a client reconnects and resumes when the server is silent past serverTimeoutMs', LIMIT, async () => {
  const ts = track(await startTestServer({ serverPingIntervalSecs: 10 }, seed));
  try {
    const c = clients.make({ url: ts.url, syncerType: 'felix', serverTimeoutMs: 300 });
    await c.inSync();
    const t0 = Date.now();
    await waitFor(() => c.stats.connects >= 2, 'the client to give up on the silent connection', 5000);
    const elapsed = Date.now() - t0;
    assert.ok(elapsed >= 250, `not before the server timeout (${elapsed} ms)`);
    await waitFor(() => c.stats.resumes >= 1 && c.isInSync, 'resumed and in sync');
    assert.equal(c.stats.snapshots, 1, 'the reconnect resumed instead of taking a snapshot');
    assert.ok(await metricValue(ts.app.metrics.resyncs, { mode: 'resume' }) >= 1, 'the server counted a resume');

    // Still a working client: a write made now reaches it.
    const r = wep('node-1', 'pod-new');
    ts.ds.put(r.key, r.value);
    await waitFor(() => !!c.get(r.key), 'a later write reaches the client');
    assertClientMatches(c, expectedView(ts.ds, 'felix', ''), 'after silent-server reconnects');
  } finally {
    await clients.stopAll();
    await ts.close();
  }
});
