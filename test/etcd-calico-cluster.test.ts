// A cluster's worth of Calico v3.32 etcd content (test/fixtures/calico/etcd-stored.json plus
// cluster-v3.32.json: every v3 kind the etcdv3 backend stores, IPAM of both families, affinities
// old and new, policies stored by older releases) through a real etcd, written after the server
// starts (watch path) and listed by a fresh server (list path). Every view must hold exactly what
// Typha's syncer of that name carries for this data, in our v3 form. The key sets below are
// written out by hand from libcalico-go v3.32.1 (projectcalico/calico tag v3.32.1), not computed by
// src/model/views.ts:
// - felix: lib/backend/syncersv1/felixsyncer/felixsyncerv1.go New(isLeader=true, etcd datastore, no
//   K8sUsePodCIDR), as typha/pkg/daemon/daemon.go builds it. It lists ClusterInformation,
//   FelixConfiguration, GlobalNetworkPolicy, StagedGlobalNetworkPolicy, GlobalNetworkSet, IPPool,
//   Node, Profile, WorkloadEndpoint, NetworkPolicy, StagedNetworkPolicy,
//   StagedKubernetesNetworkPolicy, NetworkSet, Tier, HostEndpoint, BGPConfiguration, BGPPeer,
//   LiveMigration and IPAM blocks (the Kubernetes* kinds only with the kubernetes datastore). Not
//   IPReservation, BGPFilter, KubeControllersConfiguration, CalicoNodeStatus, IPAMConfiguration,
//   affinities, handles or IPAM config. Its update processors drop a WorkloadEndpoint without
//   ipNetworks (updateprocessors/workloadendpointprocessor.go) and staged policies with stagedAction
//   Delete (updateprocessors/staged*policyprocessor.go). The etcdv3 backend adds the
//   projectcalico-default-allow profile (lib/backend/etcdv3/etcdv3.go, lib/resources/static.go).
// - bgp: syncersv1/bgpsyncer/bgpsyncer.go New(node ""): IPPool, BGPConfiguration, Node, BGPPeer,
//   BGPFilter, and BlockAffinityListOptions{Host: ""} (host affinities of every node, not virtual/).
// - tunnel-ip-allocation: syncersv1/tunnelipsyncer/tunnelipsyncer.go New(node ""): IPPool, Node.
// - node-status: syncersv1/nodestatussyncer/nodestatussyncer.go: CalicoNodeStatus.
// Typha builds every syncer for node "" and the agent keeps its own Node (calico-node allocateip)
// or its own CalicoNodeStatus (the status reporter, by spec.node); our node-scoped views do that
// filtering on the server, so a client of node N expects Typha's set minus other nodes' copies.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import type { SyncClient, SyncerType } from '../client/index.js';
import { createDatastore } from '../cmd/datastores.js';
import { loadConfig, type Config } from '../src/config.js';
import { silentLogger } from '../src/logging.js';
import { putMany, startEtcd, type EtcdServer } from './support/etcd.js';
import { cleanupAfterFile, startServerOn } from './support/harness.js';
import { metricNamed } from './support/metrics.js';

const { clients, track } = cleanupAfterFile();
const SLOW = { timeout: 60_000 };

interface Entry { key: string; value: string; source: string }
const load = (f: string) => (JSON.parse(readFileSync(new URL(`./fixtures/calico/${f}`, import.meta.url), 'utf8')) as { entries: Entry[] }).entries;
const ENTRIES = [...load('etcd-stored.json'), ...load('cluster-v3.32.json')];
const STORED = new Map(ENTRIES.map((e) => [e.key, e.value]));

const R = '/calico/resources/v3/projectcalico.org/';
const I = '/calico/ipam/v2/';
const DEFAULT_ALLOW = `${R}profiles/projectcalico-default-allow`;
const PENDING_WEP = `${R}workloadendpoints/default/kube--node--2-k8s-pending-eth0`;
const STAGED_DELETE = `${R}stagednetworkpolicies/production/default.deny-legacy`;

const POOLS = ['ippools/default-ipv4-ippool', 'ippools/default-ipv6-ippool', 'ippools/my.ippool-1'];
const NODES = ['nodes/kube-master', 'nodes/kube-node-2'];

