// Results of the cluster scenario: results.json, a Markdown report (per system and N: medians over
// runs with their range, ratios to raw-batch at the same N, the targets of issue 17, the storm),
// the probes' latency CDF, and the server's and the generator's CPU against N as an SVG chart;
// with fanout-tier2 runs, what the second tier adds (issue 18).
import * as hdr from 'hdr-histogram-js';
import type { ClusterResult } from '../scenarios/cluster.js';
import { matches } from './probe-check.js';
import { cdfSvg, COLORS, fmtMs, median, writeReportFiles } from './report.js';

/** Runs grouped by system and N, in first-seen order. */
function groups(runs: ClusterResult[]): ClusterResult[][] {
  const m = new Map<string, ClusterResult[]>();
  for (const r of runs) m.set(`${r.system} ${r.nodes}`, [...(m.get(`${r.system} ${r.nodes}`) ?? []), r]);
  return [...m.values()];
}

/** The median of a figure over runs, with its range when there are several. */
function med(runs: ClusterResult[], f: (r: ClusterResult) => number, fmt: (n: number) => string = (n) => n.toFixed(2)): string {
  const xs = runs.map(f).filter(Number.isFinite);
  if (xs.length === 0) return '—';
  return xs.length > 1 ? `${fmt(median(xs))} (${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))})` : fmt(xs[0]!);
}

const m = (runs: ClusterResult[], f: (r: ClusterResult) => number) => median(runs.map(f));
const ratio = (a: number, b: number | undefined) => (b && Number.isFinite(a) && Number.isFinite(b) ? `${(a / b).toFixed(2)}×` : '—');
const k = (n: number) => (n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : n >= 1e3 ? `${Math.round(n / 1e3)}k` : String(Math.round(n)));
const met = (ok: boolean) => (ok ? 'met' : '**missed**');
const orDash = (v: number) => (Number.isFinite(v) ? String(v) : '—');

/** The run's serving processes and their CPU seconds (medians). */
const serving = (g: ClusterResult[]) => Object.keys(g[0]!.cpuS.serving).map((n) => `${n} ${m(g, (x) => x.cpuS.serving[n] ?? NaN).toFixed(2)}`).join(' + ');

