// The Kubernetes datastore against what a real kube-apiserver and Calico's KDD do where our
// contract server used to be kinder (support/kube-api.ts now follows them):
// - a collection whose CRD is not installed answers 404: Calico's watcher cache marks it in sync
//   and retries later (libcalico-go v3.32.1 lib/backend/watchersyncer/watchercache.go,
//   "Backing API not installed, marking as in-sync and retrying later");
// - Calico v3.32+ may serve its resources only as projectcalico.org/v3 CRDs, chosen through
//   /apis unless CALICO_API_GROUP says (lib/backend/k8s/discovery.go UsingV3CRDs); v3 CRs are
//   used as they are, with no UID translation (lib/backend/k8s/resources/customresource.go);
// - a watch from a resourceVersion the server does not have yet gets an ERROR Status 504
//   "Too large resource version" (k8s.io/apiserver pkg/storage/errors.go
//   NewTooLargeResourceVersionError; the cacher's blockTimeout 3 s), and Calico and client-go list
//   again (watchersyncer/reflector_ports.go isTooLargeResourceVersionError);
// - 429 carries Retry-After.
// Each in process (the adapter and the whole app) and with `calico-fanout serve` as a process.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { after, describe, test } from 'node:test';
import { prepare } from '../dedupe/prepare.js';
import { createDatastore } from '../cmd/datastores.js';
import { loadConfig, type Config } from '../src/config.js';
import { CRD_V1, V3, type CalicoApiGroup } from '../src/datastore/kubernetes/api-group.js';
import { watchedResources } from '../src/datastore/kubernetes/resources.js';
import type { KubernetesDatastore } from '../src/datastore/kubernetes.js';
import { silentLogger } from '../src/logging.js';
import { unpackr } from '../src/protocol/codec.js';
import { assertClientMatches, expectedView } from './support/expected.js';
import { cleanupAfterFile, startServerOn, waitFor } from './support/harness.js';
import { startKubeApi, type KubeApiOptions, type KubeApiServer } from './support/kube-api.js';
import { asV3Crds, cluster, load, pod, PODS, podIp } from './support/kube-cluster.js';
import { freePort, httpGet, metricNamed } from './support/metrics.js';

const { clients, track } = cleanupAfterFile();
const SLOW = { timeout: 60_000 };
const OPTIONAL = ['stagedkubernetesnetworkpolicies', 'bgpfilters', 'caliconodestatuses', 'ipreservations'];
const v1 = (plural: string) => `/apis/${CRD_V1}/${plural}`;
const v3 = (plural: string) => `/apis/${V3}/${plural}`;

const apis = new Set<KubeApiServer>();
after(async () => { await Promise.all([...apis].map((a) => a.close())); });
async function api(opts: KubeApiOptions = {}): Promise<KubeApiServer> {
  const a = await startKubeApi({ historyLimit: 10_000, tooLargeWaitMs: 200, ...opts });
  apis.add(a);
  return a;
}

/** Everything the API server holds, converted, reading Calico's resources from `group`. */
function content(k: KubeApiServer, group: CalicoApiGroup): Map<string, unknown> {
  const out = new Map<string, unknown>();
  for (const r of watchedResources(group)) {
    let objs: any[];
    try { objs = k.list(r.path); } catch { continue; }
    for (const o of objs) { const c = r.convert(o); if (c) out.set(c.key, c.value); }
  }
  return out;
}

function inProcess(k: KubeApiServer, extra: Partial<Config> = {}) {
  const config: Config = { ...loadConfig({ env: {} }), datastoreType: 'kubernetes', kubeconfig: k.kubeconfigPath, kubernetesWatchInactivitySecs: 5, ...extra };
  return startServerOn(createDatastore(config, silentLogger) as KubernetesDatastore, extra).then(track);
}

/** Keys of the changes the store publishes from now on. */
function published(ts: Awaited<ReturnType<typeof inProcess>>): { keys: string[]; stop(): void } {
  const keys: string[] = [];
  const stop = ts.app.store.subscribe({ onBatch: (b) => { for (const c of b.changes) keys.push((unpackr.unpack(c.item) as [string])[0]); }, onStatus: () => {} });
  return { keys, stop };
}

