// View checksums end to end: the checksum frame a client receives is the XOR of the entry hashes
// of exactly what it was sent; a client whose cache went wrong notices it on the next checksum,
// resyncs with a snapshot and tells its agent only about the keys that were repaired.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Update } from '../client/index.js';
import type { ClientCache } from '../client/cache.js';
import { ViewFilter } from '../src/model/view-filter.js';
import type { SyncerType } from '../src/model/views.js';
import { encodeValue } from '../src/protocol/canonical.js';
import { checksumHex, entryHash } from '../src/protocol/checksum.js';
import { encode } from '../src/protocol/codec.js';
import type { DecodedFrame } from '../src/protocol/frames.js';
import { assertClientMatches, expectedView } from './support/expected.js';
import { cleanupAfterFile, LIMIT, node, rawConnect, resource, sleep, startTestServer, waitFor, wep, type RawConn, type TestServer } from './support/harness.js';

const { clients, track } = cleanupAfterFile();

const FAST_CHECKSUMS = { checksumIntervalSecs: 0.2 };
const seed = [
  ...Array.from({ length: 30 }, (_, i) => wep(`node-${i % 3}`, `pod-${i}`, 'default', { app: `app-${i % 5}` })),
  ...['node-0', 'node-1', 'node-2'].map((n) => node(n)),
  resource('IPPool', { name: 'pool-a' }, { cidr: '10.244.0.0/16', blockSize: 26 }),
  resource('GlobalNetworkPolicy', { name: 'default.allow-dns' }, { tier: 'default', selector: 'all()' }),
];

const cacheOf = (c: unknown) => (c as { cache: ClientCache }).cache;
const serverChecksum = (ts: TestServer, syncer: SyncerType, n: string) => {
  const s = ts.app.store.checksum(new ViewFilter(syncer, n));
  return { value: checksumHex(s.value), count: s.count };
};

test('a corrupted cache is detected by the next checksum and repaired by a digest resync, reporting only the repaired keys', LIMIT, async () => {
  const ts = track(await startTestServer(FAST_CHECKSUMS, seed));
  try {
    const heard: Update[] = [];
    const c = clients.make({ url: ts.url, syncerType: 'felix', onUpdates: (u) => heard.push(...u) });
    await c.inSync();
    await waitFor(() => c.stats.checksumsVerified >= 1, 'the first checksum to verify');
    assert.equal(c.stats.checksumMismatches, 0);
    heard.length = 0;

    // Go wrong behind the client's back, through the cache's own bookkeeping (as a lost or
    // misapplied update would): one value changed, one key lost, one key that does not exist.
    const changed = seed[4]!;
    const lost = seed[7]!;
    const ghost = wep('node-9', 'ghost');
    const cache = cacheOf(c);
    cache.apply(changed.key, encodeValue(wep('node-1', 'pod-4', 'default', { app: 'tampered' }).value), '999');
    cache.apply(lost.key, null, '999');
    cache.apply(ghost.key, encodeValue(ghost.value), '999');
    assert.notEqual(c.checksum().value, serverChecksum(ts, 'felix', '').value, 'the corruption shows in the checksum');
    const snapshotsBefore = c.stats.snapshots;
    const connectsBefore = c.stats.connects;
    const itemsBefore = c.stats.itemsReceived;

    await waitFor(() => c.stats.checksumMismatches >= 1, 'the client to detect the mismatch');
    await waitFor(() => c.stats.digests === 1 && c.isInSync, 'a digest resync');
    assert.equal(c.stats.connects, connectsBefore + 1, 'one reconnect');
    assert.equal(c.stats.snapshots, snapshotsBefore, 'no snapshot');
    // The buckets of the three damaged keys come back whole (about 16 keys each), nothing else.
    const resent = c.stats.itemsReceived - itemsBefore;
    assert.ok(resent >= 2 && resent < seed.length, `${resent} of ${seed.length} keys resent`);
    const verifiedAfterRepair = c.stats.checksumsVerified;
    await waitFor(() => c.stats.checksumsVerified > verifiedAfterRepair, 'a checksum to verify after the repair');

    assertClientMatches(c, expectedView(ts.ds, 'felix', ''), 'repaired client');
    assert.deepEqual(c.checksum(), serverChecksum(ts, 'felix', ''));
    assert.deepEqual(heard.map((u) => u.key).sort(), [changed.key, lost.key, ghost.key].sort(), 'only the repaired keys were reported');
    const byKey = new Map(heard.map((u) => [u.key, u]));
    assert.equal(byKey.get(ghost.key)!.value, null, 'the ghost key was reported deleted');
    assert.equal(byKey.get(changed.key)!.value?.metadata.labels.app, 'app-4', 'the changed key was reported with its real value');
    assert.equal(byKey.get(lost.key)!.value?.metadata.name, lost.value.metadata.name, 'the lost key was reported back');

    // Repaired for good: later checksums keep matching.
    const verified = c.stats.checksumsVerified;
    await waitFor(() => c.stats.checksumsVerified >= verified + 2, 'two more checksums');
    assert.equal(c.stats.checksumMismatches, 1);
    assert.equal(c.stats.connects, connectsBefore + 1);
  } finally {
    await clients.stopAll();
    await ts.close();
  }
});

