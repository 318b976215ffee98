// Backpressure: a client that stops reading costs the server at most the high-water mark (plus
// one frame), never the update rate; everyone else keeps receiving; it is closed after the stall
// timeout. A client that resumes reading before that catches up in one coalesced pass.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { ViewFilter } from '../src/model/view-filter.js';
import { encode } from '../src/protocol/codec.js';
import type { Hello } from '../src/protocol/messages.js';
import { Clients, rawConnect, sleep, startTestServer, waitFor, wep } from './support/harness.js';

const clients = new Clients();
after(() => clients.stopAll());

const HWM = 64 << 10;
const CHUNK = 16 << 10;
const big = (i: number, round: number) => wep(`node-${i % 3}`, `pod-${i}`, 'default', { round: String(round), pad: 'x'.repeat(1500) });

function checksumMatches(ts: Awaited<ReturnType<typeof startTestServer>>, c: { checksum(): { value: string; count: number } }) {
  const s = ts.app.store.checksum(new ViewFilter('felix', ''));
  return c.checksum().value === s.value.toString(16).padStart(16, '0') && c.checksum().count === s.count;
}

async function writeBurst(ts: Awaited<ReturnType<typeof startTestServer>>, rounds: number, onTick?: () => void) {
  for (let round = 0; round < rounds; round++) {
    ts.ds.write(Array.from({ length: 100 }, (_, i) => big(i, round)));
    await sleep(2); // let ingest publish: one batch per round
    onTick?.();
  }
}

test('a stalled client is bounded by the high-water mark and closed after the stall timeout', async () => {
  const ts = await startTestServer({ serverHighWaterMarkBytes: HWM, snapshotChunkBytes: CHUNK, serverWriteTimeoutSecs: 1.5, serverPongTimeoutSecs: 60 });
  try {
    const healthy = clients.make({ url: ts.url, syncerType: 'felix', node: '' });
    await healthy.inSync();
    const slow = rawConnect(ts.url);
    await slow.opened;
    slow.ws.send(encode({ t: 'hello', v: 1, syncer: 'felix', node: '', clientName: 'slow', clientVersion: '0' }));
    await waitFor(() => slow.frames.some((f) => f.msg.t === 'status'), 'slow client synced');
    slow.ws.pause(); // stop reading from the socket

    const conn = [...ts.app.server.connections].find((c) => c.hello?.clientName === 'slow')!;
    let maxBuffered = 0;
    // Each round is 100 updates × ~1.7 KiB. Loopback socket buffers can absorb 10 MiB and more
    // before anything stays in the process, so write until the server-side buffer reaches the
    // mark (at most ~50 MiB), then 20 rounds more while the client still reads nothing.
    const track = () => { maxBuffered = Math.max(maxBuffered, conn.bufferedAmount); };
    for (let round = 0; round < 300 && maxBuffered < HWM; round += 10) await writeBurst(ts, 10, track);
    assert.ok(maxBuffered >= HWM, `the slow client did fill its buffer (${maxBuffered} B)`);
    await writeBurst(ts, 20, track);
    // A frame is one batch per view: ingest caps a batch at snapshotChunkBytes of values.
    assert.ok(maxBuffered <= HWM + CHUNK + 4096 + 512, `server-side buffer stayed bounded: ${maxBuffered} B`);

    await waitFor(() => checksumMatches(ts, healthy), 'the healthy client to keep up');
    const closedBefore = (await ts.app.metrics.connectionsClosed.get()).values.find((v) => v.labels.reason === 'stalled')?.value ?? 0;
    assert.equal(closedBefore, 0);
    await waitFor(() => !ts.app.server.connections.has(conn), 'stalled client closed', 5000);
    const stalled = (await ts.app.metrics.connectionsClosed.get()).values.find((v) => v.labels.reason === 'stalled')?.value;
    assert.equal(stalled, 1);
    assert.equal((await ts.app.metrics.backpressured.get()).values[0]!.value, 0, 'no client left marked as backpressured');
    assert.ok(healthy.isInSync && ts.app.server.connections.size === 1);
    slow.ws.terminate();
  } finally {
    await clients.stopAll();
    await ts.close();
  }
});

