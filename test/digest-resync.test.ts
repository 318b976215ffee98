// Digest resync: a client that cannot resume (another replica, a restarted server, a cache found
// wrong — test/checksum.test.ts —, a snapshot cut off) sends a digest of its cache and receives only the buckets that
// differ. Servers run on a real etcd where the issue asks for replicas of one datastore.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { SyncClient, Update } from '../client/index.js';
import { ViewFilter } from '../src/model/view-filter.js';
import { createDatastore } from '../cmd/datastores.js';
import { loadConfig, type Config } from '../src/config.js';
import { decodeClientMessage, encode, ProtocolError } from '../src/protocol/codec.js';
import { bucketCountFor, bucketOrder, differing, digestFromWire, digestToWire, emptyDigest, fold, MAX_DIGEST_BUCKETS, xorInto } from '../src/protocol/digest.js';
import { silentLogger } from '../src/logging.js';
import { CloseCode } from '../src/protocol/messages.js';
import { etcdContent, putMany, startEtcd, type EtcdServer } from './support/etcd.js';
import { assertClientMatches, expectedView } from './support/expected.js';
import { cleanupAfterFile, LIMIT, node, resource, startServerOn, startTestServer, waitFor, wep } from './support/harness.js';
import { freePort, metricValue } from './support/metrics.js';

const { clients, track } = cleanupAfterFile();
const SLOW = { timeout: 120_000 };

/** Private parts the tests reach into to break things on purpose. */
type Internals = { ws?: { terminate(): void } };
const internals = (c: SyncClient) => c as unknown as Internals;

describe('digest arithmetic', () => {
  test('bucket counts are powers of two near 16 keys per bucket, bounded', () => {
    assert.equal(bucketCountFor(0), 1);
    assert.equal(bucketCountFor(16), 1);
    assert.equal(bucketCountFor(17), 2);
    assert.equal(bucketCountFor(100_000), 8192);
    assert.equal(bucketCountFor(10_000_000), MAX_DIGEST_BUCKETS);
  });

  test('folding a fine digest equals computing the coarse one directly', () => {
    const fine = emptyDigest(1024);
    const coarse = emptyDigest(16);
    for (let i = 0; i < 5000; i++) {
      const bits = (i * 2654435761) >>> 0;
      const hash = BigInt(i) * 0x9e3779b97f4a7c15n & 0xffffffffffffffffn;
      xorInto(fine, bits & 1023, hash);
      xorInto(coarse, bits & 15, hash);
    }
    assert.deepEqual(fold(fine, 16), coarse);
    assert.deepEqual(digestFromWire(digestToWire(coarse)), coarse);
    const other = coarse.slice();
    other[2 * 5 + 1]! ^= 1;
    other[2 * 9]! ^= 0x80000000;
    assert.deepEqual(differing(coarse, other), [5, 9]);
  });

  test('in bucket order, every bucket of every bucket count is contiguous', () => {
    const bits = Array.from({ length: 3000 }, (_, i) => (i * 2654435761 + 12345) >>> 0).sort((a, b) => bucketOrder(a) - bucketOrder(b));
    for (const buckets of [2, 16, 256, 4096]) {
      const seen = new Set<number>();
      let prev = -1;
      for (const b of bits.map((x) => x & (buckets - 1))) {
        if (b !== prev) assert.ok(!seen.has(b), `bucket ${b} of ${buckets} appears twice`);
        seen.add(b);
        prev = b;
      }
    }
  });

  test('hello digests are validated; an unknown scheme means a snapshot, not an error', () => {
    const hello = (digest: unknown) => encode({ t: 'hello', v: 1, syncer: 'felix', node: '', clientName: 't', clientVersion: '1', digest } as never);
    const good = { scheme: 1, buckets: 4, hashes: Buffer.alloc(32) };
    assert.deepEqual((decodeClientMessage(hello(good)) as { digest?: unknown }).digest, good);
    assert.equal((decodeClientMessage(hello({ ...good, scheme: 99 })) as { digest?: unknown }).digest, undefined);
    for (const bad of [{ ...good, buckets: 3 }, { ...good, buckets: MAX_DIGEST_BUCKETS * 2, hashes: Buffer.alloc(16 * MAX_DIGEST_BUCKETS) }, { ...good, hashes: Buffer.alloc(31) }, { ...good, hashes: 'x' }, 'digest']) {
      assert.throws(() => decodeClientMessage(hello(bad)), (e: unknown) => e instanceof ProtocolError && e.code === CloseCode.badHello, JSON.stringify(bad));
    }
  });
});

