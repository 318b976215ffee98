// The versioned store, in-process: sequence numbers, catch-up, history eviction, per-view
// checksums, view filtering and the shared snapshot cache. No sockets.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { Ingest } from '../dedupe/ingest.js';
import { prepare, type Change } from '../dedupe/prepare.js';
import { ViewFilter } from '../dedupe/view-filter.js';
import { SnapshotCache } from '../snapshot/snapshots.js';
import { Store, type Batch } from '../snapshot/store.js';
import { silentLogger } from '../src/logging.js';
import { Metrics } from '../src/metrics.js';
import { SYNCER_TYPES, type SyncerType } from '../src/model/views.js';
import { encodeValue } from '../src/protocol/canonical.js';
import { entryHash } from '../src/protocol/checksum.js';
import { unpackr } from '../src/protocol/codec.js';
import { decodeServerFrame, itemsFrame, type RawItem } from '../src/protocol/frames.js';
import type { SyncStatus } from '../src/protocol/messages.js';
import { node, resource, sleep, wep } from './support/harness.js';

// ---- helpers -------------------------------------------------------------------------------

function mulberry32(seed: number): () => number {
  let a = seed;
  return () => {
    a |= 0;
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function mkStore(historyMaxBytes = 1 << 24) {
  const metrics = new Metrics(false);
  const store = new Store(historyMaxBytes, metrics);
  return { metrics, store };
}

let revCounter = 0;
function change(key: string, value: unknown, revision = String(++revCounter)): Change {
  const p = prepare({ key, value, revision });
  if (!p.ok) throw new Error(`prepare rejected ${key}: ${JSON.stringify(p)}`);
  return p.change;
}

function put(store: Store, key: string, value: unknown): void {
  store.apply([change(key, value)]);
}

function del(store: Store, key: string): void {
  store.apply([change(key, null)]);
}

function decodeItems(store: Store, from: number, items: readonly Buffer[]): RawItem[] {
  const f = decodeServerFrame(itemsFrame({ t: 'delta', from, to: store.head }, items));
  assert.equal(f.msg.t, 'delta');
  assert.equal(f.msg.from, from);
  assert.equal(f.msg.to, store.head);
  return f.items ?? [];
}

const obj = (b: Buffer | null): unknown => (b === null ? null : unpackr.unpack(b));

/** key → hex of the canonical value bytes, as a client of `filter` would hold it. */
function stateOf(store: Store, filter: ViewFilter): Map<string, string> {
  const m = new Map<string, string>();
  for (const e of store.entries(filter)) {
    assert.ok(e.value, 'entries() yields live entries only');
    m.set(e.key, e.value.toString('hex'));
  }
  return m;
}

function applyItems(state: Map<string, string>, items: readonly RawItem[]): Map<string, string> {
  const out = new Map(state);
  for (const it of items) {
    if (it.value === null) out.delete(it.key);
    else out.set(it.key, it.value.toString('hex'));
  }
  return out;
}

async function metricValue(metrics: Metrics, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = metrics.registry.getSingleMetric(name);
  assert.ok(m, `metric ${name} exists`);
  const data = await m.get();
  const v = data.values.find((x) => Object.entries(labels).every(([k, l]) => x.labels[k] === l));
  return v?.value ?? 0;
}

const POOL = (name: string, extra: Record<string, unknown> = {}) =>
  resource('IPPool', { name }, { cidr: '10.0.0.0/16', ipipMode: 'Always', ...extra });
const STATUS = (name: string, nodeName: string, extra: Record<string, unknown> = {}) =>
  resource('CalicoNodeStatus', { name }, { node: nodeName, classes: ['Agent'], updatePeriodSeconds: 10, ...extra });
const AFFINITY_KEY = (nodeName: string, block = '10-0-0-0-26') => `/calico/ipam/v2/host/${nodeName}/ipv4/block/${block}`;
const AFFINITY = (extra: Record<string, unknown> = {}) => ({ state: 'confirmed', deleted: false, ...extra });
const BLOCK_KEY = (cidr: string) => `/calico/ipam/v2/assignment/ipv4/block/${cidr}`;

// ---- seq -----------------------------------------------------------------------------------

describe('sequence numbers', () => {
  test('store.apply: each change gets the next seq, batches are contiguous', () => {
    const { store } = mkStore();
    const batches: Batch[] = [];
    store.subscribe({ onBatch: (b) => batches.push(b), onStatus: () => {} });
    assert.equal(store.head, 0);
    const sizes = [1, 3, 2, 5, 1, 4];
    let i = 0;
    for (const n of sizes) {
      const before = store.head;
      const changes: Change[] = [];
      for (let j = 0; j < n; j++, i++) {
        const r = node(`n${i % 7}`, { i });
        changes.push(change(r.key, r.value));
      }
      store.apply(changes);
      assert.equal(store.head, before + n, 'head advances by the number of changes');
    }
    store.apply([]);
    assert.equal(batches.length, sizes.length, 'an empty apply publishes nothing');
    let expectFrom = 0;
    for (const [k, b] of batches.entries()) {
      assert.equal(b.from, expectFrom, `batch ${k} starts where the previous ended`);
      assert.equal(b.to - b.from, sizes[k]);
      assert.equal(b.changes.length, sizes[k]);
      expectFrom = b.to;
    }
    assert.equal(expectFrom, store.head);

    // The seq of each key's entry is that of its last change, and all are distinct.
    const seqs = [...store.entries(new ViewFilter('felix', ''))].map((e) => e.seq);
    assert.equal(new Set(seqs).size, seqs.length);
    assert.ok(seqs.every((s) => s > 0 && s <= store.head));
    // The last change is the only thing after head-1.
    const last = store.catchUp(store.head - 1, new ViewFilter('felix', ''))!;
    assert.equal(last.length, 1);
    assert.equal(decodeItems(store, store.head - 1, last)[0]!.key, node(`n${(i - 1) % 7}`).key);
  });

  test('strictly increasing seq per applied change, observed through catch-up', () => {
    const { store } = mkStore();
    const f = new ViewFilter('felix', '');
    const seen: number[] = [];
    for (let i = 0; i < 20; i++) {
      const r = node(`seq-${i}`);
      put(store, r.key, r.value);
      const e = [...store.entries(f)].find((x) => x.key === r.key)!;
      seen.push(e.seq);
    }
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i]! > seen[i - 1]!, `seq ${seen[i]} after ${seen[i - 1]}`);
    assert.deepEqual(seen, Array.from({ length: 20 }, (_, i) => i + 1));
  });

  test('through Ingest: listener batches are contiguous from 0 to head, and status follows them', async () => {
    const { store, metrics } = mkStore();
    const ingest = new Ingest(store, { windowMs: 5, maxBatchBytes: 400 }, metrics, silentLogger);
    const events: ({ batch: Batch } | { status: SyncStatus })[] = [];
    store.subscribe({ onBatch: (batch) => events.push({ batch }), onStatus: (status) => events.push({ status }) });
    let n = 0;
    for (let round = 0; round < 5; round++) {
      const evs = [];
      for (let j = 0; j < 12; j++, n++) {
        const r = wep(`node-${n % 3}`, `pod-${n}`);
        evs.push({ key: r.key, value: r.value, revision: String(n + 1) });
      }
      ingest.onUpdates(evs);
      await sleep(8);
    }
    ingest.onStatus('in-sync');
    ingest.stop();
    const batches = events.flatMap((e) => ('batch' in e ? [e.batch] : []));
    assert.ok(batches.length >= 5, `several batches (got ${batches.length})`);
    let from = 0;
    for (const b of batches) {
      assert.equal(b.from, from);
      assert.ok(b.to > b.from);
      assert.equal(b.changes.length, b.to - b.from);
      from = b.to;
    }
    assert.equal(from, store.head);
    assert.equal(store.head, 60);
    assert.deepEqual(events.at(-1), { status: 'in-sync' });
    assert.equal(store.status, 'in-sync');
  });
});

