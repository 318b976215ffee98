// Calico's own stored data through a real etcd: test/fixtures/calico/etcd-stored.json (each entry
// names its source) written after the servers start (watch path) and listed by fresh servers (list
// path). What each view must hold is spelled out here from Calico's sources, not derived from the
// code under test: the built-in default-allow profile (libcalico-go lib/resources/static.go),
// policy names (lib/backend/model/keys.go determinePolicyName), empty-valued affinities
// (lib/backend/model/block_affinity.go), keys no syncer reads, and USE_POD_CIDR
// (syncersv1/felixsyncer/felixsyncerv1.go, syncersv1/bgpsyncer/bgpsyncer.go).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import type { SyncClient, SyncerType } from '../client/index.js';
import { ViewFilter } from '../src/model/view-filter.js';
import { createDatastore } from '../cmd/datastores.js';
import { loadConfig, type Config } from '../src/config.js';
import { silentLogger } from '../src/logging.js';
import { etcdContent, putMany, startEtcd, type EtcdServer } from './support/etcd.js';
import { cleanupAfterFile, startServerOn, waitFor } from './support/harness.js';
import { metricNamed } from './support/metrics.js';

const { clients, track } = cleanupAfterFile();
const SLOW = { timeout: 60_000 };
const ROOT = new URL('..', import.meta.url).pathname;

interface Entry { key: string; value: string; source: string }
const FIXTURE = JSON.parse(readFileSync(new URL('./fixtures/calico/etcd-stored.json', import.meta.url), 'utf8')) as { entries: Entry[] };

const R = '/calico/resources/v3/projectcalico.org/';
const DEFAULT_ALLOW = `${R}profiles/projectcalico-default-allow`;
const BLOCK = '/calico/ipam/v2/assignment/ipv4/block/192.168.221.64-26';
const EMPTY_AFFINITY = '/calico/ipam/v2/host/kube-node-2/ipv4/block/192.168.1.0-26';

const FELIX_KEYS = [
  `${R}networkpolicies/production/default.allow-tcp-6379`,
  `${R}globalnetworkpolicies/allow-tcp-6379`,
  `${R}globalnetworkpolicies/default.foo-bar`,
  `${R}globalnetworkpolicies/security.allow-dns`,
  `${R}tiers/security`,
  `${R}hostendpoints/kube-master-auto-hep`,
  BLOCK,
  DEFAULT_ALLOW,
].sort();
const BGP_KEYS = [
  '/calico/ipam/v2/host/kube-master/ipv4/block/192.168.221.192-26',
  '/calico/ipam/v2/host/kube-master/ipv4/block/192.168.221.0-26',
  '/calico/ipam/v2/host/kube-master/ipv4/block/192.168.221.64-26',
  '/calico/ipam/v2/host/kube-node-2/ipv6/block/fd00:10:244::c0-122',
  EMPTY_AFFINITY,
].sort();
/** Keys Calico writes that no syncer reads, by kind. */
const UNSERVED = {
  BlockAffinity: 2, IPAMConfig: 2, IPAMHandle: 1, KubeControllersConfiguration: 1,
  ActiveStatusReport: 1, LastStatusReport: 1, WorkloadEndpointStatus: 1, HostEndpointStatus: 1,
};

let etcd: EtcdServer;
before(async () => { etcd = await startEtcd({ progressNotifyMs: 200 }); });
after(async () => { await etcd?.stop(); });

async function serve(extra: Partial<Config> = {}) {
  const cfg: Partial<Config> = { datastoreType: 'etcdv3', etcdEndpoints: [etcd.endpoint], etcdProgressIntervalSecs: 0.2, etcdWatchTimeoutSecs: 2, ...extra };
  const ts = track(await startServerOn(createDatastore({ ...loadConfig({ env: {} }), ...cfg }, silentLogger), cfg));
  await waitFor(() => ts.app.store.status === 'in-sync', 'the server to reach in-sync');
  return ts;
}
type Served = Awaited<ReturnType<typeof serve>>;

/** A client that resolves `until(cond)` on the update that makes cond true: no polling. */
function watcher(ts: Served, syncerType: SyncerType) {
  const waiting = new Set<{ cond: () => boolean; resolve: () => void }>();
  const c: SyncClient = clients.make({
    url: ts.url, syncerType,
    onUpdates: () => { for (const w of waiting) if (w.cond()) { waiting.delete(w); w.resolve(); } },
  });
  const until = (cond: () => boolean) => new Promise<void>((resolve) => { if (cond()) resolve(); else waiting.add({ cond, resolve }); });
  return { c, until };
}

const keysOf = (c: SyncClient) => [...c.entries()].map(([k]) => k).sort();
const hasAll = (c: SyncClient, keys: string[]) => keys.every((k) => c.get(k));
const meta = (c: SyncClient, key: string) => (c.get(key)?.value as { metadata: Record<string, unknown> }).metadata;