export function clusterMarkdown(title: string, command: string, runs: ClusterResult[], machine: string): string {
  const gs = groups(runs);
  const raw = (n: number) => gs.find((g) => g[0]!.system === 'raw-batch' && g[0]!.nodes === n);
  const fanout = gs.filter((g) => g[0]!.system === 'fanout');
  const lines = [
    `# ${title}`, '', `Command: \`${command}\``, '', machine, '',
    `Load average (1 min) at the start of each run: ${runs.map((r) => r.loadAverage.toFixed(1)).join(', ')}.`, '',
    '## Per N', '',
    '| system | N nodes | connections (probes) | runs | changes/s + statuses/s | delivered/s | every agent reached the end? | probes p50 ms | probes p99 ms | lean readers p50 / p99 ms | writer → etcd answer p50 / p99 ms | serving CPU s | serving CPU µs / delivered | ÷ raw-batch | server cores | generator cores | generator ÷ server | server RSS MiB in the pass (max) | RSS per connection KiB | upstream watches | probes = datastore | reconnects | felix: frames/s per agent, items per frame |',
    `|${'---|'.repeat(23)}`,
    ...gs.map((g) => {
      const r = g[0]!;
      const base = raw(r.nodes);
      const cpu = m(g, (x) => x.servingCpuUsPerDelivered);
      return `| ${r.system} | ${r.nodes} | ${r.connections} (${r.probes}) | ${g.length} | ${r.rate} + ${r.nodes / 10} | ${k(m(g, (x) => x.deliveredPerSec))} | ${g.every((x) => x.markerSeen === x.connections) ? 'yes' : `no: ${g.map((x) => x.markerSeen).join(', ')} of ${r.connections}`} | ${med(g, (x) => x.latencyMs.probes.p50, fmtMs)} | ${med(g, (x) => x.latencyMs.probes.p99, fmtMs)} | ${fmtMs(m(g, (x) => x.latencyMs.lean.p50))} / ${fmtMs(m(g, (x) => x.latencyMs.lean.p99))} | ${r.commitMs ? `${fmtMs(m(g, (x) => x.commitMs!.p50))} / ${fmtMs(m(g, (x) => x.commitMs!.p99))}` : '—'} | ${serving(g)} | ${med(g, (x) => x.servingCpuUsPerDelivered)} | ${r.system === 'raw-batch' ? '1.00×' : ratio(cpu, base && m(base, (x) => x.servingCpuUsPerDelivered))} | ${med(g, (x) => x.serverCores)} | ${med(g, (x) => x.generatorCores)} | ${ratio(m(g, (x) => x.cpuS.generator), m(g, (x) => x.cpuS.server))} | ${m(g, (x) => x.rss.measuredMedianMiB).toFixed(0)} (${m(g, (x) => x.rss.measuredMaxMiB).toFixed(0)}) | ${med(g, (x) => x.rss.kibPerConnection, (n) => n.toFixed(1))} | ${r.upstreamWatches ?? '—'} | ${g.every((x) => x.probesMatch) ? 'yes' : `**no** (${g.map((x) => x.probeChecks.filter((c) => !matches(c)).length).join(', ')} probes differ)`} | ${m(g, (x) => x.reconnects)} | ${m(g, (x) => x.framesByView.felix! / x.nodes / (x.durationS + x.drainS)).toFixed(1)}, ${m(g, (x) => x.deliveredByView.felix! / x.framesByView.felix!).toFixed(2)} |`;
    }),
    '',
    'Medians over runs (range in brackets). Changes/s: datastore writes of the cluster\'s changes (pods with their IPAM',
    'block and handle, policy and network-set edits, a node joining or leaving), besides each node\'s CalicoNodeStatus every',
    '10 s. Delivered: items received by all agents (lean readers\' delta items, probes\' updates) over the measured pass and',
    'the drain; the end is a marker every agent sees, written after the last change. Latency: write (stamped just before',
    'the datastore request) → receipt, of every stamped update (writer → etcd answer: the part the writer and etcd take); probes are full client libraries (their caches are',
    'compared with the datastore\'s view at the end: "probes = datastore"), lean readers the rest. Serving CPU: etcd +',
    'calico-fanout, or the raw server, which makes the changes itself; server cores: calico-fanout or the raw server alone;',
    'generator: the agents\' processes. RSS: the server\'s VmRSS sampled over the pass; per connection: (median in the pass −',
    'before any agent connected) ÷ connections. Frames per felix agent and items per frame: how the changes were batched',
    '(the raw server sends one frame per 10 ms tick).',
    '', '![probes\' latency](latency.svg)', '', '![CPU against N](cpu.svg)',
  ];
  if (fanout.length) {
    lines.push('', '## Targets (issue 17)', '', '| N | serving CPU / delivered ≤ 1.3× raw-batch | probes\' p99 ≤ 50 ms | server RSS ≤ 256 MiB |', '|---|---|---|---|');
    for (const g of fanout) {
      const n = g[0]!.nodes;
      const base = raw(n);
      const cpu = m(g, (x) => x.servingCpuUsPerDelivered);
      const bc = base ? m(base, (x) => x.servingCpuUsPerDelivered) : NaN;
      const p99 = m(g, (x) => x.latencyMs.probes.p99);
      const rss = m(g, (x) => x.rss.measuredMaxMiB);
      lines.push(`| ${n} | ${base ? `${ratio(cpu, bc)}: ${met(cpu / bc <= 1.3)}` : 'no raw-batch run'} | ${p99 >= 1000 ? fmtMs(p99) : `${fmtMs(p99)} ms`}: ${met(p99 <= 50)} | ${rss.toFixed(0)} MiB: ${met(rss <= 256)} |`);
    }
    if (fanout.length > 1) {
      lines.push('', '| from N | to N | calico-fanout CPU grows (target ≤ 2.75× for 1,000 → 2,500; linear = N ratio) | storm all in sync grows (target ≤ 2× for 1,000 → 2,500) |', '|---|---|---|---|');
      for (let i = 1; i < fanout.length; i++) {
        const [a, b] = [fanout[0]!, fanout[i]!];
        const storm = (g: ClusterResult[]) => m(g.filter((x) => x.storm), (x) => x.storm!.allInSyncS);
        lines.push(`| ${a[0]!.nodes} | ${b[0]!.nodes} | ${ratio(m(b, (x) => x.cpuS.server), m(a, (x) => x.cpuS.server))} (N × ${(b[0]!.nodes / a[0]!.nodes).toFixed(2)}) | ${ratio(storm(b), storm(a))} |`);
      }
    }
  }
  const counted = fanout.filter((g) => g.every((x) => x.serverMetrics));
  if (counted.length) {
    const c = (g: ClusterResult[], n: string) => m(g, (x) => x.serverMetrics![n]!);
    lines.push('', '## calico-fanout\'s own counters over the measured pass and drain', '',
      '| N | runs | datastore updates in | coalesced in the ingest window | delta frames built | frames written | MiB written | event loop delay p99 / max ms |',
      '|---|---|---|---|---|---|---|---|',
      ...counted.map((g) => `| ${g[0]!.nodes} | ${g.length} | ${k(c(g, 'calico_fanout_datastore_updates_total'))} | ${k(c(g, 'calico_fanout_updates_coalesced_total'))} | ${k(c(g, 'calico_fanout_delta_frames_built_total'))} | ${k(c(g, 'calico_fanout_frames_sent_total'))} | ${(c(g, 'calico_fanout_bytes_sent_total') / 2 ** 20).toFixed(0)} | ${c(g, 'nodejs_eventloop_lag_p99_seconds').toFixed(1)} / ${c(g, 'nodejs_eventloop_lag_max_seconds').toFixed(1)} |`));
  }
  const storms = fanout.filter((g) => g.some((x) => x.storm));
  if (storms.length) {
    lines.push('', '## Reconnect storm: the replica is killed, every agent reconnects to a second one at once', '',
      '| N | connections | runs | second replica ready s | all in sync s | per agent p50 / p99 / max s | synced by digest / snapshot / resume | agents that needed more than one connect | listen-queue overflows | second replica CPU s | etcd CPU s | generator CPU s | second replica peak RSS MiB |',
      `|${'---|'.repeat(13)}`);
    for (const g0 of storms) {
      const g = g0.filter((x) => x.storm);
      const st = (f: (s: NonNullable<ClusterResult['storm']>) => number) => (x: ClusterResult) => f(x.storm!);
      lines.push(`| ${g[0]!.nodes} | ${g[0]!.connections} | ${g.length} | ${med(g, st((s) => s.replicaReadyS))} | ${med(g, st((s) => s.allInSyncS))} | ${m(g, st((s) => s.agentS.p50)).toFixed(2)} / ${m(g, st((s) => s.agentS.p99)).toFixed(2)} / ${m(g, st((s) => s.agentS.max)).toFixed(2)} | ${(['digest', 'snapshot', 'resume'] as const).map((f) => m(g, st((s) => s.synced[f]))).join(' / ')} | ${orDash(m(g, st((s) => s.retried ?? NaN)))} | ${orDash(m(g, st((s) => s.listenOverflows ?? NaN)))} | ${med(g, st((s) => s.cpuS['calico-fanout']!))} | ${med(g, st((s) => s.cpuS.etcd!))} | ${med(g, st((s) => s.generatorCpuS))} | ${m(g, st((s) => s.peakRssMiB)).toFixed(0)} |`);
    }
    lines.push('', 'A second replica starts on its own port (the agents have had its URL second in their list all along) and lists the',
      'cluster from etcd; then the first is killed (SIGKILL: a lost node, a crashed pod) and every agent reconnects to the',
      'second at once, after its first backoff (200 ms, jittered). Times from the kill; per agent, from losing the first',
      'replica to in sync on the second. The writer is paused. A lean reader has no cache: it presents the digest of its',
      'process\'s probe of its view (the same content for felix and bgp; for the node-scoped views it differs in the node\'s',
      'own keys), so the second replica does the digest resync a real agent asks of it. Listen-queue overflows: connection',
      'attempts the kernel dropped because the replica\'s accept queue was full (machine-wide TcpExtListenOverflows over the',
      'storm); each costs its agent a SYN retransmission, after 1 s and then doubling, which is what the slowest agents wait for.');
  }
  const tiers = gs.filter((g) => g[0]!.system === 'fanout-tier2');
  if (tiers.length) lines.push('', ...tiersSection(tiers, fanout, storms.length > 0));
  return lines.join('\n') + '\n';
}

