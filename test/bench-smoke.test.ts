// Smoke test of the load-test harness (bench/): every system runs a tiny steady load end to end
// and yields complete, self-consistent results; the report files are written and parse back; the
// ingest scenario and the CLI work. Behaviour only, never timing thresholds. Every process the
// harness starts must be gone afterwards.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, test } from 'node:test';
import * as hdr from 'hdr-histogram-js';
import { runClientCost } from '../bench/scenarios/client.js';
import { runIngest } from '../bench/scenarios/ingest.js';
import { runSteady, SYSTEMS, type RunResult, type SteadyOptions, type SystemName } from '../bench/scenarios/steady.js';
import { writeResults } from '../bench/lib/report.js';
import { keyOf, stampsInItems, valueOf } from '../bench/lib/payload.js';
import { readDelta } from '../bench/lib/lean-reader.js';
import { encodeItem, itemsFrame } from '../src/protocol/frames.js';
import { encodeValue } from '../src/protocol/canonical.js';
import { packr } from '../src/protocol/codec.js';
import { scalingPoints, scalingSvg } from '../bench/lib/report-scaling.js';
import { harnessDescendants, kill, runBenchCli, settle } from './support/leftovers.js';
import { TEST_LONG } from './support/prng.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SLOW = { timeout: 120_000 };

const temps: string[] = [];
const tempDir = (tag: string) => { const d = mkdtempSync(join(tmpdir(), `bench-smoke-${tag}-`)); temps.push(d); return d; };

// ---- leftover processes ------------------------------------------------------------------

after(() => {
  // Whatever a failed or timed-out test left behind.
  for (const p of harnessDescendants()) kill(p.pid);
  for (const d of temps) rmSync(d, { recursive: true, force: true });
});

// ---- steady ------------------------------------------------------------------------------

const CLIENTS = 4;
const options = (mode: SteadyOptions['mode']): SteadyOptions => ({
  clients: CLIENTS, rate: 100, durationS: 1, keys: 50, workers: 1, mode,
  serverCpus: '', clientCpus: '', drainTimeoutS: 15,
});

/** The serving processes of each system, as the results name them. */
const SERVING: Record<SystemName, string[]> = {
  fanout: ['etcd', 'calico-fanout'],
  'raw-batch': ['server'],
  'raw-frame': ['server'],
  direct: ['etcd'],
  'grpc-proxy': ['etcd', 'grpc-proxy'],
};

function assertConsistent(r: RunResult, system: SystemName): void {
  const what = (s: string) => `${system}: ${s} (${JSON.stringify({ ...r, histogram: undefined })})`;
  assert.equal(r.system, system);
  assert.equal(r.clients, CLIENTS);
  assert.equal(r.written, 100, what('written'));
  assert.equal(r.expectedDeliveries, r.written * r.clients, what('expected deliveries'));
  assert.equal(r.delivered, r.expectedDeliveries, what('delivered'));
  assert.equal(r.allComplete, true, what('all complete'));
  assert.equal(r.completeClients, r.clients, what('complete clients'));

  const { p50, p90, p99, max } = r.latencyMs;
  for (const v of [p50, p90, p99, max]) assert.ok(Number.isFinite(v) && v > 0, what('latency positive'));
  assert.ok(p50 <= p90 && p90 <= p99 && p99 <= max, what('percentiles ordered'));

  const h = hdr.decodeFromCompressedBase64(r.histogram);
  assert.equal(h.totalCount, r.delivered, what('histogram count'));

  assert.deepEqual(Object.keys(r.cpuS.serving).sort(), [...SERVING[system]].sort(), what('serving processes'));
  for (const v of [...Object.values(r.cpuS.serving), r.cpuS.servingTotal, r.cpuS.clients, r.cpuS.writer]) {
    assert.ok(Number.isFinite(v) && v >= 0, what('cpu seconds'));
  }
  assert.deepEqual(Object.keys(r.peakRssMiB).sort(), [...SERVING[system]].sort(), what('rss processes'));
  for (const [name, v] of Object.entries(r.peakRssMiB)) assert.ok(Number.isFinite(v) && v > 0, what(`peak RSS of ${name}`));

  switch (system) {
    case 'fanout': assert.equal(r.upstreamWatches, 1, what('one upstream watch')); break;
    case 'direct': assert.ok(typeof r.upstreamWatches === 'number' && r.upstreamWatches >= r.clients, what('a watch per client')); break;
    case 'grpc-proxy': assert.ok(typeof r.upstreamWatches === 'number' && r.upstreamWatches < r.clients, what('the proxy coalesces watches')); break;
    default: assert.equal(r.upstreamWatches, null, what('no upstream'));
  }
  assert.equal(r.reconnects, 0, what('reconnects'));
}