describe('replicas on one etcd', () => {
  let etcd: EtcdServer;
  before(async () => { etcd = await startEtcd(); });
  after(async () => { await etcd?.stop(); });

  const replica = (extra: Partial<Config> = {}) => {
    const config = { ...loadConfig({ env: {} }), datastoreType: 'etcdv3' as const, etcdEndpoints: [etcd.endpoint], etcdPageSize: 500 };
    return startServerOn(createDatastore(config, silentLogger), extra).then(track);
  };

  // 2,000 endpoints on 50 nodes, a few cluster-wide resources: ~0.7 MB of felix view.
  const cluster = [
    ...Array.from({ length: 50 }, (_, i) => node(`node-${i}`)),
    ...Array.from({ length: 2000 }, (_, i) => wep(`node-${i % 50}`, `pod-${i}`, `ns-${i % 20}`, { app: `app-${i % 7}` })),
    resource('IPPool', { name: 'pool-a' }, { cidr: '10.244.0.0/16', blockSize: 26 }),
  ];

  test('100 clients move from a closed replica to another, and between replicas, paying only for what changed', SLOW, async () => {
    await putMany(etcd.client, cluster);
    const a = await replica();
    const b = await replica();
    const heard = new Map<SyncClient, Update[]>();
    const all = Array.from({ length: 100 }, () => {
      const log: Update[] = [];
      // Uncompressed, so that bytes compare with the snapshot's own size.
      const c = clients.make({ urls: [a.url, b.url], url: a.url, syncerType: 'felix', compression: [], onUpdates: (u) => log.push(...u) });
      heard.set(c, log);
      return c;
    });
    await Promise.all(all.map((c) => c.inSync()));
    await waitFor(() => b.app.store.complete, 'b to list etcd');
    const snapshotBytes = all[0]!.stats.bytesReceived;
    const viewSize = all[0]!.size;
    assert.ok(viewSize > 2000 && snapshotBytes > 500_000, `a real snapshot (${viewSize} keys, ${snapshotBytes} B)`);
    const before = new Map(all.map((c) => [c, c.stats.bytesReceived]));
    for (const log of heard.values()) log.length = 0;

    // Nothing changed: a closing replica's clients resync on the other for ≤ 1% of a snapshot.
    await a.close();
    await waitFor(() => all.every((c) => c.isInSync && c.stats.connects === 2), 'every client to sync on b', 30_000);
    for (const c of all) {
      assert.equal(c.stats.digests, 1, 'resynced by digest');
      assert.equal(c.stats.snapshots, 1, 'the first sync only');
      const got = c.stats.bytesReceived - before.get(c)!;
      assert.ok(got <= snapshotBytes / 100, `received ${got} B after the move, snapshot ${snapshotBytes} B`);
      assert.deepEqual(heard.get(c), [], 'same content: nothing for the agent');
    }
    assert.equal(await metricValue(b.app.metrics.resyncs, { mode: 'digest' }), 100);
    assert.equal(await metricValue(b.app.metrics.resyncs, { mode: 'snapshot' }), 0);
    assertClientMatches(all[0]!, expectedView(await etcdContent(etcd.client), 'felix', ''), 'after the move');

    // k keys changed while the clients were away, and b is gone too: a third replica, on a's
    // address, has never seen them. Each agent hears exactly those k keys.
    await Promise.all(all.map((c) => c.stop()));
    const changed = [
      wep('node-1', 'pod-1', 'ns-1', { app: 'changed' }), wep('node-2', 'pod-2', 'ns-2', { app: 'changed' }),
      wep('node-3', 'pod-new-1'), resource('IPPool', { name: 'pool-b' }, { cidr: '10.245.0.0/16', blockSize: 26 }),
    ];
    const removed = [cluster[60]!.key, cluster[61]!.key, cluster[62]!.key];
    await putMany(etcd.client, changed);
    for (const k of removed) await etcd.client.delete().key(k);
    await b.close();
    const c2 = await replica({ serverPort: Number(new URL(a.url).port) });
    await waitFor(() => c2.app.store.complete, 'the third replica to list etcd');
    const want = [...changed.map((x) => x.key), ...removed].sort();
    const items = new Map(all.map((c) => [c, c.stats.itemsReceived]));
    for (const c of all) c.start();
    await waitFor(() => all.every((c) => c.isInSync && c.stats.digests === 2), 'every client to resync', 30_000);
    for (const c of all) {
      assert.deepEqual(heard.get(c)!.map((u) => u.key).sort(), want, 'the agent hears exactly the changed keys');
      const resent = c.stats.itemsReceived - items.get(c)!;
      assert.ok(resent <= want.length * 64, `${resent} items resent for ${want.length} changes (whole buckets of ~16 keys)`);
    }
    assert.equal(await metricValue(c2.app.metrics.resyncs, { mode: 'digest' }), 100);
    assertClientMatches(all[0]!, expectedView(await etcdContent(etcd.client), 'felix', ''), 'after the changes');
    await c2.close();
  });

  test('after a server restart on the same datastore (a new epoch) clients resync by digest', SLOW, async () => {
    const port = await freePort();
    const first = await replica({ serverPort: port });
    const c = clients.make({ url: first.url, syncerType: 'felix', compression: [] });
    await c.inSync();
    const epoch = first.app.store.epoch;
    const received = c.stats.bytesReceived;
    await first.close();
    const second = await replica({ serverPort: port });
    assert.notEqual(second.app.store.epoch, epoch);
    await waitFor(() => c.isInSync && c.stats.digests === 1, 'the client to resync on the restarted server', 30_000);
    assert.equal(c.stats.snapshots, 1);
    assert.ok(c.stats.bytesReceived - received < received / 100, 'a digest resync costs a sliver of the snapshot');
    assert.equal(c.resumeToken?.epoch, second.app.store.epoch, 'a fresh resume token');
    await c.stop();
  });
});

