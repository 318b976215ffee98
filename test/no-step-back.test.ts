// A client never hears a key's revision go back when it moves between replicas (issue 13), one
// test per mechanism: a replica older than the client's cache asks the datastore where it stands
// and holds the client until it has caught up (past the old 2 s grace), or sends it to another
// replica after the hold timeout; a datastore restored to an older revision is served as it is,
// and the client is told; a quiet Kubernetes collection proves itself current by listing again;
// a silent Kubernetes watch turns the status away from in-sync; fresh reads only.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { SyncClient, Update } from '../client/index.js';
import { RevisionProbe } from '../server/revision-probe.js';
import { createDatastore } from '../cmd/datastores.js';
import { loadConfig, type Config } from '../src/config.js';
import type { Datastore, DatastoreSink } from '../src/datastore/datastore.js';
import { WATCHED_RESOURCES } from '../src/datastore/kubernetes/resources.js';
import { MemoryDatastore } from '../src/datastore/memory.js';
import { silentLogger } from '../src/logging.js';
import { encode } from '../src/protocol/codec.js';
import { etcdContent, haveEtcd, putMany, startEtcd } from './support/etcd.js';
import { assertClientMatches, expectedView } from './support/expected.js';
import { cleanupAfterFile, rawConnect, sleep, startServerOn, waitFor, wep } from './support/harness.js';
import { startKubeApi } from './support/kube-api.js';
import { cluster, kubeContent, load, pod, PODS, podIp } from './support/kube-cluster.js';
import { metricNamed } from './support/metrics.js';

const { clients, track } = cleanupAfterFile();
const SLOW = { timeout: 60_000 };
const NO_ETCD = haveEtcd() ? false : 'no etcd binary';

const etcdConfig = (endpoint: string): Config => ({
  ...loadConfig({ env: {} }), datastoreType: 'etcdv3', etcdEndpoints: [endpoint], etcdProgressIntervalSecs: 0.2, etcdWatchTimeoutSecs: 1,
});

/**
 * A replica that believes itself in sync while its store lags: the adapter's events and
 * watermarks wait in a queue while `lag` is set (its status passes at once), and the datastore
 * is asked where it stands as usual.
 */
class Lagging implements Datastore {
  readonly name = 'lagging';
  lag = false;
  probes = 0;
  private readonly queue: (() => void)[] = [];
  constructor(private readonly inner: Datastore) {}
  get lastError() { return this.inner.lastError; }
  start(sink: DatastoreSink) {
    const later = (f: () => void) => { if (this.lag) this.queue.push(f); else f(); };
    return this.inner.start({
      onUpdates: (e) => later(() => sink.onUpdates(e)),
      onProgress: (r) => later(() => sink.onProgress?.(r)),
      onStatus: (s) => sink.onStatus(s),
      onInvalid: (k, p) => sink.onInvalid(k, p),
    });
  }
  release(): void { this.lag = false; for (const f of this.queue.splice(0)) f(); }
  stop() { return this.inner.stop(); }
  currentRevision() { this.probes++; return this.inner.currentRevision!(); }
}

/** A client that records every key whose revision it heard go back. */
function watchedClient(urls: string[]): { c: SyncClient; backwards: string[] } {
  const last = new Map<string, number>();
  const backwards: string[] = [];
  const c = clients.make({
    urls, url: urls[0]!, syncerType: 'felix',
    onUpdates: (us: Update[]) => {
      for (const u of us) {
        const r = Number(u.revision);
        if (r < (last.get(u.key) ?? 0)) backwards.push(`${u.key}: ${last.get(u.key)} → ${r}`);
        last.set(u.key, r);
      }
    },
  });
  return { c, backwards };
}

const pods = (v: string) => Array.from({ length: 12 }, (_, i) => wep(`n${i % 3}`, `pod-${i}`, 'default', { v }));
const label = (c: SyncClient, key: string) => c.get(key)?.value?.metadata.labels.v;