// ---- catch-up ------------------------------------------------------------------------------

describe('catch-up', () => {
  test('returns the latest value of each key changed since the position, once', () => {
    const { store } = mkStore();
    const felix = new ViewFilter('felix', '');
    const a = node('a'), b = node('b'), c = node('c'), d = node('d');
    for (const r of [a, b, c, d]) put(store, r.key, r.value);
    put(store, c.key, node('c', { touched: 'before s' }).value); // changed before s: must not appear
    const s = store.head;

    for (let i = 0; i < 50; i++) put(store, a.key, node('a', { gen: i }).value);
    put(store, b.key, node('b', { gen: 'b1' }).value);

    const items = store.catchUp(s, felix);
    assert.ok(items, 'position s is above the floor');
    assert.equal(items.length, 2);
    const decoded = decodeItems(store, s, items);
    assert.deepEqual(decoded.map((x) => x.key), [a.key, b.key], 'oldest last-change first');
    assert.deepEqual((obj(decoded[0]!.value) as any).spec.gen, 49);
    assert.deepEqual(obj(decoded[0]!.value), obj(encodeValue(node('a', { gen: 49 }).value)));
    assert.deepEqual(obj(decoded[1]!.value), obj(encodeValue(node('b', { gen: 'b1' }).value)));
    assert.ok(decoded.every((x) => x.key !== c.key && x.key !== d.key));

    // A deletion after s appears as a nil-valued item.
    del(store, d.key);
    const items2 = store.catchUp(s, felix)!;
    assert.equal(items2.length, 3);
    const decoded2 = decodeItems(store, s, items2);
    assert.deepEqual(decoded2.map((x) => x.key), [a.key, b.key, d.key]);
    assert.equal(decoded2[2]!.value, null);
    assert.equal(store.valueOf(d.key), null, 'a deleted key reads as a tombstone');

    // Key changed at s exactly is not included; from the head there is nothing; past it → undefined.
    assert.deepEqual(store.catchUp(store.head, felix), []);
    assert.equal(store.catchUp(store.head + 1, felix), undefined);
    // A view that does not carry the kind gets nothing (but is not forced to a snapshot).
    assert.deepEqual(store.catchUp(s, new ViewFilter('node-status', 'a')), []);
  });

  test('catch-up follows the view filter and node scope', () => {
    const { store } = mkStore();
    const s0 = store.head;
    put(store, node('n1').key, node('n1').value);
    put(store, node('n2').key, node('n2').value);
    put(store, wep('n1', 'p').key, wep('n1', 'p').value);
    put(store, STATUS('st1', 'n1').key, STATUS('st1', 'n1').value);
    const keys = (f: ViewFilter) => decodeItems(store, s0, store.catchUp(s0, f)!).map((x) => x.key).sort();
    assert.deepEqual(keys(new ViewFilter('tunnel-ip-allocation', 'n1')), [node('n1').key]);
    assert.deepEqual(keys(new ViewFilter('node-status', 'n1')), [STATUS('st1', 'n1').key]);
    assert.deepEqual(keys(new ViewFilter('node-status', 'n2')), []);
    assert.deepEqual(keys(new ViewFilter('felix', '')), [node('n1').key, node('n2').key, wep('n1', 'p').key].sort());
    // A deletion of a node-scoped entry still reaches that node's clients (it keeps its node).
    const s1 = store.head;
    del(store, STATUS('st1', 'n1').key);
    const items = decodeItems(store, s1, store.catchUp(s1, new ViewFilter('node-status', 'n1'))!);
    assert.deepEqual(items.map((x) => [x.key, x.value]), [[STATUS('st1', 'n1').key, null]]);
    assert.deepEqual(store.catchUp(s1, new ViewFilter('node-status', 'n2')), []);
  });

  test('snapshot state at p + catchUp(p) == state at head, for every position (random ops, eviction on)', () => {
    const rnd = mulberry32(0xc0ffee);
    const { store } = mkStore(6000);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
    const nodes = ['n1', 'n2', 'n3'];
    const filters = [
      new ViewFilter('felix', ''), new ViewFilter('bgp', ''),
      ...nodes.flatMap((n) => [new ViewFilter('tunnel-ip-allocation', n), new ViewFilter('node-status', n)]),
    ];
    // Keys whose node never changes (CalicoNodeStatus keeps its node here; see the todo test).
    const makers: (() => { key: string; value: unknown })[] = [
      ...nodes.map((n) => () => node(n, { v: Math.floor(rnd() * 4) })),
      ...Array.from({ length: 6 }, (_, i) => () => resource('WorkloadEndpoint', { name: `w${i}`, namespace: 'default' }, { node: pick(nodes), v: Math.floor(rnd() * 3) })),
      ...Array.from({ length: 6 }, (_, i) => () => STATUS(`s${i}`, nodes[i % 3]!, { v: Math.floor(rnd() * 3) })),
      ...Array.from({ length: 2 }, (_, i) => () => POOL(`pool${i}`, { v: Math.floor(rnd() * 3) })),
      ...nodes.map((n) => () => ({ key: AFFINITY_KEY(n), value: AFFINITY({ v: Math.floor(rnd() * 3) }) })),
    ];
    const states: Map<string, string>[][] = [filters.map((f) => stateOf(store, f))]; // index = position
    for (let op = 0; op < 400; op++) {
      const r = pick(makers)();
      if (rnd() < 0.35) del(store, r.key);
      else put(store, r.key, r.value);
      assert.equal(store.head, op + 1);
      states.push(filters.map((f) => stateOf(store, f)));
    }
    assert.ok(store.floor > 0, 'the budget forced some eviction');
    assert.ok(store.historyBytes <= 6000);
    const heads = filters.map((f) => stateOf(store, f));
    for (let p = 0; p <= store.head; p++) {
      for (const [fi, f] of filters.entries()) {
        const items = store.catchUp(p, f);
        if (p < store.floor) { assert.equal(items, undefined, `below floor: p=${p}`); continue; }
        assert.ok(items, `p=${p} is at or above the floor ${store.floor}`);
        const got = applyItems(states[p]![fi]!, decodeItems(store, p, items));
        assert.deepEqual(got, heads[fi], `${f.key} from p=${p}`);
      }
    }
  });

  test('a node-scoped entry that moves to another node is removed from the old node\'s clients',
    { todo: 'BUG: store keeps only the new node, so catch-up/deltas for the old node never carry the removal' }, () => {
      const { store } = mkStore();
      const n1 = new ViewFilter('node-status', 'n1');
      put(store, STATUS('st', 'n1').key, STATUS('st', 'n1').value);
      const s = store.head;
      const before = stateOf(store, n1);
      assert.equal(before.size, 1);
      put(store, STATUS('st', 'n2').key, STATUS('st', 'n2').value); // spec.node n1 → n2
      assert.equal(stateOf(store, n1).size, 0, 'n1 no longer holds the status');
      assert.equal(store.checksum(n1).count, 0);
      const got = applyItems(before, decodeItems(store, s, store.catchUp(s, n1)!));
      assert.deepEqual(got, stateOf(store, n1), 'n1 client state after catch-up must match the head');
    });
});

