// Ingest and dedupe: no-op suppression, per-key coalescing, status ordering, validation,
// batch sizing, key parsing and canonical encoding. In-process, no sockets.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { Ingest } from '../dedupe/ingest.js';
import type { Change } from '../src/model/change.js';
import { prepare } from '../dedupe/prepare.js';
import { ViewFilter } from '../src/model/view-filter.js';
import { Store, type Batch } from '../snapshot/store.js';
import type { DatastoreEvent } from '../src/datastore/datastore.js';
import { silentLogger } from '../src/logging.js';
import { Metrics } from '../src/metrics.js';
import { parseKey } from '../src/model/kinds.js';
import { encodeValue } from '../src/protocol/canonical.js';
import xxhash from 'xxhash-wasm';
import { checksumHex, entryHash, hashLoaded, loadForHashing } from '../src/protocol/checksum.js';
import { unpackr } from '../src/protocol/codec.js';
import { decodeServerFrame, itemsFrame, type RawItem } from '../src/protocol/frames.js';
import type { SyncStatus } from '../src/protocol/messages.js';
import { node, resource, sleep, waitFor, wep } from './support/harness.js';
import { prng, testSeed } from './support/prng.js';
import { metricNamed } from './support/metrics.js';

// ---- helpers -------------------------------------------------------------------------------

type Event = { batch: Batch } | { status: SyncStatus };

function setup(opts: { windowMs?: number; maxBatchBytes?: number } = {}) {
  const metrics = new Metrics(false);
  const store = new Store(1 << 24, metrics);
  const ingest = new Ingest(store, { windowMs: opts.windowMs ?? 50, maxBatchBytes: opts.maxBatchBytes ?? 1 << 20 }, metrics, silentLogger);
  const events: Event[] = [];
  store.subscribe({ onBatch: (batch) => events.push({ batch }), onStatus: (status) => events.push({ status }) });
  const batches = () => events.flatMap((e) => ('batch' in e ? [e.batch] : []));
  const published = () => batches().flatMap((b) => decodeItemList(b.changes.map((c) => c.item)));
  return { metrics, store, ingest, events, batches, published };
}

function decodeItemList(items: readonly Buffer[]): RawItem[] {
  return decodeServerFrame(itemsFrame({ t: 'delta', from: 0, to: 0 }, items)).items ?? [];
}

let rev = 0;
const ev = (r: { key: string; value: unknown }): DatastoreEvent => ({ key: r.key, value: r.value, revision: String(++rev) });
const delEv = (key: string): DatastoreEvent => ({ key, value: null, revision: String(++rev) });

/** Recursively rebuilds an object with its keys in reverse order. */
function reversed(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(reversed);
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v).reverse()) out[k] = reversed((v as Record<string, unknown>)[k]);
    return out;
  }
  return v;
}

const clone = <T>(v: T): T => structuredClone(v);

