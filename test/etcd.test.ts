// The etcd v3 datastore against a real etcd (Debian etcd-server 3.4): paged initial load, churn,
// compaction while disconnected, etcd killed and restarted, and the two ways the etcd3 library
// loses watch events (a stream cut during a long catch-up, a catch-up past gRPC's 4 MiB message
// limit) as regression tests.
import assert from 'node:assert/strict';
import { ConnectionPool } from 'etcd3/lib/connection-pool.js';
import { after, before, test } from 'node:test';
import type { SyncClient, SyncerType, Update } from '../client/index.js';
import { ViewFilter } from '../src/model/view-filter.js';
import type { App } from '../cmd/app.js';
import { createDatastore } from '../cmd/datastores.js';
import { loadConfig, type Config } from '../src/config.js';
import type { EtcdDatastore } from '../src/datastore/etcd.js';
import { silentLogger } from '../src/logging.js';
import { encodeValue } from '../src/protocol/canonical.js';
import { checksumHex } from '../src/protocol/checksum.js';
import { startEtcd, etcdContent, putMany, type EtcdServer } from './support/etcd.js';
import { assertClientMatches, expectedView } from './support/expected.js';
import { cleanupAfterFile, node, resource, sleep, startServerOn, waitFor, wep } from './support/harness.js';
import { prng, testSeed } from './support/prng.js';
import { startProxy, type TcpProxy } from './support/tcp-proxy.js';

const { clients, track } = cleanupAfterFile();
const SLOW = { timeout: 120_000 };

let etcd: EtcdServer;
before(async () => { etcd = await startEtcd({ progressNotifyMs: 200 }); });
after(async () => { await etcd?.stop(); });

function etcdDatastore(endpoint: string, extra: Partial<Config> = {}): EtcdDatastore {
  return createDatastore({
    ...loadConfig({ env: {} }), datastoreType: 'etcdv3', etcdEndpoints: [endpoint],
    etcdPageSize: 500, etcdProgressIntervalSecs: 0.2, etcdWatchTimeoutSecs: 2, ...extra,
  }, silentLogger) as EtcdDatastore;
}

async function clearEtcd(): Promise<void> {
  await etcd.client.delete().prefix('/');
}

async function currentRevision(): Promise<number> {
  return Number((await etcd.client.kv.range({ key: Buffer.from('/') })).header.revision);
}

/** The store holds exactly etcd's content, byte for byte in canonical form. */
async function assertStoreEqualsEtcd(app: App): Promise<void> {
  const content = await etcdContent(etcd.client);
  for (const [k, v] of content) {
    const got = app.store.valueOf(k);
    assert.ok(got && got.equals(encodeValue(v)), `store value of ${k}`);
  }
  const felix = new ViewFilter('felix', '');
  assert.equal(app.store.checksum(felix).count, expectedView(content, 'felix', '').size, 'felix view size');
}

function converged(app: App, all: { c: SyncClient; syncer: SyncerType; node: string }[]): boolean {
  return all.every((x) => {
    const s = app.store.checksum(new ViewFilter(x.syncer, x.node));
    return x.c.isInSync && x.c.checksum().value === checksumHex(s.value) && x.c.checksum().count === s.count;
  });
}

/** Records, per client, any key whose revision went backwards. */
function revisionWatch(): { onUpdates: (u: Update[]) => void; violations: string[] } {
  const last = new Map<string, number>();
  const violations: string[] = [];
  return {
    violations,
    onUpdates: (us) => {
      for (const u of us) {
        const r = Number(u.revision);
        if (r < (last.get(u.key) ?? 0)) violations.push(`${u.key}: ${last.get(u.key)} → ${r}`);
        last.set(u.key, r);
      }
    },
  };
}

test('initial load of 20,000 keys is paged and equals etcd\'s own range read', SLOW, async () => {
  await clearEtcd();
  const kvs = [
    ...Array.from({ length: 20_000 }, (_, i) => wep(`node-${i % 100}`, `pod-${i}`, `ns-${i % 20}`, { app: `app-${i % 13}` })),
    ...Array.from({ length: 100 }, (_, i) => node(`node-${i}`)),
  ];
  await putMany(etcd.client, kvs);
  const ds = etcdDatastore(etcd.endpoint);
  const ts = track(await startServerOn(ds));
  try {
    await waitFor(() => ts.app.store.status === 'in-sync', 'in sync', 60_000);
    assert.ok(ds.stats.rangeCalls > 1, `paged: ${ds.stats.rangeCalls} range calls`);
    assert.equal(ds.stats.rangeCalls, Math.ceil(kvs.length / 500), 'one range call per page of 500');
    assert.equal(ds.stats.watches, 1, 'one watch in total');
    await assertStoreEqualsEtcd(ts.app);
    const c = clients.make({ url: ts.url, syncerType: 'tunnel-ip-allocation', node: 'node-7' });
    await c.inSync();
    assert.equal(c.size, 1, 'node-scoped view: the one node');
  } finally {
    await clients.stopAll();
    await ts.close();
  }
});

