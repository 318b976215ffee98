// Smoke test of the harness's slow and churn scenarios, its progress line and its RSS sampling:
// tiny runs end to end, asserting behaviour (who completed, what the stalled client went
// through, whether every view equals etcd's), never timing thresholds. Every process the harness
// starts must be gone afterwards.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import * as hdr from 'hdr-histogram-js';
import { runSlow, type SlowResult, type SlowSystem } from '../bench/scenarios/slow.js';
import { runChurn, type ChurnResult, type ChurnSystem } from '../bench/scenarios/churn.js';
import type { RunResult } from '../bench/scenarios/steady.js';
import { writeResults } from '../bench/lib/report.js';
import { writeSlowResults } from '../bench/lib/report-slow.js';
import { writeChurnResults } from '../bench/lib/report-churn.js';
import { Progress, type Meter } from '../bench/lib/progress.js';
import { harnessDescendants, kill, runBenchCli, settle } from './support/leftovers.js';
import { TEST_LONG } from './support/prng.js';

const SLOW = { timeout: 120_000 };
const temps: string[] = [];
const tempDir = (tag: string) => { const d = mkdtempSync(join(tmpdir(), `bench-scenarios-${tag}-`)); temps.push(d); return d; };

after(() => {
  for (const p of harnessDescendants()) kill(p.pid);
  for (const d of temps) rmSync(d, { recursive: true, force: true });
});

/** A Meter that remembers every phase and count. */
class Recorder implements Meter {
  readonly phases: { name: string; expected?: number; counts: number[] }[] = [];
  phase(name: string, expected?: number): void { this.phases.push({ name, expected, counts: [] }); }
  delivered(n: number): void { this.phases.at(-1)?.counts.push(n); }
}

const load = { rate: 100, keys: 50, workers: 1, mode: 'light' as const, serverCpus: '', clientCpus: '', drainTimeoutS: 20 };

// ---- slow --------------------------------------------------------------------------------

const CLIENTS = 5;
const slowResults: SlowResult[] = [];
const steadyRuns: RunResult[] = [];

function assertRss(r: RunResult, proc: string): void {
  const s = r.rssSeries!;
  assert.ok(s && s.t.length >= 2, `${r.system}: an RSS series`);
  assert.equal(s.mib[proc]!.length, s.t.length, `${r.system}: one sample of ${proc} per time`);
  for (const v of s.mib[proc]!) assert.ok(Number.isFinite(v) && v > 0, `${r.system}: RSS of ${proc} positive (${v})`);
  assert.ok(s.t.every((t, i) => i === 0 || t >= s.t[i - 1]!), 'times ascend');
}

// A smoke of each scenario on fanout; the baselines (raw-batch, direct) in the long tier (TEST_LONG=1).
const SLOWS: readonly SlowSystem[] = TEST_LONG ? ['fanout', 'raw-batch'] : ['fanout'];
const CHURNS: readonly ChurnSystem[] = TEST_LONG ? ['fanout', 'direct'] : ['fanout'];

