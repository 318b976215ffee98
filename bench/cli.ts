// npm run bench -- <scenario> [options]   (also: calico-fanout bench <scenario>)
import { execFileSync } from 'node:child_process';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { COMPRESSIONS } from '../src/protocol/compression.js';
import { VERSION } from '../src/version.js';
import { runClientCost } from './scenarios/client.js';
import { loadPipeline, runIngest, type IngestResult } from './scenarios/ingest.js';
import { runBurst, type BurstResult } from './scenarios/burst.js';
import { runColdStart } from './scenarios/coldstart.js';
import { writeBurstResults } from './lib/report-burst.js';
import { writeColdStartResults } from './lib/report-coldstart.js';
import { checkout, THIS_CHECKOUT } from './lib/serve-checkout.js';
import { runSteady, SYSTEMS, type RunResult, type SystemName } from './scenarios/steady.js';
import { writeResults } from './lib/report.js';
import { runStorm, STORM_SYSTEMS, type StormResult, type StormSystem } from './scenarios/storm.js';
import { runIdle, IDLE_SYSTEMS, type IdleResult, type IdleSystem } from './scenarios/idle.js';
import { writeIdleResults, writeStormResults } from './lib/report-scenarios.js';
import { runSlow, SLOW_SYSTEMS, type SlowResult, type SlowSystem } from './scenarios/slow.js';
import { runChurn, CHURN_SYSTEMS, type ChurnResult, type ChurnSystem } from './scenarios/churn.js';
import { writeSlowResults } from './lib/report-slow.js';
import { writeChurnResults } from './lib/report-churn.js';
import { Progress } from './lib/progress.js';
import { writeScaling } from './lib/report-scaling.js';
import { runCluster, CLUSTER_SYSTEMS, type ClusterResult, type ClusterSystem } from './scenarios/cluster.js';
import { writeClusterResults } from './lib/report-cluster.js';

const RESULTS = fileURLToPath(new URL('./results', import.meta.url));

function machine(): string {
  const etcd = (() => { try { return execFileSync('etcd', ['--version']).toString().split('\n')[0]; } catch { return 'etcd not found'; } })();
  return `Machine: ${cpus().length} × ${cpus()[0]?.model ?? '?'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}, ${etcd}, calico-fanout ${VERSION}.`;
}

const int = (v: string) => { const n = Number(v); if (!Number.isFinite(n) || n < 0) throw new Error(`not a number: ${v}`); return n; };
const stamp = () => new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19);

const program = new Command('bench').description('calico-fanout load tests and benchmarks (loopback only, bounded durations)');

/** The command as typed, empty and spaced arguments quoted, so that it can be pasted back. */
const commandLine = () => `npm run bench -- ${process.argv.slice(2).map((a) => (a === '' || /\s/.test(a) ? `'${a}'` : a)).join(' ')}`;

/** A comma-separated list of systems (or other choices), each checked against `known`. */
const systemsOf = <T extends string>(list: string, known: readonly T[], what = 'system'): T[] => {
  const out = list.split(',').map((s) => s.trim()) as T[];
  for (const s of out) if (!known.includes(s)) throw new Error(`unknown ${what} ${s}`);
  return out;
};

/** Options of the scenarios that run steady's load on steady's process layout (steady, slow, churn). */
const withLoad = (c: Command, clients: number) => c
  .option('--clients <n>', 'simulated agents', int, clients)
  .option('--keys <k>', 'distinct keys', int, 1000)
  .option('--workers <n>', 'client processes', int, 2)
  .option('--client-mode <mode>', 'full: agents decode every value (fanout: and keep a cache); light: stamps read from the value bytes (fanout: hashes kept, checksums verified); lean (steady, fanout and raw-batch): lean protocol readers and --probes full client libraries', 'light')
  .option('--server-cpus <list>', 'cores for the serving side (taskset); empty: unpinned', '0')
  .option('--client-cpus <list>', 'cores for the client processes', '1')
  .option('--writer-cpus <list>', 'cores for the writer (this process); default: the serving side\'s')
  .option('--drain-timeout <s>', 'give up waiting for deliveries this long after the last write', int, 30)
  .option('--out <dir>', 'results folder', '');

