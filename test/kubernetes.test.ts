// The Kubernetes datastore against the contract server of test/support/kube-api.ts, over real
// HTTP (no kube-apiserver can be had here: these are contract tests of our reading of the API,
// see README). Paged initial list, 410 with a minimal relist, dropped watches and a restarted API
// server, bookmarks, half-open watches, failing requests, malformed objects, and `serve` itself.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { SyncClient, Update } from '../client/index.js';
import { prepare } from '../dedupe/prepare.js';
import { ViewFilter } from '../src/model/view-filter.js';
import { createDatastore } from '../cmd/datastores.js';
import { loadConfig, type Config } from '../src/config.js';
import { WATCHED_RESOURCES } from '../src/datastore/kubernetes/resources.js';
import { silentLogger } from '../src/logging.js';
import { encodeValue } from '../src/protocol/canonical.js';
import { unpackr } from '../src/protocol/codec.js';
import { assertClientMatches, expectedView } from './support/expected.js';
import { cleanupAfterFile, startServerOn, waitFor } from './support/harness.js';
import { startKubeApi, type KubeApiOptions, type KubeApiServer } from './support/kube-api.js';
import { cluster, k8sNode, kubeContent, load, NODES, pod, podIp, PODS } from './support/kube-cluster.js';
import { freePort, metricNamed } from './support/metrics.js';

const { clients, track } = cleanupAfterFile();
const SLOW = { timeout: 120_000 };

/** The Calico key an object of a collection converts to. */
const calicoKey = (collection: string, obj: object) => WATCHED_RESOURCES.find((r) => r.path === collection)!.convert(obj)!.key;

const expected = kubeContent;

function kubeServer(api: KubeApiServer, extra: Partial<Config> = {}) {
  const config: Config = {
    ...loadConfig({ env: {} }), datastoreType: 'kubernetes', kubeconfig: api.kubeconfigPath,
    kubernetesPageSize: 500, kubernetesWatchTimeoutSecs: 30, kubernetesWatchInactivitySecs: 5, ...extra,
  };
  return startServerOn(createDatastore(config, silentLogger), extra).then(track);
}

/** The store holds exactly the converted content of the API server, as served (kinds no view carries left out). */
function assertStoreMatches(ts: Awaited<ReturnType<typeof kubeServer>>, want: Map<string, unknown>): void {
  for (const [k, v] of want) {
    const p = prepare({ key: k, value: v, revision: '1' });
    if (!p.ok && !p.ignored && p.unserved) { assert.equal(ts.app.store.valueOf(k), undefined, `${k} is in no view, so not stored`); continue; }
    assert.ok(p.ok && ts.app.store.valueOf(k)?.equals(p.change.value!), `store value of ${k}`);
  }
  assert.equal(ts.app.store.checksum(new ViewFilter('felix', '')).count, expectedView(want, 'felix', '').size, 'felix view size');
}

/** Keys of the changes the store publishes from now on. */
function published(ts: Awaited<ReturnType<typeof kubeServer>>): { keys: string[]; stop(): void } {
  const keys: string[] = [];
  const stop = ts.app.store.subscribe({ onBatch: (b) => { for (const c of b.changes) keys.push((unpackr.unpack(c.item) as [string])[0]); }, onStatus: () => {} });
  return { keys, stop };
}

/**
 * Until the store holds everything the contract server has: the adapter's watermark (the lowest
 * over its collections) has reached the server's resourceVersion, and what it covers is published.
 * A quiet collection's watermark moves only with a list or a bookmark.
 */
const caughtUp = (ts: Awaited<ReturnType<typeof kubeServer>>, k: KubeApiServer, what: string) =>
  waitFor(() => ts.app.store.maxRevision >= k.resourceVersion, `${what}: the store at the API server's resourceVersion ${k.resourceVersion} (now ${ts.app.store.maxRevision})`, 20_000);