const NODES = ['n1', 'n2', 'n3'];
function randomResource(rnd: () => number, i: number) {
  const n = NODES[Math.floor(rnd() * NODES.length)]!;
  switch (Math.floor(rnd() * 5)) {
    case 0: return node(n, { asNumber: 64000 + Math.floor(rnd() * 100) });
    case 1: return resource('CalicoNodeStatus', { name: `${n}-status` }, { node: n, classes: ['Agent'], n: Math.floor(rnd() * 100) });
    case 2: return resource('IPPool', { name: `pool-${i % 3}` }, { cidr: `10.${i % 3}.0.0/16`, blockSize: 26 + (i % 3) });
    case 3: return { key: `/calico/ipam/v2/host/${n}/ipv4/block/10.244.${i % 4}.0-26`, value: { state: 'confirmed', deleted: 'false', n: i } };
    default: return wep(n, `pod-${i % 30}`, 'default', { gen: String(i) });
  }
}

async function connectAll(url: string) {
  const all: { c: SyncClient; syncer: SyncerType; node: string; violations: string[] }[] = [];
  for (const syncer of ['felix', 'bgp', 'tunnel-ip-allocation', 'node-status'] as const) {
    for (const n of NODES) {
      const w = revisionWatch();
      all.push({ c: clients.make({ url, syncerType: syncer, node: n, onUpdates: w.onUpdates }), syncer, node: n, violations: w.violations });
    }
  }
  await Promise.all(all.map((x) => x.c.inSync()));
  return all;
}

let sentinels = 0;
async function assertAllMatchEtcd(ts: { app: App }, all: Awaited<ReturnType<typeof connectAll>>): Promise<void> {
  // The watch is ordered: once a key written last has arrived, so has everything before it.
  const sentinel = resource('GlobalNetworkSet', { name: `sentinel-${++sentinels}` }, { nets: [] });
  await etcd.client.put(sentinel.key).value(JSON.stringify(sentinel.value));
  await waitFor(() => ts.app.store.valueOf(sentinel.key) != null, 'the store to catch up with etcd', 30_000);
  await waitFor(() => converged(ts.app, all), 'every client to match the server', 30_000);
  const content = await etcdContent(etcd.client);
  for (const x of all) assertClientMatches(x.c, expectedView(content, x.syncer, x.node), `${x.syncer}/${x.node}`);
  assert.deepEqual(all.flatMap((x) => x.violations), [], 'no revision went backwards at any client');
  assert.equal(all.reduce((n, x) => n + x.c.stats.protocolErrors + x.c.stats.checksumMismatches, 0), 0, 'no protocol error or checksum mismatch');
}

test('churn written by a second etcd client: every view of every client converges to etcd', SLOW, async () => {
  await clearEtcd();
  const seed = testSeed('etcd churn');
  const rnd = prng(seed);
  const ds = etcdDatastore(etcd.endpoint);
  const ts = track(await startServerOn(ds));
  try {
    await putMany(etcd.client, Array.from({ length: 40 }, (_, i) => randomResource(rnd, i)));
    const all = await connectAll(ts.url);
    for (let i = 0; i < 300; i++) {
      const r = randomResource(rnd, i);
      if (rnd() < 0.2) await etcd.client.delete().key(r.key);
      else await etcd.client.put(r.key).value(JSON.stringify(r.value));
    }
    await assertAllMatchEtcd(ts, all);
    assert.equal(ds.stats.watches, 1, `one upstream watch (TEST_SEED=${seed})`);
  } finally {
    await clients.stopAll();
    await ts.close();
  }
});