test('a replica that believes itself in sync but lags is held past the old grace, then serves the client once caught up', { ...SLOW, skip: NO_ETCD }, async () => {
  const etcd = await startEtcd({ progressNotifyMs: 200 });
  try {
    await putMany(etcd.client, pods('1'));
    const a = track(await startServerOn(createDatastore(etcdConfig(etcd.endpoint), silentLogger)));
    const lagging = new Lagging(createDatastore(etcdConfig(etcd.endpoint), silentLogger));
    const b = track(await startServerOn(lagging, { serverHoldTimeoutSecs: 60 }));
    await waitFor(() => a.app.store.status === 'in-sync' && b.app.store.status === 'in-sync', 'both replicas in sync');
    const { c, backwards } = watchedClient([a.url, b.url]);
    await c.inSync();

    lagging.lag = true;
    await putMany(etcd.client, pods('2').slice(0, 5));
    await waitFor(() => label(c, pods('2')[4]!.key) === '2', 'the changes to reach the client through a');
    await a.close();
    await waitFor(() => lagging.probes > 0 && b.app.server.connections.size === 1, 'b to ask etcd where it stands');
    // Past the 2 s a replica in sync used to grant before serving its older state.
    await sleep(3000);
    assert.equal(b.app.store.status, 'in-sync', 'b believes itself in sync');
    assert.equal(await metricNamed(b.app.metrics, 'calico_fanout_clients_held'), 1, 'the client is held');
    assert.deepEqual(backwards, [], 'no revision went back while b lagged');

    lagging.release();
    await waitFor(() => c.isInSync && label(c, pods('2')[4]!.key) === '2', 'the client in sync on b');
    assertClientMatches(c, expectedView(await etcdContent(etcd.client), 'felix', ''), 'client on b');
    assert.deepEqual(backwards, []);
    assert.equal(await metricNamed(b.app.metrics, 'calico_fanout_holds_total', { outcome: 'caught-up' }), 1);
  } finally {
    await clients.stopAll();
    await etcd.stop();
  }
});

test('a replica that does not catch up within the hold timeout sends the client to another replica', { ...SLOW, skip: NO_ETCD }, async () => {
  const etcd = await startEtcd({ progressNotifyMs: 200 });
  try {
    await putMany(etcd.client, pods('1'));
    const a = track(await startServerOn(createDatastore(etcdConfig(etcd.endpoint), silentLogger)));
    const lagging = new Lagging(createDatastore(etcdConfig(etcd.endpoint), silentLogger));
    const b = track(await startServerOn(lagging, { serverHoldTimeoutSecs: 1 }));
    const a2 = track(await startServerOn(createDatastore(etcdConfig(etcd.endpoint), silentLogger)));
    await waitFor(() => [a, b, a2].every((s) => s.app.store.status === 'in-sync'), 'three replicas in sync');
    // The client tries the replicas in this order: from a, the next is b, then a2.
    const { c, backwards } = watchedClient([a.url, b.url, a2.url]);
    await c.inSync();

    lagging.lag = true;
    await putMany(etcd.client, pods('2').slice(0, 5));
    await waitFor(() => label(c, pods('2')[4]!.key) === '2', 'the changes to reach the client through a');
    await a.close();
    await waitFor(() => a2.app.server.connections.size === 1 && c.isInSync, 'the client sent on from b to a2');
    assert.ok(await metricNamed(b.app.metrics, 'calico_fanout_holds_total', { outcome: 'sent-away' }) >= 1, 'b sent the client away');
    assertClientMatches(c, expectedView(await etcdContent(etcd.client), 'felix', ''), 'client on a2');
    assert.deepEqual(backwards, [], 'no revision went back');
  } finally {
    await clients.stopAll();
    await etcd.stop();
  }
});

test('a datastore restored to an older revision is served as it is, and the client is told', { ...SLOW, skip: NO_ETCD }, async () => {
  const live = await startEtcd();
  const restored = await startEtcd();
  try {
    // The live cluster moves on for a while; the backup has the first state only.
    await putMany(restored.client, pods('1'));
    await putMany(live.client, pods('1'));
    for (let v = 2; v <= 6; v++) await putMany(live.client, pods(String(v)));
    const a = track(await startServerOn(createDatastore(etcdConfig(live.endpoint), silentLogger)));
    const b = track(await startServerOn(createDatastore(etcdConfig(restored.endpoint), silentLogger)));
    await waitFor(() => a.app.store.status === 'in-sync' && b.app.store.status === 'in-sync', 'both replicas in sync');
    const { c } = watchedClient([a.url, b.url]);
    await c.inSync();
    assert.ok(b.app.store.maxRevision < Number(c.get(pods('6')[0]!.key)!.revision), 'the restored etcd is older than the client cache');

    await a.close();
    await waitFor(() => c.isInSync && label(c, pods('1')[0]!.key) === '1', 'the client synced to the restored datastore');
    assertClientMatches(c, expectedView(await etcdContent(restored.client), 'felix', ''), 'client on the restored datastore');
    assert.equal(c.stats.rewinds, 1, 'the client was told the datastore is older than its cache');
    assert.equal(await metricNamed(b.app.metrics, 'calico_fanout_rewound_clients_total'), 1);
    assert.equal(await metricNamed(b.app.metrics, 'calico_fanout_holds_total', { outcome: 'rewound' }), 1);
  } finally {
    await clients.stopAll();
    await live.stop();
    await restored.stop();
  }
});