test('a cache entry deleted from under the cache\'s bookkeeping is repaired and stays repaired', {
  ...LIMIT,
}, async () => {
  const ts = track(await startTestServer(FAST_CHECKSUMS, seed));
  try {
    const c = clients.make({ url: ts.url, syncerType: 'felix' });
    await c.inSync();
    await waitFor(() => c.stats.checksumsVerified >= 1, 'the first checksum to verify');
    // The entry goes, the accumulator is not told (memory corruption, or a bookkeeping bug).
    ((cacheOf(c) as unknown as { map: Map<string, unknown> }).map).delete(seed[3]!.key);

    await waitFor(() => c.stats.checksumMismatches >= 1, 'the client to detect the mismatch');
    await waitFor(() => c.isInSync && !!c.get(seed[3]!.key), 'the lost key to come back');
    await sleep(1000); // time must pass, to show no second mismatch: five checksum intervals
    assertClientMatches(c, expectedView(ts.ds, 'felix', ''), 'repaired client');
    assert.deepEqual(c.checksum(), serverChecksum(ts, 'felix', ''), 'the local checksum matches the server again');
    assert.equal(c.stats.checksumMismatches, 1, `one mismatch, not a loop (saw ${c.stats.checksumMismatches}, ${c.stats.snapshots} snapshots)`);
  } finally {
    await clients.stopAll();
    await ts.close();
  }
});

test('repeated checksum mismatches back off instead of reconnecting at the initial backoff forever', {
  ...LIMIT,
}, async () => {
  const ts = track(await startTestServer(FAST_CHECKSUMS, seed));
  try {
    // A server whose checksum for the view is persistently wrong (a server-side bug, say).
    ts.app.store.checksum = () => ({ value: 0x1234n, count: 1 });
    const c = clients.make({ url: ts.url, syncerType: 'felix', initialBackoffMs: 20, maxBackoffMs: 1000 });
    await waitFor(() => c.stats.checksumMismatches >= 1, 'a first mismatch');
    await sleep(2000); // a window of time to count attempts in (a busy machine only lowers the count)
    // With exponential backoff from 20 ms (half-jittered, capped at 1 s) two seconds hold about
    // ten attempts; without it, about one every 20-30 ms.
    assert.ok(c.stats.connects <= 20, `${c.stats.connects} connections (${c.stats.snapshots} full snapshots) in 2 s`);
  } finally {
    await clients.stopAll();
    await ts.close();
  }
});