test('compaction while the watch is disconnected: re-list and publish exactly the changed keys', SLOW, async () => {
  await clearEtcd();
  const base = Array.from({ length: 50 }, (_, i) => wep('n1', `pod-${i}`));
  await putMany(etcd.client, base);
  const proxy = track(await startProxy(Number(new URL(etcd.endpoint).port)));
  const ds = etcdDatastore(`http://127.0.0.1:${proxy.port}`);
  const ts = track(await startServerOn(ds));
  try {
    const heard: Update[] = [];
    const c = clients.make({ url: ts.url, syncerType: 'felix', onUpdates: (u) => heard.push(...u) });
    await c.inSync();
    heard.length = 0;
    const itemsBefore = c.stats.itemsReceived;

    proxy.block();
    await waitFor(() => ts.app.store.status !== 'in-sync', 'the adapter to notice the outage');
    // 6 real changes, and 2 rewrites of identical content (new mod revision, same value).
    for (const i of [1, 2, 3]) await etcd.client.put(base[i]!.key).value(JSON.stringify(wep('n1', `pod-${i}`, 'default', { changed: 'yes' }).value));
    for (const i of [4, 5]) await etcd.client.delete().key(base[i]!.key);
    const added = wep('n1', 'pod-new');
    await etcd.client.put(added.key).value(JSON.stringify(added.value));
    for (const i of [6, 7]) await etcd.client.put(base[i]!.key).value(JSON.stringify(base[i]!.value));
    await etcd.client.kv.compact({ revision: await currentRevision(), physical: true });

    let published = 0;
    const unsubscribe = ts.app.store.subscribe({ onBatch: (b) => { published += b.changes.length; }, onStatus: () => {} });
    proxy.unblock();
    await waitFor(() => ds.stats.compactions >= 1 && ts.app.store.status === 'in-sync', 'the re-list after compaction', 30_000);
    await waitFor(() => c.get(added.key) !== undefined, 'the client to get the difference');
    unsubscribe();
    assert.equal(published, 6, 'the store published exactly the 6 changed keys');
    assert.equal(c.stats.itemsReceived - itemsBefore, 6, 'the client received 6 items');
    assert.equal(c.stats.snapshots, 1, 'no resync at the client');
    assert.equal(heard.length, 6);
    assert.equal(ds.stats.lists, 2, 'listed once at start and once after the compaction');
    await assertStoreEqualsEtcd(ts.app);
  } finally {
    await clients.stopAll();
    await ts.close();
    await proxy.close();
  }
});

test('etcd killed (SIGKILL) and restarted mid-churn: no event lost, no revision backwards', SLOW, async () => {
  await clearEtcd();
  const seed = testSeed('etcd killed mid-churn');
  const rnd = prng(seed);
  const ds = etcdDatastore(etcd.endpoint, { etcdWatchTimeoutSecs: 1 });
  const ts = track(await startServerOn(ds));
  try {
    await putMany(etcd.client, Array.from({ length: 40 }, (_, i) => randomResource(rnd, i)));
    const all = await connectAll(ts.url);
    let written = 0;
    const write = async (i: number) => {
      const r = randomResource(rnd, i);
      for (;;) {
        try {
          if (rnd() < 0.2) await etcd.client.delete().key(r.key);
          else await etcd.client.put(r.key).value(JSON.stringify(r.value));
          written++;
          return;
        } catch {
          await sleep(100); // etcd is down: the writer retries, like any client would
        }
      }
    };
    for (let i = 0; i < 100; i++) await write(i);
    await etcd.kill('SIGKILL');
    await waitFor(() => ts.app.store.status !== 'in-sync', 'the adapter to notice etcd is gone', 10_000);
    assert.ok(all.every((x) => x.c.size > 0 || x.syncer === 'node-status'), 'clients keep their last known state');
    await sleep(500); // etcd stays down a while (the adapter retrying meanwhile)
    await etcd.restart();
    for (let i = 100; i < 200; i++) await write(i);
    assert.equal(written, 200);
    await waitFor(() => ts.app.store.status === 'in-sync', 'in sync again', 30_000);
    await assertAllMatchEtcd(ts, all);
    assert.ok(ds.stats.reconnects >= 1, `reconnected (TEST_SEED=${seed})`);
    assert.equal(all.reduce((n, x) => n + x.c.stats.snapshots, 0), all.length, 'no client needed a second snapshot');
  } finally {
    await clients.stopAll();
    await ts.close();
  }
});

/** Writes keys one revision each (not in one transaction), a few at a time. */
async function putEach(kvs: readonly { key: string; value: unknown }[]): Promise<void> {
  for (let i = 0; i < kvs.length; i += 20) {
    await Promise.all(kvs.slice(i, i + 20).map((kv) => etcd.client.put(kv.key).value(JSON.stringify(kv.value))));
  }
}

async function behindProxy(): Promise<{ proxy: TcpProxy; ds: EtcdDatastore; ts: Awaited<ReturnType<typeof startServerOn>> }> {
  const proxy = track(await startProxy(Number(new URL(etcd.endpoint).port)));
  const ds = etcdDatastore(`http://127.0.0.1:${proxy.port}`);
  const ts = track(await startServerOn(ds));
  await waitFor(() => ts.app.store.status === 'in-sync', 'in sync');
  return { proxy, ds, ts };
}