/** Polls an async condition (metrics are read asynchronously). */
async function until(cond: () => Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

// ---- no-op suppression ---------------------------------------------------------------------

describe('no-op suppression', () => {
  test('a write that changes only the revision moves the stored revision on, unpublished (replicas agree on it)', () => {
    const { ingest, store, published } = setup();
    const a = wep('n1', 'a', 'default', { v: '1' });
    ingest.onUpdates([ev(a)]);
    ingest.flush();
    const head = store.head;
    // A change and its undoing within one window coalesce to the stored value, as the same value
    // written again does: nothing to publish, but the datastore's revision of the key moved on.
    ingest.onUpdates([ev(wep('n1', 'a', 'default', { v: '2' })), ev(a)]);
    ingest.flush();
    assert.equal(store.head, head, 'nothing published');
    assert.equal(published().length, 1);
    const filter = new ViewFilter('felix', '');
    const repaired = decodeItemList(store.repair(filter, new Uint32Array(2).fill(1)).items);
    assert.deepEqual(repaired.map((i) => [i.key, i.revision]), [[a.key, String(rev)]], 'a repair carries the newest revision');
    // Older revisions never replace newer ones.
    ingest.onUpdates([{ key: a.key, value: a.value, revision: '1' }]);
    ingest.flush();
    assert.equal(decodeItemList(store.repair(filter, new Uint32Array(2).fill(1)).items)[0]!.revision, String(rev));
  });

  test('same content (again, new resourceVersion, other field order) is published once', async () => {
    const { ingest, metrics, store, published } = setup();
    const n = node('noop', { asNumber: 64512, labels: { a: '1', b: '2' } });
    (n.value.metadata as Record<string, unknown>).resourceVersion = '100';

    ingest.onUpdates([ev(n)]);
    ingest.flush();
    const head = store.head;
    assert.equal(head, 1);

    ingest.onUpdates([ev(n)]); // the same again
    ingest.flush();
    const rv = clone(n);
    (rv.value.metadata as Record<string, unknown>).resourceVersion = '101';
    ingest.onUpdates([ev(rv)]); // only metadata.resourceVersion changed
    ingest.flush();
    const order = { key: n.key, value: reversed(n.value) };
    assert.notEqual(JSON.stringify(order.value), JSON.stringify(n.value), 'the field order really differs');
    ingest.onUpdates([ev(order)]); // fields in a different order
    ingest.flush();

    assert.equal(store.head, head, 'nothing more was published');
    assert.equal(published().length, 1);
    for (const syncer of ['felix', 'bgp', 'tunnel-ip-allocation']) {
      assert.equal(await metricNamed(metrics, 'typha_updates_skipped', { syncer }), 3, `skipped for ${syncer}`);
      assert.equal(await metricNamed(metrics, 'typha_updates_total', { syncer }), 4, `total for ${syncer}`);
      assert.equal(await metricNamed(metrics, 'calico_fanout_updates_published_total', { syncer }), 1);
    }
    assert.equal(await metricNamed(metrics, 'typha_updates_skipped', { syncer: 'node-status' }), 0);
    assert.equal(await metricNamed(metrics, 'calico_fanout_datastore_updates_total'), 4);

    // A real change goes through.
    ingest.onUpdates([ev(node('noop', { asNumber: 64513, labels: { a: '1', b: '2' } }))]);
    ingest.flush();
    assert.equal(store.head, head + 1);
  });

  test('deleting what is not there, or is already deleted, is a no-op', async () => {
    const { ingest, metrics, store } = setup();
    const n = node('gone');
    ingest.onUpdates([delEv(n.key)]);
    ingest.flush();
    assert.equal(store.head, 0);
    ingest.onUpdates([ev(n)]);
    ingest.flush();
    ingest.onUpdates([delEv(n.key)]);
    ingest.flush();
    assert.equal(store.head, 2);
    ingest.onUpdates([delEv(n.key)]);
    ingest.flush();
    assert.equal(store.head, 2);
    assert.equal(await metricNamed(metrics, 'typha_updates_skipped', { syncer: 'felix' }), 2);
  });

  test('the timer path dedupes too', async () => {
    const { ingest, store, metrics } = setup({ windowMs: 10 });
    const n = node('timer');
    ingest.onUpdates([ev(n)]);
    await waitFor(() => store.head === 1, 'the first flush');
    ingest.onUpdates([ev({ key: n.key, value: reversed(n.value) })]);
    await until(async () => (await metricNamed(metrics, 'typha_updates_total', { syncer: 'felix' })) === 2, 'the second flush');
    assert.equal(store.head, 1);
    assert.equal(await metricNamed(metrics, 'typha_updates_skipped', { syncer: 'felix' }), 1);
    ingest.stop();
  });
});

// ---- coalescing ----------------------------------------------------------------------------

describe('per-key coalescing', () => {
  test('several updates of one key in a window → one change carrying the last value', async () => {
    const { ingest, metrics, published, batches } = setup({ windowMs: 50 });
    const key = node('co').key;
    for (let i = 0; i < 5; i++) ingest.onUpdates([ev(node('co', { gen: i }))]);
    const other = node('other');
    ingest.onUpdates([ev(other)]);
    await waitFor(() => batches().length > 0, 'a flush');
    await sleep(70); // more than a window: nothing else is coming
    ingest.stop();
    const items = published();
    assert.equal(items.length, 2, 'one change per key');
    const co = items.find((x) => x.key === key)!;
    assert.deepEqual((unpackr.unpack(co.value!) as any).spec.gen, 4);
    assert.equal(co.revision, String(rev - 1), 'the last revision of the key');
    assert.equal(batches().length, 1);
    assert.equal(await metricNamed(metrics, 'calico_fanout_updates_coalesced_total'), 4);
    assert.equal(await metricNamed(metrics, 'calico_fanout_datastore_updates_total'), 6);
  });

  test('updates arriving within the window after a flush are coalesced into the next one', async () => {
    const { ingest, metrics, published, batches } = setup({ windowMs: 1000 });
    ingest.onUpdates([ev(node('w', { gen: 'first' }))]);
    // The first one after a quiet spell is flushed on the next turn.
    await waitFor(() => batches().length === 1, 'the first flush', 5000);
    for (let i = 0; i < 4; i++) {
      ingest.onUpdates([ev(node('w', { gen: i }))]);
      await sleep(2);
    }
    assert.equal(batches().length, 1, 'held back until the window has passed');
    await waitFor(() => batches().length === 2, 'the windowed flush', 5000);
    await sleep(20);
    ingest.stop();
    assert.equal(batches().length, 2);
    const items = published();
    assert.equal(items.length, 2);
    assert.equal((unpackr.unpack(items[1]!.value!) as any).spec.gen, 3);
    assert.equal(await metricNamed(metrics, 'calico_fanout_updates_coalesced_total'), 3);
  });

  test('A → B → A within one window publishes nothing when A is stored', async () => {
    const { ingest, metrics, store } = setup({ windowMs: 50 });
    const a = node('aba', { v: 'A' });
    const b = node('aba', { v: 'B' });
    ingest.onUpdates([ev(a)]);
    ingest.flush();
    assert.equal(store.head, 1);
    const skippedBefore = await metricNamed(metrics, 'typha_updates_skipped', { syncer: 'felix' });
    ingest.onUpdates([ev(b)]);
    ingest.onUpdates([ev(b), ev(a)]);
    await until(async () => (await metricNamed(metrics, 'typha_updates_skipped', { syncer: 'felix' })) > skippedBefore, 'the flush');
    ingest.stop();
    assert.equal(store.head, 1, 'nothing published');
    assert.deepEqual(unpackr.unpack(store.valueOf(a.key)!), unpackr.unpack(encodeValue(a.value)));
    assert.equal(await metricNamed(metrics, 'calico_fanout_updates_coalesced_total'), 2);
    assert.equal(await metricNamed(metrics, 'typha_updates_skipped', { syncer: 'felix' }), skippedBefore + 1);
  });

  test('create then delete of a new key within a window publishes nothing', async () => {
    const { ingest, store, metrics } = setup({ windowMs: 50 });
    const n = node('flash');
    ingest.onUpdates([ev(n), delEv(n.key)]);
    await until(async () => (await metricNamed(metrics, 'typha_updates_skipped', { syncer: 'felix' })) === 1, 'the flush');
    ingest.stop();
    assert.equal(store.head, 0);
    assert.equal(store.valueOf(n.key), undefined);
  });
});

// ---- status ordering -----------------------------------------------------------------------

describe('status ordering', () => {
  test('updates received before a status are published before it', async () => {
    const { ingest, events, store } = setup({ windowMs: 50 });
    ingest.onUpdates([ev(node('s1')), ev(node('s2'))]);
    ingest.onStatus('in-sync');
    assert.equal(events.length, 2);
    assert.ok('batch' in events[0]!);
    assert.equal((events[0] as { batch: Batch }).batch.changes.length, 2);
    assert.deepEqual(events[1], { status: 'in-sync' });
    assert.equal(store.status, 'in-sync');
    await sleep(70);
    assert.equal(events.length, 2, 'the pending flush was cancelled, nothing is published twice');

    ingest.onUpdates([ev(node('s3'))]);
    ingest.onStatus('resync-in-progress');
    ingest.onStatus('resync-in-progress'); // repeated status: not re-announced
    assert.deepEqual(events.slice(2).map((e) => ('batch' in e ? 'batch' : e.status)), ['batch', 'resync-in-progress']);
    ingest.stop();
  });
});

// ---- watermarks and batching ----------------------------------------------------------------

describe('watermarks and batching', () => {
  test('datastore responses each with a watermark, within one window, make one batch; the watermark follows its changes', () => {
    const { ingest, store, batches } = setup({ windowMs: 60_000 });
    ingest.onUpdates([ev(node('first'))]);
    ingest.flush(); // the window starts here: what follows within it is held back
    const progressAt: { revision: number; head: number }[] = [];
    const setProgress = store.setProgress.bind(store);
    store.setProgress = (r: number) => { progressAt.push({ revision: r, head: store.head }); setProgress(r); };
    // What the etcd adapter does per watch response: its events, then how far it has delivered.
    for (let i = 0; i < 20; i++) {
      const e = ev(node(`burst-${i}`));
      ingest.onUpdates([e]);
      ingest.onProgress(e.revision);
    }
    assert.equal(batches().length, 1, 'nothing published within the window, watermarks included');
    assert.deepEqual(progressAt, []);
    ingest.flush();
    assert.equal(batches().length, 2, 'the 20 responses as one batch');
    assert.equal(batches()[1]!.changes.length, 20);
    assert.deepEqual(progressAt, [{ revision: rev, head: store.head }], 'the newest watermark, once its changes are published');
    assert.equal(store.maxRevision, rev);
    // With nothing pending a watermark has nothing to wait for.
    ingest.onProgress(String(rev + 5));
    assert.deepEqual(progressAt.at(-1), { revision: rev + 5, head: store.head });
    ingest.stop();
  });

  test('a status publishes the pending changes and then their watermark, before the status', () => {
    const { ingest, store, events } = setup({ windowMs: 60_000 });
    const seen: string[] = [];
    store.subscribe({ onBatch: () => seen.push('batch'), onStatus: (s) => seen.push(s), onProgress: () => seen.push(`progress ${store.maxRevision}`) });
    ingest.onUpdates([ev(node('x'))]);
    ingest.onProgress(String(rev));
    ingest.onStatus('in-sync');
    assert.deepEqual(seen, ['batch', `progress ${rev}`, 'in-sync']);
    assert.equal(events.length, 2);
    ingest.stop();
  });

  test('a batch\'s worth of pending bytes is published at once, not at the end of the window', () => {
    const { ingest, batches } = setup({ windowMs: 60_000, maxBatchBytes: 2000 });
    ingest.onUpdates([ev(node('first'))]);
    ingest.flush();
    const rs = Array.from({ length: 10 }, (_, i) => wep('n1', `pod-${i}`));
    for (const r of rs.slice(0, 2)) ingest.onUpdates([ev(r)]);
    assert.equal(batches().length, 1, 'under the bound: held for the window');
    for (const r of rs.slice(2)) ingest.onUpdates([ev(r)]);
    assert.ok(batches().length > 1, 'over it: published without waiting');
    ingest.stop();
  });
});

// ---- bad values ----------------------------------------------------------------------------

describe('bad values', () => {
  test('invalid values are dropped and counted by kind; valid ones in the same call go through', async () => {
    const { ingest, metrics, store, published } = setup();
    const good1 = node('good1');
    const good2 = wep('good2', 'pod');
    const P = '/calico/resources/v3/projectcalico.org/';
    const bad: DatastoreEvent[] = [
      { key: `${P}nodes/wrongkind`, value: { ...node('wrongkind').value, kind: 'IPPool' }, revision: '1' },
      { key: `${P}nodes/wrongname`, value: node('another').value, revision: '1' },
      { key: `${P}nodes/nometa`, value: { kind: 'Node', spec: {} }, revision: '1' },
      { key: `${P}nodes/str`, value: 'a string', revision: '1' },
      { key: `${P}nodes/arr`, value: [1, 2, 3], revision: '1' },
      { key: `${P}nodes/num`, value: 42, revision: '1' },
      { key: `${P}nodes/specstr`, value: { ...node('specstr').value, spec: 'x' }, revision: '1' },
      { key: `${P}nodes/specarr`, value: { ...node('specarr').value, spec: [] }, revision: '1' },
      { key: `${P}nodes/specnull`, value: { ...node('specnull').value, spec: null }, revision: '1' },
      { key: `${P}nodes/bytes`, value: Buffer.from('{}'), revision: '1' },
    ];
    const badWep = { ...wep('n1', 'x').value, metadata: { ...wep('n1', 'x').value.metadata, namespace: 'elsewhere' } };
    const wepKey = wep('n1', 'x').key;
    ingest.onUpdates([ev(good1), ...bad, { key: wepKey, value: badWep, revision: '1' }, ev(good2)]);
    ingest.flush();

    assert.deepEqual(published().map((x) => x.key).sort(), [good1.key, good2.key].sort());
    for (const b of bad) assert.equal(store.valueOf(b.key), undefined, `${b.key} kept out`);
    assert.equal(store.valueOf(wepKey), undefined);
    assert.equal(await metricNamed(metrics, 'calico_fanout_invalid_values_total', { kind: 'Node' }), bad.length);
    assert.equal(await metricNamed(metrics, 'calico_fanout_invalid_values_total', { kind: 'WorkloadEndpoint' }), 1);
    assert.equal(await metricNamed(metrics, 'calico_fanout_ignored_keys_total'), 0);
  });

  test('keys outside the layout are ignored and counted', async () => {
    const { ingest, metrics, store } = setup();
    const good = node('fine');
    ingest.onUpdates([
      { key: '/calico/foo/bar', value: { x: 1 }, revision: '1' },
      { key: '/calico/resources/v3/projectcalico.org/unknownplural/x', value: { metadata: { name: 'x' } }, revision: '1' },
      { key: '/calico/resources/v3/projectcalico.org/workloadendpoints/only-name', value: wep('n', 'p').value, revision: '1' },
      { key: '/calico/ipam/v2/host/n1/ipv5/block/10-0-0-0-26', value: {}, revision: '1' },
      ev(good),
      { key: '/calico/foo/bar', value: null, revision: '2' },
    ]);
    ingest.flush();
    assert.equal(await metricNamed(metrics, 'calico_fanout_ignored_keys_total'), 5);
    assert.equal(store.head, 1);
    assert.equal(store.size, 1);
    assert.notEqual(store.valueOf(good.key), undefined);
  });
});

// ---- batch size ----------------------------------------------------------------------------

describe('maxBatchBytes', () => {
  test('one big onUpdates becomes several contiguous batches of bounded size', async () => {
    const max = 600;
    const { ingest, store, batches } = setup({ maxBatchBytes: max });
    const rs = Array.from({ length: 40 }, (_, i) => wep(`node-${i % 5}`, `pod-${i}`));
    const sizes = new Map(rs.map((r) => {
      const p = prepare(ev(r));
      assert.ok(p.ok);
      return [r.key, r.key.length + p.change.value!.length] as const;
    }));
    ingest.onUpdates(rs.map(ev));
    await waitFor(() => store.head === 40, 'all published');
    ingest.stop();
    const bs = batches();
    assert.ok(bs.length > 3, `several batches (${bs.length})`);
    let from = 0;
    const keysOf = (b: Batch) => decodeItemList(b.changes.map((c) => c.item)).map((x) => x.key);
    for (const [i, b] of bs.entries()) {
      assert.equal(b.from, from, `batch ${i} contiguous`);
      assert.equal(b.to - b.from, b.changes.length);
      from = b.to;
      const bytes = keysOf(b).map((k) => sizes.get(k)!);
      const total = bytes.reduce((a, x) => a + x, 0);
      // Bounded: without its last change a batch was below the bound...
      assert.ok(total - bytes.at(-1)! < max, `batch ${i} (${total} bytes) was cut once full`);
      // ...and not cut early: the next change would have reached it.
      if (i < bs.length - 1) assert.ok(total + sizes.get(keysOf(bs[i + 1]!)[0]!)! >= max, `batch ${i} is not cut early`);
    }
    assert.equal(from, store.head);
    assert.equal(store.head, 40);
    // Every update made it, in order.
    assert.deepEqual(bs.flatMap((b) => decodeItemList(b.changes.map((c) => c.item)).map((x) => x.key)), rs.map((r) => r.key));
  });
});

// ---- prepare() -----------------------------------------------------------------------------

describe('prepare()', () => {
  const ok = (e: DatastoreEvent): Change => {
    const p = prepare(e);
    assert.ok(p.ok, `prepared ${e.key}: ${JSON.stringify(p)}`);
    return p.change;
  };

  test('namespaced resource: kind, node from spec.node, canonical value, revision', () => {
    const r = wep('node-7', 'web-1', 'prod');
    const c = ok({ key: r.key, value: r.value, revision: '77' });
    assert.equal(r.key, '/calico/resources/v3/projectcalico.org/workloadendpoints/prod/node--7-k8s-web--1-eth0');
    assert.deepEqual({ key: c.key, kind: c.kind, node: c.node, revision: c.revision }, { key: r.key, kind: 'WorkloadEndpoint', node: 'node-7', revision: '77' });
    assert.ok(c.value && c.value.equals(encodeValue(r.value)));
    assert.deepEqual(parseKey(r.key), { kind: 'WorkloadEndpoint', namespace: 'prod', name: 'node--7-k8s-web--1-eth0' });
    const np = resource('NetworkPolicy', { name: 'allow', namespace: 'prod' }, { selector: 'all()' });
    assert.deepEqual({ ...ok(ev(np)), value: null, revision: '' }, { key: np.key, kind: 'NetworkPolicy', node: undefined, value: null, revision: '' });
  });

  test('cluster resources: Node scoped to itself, others cluster-wide', () => {
    const n = node('node-a');
    assert.equal(n.key, '/calico/resources/v3/projectcalico.org/nodes/node-a');
    const c = ok(ev(n));
    assert.equal(c.kind, 'Node');
    assert.equal(c.node, 'node-a');
    const g = resource('GlobalNetworkPolicy', { name: 'default.deny' }, { selector: 'all()', order: 100 });
    const cg = ok(ev(g));
    assert.equal(cg.kind, 'GlobalNetworkPolicy');
    assert.equal(cg.node, undefined);
    const st = resource('CalicoNodeStatus', { name: 'st' }, { node: 'node-b' });
    assert.equal(ok(ev(st)).node, 'node-b');
    assert.equal(ok(ev(resource('CalicoNodeStatus', { name: 'st2' }, {}))).node, undefined);
    // kind may be omitted in the stored value.
    const { kind: _k, ...noKind } = g.value;
    assert.equal(ok({ key: g.key, value: noKind, revision: '1' }).kind, 'GlobalNetworkPolicy');
  });

  test('IPAM block and block affinity keys', () => {
    const bk = '/calico/ipam/v2/assignment/ipv4/block/10.0.0.0-26';
    const b = ok({ key: bk, value: { cidr: '10.0.0.0/26', affinity: 'host:n1', allocations: [0, null] }, revision: '3' });
    assert.equal(b.kind, 'IPAMBlock');
    assert.equal(b.node, undefined);
    assert.deepEqual(parseKey('/calico/ipam/v2/assignment/ipv6/block/fd00::-122'), { kind: 'IPAMBlock', name: 'fd00::-122' });

    const ak = '/calico/ipam/v2/host/node-9/ipv4/block/10-0-0-0-26';
    const a = ok({ key: ak, value: { state: 'confirmed', deleted: false }, revision: '4' });
    assert.equal(a.kind, 'BlockAffinity');
    assert.equal(a.node, 'node-9', 'node taken from the path');
    // Even when the value names another node, the path decides.
    assert.equal(ok({ key: ak, value: { state: 'confirmed', node: 'other' }, revision: '5' }).node, 'node-9');
    assert.deepEqual(parseKey(ak), { kind: 'BlockAffinity', name: 'node-9-10-0-0-0-26', host: 'node-9' });

    // Calico's own keys that no syncer reads: known, but served by no view.
    assert.deepEqual(prepare({ key: '/calico/ipam/v2/handle/h1', value: { handleID: 'h1' }, revision: '1' }), { ok: false, ignored: false, unserved: true, kind: 'IPAMHandle' });
    assert.deepEqual(prepare({ key: '/calico/ipam/v2/config', value: { strictAffinity: false }, revision: '1' }), { ok: false, ignored: false, unserved: true, kind: 'IPAMConfig' });
  });

  test('deletions: no value, no node (the store keeps the old one)', () => {
    const c = ok({ key: node('x').key, value: null, revision: '9' });
    assert.deepEqual(c, { key: node('x').key, kind: 'Node', node: undefined, value: null, revision: '9' });
    assert.equal(ok({ key: node('y').key, value: undefined, revision: '10' }).value, null);
  });

  test('what Felix\'s syncer leaves out reads as a deletion: a WEP without ipNetworks, a staged deletion', () => {
    const r = wep('node-7', 'web-1', 'prod');
    const { ipNetworks: _nets, ...noNets } = r.value.spec;
    for (const spec of [noNets, { ...noNets, ipNetworks: [] }]) {
      assert.deepEqual(ok({ key: r.key, value: { ...r.value, spec }, revision: '5' }), { key: r.key, kind: 'WorkloadEndpoint', node: undefined, value: null, revision: '5' });
    }
    for (const kind of ['StagedNetworkPolicy', 'StagedGlobalNetworkPolicy', 'StagedKubernetesNetworkPolicy']) {
      const ns = kind === 'StagedGlobalNetworkPolicy' ? {} : { namespace: 'prod' };
      const del = resource(kind, { name: 'p', ...ns }, { stagedAction: 'Delete' });
      assert.equal(ok(ev(del)).value, null, `${kind} Delete`);
      const set = resource(kind, { name: 'p', ...ns }, { stagedAction: 'Set' });
      assert.ok(ok(ev(set)).value, `${kind} Set is carried`);
      assert.ok(ok(ev(resource(kind, { name: 'p', ...ns }, {}))).value, `${kind} without stagedAction is carried`);
    }
    // Still checked first: a bad value is rejected, not turned into a deletion.
    const bad = prepare({ key: r.key, value: { ...r.value, metadata: { name: 'other' }, spec: noNets }, revision: '6' });
    assert.ok(!bad.ok && !bad.ignored && !bad.unserved && /metadata\.name/.test(bad.reason));
  });

  test('rejections carry the kind; unknown layouts are ignored', () => {
    const r = prepare({ key: node('m').key, value: node('n').value, revision: '1' });
    assert.equal(r.ok, false);
    assert.ok(!r.ok && !r.ignored && !r.unserved && r.kind === 'Node' && /metadata\.name/.test(r.reason));
    const ign = prepare({ key: '/calico/v1/config/Foo', value: {}, revision: '1' });
    assert.deepEqual(ign, { ok: false, ignored: true });
    for (const k of [
      '/calico/resources/v3/projectcalico.org/nodes/',
      '/calico/resources/v3/projectcalico.org/nodes/a/b',
      '/calico/resources/v3/projectcalico.org/networkpolicies/ns',
      '/calico/ipam/v2/assignment/ipv4/blocks/10.0.0.0-26',
      '/calico/ipam/v2/host//ipv4/block/10-0-0-0-26',
      '/other/resources/v3/projectcalico.org/nodes/a',
    ]) assert.equal(parseKey(k), undefined, k);
  });
});

// ---- parseKey ------------------------------------------------------------------------------

describe('parseKey', () => {
  // The v3 part as first written (split on "/"), to hold the faster reading against.
  const PLURALS: Record<string, [string, boolean]> = {
    nodes: ['Node', false], workloadendpoints: ['WorkloadEndpoint', true], networkpolicies: ['NetworkPolicy', true],
    ippools: ['IPPool', false], kubernetesservice: ['KubernetesService', true], profiles: ['Profile', false],
  };
  const P = '/calico/resources/v3/projectcalico.org/';
  function bySplit(key: string) {
    const parts = key.slice(P.length).split('/');
    const info = PLURALS[parts[0]!];
    if (!info) return undefined;
    if (info[1]) return parts.length === 3 && parts[1] && parts[2] ? { kind: info[0], namespace: parts[1], name: parts[2] } : undefined;
    return parts.length === 2 && parts[1] ? { kind: info[0], name: parts[1] } : undefined;
  }

  test('v3 keys read as splitting the path on "/" reads them, whatever kind came before', () => {
    const seed = testSeed('parse-key');
    const rnd = prng(seed);
    const pieces = ['', 'nodes', 'node', 'nodess', 'workloadendpoints', 'networkpolicies', 'ippools', 'kubernetesservice', 'profiles', 'ns', 'a', 'x/y', '/'];
    let parsed = 0;
    for (let i = 0; i < 20_000; i++) {
      let k = P;
      const n = Math.floor(rnd() * 5);
      for (let j = 0; j < n; j++) k += (j ? '/' : '') + pieces[Math.floor(rnd() * pieces.length)];
      if (rnd() < 0.2) k += '/';
      const want = bySplit(k);
      assert.deepEqual(parseKey(k), want, `${JSON.stringify(k)} (TEST_SEED=${seed})`);
      if (want) parsed++;
    }
    assert.ok(parsed > 500, `enough keys parse (${parsed})`);
  });
});

// ---- canonical encoding --------------------------------------------------------------------

describe('canonical encoding', () => {
  const doc = {
    apiVersion: 'projectcalico.org/v3', kind: 'Node',
    metadata: { name: 'n1', labels: { z: '1', a: '2' }, resourceVersion: '12345', annotations: { k: 'v' } },
    spec: { bgp: { ipv4Address: '10.0.0.1/24', asNumber: 64512 }, addresses: [{ type: 'InternalIP', address: '10.0.0.1' }, { address: '10.0.0.2', type: 'ExternalIP' }] },
  };

  test('independent of key order at every depth', () => {
    const a = encodeValue(doc);
    const b = encodeValue(reversed(doc));
    assert.ok(a.equals(b));
    // Array order is content, though.
    const swapped = clone(doc);
    swapped.spec.addresses.reverse();
    assert.ok(!encodeValue(swapped).equals(a));
  });

  test('strips metadata.resourceVersion, and only that', () => {
    const withRv = encodeValue(doc);
    const { resourceVersion: _rv, ...meta } = doc.metadata;
    const without = encodeValue({ ...doc, metadata: meta });
    assert.ok(withRv.equals(without));
    assert.ok(encodeValue({ ...doc, metadata: { ...doc.metadata, resourceVersion: '999' } }).equals(withRv));
    const decoded = unpackr.unpack(withRv) as any;
    assert.equal('resourceVersion' in decoded.metadata, false);
    assert.deepEqual(decoded, { ...doc, metadata: meta });
    // The input is left alone.
    assert.equal(doc.metadata.resourceVersion, '12345');
    // A resourceVersion anywhere else is content.
    const inSpec = encodeValue({ ...doc, spec: { ...doc.spec, resourceVersion: '1' } });
    assert.ok(!inSpec.equals(withRv));
    assert.equal((unpackr.unpack(inSpec) as any).spec.resourceVersion, '1');
  });

  test('undefined fields are the same as absent ones; values round-trip', () => {
    assert.ok(encodeValue({ a: 1, b: undefined }).equals(encodeValue({ a: 1 })));
    const v = { s: 'x', n: -3, f: 1.5, t: true, nil: null, arr: [1, 'two', { c: 3, b: 2 }], big: 2 ** 40 };
    assert.deepEqual(unpackr.unpack(encodeValue(v)), v);
    assert.ok(!encodeValue({ a: 1 }).equals(encodeValue({ a: '1' })));
  });

  test('entryHash is deterministic and separates key from value', () => {
    const v = encodeValue(doc);
    const h = entryHash('/k', v);
    assert.equal(typeof h, 'bigint');
    assert.equal(entryHash('/k', v), h);
    assert.equal(entryHash('/k', Buffer.from(v)), h, 'same bytes, another buffer');
    assert.equal(entryHash('/k', encodeValue(reversed(doc))), h);
    assert.notEqual(entryHash('/k2', v), h);
    assert.notEqual(entryHash('/k', encodeValue({ ...doc, spec: {} })), h);
    // key ‖ 0x00 ‖ value: moving a byte across the boundary changes the hash.
    assert.notEqual(entryHash('ab', Buffer.from([1])), entryHash('a', Buffer.from([0x62, 1])));
    assert.ok(h >= 0n && h < 1n << 64n);
    // A value larger than the initial scratch buffer hashes consistently as well.
    const large = encodeValue({ blob: 'x'.repeat(100_000) });
    const hl = entryHash('/large', large);
    assert.equal(entryHash('/large', large), hl);
    assert.equal(entryHash('/k', v), h, 'scratch growth does not disturb small hashes');
    assert.match(checksumHex(h), /^[0-9a-f]{16}$/);
    assert.equal(checksumHex(1n), '0000000000000001');
  });

  test('the entry hash is xxh64 as the xxhash-wasm package computes it, for inputs of every size', async () => {
    // checksum.ts runs the package's module directly; a different build of it must not go unnoticed.
    const { h64Raw } = await xxhash();
    const bytes = Buffer.from(Array.from({ length: 200_010 }, (_, i) => (i * 7919) & 0xff));
    for (const len of [0, 1, 31, 32, 33, 450, 65_537, 200_000]) {
      loadForHashing(bytes);
      assert.equal(hashLoaded(3, 3 + len), h64Raw(bytes.subarray(3, 3 + len)), `length ${len}`);
    }
    // A view is loaded from its own start, not from its backing store's.
    loadForHashing(bytes.subarray(10, 20));
    assert.equal(hashLoaded(0, 10), h64Raw(bytes.subarray(10, 20)));
    assert.equal(entryHash('/k', Buffer.from([1, 2])), h64Raw(Buffer.from([0xa2, 0x2f, 0x6b, 0xc4, 2, 1, 2])));
  });
});
