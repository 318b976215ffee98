// Several servers: a client rotates across its URLs, moves to another replica when its server
// shuts down (a new epoch: a digest resync that its agent sees as no change when the replicas agree),
// and waits as long as the goaway tells it to before coming back.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Update } from '../client/index.js';
import { encode } from '../src/protocol/codec.js';
import { assertClientMatches, expectedView } from './support/expected.js';
import type { DatastoreSink } from '../src/datastore/datastore.js';
import { cleanupAfterFile, LIMIT, rawConnect, resource, sleep, startServerOn, startTestServer, waitFor, wep } from './support/harness.js';
import { freePort, metricValue } from './support/metrics.js';

const { clients, track } = cleanupAfterFile();

const seed = [
  ...Array.from({ length: 40 }, (_, i) => wep(`node-${i % 4}`, `pod-${i}`, 'default', { app: `app-${i % 3}` })),
  resource('IPPool', { name: 'pool-a' }, { cidr: '10.244.0.0/16', blockSize: 26 }),
];

test('a client rotates past a dead URL to a live one', LIMIT, async () => {
  const dead = `ws://127.0.0.1:${await freePort()}`;
  const ts = track(await startTestServer({}, seed));
  try {
    const c = clients.make({ urls: [dead, ts.url], url: dead, syncerType: 'felix' });
    await c.inSync();
    assert.ok(c.stats.connects >= 2, `the dead URL was tried first (${c.stats.connects} attempts)`);
    assertClientMatches(c, expectedView(ts.ds, 'felix', ''), 'client of the live server');
    assert.equal(ts.app.server.connections.size, 1);
  } finally {
    await clients.stopAll();
    await ts.close();
  }
});

test('when its server shuts down, a client moves to the next replica without bothering its agent', LIMIT, async () => {
  const a = track(await startTestServer({}, seed));
  const b = track(await startTestServer({}, seed));
  try {
    assert.notEqual(a.app.store.epoch, b.app.store.epoch);
    const heard: Update[] = [];
    const statuses: string[] = [];
    const c = clients.make({ urls: [a.url, b.url], url: a.url, syncerType: 'felix', onUpdates: (u) => heard.push(...u), onStatus: (s) => statuses.push(s) });
    await c.inSync();
    assert.equal(a.app.server.connections.size, 1, 'synced on a');
    assert.equal(b.app.server.connections.size, 0);
    assert.equal(heard.length, seed.length + 1, 'the seed and the built-in default-allow profile');
    heard.length = 0;

    await a.close();
    await waitFor(() => b.app.server.connections.size === 1 && c.isInSync, 'the client to sync on b');
    assert.equal(c.stats.connects, 2);
    assert.equal(c.stats.snapshots, 1, 'the first sync only');
    assert.equal(c.stats.digests, 1, 'another epoch: a digest resync');
    assert.equal(c.stats.resumes, 0);
    assert.equal(await metricValue(b.app.metrics.resyncs, { mode: 'digest' }), 1);
    assert.deepEqual(heard.map((u) => u.key), [], 'same content on both replicas: nothing to report');
    assert.deepEqual(c.resumeToken?.epoch, b.app.store.epoch);
    assertClientMatches(c, expectedView(b.ds, 'felix', ''), 'client on b');

    const upd = wep('node-1', 'pod-1', 'default', { app: 'moved' });
    b.ds.put(upd.key, upd.value);
    b.ds.delete(seed[2]!.key);
    await waitFor(() => c.get(upd.key)?.value?.metadata.labels.app === 'moved' && !c.get(seed[2]!.key), 'b\'s writes reach the client');
    assert.deepEqual(heard.map((u) => [u.key, u.value === null]), [[upd.key, false], [seed[2]!.key, true]]);
    assertClientMatches(c, expectedView(b.ds, 'felix', ''), 'client on b after writes');
  } finally {
    await clients.stopAll();
    await a.close();
    await b.close();
  }
});