test('regression: a cut during a 3000-event catch-up loses nothing', SLOW, async () => {
  await clearEtcd();
  const { proxy, ds, ts } = await behindProxy();
  try {
    proxy.block();
    await waitFor(() => ts.app.store.status !== 'in-sync', 'outage noticed');
    const kvs = Array.from({ length: 3000 }, (_, i) => wep('n1', `catchup-${i}`));
    await putEach(kvs);
    // Cut again as soon as the first part of the catch-up has been published.
    let atCut = -1;
    const unsubscribe = ts.app.store.subscribe({
      onBatch: () => { if (atCut < 0) { atCut = ts.app.store.head; proxy.cut(); } },
      onStatus: () => {},
    });
    proxy.unblock();
    await waitFor(() => kvs.every((kv) => ts.app.store.valueOf(kv.key)), 'all 3000 keys', 60_000);
    unsubscribe();
    assert.ok(atCut > 0 && atCut < 3000, `the cut came mid-way (after ${atCut} of 3000)`);
    assert.ok(ds.stats.watches >= 3, `watches: ${ds.stats.watches}`);
    await assertStoreEqualsEtcd(ts.app);
  } finally {
    await ts.close();
    await proxy.close();
  }
});

test('regression: a catch-up of 600 × 8 KiB values (past gRPC\'s 4 MiB default) arrives whole', SLOW, async () => {
  await clearEtcd();
  const { proxy, ts } = await behindProxy();
  try {
    proxy.block();
    await waitFor(() => ts.app.store.status !== 'in-sync', 'outage noticed');
    const kvs = Array.from({ length: 600 }, (_, i) => wep('n1', `big-${i}`, 'default', { pad: 'x'.repeat(8192) }));
    await putEach(kvs);
    proxy.unblock();
    await waitFor(() => kvs.every((kv) => ts.app.store.valueOf(kv.key)), 'all 600 values', 60_000);
    await assertStoreEqualsEtcd(ts.app);
  } finally {
    await ts.close();
    await proxy.close();
  }
});

test('an unreachable etcd at start: the server serves (not ready) and syncs once etcd is reachable', SLOW, async () => {
  await clearEtcd();
  await putMany(etcd.client, [node('n1'), node('n2')]);
  const proxy = track(await startProxy(Number(new URL(etcd.endpoint).port)));
  proxy.block();
  const ds = etcdDatastore(`http://127.0.0.1:${proxy.port}`);
  const ts = track(await startServerOn(ds)); // must not hang on the unreachable etcd
  try {
    const c = clients.make({ url: ts.url, syncerType: 'bgp' });
    await waitFor(() => ds.lastError !== undefined, 'the adapter to report the failure');
    assert.notEqual(ts.app.store.status, 'in-sync');
    assert.equal(c.isInSync, false);
    proxy.unblock();
    await c.inSync();
    assert.equal(c.size, 2);
    assert.equal(ds.lastError, undefined, 'the error clears once the watch is up');
  } finally {
    await clients.stopAll();
    await ts.close();
    await proxy.close();
  }
});

test('several endpoints: a dead one does not keep the server from the live one', SLOW, async () => {
  await clearEtcd();
  await putMany(etcd.client, [node('n1')]);
  const dead = await startProxy(1);
  dead.block(); // refuses every connection
  // etcd3 shuffles its hosts for every call; in its fixed order (the last listed first) each
  // order below puts the dead endpoint first once, every time, rather than by chance.
  ConnectionPool.deterministicOrder = true;
  try {
    for (const endpoints of [[`http://127.0.0.1:${dead.port}`, etcd.endpoint], [etcd.endpoint, `http://127.0.0.1:${dead.port}`]]) {
      const multi = createDatastore({
        ...loadConfig({ env: {} }), datastoreType: 'etcdv3', etcdEndpoints: endpoints, etcdProgressIntervalSecs: 0.2, etcdWatchTimeoutSecs: 2,
      }, silentLogger) as EtcdDatastore;
      const ts = track(await startServerOn(multi));
      try {
        await waitFor(() => ts.app.store.status === 'in-sync', `in sync via ${endpoints.join(', ')}`, 30_000);
        assert.ok(ts.app.store.valueOf(node('n1').key));
        // The endpoint that failed is passed over on the next attempt, not tried again first.
        assert.ok(multi.stats.reconnects <= 1, `${multi.stats.reconnects} attempts failed before the live endpoint was used (${endpoints.join(', ')})`);
      } finally {
        await ts.close();
      }
    }
  } finally {
    ConnectionPool.deterministicOrder = false;
    await dead.close(); // also when the test fails: an open proxy would keep this file's process alive
  }
});
