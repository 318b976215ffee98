// Smoke test of the cluster scenario of the load-test harness: a few nodes, a second of changes,
// on calico-fanout (with its reconnect storm), on two tiers of it and on the raw baseline. Behaviour only, never
// timing thresholds: every probe's cache equals the datastore's view, every agent reaches the end
// of the run, the report has each figure, the storm brings every agent back by digest, and no
// process is left behind. Also the lean reader's WebSocket framing and the probe check on their own.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import * as hdr from 'hdr-histogram-js';
import { WebSocketServer } from 'ws';
import { runCluster, type ClusterOptions, type ClusterResult, type ClusterSystem } from '../bench/scenarios/cluster.js';
import { writeClusterResults } from '../bench/lib/report-cluster.js';
import { checkProbe, matches } from '../bench/lib/probe-check.js';
import { ClusterModel, DEFAULT_SHAPE, clusterStampsIn, clusterStampsInItems } from '../bench/lib/cluster-model.js';
import { WsLite } from '../bench/lib/ws-lite.js';
import { readDelta } from '../bench/lib/lean-reader.js';
import { encodeItem, itemsFrame } from '../src/protocol/frames.js';
import { encode, packr } from '../src/protocol/codec.js';
import { encodeValue } from '../src/protocol/canonical.js';
import { harnessDescendants, kill, runBenchCli, settle } from './support/leftovers.js';

const SLOW = { timeout: 120_000 };
const NODES = 6;
const temps: string[] = [];
const tempDir = (tag: string) => { const d = mkdtempSync(join(tmpdir(), `bench-cluster-${tag}-`)); temps.push(d); return d; };

after(() => {
  for (const p of harnessDescendants()) kill(p.pid);
  for (const d of temps) rmSync(d, { recursive: true, force: true });
});

const options: ClusterOptions = {
  nodes: NODES, rate: 60, durationS: 1, warmupS: 0, podsPerNode: 4, probeNodes: 5, workers: 2, wave: 50, compression: 'brotli',
  serverCpus: '', clientCpus: '', storm: true, timeoutS: 60,
};

const positive = (v: number) => Number.isFinite(v) && v > 0;
const runs: ClusterResult[] = [];

function assertRun(r: ClusterResult, system: ClusterSystem): void {
  const what = (s: string) => `${system}: ${s} (${JSON.stringify({ ...r, probeHistogram: undefined, leanHistogram: undefined, rssSeries: undefined })})`;
  assert.equal(r.connections, NODES * 4, what('four agents a node'));
  assert.equal(r.probes, 20, what('five probe nodes, four probes each'));
  // The probes' caches are the datastore's view: every view of every probe node, none empty.
  assert.equal(r.probeChecks.length, r.probes, what('every probe checked'));
  for (const c of r.probeChecks) {
    assert.ok(matches(c), what(`probe ${c.syncer}/${c.node}: ${c.firstDifferences.join('; ')}`));
    assert.ok(c.expected > 0 && c.keys === c.expected, what(`probe ${c.syncer}/${c.node} holds its view`));
  }
  assert.equal(r.probesMatch, true);
  assert.equal(r.markerSeen, r.connections, what('every agent reached the marker written after the last change'));
  assert.ok(r.writes > 0 && r.initialKeys > NODES * options.podsPerNode, what('the cluster was loaded and changed'));
  // The marker reaches every node's node-status agent with its own status, and every felix agent.
  assert.ok(r.deliveredByView['node-status']! >= NODES && r.deliveredByView.felix! >= NODES, what('deliveries in the node-scoped and shared views'));
  assert.equal(r.delivered, Object.values(r.deliveredByView).reduce((a, b) => a + b, 0), what('delivered is the sum over views'));
  for (const [name, p] of Object.entries(r.latencyMs)) {
    for (const v of [p.p50, p.p90, p.p99, p.max]) assert.ok(positive(v), what(`${name} latency positive`));
    assert.ok(p.p50 <= p.p90 && p.p90 <= p.p99 && p.p99 <= p.max, what(`${name} percentiles ordered`));
  }
  assert.ok(hdr.decodeFromCompressedBase64(r.probeHistogram).totalCount > 0 && hdr.decodeFromCompressedBase64(r.leanHistogram).totalCount > 0, what('both histograms hold receipts'));
  const serving = { fanout: ['calico-fanout', 'etcd'], 'fanout-tier2': ['calico-fanout', 'calico-fanout tier-2 a', 'calico-fanout tier-2 b', 'etcd'], 'raw-batch': ['server'] }[system];
  assert.deepEqual(Object.keys(r.cpuS.serving).sort(), serving, what('serving processes'));
  assert.deepEqual(Object.keys(r.processes).sort(), serving, what('every serving process on its own'));
  for (const p of Object.values(r.processes)) {
    assert.ok(Number.isFinite(p.cpuS) && p.cpuS >= 0 && Number.isFinite(p.cores), what('a process\'s CPU'));
    for (const v of [p.rssMedianMiB, p.rssMaxMiB, p.peakRssMiB]) assert.ok(positive(v), what('a process\'s RSS'));
  }
  for (const v of [r.cpuS.servingTotal, r.cpuS.server, r.cpuS.generator, r.cpuS.writer, r.serverCores, r.servingCores, r.generatorCores]) assert.ok(Number.isFinite(v) && v >= 0, what('cpu figures'));
  assert.ok(positive(r.servingCpuUsPerDelivered), what('serving CPU per delivery'));
  for (const v of [r.rss.beforeClientsMiB, r.rss.measuredMaxMiB, r.rss.measuredMedianMiB, r.rss.peakMiB]) assert.ok(positive(v), what('RSS figures'));
  assert.ok(Number.isFinite(r.rss.kibPerConnection), what('RSS per connection'));
  assert.equal(r.upstreamWatches, system === 'raw-batch' ? null : 1, what('one upstream watch (fanout, and the root of two tiers)'));
  assert.equal(r.rootConnections, system === 'fanout-tier2' ? 2 : null, what('the root serves the two tier-2 servers alone'));
  assert.equal(r.reconnects, 0, what('no reconnects in the measured pass'));
  assert.equal(r.protocolErrors, 0, what('no protocol errors'));
  assert.deepEqual(r.closes, {}, what('no connection closed'));
}