withLoad(program.command('steady'), 100)
  .description('N agents, R updates/s for D seconds, on calico-fanout and the baselines, side by side')
  .option('--rate <r>', 'updates per second', int, 200)
  .option('--duration <s>', 'measured seconds', int, 10)
  .option('--systems <list>', `comma-separated, of ${SYSTEMS.join(', ')}`, 'fanout,raw-batch,direct,grpc-proxy')
  .option('--repeat <n>', 'runs per system (report medians)', int, 1)
  .option('--probes <n>', 'client mode lean: clients that are full client libraries (their latency reported apart)', int, 20)
  .action(async (o) => {
    const systems = systemsOf<SystemName>(o.systems, SYSTEMS);
    systemsOf(o.clientMode, ['light', 'full', 'lean'], 'client mode');
    const runs: RunResult[] = [];
    const bar = new Progress();
    for (let rep = 0; rep < o.repeat; rep++) {
      for (const system of systems) {
        const r = await runSteady(system, {
          clients: o.clients, rate: o.rate, durationS: o.duration, keys: o.keys, workers: o.workers, mode: o.clientMode, probes: o.probes,
          serverCpus: o.serverCpus, clientCpus: o.clientCpus, writerCpus: o.writerCpus, drainTimeoutS: o.drainTimeout,
          progress: (m) => bar.say(`[${rep + 1}/${o.repeat}] ${m}`), meter: bar,
        });
        bar.say(`  → ${system}: ${r.deliveredPerSec}/s delivered, p99 ${r.latencyMs.p99} ms${r.probeLatencyMs ? ` (probes ${r.probeLatencyMs.p99} ms)` : ''}, complete ${r.completeClients}/${r.clients}, serving CPU ${r.servingCpuUsPerDelivered} µs/delivery`);
        runs.push(r);
      }
    }
    bar.done();
    const dir = o.out || join(RESULTS, `${stamp()}-steady-N${o.clients}-R${o.rate}${o.clientMode === 'lean' ? '-lean' : ''}`);
    writeResults(dir, `steady N=${o.clients} R=${o.rate} D=${o.duration}s`, commandLine(), runs, machine());
    process.stdout.write(`results in ${dir}\n`);
    process.exit(0);
  });

program.command('scaling')
  .description('chart of delivered/s against N from steady results folders at one rate (SVG)')
  .argument('<dirs...>', 'steady results folders')
  .requiredOption('--rate <r>', 'the rate the runs share', int)
  .requiredOption('--out <file>', 'SVG file to write')
  .action((dirs: string[], o) => { writeScaling(o.out, dirs, o.rate); process.stdout.write(`chart in ${o.out}\n`); });

program.command('client')
  .description('the client library\'s cost per update, in process without sockets, against decoding the raw baseline\'s frames')
  .option('--per-frame <n>', 'updates per delta frame (R/100 at a 10 ms batching window)', int, 10)
  .option('--frames <n>', 'frames per pass', int, 2000)
  .option('--keys <k>', 'distinct keys', int, 1000)
  .option('--repeat <n>', 'timed passes (report the median)', int, 10)
  .action((o) => {
    const r = runClientCost({ perFrame: o.perFrame, frames: o.frames, keys: o.keys, repeat: o.repeat });
    process.stdout.write(JSON.stringify({ machine: machine(), ...r }, null, 2) + '\n');
  });

program.command('ingest')
  .description('the pipeline in process, without sockets: updates/s through dedupe + store + encode')
  .option('--updates <n>', 'updates', int, 200_000)
  .option('--keys <k>', 'distinct keys', int, 10_000)
  .option('--batch <b>', 'events per datastore response', int, 100)
  .option('--repeat <n>', 'runs (report the median)', int, 3)
  .option('--against <dir>', 'also run the pipeline of another checkout (its TypeScript sources), alternating with this one\'s')
  .action(async (o) => {
    const pipelines = [undefined, ...(o.against ? [await loadPipeline(o.against)] : [])];
    const runs: IngestResult[] = [];
    for (let i = 0; i < o.repeat; i++) for (const p of pipelines) runs.push(runIngest(o, p));
    const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
    const of = (c: string) => runs.filter((r) => r.checkout === c);
    const summary = Object.fromEntries([...new Set(runs.map((r) => r.checkout))].map((c) => [c, { median: med(of(c).map((r) => r.updatesPerSec)), medianPerCpuSecond: med(of(c).map((r) => r.updatesPerCpuSec)) }]));
    const ratio = o.against ? { thisOverAgainst: Math.round(summary.this!.median / summary[o.against]!.median * 100) / 100, perCpuSecond: Math.round(summary.this!.medianPerCpuSecond / summary[o.against]!.medianPerCpuSecond * 100) / 100 } : undefined;
    process.stdout.write(JSON.stringify({ machine: machine(), median: summary.this!.median, ...(ratio ? { summary, ratio } : {}), runs }, null, 2) + '\n');
  });