test('a client that resumes reading catches up in one coalesced pass', async () => {
  const ts = await startTestServer({ serverHighWaterMarkBytes: HWM, snapshotChunkBytes: CHUNK, serverWriteTimeoutSecs: 30 });
  try {
    const c = clients.make({ url: ts.url, syncerType: 'felix', node: '' });
    await c.inSync();
    const ws = (c as any).ws as import('ws').WebSocket;
    ws.pause();
    await writeBurst(ts, 40);
    const itemsBefore = c.stats.itemsReceived;
    ws.resume();
    await waitFor(() => checksumMatches(ts, c), 'the client to catch up');
    const received = c.stats.itemsReceived - itemsBefore;
    // 4000 updates of 100 keys were written; what was not already in flight arrives coalesced.
    assert.ok(received < 4000 / 2, `received ${received} items for 4000 updates of 100 keys`);
    assert.equal(c.stats.checksumMismatches, 0);
  } finally {
    await clients.stopAll();
    await ts.close();
  }
});

test('flow control: a client that reads but does not acknowledge gets no more than the window, then the latest values', async () => {
  const ts = await startTestServer({ serverHighWaterMarkBytes: HWM, snapshotChunkBytes: CHUNK, serverWriteTimeoutSecs: 30, serverPongTimeoutSecs: 60 });
  try {
    const hello: Hello = { t: 'hello', v: 1, syncer: 'felix', node: '', clientName: 'flow', clientVersion: '0' };
    // Both read their socket at once; only `flowing` asked for flow control, and neither acks.
    const flowing = rawConnect(ts.url);
    const plain = rawConnect(ts.url);
    await Promise.all([flowing.opened, plain.opened]);
    let flowBytes = 0;
    let acking = false;
    flowing.ws.on('message', (d: Buffer) => {
      flowBytes += d.length;
      if (acking) flowing.ws.send(encode({ t: 'ack', seq: 0, bytes: flowBytes }));
    });
    flowing.ws.send(encode({ ...hello, flow: true }));
    plain.ws.send(encode(hello));
    await waitFor(() => [flowing, plain].every((r) => r.frames.some((f) => f.msg.t === 'status')), 'both synced');
    const welcome = flowing.frames[0]!.msg;
    assert.equal(welcome.window, HWM, 'the welcome states the window');
    assert.equal(plain.frames[0]!.msg.window, undefined, 'no window without flow control');

    const items = (r: typeof flowing) => r.frames.reduce((n, f) => n + (f.msg.t === 'delta' ? f.items!.length : 0), 0);
    const atHead = (r: typeof flowing) => r.frames.some((f) => f.msg.t === 'delta' && f.msg.to === ts.app.store.head);
    let plainBytes = 0;
    plain.ws.on('message', (d: Buffer) => { plainBytes += d.length; });
    await writeBurst(ts, 20); // 2000 updates of 100 keys, about 3.4 MB
    await waitFor(() => atHead(plain), 'the plain client to reach the head');
    await sleep(100);
    assert.ok(plainBytes > 4 * (HWM + 100 * 1800), `the plain client took ${plainBytes} bytes meanwhile`);
    const oneRound = 100 * 1800; // one burst round's delta frame: 100 values of about 1.7 KiB
    assert.ok(flowBytes <= HWM + oneRound + 4096, `${flowBytes} bytes sent unacknowledged: the window ${HWM} plus one frame`);
    const before = items(flowing);
    assert.ok(before < 200, `${before} of 2000 updates before any ack`);

    // Acks of everything received open the window: a coalesced catch-up, latest values only.
    acking = true;
    flowing.ws.send(encode({ t: 'ack', seq: 0, bytes: flowBytes }));
    await waitFor(() => atHead(flowing), 'the catch-up');
    const caughtUp = items(flowing) - before;
    assert.ok(caughtUp >= 100 && caughtUp < 2000 - before, `${caughtUp} items: each key's latest, not the ${2000 - before} updates missed`);
    assert.ok([...ts.app.server.connections].every((c) => c.streaming), 'slow is not stalled: nobody was closed');
  } finally {
    await ts.close();
  }
});