/** felixsyncerv1.go, for this data. */
const FELIX = [
  ...['clusterinformations/default', 'felixconfigurations/default', 'felixconfigurations/node.kube-master',
    'globalnetworkpolicies/allow-tcp-6379', 'globalnetworkpolicies/default.foo-bar', 'globalnetworkpolicies/security.allow-dns', 'globalnetworkpolicies/kube-admin.allow-dns',
    'stagedglobalnetworkpolicies/default.staged-deny-all',
    'globalnetworksets/a-name-for-the-set',
    ...POOLS, ...NODES,
    'profiles/dev-apps', 'profiles/kns.default', 'profiles/ksa.default.default', 'profiles/projectcalico-default-allow',
    'workloadendpoints/default/node1-k8s-my--nginx--b1337a-eth0', 'workloadendpoints/default/kube--master-k8s-nginx-eth0',
    'networkpolicies/production/default.allow-tcp-6379', 'networkpolicies/default/knp.default.allow-frontend',
    'stagednetworkpolicies/production/allow-tcp-6379-staged',
    'stagedkubernetesnetworkpolicies/default/test-network-policy',
    'networksets/staging/external-database',
    'tiers/security', 'tiers/default', 'tiers/kube-admin', 'tiers/kube-baseline',
    'hostendpoints/kube-master-auto-hep', 'hostendpoints/some.name',
    'bgpconfigurations/default', 'bgpconfigurations/node.kube-node-2',
    'bgppeers/some.name',
    'livemigrations/default/vm-1-migration',
  ].map((p) => R + p),
  `${I}assignment/ipv4/block/192.168.221.64-26`,
  `${I}assignment/ipv6/block/fd00:10:244::c0-122`,
].sort();

/** bgpsyncer.go, for this data. */
const BGP = [
  ...[...POOLS, ...NODES, 'bgpconfigurations/default', 'bgpconfigurations/node.kube-node-2', 'bgppeers/some.name', 'bgpfilters/my-filter'].map((p) => R + p),
  `${I}host/kube-master/ipv4/block/192.168.221.192-26`,
  `${I}host/kube-master/ipv4/block/192.168.221.0-26`,
  `${I}host/kube-master/ipv4/block/192.168.221.64-26`,
  `${I}host/kube-node-2/ipv4/block/192.168.1.0-26`,
  `${I}host/kube-node-2/ipv4/block/192.168.1.64-26`,
  `${I}host/kube-node-2/ipv6/block/fd00:10:244::c0-122`,
].sort();

/** tunnelipsyncer.go carries every pool and every Node; a client keeps its own Node. */
const TUNNEL_IP = (node: string) => [...POOLS, `nodes/${node}`].map((p) => R + p).sort();

/** nodestatussyncer.go carries every CalicoNodeStatus; a client keeps those whose spec.node is its own. */
const NODE_STATUS: Record<string, string[]> = {
  'kube-master': [`${R}caliconodestatuses/kube-master-status`],
  'my-kadm-node-0': [`${R}caliconodestatuses/my-caliconodestatus-1`],
  'kube-node-2': [],
};

/** Stored keys of carried kinds that must be served by no view. */
const NEVER_SERVED = [PENDING_WEP, STAGED_DELETE];

/**
 * Policies as Calico serves them (lib/backend/model/keys.go determinePolicyName): the name the
 * projectcalico.org/metadata annotation records, else the stored name minus a default-tier
 * "default." prefix; the annotation itself is dropped.
 */
const SERVED_POLICY_NAMES: Record<string, string> = {
  [`${R}networkpolicies/production/default.allow-tcp-6379`]: 'allow-tcp-6379',
  [`${R}networkpolicies/default/knp.default.allow-frontend`]: 'knp.default.allow-frontend',
  [`${R}globalnetworkpolicies/allow-tcp-6379`]: 'allow-tcp-6379',
  [`${R}globalnetworkpolicies/default.foo-bar`]: 'default.foo-bar',
  [`${R}globalnetworkpolicies/security.allow-dns`]: 'security.allow-dns',
  [`${R}globalnetworkpolicies/kube-admin.allow-dns`]: 'kube-admin.allow-dns',
  [`${R}stagednetworkpolicies/production/allow-tcp-6379-staged`]: 'allow-tcp-6379-staged',
  [`${R}stagedglobalnetworkpolicies/default.staged-deny-all`]: 'staged-deny-all',
};

/** lib/resources/static.go DefaultAllowProfile, at its fixed revision "1". */
const DEFAULT_ALLOW_VALUE = {
  apiVersion: 'projectcalico.org/v3', kind: 'Profile',
  metadata: { name: 'projectcalico-default-allow', resourceVersion: '1' },
  spec: { ingress: [{ action: 'Allow' }], egress: [{ action: 'Allow' }] },
};

/** Keys Calico writes that no syncer reads, by kind (unserved_updates_total). */
const UNSERVED = {
  IPReservation: 1, IPAMConfiguration: 1, KubeControllersConfiguration: 1,
  IPAMHandle: 2, IPAMConfig: 2, BlockAffinity: 2,
  ActiveStatusReport: 1, LastStatusReport: 1, WorkloadEndpointStatus: 1, HostEndpointStatus: 1,
};