for (const system of SLOWS) {
  test(`slow ${system}: the others complete; the stalled client's outcome matches the server's behaviour`, SLOW, async () => {
    const meter = new Recorder();
    const r = await runSlow(system, { ...load, clients: CLIENTS, durationS: 2, stalled: 1, stallS: 1, meter });
    slowResults.push(r);
    steadyRuns.push(r.baseline);
    const what = (s: string) => `${system}: ${s} (${JSON.stringify({ ...r, baseline: undefined, stalledRun: { ...r.stalledRun, histogram: undefined, rssSeries: undefined } })})`;

    assert.equal(r.baseline.completeClients, CLIENTS, what('baseline complete'));
    assert.equal(r.baseline.stalled, undefined, what('no stalled clients in the baseline'));
    const st = r.stalledRun.stalled!;
    assert.ok(st, what('stalled run reports its stalled clients'));
    assert.deepEqual({ atS: st.atS, forS: st.forS }, { atS: 0.5, forS: 1 });
    assert.equal(st.othersComplete, CLIENTS - 1, what('every non-stalled client complete'));
    assert.equal(r.othersComplete.of, CLIENTS - 1);
    // The others' histogram holds exactly their deliveries; the stalled client's are apart.
    assert.equal(hdr.decodeFromCompressedBase64(r.stalledRun.histogram).totalCount, r.stalledRun.written * (CLIENTS - 1), what('others histogram'));
    assert.equal(hdr.decodeFromCompressedBase64(st.histogram).totalCount, st.clients[0]!.received, what('stalled histogram'));

    assert.equal(r.stalledClients.length, 1);
    const c = r.stalledClients[0]!;
    assert.equal(c.complete, true, what('the stalled client ends complete'));
    if (system === 'raw-batch') {
      // The raw server buffers for it without bound: it reads everything on the same connection.
      assert.equal(c.closed, false, what('raw connection kept'));
      assert.equal(c.received, r.stalledRun.written, what('raw: every update delivered'));
    } else if (c.connects === 1) {
      // Not closed within its stall timeout: caught up on the same connection (coalesced, so maybe fewer deliveries).
      assert.equal(c.snapshots, 1, what('only the initial snapshot'));
      assert.ok(c.received <= r.stalledRun.written, what('no more than written'));
    } else {
      assert.ok(c.resumes + c.snapshots - 1 >= 1, what('a reconnect resumed or took a snapshot'));
    }
    assert.match(c.outcome, /^complete, /);

    const proc = system === 'fanout' ? 'calico-fanout' : 'server';
    assert.equal(r.servingProcess, proc);
    assertRss(r.baseline, proc);
    assertRss(r.stalledRun, proc);
    for (const v of [r.peakRssMiB.baseline, r.peakRssMiB.stalled]) assert.ok(v > 0);
    assert.ok(Number.isFinite(r.stallWindowRssMiB.delta), what('RSS growth over the stall window measured'));
    assert.ok(Number.isFinite(r.othersP99Ms.changePct));

    // Progress: both runs had a measured phase polled during the pass and a drain.
    const measured = meter.phases.filter((p) => p.name === `${system} measured`);
    assert.equal(measured.length, 2, 'a measured phase per run');
    for (const p of measured) {
      assert.equal(p.expected, 200 * CLIENTS);
      assert.ok(p.counts.length >= 1, 'polled during the measured pass');
    }
    const drains = meter.phases.filter((p) => p.name === `${system} drain`);
    assert.equal(drains.length, 2);
    assert.equal(drains[0]!.counts.at(-1), 200 * CLIENTS, 'baseline drain reached every delivery');
  });
}

// ---- churn -------------------------------------------------------------------------------

const churnResults: ChurnResult[] = [];

for (const system of CHURNS) {
  test(`churn ${system}: every client's view of the churned keys equals etcd's`, SLOW, async () => {
    const meter = new Recorder();
    const r = await runChurn(system, { ...load, clients: 4, waves: 2, waveSize: 20, pauseS: 0, meter });
    churnResults.push(r);
    const what = (s: string) => `${system}: ${s} (${JSON.stringify({ ...r, histogram: undefined, rssSeries: undefined })})`;
    assert.equal(r.created, 40);
    assert.equal(r.deleted, 40);
    assert.equal(r.etcdAsWritten, true, what('etcd holds what was written'));
    assert.equal(r.viewsMatchingEtcd, 4, what('every view equals etcd'));
    assert.equal(r.allMatch, true);
    assert.equal(r.delivered, r.expectedDeliveries, what('every creation and deletion delivered'));
    assert.equal(hdr.decodeFromCompressedBase64(r.histogram).totalCount, r.created * r.clients, what('a latency per creation'));
    assert.ok(r.latencyMs.p99 > 0 && r.latencyMs.p50 <= r.latencyMs.p99);
    assert.ok(r.rssSeries.t.length >= 2 && Object.values(r.rssSeries.mib).every((xs) => xs.every((v) => v > 0)), what('RSS series'));
    assert.ok(meter.phases.some((p) => p.name === `${system} drain` && p.counts.at(-1) === r.expectedDeliveries), 'drain progress');
  });
}

// ---- reports -----------------------------------------------------------------------------

function assertSvg(file: string, curves: number): void {
  const svg = readFileSync(file, 'utf8');
  assert.ok(svg.startsWith('<svg') && svg.trimEnd().endsWith('</svg>'), `${file}: an SVG document`);
  assert.doesNotMatch(svg, /NaN|Infinity|undefined/, file);
  assert.equal(svg.match(/<path /g)?.length, curves, `${file}: curves`);
  // Every element closed: self-closing, or opened and closed as many times.
  for (const tag of ['svg', 'text']) assert.equal(svg.split(`<${tag}`).length, svg.split(`</${tag}>`).length, `${file}: <${tag}> balanced`);
}