test('the client waits goaway.retryAfterMs before reconnecting', LIMIT, async () => {
  const RETRY_MS = 400;
  const a = track(await startTestServer({}, seed));
  const b = track(await startTestServer({}, seed));
  try {
    // Config has no setting for it; ServerOptions does.
    a.app.server.opts.shutdownRetryAfterMs = RETRY_MS;

    // The goaway carries it.
    const raw = rawConnect(a.url);
    await raw.opened;
    raw.ws.send(encode({ t: 'hello', v: 1, syncer: 'felix', node: '', clientName: 'raw', clientVersion: '0' }));
    await waitFor(() => raw.frames.some((f) => f.msg.t === 'checksum'), 'raw client synced');

    const c = clients.make({ urls: [a.url, b.url], url: a.url, syncerType: 'felix' });
    await c.inSync();
    assert.equal(await metricValue(b.app.metrics.connectionsAccepted), 0);

    const t0 = Date.now();
    let seenAt = 0;
    const watch = setInterval(() => { if (!seenAt && b.app.server.connections.size > 0) seenAt = Date.now(); }, 5);
    try {
      await a.app.server.close('shutdown', 1000);
      await waitFor(() => seenAt > 0, 'the client to reach b', 5000);
    } finally {
      clearInterval(watch);
    }
    const waited = seenAt - t0;
    assert.ok(waited >= RETRY_MS - 10, `reconnected ${waited} ms after the goaway; told to wait ${RETRY_MS} ms`);
    await c.inSync();
    assert.equal(c.stats.connects, 2, 'exactly one reconnect');
    assert.equal(await metricValue(b.app.metrics.connectionsAccepted), 1);

    const goaway = raw.frames.find((f) => f.msg.t === 'goaway');
    assert.ok(goaway);
    assert.equal(goaway.msg.reason, 'shutdown');
    assert.equal(goaway.msg.retryAfterMs, RETRY_MS);
    assert.equal((await raw.closed).code, 1001);
  } finally {
    await clients.stopAll();
    await a.close();
    await b.close();
  }
});

/** A datastore that lists the first `partial` keys, then holds the rest until `finish()`. */
class SlowListingDatastore {
  readonly name = 'slow-listing';
  private sink: DatastoreSink | undefined;
  constructor(private readonly docs: { key: string; value: unknown }[], private readonly partial: number) {}
  async start(sink: DatastoreSink): Promise<void> {
    this.sink = sink;
    sink.onStatus('resync-in-progress');
    sink.onUpdates(this.docs.slice(0, this.partial).map((d, i) => ({ ...d, revision: String(i + 1) })));
  }
  finish(): void {
    this.sink!.onUpdates(this.docs.slice(this.partial).map((d, i) => ({ ...d, revision: String(this.partial + i + 1) })));
    this.sink!.onStatus('in-sync');
  }
  async stop(): Promise<void> {}
}

test('a replica still listing its datastore holds back the resync: the moving client deletes nothing', LIMIT, async () => {
  const a = track(await startTestServer({}, seed));
  const slow = new SlowListingDatastore(seed, 10);
  const b = track(await startServerOn(slow));
  try {
    const heard: Update[] = [];
    const statuses: string[] = [];
    const c = clients.make({ urls: [a.url, b.url], url: a.url, syncerType: 'felix', onUpdates: (u) => heard.push(...u), onStatus: (s) => statuses.push(s) });
    await c.inSync();
    heard.length = 0;
    await a.close();
    await waitFor(() => b.app.server.connections.size === 1 && statuses.at(-1) === 'resync-in-progress', 'the client waiting on the listing replica');
    await sleep(200); // time must pass, to show that nothing is swept meanwhile
    assert.deepEqual(heard.map((u) => u.key), [], 'no repair from the partial list, so no key swept');
    assert.equal(c.size, seed.length + 1, 'the agent keeps its whole cache meanwhile (the built-in profile included)');
    slow.finish();
    await c.inSync();
    assert.deepEqual(heard.map((u) => u.key), [], 'same content once listed: nothing to report');
    assert.equal(c.stats.digests, 1, 'resynced by digest against the whole list');
    assert.equal(await metricValue(b.app.metrics.snapshotsGenerated, { syncer: 'felix' }), 0);
  } finally {
    await clients.stopAll();
  }
});
