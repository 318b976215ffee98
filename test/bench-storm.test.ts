// Smoke test of the storm and idle scenarios of the load-test harness: tiny runs end to end on
// every system, both storm phases, and the CLI. Behaviour only, never timing thresholds: every
// client holds every key, one snapshot serves the whole storm, the clients come back to the
// restarted server by themselves, the report files parse, and no process is left behind.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { runIdle, IDLE_SYSTEMS, type IdleResult } from '../bench/scenarios/idle.js';
import { runStorm, STORM_SYSTEMS, type StormPhase, type StormResult, type StormSystem } from '../bench/scenarios/storm.js';
import { writeIdleResults, writeStormResults } from '../bench/lib/report-scenarios.js';
import { median } from '../bench/lib/report.js';
import { harnessDescendants, kill, runBenchCli, settle } from './support/leftovers.js';
import { TEST_LONG } from './support/prng.js';

const SLOW = { timeout: 120_000 };
const KEYS = 2000;
// More clients than the old restart bound (15 s) allows at the server's pace of one goaway a
// second: the restart is measured as the drain takes, over a short shutdown timeout here.
const CLIENTS = 20;
const SHUTDOWN_TIMEOUT_S = 2;

const temps: string[] = [];
const tempDir = (tag: string) => { const d = mkdtempSync(join(tmpdir(), `bench-storm-${tag}-`)); temps.push(d); return d; };

after(() => {
  for (const p of harnessDescendants()) kill(p.pid);
  for (const d of temps) rmSync(d, { recursive: true, force: true });
});

const SERVING: Record<StormSystem, string[]> = { fanout: ['etcd', 'calico-fanout'], direct: ['etcd'], 'grpc-proxy': ['etcd', 'grpc-proxy'] };
const positive = (v: number) => Number.isFinite(v) && v > 0;

function assertPhase(p: StormPhase, system: StormSystem, what: (s: string) => string, alsoServing: string[] = []): void {
  assert.deepEqual(p.keysPerClient, { min: KEYS, max: KEYS }, what('every client holds every key'));
  assert.equal(p.completeClients, CLIENTS, what('complete clients'));
  for (const v of [p.timeS, p.clientS.p50, p.clientS.max]) assert.ok(positive(v), what('times positive and finite'));
  assert.ok(p.clientS.p50 <= p.clientS.max && p.clientS.max === p.timeS, what('per-client times within the phase'));
  assert.ok(p.bytesPerClient.min > 0 && p.bytesPerClient.min <= p.bytesPerClient.median && p.bytesPerClient.median <= p.bytesPerClient.max, what('bytes'));
  assert.ok(p.bytesTotal >= p.bytesPerClient.min * CLIENTS, what('bytes total'));
  assert.deepEqual(Object.keys(p.cpuS).sort(), [...SERVING[system], ...alsoServing].sort(), what('serving processes'));
  for (const v of [...Object.values(p.cpuS), p.clientCpuS]) assert.ok(Number.isFinite(v) && v >= 0, what('cpu seconds'));
  for (const v of Object.values(p.peakRssMiB)) assert.ok(positive(v), what('peak RSS'));
}

// A smoke of each scenario on fanout; the baselines in the long tier (TEST_LONG=1). The bench CLI
// test below still runs storm on direct and idle on raw.
const STORMS: readonly StormSystem[] = TEST_LONG ? STORM_SYSTEMS : ['fanout'];
const IDLES: readonly (typeof IDLE_SYSTEMS)[number][] = TEST_LONG ? IDLE_SYSTEMS : ['fanout'];

const storms: StormResult[] = [];

for (const system of STORMS) {
  test(`storm ${system}: every client gets every key${system === 'fanout' ? ', from one snapshot, and again after a restart' : ''}`, SLOW, async () => {
    const r = await runStorm(system, { keys: KEYS, clients: CLIENTS, workers: 2, mode: 'light', compression: 'brotli', serverCpus: '', clientCpus: '', timeoutS: 60, shutdownTimeoutS: SHUTDOWN_TIMEOUT_S });
    storms.push(r);
    const what = (s: string) => `${system}: ${s} (${JSON.stringify(r)})`;
    assert.equal(r.system, system);
    assertPhase(r.sync, system, what);
    if (system !== 'fanout') {
      assert.equal(r.sync.snapshotsGenerated, null, what('no snapshot metric'));
      assert.equal(r.reconnect, null, what('no reconnect phase'));
      // A reader lists exactly the preloaded keys and values: every reader the same bytes.
      assert.equal(r.sync.bytesPerClient.min, r.sync.bytesPerClient.max, what('same bytes per reader'));
      return;
    }
    assert.equal(r.sync.snapshotsGenerated, 1, what('one snapshot for the one view, not one per client'));
    const rc = r.reconnect!;
    assert.ok(rc, what('reconnect phase ran'));
    assertPhase(rc, system, what, ['calico-fanout (old)']);
    assert.ok(positive(rc.serverReadyS), what('the new replica started and became ready'));
    assert.equal(rc.shutdownTimeoutS, SHUTDOWN_TIMEOUT_S);
    // The old replica sends its clients away one by one over its shutdown timeout, not all at once,
    // and exits only once every one has gone.
    assert.ok(rc.leftS.first >= 0 && rc.leftS.last - rc.leftS.first >= SHUTDOWN_TIMEOUT_S / 4, what('the drain spread the goaways'));
    assert.ok(rc.leftS.last <= rc.oldExitS && rc.oldExitS < SHUTDOWN_TIMEOUT_S + 10, what('the old replica exited after its drain'));
    assert.ok(rc.resyncS.p50 <= rc.resyncS.max && rc.resyncS.max <= rc.timeS, what('each client\'s own resync within the phase'));
    assert.equal(rc.streamingOnNewServer, CLIENTS, what('every client reconnected to the new process'));
    assert.equal(rc.snapshotSyncs + rc.resumeSyncs + rc.digestSyncs, CLIENTS, what('one sync each with the new process'));
    assert.equal(rc.digestSyncs, CLIENTS, what('a new process (new epoch): clients with a cache resync by digest'));
    assert.ok(rc.bytesPerClient.max < r.sync.bytesPerClient.min / 100, what('nothing changed: a resync costs under 1% of the snapshot'));
  });
}

