// Smoke test of the burst and coldstart scenarios and of ingest against another checkout: tiny
// runs end to end, complete and self-consistent results, reports written, no process left behind.
// Behaviour only, never timing thresholds.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { runBurst } from '../bench/scenarios/burst.js';
import { runColdStart } from '../bench/scenarios/coldstart.js';
import { loadPipeline, runIngest } from '../bench/scenarios/ingest.js';
import { writeBurstResults } from '../bench/lib/report-burst.js';
import { writeColdStartResults } from '../bench/lib/report-coldstart.js';
import { THIS_CHECKOUT } from '../bench/lib/serve-checkout.js';
import { haveEtcd } from './support/etcd.js';
import { harnessDescendants, kill, settle } from './support/leftovers.js';

const SLOW = { timeout: 180_000, skip: !haveEtcd() && 'etcd not installed' };
const temps: string[] = [];
const tempDir = (tag: string) => { const d = mkdtempSync(join(tmpdir(), `bench-${tag}-`)); temps.push(d); return d; };

after(() => {
  for (const p of harnessDescendants()) kill(p.pid);
  for (const d of temps) rmSync(d, { recursive: true, force: true });
});

test('burst: every agent gets every transaction, batches and CPU are counted, nothing left running', SLOW, async () => {
  const r = await runBurst(THIS_CHECKOUT, { txns: 60, inFlight: 4, keys: 100, clients: 3, workers: 1, serverCpus: '', clientCpus: '', drainTimeoutS: 30 });
  assert.equal(r.checkout, 'this');
  assert.equal(r.complete, 3, 'every agent ends with every key\'s last value');
  // Every key written once: nothing for ingest to coalesce, so each agent receives each write.
  assert.equal(r.delivered, 60 * 3);
  assert.ok(r.batches >= 1 && r.batches <= 60, `batches: ${r.batches}`);
  assert.ok(Number.isFinite(r.cpuS['calico-fanout']) && Number.isFinite(r.cpuS.etcd));
  assert.ok(r.latencyMs.p50 > 0 && r.latencyMs.p50 <= r.latencyMs.p99 && r.latencyMs.p99 <= r.latencyMs.max);
  const dir = writeBurstResults(tempDir('burst'), 'burst smoke', 'npm run bench -- burst', [r], 'machine');
  assert.match(readFileSync(join(dir, 'report.md'), 'utf8'), /\| this \| 1 \| yes \|/);
  assert.deepEqual(await settle(() => harnessDescendants()), [], 'no process left running');
});

test('coldstart: serve becomes ready and is timed against a range read of the same keys, nothing left running', SLOW, async () => {
  const r = await runColdStart({ keys: 500, repeat: 2, roots: [THIS_CHECKOUT], serverCpus: '', etcdCpus: '', timeoutS: 60 });
  assert.equal(r.runs.length, 2);
  for (const run of r.runs) {
    assert.ok(run.rangeReadS > 0);
    assert.deepEqual(run.serve.map((s) => s.checkout), ['this']);
    assert.ok(run.serve[0]!.readyS > 0 && run.serve[0]!.cpuS > 0 && run.serve[0]!.peakRssMiB > 0, JSON.stringify(run));
  }
  const dir = writeColdStartResults(tempDir('coldstart'), 'coldstart smoke', 'npm run bench -- coldstart', r, 'machine');
  assert.match(readFileSync(join(dir, 'report.md'), 'utf8'), /\| this \| 2 \|/);
  assert.deepEqual(await settle(() => harnessDescendants()), [], 'no process left running');
});

test('ingest: a checkout\'s pipeline loaded from its sources runs as this one does', { timeout: 60_000 }, async () => {
  const p = await loadPipeline(THIS_CHECKOUT, 'loaded');
  const o = { updates: 2000, keys: 200, batch: 100 };
  const [a, b] = [runIngest(o), runIngest(o, p)];
  assert.equal(a.checkout, 'this');
  assert.equal(b.checkout, 'loaded');
  assert.deepEqual([b.framesBuilt, b.frameBytes], [a.framesBuilt, a.frameBytes], 'the same frames from the same pipeline');
  assert.ok(b.updatesPerCpuSec > 0 && Number.isFinite(b.updatesPerCpuSec));
});
