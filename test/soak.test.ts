// The soak (bench/soak.ts) for one minute, in this process: 200 clients, a rolling deployment and
// client restarts throughout, and the soak's own failure conditions asserted: no
// MaxListenersExceededWarning, no growth of active handles or open fds, no listener growth, every
// client in sync with the datastore at the end, no unplanned reconnect, everything released at
// shutdown. The long run is `node --import tsx bench/soak.ts` (10 minutes by default).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runSoak, summary } from '../bench/soak/run.js';
import { TEST_LONG } from './support/prng.js';

// A minute of a benchmark: in the long tier only (TEST_LONG=1).
test('soak, 1 minute: 200 clients through a rolling deployment and restarts, no leak, no drift', { timeout: 240_000, skip: !TEST_LONG && 'the long tier: TEST_LONG=1' }, async (t) => {
  const r = await runSoak({ minutes: 1, clients: 200 });
  for (const line of summary(r).split('\n')) t.diagnostic(line);
  t.diagnostic(JSON.stringify({ latencyMs: r.latencyMs, loopLagMs: r.loopLagMs, rss: r.rss, heap: r.heap, external: r.external, handles: { ...r.handles, byTypeStart: undefined, byTypeEnd: undefined }, fds: r.fds, server: r.server }));
  // The run did what a soak is for: churn and connection turnover throughout.
  assert.ok(r.measuredS >= 59, `measured ${r.measuredS} s`);
  assert.ok(r.churn.created >= 100 && r.churn.deleted >= 100, `churn: ${JSON.stringify(r.churn)}`);
  assert.ok(r.restarts.resume >= 5 && r.restarts.fresh >= 5, `restarts: ${JSON.stringify(r.restarts)}`);
  assert.ok(r.latencyMs.n > 0, 'deliveries were timed');
  assert.ok(r.series.length >= 5 && r.byMinute.length >= 1, 'sampled throughout');
  // Its verdict, condition by condition, so that a failure names itself.
  assert.deepEqual(r.warnings.filter((w) => w.name === 'MaxListenersExceededWarning'), [], 'no MaxListenersExceededWarning');
  assert.ok(r.handles.slopePerMin <= r.options.maxHandleSlope, `handles ${r.handles.start} → ${r.handles.end}: ${r.handles.slopePerMin}/min`);
  assert.ok(r.fds.slopePerMin <= r.options.maxFdSlope, `fds ${r.fds.start} → ${r.fds.end}: ${r.fds.slopePerMin}/min`);
  assert.equal(r.sync.inSync, r.sync.clients, `clients in sync: ${r.sync.problems.join('; ')}`);
  assert.equal(r.sync.checksumMatch, r.sync.clients, `checksums equal the server's: ${r.sync.problems.join('; ')}`);
  assert.equal(r.sync.fullMatch, r.sync.fullClients, `caches equal the datastore's: ${r.sync.problems.join('; ')}`);
  assert.ok(r.sync.serverCountsMatchDatastore, 'the server\'s views hold the datastore\'s keys');
  assert.equal(r.sync.checksumMismatches, 0);
  assert.equal(r.sync.unplannedReconnects, 0);
  assert.deepEqual(r.failures, [], 'the soak\'s verdict');
  assert.equal(r.ok, true);
});