/** Two tiers against one at the same N: the probes' latency, the root's connections, etcd's watches, every process. */
function tiersSection(tiers: ClusterResult[][], fanout: ClusterResult[][], stormed: boolean): string[] {
  const one = (n: number) => fanout.find((g) => g[0]!.nodes === n);
  const probes = (q: 'p50' | 'p99') => (g: ClusterResult[]) => m(g, (x) => x.latencyMs.probes[q]);
  const signed = (v: number) => `${v >= 0 ? '+' : ''}${v.toFixed(1)} ms`;
  const lines = [
    '## Tiers (issue 18): the agents on two tier-2 servers below a root, against one tier', '',
    '| N | runs (one tier / two) | probes p50 / p99 ms, one tier | probes p50 / p99 ms, two tiers | the tier adds to the probes\' p99 (target ≤ 10 ms) | … to their p50 | lean readers\' p50 / p99 ms, one tier / two | root\'s connections (target 2) | etcd watches (target 1) | probes = datastore, two tiers |',
    `|${'---|'.repeat(10)}`,
  ];
  for (const g of tiers) {
    const n = g[0]!.nodes;
    const base = one(n);
    const lat = (x: ClusterResult[] | undefined, f: (r: ClusterResult) => number) => (x ? med(x, f, fmtMs) : '—');
    const added = (q: 'p50' | 'p99') => (base ? probes(q)(g) - probes(q)(base) : NaN);
    lines.push(`| ${n} | ${base?.length ?? 0} / ${g.length} | ${lat(base, (x) => x.latencyMs.probes.p50)} / ${lat(base, (x) => x.latencyMs.probes.p99)} | ${lat(g, (x) => x.latencyMs.probes.p50)} / ${lat(g, (x) => x.latencyMs.probes.p99)} | ${base ? `${signed(added('p99'))}: ${met(added('p99') <= 10)}` : 'no one-tier run'} | ${base ? signed(added('p50')) : '—'} | ${base ? `${fmtMs(m(base, (x) => x.latencyMs.lean.p50))} / ${fmtMs(m(base, (x) => x.latencyMs.lean.p99))}` : '—'}; ${fmtMs(m(g, (x) => x.latencyMs.lean.p50))} / ${fmtMs(m(g, (x) => x.latencyMs.lean.p99))} | ${g.map((x) => x.rootConnections).join(', ')} | ${g.map((x) => x.upstreamWatches ?? '—').join(', ')} | ${g.every((x) => x.probesMatch) ? 'yes' : '**no**'} |`);
  }
  lines.push('', '| N | system | process | CPU s over the pass (cores) | RSS MiB in the pass, median (max) |', '|---|---|---|---|---|');
  for (const g of tiers) {
    for (const x of [one(g[0]!.nodes), g]) {
      if (!x) continue;
      for (const name of Object.keys(x[0]!.processes)) {
        const p = (f: (q: ClusterResult['processes'][string]) => number) => m(x, (r) => (r.processes[name] ? f(r.processes[name]!) : NaN));
        lines.push(`| ${x[0]!.nodes} | ${x[0]!.system} | ${name} | ${p((q) => q.cpuS).toFixed(2)} (${p((q) => q.cores).toFixed(2)}) | ${p((q) => q.rssMedianMiB).toFixed(0)} (${p((q) => q.rssMaxMiB).toFixed(0)}) |`);
      }
    }
  }
  lines.push('',
    'fanout-tier2: a root calico-fanout serves etcd and, to the tier below, its mirror view (every view\'s kinds for',
    'every node); two calico-fanout servers read it (`--datastore upstream`) and serve the agents, each agent process\'s',
    'agents on one of them (half the nodes each). Same cluster, writer and agents as fanout, whose run in the same command',
    'is the one-tier figure: the tier adds the difference of the probes\' p99 (or p50; medians over runs, ranges in brackets). The root\'s connections:',
    'typha_connections_active on its /metrics after the drain; etcd watches: etcd\'s own count. The probes\' caches on the',
    `tier-2 servers are compared with etcd's content as in fanout. Per-N table above: "server" is the two tier-2 servers together.${stormed ? ' The reconnect storm is fanout\'s only.' : ''}`);
  return lines;
}