const idles: IdleResult[] = [];

for (const system of IDLES) {
  test(`idle ${system}: clients connect and stay; RSS per client is measured`, SLOW, async () => {
    const r = await runIdle(system, { clients: 20, keys: 100, workers: 2, serverCpus: '', clientCpus: '', settleS: 1, timeoutS: 60 });
    idles.push(r);
    const what = (s: string) => `${system}: ${s} (${JSON.stringify(r)})`;
    assert.equal(r.process, system === 'fanout' ? 'calico-fanout' : 'server', what('the serving process'));
    assert.ok(r.samplesMiB.before.length >= 2 && r.samplesMiB.after.length >= 2, what('several samples'));
    for (const v of [r.rssBeforeMiB, r.rssAfterMiB, r.connectS]) assert.ok(positive(v), what('positive and finite'));
    assert.ok(Number.isFinite(r.kibPerClient), what('KiB per client'));
    assert.equal(r.kibPerClient, Math.round(((r.rssAfterMiB - r.rssBeforeMiB) * 1024 / r.clients) * 10) / 10, what('KiB per client from the medians'));
    assert.ok(r.samplesMiB.beforeLast.length >= 2, what('samples before the last share connected'));
    assert.equal(r.marginalKibPerClient, Math.round(((r.rssAfterMiB - median(r.samplesMiB.beforeLast)) * 1024 / 10) * 10) / 10, what('marginal: the last 10 clients\' growth each'));
  });
}

test('storm and idle reports: results.json and report.md parse back', SLOW, () => {
  assert.equal(storms.length, STORMS.length, 'every storm run produced a result');
  assert.equal(idles.length, IDLES.length, 'every idle run produced a result');
  const dir = tempDir('report');
  writeStormResults(join(dir, 'storm'), 'storm smoke', 'node --test', storms, 'Machine: test');
  writeIdleResults(join(dir, 'idle'), 'idle smoke', 'node --test', idles, 'Machine: test');

  const storm = JSON.parse(readFileSync(join(dir, 'storm', 'results.json'), 'utf8')) as { scenario: string; runs: StormResult[] };
  assert.equal(storm.scenario, 'storm smoke');
  assert.deepEqual(storm.runs.map((r) => r.system), storms.map((r) => r.system));
  const md = readFileSync(join(dir, 'storm', 'report.md'), 'utf8');
  const rows = (system: string) => md.split('\n').filter((l) => l.startsWith(`| ${system} | ${KEYS} | ${CLIENTS} |`));
  for (const system of STORMS) assert.equal(rows(system).length, system === 'fanout' ? 2 : 1, `${system} rows (storm, and reconnect for fanout)`);
  for (const table of md.split('\n\n').filter((b) => b.startsWith('| system |'))) {
    const [header, , ...body] = table.split('\n');
    for (const row of body) assert.equal(row.split('|').length, header!.split('|').length, `every column: ${row}`);
  }
  assert.doesNotMatch(md, /NaN|undefined|Infinity/);

  const idle = JSON.parse(readFileSync(join(dir, 'idle', 'results.json'), 'utf8')) as { runs: IdleResult[] };
  assert.deepEqual(idle.runs.map((r) => r.system), [...IDLES]);
  const imd = readFileSync(join(dir, 'idle', 'report.md'), 'utf8');
  for (const system of IDLES) assert.match(imd, new RegExp(`^\\| ${system} \\| \\S+ \\| 20 \\|`, 'm'));
  assert.doesNotMatch(imd, /NaN|undefined|Infinity/);
});

test('bench CLI: storm and idle write their results and exit 0', SLOW, async () => {
  for (const [scenario, args] of [
    ['storm', ['--keys', '200', '--clients', '2', '--systems', 'direct']],
    ['idle', ['--clients', '2', '--systems', 'raw', '--settle', '1']],
  ] as const) {
    const out = tempDir(`cli-${scenario}`);
    const r = await runBenchCli([scenario, ...args, '--server-cpus', '', '--client-cpus', '', '--out', out]);
    assert.equal(r.code, 0, `${scenario}: exit ${r.code}\n--- stderr:\n${r.stderr.slice(-3000)}`);
    assert.deepEqual(r.left, [], `${scenario}: the CLI left processes behind`);
    assert.ok(r.stdout.includes(`results in ${out}`));
    for (const f of ['results.json', 'report.md']) assert.ok(existsSync(join(out, f)), `${scenario}: ${f} written`);
    const json = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as { command: string; runs: { system: string }[] };
    assert.deepEqual(json.runs.map((x) => x.system), [args[args.indexOf('--systems') + 1]]);
    assert.match(json.command, /--server-cpus '' --client-cpus ''/, 'the command as it can be pasted back');
  }
});

test('no process the harness started outlives its run', SLOW, async () => {
  const left = await settle(() => harnessDescendants());
  for (const p of left) kill(p.pid);
  assert.deepEqual(left, [], 'leftover harness processes (killed now)');
});