// A smoke of the steady scenario: fanout, and raw-batch (the baseline the report's ratios are
// to). The other baselines and fanout with full clients run in the long tier (TEST_LONG=1).
const STEADY: readonly SystemName[] = TEST_LONG ? SYSTEMS : ['fanout', 'raw-batch'];

const runs: RunResult[] = [];

for (const system of STEADY) {
  test(`steady ${system} (light): every client gets every update, results consistent`, SLOW, async () => {
    const r = await runSteady(system, options('light'));
    runs.push(r);
    assertConsistent(r, system);
  });
}

test('steady fanout (full clients): every client gets every update, results consistent', { ...SLOW, skip: !TEST_LONG && 'the long tier: TEST_LONG=1' }, async () => {
  const r = await runSteady('fanout', options('full'));
  runs.push(r);
  assertConsistent(r, 'fanout');
});

// Lean mode: lean protocol readers plus probes (full client libraries), on calico-fanout and on
// the raw server speaking the protocol; the probes' latency is kept apart and compared.
const leanRuns: RunResult[] = [];
for (const system of ['fanout', 'raw-batch'] as const) {
  test(`steady ${system} (lean readers and probes): every client gets every update, the probes' latency apart`, SLOW, async () => {
    const r = await runSteady(system, { ...options('lean'), probes: 2 });
    leanRuns.push(r);
    assertConsistent(r, system);
    assert.equal(r.probes, 2);
    const ph = hdr.decodeFromCompressedBase64(r.probeHistogram!);
    // Each probe receives every update: its receipts are two clients' worth of the histogram.
    assert.equal(ph.totalCount, 2 * r.written, `probe receipts (${JSON.stringify(r.probeLatencyMs)})`);
    const { p50, p99, max } = r.probeLatencyMs!;
    assert.ok(p50 > 0 && p50 <= p99 && p99 <= max, JSON.stringify(r.probeLatencyMs));
  });
}

test('steady report, lean mode: the probes\' column and their p99 against raw-batch\'s', SLOW, () => {
  assert.equal(leanRuns.length, 2);
  const dir = tempDir('report-lean');
  writeResults(dir, 'steady lean smoke', 'node --test', leanRuns, 'Machine: test');
  const md = readFileSync(join(dir, 'report.md'), 'utf8');
  const header = md.split('\n').find((l) => l.startsWith('| system |'))!.split('|').slice(1, -1).map((c) => c.trim());
  for (const system of ['fanout', 'raw-batch']) {
    const cells = md.split('\n').find((l) => l.startsWith(`| ${system} | ${CLIENTS} | 100 |`))!.split('|').slice(1, -1).map((c) => c.trim());
    assert.match(cells[header.indexOf('probes: p50 / p99 ms')]!, /^2: \d/, `${system} probes`);
    assert.equal(cells[header.indexOf('superseded')], '0.0%', `${system}: nothing superseded at this load`);
    const ratio = cells[header.indexOf('p99 ÷ raw-batch')]!;
    const probeP99 = (x: RunResult) => x.probeLatencyMs!.p99;
    const expected = (probeP99(leanRuns.find((x) => x.system === system)!) / probeP99(leanRuns.find((x) => x.system === 'raw-batch')!)).toFixed(2);
    assert.equal(ratio, `${expected}×`, `${system}: the probes' p99 ratio`);
  }
});

test('lean readers find steady\'s stamps in a frame\'s items, as calico-fanout and the raw server encode them', () => {
  const values = [0, 1, 999].map((k) => ({ k, v: valueOf(k, 100 + k, 123_456) }));
  for (const encodeOf of [(v: unknown) => encodeValue(v), (v: unknown) => packr.pack(v)]) {
    const items = [...values.map(({ k, v }) => encodeItem(keyOf(k), encodeOf(v), '5')), encodeItem(keyOf(7), null, '6')];
    const frame = itemsFrame({ t: 'delta', from: 1, to: 9 }, items);
    const d = readDelta(frame)!;
    const seen: [number, number, number][] = [];
    stampsInItems(frame, d.at, d.items, (key, seq, ts) => seen.push([key, seq, ts]));
    assert.deepEqual(seen, values.map(({ k }) => [k, 100 + k, 123_456]));
  }
});

// ---- report ------------------------------------------------------------------------------