const bgpFilter = (name: string, apiVersion: string) => ({ apiVersion, kind: 'BGPFilter', metadata: { name }, spec: { exportV4: [{ action: 'Reject', matchOperator: 'In', cidr: '10.9.0.0/16' }] } });

// ---- 1. collections that are not there --------------------------------------------------------

describe('a collection whose CRD is not installed', () => {
  test('counts as empty and in sync; named in /readyz, a metric; picked up when its CRD appears', SLOW, async () => {
    const k = await api({ missing: OPTIONAL.map(v1) });
    load(k, Object.fromEntries(Object.entries(cluster(20)).filter(([p]) => !OPTIONAL.some((o) => p === v1(o)))));
    const ts = await inProcess(k, { kubernetesMissingPollSecs: 0.2 });
    await waitFor(() => ts.app.store.status === 'in-sync', 'in sync with four CRDs missing', 20_000);
    assert.deepEqual(ts.ds.missing, OPTIONAL.map(v1).sort());
    const ready = JSON.parse((await httpGet(ts.app.ports.health!, '/readyz')).body);
    assert.equal(ready.ready, true);
    assert.deepEqual(ready.missingCollections, OPTIONAL.map(v1).sort());
    for (const o of OPTIONAL) assert.equal(await metricNamed(ts.app.metrics, 'calico_fanout_datastore_missing_collections', { collection: v1(o) }), 1, o);
    assert.equal(await ts.ds.currentRevision(), k.resourceVersion, 'where the datastore stands, with collections missing');
    const c = clients.make({ url: ts.url, syncerType: 'felix' });
    await c.inSync();
    assertClientMatches(c, expectedView(content(k, CRD_V1), 'felix', ''), 'felix with CRDs missing');
    // Polled: the CRD appears, an object with it, and both are listed, published and watched.
    const polls = k.stats.lists.get(v1('bgpfilters')) ?? 0;
    await waitFor(() => (k.stats.lists.get(v1('bgpfilters')) ?? 0) > polls + 1, 'polled again');
    k.install(v1('bgpfilters'));
    k.create(v1('bgpfilters'), bgpFilter('reject-9', 'crd.projectcalico.org/v1'));
    const key = watchedResources(CRD_V1).find((r) => r.path === v1('bgpfilters'))!.convert(k.list(v1('bgpfilters'))[0])!.key;
    await waitFor(() => ts.app.store.valueOf(key) != null, 'the new CRD\'s object');
    await waitFor(() => (k.stats.watches.get(v1('bgpfilters')) ?? 0) >= 1, 'the new CRD watched');
    k.create(v1('bgpfilters'), bgpFilter('reject-10', 'crd.projectcalico.org/v1'));
    await waitFor(() => k.list(v1('bgpfilters')).every((o) => ts.app.store.valueOf(watchedResources(CRD_V1).find((r) => r.path === v1('bgpfilters'))!.convert(o)!.key) != null), 'a watched event');
    assert.deepEqual(ts.ds.missing, OPTIONAL.filter((o) => o !== 'bgpfilters').map(v1).sort());
    assert.equal(await metricNamed(ts.app.metrics, 'calico_fanout_datastore_missing_collections', { collection: v1('bgpfilters') }), 0, 'no longer missing');
  });

  test('a missing collection delivers only up to a resourceVersion read before its 404: its CRD may appear after', SLOW, async () => {
    const k = await api({ missing: [v1('bgpfilters')] });
    load(k, cluster(5));
    const progress: string[] = [];
    const config: Config = { ...loadConfig({ env: {} }), datastoreType: 'kubernetes', kubeconfig: k.kubeconfigPath, kubernetesMissingPollSecs: 3600 };
    const ds = createDatastore(config, silentLogger);
    await ds.start({ onUpdates: () => {}, onInvalid: () => {}, onStatus: () => {}, onProgress: (r) => progress.push(r) });
    try {
      await waitFor(() => progress.length > 0, 'a watermark');
      const proven = Number(progress.at(-1));
      // The CRD appears and gets an object; other collections move on and report it.
      k.install(v1('bgpfilters'));
      k.create(v1('bgpfilters'), bgpFilter('late', 'crd.projectcalico.org/v1'));
      const created = k.resourceVersion;
      for (let i = 0; i < 3; i++) k.apply(PODS, pod(`later-${i}`, 'ns-0', 'node-0', `10.244.9.${i + 1}`));
      k.bookmark();
      await waitFor(() => k.stats.bookmarks > 0, 'bookmarks sent');
      // Not polled yet (an hour): the watermark stays below the object it has not delivered.
      await new Promise<void>((r) => setImmediate(r));
      assert.ok(Number(progress.at(-1)) < created, `watermark ${progress.at(-1)} (was ${proven}) is below the undelivered object at ${created}`);
      // Asked to catch up, the missing collection lists at once and the watermark may pass it.
      ds.catchUpTo!(k.resourceVersion);
      await waitFor(() => Number(progress.at(-1)) >= created, 'the watermark past the new object once listed');
    } finally {
      await ds.stop();
    }
  });
});