/** Server and generator CPU (cores over the measured pass) against N, one line per system and process. */
export function cpuSvg(runs: ClusterResult[]): string {
  const series = new Map<string, { n: number; v: number }[]>();
  for (const g of groups(runs)) {
    const r = g[0]!;
    const add = (name: string, v: number) => series.set(name, [...(series.get(name) ?? []), { n: r.nodes, v }]);
    const server = r.system === 'fanout' ? 'calico-fanout' : r.system === 'fanout-tier2' ? 'calico-fanout tier-2 servers' : 'raw server';
    add(server, m(g, (x) => x.serverCores));
    if (r.system !== 'raw-batch') add(`${r.system === 'fanout' ? 'calico-fanout' : 'every calico-fanout'} + etcd`, m(g, (x) => x.servingCores));
    add(`generator (${r.system})`, m(g, (x) => x.generatorCores));
  }
  for (const pts of series.values()) pts.sort((a, b) => a.n - b.n);
  const W = 720, H = 400, L = 60, B = 40, T = 20, R = 200;
  const all = [...series.values()].flat();
  const nMax = Math.max(1, ...all.map((p) => p.n)) * 1.05;
  const yMax = Math.max(0.1, ...all.map((p) => p.v)) * 1.1;
  const x = (n: number) => L + (n / nMax) * (W - L - R);
  const y = (v: number) => T + (1 - v / yMax) * (H - T - B);
  const step = [0.05, 0.1, 0.2, 0.25, 0.5, 1].find((s) => yMax / s <= 8) ?? 1;
  const grid: string[] = [];
  for (let v = 0; v <= yMax; v += step) grid.push(`<line x1="${L}" x2="${W - R}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#eee"/><text x="${L - 6}" y="${(y(v) + 4).toFixed(1)}" font-size="11" text-anchor="end">${Math.round(v * 100) / 100}</text>`);
  for (const n of [...new Set(all.map((p) => p.n))]) grid.push(`<line x1="${x(n).toFixed(1)}" x2="${x(n).toFixed(1)}" y1="${T}" y2="${H - B}" stroke="#ddd"/><text x="${x(n).toFixed(1)}" y="${H - B + 16}" font-size="11" text-anchor="middle">${n}</text>`);
  const paths = [...series].map(([name, pts], i) => {
    const c = COLORS[i % COLORS.length];
    const dash = name.startsWith('generator') ? ' stroke-dasharray="5 4"' : '';
    return `<path fill="none" stroke="${c}" stroke-width="2"${dash} d="${pts.map((p, j) => `${j ? 'L' : 'M'}${x(p.n).toFixed(1)},${y(p.v).toFixed(1)}`).join('')}"/>` +
      pts.map((p) => `<circle cx="${x(p.n).toFixed(1)}" cy="${y(p.v).toFixed(1)}" r="3" fill="${c}"/>`).join('') +
      `<text x="${W - R + 10}" y="${T + 16 + i * 18}" font-size="12" fill="${c}">${name}</text>`;
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>${grid.join('')}
<line x1="${L}" x2="${W - R}" y1="${H - B}" y2="${H - B}" stroke="black"/><line x1="${L}" x2="${L}" y1="${T}" y2="${H - B}" stroke="black"/>
<text x="${(L + W - R) / 2}" y="${H - 6}" font-size="12" text-anchor="middle">nodes (N), 4 agents each; CPU in cores over the measured pass</text>
${paths.join('\n')}
</svg>
`;
}

export function writeClusterResults(dir: string, name: string, command: string, runs: ClusterResult[], machine: string): string {
  const curves = groups(runs).map((g) => ({ name: `${g[0]!.system} N=${g[0]!.nodes} probes`, histogram: g[0]!.probeHistogram }))
    .filter((c) => hdr.decodeFromCompressedBase64(c.histogram).totalCount > 0);
  return writeReportFiles(dir, { scenario: name, command, machine, runs }, {
    'report.md': clusterMarkdown(name, command, runs, machine),
    'latency.svg': curves.length ? cdfSvg(curves) : undefined,
    'cpu.svg': cpuSvg(runs),
  });
}
