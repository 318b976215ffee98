// Compressed frames: negotiated in the hello, applied to snapshot chunks (compressed once, shared
// by every client of the view) and to large repair replies; small frames travel as they are.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ViewFilter } from '../src/model/view-filter.js';
import { COMPRESS_MIN_BYTES, compressFrame, compressLarge, decompressFrame, negotiate } from '../src/protocol/compression.js';
import { encode } from '../src/protocol/codec.js';
import { decodeServerFrame } from '../src/protocol/frames.js';
import { assertClientMatches, expectedView } from './support/expected.js';
import { cleanupAfterFile, LIMIT, rawConnect, resource, startTestServer, waitFor, wep } from './support/harness.js';
import { metricValue } from './support/metrics.js';

const { clients, track } = cleanupAfterFile();

const seed = [
  ...Array.from({ length: 600 }, (_, i) => wep(`node-${i % 10}`, `pod-${i}`, `ns-${i % 4}`, { app: `app-${i % 9}` })),
  resource('IPPool', { name: 'pool-a' }, { cidr: '10.244.0.0/16', blockSize: 26 }),
];

test('negotiation takes the client\'s first algorithm that this side speaks', () => {
  assert.equal(negotiate(['zstd', 'deflate', 'brotli']), 'deflate');
  assert.equal(negotiate(['brotli']), 'brotli');
  assert.equal(negotiate(['lz4']), 'none');
  assert.equal(negotiate([]), 'none');
  assert.equal(negotiate(undefined), 'none');
});

test('a compressed frame decodes to the frame it holds; small frames are left alone; output is bounded', () => {
  const frame = encode({ t: 'status', status: 'in-sync' });
  for (const alg of ['brotli', 'deflate'] as const) {
    const z = decodeServerFrame(compressFrame(frame, alg));
    assert.equal(z.msg.t, 'compressed');
    assert.deepEqual(decompressFrame(z.msg.data as Uint8Array, alg, 1 << 20), frame, alg);
    assert.equal(compressLarge(frame, alg), frame, 'below the threshold: as is');
    const big = Buffer.alloc(COMPRESS_MIN_BYTES * 4, 7);
    const zBig = decodeServerFrame(compressLarge(big, alg)).msg.data as Uint8Array;
    assert.ok(zBig.length < big.length / 10);
    assert.throws(() => decompressFrame(zBig, alg, COMPRESS_MIN_BYTES), /buffer|length|larger/i, 'a bomb stops at the limit');
  }
  assert.equal(compressLarge(Buffer.alloc(COMPRESS_MIN_BYTES * 4), 'none').length, COMPRESS_MIN_BYTES * 4);
});

test('snapshot chunks go out compressed once and shared; clients that ask for none get them plain', LIMIT, async () => {
  const ts = track(await startTestServer({ snapshotChunkBytes: 64 << 10 }, seed));
  const brotli = [clients.make({ url: ts.url, syncerType: 'felix' }), clients.make({ url: ts.url, syncerType: 'felix', compression: ['brotli'] })];
  const deflate = clients.make({ url: ts.url, syncerType: 'felix', compression: ['deflate'] });
  const plain = clients.make({ url: ts.url, syncerType: 'felix', compression: [] });
  const all = [...brotli, deflate, plain];
  await Promise.all(all.map((c) => c.inSync()));
  for (const c of all) assertClientMatches(c, expectedView(ts.ds, 'felix', ''), 'every client has the view');
  const raw = await metricValue(ts.app.metrics.snapshotBytes, { syncer: 'felix' });
  assert.ok(plain.stats.bytesReceived > raw, 'plain: the whole snapshot');
  for (const c of [...brotli, deflate]) assert.ok(c.stats.bytesReceived < raw / 3, `compressed: ${c.stats.bytesReceived} B for a ${raw} B snapshot`);
  assert.equal(brotli[0]!.stats.bytesReceived, brotli[1]!.stats.bytesReceived, 'the same shared frames');
  assert.equal(await metricValue(ts.app.metrics.snapshotsGenerated, { syncer: 'felix' }), 1);

  // Live deltas are small: uncompressed for everyone.
  const upd = wep('node-1', 'pod-1', 'ns-1', { app: 'changed' });
  ts.ds.put(upd.key, upd.value);
  await waitFor(() => all.every((c) => c.get(upd.key)?.value?.metadata.labels.app === 'changed'), 'the delta to arrive');
});

test('the welcome names the algorithm; a raw client sees compressed snapshot frames', LIMIT, async () => {
  const ts = track(await startTestServer({ snapshotChunkBytes: 64 << 10 }, seed));
  const raw = rawConnect(ts.url);
  await raw.opened;
  raw.ws.send(encode({ t: 'hello', v: 1, syncer: 'felix', node: '', clientName: 't', clientVersion: '0', compression: ['gzip', 'deflate'] }));
  await waitFor(() => raw.frames.some((f) => f.msg.t === 'checksum'), 'synced');
  assert.equal(raw.frames[0]!.msg.t, 'welcome');
  assert.equal(raw.frames[0]!.msg.compression, 'deflate');
  const compressed = raw.frames.filter((f) => f.msg.t === 'compressed');
  assert.ok(compressed.length >= 2, `${compressed.length} compressed frames`);
  const inner = compressed.map((f) => decodeServerFrame(decompressFrame(f.msg.data as Uint8Array, 'deflate', 1 << 24)));
  assert.ok(inner.every((f) => f.msg.t === 'snapshot'));
  assert.equal(inner.reduce((n, f) => n + f.items!.length, 0) + raw.frames.filter((f) => f.msg.t === 'snapshot').reduce((n, f) => n + f.items!.length, 0),
    ts.app.store.checksum(new ViewFilter('felix', '')).count, 'every key, in compressed and plain chunks');
  raw.ws.close();
});