program.command('burst')
  .description('a burst of single-key etcd transactions to N agents: batches published, calico-fanout CPU, latency; this checkout and another (--against) in one run')
  .option('--txns <n>', 'single-key transactions', int, 2000)
  .option('--in-flight <n>', 'transactions in flight at once', int, 32)
  .option('--keys <k>', 'distinct keys (preloaded)', int, 1000)
  .option('--clients <n>', 'agents (light, felix view)', int, 100)
  .option('--workers <n>', 'client processes', int, 2)
  .option('--against <dir>', 'another checkout (built: npm run build) to run the same burst on')
  .option('--repeat <n>', 'runs per checkout (report medians)', int, 3)
  .option('--server-cpus <list>', 'cores for etcd, calico-fanout and the writer (taskset); empty: unpinned', '0')
  .option('--client-cpus <list>', 'cores for the client processes', '1')
  .option('--drain-timeout <s>', 'give up waiting for deliveries this long after the last write', int, 60)
  .option('--out <dir>', 'results folder', '')
  .action(async (o) => {
    if (o.inFlight >= o.keys) throw new Error('--in-flight must be below --keys (a key is never written twice at once)');
    const roots = [THIS_CHECKOUT, ...(o.against ? [checkout(o.against)] : [])];
    const runs: BurstResult[] = [];
    for (let rep = 0; rep < o.repeat; rep++) {
      for (const root of roots) {
        const r = await runBurst(root, {
          txns: o.txns, inFlight: o.inFlight, keys: o.keys, clients: o.clients, workers: o.workers, serverCpus: o.serverCpus, clientCpus: o.clientCpus,
          drainTimeoutS: o.drainTimeout, progress: (m) => process.stderr.write(`[${rep + 1}/${o.repeat}] ${m}\n`),
        });
        process.stderr.write(`  → ${r.checkout}: ${r.batches} batches, calico-fanout ${r.cpuS['calico-fanout'].toFixed(2)} CPU-s, p50 ${r.latencyMs.p50} ms, p99 ${r.latencyMs.p99} ms, complete ${r.complete}/${r.clients}\n`);
        runs.push(r);
      }
    }
    const dir = o.out || join(RESULTS, `${stamp()}-burst-T${o.txns}-N${o.clients}`);
    writeBurstResults(dir, `burst T=${o.txns} N=${o.clients}`, commandLine(), runs, machine());
    process.stdout.write(`results in ${dir}\n`);
    process.exit(0);
  });

program.command('coldstart')
  .description('K keys in etcd: serve start → ready, against one plain range read of the prefix in the same run; this checkout and another (--against)')
  .option('--keys <k>', 'keys in etcd', int, 100_000)
  .option('--repeat <n>', 'runs (report medians)', int, 3)
  .option('--against <dir>', 'another checkout (built: npm run build) to time too')
  .option('--server-cpus <list>', 'cores for calico-fanout and the range reader (taskset); empty: unpinned', '0')
  .option('--etcd-cpus <list>', 'cores for etcd; default: the server cores', '')
  .option('--timeout <s>', 'bound on each start', int, 300)
  .option('--out <dir>', 'results folder', '')
  .action(async (o) => {
    const roots = [THIS_CHECKOUT, ...(o.against ? [checkout(o.against)] : [])];
    const r = await runColdStart({ keys: o.keys, repeat: o.repeat, roots, serverCpus: o.serverCpus, etcdCpus: o.etcdCpus, timeoutS: o.timeout, progress: (m) => process.stderr.write(`${m}\n`) });
    const dir = o.out || join(RESULTS, `${stamp()}-coldstart-K${o.keys}`);
    writeColdStartResults(dir, `coldstart K=${o.keys}`, commandLine(), r, machine());
    process.stdout.write(`results in ${dir}\n`);
    process.exit(0);
  });