for (const system of ['fanout', 'raw-batch'] as const) {
  test(`cluster ${system}: every probe's cache is the datastore's view, every agent reaches the end${system === 'fanout' ? ', and comes back after a storm' : ''}`, SLOW, async () => {
    const r = await runCluster(system, options);
    runs.push(r);
    assertRun(r, system);
    if (system !== 'fanout') { assert.equal(r.storm, null); return; }
    const s = r.storm!;
    assert.ok(s, 'the storm ran');
    assert.deepEqual(s.synced, { digest: r.connections, snapshot: 0, resume: 0, unknown: 0 }, `every agent resynced by digest on the second replica (${JSON.stringify(s)})`);
    assert.ok(positive(s.replicaReadyS) && positive(s.allInSyncS), JSON.stringify(s));
    assert.ok(s.agentS.p50 <= s.agentS.p99 && s.agentS.p99 <= s.agentS.max && s.agentS.max <= s.allInSyncS + 0.05, `per-agent times within the storm (${JSON.stringify(s)})`);
    assert.ok(Number.isFinite(s.cpuS['calico-fanout']!) && Number.isFinite(s.cpuS.etcd!), JSON.stringify(s));
    assert.ok(Number.isInteger(s.retried) && s.retried >= 0 && Number.isInteger(s.listenOverflows) && s.listenOverflows >= 0, `reconnect troubles counted (${JSON.stringify(s)})`);
  });
}

let tiered: ClusterResult | undefined;
test('cluster fanout-tier2: agents on two servers below a root hold the datastore\'s view, the root serves those two, etcd one watch', SLOW, async () => {
  tiered = await runCluster('fanout-tier2', { ...options, storm: false });
  assertRun(tiered, 'fanout-tier2');
  assert.equal(tiered.storm, null, 'no storm on two tiers');
});

