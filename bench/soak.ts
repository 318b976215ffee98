// The soak: a long, bounded run of a rolling deployment against 200 clients, on loopback, that
// fails on what only time shows: leaks and drift.
//
//   node --import tsx bench/soak.ts [--minutes 10] [--clients 200] [--json out.json] [...]
//   node --import tsx bench/soak.ts --help
//
// The server runs in this process, with the clients (bench/soak/run.ts says why): a memory
// datastore seeded with the demo cluster plus --pods WorkloadEndpoints; waves of --wave-size pods
// deleted and recreated under new names at --rate operations/s with --pause seconds between
// waves; every --restart-every seconds one client restarted (alternately resumed, or replaced by
// a fresh one that takes a snapshot). Sampled every --sample-ms: RSS and heap, open fds, active
// handles and timers (process.getActiveResourcesInfo), connections; event-loop lag from
// perf_hooks.monitorEventLoopDelay; delivery latency (creation → each client's onUpdates).
//
// Output: a few summary lines, then the full result as one line of JSON (the last line of
// stdout; `--json <file>` writes it to a file too). Progress, once a minute, goes to stderr.
// Exit 0 when it passed; 1 when any failure condition held:
//   - a MaxListenersExceededWarning (process 'warning');
//   - active handles or open fds growing faster than --max-handle-slope / --max-fd-slope per
//     minute (least-squares slope over the samples after the warm-up);
//   - RSS growing faster than --max-rss-slope MiB/min (off unless given);
//   - at the end, once the churn stops: any client not in sync, or whose view checksum differs
//     from the server's, or (the --full-clients that keep values) whose cache differs from the
//     datastore's content; any checksum mismatch or unplanned reconnect during the run;
//   - listeners on the process or the server's objects grown; fds or handles not released at shutdown.
// Exit 2 on bad options.
import { writeFileSync } from 'node:fs';
import { Command, InvalidArgumentError } from 'commander';
import { DEFAULT_SOAK, runSoak, summary } from './soak/run.js';

const num = (v: string) => { const n = Number(v); if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError('not a non-negative number.'); return n; };

const program = new Command('soak')
  .description('bounded soak: rolling deployment + client restarts against many clients, in one process on loopback; exit 1 on leaks or drift')
  .option('--minutes <m>', 'measured duration', num, DEFAULT_SOAK.minutes)
  .option('--clients <n>', 'SyncClients (3/4 felix, 1/4 bgp)', num, DEFAULT_SOAK.clients)
  .option('--full-clients <n>', 'clients that keep values and are compared key by key with the datastore', num, DEFAULT_SOAK.fullClients)
  .option('--pods <n>', 'pods alive at any time', num, DEFAULT_SOAK.pods)
  .option('--wave-size <n>', 'pods replaced per wave', num, DEFAULT_SOAK.waveSize)
  .option('--rate <r>', 'deletions and creations per second during a wave', num, DEFAULT_SOAK.rate)
  .option('--pause <s>', 'seconds between waves', num, DEFAULT_SOAK.pauseS)
  .option('--restart-every <s>', 'restart one client this often (0: never)', num, DEFAULT_SOAK.restartEveryS)
  .option('--sample-ms <ms>', 'sampling interval', num, DEFAULT_SOAK.sampleMs)
  .option('--warmup <s>', 'seconds left out of the slopes (default: 20% of the run, within 10-60 s)', num)
  .option('--max-handle-slope <n>', 'fail above this many active handles more per minute', num, DEFAULT_SOAK.maxHandleSlope)
  .option('--max-fd-slope <n>', 'fail above this many open fds more per minute', num, DEFAULT_SOAK.maxFdSlope)
  .option('--max-rss-slope <mib>', 'fail above this RSS growth in MiB/min (default: report only)', num)
  .option('--json <file>', 'also write the result (JSON) to this file')
  .exitOverride();

try {
  program.parse();
} catch (err) {
  const code = (err as { exitCode?: number }).exitCode;
  process.exit(code === 0 ? 0 : 2);
}
const o = program.opts();
const result = await runSoak({
  minutes: o.minutes, clients: o.clients, fullClients: o.fullClients, pods: o.pods, waveSize: o.waveSize, rate: o.rate, pauseS: o.pause,
  restartEveryS: o.restartEvery, sampleMs: o.sampleMs, warmupS: o.warmup, maxHandleSlope: o.maxHandleSlope, maxFdSlope: o.maxFdSlope,
  maxRssSlope: o.maxRssSlope ?? Infinity, progress: (line) => process.stderr.write(`${line}\n`),
});
const json = JSON.stringify(result);
if (o.json) writeFileSync(o.json, `${JSON.stringify(result, null, 2)}\n`);
process.stdout.write(`${summary(result)}\n${json}\n`);
process.exit(result.ok ? 0 : 1);