async function rawSync(ts: TestServer, syncer: SyncerType, n: string): Promise<RawConn> {
  const raw = rawConnect(ts.url);
  await raw.opened;
  raw.ws.send(encode({ t: 'hello', v: 1, syncer, node: n, clientName: 'checksum-test', clientVersion: '0' }));
  await waitFor(() => raw.frames.some((f) => f.msg.t === 'checksum'), `${syncer}/${n} raw client synced`);
  return raw;
}

const xorOf = (items: { key: string; value: Buffer | null }[]) => {
  let x = 0n;
  for (const it of items) if (it.value) x ^= entryHash(it.key, it.value);
  return x;
};

test('the checksum frame after sync is the store\'s checksum of exactly what the client received', LIMIT, async () => {
  // Small chunks: the snapshot spans several frames and the checksum must come after all of them.
  const ts = track(await startTestServer({ ...FAST_CHECKSUMS, snapshotChunkBytes: 1024 }, seed));
  const raws: RawConn[] = [];
  try {
    for (const [syncer, n] of [['felix', ''], ['bgp', ''], ['tunnel-ip-allocation', 'node-1']] as const) {
      const raw = await rawSync(ts, syncer, n);
      raws.push(raw);
      const idx = raw.frames.findIndex((f) => f.msg.t === 'checksum');
      const before: DecodedFrame[] = raw.frames.slice(0, idx);
      const snaps = before.filter((f) => f.msg.t === 'snapshot');
      if (syncer === 'felix') assert.ok(snaps.length > 1, `felix snapshot spans ${snaps.length} frames`);
      assert.equal(snaps.at(-1)!.msg.last, true, 'the snapshot was complete before the checksum');
      assert.equal(before.at(-1)!.msg.t, 'status', 'status comes right before the checksum');
      const items = before.flatMap((f) => f.items ?? []);
      const sum = raw.frames[idx]!.msg;

      const expected = serverChecksum(ts, syncer, n);
      assert.match(String(sum.value), /^[0-9a-f]{16}$/, 'value is 16 lowercase hex digits');
      assert.equal(sum.value, expected.value, `${syncer}/${n}: value is the store's checksum of the view`);
      assert.equal(sum.count, items.length, `${syncer}/${n}: count is the number of items received`);
      assert.equal(sum.count, expected.count);
      assert.equal(sum.count, expectedView(ts.ds, syncer, n).size);
      assert.equal(sum.value, checksumHex(xorOf(items)), `${syncer}/${n}: value is the XOR of the received items' entry hashes`);
      assert.equal(sum.seq, snaps.at(-1)!.msg.seq, 'checksum seq is the position the snapshot left the client at');
    }
    assert.equal(raws[2]!.frames.filter((f) => f.msg.t === 'snapshot').flatMap((f) => f.items ?? []).length, 2, 'tunnel-ip view: the pool and its own node');

    // Later checksums follow the view: a write changes the next one, which names the new head.
    const [felix] = raws;
    const n0 = felix!.frames.length;
    const added = resource('GlobalNetworkPolicy', { name: 'default.later' }, { tier: 'default', selector: 'all()' });
    ts.ds.put(added.key, added.value);
    ts.ds.delete(seed[0]!.key);
    await waitFor(() => felix!.frames.slice(n0).some((f) => f.msg.t === 'checksum' && f.msg.seq === ts.app.store.head), 'a checksum at the new head');
    const later = felix!.frames.slice(n0).find((f) => f.msg.t === 'checksum' && f.msg.seq === ts.app.store.head)!.msg;
    assert.deepEqual({ value: later.value, count: later.count }, serverChecksum(ts, 'felix', ''));
    assert.equal(later.count, expectedView(ts.ds, 'felix', '').size);
    const received = felix!.frames.flatMap((f) => f.items ?? []);
    const latest = new Map(received.map((it) => [it.key, it]));
    assert.equal(later.value, checksumHex(xorOf([...latest.values()])), 'the XOR of what the raw client holds after applying everything');
  } finally {
    for (const r of raws) r.ws.terminate();
    await ts.close();
  }
});
