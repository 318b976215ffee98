// View checksums end to end: the checksum frame a client receives is the XOR of the entry hashes
// of exactly what it was sent; a client whose cache went wrong notices it on the next checksum,
// resyncs with a snapshot and tells its agent only about the keys that were repaired.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SyncClient, type SyncClientOptions, type Update } from '../client/index.js';
import type { ClientCache } from '../client/cache.js';
import { ViewFilter } from '../src/model/view-filter.js';
import type { SyncerType } from '../src/model/views.js';
import { encodeValue } from '../src/protocol/canonical.js';
import { checksumHex, entryHash } from '../src/protocol/checksum.js';
import { decodeMessage, encode, packr, ProtocolError } from '../src/protocol/codec.js';
import { decodeServerFrame, encodeItem, itemsFrame, RawItem, type DecodedFrame } from '../src/protocol/frames.js';
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

// ---- the client's own checksum, frame by frame ----------------------------------------------
// Frames as a server builds them (delta frames carry the items' hashes, `h`), fed to a client
// without a socket; the checksum frame states what a server holding the right view would say.
// Each way an update can go wrong must show at that checksum, with the hashes taken as sent.

describe('a client taking item hashes as sent still catches, at the next checksum,', () => {
  const [a, b] = [wep('node-1', 'pod-a'), wep('node-1', 'pod-b')];
  const version = (r: typeof a, app: string) => encodeValue({ ...r.value, metadata: { ...r.value.metadata, labels: { app } } });
  const [a1, a2, a3, b1, b2] = [version(a, '1'), version(a, '2'), version(a, '3'), version(b, '1'), version(b, '2')];
  const welcome = encode({ t: 'welcome', v: 1, serverId: 't', serverVersion: '0', epoch: 'e', syncer: 'felix', node: '', mode: 'snapshot', compression: 'none' } as never);
  const inSync = encode({ t: 'status', status: 'in-sync' });
  const snapshotAt3 = itemsFrame({ t: 'snapshot', seq: 3, i: 0, last: true }, [encodeItem(a.key, a1, '1'), encodeItem(b.key, b1, '2')]);
  const delta = (from: number, to: number, ...items: [string, Buffer | null, string][]) => itemsFrame({ t: 'delta', from, to }, items.map(([k, v, r]) => encodeItem(k, v, r)));
  /** The checksum frame of a server whose view at `seq` is `view`. */
  const checksumOf = (seq: number, view: [string, Buffer][]) => {
    let x = 0n;
    for (const [k, v] of view) x ^= entryHash(k, v);
    return encode({ t: 'checksum', seq, value: checksumHex(x), count: view.length });
  };
  const play = (frames: Buffer[], opts: Partial<SyncClientOptions> = {}) => {
    const c = new SyncClient({ url: 'ws://127.0.0.1:1', syncerType: 'felix', ...opts });
    const onFrame = (f: Buffer) => (c as unknown as { onFrame(f: Buffer): void }).onFrame(f);
    for (const f of frames) onFrame(f);
    return c;
  };
  const verdict = (c: SyncClient) => ({ verified: c.stats.checksumsVerified, mismatches: c.stats.checksumMismatches });

  test('nothing when every update arrived once and in order (the control)', () => {
    const c = play([welcome, snapshotAt3, inSync, delta(3, 4, [a.key, a2, '4']), delta(4, 5, [b.key, b2, '5']), checksumOf(5, [[a.key, a2], [b.key, b2]])]);
    assert.deepEqual(verdict(c), { verified: 1, mismatches: 0 });
  });

  test('a missed update: a delta that never arrived (the next one starts later, as a skip over other views would)', () => {
    const c = play([welcome, snapshotAt3, inSync, /* delta(3, 4, a2) lost */ delta(4, 5, [b.key, b2, '5']), checksumOf(5, [[a.key, a2], [b.key, b2]])]);
    assert.deepEqual(verdict(c), { verified: 0, mismatches: 1 });
  });

  test('a duplicated update: an older value of a key delivered again after a newer one', () => {
    const c = play([welcome, snapshotAt3, inSync, delta(3, 4, [a.key, a2, '4']), delta(4, 6, [a.key, a3, '6']), delta(6, 7, [b.key, b2, '7'], [a.key, a2, '4']),
      checksumOf(7, [[a.key, a3], [b.key, b2]])]);
    assert.deepEqual(verdict(c), { verified: 0, mismatches: 1 });
  });

  test('a duplicated deletion does no harm: applying it twice is applying it once', () => {
    const c = play([welcome, snapshotAt3, inSync, delta(3, 4, [a.key, null, '4']), delta(4, 5, [a.key, null, '4'], [b.key, b2, '5']), checksumOf(5, [[b.key, b2]])]);
    assert.deepEqual(verdict(c), { verified: 1, mismatches: 0 });
  });

  test('a misapplied update: applied to another key than its own', () => {
    const c = new SyncClient({ url: 'ws://127.0.0.1:1', syncerType: 'felix' });
    // The client's bookkeeping goes wrong: the update for a lands on b (hash, value and all).
    const cache = cacheOf(c);
    const applyAll = cache.applyAll.bind(cache);
    cache.applyAll = (items) => applyAll(items.map((it) => {
      if (it.key !== a.key || it.revision !== '4') return it;
      return Object.assign(new RawItem(b.key, it.revision, it.frame, it.keyAt, it.start, it.end), { hi: it.hi, lo: it.lo });
    }));
    const onFrame = (f: Buffer) => (c as unknown as { onFrame(f: Buffer): void }).onFrame(f);
    for (const f of [welcome, snapshotAt3, inSync, delta(3, 4, [a.key, a2, '4']), checksumOf(4, [[a.key, a2], [b.key, b1]])]) onFrame(f);
    assert.deepEqual(verdict(c), { verified: 0, mismatches: 1 });
  });

  test('but not value bytes changed after the server hashed them: that takes a client hashing the items (verifyItemHashes), which refuses the frame', () => {
    const tampered = (frame: Buffer) => {
      // One byte of a2's labels (app: '2' → '9') changed in the frame, its hash in h left as it was.
      const f = Buffer.from(frame);
      const at = f.lastIndexOf(Buffer.from([0xa3, 0x61, 0x70, 0x70, 0xa1, 0x32]));
      assert.ok(at > 0);
      f[at + 5] = 0x39;
      return f;
    };
    const frames = [welcome, snapshotAt3, inSync, tampered(delta(3, 4, [a.key, a2, '4'])), checksumOf(4, [[a.key, a2], [b.key, b1]])];
    const trusting = play(frames);
    assert.deepEqual(verdict(trusting), { verified: 1, mismatches: 0 }, 'the checksum matches: it vouches for the hashes, not the bytes');
    assert.equal(trusting.get(a.key)!.value?.metadata.labels.app, '9', 'and the changed bytes are in the cache');
    assert.throws(() => play(frames, { verifyItemHashes: true }), (err: Error) => err instanceof ProtocolError && /its bytes hash to/.test(err.message), 'a verifying client refuses the frame');
  });
});