test('Kubernetes: a quiet collection lists again to prove itself current, so a held client is served without waiting for a bookmark', { ...SLOW }, async () => {
  const api = await startKubeApi();
  try {
    load(api, cluster(20));
    const config: Config = { ...loadConfig({ env: {} }), datastoreType: 'kubernetes', kubeconfig: api.kubeconfigPath, kubernetesWatchInactivitySecs: 30 };
    const a = track(await startServerOn(createDatastore(config, silentLogger)));
    const b = track(await startServerOn(createDatastore(config, silentLogger), { serverHoldTimeoutSecs: 60 }));
    await waitFor(() => a.app.store.status === 'in-sync' && b.app.store.status === 'in-sync', 'both replicas in sync');
    const { c, backwards } = watchedClient([a.url, b.url]);
    await c.inSync();

    // Pods change; every other collection stays quiet, so b's watermark stays at its first list.
    const p = pod('web-0', 'ns-0', 'node-0', podIp(0), { v: '2' });
    api.apply(PODS, p);
    const key = WATCHED_RESOURCES.find((r) => r.path === PODS)!.convert(p)!.key;
    await waitFor(() => label(c, key) === '2' && b.app.store.maxRevision < api.resourceVersion, 'the change at the client, b\'s watermark behind it');
    const listsBefore = [...api.stats.lists.values()].reduce((s, n) => s + n, 0);

    await a.close();
    await waitFor(() => b.app.server.connections.size === 1 && c.isInSync && c.stats.connects === 2, 'the client served by b', 20_000);
    assert.ok([...api.stats.lists.values()].reduce((s, n) => s + n, 0) > listsBefore, 'b listed its quiet collections again');
    assert.equal(await metricNamed(b.app.metrics, 'calico_fanout_holds_total', { outcome: 'caught-up' }), 1);
    assertClientMatches(c, expectedView(kubeContent(api), 'felix', ''), 'client on b');
    assert.deepEqual(backwards, []);
  } finally {
    await clients.stopAll();
    await api.close();
  }
});

test('Kubernetes: a watch that falls silent turns the status away from in-sync until it is back', { ...SLOW }, async () => {
  const api = await startKubeApi();
  try {
    load(api, cluster(5));
    const config: Config = { ...loadConfig({ env: {} }), datastoreType: 'kubernetes', kubeconfig: api.kubeconfigPath, kubernetesWatchInactivitySecs: 0.5 };
    const ts = track(await startServerOn(createDatastore(config, silentLogger)));
    await waitFor(() => ts.app.store.status === 'in-sync', 'in sync');
    api.stall(true);
    await waitFor(() => ts.app.store.status !== 'in-sync', 'the status to turn while the API server is silent');
    api.stall(false);
    await waitFor(() => ts.app.store.status === 'in-sync', 'back in sync once the watches answer');
  } finally {
    await api.close();
  }
});

test('a read of the datastore revision is shared only with clients whose hello came before it began', async () => {
  let reads = 0;
  const answers: ((n: number) => void)[] = [];
  const probe = new RevisionProbe({ currentRevision: () => { reads++; return new Promise<number>((r) => answers.push(r)); } });
  const first = probe.mark;
  const r1 = probe.read(first);
  assert.equal(probe.read(first), r1, 'a second client of the same moment shares the read');
  const later = probe.mark;
  const r2 = probe.read(later);
  assert.notEqual(r2, r1, 'a client whose hello came after the read began gets a read of its own');
  assert.equal(reads, 2);
  answers[0]!(5);
  answers[1]!(7);
  assert.equal(await r1, 5);
  assert.equal(await r2, 7);
});

test('a held client hears in-sync after its repair, whatever it heard while held', { timeout: 20_000 }, async () => {
  const seed = pods('1');
  const lagging = new Lagging(new MemoryDatastore(seed));
  const ts = track(await startServerOn(lagging, { serverHoldTimeoutSecs: 60 }));
  await waitFor(() => ts.app.store.status === 'in-sync', 'in sync');
  lagging.lag = true;
  const memory = (lagging as unknown as { inner: MemoryDatastore }).inner;
  const revision = memory.put(seed[0]!.key, pods('2')[0]!.value);
  const conn = rawConnect(ts.url);
  await conn.opened;
  conn.ws.send(encode({ t: 'hello', v: 1, syncer: 'felix', node: '', clientName: 't', clientVersion: '1', revision, digest: { scheme: 1, buckets: 1, hashes: new Uint8Array(8) } }));
  await waitFor(() => conn.frames.some((f) => f.msg.t === 'status' && f.msg.held), 'the held status');
  assert.ok(!conn.frames.some((f) => f.msg.t === 'repair' || f.msg.t === 'snapshot'), 'nothing served while held');
  lagging.release();
  await waitFor(() => conn.frames.some((f) => (f.msg.t === 'repair' || f.msg.t === 'snapshot') && f.msg.last === true), 'the repair');
  const last = conn.frames.findIndex((f) => (f.msg.t === 'repair' || f.msg.t === 'snapshot') && f.msg.last === true);
  await waitFor(() => conn.frames.slice(last).some((f) => f.msg.t === 'status' && f.msg.status === 'in-sync'), 'in-sync after the repair');
  conn.ws.terminate();
});