test('writeResults writes results.json, report.md and latency.svg for the runs', SLOW, () => {
  assert.equal(runs.length, STEADY.length + (TEST_LONG ? 1 : 0), 'every steady run produced a result');
  const dir = tempDir('report');
  writeResults(dir, 'steady smoke', 'node --test test/bench-smoke.test.ts', runs, 'Machine: test');

  const json = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as { scenario: string; runs: RunResult[] };
  assert.equal(json.scenario, 'steady smoke');
  assert.equal(json.runs.length, runs.length);
  assert.deepEqual(json.runs.map((r) => r.system), runs.map((r) => r.system));

  const md = readFileSync(join(dir, 'report.md'), 'utf8');
  assert.match(md, /\| p99 ÷ raw-batch \| CPU\/delivered ÷ raw-batch \|/);
  const header = md.split('\n').find((l) => l.startsWith('| system |'))!;
  const columns = header.split('|').length;
  for (const system of STEADY) {
    const rows = md.split('\n').filter((l) => l.startsWith(`| ${system} | ${CLIENTS} | 100 |`));
    assert.equal(rows.length, 1, `one row for ${system}`);
    const row = rows[0]!;
    assert.equal(row.split('|').length, columns, `${system} row has every column`);
    const cells = row.split('|').slice(1, -1).map((c) => c.trim());
    assert.equal(cells[3], String(runs.filter((r) => r.system === system).length), `${system} run count`);
    assert.equal(cells[5], 'yes', `${system} complete`);
    // The ratio columns: each a ratio to raw-batch (CPU may be '—' when raw-batch used no measurable CPU).
    assert.match(cells.at(-2)!, /^\d+\.\d\d×$/, `${system} p99 ratio`);
    assert.match(cells.at(-1)!, /^(\d+\.\d\d×|—)$/, `${system} CPU ratio`);
    if (system === 'raw-batch') assert.equal(cells.at(-2), '1.00×');
  }

  const svg = readFileSync(join(dir, 'latency.svg'), 'utf8');
  assert.ok(svg.startsWith('<svg'), 'an SVG document');
  assert.ok(svg.trimEnd().endsWith('</svg>'));
  assert.equal(svg.match(/<path /g)?.length, STEADY.length, 'one curve per system');
  for (const system of STEADY) assert.ok(svg.includes(`>${system} N=${CLIENTS} R=100</text>`), `legend for ${system}`);
  assert.doesNotMatch(svg, /NaN|Infinity/);
});

test('scaling chart: delivered/s against N, one line per system, from results folders', SLOW, () => {
  const small = tempDir('scaling-a');
  const big = tempDir('scaling-b');
  writeResults(small, 'a', 'x', runs, 'Machine: test');
  // The same runs as if at twice the clients and delivery rate: a second point per system.
  writeResults(big, 'b', 'x', runs.map((r) => ({ ...r, clients: r.clients * 2, deliveredPerSec: r.deliveredPerSec * 2 })), 'Machine: test');
  const points = scalingPoints([small, big], 100);
  assert.deepEqual([...points.keys()].sort(), [...STEADY].sort());
  for (const system of STEADY) {
    const own = runs.filter((r) => r.system === system).map((r) => r.deliveredPerSec).sort((a, b) => a - b);
    const med = own[Math.floor((own.length - 1) / 2)]!;
    assert.deepEqual(points.get(system), [{ n: CLIENTS, perSec: med }, { n: CLIENTS * 2, perSec: med * 2 }], `${system}: median per N, in N order`);
  }
  assert.deepEqual(scalingPoints([small], 999), new Map(), 'runs at another rate are left out');
  const svg = scalingSvg(points, 100);
  assert.equal(svg.match(/<path fill="none"/g)?.length, STEADY.length, 'one line per system');
  assert.match(svg, /ideal \(N × 100\/s\)/);
  assert.doesNotMatch(svg, /NaN|Infinity/);
});

// ---- ingest ------------------------------------------------------------------------------

test('ingest pushes every update through the pipeline', SLOW, () => {
  const r = runIngest({ updates: 2000, keys: 200, batch: 100 });
  assert.equal(r.updates, 2000);
  assert.equal(r.keys, 200);
  assert.ok(Number.isFinite(r.updatesPerSec) && r.updatesPerSec > 0);
  assert.ok(r.framesBuilt > 0);
  assert.ok(r.frameBytes > 0);
});

test('client cost: every way of reading the frames reads every update', SLOW, () => {
  const r = runClientCost({ perFrame: 5, frames: 40, keys: 30, repeat: 2 });
  assert.equal(r.updates, 200);
  assert.deepEqual(Object.keys(r.nsPerUpdate).sort(), ['fanoutBare', 'fanoutFull', 'fanoutLight', 'rawBare', 'rawFrameOnlyFull', 'rawFrameOnlyLight', 'rawFull', 'rawLight']);
  for (const [way, ns] of Object.entries(r.nsPerUpdate)) assert.ok(Number.isFinite(ns) && ns > 0, `${way}: ${ns} ns`);
});