test('slow, churn and steady reports: JSON, Markdown, latency and RSS charts', SLOW, () => {
  assert.equal(slowResults.length, SLOWS.length, 'every slow run produced results');
  assert.equal(churnResults.length, CHURNS.length, 'every churn run produced results');

  const slowDir = tempDir('slow');
  writeSlowResults(slowDir, 'slow smoke', 'node --test', slowResults, 'Machine: test');
  const slow = JSON.parse(readFileSync(join(slowDir, 'results.json'), 'utf8')) as { results: SlowResult[] };
  assert.deepEqual(slow.results.map((r) => r.system), [...SLOWS]);
  const md = readFileSync(join(slowDir, 'report.md'), 'utf8');
  for (const s of SLOWS) assert.match(md, new RegExp(`^\\| ${s} \\| (calico-fanout|server) \\| ${CLIENTS} \\| 1 \\|`, 'm'));
  assert.match(md, /\(latency\.svg\)/);
  assert.match(md, /\(rss\.svg\)/);
  assertSvg(join(slowDir, 'latency.svg'), 3 * SLOWS.length); // per system: baseline, others, stalled
  assertSvg(join(slowDir, 'rss.svg'), 2 * SLOWS.length); // per system: baseline and stalled run

  const churnDir = tempDir('churn');
  writeChurnResults(churnDir, 'churn smoke', 'node --test', churnResults, 'Machine: test');
  assert.equal((JSON.parse(readFileSync(join(churnDir, 'results.json'), 'utf8')) as { results: ChurnResult[] }).results.length, CHURNS.length);
  assert.match(readFileSync(join(churnDir, 'report.md'), 'utf8'), /^\| fanout \| 4 \| 2 × 20 \| 40 \/ 40 \| yes \| yes \|/m);
  assertSvg(join(churnDir, 'latency.svg'), CHURNS.length);
  assertSvg(join(churnDir, 'rss.svg'), CHURNS.length);

  const steadyDir = tempDir('steady');
  writeResults(steadyDir, 'steady smoke', 'node --test', steadyRuns, 'Machine: test');
  assert.match(readFileSync(join(steadyDir, 'report.md'), 'utf8'), /!\[serving RSS over time\]\(rss\.svg\)/);
  assertSvg(join(steadyDir, 'rss.svg'), steadyRuns.length);
  const json = JSON.parse(readFileSync(join(steadyDir, 'results.json'), 'utf8')) as { runs: RunResult[] };
  assert.ok(json.runs.every((r) => r.rssSeries && r.rssSeries.t.length > 0), 'RSS series kept in results.json');
});

// ---- progress line -----------------------------------------------------------------------

function fakeStream(isTTY: boolean): NodeJS.WriteStream & { text: string } {
  const s = { isTTY, text: '', write(chunk: string) { s.text += chunk; return true; } };
  return s as unknown as NodeJS.WriteStream & { text: string };
}

test('progress: redrawn in place on a terminal, plain lines otherwise', () => {
  const tty = fakeStream(true);
  const p = new Progress(tty);
  p.phase('fanout measured', 1000);
  p.delivered(500);
  p.say('a message');
  p.done();
  assert.match(tty.text, /\rfanout measured \d+\.\d s \[#{10}\.{10}\] 500\/1000 50\.0%\x1b\[K/);
  assert.ok(tty.text.includes('\r\x1b[Ka message\n'), 'a message clears the line first');
  assert.ok(tty.text.endsWith('\r\x1b[K'), 'done leaves a clean line');

  const log = fakeStream(false);
  const q = new Progress(log, 60_000);
  q.phase('drain', 10);
  q.delivered(3); // printed at once: the phase's first count
  q.delivered(7); // within the interval: held back
  q.phase('next', 4); // the previous phase's final count first
  q.done();
  assert.doesNotMatch(log.text, /\r|\x1b/);
  assert.deepEqual(log.text.trimEnd().split('\n').map((l) => l.replace(/ \d+\.\d s /, ' ')), [
    'drain [######..............] 3/10 30.0%',
    'drain [##############......] 7/10 70.0%',
  ]);
});

// ---- CLI and leftovers -------------------------------------------------------------------

test('bench CLI: churn writes its result files and leaves no process behind', SLOW, async () => {
  const out = tempDir('cli');
  const { code, signal, stdout, stderr, left } = await runBenchCli(['churn', '--clients', '2', '--keys', '20', '--waves', '1', '--wave-size', '10', '--rate', '100',
    '--workers', '1', '--systems', 'fanout', '--server-cpus', '', '--client-cpus', '', '--out', out]);
  assert.equal(code, 0, `exit ${code ?? signal}\n--- stdout:\n${stdout.slice(-1500)}\n--- stderr:\n${stderr.slice(-3000)}`);
  assert.deepEqual(left, [], 'the CLI left processes behind');
  for (const f of ['results.json', 'report.md', 'latency.svg', 'rss.svg']) assert.ok(existsSync(join(out, f)), `${f} written`);
  assert.match(stderr, /fanout drain \d+\.\d s \[#{20}\] 40\/40 100\.0%/, 'a plain progress line (stderr is not a terminal)');
  const json = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as { results: ChurnResult[] };
  assert.equal(json.results[0]!.allMatch, true);
});

test('no process the harness started outlives its run', SLOW, async () => {
  const left = await settle(() => harnessDescendants());
  for (const p of left) kill(p.pid);
  assert.deepEqual(left, [], 'leftover harness processes (killed now)');
});
