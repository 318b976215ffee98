// View filtering and node scoping over real sockets, and encode-once fan-out.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Update } from '../client/index.js';
import { ViewFilter } from '../src/model/view-filter.js';
import type { SyncerType } from '../src/model/views.js';
import { assertClientMatches, expectedView } from './support/expected.js';
import { Clients, node, rawConnect, resource, startTestServer, waitFor, wep, type RawConn, type TestServer } from './support/harness.js';
import { metricValue } from './support/metrics.js';
import { encode } from '../src/protocol/codec.js';
import { bucketsToWire, DIGEST_SCHEME, digestToWire } from '../src/protocol/digest.js';

const nodes = ['n1', 'n2', 'n3'];
const seed = [
  ...nodes.map((n) => node(n)),
  ...nodes.map((n) => resource('CalicoNodeStatus', { name: `${n}-status` }, { node: n, classes: ['Agent'] })),
  ...nodes.map((n) => wep(n, `pod-${n}`)),
  resource('IPPool', { name: 'pool-a' }, { cidr: '10.244.0.0/16', blockSize: 26 }),
  resource('BGPPeer', { name: 'tor' }, { peerIP: '192.168.0.254', asNumber: 64513 }),
  resource('GlobalNetworkPolicy', { name: 'default.allow-dns' }, { tier: 'default', selector: 'all()' }),
  { key: '/calico/ipam/v2/host/n1/ipv4/block/10.244.1.0-26', value: { cidr: '10.244.1.0/26', node: 'n1', state: 'confirmed' } },
  { key: '/calico/ipam/v2/assignment/ipv4/block/10.244.1.0-26', value: { cidr: '10.244.1.0/26', affinity: 'host:n1', allocations: [] } },
];

let ts: TestServer;
const clients = new Clients();
before(async () => { ts = await startTestServer({}, seed); });
after(async () => { await clients.stopAll(); await ts.close(); });

test('each view carries its kinds, node-scoped views only their own node', async () => {
  const seen = new Map<string, Update[]>();
  const make = (syncerType: any, n: string) => {
    const label = `${syncerType}/${n}`;
    seen.set(label, []);
    return { label, syncerType, n, c: clients.make({ url: ts.url, syncerType, node: n, onUpdates: (u) => seen.get(label)!.push(...u) }) };
  };
  const all = [make('felix', 'n1'), make('bgp', 'n1'), make('tunnel-ip-allocation', 'n2'), make('node-status', 'n3')];
  await Promise.all(all.map((x) => x.c.inSync()));

  const kinds = (label: string) => new Set(seen.get(label)!.map((u) => u.kind));
  assert.deepEqual(kinds('tunnel-ip-allocation/n2'), new Set(['IPPool', 'Node']));
  assert.deepEqual(all[2]!.c.size, 2, 'tunnel-ip client holds the pool and its own node only');
  assert.ok(all[2]!.c.get('/calico/resources/v3/projectcalico.org/nodes/n2'));
  assert.deepEqual([...all[3]!.c.entries()].map(([k]) => k), ['/calico/resources/v3/projectcalico.org/caliconodestatuses/n3-status']);
  assert.ok(kinds('bgp/n1').has('BlockAffinity') && !kinds('bgp/n1').has('WorkloadEndpoint'));
  assert.ok(kinds('felix/n1').has('IPAMBlock') && !kinds('felix/n1').has('CalicoNodeStatus') && !kinds('felix/n1').has('BlockAffinity'));

  // Live updates respect the same scoping.
  ts.ds.put(node('n1', { asNumber: 65001 }).key, node('n1', { asNumber: 65001 }).value);
  ts.ds.put(node('n2', { asNumber: 65002 }).key, node('n2', { asNumber: 65002 }).value);
  const s3 = resource('CalicoNodeStatus', { name: 'n3-status' }, { node: 'n3', classes: ['BGP'] });
  ts.ds.put(s3.key, s3.value);
  await waitFor(() => all[2]!.c.get(node('n2').key)?.value?.spec.asNumber === 65002, 'tunnel-ip n2 sees its node change');
  await waitFor(() => all[3]!.c.get(s3.key)?.value?.spec.classes[0] === 'BGP', 'node-status n3 sees its status change');
  await waitFor(() => all[0]!.c.get(node('n1').key)?.value?.spec.asNumber === 65001, 'felix sees n1');

  for (const x of all) {
    assertClientMatches(x.c, expectedView(ts.ds, x.syncerType, x.n), x.label);
    const server = ts.app.store.checksum(new ViewFilter(x.syncerType, x.n));
    assert.equal(x.c.checksum().value, server.value.toString(16).padStart(16, '0'), `${x.label} checksum`);
  }
  assert.ok(!seen.get('tunnel-ip-allocation/n2')!.some((u) => u.key.endsWith('/nodes/n1')), 'n2 never saw node n1');
  assert.ok(!seen.get('node-status/n3')!.some((u) => u.kind !== 'CalicoNodeStatus' || !u.key.endsWith('n3-status')));
});