/**
 * A contract server with a cluster of `pods` pods and a calico-fanout on it, in sync with every
 * collection watched (a fault injected earlier would hit nothing), both closed afterwards.
 * `prepare` runs before calico-fanout starts.
 */
async function withCluster(
  pods: number, o: { api?: KubeApiOptions; config?: Partial<Config>; prepare?: (k: KubeApiServer) => void },
  fn: (k: KubeApiServer, ts: Awaited<ReturnType<typeof kubeServer>>) => Promise<void>,
): Promise<void> {
  const k = await startKubeApi({ historyLimit: 10_000, ...o.api });
  try {
    load(k, cluster(pods));
    o.prepare?.(k);
    const ts = await kubeServer(k, o.config);
    try {
      await watching(ts, k);
      await fn(k, ts);
    } finally {
      await ts.close();
    }
  } finally {
    await k.close();
  }
}

/** In sync, and every collection's watch open (a fault injected before would hit nothing). */
async function watching(ts: Awaited<ReturnType<typeof kubeServer>>, k: KubeApiServer): Promise<void> {
  await waitFor(() => ts.app.store.status === 'in-sync', 'in sync', 60_000);
  await waitFor(() => WATCHED_RESOURCES.every((r) => (k.stats.watches.get(r.path) ?? 0) >= 1), 'every collection watched');
}