// ---- CLI ---------------------------------------------------------------------------------

test('bench CLI: steady writes the three result files and exits 0', SLOW, async () => {
  const out = tempDir('cli');
  const { code, signal, stdout, stderr, left } = await runBenchCli(['steady', '--clients', '2', '--rate', '50', '--duration', '1', '--keys', '20',
    '--systems', 'raw-batch', '--server-cpus', '', '--client-cpus', '', '--out', out]);
  assert.equal(code, 0, `exit ${code ?? signal}\n--- stdout:\n${stdout.slice(-1500)}\n--- stderr:\n${stderr.slice(-3000)}`);
  assert.deepEqual(left, [], 'the CLI left processes behind');
  assert.match(stdout, new RegExp(`results in ${out.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));

  for (const f of ['results.json', 'report.md', 'latency.svg']) assert.ok(existsSync(join(out, f)), `${f} written`);
  const json = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as { runs: RunResult[] };
  // One system (the cheapest): the runs themselves are the in-process smokes' business; the churn
  // CLI test runs fanout.
  assert.deepEqual(json.runs.map((r) => r.system), ['raw-batch']);
  for (const r of json.runs) {
    assert.equal(r.written, 50);
    assert.equal(r.delivered, r.expectedDeliveries);
    assert.equal(r.expectedDeliveries, 100);
    assert.equal(r.allComplete, true);
  }
  assert.ok(readFileSync(join(out, 'latency.svg'), 'utf8').startsWith('<svg'));
  assert.match(readFileSync(join(out, 'report.md'), 'utf8'), /^\| raw-batch \| 2 \| 50 \|/m);
});

// ---- nothing left running ----------------------------------------------------------------

test('worker processes exit when the harness dies without cleaning up (SIGKILL)', SLOW, async () => {
  const alive = (pid: number) => { try { process.kill(pid, 0); return true; } catch { return false; } };
  // What makes each worker answer once its handlers (among them the one for a lost harness) are
  // installed: raw-server says it is listening by itself; the others answer a harmless command.
  const probes: [string, object | null][] = [
    ['bench/systems/raw-server.ts', null],
    ['bench/agent-worker.ts', { cmd: 'stall', paused: false }],
    ['bench/storm-worker.ts', { cmd: 'ping' }],
    ['bench/cluster-worker.ts', { cmd: 'ping' }],
  ];
  // The four run side by side: each waits on its own events.
  await Promise.all(probes.map(async ([file, probe]) => {
    // A stand-in harness forks the process, waits for its first message, prints its pid, and is
    // then killed outright.
    const code = `import { fork } from 'node:child_process'; const c = fork(${JSON.stringify(join(ROOT, file))}, [], { execArgv: ['--import', 'tsx'] });`
      // A message sent before the worker listens is dropped: the probe is repeated until answered.
      + (probe ? ` const t = setInterval(() => c.send(${JSON.stringify(probe)}), 100);` : ' const t = undefined;')
      + ` c.once('message', () => { clearInterval(t); console.log(c.pid); });`;
    const parent = spawn(process.execPath, ['--input-type=module', '-e', code], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    const pid = await new Promise<number>((resolve) => parent.stdout.once('data', (d: Buffer) => resolve(Number(String(d).trim()))));
    assert.ok(alive(pid), `${file} started`);
    parent.kill('SIGKILL');
    const end = Date.now() + 20_000; // a bound, not a delay: polled until the worker is gone
    while (alive(pid) && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    const left = alive(pid);
    if (left) kill(pid);
    assert.equal(left, false, `${file} outlived its harness`);
  }));
});

test('no process the harness started outlives its run', SLOW, async () => {
  const left = await settle(() => harnessDescendants());
  for (const p of left) kill(p.pid);
  assert.deepEqual(left, [], 'leftover harness processes (killed now)');
});

test('calico-fanout bench runs the harness (ingest)', SLOW, async () => {
  const out = execFileSync(process.execPath, ['bin/calico-fanout.js', 'bench', 'ingest', '--updates', '2000', '--keys', '100', '--repeat', '1'], { cwd: ROOT }).toString();
  const r = JSON.parse(out) as { median: number; runs: { updates: number }[] };
  assert.equal(r.runs.length, 1);
  assert.equal(r.runs[0]!.updates, 2000);
  assert.ok(r.median > 0);
});