async function clear(): Promise<void> { await etcd.client.delete().prefix('/'); }
/** All entries in one transaction: one etcd revision, so one watch response. */
const writeFixture = () => putMany(etcd.client, FIXTURE.entries.map(({ key, value }) => ({ key, value })));

/** The felix and bgp views of a server without USE_POD_CIDR, as Calico serves them. */
function assertServedAsCalico(felix: SyncClient, bgp: SyncClient, label: string): void {
  assert.deepEqual(keysOf(felix), FELIX_KEYS, `${label}: felix keys`);
  assert.deepEqual(keysOf(bgp), BGP_KEYS, `${label}: bgp keys`);
  // lib/resources/static.go DefaultAllowProfile, at its fixed revision "1".
  const allow = felix.get(DEFAULT_ALLOW)!;
  assert.equal(allow.revision, '1', `${label}: default-allow revision`);
  assert.deepEqual(allow.value, {
    apiVersion: 'projectcalico.org/v3', kind: 'Profile',
    metadata: { name: 'projectcalico-default-allow', resourceVersion: '1' },
    spec: { ingress: [{ action: 'Allow' }], egress: [{ action: 'Allow' }] },
  }, `${label}: default-allow value`);
  // determinePolicyName: default-tier names lose "default." unless the annotation names them; the annotation goes.
  assert.equal(meta(felix, FELIX_KEYS.find((k) => k.endsWith('/default.allow-tcp-6379'))!).name, 'allow-tcp-6379', `${label}: v3.25-v3.29 default-tier name`);
  const gnp = meta(felix, `${R}globalnetworkpolicies/allow-tcp-6379`);
  assert.equal(gnp.name, 'allow-tcp-6379');
  assert.equal(gnp.annotations, undefined, `${label}: the internal annotation is dropped (and the emptied map with it)`);
  const fooBar = meta(felix, `${R}globalnetworkpolicies/default.foo-bar`);
  assert.deepEqual({ name: fooBar.name, annotations: fooBar.annotations }, { name: 'default.foo-bar', annotations: { team: 'net' } }, `${label}: the annotation's name wins, other annotations stay`);
  assert.equal(meta(felix, `${R}globalnetworkpolicies/security.allow-dns`).name, 'security.allow-dns', `${label}: tiered names keep their prefix`);
  // block_affinity.go: an empty value reads as {}.
  assert.deepEqual(bgp.get(EMPTY_AFFINITY)?.value, {}, `${label}: empty-valued affinity`);
}

async function assertCounters(ts: Served, label: string, unserved: Record<string, number>): Promise<void> {
  const m = ts.app.metrics;
  assert.equal(await metricNamed(m, 'calico_fanout_ignored_keys_total'), 0, `${label}: nothing outside Calico's layout`);
  assert.equal(await metricNamed(m, 'calico_fanout_invalid_values_total'), 0, `${label}: nothing invalid`);
  for (const [kind, n] of Object.entries(unserved)) {
    assert.equal(await metricNamed(m, 'calico_fanout_unserved_updates_total', { kind }), n, `${label}: unserved ${kind}`);
  }
}

const POD_CIDR_UNSERVED = { ...UNSERVED, IPAMBlock: 1, BlockAffinity: UNSERVED.BlockAffinity + BGP_KEYS.length };

test('watch path: Calico\'s stored data written after the servers start is served as Calico serves it', SLOW, async () => {
  await clear();
  const ts = await serve();
  const podCidr = await serve({ usePodCIDR: true });
  const felix = watcher(ts, 'felix');
  const bgp = watcher(ts, 'bgp');
  const pcFelix = watcher(podCidr, 'felix');
  const pcBgp = watcher(podCidr, 'bgp');
  await Promise.all([felix.c, bgp.c, pcFelix.c, pcBgp.c].map((c) => c.inSync()));
  // Before any data: the built-in profile is already there, and nothing else.
  assert.deepEqual(keysOf(felix.c), [DEFAULT_ALLOW]);

  await writeFixture();
  await felix.until(() => hasAll(felix.c, FELIX_KEYS));
  await bgp.until(() => hasAll(bgp.c, BGP_KEYS));
  assertServedAsCalico(felix.c, bgp.c, 'watch');
  await assertCounters(ts, 'watch', UNSERVED);

  // USE_POD_CIDR: the same data, minus every IPAM block and affinity. Its felix client having the
  // rest means the one watch response holding all the data has passed.
  const pcFelixKeys = FELIX_KEYS.filter((k) => k !== BLOCK);
  await pcFelix.until(() => hasAll(pcFelix.c, pcFelixKeys));
  assert.deepEqual(keysOf(pcFelix.c), pcFelixKeys, 'USE_POD_CIDR felix: no IPAM block');
  assert.deepEqual(keysOf(pcBgp.c), [], 'USE_POD_CIDR bgp: no block affinities');
  await assertCounters(podCidr, 'watch, USE_POD_CIDR', POD_CIDR_UNSERVED);
});