program.command('storm')
  .description('K keys, N clients connect at once: time and bytes until all are in sync; then calico-fanout restarts and they resync')
  .option('--keys <k>', 'keys in etcd', int, 100_000)
  .option('--clients <n>', 'clients connecting at once', int, 50)
  .option('--systems <list>', `comma-separated, of ${STORM_SYSTEMS.join(', ')}`, STORM_SYSTEMS.join(','))
  .option('--client-mode <mode>', 'fanout clients: full (keeps the cache) or light (hashes only)', 'light')
  .option('--compression <list>', `fanout clients: comma-separated runs, each with ${COMPRESSIONS.join(', ')} or none offered for snapshot chunks`, COMPRESSIONS[0])
  .option('--workers <n>', 'client processes', int, 2)
  .option('--repeat <n>', 'runs per system (report medians)', int, 1)
  .option('--server-cpus <list>', 'cores for the serving side (taskset); empty: unpinned', '0')
  .option('--client-cpus <list>', 'cores for the client processes', '1')
  .option('--timeout <s>', 'bound on each phase', int, 300)
  .option('--shutdown-timeout <s>', 'calico-fanout\'s TYPHA_SHUTDOWNTIMEOUTSECS for the restart: the old replica spreads its goaways over this long (at most one a second); default: its own (300)', int)
  .option('--out <dir>', 'results folder', '')
  .action(async (o) => {
    const runs: StormResult[] = [];
    const compressions = systemsOf<string>(o.compression, [...COMPRESSIONS, 'none'], 'compression');
    for (let rep = 0; rep < o.repeat; rep++) {
      for (const system of systemsOf<StormSystem>(o.systems, STORM_SYSTEMS)) {
        // Compression variants are calico-fanout's; etcd readers run once.
        for (const compression of system === 'fanout' ? compressions : ['none']) {
          runs.push(await runStorm(system, {
            keys: o.keys, clients: o.clients, workers: o.workers, mode: o.clientMode, compression, serverCpus: o.serverCpus, clientCpus: o.clientCpus,
            timeoutS: o.timeout, shutdownTimeoutS: o.shutdownTimeout, progress: (m) => process.stderr.write(`[${rep + 1}/${o.repeat}] ${m}\n`),
          }));
        }
      }
    }
    const dir = o.out || join(RESULTS, `${stamp()}-storm-K${o.keys}-N${o.clients}`);
    writeStormResults(dir, `storm K=${o.keys} N=${o.clients}`, commandLine(), runs, machine());
    process.stdout.write(`results in ${dir}\n`);
    process.exit(0);
  });

program.command('idle')
  .description('N idle clients: serving-process RSS per connected client')
  .option('--clients <n>', 'idle clients', int, 1000)
  .option('--keys <k>', 'keys preloaded into etcd (fanout)', int, 100)
  .option('--systems <list>', `comma-separated, of ${IDLE_SYSTEMS.join(', ')}`, IDLE_SYSTEMS.join(','))
  .option('--workers <n>', 'client processes', int, 2)
  .option('--repeat <n>', 'runs per system (report medians)', int, 1)
  .option('--settle <s>', 'pause after all are in sync, sampled for the RSS after', int, 3)
  .option('--server-cpus <list>', 'cores for the serving side (taskset); empty: unpinned', '0')
  .option('--client-cpus <list>', 'cores for the client processes', '1')
  .option('--timeout <s>', 'bound on connecting', int, 120)
  .option('--out <dir>', 'results folder', '')
  .action(async (o) => {
    const runs: IdleResult[] = [];
    for (let rep = 0; rep < o.repeat; rep++) {
      for (const system of systemsOf<IdleSystem>(o.systems, IDLE_SYSTEMS)) {
        const r = await runIdle(system, {
          clients: o.clients, keys: o.keys, workers: o.workers, serverCpus: o.serverCpus, clientCpus: o.clientCpus, settleS: o.settle,
          timeoutS: o.timeout, progress: (m) => process.stderr.write(`[${rep + 1}/${o.repeat}] ${m}\n`),
        });
        process.stderr.write(`  → ${system}: ${r.kibPerClient} KiB per idle client (${r.process} ${r.rssBeforeMiB} → ${r.rssAfterMiB} MiB)\n`);
        runs.push(r);
      }
    }
    const dir = o.out || join(RESULTS, `${stamp()}-idle-N${o.clients}`);
    writeIdleResults(dir, `idle N=${o.clients}`, commandLine(), runs, machine());
    process.stdout.write(`results in ${dir}\n`);
    process.exit(0);
  });