describe('one server', () => {
  const seed = [
    ...Array.from({ length: 400 }, (_, i) => wep(`node-${i % 8}`, `pod-${i}`, 'default', { app: `app-${i % 5}` })),
    resource('IPPool', { name: 'pool-a' }, { cidr: '10.244.0.0/16', blockSize: 26 }),
  ];

  test('a snapshot cut off halfway costs about the other half on reconnection', LIMIT, async () => {
    const ts = track(await startTestServer({ snapshotChunkBytes: 4096 }, seed));
    let atCut = 0;
    let c!: SyncClient;
    c = clients.make({
      url: ts.url, syncerType: 'felix',
      onUpdates: () => { if (!atCut && c.stats.itemsReceived >= seed.length / 2) { atCut = c.stats.itemsReceived; internals(c).ws!.terminate(); } },
    });
    await c.inSync();
    assert.ok(atCut > 0 && atCut < seed.length * 0.6, `cut after ${atCut} items`);
    assert.equal(c.stats.connects, 2);
    assert.equal(c.stats.digests, 1, 'the second sync is a digest resync of the partial cache');
    const second = c.stats.itemsReceived - atCut;
    assert.ok(second >= seed.length - atCut && second <= (seed.length - atCut) * 1.4, `${second} items after the cut, ${seed.length - atCut} missing`);
    assertClientMatches(c, expectedView(ts.ds, 'felix', ''), 'complete after the cut');
  });
});