describe('item hashes on the wire (h)', () => {
  const live = [wep('node-1', 'pod-a'), wep('node-1', 'pod-b')];
  const items = live.map((r, i) => encodeItem(r.key, encodeValue(r.value), String(i + 1)));
  const gone = encodeItem(wep('node-1', 'pod-c').key, null, '3');
  const want = [...live.map((r) => entryHash(r.key, encodeValue(r.value))), 0n];
  const hashes = (f: Buffer) => decodeServerFrame(f, 'trust').items!.map((it) => it.hash);

  test('a delta frame carries them, a snapshot chunk does not, and a client reads the same hashes from either', () => {
    const d = itemsFrame({ t: 'delta', from: 1, to: 2 }, [...items, gone]);
    const s = itemsFrame({ t: 'snapshot', seq: 2, i: 0, last: true }, [...items, gone]);
    assert.ok(decodeMessage(d).h instanceof Uint8Array, 'delta has h');
    assert.equal(decodeMessage(s).h, undefined, 'snapshot has none');
    assert.deepEqual(hashes(d), want, 'taken from h');
    assert.deepEqual(hashes(s), want, 'hashed by the client');
  });

  test('h may come after u; any other length than 8 per item is a malformed frame', () => {
    const h = Buffer.alloc(24);
    want.forEach((x, i) => h.writeBigUInt64BE(x, 8 * i));
    const frame = (hashBytes: Buffer) => Buffer.concat([packr.pack({ t: 'delta', from: 1, to: 2, u: [] }).subarray(0, -1), Buffer.from([0x93]), ...items, gone, packr.pack('h'), packr.pack(hashBytes)]);
    // The map header counts h: one field more than packr wrote.
    const fix = (f: Buffer) => { f[0]! += 1; return f; };
    assert.deepEqual(hashes(fix(frame(h))), want);
    assert.throws(() => decodeServerFrame(fix(frame(h.subarray(0, 16))), 'trust'), (err: Error) => err instanceof ProtocolError && err.code === 4001 && /8 each/.test(err.message));
  });
});