test('cluster report: two tiers against one, the tier\'s added p99, the root\'s connections, every process', SLOW, () => {
  const one = runs.find((r) => r.system === 'fanout');
  assert.ok(one && tiered, 'fanout and fanout-tier2 ran');
  const dir = tempDir('tiers');
  writeClusterResults(dir, 'cluster tiers smoke', 'node --test', [one, tiered], 'Machine: test');
  const md = readFileSync(join(dir, 'report.md'), 'utf8');
  assert.doesNotMatch(md, /NaN|undefined|Infinity/);
  assert.match(md, /## Tiers \(issue 18\)/);
  const added = tiered.latencyMs.probes.p99 - one.latencyMs.probes.p99;
  const row = md.split('\n').find((l) => l.startsWith(`| ${NODES} | 1 / 1 |`));
  assert.ok(row, md);
  const cells = row.split('|').slice(1, -1).map((c) => c.trim());
  assert.match(cells[4]!, new RegExp(`^${added >= 0 ? '\\+' : ''}${added.toFixed(1).replace('.', '\\.')} ms: (met|\\*\\*missed\\*\\*)$`), 'the p99 the tier adds');
  const addedP50 = tiered.latencyMs.probes.p50 - one.latencyMs.probes.p50;
  assert.equal(cells[5], `${addedP50 >= 0 ? '+' : ''}${addedP50.toFixed(1)} ms`, 'the p50 the tier adds');
  assert.deepEqual(cells.slice(7), ['2', '1', 'yes'], 'root connections, etcd watches, probes = datastore');
  for (const name of ['etcd', 'calico-fanout', 'calico-fanout tier-2 a', 'calico-fanout tier-2 b']) {
    assert.match(md, new RegExp(`^\\| ${NODES} \\| fanout-tier2 \\| ${name} \\| \\d+\\.\\d\\d \\(\\d+\\.\\d\\d\\) \\| \\d+ \\(\\d+\\) \\|$`, 'm'), `${name}'s CPU and RSS`);
  }
  assert.match(md, /The reconnect storm is fanout's only/);
  const cpu = readFileSync(join(dir, 'cpu.svg'), 'utf8');
  assert.match(cpu, /calico-fanout tier-2 servers/);
});

test('cluster report: every figure, the targets and the storm, a CPU chart and a latency chart', SLOW, () => {
  assert.equal(runs.length, 2, 'both systems ran');
  const dir = tempDir('report');
  writeClusterResults(dir, 'cluster smoke', 'node --test', runs, 'Machine: test');
  const json = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as { runs: ClusterResult[] };
  assert.deepEqual(json.runs.map((r) => r.system), ['fanout', 'raw-batch']);
  const md = readFileSync(join(dir, 'report.md'), 'utf8');
  assert.doesNotMatch(md, /NaN|undefined|Infinity/);
  const tables = md.split('\n\n').filter((b) => b.startsWith('| '));
  // Per N, the targets, calico-fanout's counters, the storm (the growth table needs two N).
  assert.equal(tables.length, 4, md);
  assert.match(md, new RegExp(`^\\| ${NODES} \\| 1 \\| \\d+ \\| \\d+ \\| \\d+ \\| \\d+ \\| \\d+ \\| \\d+\\.\\d / \\d+\\.\\d \\|$`, 'm'), 'calico-fanout\'s counters, each a number');
  for (const table of tables) {
    const [header, , ...body] = table.split('\n');
    assert.ok(body.length > 0, `rows: ${header}`);
    for (const row of body) assert.equal(row.split('|').length, header!.split('|').length, `every column: ${row}`);
  }
  const row = (system: string) => md.split('\n').find((l) => l.startsWith(`| ${system} | ${NODES} |`))!.split('|').slice(1, -1).map((c) => c.trim());
  const header = tables[0]!.split('\n')[0]!.split('|').slice(1, -1).map((c) => c.trim());
  const cell = (system: string, col: string) => row(system)[header.indexOf(col)]!;
  for (const col of ['serving CPU µs / delivered', 'probes p50 ms', 'probes p99 ms', 'server RSS MiB in the pass (max)', 'RSS per connection KiB', 'upstream watches', 'generator cores', 'server cores']) {
    assert.ok(header.includes(col), `column ${col}`);
    assert.match(cell('fanout', col), /\d/, `fanout ${col}`);
  }
  assert.equal(cell('fanout', 'probes = datastore'), 'yes');
  assert.equal(cell('raw-batch', '÷ raw-batch'), '1.00×');
  assert.match(cell('fanout', '÷ raw-batch'), /^\d+\.\d\d×$/);
  assert.match(md, /## Targets \(issue 17\)/);
  assert.match(md, /## Reconnect storm/);
  assert.match(md, new RegExp(`^\\| ${NODES} \\| ${NODES * 4} \\| 1 \\|`, 'm'), 'a storm row');
  const cpu = readFileSync(join(dir, 'cpu.svg'), 'utf8');
  assert.ok(cpu.startsWith('<svg') && cpu.trimEnd().endsWith('</svg>'));
  assert.equal(cpu.match(/<path fill="none"/g)?.length, 5, 'calico-fanout, calico-fanout + etcd, raw server, and each system\'s generator');
  assert.doesNotMatch(cpu, /NaN|Infinity/);
  assert.ok(readFileSync(join(dir, 'latency.svg'), 'utf8').startsWith('<svg'));
});

test('bench CLI: cluster writes its results and exits 0', SLOW, async () => {
  const out = tempDir('cli');
  const r = await runBenchCli(['cluster', '--nodes', '3', '--rate', '30', '--duration', '1', '--warmup', '0', '--workers', '1', '--probe-nodes', '1',
    '--pods-per-node', '2', '--systems', 'raw-batch', '--server-cpus', '', '--client-cpus', '', '--out', out]);
  assert.equal(r.code, 0, `exit ${r.code ?? r.signal}\n--- stderr:\n${r.stderr.slice(-3000)}`);
  assert.deepEqual(r.left, [], 'the CLI left processes behind');
  for (const f of ['results.json', 'report.md', 'cpu.svg']) assert.ok(existsSync(join(out, f)), `${f} written`);
  const json = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as { runs: ClusterResult[] };
  assert.deepEqual(json.runs.map((x) => [x.system, x.nodes, x.probes]), [['raw-batch', 3, 4]]);
});

test('bench CLI: a cluster run stopped with SIGTERM midway leaves no process behind (etcd and the agents\' processes included)', SLOW, async () => {
  const r = await runBenchCli(['cluster', '--nodes', '3', '--rate', '30', '--duration', '30', '--warmup', '0', '--workers', '1', '--probe-nodes', '1',
    '--pods-per-node', '2', '--systems', 'fanout', '--no-storm', '--server-cpus', '', '--client-cpus', '', '--out', tempDir('sigterm')], 100_000,
  { when: /fanout: 30 changes\/s/, signal: 'SIGTERM' });
  assert.equal(r.signal ?? r.code, 130, `stopped by the signal\n--- stderr:\n${r.stderr.slice(-3000)}`);
  assert.deepEqual(r.left, [], 'the CLI left processes behind');
});

test('probe check: a cache that differs from the datastore is reported, key by key', () => {
  const model = new ClusterModel({ ...DEFAULT_SHAPE, nodes: 2, podsPerNode: 2 }, 10);
  const content = new Map(model.initial().map((w) => [w.key, w.value] as [string, unknown]));
  const node = ClusterModel.nodeName(0);
  const status = `/calico/resources/v3/projectcalico.org/caliconodestatuses/${node}`;
  const entry = (v: unknown) => ({ value: structuredClone(v) as Record<string, any>, revision: '7', hash: 0n });
  const good = checkProbe('node-status', node, [[status, entry({ ...(content.get(status) as object), metadata: { ...(content.get(status) as any).metadata, resourceVersion: '7' } })]], content);
  assert.ok(matches(good), JSON.stringify(good));
  const changed = structuredClone(content.get(status)) as any;
  changed.status.lastUpdated = 'then';
  const bad = checkProbe('node-status', node, [[status, entry(changed)], ['/calico/resources/v3/projectcalico.org/caliconodestatuses/other', entry(changed)]], content);
  assert.deepEqual({ differing: bad.differing, extra: bad.extra, missing: bad.missing }, { differing: 1, extra: 1, missing: 0 });
  const empty = checkProbe('felix', node, [], content);
  assert.ok(empty.missing > 0 && empty.missing === empty.expected, 'an empty cache misses the whole view');
});

test('cluster model: stamps are found in canonical bytes and in JSON, and a played second holds every kind of change', () => {
  const model = new ClusterModel({ ...DEFAULT_SHAPE, nodes: 20, podsPerNode: 3 }, 200);
  model.initial();
  const writes = [...model.due(6000, 123_456)];
  const kinds = new Set(writes.map((w) => w.key.split('/').slice(0, 6).join('/') + (w.value ? '' : ' deleted')));
  for (const want of ['caliconodestatuses', 'workloadendpoints', 'ipam/v2/assignment', 'ipam/v2/handle', 'networkpolicies', 'networksets', 'nodes']) {
    assert.ok([...kinds].some((k) => k.includes(want)), `a ${want} write in ${[...kinds].join(', ')}`);
  }
  assert.ok([...kinds].some((k) => k.includes('workloadendpoints') && k.endsWith(' deleted')), 'pods deleted too');
  const stamped = writes.filter((w) => (w.value as any)?.metadata?.annotations?.['bench/seq']);
  assert.ok(stamped.length > 0);
  // A frame of every write, as calico-fanout (canonical values) and the raw server (msgpackr) send it: every stamp found.
  for (const encodeOf of [(v: unknown) => encodeValue(v), (v: unknown) => packr.pack(v)]) {
    const frame = itemsFrame({ t: 'delta', from: 1, to: 2 }, writes.map((w, i) => encodeItem(w.key, w.value ? encodeOf(w.value) : null, String(i))));
    const d = readDelta(frame)!;
    const seen: number[] = [];
    clusterStampsInItems(frame, d.at, d.items, (seq, ts) => { assert.equal(ts, 123_456); seen.push(seq); });
    assert.deepEqual(seen, stamped.map((w) => Number((w.value as any).metadata.annotations['bench/seq'])));
  }
  for (const w of stamped) {
    for (const bytes of [encodeValue(w.value), Buffer.from(JSON.stringify(w.value))]) {
      const seen: [number, number][] = [];
      clusterStampsIn(bytes, (seq, ts) => seen.push([seq, ts]));
      assert.deepEqual(seen, [[Number((w.value as any).metadata.annotations['bench/seq']), 123_456]], w.key);
    }
  }
});

test('ws-lite: whole messages across reads, a large one, pings answered, the server\'s close code', async () => {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((r) => wss.once('listening', r));
  const big = Buffer.alloc(700_000, 7);
  const got: number[] = [];
  let pong = false;
  const closed = new Promise<number>((resolve) => {
    const ws = new WsLite(`ws://127.0.0.1:${(wss.address() as { port: number }).port}`, {
      onOpen: () => ws.send(Buffer.from('hello')),
      onMessage: (d) => { got.push(d.length); if (d.length === big.length) assert.ok(d.every((b) => b === 7), 'the large message intact'); },
      onClose: (code) => resolve(code),
    });
  });
  const [server] = await new Promise<[import('ws').WebSocket]>((resolve) => wss.once('connection', (s) => resolve([s])));
  const first = await new Promise<Buffer>((resolve) => server.once('message', (d: Buffer) => resolve(d)));
  assert.equal(first.toString(), 'hello', 'a masked client message the server reads');
  server.on('pong', () => { pong = true; });
  for (const n of [1, 125, 126, 65_535, 65_536]) server.send(Buffer.alloc(n));
  server.send(big);
  server.ping();
  await new Promise<void>((resolve) => { const t = setInterval(() => { if (pong && got.length === 6) { clearInterval(t); resolve(); } }, 5); });
  server.close(4007, 'stalled');
  assert.equal(await closed, 4007);
  assert.deepEqual(got, [1, 125, 126, 65_535, 65_536, big.length]);
  wss.close();
});

test('lean reader: a delta frame as servers build it is read in place, whatever the size of its numbers and item count', () => {
  const item = encodeItem('/calico/resources/v3/projectcalico.org/ippools/p', Buffer.from([0x80]), '1');
  for (const [from, to] of [[0, 5], [100, 200], [300, 70_000], [70_000, 5_000_000_000]] as const) {
    for (const n of [0, 3, 15, 16, 70_000]) {
      const frame = itemsFrame({ t: 'delta', from, to }, Array.from({ length: n }, () => item));
      const d = readDelta(frame);
      assert.deepEqual(d && { items: d.items, to: d.to }, { items: n, to }, `from ${from} to ${to}, ${n} items`);
      if (n > 0) assert.deepEqual(frame.subarray(d!.at, d!.at + item.length), item, 'the items start where it says');
    }
  }
  // Anything else takes the general path.
  assert.equal(readDelta(itemsFrame({ t: 'snapshot', seq: 1, i: 0, last: true }, [item])), undefined);
  assert.equal(readDelta(encode({ t: 'ping', ts: Date.now() })), undefined);
});

test('no process the harness started outlives its run', SLOW, async () => {
  const left = await settle(() => harnessDescendants());
  for (const p of left) kill(p.pid);
  assert.deepEqual(left, [], 'leftover harness processes (killed now)');
});