withLoad(program.command('slow'), 500)
  .description('steady\'s load; some clients stop reading mid-run, then read again: baseline and stalled runs per system')
  .option('--rate <r>', 'updates per second', int, 200)
  .option('--duration <s>', 'measured seconds', int, 10)
  .option('--stalled <n>', 'clients that stop reading', int, 1)
  .option('--stall-seconds <s>', 'how long they stop, centred on the measured pass', int, 5)
  .option('--stall-timeout <s>', 'calico-fanout: close a client stalled this long (TYPHA_SERVERWRITETIMEOUTSECS); default: its own', int)
  .option('--high-water-mark <bytes>', 'calico-fanout: per-client buffer bound (TYPHA_SERVERHIGHWATERMARKBYTES); default: its own', int)
  .option('--systems <list>', `comma-separated, of ${SLOW_SYSTEMS.join(', ')}`, 'fanout,raw-batch')
  .action(async (o) => {
    systemsOf(o.clientMode, ['light', 'full'], 'client mode (slow)');
    const bar = new Progress();
    const results: SlowResult[] = [];
    for (const system of systemsOf<SlowSystem>(o.systems, SLOW_SYSTEMS)) {
      const r = await runSlow(system, {
        clients: o.clients, rate: o.rate, durationS: o.duration, keys: o.keys, workers: o.workers, mode: o.clientMode,
        serverCpus: o.serverCpus, clientCpus: o.clientCpus, writerCpus: o.writerCpus, drainTimeoutS: o.drainTimeout,
        stalled: o.stalled, stallS: o.stallSeconds, stallTimeoutS: o.stallTimeout, highWaterMarkBytes: o.highWaterMark,
        progress: (m) => bar.say(m), meter: bar,
      });
      bar.say(`  → ${system}: ${r.servingProcess} peak RSS ${r.peakRssMiB.baseline} → ${r.peakRssMiB.stalled} MiB, others' p99 ${r.othersP99Ms.baseline} → ${r.othersP99Ms.stalled} ms; stalled: ${r.stalledClients.map((c) => c.outcome).join('; ')}`);
      results.push(r);
    }
    bar.done();
    const dir = o.out || join(RESULTS, `${stamp()}-slow-N${o.clients}-R${o.rate}-S${o.stalled}`);
    writeSlowResults(dir, `slow N=${o.clients} R=${o.rate} D=${o.duration}s, ${o.stalled} stalled for ${o.stallSeconds} s`, commandLine(), results, machine());
    process.stdout.write(`results in ${dir}\n`);
    process.exit(0);
  });

withLoad(program.command('churn'), 100)
  .description('rolling deployment on etcd: waves of pod deletions and creations; creation latency and every view against etcd\'s')
  .option('--waves <n>', 'waves', int, 5)
  .option('--wave-size <n>', 'pods deleted and created per wave', int, 200)
  .option('--rate <r>', 'deletions or creations per second within a wave', int, 200)
  .option('--pause <s>', 'seconds between waves', int, 1)
  .option('--systems <list>', `comma-separated, of ${CHURN_SYSTEMS.join(', ')}`, CHURN_SYSTEMS.join(','))
  .action(async (o) => {
    systemsOf(o.clientMode, ['light', 'full'], 'client mode (churn)');
    const bar = new Progress();
    const results: ChurnResult[] = [];
    for (const system of systemsOf<ChurnSystem>(o.systems, CHURN_SYSTEMS)) {
      const r = await runChurn(system, {
        clients: o.clients, rate: o.rate, keys: o.keys, workers: o.workers, mode: o.clientMode, waves: o.waves, waveSize: o.waveSize, pauseS: o.pause,
        serverCpus: o.serverCpus, clientCpus: o.clientCpus, writerCpus: o.writerCpus, drainTimeoutS: o.drainTimeout,
        progress: (m) => bar.say(m), meter: bar,
      });
      bar.say(`  → ${system}: views = etcd's ${r.viewsMatchingEtcd}/${r.clients}, creation p99 ${r.latencyMs.p99} ms, drain ${r.drainS} s`);
      results.push(r);
    }
    bar.done();
    const dir = o.out || join(RESULTS, `${stamp()}-churn-N${o.clients}-W${o.waves}x${o.waveSize}`);
    writeChurnResults(dir, `churn N=${o.clients}, ${o.waves} waves × ${o.waveSize} pods at ${o.rate}/s`, commandLine(), results, machine());
    process.stdout.write(`results in ${dir}\n`);
    process.exit(0);
  });