/** The value a client must hold for a key: the stored JSON with Calico's read-side transforms. */
function expectedValue(key: string): unknown {
  if (key === DEFAULT_ALLOW) return DEFAULT_ALLOW_VALUE;
  const raw = STORED.get(key);
  assert.ok(raw !== undefined, `${key} is in the fixtures`);
  // lib/backend/model/block_affinity.go: an empty value reads as {}.
  if (raw === '') return {};
  const v = JSON.parse(raw) as { metadata?: Record<string, unknown> };
  const name = SERVED_POLICY_NAMES[key];
  if (name === undefined || !v.metadata) return v;
  const { ['projectcalico.org/metadata']: _internal, ...rest } = (v.metadata.annotations ?? {}) as Record<string, string>;
  const { annotations: _a, ...meta } = v.metadata;
  return { ...v, metadata: { ...meta, name, ...(Object.keys(rest).length ? { annotations: rest } : {}) } };
}

let etcd: EtcdServer;
before(async () => { etcd = await startEtcd({ progressNotifyMs: 200 }); });
after(async () => { await etcd?.stop(); });

async function serve() {
  const cfg: Partial<Config> = { datastoreType: 'etcdv3', etcdEndpoints: [etcd.endpoint], etcdProgressIntervalSecs: 0.2, etcdWatchTimeoutSecs: 2 };
  const ts = track(await startServerOn(createDatastore({ ...loadConfig({ env: {} }), ...cfg }, silentLogger), cfg));
  return ts;
}
type Served = Awaited<ReturnType<typeof serve>>;

/** A client that resolves `until(cond)` on the update that makes cond true: no polling. */
function watcher(ts: Served, syncerType: SyncerType, node?: string) {
  const waiting = new Set<{ cond: () => boolean; resolve: () => void }>();
  const c: SyncClient = clients.make({
    url: ts.url, syncerType, ...(node === undefined ? {} : { node }),
    onUpdates: () => { for (const w of waiting) if (w.cond()) { waiting.delete(w); w.resolve(); } },
  });
  const until = (cond: () => boolean) => new Promise<void>((resolve) => { if (cond()) resolve(); else waiting.add({ cond, resolve }); });
  return { c, until, label: `${syncerType}${node ? `/${node}` : ''}` };
}
type Watcher = ReturnType<typeof watcher>;

const keysOf = (c: SyncClient) => [...c.entries()].map(([k]) => k).sort();
const hasAll = (c: SyncClient, keys: string[]) => keys.every((k) => c.get(k));

/** Every view of one server, with the key set each must end with. */
function views(ts: Served): { w: Watcher; keys: string[] }[] {
  return [
    { w: watcher(ts, 'felix'), keys: FELIX },
    { w: watcher(ts, 'bgp'), keys: BGP },
    { w: watcher(ts, 'tunnel-ip-allocation', 'kube-master'), keys: TUNNEL_IP('kube-master') },
    { w: watcher(ts, 'tunnel-ip-allocation', 'kube-node-2'), keys: TUNNEL_IP('kube-node-2') },
    ...Object.entries(NODE_STATUS).map(([node, keys]) => ({ w: watcher(ts, 'node-status', node), keys })),
  ];
}

function assertViews(vs: { w: Watcher; keys: string[] }[], label: string): void {
  for (const { w, keys } of vs) {
    const got = keysOf(w.c);
    assert.deepEqual({ missing: keys.filter((k) => !got.includes(k)), extra: got.filter((k) => !keys.includes(k)) }, { missing: [], extra: [] }, `${label} ${w.label}: key set`);
    for (const k of keys) {
      const item = w.c.get(k)!;
      const { metadata, ...rest } = item.value as { metadata?: Record<string, unknown> };
      if (metadata && k !== DEFAULT_ALLOW) {
        // clientv3 sets resourceVersion to the key's etcd mod revision; the fixture never stores one.
        assert.equal(metadata.resourceVersion, item.revision, `${label} ${w.label}: resourceVersion of ${k}`);
        const { resourceVersion: _rv, ...m } = metadata;
        assert.deepEqual({ ...rest, metadata: m }, expectedValue(k), `${label} ${w.label}: value of ${k}`);
      } else {
        assert.deepEqual(item.value, expectedValue(k), `${label} ${w.label}: value of ${k}`);
      }
    }
  }
}

async function assertCounters(ts: Served, label: string): Promise<void> {
  const m = ts.app.metrics;
  assert.equal(await metricNamed(m, 'calico_fanout_ignored_keys_total'), 0, `${label}: ignored keys`);
  assert.equal(await metricNamed(m, 'calico_fanout_invalid_values_total'), 0, `${label}: invalid values`);
  for (const [kind, n] of Object.entries(UNSERVED)) {
    assert.equal(await metricNamed(m, 'calico_fanout_unserved_updates_total', { kind }), n, `${label}: unserved ${kind}`);
  }
}