test('list path: fresh servers list Calico\'s stored data and serve it as Calico serves it, replicas alike', SLOW, async () => {
  await clear();
  await writeFixture();
  const [a, b, podCidr] = [await serve(), await serve(), await serve({ usePodCIDR: true })];
  const felix = watcher(a, 'felix');
  const bgp = watcher(a, 'bgp');
  const pcFelix = watcher(podCidr, 'felix');
  const pcBgp = watcher(podCidr, 'bgp');
  await Promise.all([felix.c, bgp.c, pcFelix.c, pcBgp.c].map((c) => c.inSync()));
  assertServedAsCalico(felix.c, bgp.c, 'list');
  await assertCounters(a, 'list', UNSERVED);
  assert.deepEqual(keysOf(pcFelix.c), FELIX_KEYS.filter((k) => k !== BLOCK), 'USE_POD_CIDR felix: no IPAM block');
  assert.deepEqual(keysOf(pcBgp.c), [], 'USE_POD_CIDR bgp: no block affinities');
  await assertCounters(podCidr, 'list, USE_POD_CIDR', POD_CIDR_UNSERVED);

  // Two replicas of the same data hold the same view, the built-in profile included.
  for (const syncer of ['felix', 'bgp'] as const) {
    const [x, y] = [a, b].map((s) => s.app.store.checksum(new ViewFilter(syncer, '')));
    assert.deepEqual({ value: x!.value, count: x!.count }, { value: y!.value, count: y!.count }, `${syncer} checksum on both replicas`);
  }
  assert.equal(a.app.store.checksum(new ViewFilter('felix', '')).count, FELIX_KEYS.length);
});

function runCli(args: string[]): Promise<{ code: number | null; out: string }> {
  const child = spawn(process.execPath, ['bin/calico-fanout.js', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
  child.stderr.setEncoding('utf8').on('data', (d: string) => { out += d; });
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, out })));
}

test('load-etcd writes what libcalico-go writes, and a server reads all of it without a complaint', SLOW, async () => {
  await clear();
  const r = await runCli(['load-etcd', '--etcd-endpoints', etcd.endpoint]);
  assert.equal(r.code, 0, r.out);
  const content = await etcdContent(etcd.client);
  const affinities = [...content].filter(([k]) => k.startsWith('/calico/ipam/v2/host/'));
  assert.ok(affinities.length >= 2, 'the demo cluster has affinities');
  for (const [k, v] of affinities) {
    // model/block_affinity.go BlockAffinity: {state, deleted bool}.
    assert.deepEqual(Object.keys(v as object).sort(), ['deleted', 'state'], k);
    assert.equal(typeof (v as { deleted: unknown }).deleted, 'boolean', `${k}: deleted is a boolean`);
  }
  const policies = new Set(['NetworkPolicy', 'GlobalNetworkPolicy', 'StagedNetworkPolicy', 'StagedGlobalNetworkPolicy']);
  let nPolicies = 0;
  for (const [k, v] of content) {
    if (!k.startsWith(R)) continue;
    const m = (v as { kind: string; metadata: Record<string, any> }).metadata;
    // clientv3/resources.go Create: a random UUID and metav1.Now() (RFC 3339, whole seconds, UTC).
    assert.match(String(m.uid), /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, `${k}: uid`);
    assert.match(String(m.creationTimestamp), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, `${k}: creationTimestamp`);
    if (policies.has((v as { kind: string }).kind)) {
      nPolicies++;
      // etcdv3.go storePolicyName.
      assert.equal(m.annotations?.['projectcalico.org/metadata'], JSON.stringify({ name: m.name }), `${k}: policy-name annotation`);
    }
  }
  assert.ok(nPolicies > 0, 'the demo cluster has policies');

  const ts = await serve();
  const bgp = watcher(ts, 'bgp');
  const felix = watcher(ts, 'felix');
  await Promise.all([bgp.c.inSync(), felix.c.inSync()]);
  assert.deepEqual(keysOf(bgp.c).filter((k) => k.startsWith('/calico/ipam/')), affinities.map(([k]) => k).sort(), 'every affinity reaches the bgp view');
  assert.ok(felix.c.get(DEFAULT_ALLOW), 'the built-in profile is served');
  for (const [k] of felix.c.entries()) {
    const a = meta(felix.c, k)?.annotations as Record<string, string> | undefined;
    assert.equal(a?.['projectcalico.org/metadata'], undefined, `${k}: no internal annotation served`);
  }
  assert.equal(await metricNamed(ts.app.metrics, 'calico_fanout_ignored_keys_total'), 0, 'nothing outside Calico\'s layout');
  assert.equal(await metricNamed(ts.app.metrics, 'calico_fanout_invalid_values_total'), 0, 'nothing invalid');
});