program.command('cluster')
  .description('N simulated nodes, four agents each (lean protocol readers, and probe nodes running the client library), while a busy cluster is written to etcd; then a reconnect storm; --tiers 2: also on a second tier')
  .option('--nodes <list>', 'comma-separated node counts, each a run (e.g. 1000,2500)', '1000')
  .option('--rate <r>', 'cluster changes per second (datastore writes: pods with their IPAM block and handle, policy and network-set edits, a node joining and leaving), besides every node\'s status each 10 s', int, 200)
  .option('--duration <s>', 'measured seconds', int, 20)
  .option('--warmup <s>', 'seconds of unstamped changes before the measured pass', int, 1)
  .option('--pods-per-node <n>', 'pods per node at the start (the felix view, and each felix agent\'s first sync, grows with it)', int, 10)
  .option('--probe-nodes <n>', 'nodes whose four agents are full client libraries (at least one per worker)', int, 5)
  .option('--workers <n>', 'agent processes', int, 4)
  .option('--wave <n>', 'lean readers each process connects at a time', int, 250)
  .option('--compression <alg>', 'what agents offer for snapshot chunks: brotli or none', 'brotli')
  .option('--systems <list>', `comma-separated, of ${CLUSTER_SYSTEMS.join(', ')}; default fanout,raw-batch (--tiers 2: fanout,fanout-tier2)`)
  .option('--tiers <n>', '2: also fanout-tier2 (a root calico-fanout, two below it reading its mirror view, the agents on those two), beside fanout (one tier) for what the tier adds', int, 1)
  .option('--repeat <n>', 'runs per system and N (report medians)', int, 1)
  .option('--no-storm', 'skip the reconnect storm (calico-fanout)')
  .option('--server-cpus <list>', 'cores for the serving side (taskset); empty: unpinned', '0')
  .option('--client-cpus <list>', 'cores for the agents\' processes', '1')
  .option('--writer-cpus <list>', 'cores for the writer (this process); default: the agents\' (the lean agents leave room; on the serving core the writer took a fifth of it)')
  .option('--timeout <s>', 'bound on connecting, on the drain and on the storm', int, 300)
  .option('--out <dir>', 'results folder', '')
  .action(async (o) => {
    const nodes = String(o.nodes).split(',').map((n) => int(n.trim()));
    if (o.tiers !== 1 && o.tiers !== 2) throw new Error(`--tiers: 1 or 2, not ${o.tiers}`);
    const systems = systemsOf<ClusterSystem>(o.systems ?? (o.tiers === 2 ? 'fanout' : 'fanout,raw-batch'), CLUSTER_SYSTEMS);
    // Two tiers are measured against one in the same command.
    if (o.tiers === 2) for (const sys of ['fanout', 'fanout-tier2'] as const) if (!systems.includes(sys)) systems.push(sys);
    if (o.compression !== 'brotli' && o.compression !== 'none') throw new Error(`--compression: brotli or none, not ${o.compression}`);
    const bar = new Progress();
    const runs: ClusterResult[] = [];
    for (const n of nodes) {
      for (let rep = 0; rep < o.repeat; rep++) {
        for (const system of systems) {
          const r = await runCluster(system, {
            nodes: n, rate: o.rate, durationS: o.duration, warmupS: o.warmup, podsPerNode: o.podsPerNode, probeNodes: o.probeNodes, workers: o.workers, wave: o.wave,
            compression: o.compression, serverCpus: o.serverCpus, clientCpus: o.clientCpus, writerCpus: o.writerCpus, storm: o.storm, timeoutS: o.timeout,
            progress: (msg) => bar.say(`[N=${n} ${rep + 1}/${o.repeat}] ${msg}`), meter: bar,
          });
          bar.say(`  → ${system} N=${n}: ${r.deliveredPerSec}/s delivered, probes p99 ${r.latencyMs.probes.p99} ms, serving CPU ${r.servingCpuUsPerDelivered} µs/delivery, server ${r.serverCores} cores, generator ${r.generatorCores}, RSS ${r.rss.measuredMaxMiB} MiB, probes = datastore: ${r.probesMatch}${r.storm ? `, storm ${r.storm.allInSyncS} s` : ''}${r.rootConnections !== null ? `, root connections ${r.rootConnections}, etcd watches ${r.upstreamWatches}` : ''}`);
          runs.push(r);
        }
      }
    }
    bar.done();
    const tiers = o.tiers === 2 ? '-T2' : '';
    const dir = o.out || join(RESULTS, `${stamp()}-cluster-N${nodes.join('_')}-R${o.rate}${tiers}`);
    writeClusterResults(dir, `cluster N=${nodes.join(',')} R=${o.rate} D=${o.duration}s${o.tiers === 2 ? ', two tiers' : ''}`, commandLine(), runs, machine());
    process.stdout.write(`results in ${dir}\n`);
    // A probe whose cache is not the datastore's view is a failure, not a figure.
    process.exit(runs.every((r) => r.probesMatch) ? 0 : 1);
  });

await program.parseAsync(process.argv);