test('the fixtures hold every kind the test expects, once', () => {
  assert.equal(STORED.size, ENTRIES.length, 'no key is in both fixtures');
  const expected = new Set([...FELIX, ...BGP, ...TUNNEL_IP('kube-master'), ...TUNNEL_IP('kube-node-2'), ...Object.values(NODE_STATUS).flat(), ...NEVER_SERVED]);
  for (const k of expected) if (k !== DEFAULT_ALLOW) assert.ok(STORED.has(k), `${k} is stored`);
  // Every v3 plural libcalico-go's etcdv3 backend stores (lib/backend/model/resource.go), less the
  // Kubernetes* ones only the kubernetes datastore produces.
  const plurals = new Set([...STORED.keys()].filter((k) => k.startsWith(R)).map((k) => k.slice(R.length).split('/')[0]));
  assert.deepEqual([...plurals].sort(), [
    'bgpconfigurations', 'bgpfilters', 'bgppeers', 'blockaffinities', 'caliconodestatuses', 'clusterinformations',
    'felixconfigurations', 'globalnetworkpolicies', 'globalnetworksets', 'hostendpoints', 'ipamconfigs', 'ipamconfigurations',
    'ippools', 'ipreservations', 'kubecontrollersconfigurations', 'livemigrations', 'networkpolicies', 'networksets', 'nodes',
    'profiles', 'stagedglobalnetworkpolicies', 'stagedkubernetesnetworkpolicies', 'stagednetworkpolicies', 'tiers', 'workloadendpoints',
  ]);
  for (const p of ['assignment/ipv4/', 'assignment/ipv6/', 'host/kube-node-2/ipv4/', 'host/kube-node-2/ipv6/', 'handle/', 'config']) {
    assert.ok([...STORED.keys()].some((k) => k.startsWith(I + p)), `IPAM ${p}`);
  }
  assert.ok([...STORED].some(([k, v]) => k.startsWith(`${I}host/`) && v === ''), 'an affinity in the old (empty) form');
  assert.ok([...STORED].some(([k, v]) => k.startsWith(`${I}host/`) && v.includes('"deleted":false')), 'an affinity in the new form');
});

test('watch path: a cluster written after the server starts; every view holds exactly what Typha\'s syncer carries', SLOW, async () => {
  await etcd.client.delete().prefix('/');
  const ts = await serve();
  const vs = views(ts);
  await Promise.all(vs.map(({ w }) => w.c.inSync()));
  await putMany(etcd.client, ENTRIES.map(({ key, value }) => ({ key, value })));
  // One transaction: one revision, one watch response, so every view has it once felix has.
  await Promise.all(vs.map(({ w, keys }) => w.until(() => hasAll(w.c, keys))));
  assertViews(vs, 'watch');
  await assertCounters(ts, 'watch');

  // A WEP that gets its addresses, and a staged policy that stops being a deletion, come in;
  // going back takes them out again (Felix's update processors drop them).
  const felix = vs[0]!.w;
  const pending = JSON.parse(STORED.get(PENDING_WEP)!) as { spec: Record<string, unknown> };
  const staged = JSON.parse(STORED.get(STAGED_DELETE)!) as { spec: Record<string, unknown> };
  await putMany(etcd.client, [
    { key: PENDING_WEP, value: JSON.stringify({ ...pending, spec: { ...pending.spec, ipNetworks: ['192.168.1.2/32'] } }) },
    { key: STAGED_DELETE, value: JSON.stringify({ ...staged, spec: { ...staged.spec, stagedAction: 'Set' } }) },
  ]);
  await felix.until(() => hasAll(felix.c, NEVER_SERVED));
  assert.equal((felix.c.get(STAGED_DELETE)!.value as { metadata: { name: string } }).metadata.name, 'deny-legacy', 'served by its annotation\'s name');
  await putMany(etcd.client, NEVER_SERVED.map((key) => ({ key, value: STORED.get(key)! })));
  await felix.until(() => NEVER_SERVED.every((k) => !felix.c.get(k)));
  assert.deepEqual(keysOf(felix.c), FELIX, 'back to the cluster\'s felix view');
  await assertCounters(ts, 'watch, after the round trip');
});

test('list path: a fresh server lists the cluster; every view holds exactly what Typha\'s syncer carries', SLOW, async () => {
  await etcd.client.delete().prefix('/');
  await putMany(etcd.client, ENTRIES.map(({ key, value }) => ({ key, value })));
  const ts = await serve();
  const vs = views(ts);
  await Promise.all(vs.map(({ w }) => w.c.inSync()));
  assertViews(vs, 'list');
  await assertCounters(ts, 'list');
});
