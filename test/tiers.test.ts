// Tiers (README "Tiers", PROTOCOL.md "Tiers"): a calico-fanout whose datastore is another one's
// mirror view. On loopback, with a real etcd at the root: etcd → tier-1 servers → tier-2 (and
// tier-3) servers serve every view as a one-tier server does, revisions included; agents moving
// between tiers pay a digest repair, not a snapshot; a tier-2 server outlives its upstream, says
// so, and catches up; loops of servers are refused; the mirror view is refused to agents.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import type { SyncClient, Update } from '../client/index.js';
import { createDatastore } from '../cmd/datastores.js';
import { AuthorizationError, parseAuthorization } from '../src/authorization.js';
import { ConfigError, loadConfig, type Config } from '../src/config.js';
import { silentLogger } from '../src/logging.js';
import { ViewFilter } from '../src/model/view-filter.js';
import { MIRROR, VIEW_NAMES, type SyncerType } from '../src/model/views.js';
import { WebSocketServer, type WebSocket } from 'ws';
import { encodeValue } from '../src/protocol/canonical.js';
import { checksumHex } from '../src/protocol/checksum.js';
import { decodeMessage, encode } from '../src/protocol/codec.js';
import { encodeItem, itemsFrame } from '../src/protocol/frames.js';
import { CloseCode } from '../src/protocol/messages.js';
import { makePki } from './support/certs.js';
import { etcdContent, putMany, startEtcd, type EtcdServer } from './support/etcd.js';
import { expectedView } from './support/expected.js';
import { cleanupAfterFile, node, rawConnect, resource, startServerOn, startTestServer, waitFor, wep, type RawConn } from './support/harness.js';
import { histogram, httpGet, metricValue, stablePort } from './support/metrics.js';
import { expectedChecksum, sameChecksum } from './support/model/invariants.js';
import { startTier } from './support/tiers.js';
import { startKubeApi } from './support/kube-api.js';
import { startProxy } from './support/tcp-proxy.js';
import { upstreamDatastore } from '../cmd/datastore-upstream.js';

const { clients, track } = cleanupAfterFile();
const SLOW = { timeout: 90_000 };

interface Entry { key: string; value: string }
/** Calico's own stored forms (default.-prefixed policy names, annotations, IPAM): what a tier below must not re-read. */
const STORED = (JSON.parse(readFileSync(new URL('./fixtures/calico/etcd-stored.json', import.meta.url), 'utf8')) as { entries: Entry[] }).entries;

const NODES = ['node-1', 'node-2'];
const status = (name: string, n: string, gen = 0) => resource('CalicoNodeStatus', { name }, { node: n, classes: ['Agent'], updatePeriodSeconds: 10, gen });
const CLUSTER = [
  ...NODES.map((n) => node(n)),
  ...Array.from({ length: 60 }, (_, i) => wep(NODES[i % 2]!, `pod-${i}`, `ns-${i % 4}`)),
  resource('IPPool', { name: 'pool-a' }, { cidr: '10.244.0.0/16', blockSize: 26 }),
  resource('BGPPeer', { name: 'peer-a' }, { peerIP: '192.168.1.1', asNumber: 64512 }),
  status('status-1', 'node-1'), status('status-2', 'node-2'),
];
/** One agent per view, and per node for the node-scoped ones. */
const VIEWS: [SyncerType, string][] = [['felix', ''], ['bgp', ''], ...NODES.flatMap((n) => [['tunnel-ip-allocation', n], ['node-status', n]] as [SyncerType, string][])];

let etcd: EtcdServer;
before(async () => {
  etcd = await startEtcd({ progressNotifyMs: 200 });
  for (const e of STORED) await etcd.client.put(e.key).value(e.value);
  await putMany(etcd.client, CLUSTER);
});
after(async () => { await etcd?.stop(); });

type Served = Awaited<ReturnType<typeof startServerOn>>;