test('a delta is encoded once per view and the same frame goes to every client of it', async () => {
  const felix = Array.from({ length: 10 }, () => clients.make({ url: ts.url, syncerType: 'felix', node: 'n1' }));
  await Promise.all(felix.map((c) => c.inSync()));
  const m = ts.app.metrics;
  const built0 = (await m.sharedFrames.get()).values[0]!.value;
  const sent0 = (await m.framesSent.get()).values[0]!.value;
  const before = felix.map((c) => c.stats.framesReceived);
  const gnp = resource('GlobalNetworkPolicy', { name: 'default.encode-once' }, { tier: 'default', selector: 'all()' });
  ts.ds.put(gnp.key, gnp.value);
  await waitFor(() => felix.every((c) => c.get(gnp.key)), 'all felix clients see the policy');
  const built = (await m.sharedFrames.get()).values[0]!.value - built0;
  const sent = (await m.framesSent.get()).values[0]!.value - sent0;
  assert.equal(built, 1, 'one delta frame built for the felix view (no other view carries policies)');
  // Every felix client in this file got it: the 10 new ones and the one from the first test.
  assert.ok(sent >= 10, `frames written: ${sent}`);
  assert.ok(felix.every((c, i) => c.stats.framesReceived === before[i]! + 1), 'each client received exactly one frame');
});

test('a status that moves to another node leaves the old node\'s client and reaches the new one', async () => {
  const s = resource('CalicoNodeStatus', { name: 'roaming' }, { node: 'n1', classes: ['Agent'] });
  ts.ds.put(s.key, s.value);
  const n1 = clients.make({ url: ts.url, syncerType: 'node-status', node: 'n1' });
  const n2 = clients.make({ url: ts.url, syncerType: 'node-status', node: 'n2' });
  await Promise.all([n1.inSync(), n2.inSync()]);
  assert.ok(n1.get(s.key) && !n2.get(s.key));
  const moved = resource('CalicoNodeStatus', { name: 'roaming' }, { node: 'n2', classes: ['Agent'] });
  ts.ds.put(moved.key, moved.value);
  await waitFor(() => !n1.get(s.key) && !!n2.get(s.key), 'the status to move from n1 to n2');
  for (const [c, n] of [[n1, 'n1'], [n2, 'n2']] as const) assertClientMatches(c, expectedView(ts.ds, 'node-status', n), n);
});

/** A bare client of (syncer, node) that has said hello; in sync once it has a checksum. */
async function rawClient(syncer: SyncerType, n: string, extra: Record<string, unknown> = {}): Promise<RawConn> {
  const raw = rawConnect(ts.url);
  raws.push(raw);
  await raw.opened;
  raw.ws.send(encode({ t: 'hello', v: 1, syncer, node: n, clientName: 'raw', clientVersion: '0', ...extra }));
  await waitFor(() => raw.frames.some((f) => f.msg.t === 'checksum'), `${syncer}/${n} in sync`);
  return raw;
}
const raws: RawConn[] = [];
after(() => { for (const r of raws) r.ws.terminate(); });
const deltaKeys = (raw: RawConn, from: number) => raw.frames.filter((f) => f.msg.t === 'delta' && (f.msg.from as number) >= from).map((f) => f.items!.map((x) => x.key));