describe('kubernetes datastore', () => {
  let api: KubeApiServer;
  before(async () => { api = await startKubeApi({ historyLimit: 100_000 }); });
  after(async () => { await api?.close(); });

  test('5,000 pods, listed in pages: every view of every kind is served as converted', SLOW, async () => {
    load(api, cluster(5000));
    const ts = await kubeServer(api);
    await waitFor(() => ts.app.store.status === 'in-sync', 'in sync', 60_000);
    const want = expected(api);
    assert.ok(want.size > 5000, `${want.size} resources`);
    assertStoreMatches(ts, want);
    assert.ok((api.stats.lists.get(PODS) ?? 0) >= 10, `pods listed in pages of 500 (${api.stats.lists.get(PODS)} requests)`);
    await waitFor(() => api.stats.watches.get(PODS) === 1, 'the pods watch');
    const views: [SyncClient, string, string][] = [
      [clients.make({ url: ts.url, syncerType: 'felix' }), 'felix', ''],
      [clients.make({ url: ts.url, syncerType: 'bgp' }), 'bgp', ''],
      [clients.make({ url: ts.url, syncerType: 'tunnel-ip-allocation', node: 'node-7' }), 'tunnel-ip-allocation', 'node-7'],
      [clients.make({ url: ts.url, syncerType: 'node-status', node: 'node-3' }), 'node-status', 'node-3'],
    ];
    for (const [c, syncer, node] of views) {
      await c.inSync();
      assertClientMatches(c, expectedView(want, syncer as never, node), syncer);
    }
    assert.equal(views[3]![0].size, 1, 'node-3 sees its own CalicoNodeStatus');
    assert.equal(api.stats.watches.get(PODS), 1, 'one watch for pods, whatever the views');
    await clients.stopAll();
    await ts.close();
  });

  test('410 Gone, in the stream or as the status: a relist publishes exactly the keys that changed', SLOW, async () => {
    for (const goneAs of ['event', 'http'] as const) {
      await withCluster(300, { api: { goneAs } }, async (k, ts) => {
        const gone = k.stats.gone;
        const seen = published(ts);
        // All in one tick: the adapter sees the drop only after the changes and the compaction.
        k.dropWatches();
        const changed = [pod('web-1', 'ns-1', 'node-1', podIp(1), { version: 'v2' }), pod('web-2', 'ns-2', 'node-2', podIp(2), { version: 'v2' }), pod('new-0', 'ns-0', 'node-0', '10.244.9.9')];
        for (const p of changed) k.apply(PODS, p);
        k.remove(PODS, 'ns-3', 'web-3');
        k.compact();
        // Every collection lists again after the 410, so the watermark reaches the compaction's
        // resourceVersion only once the whole relist is published: nothing more can come after.
        await caughtUp(ts, k, `the relist (${goneAs})`);
        seen.stop();
        const want = [...changed, pod('web-3', 'ns-3', 'node-3', podIp(3))].map((p) => calicoKey(PODS, p)).sort();
        assert.deepEqual([...seen.keys].sort(), want, `exactly the changed keys (${goneAs})`);
        assert.ok(k.stats.gone > gone, 'a 410 was served');
        assertStoreMatches(ts, expected(k));
        assert.equal(ts.app.store.status, 'in-sync', 'a relist is no resync');
      });
    }
  });

  test('dropped watches and a restarted API server: clients converge, no event seen twice or lost', SLOW, async () => {
    await withCluster(200, {}, async (k, ts) => {
      const heard = new Map<string, string[]>();
      const c = clients.make({ url: ts.url, syncerType: 'felix', onUpdates: (us: Update[]) => { for (const u of us) heard.set(u.key, [...(heard.get(u.key) ?? []), u.revision]); } });
      await c.inSync();
      heard.clear();
      const write = (round: number) => { for (let i = 0; i < 20; i++) k.apply(PODS, pod(`web-${i}`, `ns-${i % 5}`, `node-${i % 20}`, podIp(i), { round: String(round) })); };
      write(1);
      k.dropWatches();
      write(2);
      const last = calicoKey(PODS, pod('web-19', 'ns-4', 'node-19', podIp(19)));
      // The pods watch resumed after the drop (round 2 came through it) before the restart.
      await waitFor(() => c.get(last)?.value?.metadata.labels.round === '2', 'round 2 to reach the client', 20_000);
      await k.restart();
      write(3);
      // web-19 is the last write of round 3, and one watch carries pods in order: once it is in the
      // client, every pod event before it is too, replayed ones included.
      await waitFor(() => c.get(last)?.value?.metadata.labels.round === '3', 'round 3 to reach the client', 20_000);
      assertClientMatches(c, expectedView(expected(k), 'felix', ''), 'client after drops and a restart');
      for (const [key, revs] of heard) assert.equal(new Set(revs).size, revs.length, `${key} heard a revision twice: ${revs.join(', ')}`);
      assert.ok((k.stats.watches.get(PODS) ?? 0) >= 3, `the pods watch was resumed after each break (${k.stats.watches.get(PODS)} watches, ${k.stats.lists.get(PODS)} lists)`);
      await clients.stopAll();
    });
  });

  test('bookmarks move the resourceVersion on without publishing anything', SLOW, async () => {
    await withCluster(50, {}, async (k, ts) => {
      // Nodes change; pods do not: only a bookmark tells the pods watch how far the server is.
      const seen = published(ts);
      for (let i = 0; i < 5; i++) {
        const n = k8sNode(`node-${i}`, `192.168.0.${i + 10}`);
        n.metadata.labels = { ...n.metadata.labels, touched: 'yes' };
        k.apply(NODES, n);
      }
      const lastNode = calicoKey(NODES, k8sNode('node-4', '192.168.0.14'));
      await waitFor(() => seen.keys.includes(lastNode), 'the node changes published');
      seen.stop();
      const head = ts.app.store.head;
      assert.ok(ts.app.store.maxRevision < k.resourceVersion, 'the quiet collections are behind until the bookmark');
      k.bookmark();
      // The bookmark is what moves the quiet collections' watermarks to the server's revision.
      await caughtUp(ts, k, 'the bookmarks');
      assert.equal(ts.app.store.head, head, 'a bookmark publishes nothing');
      const podLists = k.stats.lists.get(PODS);
      k.compact();
      k.dropWatches();
      await waitFor(() => (k.stats.watches.get(PODS) ?? 0) >= 2, 'the pods watch to resume');
      // A pod written after the resume reaches the store through the resumed watch; had the
      // watch met a 410, it would have come through a relist, counted below.
      const late = pod('late-0', 'ns-0', 'node-0', '10.244.7.1');
      k.apply(PODS, late);
      await waitFor(() => ts.app.store.valueOf(calicoKey(PODS, late)) != null, 'a pod written after the resume');
      assert.equal(k.stats.lists.get(PODS), podLists, 'resumed from the bookmark: no 410, no relist');
      assert.equal(ts.app.store.head, head + 1, 'only the new pod published since the bookmark');
    });
  });

  test('a half-open watch (nothing, not even bookmarks) is restarted after the inactivity timeout', SLOW, async () => {
    await withCluster(20, { config: { kubernetesWatchInactivitySecs: 0.5 } }, async (k, ts) => {
      const watches = k.stats.watches.get(PODS) ?? 0;
      k.stall(true);
      k.apply(PODS, pod('late-1', 'ns-0', 'node-0', '10.244.8.1'));
      await waitFor(() => (k.stats.watches.get(PODS) ?? 0) > watches, 'a new watch after the silence', 10_000);
      k.stall(false);
      await waitFor(() => ts.app.store.valueOf(calicoKey(PODS, pod('late-1', 'ns-0', 'node-0', '10.244.8.1'))) !== undefined, 'the change held back by the silence');
    });
  });

  test('failing requests are retried with backoff; a malformed object is skipped and counted', SLOW, async () => {
    await withCluster(20, { prepare: (k) => k.failNext(PODS, 500, 3) }, async (k, ts) => {
      assert.equal(k.stats.lists.get(PODS), 4, 'three failed lists, then one that worked');
      assertStoreMatches(ts, expected(k));
      const bad = pod('broken-0', 'ns-0', 'node-0', '10.244.7.7') as any;
      bad.spec.containers = 'not a list';
      bad.status.podIPs = 42;
      k.apply(PODS, bad);
      k.apply(PODS, pod('after-broken', 'ns-0', 'node-0', '10.244.7.8'));
      const after = calicoKey(PODS, pod('after-broken', 'ns-0', 'node-0', '10.244.7.8'));
      await waitFor(() => ts.app.store.valueOf(after) !== undefined, 'the next object to arrive');
      assert.equal(await metricNamed(ts.app.metrics, 'calico_fanout_invalid_values_total', { kind: 'WorkloadEndpoint' }), 1, 'the bad pod, counted');
      assert.equal(ts.app.store.status, 'in-sync');
    });
  });

  test('a plain-http server in a kubeconfig without insecure-skip-tls-verify (as kubectl takes it) is served', SLOW, async () => {
    const plain = join(mkdtempSync(join(tmpdir(), 'kubeconfig-')), 'config');
    const config = JSON.parse(readFileSync(api.kubeconfigPath, 'utf8'));
    for (const c of config.clusters) delete c.cluster['insecure-skip-tls-verify'];
    writeFileSync(plain, JSON.stringify(config));
    const ts = await kubeServer(api, { kubeconfig: plain });
    await watching(ts, api);
    assertStoreMatches(ts, expected(api));
  });

  test('`calico-fanout serve --datastore kubernetes --kubeconfig <file>` serves the API server', SLOW, async () => {
    const want = expected(api);
    const [port, health, metrics] = [await freePort(), await freePort(), await freePort()];
    const child = spawn(process.execPath, ['bin/calico-fanout.js', 'serve', '--datastore', 'kubernetes', '--kubeconfig', api.kubeconfigPath,
      '--server-host', '127.0.0.1', '--server-port', String(port), '--health-host', '127.0.0.1', '--health-port', String(health),
      '--metrics-host', '127.0.0.1', '--metrics-port', String(metrics), '--log-level', 'WARNING'], { stdio: 'ignore' });
    try {
      const c = clients.make({ url: `ws://127.0.0.1:${port}`, syncerType: 'felix' });
      await c.inSync();
      assertClientMatches(c, expectedView(want, 'felix', ''), 'client of serve --datastore kubernetes');
      await clients.stopAll();
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
  });
});
