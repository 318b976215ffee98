// idle: what an idle connected agent costs the serving process in memory. N agents connect
// and stay idle (nothing is written beyond a small preload); the serving process's RSS before
// they connect and once they are all in sync and have settled, divided by N. RSS cannot be read
// after a GC of another process, so each figure is the median of samples over a pause.
// The clients connect one worker's share at a time with a sample in between, so that the
// marginal cost (the last share's growth per client) can be told from one-time growth at the
// first connections (V8's young generation grows under a burst of handshakes, once).
//
//   fanout   calico-fanout serving etcd (the process measured: calico-fanout); SyncClients, light
//   raw      the raw WebSocket server (bench/systems/raw-server.ts); bare WebSocket clients
import { median } from '../lib/report.js';
import { sampleRss } from '../lib/rss.js';
import { pin, serve, startWorkers, stopWorkers } from './steady.js';
import { serveOptions, within } from './storm.js';

export const IDLE_SYSTEMS = ['fanout', 'raw'] as const;
export type IdleSystem = (typeof IDLE_SYSTEMS)[number];

export interface IdleOptions {
  clients: number;
  /** Keys preloaded into etcd (fanout). */
  keys: number;
  workers: number;
  serverCpus: string;
  clientCpus: string;
  /** Pause after all are in sync, sampled for the "after" figure. */
  settleS: number;
  timeoutS: number;
  progress?: (msg: string) => void;
}

export interface IdleResult {
  system: IdleSystem;
  clients: number;
  keys: number;
  /** The process measured. */
  process: string;
  rssBeforeMiB: number;
  rssAfterMiB: number;
  kibPerClient: number;
  /** Growth per client while the last worker's share connected (the others already were). */
  marginalKibPerClient: number;
  /** First command to the client processes → every agent in sync (raw: every socket open). */
  connectS: number;
  samplesMiB: { before: number[]; after: number[]; beforeLast: number[] };
}

/** RSS samples of one process over `ms`, every 250 ms. */
async function samples(name: string, pid: number, ms: number): Promise<number[]> {
  const s = sampleRss(() => [{ name, pid }]);
  await new Promise((r) => setTimeout(r, ms));
  return s.stop().mib[name] ?? [];
}

export async function runIdle(system: IdleSystem, o: IdleOptions): Promise<IdleResult> {
  const cleanup: (() => Promise<void>)[] = [];
  const say = o.progress ?? (() => {});
  try {
    say(`${system}: starting the serving side`);
    const s = await serve(system === 'raw' ? 'raw-batch' : 'fanout', serveOptions(o.keys, o.serverCpus, o.workers), cleanup);
    const measured = s.procs.find((p) => p.name !== 'etcd')!;
    const pid = measured.pid();
    const workers = startWorkers(serveOptions(o.keys, o.serverCpus, o.workers));
    cleanup.push(() => stopWorkers(workers));
    for (const w of workers) pin(w.child.pid!, o.clientCpus);

    const before = await samples(measured.name, pid, 1000);
    say(`${system}: connecting ${o.clients} idle clients`);
    const per = Math.ceil(o.clients / o.workers);
    const counts = workers.map((_, i) => Math.max(0, Math.min(per, o.clients - i * per)));
    let connectS = 0;
    let beforeLast = before;
    for (const [i, w] of workers.entries()) {
      if (i === workers.length - 1) beforeLast = i === 0 ? before : await samples(measured.name, pid, o.settleS * 1000);
      const t0 = Date.now();
      await within(w.ask({ cmd: 'start', system: s.clientSystem, urls: s.urls, first: i * per, count: counts[i]!, keys: o.keys, mode: 'light' }),
        o.timeoutS * 1000, `${system}: clients in sync`);
      connectS += (Date.now() - t0) / 1000;
    }
    say(`${system}: all in sync after ${connectS} s of connecting; settling ${o.settleS} s`);
    const after = await samples(measured.name, pid, o.settleS * 1000);
    const [b, m, a] = [median(before), median(beforeLast), median(after)];
    const kib = (mib: number, n: number) => Math.round((mib * 1024 / n) * 10) / 10;
    return {
      system, clients: o.clients, keys: system === 'raw' ? 0 : o.keys, process: measured.name,
      rssBeforeMiB: b, rssAfterMiB: a, kibPerClient: kib(a - b, o.clients), marginalKibPerClient: kib(a - m, counts.at(-1)!), connectS,
      samplesMiB: { before, after, beforeLast },
    };
  } finally {
    for (const c of cleanup.reverse()) await c().catch(() => {});
  }
}