test('one batch: nodes it does not name share the view\'s frame, a node it names gets its own changes and the shared ones in order', async () => {
  const tunnel = await Promise.all(['n1', 'n4', 'n5', 'n6', 'n7'].map((n) => rawClient('tunnel-ip-allocation', n)));
  const m = ts.app.metrics;
  const built0 = await metricValue(m.sharedFrames);
  const from = ts.app.store.head;
  // One datastore write of two changes, one batch: a shared IPPool and node n1's own Node.
  const pool = resource('IPPool', { name: 'pool-a' }, { cidr: '10.244.0.0/16', blockSize: 26, natOutgoing: true });
  const n1 = node('n1', { asNumber: 65111 });
  ts.ds.write([pool, n1]);
  await waitFor(() => tunnel.every((r) => deltaKeys(r, from).length > 0), 'every tunnel-ip client got the batch');
  assert.equal(ts.app.store.head, from + 2, 'one batch of two changes');
  assert.deepEqual(deltaKeys(tunnel[0]!, from), [[pool.key, n1.key]], 'n1: the shared change and its own, in order');
  for (const r of tunnel.slice(1)) assert.deepEqual(deltaKeys(r, from), [[pool.key]], 'the other nodes: the shared change only');
  // felix and bgp one frame each; tunnel-ip-allocation one shared and one for n1 (node-status: nothing).
  assert.equal(await metricValue(m.sharedFrames) - built0, 4, 'frames built for the batch');
});

test('clients at the same position share one catch-up, clients with the same stale digest one repair', async () => {
  const { store, metrics } = ts.app;
  const built = (transfer: 'catch-up' | 'repair') => metricValue(metrics.transferFrames, { transfer });
  const from = store.head;
  const gnp = resource('GlobalNetworkPolicy', { name: 'default.shared-catch-up' }, { tier: 'default', selector: 'all()' });
  const n2 = node('n2', { asNumber: 65222 });
  ts.ds.write([gnp, n2]);
  await waitFor(() => store.head === from + 2, 'the write stored');
  const catchUp0 = await built('catch-up');
  const resume = { epoch: store.epoch, seq: from };
  const felix = await Promise.all(Array.from({ length: 6 }, () => rawClient('felix', 'n1', { resume })));
  const tunnel = await Promise.all(['n1', 'n2', 'n3', 'n4'].map((n) => rawClient('tunnel-ip-allocation', n, { resume })));
  assert.deepEqual(felix.map((r) => deltaKeys(r, from)), felix.map(() => [[gnp.key, n2.key]]));
  assert.deepEqual(tunnel.map((r) => deltaKeys(r, from)), [[], [[n2.key]], [], []], 'only n2 had anything to catch up on');
  assert.equal(await built('catch-up') - catchUp0, 2, 'one catch-up frame for felix, one for n2\'s tunnel-ip client');

  // Clients whose caches are wrong in the same bucket: the repair is built once for all of them.
  const buckets = 8;
  const digest = store.digest(new ViewFilter('felix', ''), buckets);
  digest[2 * 3]! ^= 1;
  const hello = { digest: { scheme: DIGEST_SCHEME, buckets, hashes: digestToWire(digest) } };
  const repair0 = await built('repair');
  const repaired = await Promise.all(Array.from({ length: 6 }, () => rawClient('felix', 'n1', hello)));
  const frames = repaired.map((r) => r.frames.filter((f) => f.msg.t === 'repair'));
  assert.ok(frames[0]!.length > 0);
  for (const f of frames) assert.deepEqual(f, frames[0], 'the same repair for each');
  assert.deepEqual(Buffer.from(frames[0]![0]!.msg.differ as Uint8Array), bucketsToWire([3]));
  assert.equal(await built('repair') - repair0, frames[0]!.length, 'built once');
});
