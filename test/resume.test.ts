// Resume: a client that reconnects to the same server receives about what changed while it was
// away, not the snapshot; when the history no longer reaches back, it gets a snapshot on the wire
// but its agent still hears only the differences.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import type { Update } from '../client/index.js';
import { assertClientMatches, expectedView } from './support/expected.js';
import { Clients, resource, startTestServer, waitFor, wep } from './support/harness.js';

const clients = new Clients();
after(() => clients.stopAll());

const seed = Array.from({ length: 200 }, (_, i) => wep(`node-${i % 4}`, `pod-${i}`, 'default', { app: `app-${i % 7}` }));

test('reconnecting after k changes costs about k updates, not a snapshot', async () => {
  const ts = await startTestServer({}, seed);
  try {
    const heard: Update[] = [];
    // Uncompressed: the resume is set against the snapshot's own size.
    const c = clients.make({ url: ts.url, syncerType: 'felix', node: 'node-0', compression: [], onUpdates: (u) => heard.push(...u) });
    await c.inSync();
    // The seed and Calico's built-in default-allow profile.
    assert.equal(c.size, 201);
    assert.equal(heard.length, 201);
    await c.stop();
    const bytesBefore = c.stats.bytesReceived;
    const itemsBefore = c.stats.itemsReceived;
    heard.length = 0;

    // 5 keys change while it is away; one of them 50 times.
    for (let i = 0; i < 50; i++) { const r = wep('node-0', 'pod-0', 'default', { app: 'x', n: String(i) }); ts.ds.put(r.key, r.value); }
    for (let i = 1; i < 4; i++) { const r = wep(`node-${i % 4}`, `pod-${i}`, 'default', { app: 'changed' }); ts.ds.put(r.key, r.value); }
    ts.ds.delete(seed[10]!.key);

    c.start();
    await waitFor(() => c.stats.connects === 2 && c.isInSync && c.size === 200, 'resumed client in sync');
    assert.equal(c.stats.resumes, 1, 'welcome said resume');
    assert.equal(c.stats.snapshots, 1, 'only the first connection took a snapshot');
    assert.equal(c.stats.itemsReceived - itemsBefore, 5, 'one item per changed key, coalesced');
    assert.equal(heard.length, 5);
    assert.equal(heard.filter((u) => u.value === null).length, 1);
    const resumeBytes = c.stats.bytesReceived - bytesBefore;
    assert.ok(resumeBytes * 10 < bytesBefore, `resume cost ${resumeBytes} B against ${bytesBefore} B for the first sync`);
    assertClientMatches(c, expectedView(ts.ds, 'felix', 'node-0'), 'resumed client');
  } finally {
    await clients.stopAll();
    await ts.close();
  }
});

test('past the history floor: a digest resync, only differences reported', async () => {
  const ts = await startTestServer({ historyMaxBytes: 2048 }, seed);
  try {
    const heard: Update[] = [];
    const c = clients.make({ url: ts.url, syncerType: 'felix', node: 'node-0', onUpdates: (u) => heard.push(...u) });
    await c.inSync();
    await c.stop();
    heard.length = 0;
    const itemsBefore = c.stats.itemsReceived;

    for (let i = 100; i < 150; i++) ts.ds.delete(seed[i]!.key);
    const changed = resource('GlobalNetworkPolicy', { name: 'default.new' }, { tier: 'default', selector: 'all()' });
    ts.ds.put(changed.key, changed.value);
    const upd = wep('node-1', 'pod-1', 'default', { app: 'changed' });
    ts.ds.put(upd.key, upd.value);
    await waitFor(() => ts.app.store.floor > 0, 'history floor to rise');

    c.start();
    await waitFor(() => c.stats.connects === 2 && c.isInSync, 'client in sync again');
    assert.equal(c.stats.digests, 1, 'the second sync was a digest resync');
    assert.ok(c.stats.itemsReceived - itemsBefore <= 152, 'at most every live key (200 - 50 + 1, and the built-in profile)');
    assert.equal(heard.filter((u) => u.value === null).length, 50, 'the 50 deletions, found by mark and sweep');
    assert.deepEqual(heard.filter((u) => u.value !== null).map((u) => u.key).sort(), [changed.key, upd.key].sort());
    assertClientMatches(c, expectedView(ts.ds, 'felix', 'node-0'), 'resynced client');
  } finally {
    await clients.stopAll();
    await ts.close();
  }
});

test('a restarted server (new epoch) resyncs by digest, which the agent sees as no change', async () => {
  const first = await startTestServer({}, seed);
  const heard: Update[] = [];
  const c = clients.make({ url: first.url, syncerType: 'felix', node: 'node-0', onUpdates: (u) => heard.push(...u) });
  await c.inSync();
  heard.length = 0;
  const ds = first.ds;
  const port = first.app.ports.server;
  await first.close();
  await waitFor(() => !c.isInSync, 'client notices the server is gone');
  const { startApp } = await import('../cmd/app.js');
  const { loadConfig } = await import('../src/config.js');
  const { silentLogger } = await import('../src/logging.js');
  const second = await startApp({
    ...loadConfig({ env: {} }), serverHost: '127.0.0.1', serverPort: port, healthEnabled: false, prometheusMetricsEnabled: false,
  }, silentLogger, ds);
  try {
    await c.inSync();
    assert.equal(c.stats.snapshots, 1);
    assert.equal(c.stats.digests, 1);
    assert.deepEqual(heard, [], 'nothing changed, so nothing is reported');
    assertClientMatches(c, expectedView(ds, 'felix', 'node-0'), 'after restart');
  } finally {
    await clients.stopAll();
    await second.close();
  }
});

test('goaway on shutdown carries the client position', async () => {
  const ts = await startTestServer({}, seed);
  const raw = await import('./support/harness.js').then((h) => h.rawConnect(ts.url));
  await raw.opened;
  const { encode } = await import('../src/protocol/codec.js');
  raw.ws.send(encode({ t: 'hello', v: 1, syncer: 'felix', node: '', clientName: 't', clientVersion: '0' }));
  await waitFor(() => raw.frames.some((f) => f.msg.t === 'checksum'), 'synced');
  const head = ts.app.store.head;
  await ts.close();
  const closed = await raw.closed;
  const goaway = raw.frames.find((f) => f.msg.t === 'goaway');
  assert.ok(goaway, 'a goaway frame arrived before the close');
  assert.equal(closed.code, 1001);
  assert.deepEqual(goaway.msg.resume, { epoch: ts.app.store.epoch, seq: head });
});