// ---- 2. the Calico API group ------------------------------------------------------------------

describe('Calico\'s API group', () => {
  test('a cluster serving only projectcalico.org/v3 CRDs: discovered, read as v3 (own UIDs, boolean deleted)', SLOW, async () => {
    const k = await api({ calicoGroups: [V3] });
    load(k, asV3Crds(cluster(10)));
    k.create(v3('blockaffinities'), { apiVersion: V3, kind: 'BlockAffinity', metadata: { name: 'node-1-10-244-1-0-26' }, spec: { state: 'confirmed', node: 'node-1', cidr: '10.244.1.0/26', deleted: false } });
    const ts = await inProcess(k);
    await waitFor(() => ts.app.store.status === 'in-sync', 'in sync on v3 CRDs', 20_000);
    assert.equal(ts.ds.calicoApiGroup, V3);
    assert.deepEqual(ts.ds.missing, []);
    const want = content(k, V3);
    const pool = k.list(v3('ippools'))[0];
    const poolKey = watchedResources(V3).find((r) => r.path === v3('ippools'))!.convert(pool)!.key;
    assert.equal((want.get(poolKey) as any).metadata.uid, pool.metadata.uid, 'a v3 CR keeps its UID');
    const c = clients.make({ url: ts.url, syncerType: 'bgp' });
    await c.inSync();
    assertClientMatches(c, expectedView(want, 'bgp', ''), 'bgp on v3 CRDs');
    assert.ok([...c.entries()].some(([key, v]) => key.includes('/host/node-1/') && (v.value as any).deleted === false), 'the v3 affinity, deleted: false');
  });

  test('CALICO_API_GROUP forces the group; on a 404 the group is looked up again and collections move over, publishing only differences', SLOW, async () => {
    const k = await api({ calicoGroups: [CRD_V1, V3] });
    load(k, cluster(10));
    load(k, asV3Crds(cluster(10)));
    const forced = await inProcess(k, { calicoApiGroup: V3 });
    await waitFor(() => forced.app.store.status === 'in-sync', 'in sync, forced to v3');
    assert.equal(forced.ds.calicoApiGroup, V3, 'both groups served: v1 would be discovered, v3 is forced');
    await forced.close();

    const ts = await inProcess(k);
    await waitFor(() => ts.app.store.status === 'in-sync', 'in sync on v1');
    assert.equal(ts.ds.calicoApiGroup, CRD_V1, 'both served: crd.projectcalico.org/v1, as Calico');
    await waitFor(() => watchedResources(CRD_V1).every((r) => (k.stats.watches.get(r.path) ?? 0) >= 1), 'watching');
    const seen = published(ts);
    // An upgrade to v3 CRDs: the v1 ones go; one v3 object differs from its v1 twin.
    const gnp = k.list(v3('globalnetworkpolicies'))[0];
    k.update(v3('globalnetworkpolicies'), { ...gnp, spec: { ...gnp.spec, order: 200 } });
    k.setCalicoGroups([V3]);
    await waitFor(() => ts.ds.calicoApiGroup === V3, 'moved to v3');
    await waitFor(() => watchedResources(V3).every((r) => (k.stats.watches.get(r.path) ?? 0) >= 1), 'v3 collections watched');
    const want = content(k, V3);
    const c = clients.make({ url: ts.url, syncerType: 'felix' });
    await c.inSync();
    const matches = () => { try { assertClientMatches(c, expectedView(want, 'felix', ''), 'felix after the move'); return true; } catch { return false; } };
    await waitFor(matches, 'the client to hold the v3 resources');
    seen.stop();
    // Every v3 UID differs from its v1 twin's translated one: all values changed, no key deleted.
    const deleted = seen.keys.filter((key) => ts.app.store.valueOf(key) == null && prepare({ key, value: {}, revision: '1' }).ok);
    assert.deepEqual(deleted, [], 'no key went away on the move');
    assert.equal(ts.app.store.status, 'in-sync');
    assert.deepEqual(ts.ds.missing, []);
  });
});

