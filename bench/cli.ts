// npm run bench -- <scenario> [options]   (also: calico-fanout bench <scenario>)
import { execFileSync } from 'node:child_process';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { VERSION } from '../src/version.js';
import { runIngest } from './scenarios/ingest.js';
import { runSteady, SYSTEMS, type RunResult, type SystemName } from './scenarios/steady.js';
import { writeResults } from './lib/report.js';

const RESULTS = fileURLToPath(new URL('./results', import.meta.url));

function machine(): string {
  const etcd = (() => { try { return execFileSync('etcd', ['--version']).toString().split('\n')[0]; } catch { return 'etcd not found'; } })();
  return `Machine: ${cpus().length} × ${cpus()[0]?.model ?? '?'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}, ${etcd}, calico-fanout ${VERSION}.`;
}

const int = (v: string) => { const n = Number(v); if (!Number.isFinite(n) || n < 0) throw new Error(`not a number: ${v}`); return n; };
const stamp = () => new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19);

const program = new Command('bench').description('calico-fanout load tests and benchmarks (loopback only, bounded durations)');

program.command('steady')
  .description('N agents, R updates/s for D seconds, on calico-fanout and the baselines, side by side')
  .option('--clients <n>', 'simulated agents', int, 100)
  .option('--rate <r>', 'updates per second', int, 200)
  .option('--duration <s>', 'measured seconds', int, 10)
  .option('--keys <k>', 'distinct keys cycled', int, 1000)
  .option('--systems <list>', `comma-separated, of ${SYSTEMS.join(', ')}`, 'fanout,raw-batch,direct,grpc-proxy')
  .option('--repeat <n>', 'runs per system (report medians)', int, 1)
  .option('--workers <n>', 'client processes', int, 2)
  .option('--client-mode <mode>', 'full (keeps the cache) or light (hashes only)', 'light')
  .option('--server-cpus <list>', 'cores for the serving side (taskset); empty: unpinned', '0')
  .option('--client-cpus <list>', 'cores for the client processes', '1')
  .option('--writer-cpus <list>', 'cores for the writer (this process); default: the serving side\'s')
  .option('--drain-timeout <s>', 'give up waiting for deliveries this long after the last write', int, 30)
  .option('--out <dir>', 'results folder', '')
  .action(async (o) => {
    const systems = String(o.systems).split(',').map((s) => s.trim()) as SystemName[];
    for (const s of systems) if (!SYSTEMS.includes(s)) throw new Error(`unknown system ${s}`);
    const runs: RunResult[] = [];
    for (let rep = 0; rep < o.repeat; rep++) {
      for (const system of systems) {
        const r = await runSteady(system, {
          clients: o.clients, rate: o.rate, durationS: o.duration, keys: o.keys, workers: o.workers, mode: o.clientMode,
          serverCpus: o.serverCpus, clientCpus: o.clientCpus, writerCpus: o.writerCpus, drainTimeoutS: o.drainTimeout,
          progress: (m) => process.stderr.write(`[${rep + 1}/${o.repeat}] ${m}\n`),
        });
        process.stderr.write(`  → ${system}: ${r.deliveredPerSec}/s delivered, p99 ${r.latencyMs.p99} ms, complete ${r.completeClients}/${r.clients}, serving CPU ${r.servingCpuUsPerDelivered} µs/delivery\n`);
        runs.push(r);
      }
    }
    const dir = o.out || join(RESULTS, `${stamp()}-steady-N${o.clients}-R${o.rate}`);
    writeResults(dir, `steady N=${o.clients} R=${o.rate} D=${o.duration}s`, `npm run bench -- ${process.argv.slice(2).join(' ')}`, runs, machine());
    process.stdout.write(`results in ${dir}\n`);
    process.exit(0);
  });

program.command('ingest')
  .description('the pipeline in process, without sockets: updates/s through dedupe + store + encode')
  .option('--updates <n>', 'updates', int, 200_000)
  .option('--keys <k>', 'distinct keys', int, 10_000)
  .option('--batch <b>', 'events per datastore response', int, 100)
  .option('--repeat <n>', 'runs (report the median)', int, 3)
  .action((o) => {
    const results = Array.from({ length: o.repeat }, () => runIngest(o));
    const rates = results.map((r) => r.updatesPerSec).sort((a, b) => a - b);
    process.stdout.write(JSON.stringify({ machine: machine(), median: rates[Math.floor((rates.length - 1) / 2)], runs: results }, null, 2) + '\n');
  });

await program.parseAsync(process.argv);