test('a digest resync of a view whose every bucket differs costs no more than the snapshot', { timeout: 20_000 }, async () => {
  // Ten keys: a client of this size uses one bucket, so one wrong key means all of them.
  const ts = track(await startServerOn(new MemoryDatastore(pods('1').slice(0, 10))));
  await waitFor(() => ts.app.store.status === 'in-sync', 'in sync');
  const bytesOf = async (hello: Record<string, unknown>) => {
    const conn = rawConnect(ts.url);
    let bytes = 0;
    conn.ws.on('message', (d: Buffer) => { bytes += d.length; });
    await conn.opened;
    conn.ws.send(encode({ t: 'hello', v: 1, syncer: 'felix', node: '', clientName: 't', clientVersion: '1', compression: [], ...hello }));
    await waitFor(() => conn.frames.some((f) => (f.msg.t === 'repair' || f.msg.t === 'snapshot') && f.msg.last === true), 'the sync');
    conn.ws.terminate();
    return bytes;
  };
  const snapshot = await bytesOf({});
  const digest = await bytesOf({ digest: { scheme: 1, buckets: 1, hashes: new Uint8Array(8).fill(1) } });
  assert.ok(digest <= snapshot, `digest resync ${digest} B, snapshot ${snapshot} B`);
});

test('Kubernetes: the watermark is reported before in-sync, so a held client is never measured against a partial one', { timeout: 20_000 }, async () => {
  const api = await startKubeApi();
  try {
    load(api, cluster(5));
    const config: Config = { ...loadConfig({ env: {} }), datastoreType: 'kubernetes', kubeconfig: api.kubeconfigPath };
    const ds = createDatastore(config, silentLogger);
    const calls: string[] = [];
    await ds.start({ onUpdates: () => {}, onInvalid: () => {}, onStatus: (s) => calls.push(s), onProgress: (r) => calls.push(`progress ${r}`) });
    await waitFor(() => calls.includes('in-sync'), 'in sync');
    await ds.stop();
    const first = calls.indexOf('in-sync');
    assert.match(calls[first - 1] ?? '', /^progress \d+$/, `a watermark just before in-sync: ${calls.join(', ')}`);
  } finally {
    await api.close();
  }
});

test('a stalled etcd (SIGSTOP) turns the status away from in-sync, and a client newer than the replica is held, not served', { ...SLOW, skip: NO_ETCD }, async () => {
  const etcd = await startEtcd({ progressNotifyMs: 200 });
  try {
    await putMany(etcd.client, pods('1'));
    const a = track(await startServerOn(createDatastore(etcdConfig(etcd.endpoint), silentLogger), { serverHoldTimeoutSecs: 60 }));
    await waitFor(() => a.app.store.status === 'in-sync', 'in sync');
    await etcd.kill('SIGSTOP');
    // Within the watch timeout (1 s here) plus a progress interval.
    await waitFor(() => a.app.store.status !== 'in-sync', 'the status to leave in-sync');
    const conn = rawConnect(a.url);
    await conn.opened;
    const revision = String(a.app.store.maxRevision + 5);
    conn.ws.send(encode({ t: 'hello', v: 1, syncer: 'felix', node: '', clientName: 't', clientVersion: '1', revision, digest: { scheme: 1, buckets: 1, hashes: new Uint8Array(8) } }));
    await waitFor(() => conn.frames.some((f) => f.msg.t === 'status' && f.msg.held), 'the held status');
    assert.ok(!conn.frames.some((f) => f.msg.t === 'repair' || f.msg.t === 'snapshot'), 'nothing served from the stale store');
    conn.ws.terminate();
    await etcd.kill('SIGCONT');
    await waitFor(() => a.app.store.status === 'in-sync', 'back in sync', 20_000);
  } finally {
    await etcd.stop();
  }
});