// ---- 7. a resourceVersion the server does not have yet; 429 -------------------------------------

describe('a resourceVersion from the future (an etcd restore)', () => {
  test('504 Too large resource version: listed again, only the difference published', SLOW, async () => {
    const k = await api();
    load(k, cluster(50));
    const ts = await inProcess(k);
    await waitFor(() => ts.app.store.status === 'in-sync', 'in sync');
    await waitFor(() => (k.stats.watches.get(PODS) ?? 0) >= 1, 'watching');
    const backup = k.backup();
    const added = pod('new-0', 'ns-0', 'node-0', '10.244.9.9');
    const changed = pod('web-1', 'ns-1', 'node-1', podIp(1), { version: 'v2' });
    k.apply(PODS, added);
    k.apply(PODS, changed);
    const key = (p: object) => watchedResources(CRD_V1).find((r) => r.path === PODS)!.convert(p)!.key;
    await waitFor(() => ts.app.store.valueOf(key(added)) != null, 'the pod written after the backup');
    const seen = published(ts);
    k.restore(backup);
    await waitFor(() => ts.app.store.valueOf(key(added)) == null, 'the restored state (the new pod gone)', 20_000);
    await waitFor(() => seen.keys.length >= 2, 'both changes');
    seen.stop();
    assert.deepEqual([...seen.keys].sort(), [key(added), key(changed)].sort(), 'exactly the keys that differ');
    assert.ok(k.stats.tooLarge >= 1, 'a 504 was served');
    assert.equal(ts.app.store.status, 'in-sync');
  });

  test('a watch from the future that the server holds without a word (no 504): listed again after two silent watches', SLOW, async () => {
    // The server never answers such a watch in this test (an apiserver whose watch cache blocks
    // until it catches up); bookmarks are off, as they would be for a watch that never started.
    const k = await api({ tooLargeWaitMs: 3_600_000 });
    load(k, cluster(20));
    const ts = await inProcess(k, { kubernetesWatchInactivitySecs: 0.5 });
    await waitFor(() => ts.app.store.status === 'in-sync', 'in sync');
    const backup = k.backup();
    const added = pod('new-0', 'ns-0', 'node-0', '10.244.9.9');
    k.apply(PODS, added);
    const key = watchedResources(CRD_V1).find((r) => r.path === PODS)!.convert(added)!.key;
    await waitFor(() => ts.app.store.valueOf(key) != null, 'the pod written after the backup');
    k.restore(backup);
    await waitFor(() => ts.app.store.valueOf(key) == null, 'the restored state (the new pod gone)', 20_000);
    assert.equal(k.stats.tooLarge, 0, 'no 504 was ever sent');
  });

  test('429: the next request waits for Retry-After, not the backoff', SLOW, async () => {
    const k = await api();
    load(k, cluster(5));
    k.failNext(PODS, 429, 1, 2);
    const ts = await inProcess(k);
    await waitFor(() => ts.app.store.status === 'in-sync', 'in sync');
    const reqs = k.stats.requests.filter((r) => r.collection === PODS && !r.watch);
    assert.equal(reqs[0]!.status, 429);
    const gap = reqs[1]!.at - reqs[0]!.at;
    assert.ok(gap >= 1900, `retried after ${gap} ms (Retry-After: 2)`);
  });
});

// ---- the same, with `calico-fanout serve` as a process --------------------------------------------