/** A tier-1 server: etcd below it, the mirror view open to servers of a tier below. */
async function tier1(extra: Partial<Config> = {}): Promise<Served> {
  const cfg: Partial<Config> = { datastoreType: 'etcdv3', etcdEndpoints: [etcd.endpoint], etcdProgressIntervalSecs: 0.2, etcdWatchTimeoutSecs: 2, allowUnauthenticatedMirror: true, checksumIntervalSecs: 0.5, ...extra };
  for (let attempt = 0; ; attempt++) {
    try {
      return track(await startServerOn(createDatastore({ ...loadConfig({ env: {} }), ...cfg }, silentLogger), cfg));
    } catch (err) {
      // A port kept across a restart: an outgoing connection may hold it a moment.
      if ((err as { code?: string }).code !== 'EADDRINUSE' || attempt > 20) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

async function tier2(urls: string[], extra: Partial<Config> = {}) {
  return track(await startTier(urls, { allowUnauthenticatedMirror: true, checksumIntervalSecs: 0.5, ...extra }));
}

const agentsOn = (ts: { url: string }, extra: { compression?: string[]; onUpdates?: (u: Update[]) => void } = {}) =>
  VIEWS.map(([syncerType, n]) => clients.make({ url: ts.url, syncerType, node: n || undefined, ...extra }));

/** Every view's checksum of the datastore's content now. */
async function wanted(): Promise<{ checksum: (s: SyncerType, n: string) => { value: string; count: number }; content: Map<string, unknown> }> {
  const content = await etcdContent(etcd.client);
  // A block affinity stored with no value reads as {} (README "Run against etcd"); etcdContent skips what is not JSON.
  for (const [k, v] of Object.entries(await etcd.client.getAll().prefix('/calico/ipam/v2/host/').strings())) if (v === '') content.set(k, {});
  return { content, checksum: (s, n) => expectedChecksum(content, s, n) };
}

/** Whether each agent holds exactly its view of etcd now (by checksum) and is in sync. */
function current(agents: SyncClient[], want: Awaited<ReturnType<typeof wanted>>): boolean {
  return agents.every((c, i) => c.isInSync && sameChecksum(c.checksum(), want.checksum(VIEWS[i]![0], VIEWS[i]![1])));
}

/** Two agents of the same view hold the same keys, values and revisions. */
function assertSameCache(a: SyncClient, b: SyncClient, label: string): void {
  const rows = (c: SyncClient) => [...c.entries()].map(([k, v]) => [k, v.revision, String(v.hash)]).sort((x, y) => (x[0]! < y[0]! ? -1 : 1));
  assert.deepEqual(rows(b), rows(a), `${label}: keys, revisions and values`);
  for (const [k, v] of a.entries()) assert.deepEqual(b.get(k)!.value, v.value, `${label}: ${k}`);
}

const readyz = async (ts: Served) => {
  const r = await httpGet(ts.app.ports.health!, '/readyz');
  return { status: r.status, body: JSON.parse(r.body) as Record<string, any> };
};

describe('a tree on one etcd', () => {
  test('tier-2 and tier-3 serve every view as tier-1 does, keys, values and revisions; and follow every change', SLOW, async () => {
    const t1 = await tier1();
    const t2 = await tier2([t1.url]);
    const t3 = await tier2([t2.url]);
    const [a1, a2, a3] = [agentsOn(t1), agentsOn(t2), agentsOn(t3)];
    const all = [...a1, ...a2, ...a3];
    let want = await wanted();
    await waitFor(() => current(a1, want) && current(a2, want) && current(a3, want), 'every agent on every tier to hold its view of etcd', 30_000);
    // The stored forms were served as Calico reads them, once, at tier 1: a default.-prefixed name is not a mismatch below.
    const felix = expectedView(want.content, 'felix', '');
    assert.ok(felix.has('/calico/resources/v3/projectcalico.org/networkpolicies/production/default.allow-tcp-6379'), 'the fixture is in the view');
    for (let i = 0; i < VIEWS.length; i++) {
      assertSameCache(a1[i]!, a2[i]!, `tier 2 ${VIEWS[i]!.join('/')}`);
      assertSameCache(a1[i]!, a3[i]!, `tier 3 ${VIEWS[i]!.join('/')}`);
    }
    // Whole stores, the mirror view included.
    for (const v of VIEW_NAMES) {
      for (const n of v === 'tunnel-ip-allocation' || v === 'node-status' ? NODES : ['']) {
        const f = new ViewFilter(v, n);
        assert.deepEqual(t2.app.store.checksum(f), t1.app.store.checksum(f), `tier-2 store, ${f.key}`);
        assert.deepEqual(t3.app.store.checksum(f), t1.app.store.checksum(f), `tier-3 store, ${f.key}`);
      }
    }

    // Changes at the root reach every tier: updates, deletions, a status moving node, a prefix gone at one revision.
    const R = '/calico/resources/v3/projectcalico.org/';
    await putMany(etcd.client, [wep('node-1', 'pod-0', 'ns-0', { moved: 'yes' }), status('status-1', 'node-2', 1), resource('IPPool', { name: 'pool-b' }, { cidr: '10.9.0.0/16' })]);
    await etcd.client.delete().key(`${R}bgppeers/peer-a`).exec();
    await etcd.client.delete().prefix(`${R}workloadendpoints/ns-3/`).exec();
    want = await wanted();
    await waitFor(() => current(a1, want) && current(a2, want) && current(a3, want), 'every agent to follow the changes', 30_000);
    for (let i = 0; i < VIEWS.length; i++) {
      assertSameCache(a1[i]!, a2[i]!, `after changes, tier 2 ${VIEWS[i]!.join('/')}`);
      assertSameCache(a1[i]!, a3[i]!, `after changes, tier 3 ${VIEWS[i]!.join('/')}`);
    }
    assert.ok(all.every((c) => c.stats.snapshots === 1 && c.stats.checksumMismatches === 0 && c.stats.protocolErrors === 0));

    // Each tier shows whom it follows and the chain to the root, and is ready once the root is.
    const r3 = await readyz(t3);
    assert.equal(r3.status, 200);
    assert.equal(r3.body.datastore, 'upstream');
    assert.equal(r3.body.upstream.serverId, t2.app.server.serverId);
    assert.deepEqual(r3.body.upstream.chain, [t2.app.server.serverId, t1.app.server.serverId]);
    assert.equal(r3.body.upstream.inSync, true);
    assert.equal(typeof r3.body.upstream.lagMs, 'number');
    // The root's revision passed down: the same watermark at every tier.
    await waitFor(() => t3.app.store.maxRevision === t1.app.store.maxRevision && t2.app.store.maxRevision === t1.app.store.maxRevision, 'the watermark to reach tier 3');
    assert.equal(r3.body.upstream.revision, String(t3.app.store.maxRevision));
    assert.equal((await readyz(t1)).body.upstream, undefined, 'tier 1 follows no server');
  });

  test('agents moving from tier 1 to tier 2 and back with nothing changed pay a digest repair, not a snapshot', SLOW, async () => {
    // Every view non-empty (the first test moved status-1 away): an empty cache has no digest to send.
    await putMany(etcd.client, [status('status-1', 'node-1', 2)]);
    const t1 = await tier1();
    const t2 = await tier2([t1.url]);
    const heard: Update[] = [];
    // Uncompressed, so that bytes compare with a snapshot's size.
    const agents = [...agentsOn(t1, { compression: [], onUpdates: (u) => heard.push(...u) }), ...Array.from({ length: 6 }, () => clients.make({ url: t1.url, syncerType: 'felix', compression: [], onUpdates: (u) => heard.push(...u) }))];
    await Promise.all(agents.map((c) => c.inSync()));
    await waitFor(() => t2.app.store.status === 'in-sync' && t2.app.store.maxRevision >= t1.app.store.maxRevision, 'tier 2 to be in sync and caught up');
    const snapshotBytes = agents.map((c) => c.stats.bytesReceived);
    heard.length = 0;

    const move = async (to: Served, from: Served, round: number) => {
      const before = { digest: await metricValue(to.app.metrics.resyncs, { mode: 'digest' }), snapshot: await metricValue(to.app.metrics.resyncs, { mode: 'snapshot' }), bytes: agents.map((c) => c.stats.bytesReceived) };
      const ratio = await histogram(to.app.metrics.repairBuckets);
      for (const c of agents) {
        const x = c as unknown as { preferred?: string; ws?: { terminate(): void } };
        x.preferred = to.url;
        x.ws?.terminate();
      }
      await waitFor(() => agents.every((c) => c.isInSync && c.stats.connects === round + 1), `every agent in sync on ${to === t2 ? 'tier 2' : 'tier 1'}`, 30_000);
      assert.equal(await metricValue(to.app.metrics.resyncs, { mode: 'digest' }) - before.digest, agents.length, 'every agent resynced by digest');
      assert.equal(await metricValue(to.app.metrics.resyncs, { mode: 'snapshot' }) - before.snapshot, 0, 'no snapshot');
      const after = await histogram(to.app.metrics.repairBuckets);
      assert.equal(after.count - ratio.count, agents.length);
      assert.equal(after.sum - ratio.sum, 0, 'no bucket differed');
      agents.forEach((c, i) => {
        assert.equal(c.stats.digests, round);
        assert.equal(c.stats.snapshots, 1, 'the first sync only');
        const got = c.stats.bytesReceived - before.bytes[i]!;
        assert.ok(got < snapshotBytes[i]! / 4 || got < 600, `agent ${i} received ${got} B moving to ${to === t2 ? 'tier 2' : 'tier 1'}; its snapshot was ${snapshotBytes[i]} B`);
      });
      assert.deepEqual(heard.map((u) => u.key), [], 'no update heard: nothing changed');
      void from;
    };
    await move(t2, t1, 1);
    await move(t1, t2, 2);
    await move(t2, t1, 3);
  });

  test('a tier-2 server outlives its upstream: it serves the last state, says so, follows another replica and catches up by digest', SLOW, async () => {
    const [pa, pb] = [await stablePort(), await stablePort()];
    const t1a = await tier1({ serverPort: pa });
    const t1b = await tier1({ serverPort: pb });
    const t2 = await tier2([t1a.url, t1b.url], { statusPageEnabled: true });
    const statuses: string[] = [];
    const agents = VIEWS.map(([syncerType, n]) => clients.make({ url: t2.url, syncerType, node: n || undefined, onStatus: (s) => { if (syncerType === 'felix') statuses.push(s); } }));
    let want = await wanted();
    await waitFor(() => current(agents, want), 'agents on tier 2 in sync');
    assert.equal(t2.ds.status().serverId, t1a.app.server.serverId, 'following the first URL');

    // The upstream goes away: tier 2 says so, follows the other replica, catches up what changed meanwhile.
    const digestAtB = await metricValue(t1b.app.metrics.resyncs, { mode: 'digest' });
    await t1a.close();
    await putMany(etcd.client, [wep('node-2', 'pod-new', 'ns-0')]);
    want = await wanted();
    await waitFor(() => t2.ds.status().serverId === t1b.app.server.serverId && t2.app.store.status === 'in-sync' && current(agents, want), 'tier 2 on t1b, agents current', 30_000);
    assert.equal(await metricValue(t1b.app.metrics.resyncs, { mode: 'digest' }) - digestAtB, 1, 'tier 2 resynced with t1b by digest');
    assert.equal(await metricValue(t1b.app.metrics.resyncs, { mode: 'snapshot' }), 0);
    assert.ok(agents.every((c) => c.stats.connects === 1), 'the agents stayed where they were');
    assert.deepEqual(statuses.slice(-2), ['wait-for-datastore', 'in-sync'], 'agents were told');

    // Every upstream gone: the last state is served, whole, to a newcomer too; not ready, and why.
    await t1b.close();
    await waitFor(() => t2.app.store.status !== 'in-sync', 'tier 2 to leave in-sync');
    const r = await readyz(t2);
    assert.equal(r.status, 503);
    assert.equal(r.body.status, 'wait-for-datastore');
    assert.match(String(r.body.datastoreError), /upstream ws:\/\/127\.0\.0\.1:\d+ closed/);
    assert.equal(r.body.upstream.connected, false);
    const late = clients.make({ url: t2.url, syncerType: 'felix' });
    const felixNow = expectedView(want.content, 'felix', '');
    await waitFor(() => late.size === felixNow.size, 'a newcomer to get the last state');
    assert.equal(late.isInSync, false, 'not in sync: the status says the datastore is away');
    assert.ok(sameChecksum(late.checksum(), want.checksum('felix', '')));

    // A tier-1 server comes back where t1a was: tier 2 catches up by digest, agents hear the difference.
    await etcd.client.delete().key(wep('node-2', 'pod-1', 'ns-1').key).exec();
    want = await wanted();
    const t1c = await tier1({ serverPort: pa });
    await waitFor(() => t2.app.store.status === 'in-sync' && current(agents, want) && late.isInSync, 'tier 2 back in sync with the new replica', 30_000);
    assert.equal(await metricValue(t1c.app.metrics.resyncs, { mode: 'digest' }), 1);
    assert.equal(await metricValue(t1c.app.metrics.resyncs, { mode: 'snapshot' }), 0);
    const page = JSON.parse((await httpGet(t2.app.ports.health!, '/status.json')).body) as { upstream: { serverId: string; chain: string[]; connected: boolean } };
    assert.equal(page.upstream.serverId, t1c.app.server.serverId);
    assert.deepEqual(page.upstream.chain, [t1c.app.server.serverId]);
    assert.equal(page.upstream.connected, true);
    assert.equal((await readyz(t2)).status, 200);
  });

  test('a tier-2 server whose link to its upstream drops resumes there, catching up what changed meanwhile', SLOW, async (t) => {
    const t1 = await tier1();
    const link = await startProxy(t1.app.ports.server);
    t.after(() => link.close());
    const t2 = await tier2([`ws://127.0.0.1:${link.port}`]);
    const agents = agentsOn(t2);
    let want = await wanted();
    await waitFor(() => current(agents, want), 'agents on tier 2 in sync');
    const resumes = await metricValue(t1.app.metrics.resyncs, { mode: 'resume' });
    link.block();
    await waitFor(() => t2.app.store.status === 'wait-for-datastore', 'tier 2 to notice');
    await putMany(etcd.client, [wep('node-1', 'pod-while-cut', 'ns-2')]);
    link.unblock();
    want = await wanted();
    await waitFor(() => t2.app.store.status === 'in-sync' && current(agents, want), 'tier 2 and its agents to catch up', 30_000);
    assert.equal(await metricValue(t1.app.metrics.resyncs, { mode: 'resume' }) - resumes, 1, 'tier 2 resumed from its position');
    assert.ok(agents.every((c) => c.stats.connects === 1), 'its agents stayed');
  });

  // A key deleted while a tier-2 server was away: at its real revision when the upstream still
  // remembers the deletion; else (swept) at no less than the tier-2 server's watermark, which
  // every revision its agents hold is below.
  for (const remembered of [true, false]) {
    test(remembered
      ? 'a key deleted while a tier-2 server was away is deleted there at its real revision, not the older one a sweep knows'
      : 'a key deleted while a tier-2 server was away, which the upstream no longer remembers, is deleted there at no less than its watermark', SLOW, async (t) => {
      const [t1a, t1b] = [await tier1(), await tier1(remembered ? {} : { historyMaxBytes: 0 })];
      const [linkA, linkB] = [await startProxy(t1a.app.ports.server), await startProxy(t1b.app.ports.server)];
      t.after(() => Promise.all([linkA.close(), linkB.close()]));
      const doomed = wep('node-1', `pod-doomed-${remembered}`, 'ns-0');
      await putMany(etcd.client, [doomed]);
      const t2 = await tier2([`ws://127.0.0.1:${linkA.port}`, `ws://127.0.0.1:${linkB.port}`]);
      const heard: Update[] = [];
      const agent = clients.make({ url: t2.url, syncerType: 'felix', onUpdates: (u) => heard.push(...u.filter((x) => x.key === doomed.key)) });
      await waitFor(() => agent.get(doomed.key) !== undefined, 'the agent to hold the key');
      const setAt = Number(agent.get(doomed.key)!.revision);
      // Another change: the tier-2 watermark moves past the key's revision.
      const later = Number((await etcd.client.put(resource('IPPool', { name: `pool-${remembered}` }, { cidr: '10.7.0.0/16' }).key).value(JSON.stringify(resource('IPPool', { name: `pool-${remembered}` }, { cidr: '10.7.0.0/16' }).value)).exec()).header.revision);
      await waitFor(() => t2.app.store.maxRevision >= later, 'the tier-2 watermark past the key');
      // No upstream while the key goes; then another replica.
      linkA.block();
      linkB.block();
      await waitFor(() => t2.app.store.status === 'wait-for-datastore', 'tier 2 to lose its upstream');
      const deletedAt = Number((await etcd.client.delete().key(doomed.key).exec()).header.revision);
      await waitFor(() => t1b.app.store.valueOf(doomed.key) === (remembered ? null : undefined), 't1b to have taken the deletion');
      linkB.unblock();
      await waitFor(() => agent.get(doomed.key) === undefined, 'the deletion to reach the agent', 20_000);
      assert.ok(deletedAt > later && later > setAt);
      const [set, gone] = heard.map((u) => [u.value === null ? 'deleted' : 'set', Number(u.revision)] as const);
      assert.deepEqual(set, ['set', setAt]);
      if (remembered) assert.deepEqual(gone, ['deleted', deletedAt]);
      else assert.ok(gone![0] === 'deleted' && gone![1] >= later, `deleted at ${gone![1]}, not below the watermark ${later}`);
      assert.equal(heard.length, 2);
      assert.ok(await metricValue(t1b.app.metrics.resyncs, { mode: 'digest' }) >= 1, 'tier 2 resynced with t1b by digest');
    });
  }

  test('a tier below publishes each upstream frame as it comes, with no ingest window of its own', SLOW, async () => {
    const t1 = await tier1({ ingestBatchWindowSecs: 0 });
    // An hour's window: a change held for it would never reach the agents below within the test.
    const t2 = await tier2([t1.url], { ingestBatchWindowSecs: 3600 });
    const agents = agentsOn(t2);
    let want = await wanted();
    await waitFor(() => current(agents, want), 'the agents below in sync', 30_000);
    const pool = (i: number) => resource('IPPool', { name: `pool-window-${i}` }, { cidr: `10.${100 + i}.0.0/16` });
    try {
      // Each change comes after the tier's last flush (its in-sync, then the change before).
      for (const i of [1, 2, 3]) {
        await putMany(etcd.client, [pool(i)]);
        want = await wanted();
        await waitFor(() => current(agents, want), `change ${i} on the agents below`, 20_000);
      }
    } finally {
      for (const i of [1, 2, 3]) await etcd.client.delete().key(pool(i).key).exec();
    }
  });

  test('loops are refused: a server as its own upstream, and a server following one below it', SLOW, async () => {
    // Itself.
    const self = await stablePort();
    const lone = await tier2([`ws://127.0.0.1:${self}`], { serverPort: self });
    await waitFor(() => /loop/.test(lone.app.datastore.lastError ?? ''), 'the refusal to be reported');
    assert.ok(await metricValue(lone.app.metrics.connectionsDenied, { reason: 'loop' }) >= 1);
    assert.match(lone.app.datastore.lastError!, /4009: loop: server \S+ asked itself/);
    assert.notEqual(lone.app.store.status, 'in-sync');

    // A follows the root, then B; B follows A. With the root gone, A tries B, which refuses it.
    const [pRoot, pB] = [await stablePort(), await stablePort()];
    const root = await tier1({ serverPort: pRoot });
    const a = await tier2([root.url, `ws://127.0.0.1:${pB}`]);
    const b = await tier2([a.url], { serverPort: pB });
    await waitFor(() => b.app.store.status === 'in-sync' && b.ds.status().chain.length === 2, 'B to follow A');
    assert.deepEqual(b.ds.status().chain, [a.app.server.serverId, root.app.server.serverId]);
    const loops = await metricValue(b.app.metrics.connectionsDenied, { reason: 'loop' });
    await root.close();
    await waitForAsync(async () => (await metricValue(b.app.metrics.connectionsDenied, { reason: 'loop' })) > loops, 'B to refuse A');
    await waitFor(() => /loop: server \S+ is upstream of this server/.test(a.app.datastore.lastError ?? ''), 'A to report the refusal');
    assert.notEqual(a.app.store.status, 'in-sync');
    assert.notEqual(b.app.store.status, 'in-sync');
    // The root back: both follow it again.
    const root2 = await tier1({ serverPort: pRoot });
    await waitFor(() => a.app.store.status === 'in-sync' && b.app.store.status === 'in-sync', 'A and B back in sync', 30_000);
    assert.deepEqual(b.ds.status().chain, [a.app.server.serverId, root2.app.server.serverId]);
  });

  test('a follower is dropped when the chain changes to put it upstream; a hello naming the server itself is refused', async () => {
    const root = track(await startTestServer({ allowUnauthenticatedMirror: true }, CLUSTER.slice(0, 3)));
    const follower = mirrorHello(root.url, 'server-x');
    await waitFor(() => follower.frames.some((f) => f.msg.t === 'welcome'), 'welcome');
    assert.deepEqual(follower.frames.find((f) => f.msg.t === 'welcome')!.msg.chain, [root.app.server.serverId]);
    await waitFor(() => follower.frames.some((f) => f.msg.t === 'progress'), 'progress once caught up');
    // The root now follows server-x (say, a rearranged tree): server-x would be following itself.
    root.app.server.setUpstreamChain(['server-x', 'server-r']);
    const closed = await follower.closed;
    assert.equal(closed.code, CloseCode.loop);
    assert.match(String(follower.frames.find((f) => f.msg.t === 'error')?.msg.message), /loop: server server-x is now upstream/);
    // A hello naming the server itself.
    const me = mirrorHello(root.url, root.app.server.serverId);
    assert.equal((await me.closed).code, CloseCode.loop);
    assert.equal(await metricValue(root.app.metrics.connectionsDenied, { reason: 'loop' }), 2);
  });
});

describe('finding the upstream', () => {
  test('a tier below finds the upstream replicas from their Service\'s EndpointSlices, and follows them when they change', async (t) => {
    const kube = await startKubeApi();
    t.after(() => kube.close());
    const rootA = track(await startTestServer({ allowUnauthenticatedMirror: true }, CLUSTER.slice(0, 5)));
    const rootB = track(await startTestServer({ allowUnauthenticatedMirror: true }, CLUSTER.slice(0, 5)));
    const slice = (port: number) => ({
      apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', addressType: 'IPv4',
      metadata: { name: 'calico-fanout-abcde', namespace: 'calico-system', labels: { 'kubernetes.io/service-name': 'calico-fanout' } },
      // A replica that is not ready is left out, as agents leave it out.
      endpoints: [{ addresses: ['127.0.0.1'], conditions: { ready: true } }, { addresses: ['127.0.0.2'], conditions: { ready: false } }],
      ports: [{ name: 'calico-typha', port, protocol: 'TCP' }],
    });
    const SLICES = '/apis/discovery.k8s.io/v1/endpointslices';
    kube.apply(SLICES, slice(rootA.app.ports.server));
    const config = loadConfig({ env: { TYPHA_DATASTORETYPE: 'upstream', TYPHA_UPSTREAMK8SSERVICENAME: 'calico-fanout', TYPHA_KUBECONFIG: kube.kubeconfigPath } });
    const below = track(await startServerOn(upstreamDatastore(config, silentLogger), {}));
    const agent = clients.make({ url: below.url, syncerType: 'felix' });
    await agent.inSync();
    assert.equal(below.app.datastore.upstream!.status().serverId, rootA.app.server.serverId);
    const rootSum = rootA.app.store.checksum(new ViewFilter('felix', ''));
    assert.deepEqual(agent.checksum(), { value: checksumHex(rootSum.value), count: rootSum.count }, 'the root\'s felix view');
    // The Service's replicas change: the tier below follows the new one once the old one goes.
    kube.apply(SLICES, slice(rootB.app.ports.server));
    await rootA.close();
    await waitFor(() => below.app.datastore.upstream!.status().serverId === rootB.app.server.serverId && below.app.store.status === 'in-sync', 'the tier below on root B', 20_000);
    await waitFor(() => agent.isInSync, 'the agent in sync again');
  });
});

describe('the watermark below the root', () => {
  test('is the upstream\'s progress, not the newest revision stored: a client newer than the rest is held until then', async (t) => {
    // An upstream that publishes a newer change ahead of an older one (as a batch split in two
    // may): its snapshot holds pool-a at 12 and pool-b still at 5, though pool-b is at 11 already.
    const [a, b] = [resource('IPPool', { name: 'pool-a' }, { cidr: '10.1.0.0/16' }), resource('IPPool', { name: 'pool-b' }, { cidr: '10.2.0.0/16' })];
    const bNew = resource('IPPool', { name: 'pool-b' }, { cidr: '10.3.0.0/16' });
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    t.after(() => new Promise<void>((r) => { for (const c of wss.clients) c.terminate(); wss.close(() => r()); }));
    await new Promise((r) => wss.once('listening', r));
    let upstream: WebSocket | undefined;
    wss.on('connection', (ws) => {
      upstream = ws;
      ws.on('message', (d: Buffer) => {
        if (decodeMessage(d).t !== 'hello') return;
        ws.send(encode({ t: 'welcome', v: 1, serverId: 'fake-upstream', serverVersion: '0', epoch: 'e1', syncer: MIRROR, node: '', mode: 'snapshot', compression: 'none', chain: ['fake-upstream'] } as never));
        ws.send(itemsFrame({ t: 'snapshot', seq: 2, i: 0, last: true }, [encodeItem(a.key, encodeValue(a.value), '12'), encodeItem(b.key, encodeValue(b.value), '5')]));
        ws.send(encode({ t: 'status', status: 'in-sync' }));
      });
    });
    const t2 = await tier2([`ws://127.0.0.1:${(wss.address() as { port: number }).port}`]);
    await waitFor(() => t2.app.store.status === 'in-sync' && t2.app.store.valueOf(a.key) != null, 'tier 2 to take the snapshot');

    // An agent whose cache holds pool-b at 11 (heard from another server of the tree).
    const agent = rawConnect(t2.url);
    await agent.opened;
    agent.ws.send(encode({ t: 'hello', v: 1, syncer: 'felix', node: '', clientName: 'agent', clientVersion: '0', revision: '11' } as never));
    await waitFor(() => agent.frames.some((f) => f.msg.t === 'status' && f.msg.held !== undefined), 'the agent to be held');
    const conn = [...t2.app.server.connections].find((c) => c.hello?.clientName === 'agent')!;
    assert.ok(conn.awaitingSync, 'held, though tier 2 stores revision 12: its upstream has not said it has everything up to 11');
    assert.ok(!agent.frames.some((f) => f.msg.t === 'snapshot'), 'no snapshot of the half-updated state');

    // The rest of the batch, then the upstream's progress: the agent is served, pool-b at 11.
    upstream!.send(itemsFrame({ t: 'delta', from: 2, to: 3 }, [encodeItem(bNew.key, encodeValue(bNew.value), '11')]));
    upstream!.send(encode({ t: 'progress', revision: '12', at: Date.now() }));
    await waitFor(() => agent.frames.some((f) => f.msg.t === 'snapshot' && f.msg.last === true), 'the agent served');
    const items = agent.frames.filter((f) => f.msg.t === 'snapshot').flatMap((f) => f.items ?? []);
    assert.equal(items.find((i) => i.key === b.key)?.revision, '11');
    agent.ws.close();
  });
});

async function waitForAsync(cond: () => Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function mirrorHello(url: string, serverId: string | undefined, opts = {}): RawConn {
  const c = rawConnect(url, opts);
  void c.opened.then(() => c.ws.send(encode({ t: 'hello', v: 1, syncer: MIRROR, node: '', clientName: 'tiers-test', clientVersion: '0', ...(serverId ? { serverId } : {}) } as never)), () => {});
  return c;
}

describe('the mirror view is for servers, not agents', () => {
  test('refused without a rule naming it, with the reason and a metric; open only when the operator says so', async () => {
    const closed = track(await startTestServer({}, CLUSTER.slice(0, 3)));
    const c = mirrorHello(closed.url, 'server-y');
    assert.equal((await c.closed).code, CloseCode.forbidden);
    assert.match(String(c.frames.find((f) => f.msg.t === 'error')?.msg.message), /forbidden: the mirror view is for servers of a tier below/);
    assert.equal(await metricValue(closed.app.metrics.connectionsDenied, { reason: 'mirror' }), 1);
    const agent = clients.make({ url: closed.url, syncerType: 'felix' });
    await agent.inSync();

    // The rule syntax: * is every agent's view, not the mirror; a node identity never gets it.
    assert.ok(!parseAuthorization(['calico-node=*'])[0]!.views.has(MIRROR));
    assert.ok(parseAuthorization(['peer=mirror'])[0]!.views.has(MIRROR));
    assert.throws(() => parseAuthorization(['node:{node}=mirror']), AuthorizationError);
    assert.throws(() => loadConfig({ env: { TYPHA_ALLOWUNAUTHENTICATEDMIRROR: 'true', TYPHA_CAFILE: '/dev/null', TYPHA_SERVERCERTFILE: '/dev/null', TYPHA_SERVERKEYFILE: '/dev/null', TYPHA_CLIENTAUTHORIZATION: 'a=felix' } }), ConfigError);
    assert.throws(() => loadConfig({ env: { TYPHA_DATASTORETYPE: 'upstream' } }), /needs upstreamUrls/);
    assert.throws(() => loadConfig({ env: { TYPHA_DATASTORETYPE: 'upstream', TYPHA_UPSTREAMURLS: 'http://x:1' } }), /not a ws\(s\)/);
    assert.throws(() => loadConfig({ env: { TYPHA_UPSTREAMURLS: 'ws://x:1', TYPHA_UPSTREAMSERVERCN: 'up' } }), /not wss/);
  });

  test('with mutual TLS: a peer identity gets the mirror view and a tier below follows it; an agent identity is refused it', SLOW, async (t) => {
    const pki = makePki();
    t.after(() => pki.cleanup());
    const serverCert = pki.issue({ cn: 'calico-fanout', usage: 'server', ips: ['127.0.0.1'] });
    const peer = pki.issue({ cn: 'calico-fanout-peer', usage: 'client' });
    const agent = pki.issue({ cn: 'calico-node', usage: 'client' });
    const t1 = track(await startTestServer({
      serverCertFile: serverCert.certFile, serverKeyFile: serverCert.keyFile, caFile: pki.caFile,
      clientAuthorization: ['calico-fanout-peer=mirror', 'calico-node=*'],
    }, CLUSTER));
    const url = `wss://127.0.0.1:${t1.app.ports.server}`;
    const asAgent = mirrorHello(url, undefined, { ca: pki.ca, cert: agent.cert, key: agent.key });
    assert.equal((await asAgent.closed).code, CloseCode.forbidden);
    assert.match(String(asAgent.frames.find((f) => f.msg.t === 'error')?.msg.message), /identity calico-node .* may not request the mirror view/);
    assert.equal(await metricValue(t1.app.metrics.connectionsDenied, { reason: 'mirror' }), 1);

    // The peer's certificate over TLS: a tier below, with its own agents on plain ws.
    const t2 = track(await startTier([url], {}, { caFile: pki.caFile, certFile: peer.certFile, keyFile: peer.keyFile, serverCN: 'calico-fanout' }));
    const below = clients.make({ url: t2.url, syncerType: 'felix' });
    const above = clients.make({ url, syncerType: 'felix', tls: { caFile: pki.caFile, certFile: agent.certFile, keyFile: agent.keyFile, serverCN: 'calico-fanout' } });
    await Promise.all([below.inSync(), above.inSync()]);
    assertSameCache(above, below, 'felix over a TLS tier');
    t1.ds.put(wep('node-2', 'pod-tls').key, wep('node-2', 'pod-tls').value);
    await waitFor(() => below.get(wep('node-2', 'pod-tls').key) !== undefined, 'a change to reach the tier below');
    assert.equal(await metricValue(t1.app.metrics.connectionsDenied), 1, 'the peer was not refused');
  });
});

describe('the mirror view\'s sums', () => {
  test('are kept only while a server of a tier below follows; one following later, after changes, still gets its checksums right', SLOW, async () => {
    const t1 = track(await startTestServer({ allowUnauthenticatedMirror: true, checksumIntervalSecs: 0.5 }, CLUSTER));
    const { store } = t1.app;
    let released = 0;
    const release = store.releaseChecksums.bind(store);
    store.releaseChecksums = (v) => { released++; release(v); };
    const upstreamOf = (ts: { ds: unknown }) => (ts.ds as { client: SyncClient }).client;
    const follow = async () => {
      const t2 = track(await startTier([t1.url]));
      await waitFor(() => upstreamOf(t2).stats.checksumsVerified >= 2, 'the tier below to verify two of the mirror view\'s checksums');
      return t2;
    };
    const first = await follow();
    const agent = clients.make({ url: t1.url, syncerType: 'felix' });
    await agent.inSync();
    await agent.stop();
    assert.equal(released, 0, 'kept while followed, whoever else comes and goes');
    await first.close();
    await waitFor(() => released === 1, 'the sums to be released once no server follows');

    // Changes while released: the next follower's checksums are of the view as it is then.
    t1.ds.put(wep('node-2', 'pod-late').key, wep('node-2', 'pod-late').value);
    t1.ds.delete(wep('node-1', 'pod-0', 'ns-0').key);
    const second = await follow();
    t1.ds.put(wep('node-1', 'pod-later').key, wep('node-1', 'pod-later').value);
    await waitFor(() => upstreamOf(second).stats.checksumsVerified >= 4, 'checksums after a change, the sums kept again');
    for (const t2 of [first, second]) assert.equal(upstreamOf(t2).stats.checksumMismatches, 0);
    for (const v of VIEW_NAMES) {
      for (const n of v === 'tunnel-ip-allocation' || v === 'node-status' ? NODES : ['']) {
        const f = new ViewFilter(v, n);
        assert.deepEqual(second.app.store.checksum(f), store.checksum(f), `the follower's store, ${f.key}`);
      }
    }
  });
});
