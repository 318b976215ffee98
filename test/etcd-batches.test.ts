// A burst of single-key etcd transactions arrives as one watch response per transaction, each
// followed by its watermark. Ingest merges what arrives within its window into one batch (one
// delta frame per view for every client) and reports each watermark only once the changes
// before it are published.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Ingest } from '../dedupe/ingest.js';
import { Store } from '../snapshot/store.js';
import type { Change } from '../src/model/change.js';
import { EtcdDatastore } from '../src/datastore/etcd.js';
import type { DatastoreEvent } from '../src/datastore/datastore.js';
import { silentLogger } from '../src/logging.js';
import { Metrics } from '../src/metrics.js';
import { haveEtcd, startEtcd, type EtcdServer } from './support/etcd.js';
import { node, waitFor } from './support/harness.js';

let etcd: EtcdServer;
// etcd's own periodic progress notifications would flush ingest (as a status): none here.
before(async () => { if (haveEtcd()) etcd = await startEtcd({ progressNotifyMs: 600_000 }); });
after(async () => { await etcd?.stop(); });

test('a burst of single-key transactions is published as one batch per window, each watermark after its changes', { timeout: 60_000, skip: !haveEtcd() && 'etcd not installed' }, async () => {
  const metrics = new Metrics(false);
  const store = new Store(1 << 24, metrics);
  const batches: number[] = [];
  let appliedRevision = 0;
  const delivered: number[] = [];
  const early: string[] = [];
  const ingest = new Ingest({
    valueOf: (k) => store.valueOf(k),
    apply: (cs: readonly Change[]) => {
      if (cs.length) batches.push(cs.length);
      for (const c of cs) appliedRevision = Math.max(appliedRevision, Number(c.revision));
      store.apply(cs);
    },
    revise: (cs) => store.revise(cs),
    setStatus: (s) => store.setStatus(s),
    setProgress: (r) => {
      // Every change the datastore delivered up to r must be published by now.
      const owed = Math.max(0, ...delivered.filter((d) => d <= r));
      if (owed > appliedRevision) early.push(`watermark ${r} before revision ${owed} was published`);
      store.setProgress(r);
    },
  }, { windowMs: 60_000, maxBatchBytes: 1 << 20 }, metrics, silentLogger);
  let responses = 0;
  const ds = new EtcdDatastore({
    endpoints: [etcd.endpoint], prefix: '/calico/', pageSize: 500,
    progressIntervalMs: 600_000, watchTimeoutMs: 600_000, initialBackoffMs: 100, maxBackoffMs: 1000, logger: silentLogger,
  });
  await ds.start({
    onUpdates: (evs: readonly DatastoreEvent[]) => { responses++; for (const e of evs) delivered.push(Number(e.revision)); ingest.onUpdates(evs); },
    onInvalid: (k, p) => ingest.onInvalid(k, p),
    onStatus: (s) => ingest.onStatus(s),
    onProgress: (r) => ingest.onProgress(r),
  });
  try {
    await waitFor(() => store.status === 'in-sync', 'in sync', 30_000);
    const [batchesBefore, responsesBefore] = [batches.length, responses];
    const N = 50;
    let last = 0;
    // One transaction at a time: each commits on its own revision, so each is its own watch response.
    for (let i = 0; i < N; i++) {
      const n = node(`burst-${i}`);
      last = Number((await etcd.client.put(n.key).value(JSON.stringify(n.value)).exec()).header.revision);
    }
    await waitFor(() => delivered.includes(last), 'the whole burst delivered by the watch', 30_000);
    ingest.flush();
    assert.ok(responses - responsesBefore > 2, `the burst came as several watch responses (${responses - responsesBefore})`);
    // The first change after a quiet spell goes at once; the rest wait for the window (ended here).
    assert.ok(batches.length - batchesBefore <= 2, `${N} transactions in ${batches.length - batchesBefore} batches`);
    assert.equal(batches.slice(batchesBefore).reduce((a, b) => a + b, 0), N);
    assert.equal(store.maxRevision, last, 'the last watermark reported');
    assert.deepEqual(early, []);
  } finally {
    ingest.stop();
    await ds.stop();
  }
});