describe('`calico-fanout serve --datastore kubernetes` as a process', () => {
  const children = new Set<ChildProcess>();
  after(() => { for (const c of children) c.kill('SIGKILL'); });

  async function serve(k: KubeApiServer, env: Record<string, string> = {}, kubeconfig = k.kubeconfigPath) {
    const [port, health, metrics] = [await freePort(), await freePort(), await freePort()];
    const clean: NodeJS.ProcessEnv = {};
    for (const [n, v] of Object.entries(process.env)) if (!n.startsWith('TYPHA_') && n !== 'CALICO_API_GROUP') clean[n] = v;
    const child = spawn(process.execPath, ['bin/calico-fanout.js', 'serve', '--datastore', 'kubernetes', '--kubeconfig', kubeconfig,
      '--server-host', '127.0.0.1', '--server-port', String(port), '--health-host', '127.0.0.1', '--health-port', String(health),
      '--metrics-host', '127.0.0.1', '--metrics-port', String(metrics), '--log-level', 'INFO'], { env: { ...clean, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let log = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => { log += d; });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => { log += d; });
    const exited = new Promise((r) => child.once('exit', r));
    let ready: any;
    await waitForAsync(async () => {
      try { ready = JSON.parse((await httpGet(health, '/readyz')).body); return ready.ready === true; } catch { return false; }
    }, 'serve ready', 30_000, () => log);
    return {
      url: `ws://127.0.0.1:${port}`, ready, log: () => log,
      readyz: async () => JSON.parse((await httpGet(health, '/readyz')).body),
      metrics: async () => (await httpGet(metrics, '/metrics')).body,
      async stop() { child.kill('SIGTERM'); await exited; children.delete(child); },
    };
  }

  test('a cluster with four optional CRDs missing, FELIX_INTERFACEPREFIX=eni, a rotating token and a watch answered "too large resource version": ready, default-allow and eni interfaces served, new pods followed', SLOW, async () => {
    const k = await api({ missing: OPTIONAL.map(v1), token: 'token-1' });
    load(k, Object.fromEntries(Object.entries(cluster(20)).filter(([p]) => !OPTIONAL.some((o) => p === v1(o)))));
    const dir = mkdtempSync(join(tmpdir(), 'kube-e2e-'));
    writeFileSync(join(dir, 'token'), 'token-1');
    writeFileSync(join(dir, 'kubeconfig'), JSON.stringify({
      apiVersion: 'v1', kind: 'Config', 'current-context': 'c',
      clusters: [{ name: 'c', cluster: { server: k.url, 'insecure-skip-tls-verify': true } }],
      users: [{ name: 'u', user: { tokenFile: 'token' } }], contexts: [{ name: 'c', context: { cluster: 'c', user: 'u' } }],
    }));
    const s = await serve(k, { FELIX_INTERFACEPREFIX: 'eni' }, join(dir, 'kubeconfig'));
    try {
      assert.deepEqual([...s.ready.missingCollections].sort(), OPTIONAL.map(v1).sort(), '/readyz names the missing collections');
      const c = clients.make({ url: s.url, syncerType: 'felix' });
      await c.inSync();
      assert.ok(c.get('/calico/resources/v3/projectcalico.org/profiles/projectcalico-default-allow'), 'the default-allow profile');
      const weps = [...c.entries()].filter(([key]) => key.includes('/workloadendpoints/'));
      assert.ok(weps.length > 0 && weps.every(([, v]) => /^eni[0-9a-f]{11}$/.test(v.value?.spec.interfaceName)), 'eni interface names');

      // The token rotates; then the API server is restored from a backup taken before a pod was
      // added, so the server's watches are ahead of it (504); then a new pod appears.
      writeFileSync(join(dir, 'token'), 'token-2');
      k.rotateToken('token-2');
      const backup = k.backup();
      const gone = pod('gone-0', 'ns-0', 'node-0', '10.244.9.8');
      k.apply(PODS, gone);
      const key = (p: object) => watchedResources(CRD_V1, { interfacePrefix: 'eni' }).find((r) => r.path === PODS)!.convert(p)!.key;
      await waitFor(() => c.get(key(gone)) !== undefined, 'a pod added after the rotation', 20_000);
      k.restore(backup);
      await waitFor(() => c.get(key(gone)) === undefined, 'the restored state', 20_000);
      const fresh = pod('new-0', 'ns-1', 'node-1', '10.244.9.9');
      k.apply(PODS, fresh);
      await waitFor(() => c.get(key(fresh))?.value?.spec.interfaceName?.startsWith('eni') === true, 'a new pod followed', 20_000);
      assert.ok(k.stats.tooLarge >= 1, 'a watch was answered 504');
      assert.ok(k.unauthorized >= 1, 'the old token was refused');
      assert.equal((await s.readyz()).ready, true);
      await clients.stopAll();
    } finally {
      await s.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('point 1: four optional CRDs missing: ready, named in /readyz, the metric and the log; a CRD that appears is served', SLOW, async () => {
    const k = await api({ missing: OPTIONAL.map(v1) });
    load(k, Object.fromEntries(Object.entries(cluster(20)).filter(([p]) => !OPTIONAL.some((o) => p === v1(o)))));
    const s = await serve(k, { TYPHA_KUBERNETESMISSINGPOLLSECS: '0.3' });
    try {
      assert.deepEqual(s.ready.missingCollections, OPTIONAL.map(v1).sort());
      const metrics = await s.metrics();
      for (const o of OPTIONAL) assert.match(metrics, new RegExp(`calico_fanout_datastore_missing_collections\\{collection="${v1(o).replace(/\./g, '\\.')}"\\} 1`));
      assert.match(s.log(), /bgpfilters is not there \(404\)/);
      const c = clients.make({ url: s.url, syncerType: 'bgp' });
      await c.inSync();
      k.install(v1('bgpfilters'));
      k.create(v1('bgpfilters'), bgpFilter('reject-9', 'crd.projectcalico.org/v1'));
      await waitFor(() => [...c.entries()].some(([key]) => key.endsWith('/bgpfilters/reject-9')), 'the new CRD\'s object at the client', 20_000);
      assert.ok(!(await s.readyz()).missingCollections.includes(v1('bgpfilters')));
      await clients.stopAll();
    } finally { await s.stop(); }
  });

  test('point 2: a cluster with only projectcalico.org/v3 CRDs is served; CALICO_API_GROUP is honoured', SLOW, async () => {
    const k = await api({ calicoGroups: [V3] });
    load(k, asV3Crds(cluster(10)));
    const s = await serve(k);
    try {
      assert.equal(s.ready.missingCollections, undefined, 'nothing missing: the v3 group was found');
      const c = clients.make({ url: s.url, syncerType: 'felix' });
      await c.inSync();
      assertClientMatches(c, expectedView(content(k, V3), 'felix', ''), 'felix of serve on v3 CRDs');
      await clients.stopAll();
    } finally { await s.stop(); }
    // Forced to v1 on a v3-only cluster: Calico's collections are all missing, and still ready.
    const forced = await serve(k, { CALICO_API_GROUP: CRD_V1 });
    try {
      assert.ok(forced.ready.missingCollections.includes(v1('ippools')), 'forced to crd.projectcalico.org/v1');
    } finally { await forced.stop(); }
  });

  test('point 7: after an etcd restore (504 Too large resource version) the served state is the restored one', SLOW, async () => {
    const k = await api();
    load(k, cluster(20));
    const s = await serve(k);
    try {
      const c = clients.make({ url: s.url, syncerType: 'felix' });
      await c.inSync();
      const backup = k.backup();
      k.apply(PODS, pod('new-0', 'ns-0', 'node-0', '10.244.9.9'));
      const key = watchedResources(CRD_V1).find((r) => r.path === PODS)!.convert(pod('new-0', 'ns-0', 'node-0', '10.244.9.9'))!.key;
      await waitFor(() => c.get(key) !== undefined, 'the pod at the client');
      k.restore(backup);
      await waitFor(() => c.get(key) === undefined, 'the restored state at the client', 20_000);
      assert.ok(k.stats.tooLarge >= 1, 'the server answered 504');
      assertClientMatches(c, expectedView(content(k, CRD_V1), 'felix', ''), 'felix after the restore');
      await clients.stopAll();
    } finally { await s.stop(); }
  });
});

async function waitForAsync(cond: () => Promise<boolean>, what: string, timeoutMs: number, detail: () => string = () => ''): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}\n${detail().slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
