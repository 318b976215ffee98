// The etcd adapter's list, seen from its calls to etcd and to its sink: the next page is asked
// for before the current one is handed on (so etcd reads it meanwhile), and a page goes to ingest
// a few hundred events at a time (each value's parsed JSON dies young).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { KVClient } from 'etcd3';
import { EtcdDatastore } from '../src/datastore/etcd.js';
import type { DatastoreEvent } from '../src/datastore/datastore.js';
import { silentLogger } from '../src/logging.js';
import { haveEtcd, putMany, startEtcd, type EtcdServer } from './support/etcd.js';
import { node, waitFor } from './support/harness.js';

let etcd: EtcdServer;
before(async () => { if (haveEtcd()) etcd = await startEtcd(); });
after(async () => { await etcd?.stop(); });

test('a list asks for each page before handing on the one before, in pieces of at most 256 events', { timeout: 60_000, skip: !haveEtcd() && 'etcd not installed' }, async () => {
  const K = 1000;
  const PAGE = 300;
  await putMany(etcd.client, Array.from({ length: K }, (_, i) => node(`list-${String(i).padStart(4, '0')}`)));
  const timeline: string[] = [];
  let listed = 0;
  const range = KVClient.prototype.range;
  KVClient.prototype.range = function (this: KVClient, req, opts) {
    if (req.limit) timeline.push('ask');
    return range.call(this, req, opts);
  };
  const ds = new EtcdDatastore({
    endpoints: [etcd.endpoint], prefix: '/calico/', pageSize: PAGE,
    progressIntervalMs: 60_000, watchTimeoutMs: 30_000, initialBackoffMs: 100, maxBackoffMs: 1000, logger: silentLogger,
  });
  let status = '';
  try {
    await ds.start({
      onUpdates: (evs: readonly DatastoreEvent[]) => {
        timeline.push(`hand ${evs.length}`);
        listed += evs.length;
      },
      onInvalid: () => {},
      onStatus: (s) => { status = s; },
      onProgress: () => {},
    });
    await waitFor(() => status === 'in-sync', 'in sync', 30_000);
  } finally {
    KVClient.prototype.range = range;
    await ds.stop();
  }
  assert.equal(listed, K);
  assert.equal(ds.stats.rangeCalls, Math.ceil(K / PAGE));
  // Pages of 300: asked for, then the next asked for before the first is handed on (256 + 44).
  assert.deepEqual(timeline, ['ask', 'ask', 'hand 256', 'hand 44', 'ask', 'hand 256', 'hand 44', 'ask', 'hand 256', 'hand 44', 'hand 100']);
});
