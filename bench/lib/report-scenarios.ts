// Results of the storm and idle scenarios: results.json and a Markdown report with one row per
// system (medians over repeated runs, the range in brackets), written to a results folder.
import type { IdleResult } from '../scenarios/idle.js';
import type { StormPhase, StormResult } from '../scenarios/storm.js';
import { median, writeReportFiles } from './report.js';

/** Bytes in the unit that keeps a resync of a few hundred bytes from showing as 0.0 MiB. */
const size = (b: number) => (b >= 2 ** 20 ? `${(b / 2 ** 20).toFixed(1)} MiB` : b >= 1024 ? `${(b / 1024).toFixed(1)} KiB` : `${Math.round(b)} B`);

/** Runs grouped by `key`, in first-seen order. */
function groups<T>(runs: T[], key: (r: T) => string): T[][] {
  const m = new Map<string, T[]>();
  for (const r of runs) m.set(key(r), [...(m.get(key(r)) ?? []), r]);
  return [...m.values()];
}

/** The median of a figure over runs, with its range when there are several. */
function med<T>(runs: T[], f: (r: T) => number, fmt: (n: number) => string = (n) => n.toFixed(2)): string {
  const xs = runs.map(f);
  return xs.length > 1 ? `${fmt(median(xs))} (${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))})` : fmt(xs[0]!);
}

const perProcess = <T>(runs: T[], f: (r: T) => Record<string, number>, fmt: (n: number) => string) =>
  Object.keys(f(runs[0]!)).map((n) => `${n} ${fmt(median(runs.map((r) => f(r)[n] ?? NaN)))}`).join(' + ');

function phaseCells(runs: StormResult[], p: (r: StormResult) => StormPhase): string[] {
  const r = runs[0]!;
  return [
    runs.every((x) => p(x).completeClients === x.clients) ? 'yes' : `no (${runs.map((x) => p(x).completeClients).join(', ')} of ${r.clients})`,
    med(runs, (x) => p(x).timeS), med(runs, (x) => p(x).clientS.p50),
    med(runs, (x) => p(x).bytesPerClient.median, size),
    perProcess(runs, (x) => p(x).cpuS, (n) => n.toFixed(2)), med(runs, (x) => p(x).clientCpuS),
    perProcess(runs, (x) => p(x).peakRssMiB, (n) => n.toFixed(0)),
    p(r).snapshotsGenerated === null ? '—' : runs.map((x) => p(x).snapshotsGenerated).join(', '),
  ];
}

export function stormMarkdown(title: string, command: string, runs: StormResult[], machine: string): string {
  const rows = groups(runs, (r) => `${r.system} ${r.keys} ${r.clients} ${r.mode} ${r.compression}`);
  const head = (extra: string[]) => [
    `| system | K | N | client mode | runs | every client got all K? | all in sync s | per client p50 s | received per client | serving CPU s | client CPU s | peak RSS MiB (serving) | snapshots built |${extra.map((e) => ` ${e} |`).join('')}`,
    `|${'---|'.repeat(13 + extra.length)}`,
  ];
  const lead = (g: StormResult[]) => `| ${g[0]!.system} | ${g[0]!.keys} | ${g[0]!.clients} | ${[g[0]!.mode, g[0]!.compression].filter(Boolean).join(', ') || '—'} | ${g.length} |`;
  const reconnecting = rows.filter((g) => g[0]!.reconnect);
  const lines = [
    `# ${title}`, '', `Command: \`${command}\``, '', machine, '',
    '## Storm: N clients connect at once', '',
    ...head([]),
    ...rows.map((g) => `${lead(g)} ${phaseCells(g, (x) => x.sync).join(' | ')} |`),
    '',
    'Time from the first connect to the last client in sync (calico-fanout: `SyncClient.inSync()`; etcd: the last page of the',
    'last reader), on the shared monotonic clock. Bytes: frames received (calico-fanout) or keys + values listed (etcd).',
    'Serving CPU over the phase; peak RSS is VmHWM (etcd\'s includes the preload). Snapshots built: calico-fanout\'s',
    '`typha_snapshots_generated`, all views, one figure per run.',
  ];
  if (reconnecting.length) {
    lines.push('', '## Restart: a rolling update (a new replica, then SIGTERM to the old one, which drains and exits)', '',
      ...head(['per client: left old → in sync on new, p50 / max s', 'old replica exited s', 'shutdown timeout s', 'new replica ready s', 'synced by snapshot / resume / digest', 'streaming on the new replica']),
      ...reconnecting.map((g) => {
        const rc = (x: StormResult) => x.reconnect!;
        return `${lead(g)} ${phaseCells(g, rc).join(' | ')} | ${med(g, (x) => rc(x).resyncS.p50)} / ${med(g, (x) => rc(x).resyncS.max)} | ${med(g, (x) => rc(x).oldExitS)} | ${rc(g[0]!).shutdownTimeoutS ?? 'default (300)'} | ${med(g, (x) => rc(x).serverReadyS)} | ${(['snapshotSyncs', 'resumeSyncs', 'digestSyncs'] as const).map((f) => median(g.map((x) => rc(x)[f] ?? 0))).join(' / ')} | ${median(g.map((x) => rc(x).streamingOnNewServer))} |`;
      }),
      '',
      'The new replica starts on its own port and is ready before the old one gets SIGTERM (its start → ready is',
      '"new replica ready"). "All in sync" and the per-client columns of the storm table count from the SIGTERM: the old',
      'replica sends its clients away one by one (at most one a second, spread over its shutdown timeout), so that figure',
      'is mostly the drain\'s pacing; each client\'s own resync (leaving the old replica → in sync on the new one) is the',
      'server\'s part. Serving CPU over the phase: etcd, the new replica, and the old one until it exited. A new replica',
      'has a new epoch: the clients cannot resume, and resync by digest (only the buckets that differ from their caches).',
      'An etcd reader that reconnects lists everything again (the storm phase).');
  }
  return lines.join('\n') + '\n';
}

export function idleMarkdown(title: string, command: string, runs: IdleResult[], machine: string): string {
  const rows = groups(runs, (r) => `${r.system} ${r.clients}`);
  return [
    `# ${title}`, '', `Command: \`${command}\``, '', machine, '',
    '| system | process | N | preloaded keys | runs | RSS before MiB | RSS after MiB | KiB per idle client | marginal KiB per client | connect s |',
    '|---|---|---|---|---|---|---|---|---|---|',
    ...rows.map((g) => {
      const r = g[0]!;
      return `| ${r.system} | ${r.process} | ${r.clients} | ${r.keys} | ${g.length} | ${med(g, (x) => x.rssBeforeMiB, (n) => n.toFixed(1))} | ${med(g, (x) => x.rssAfterMiB, (n) => n.toFixed(1))} | ${med(g, (x) => x.kibPerClient, (n) => n.toFixed(1))} | ${med(g, (x) => x.marginalKibPerClient, (n) => n.toFixed(1))} | ${med(g, (x) => x.connectS)} |`;
    }),
    '',
    'RSS is VmRSS of the serving process, the median of samples every 250 ms: over 1 s before any client connects, and',
    'over the settle pause after all are in sync. KiB per idle client = (after − before) / N. Target (issue): ≤ 16 KiB for calico-fanout.',
    'Clients connect one worker\'s share at a time; marginal = growth while the last share connected, per client of it: what one more',
    'client costs once the one-time growth under the first burst of handshakes (V8\'s young generation) is behind.',
  ].join('\n') + '\n';
}

export const writeStormResults = (dir: string, name: string, command: string, runs: StormResult[], machine: string) =>
  writeReportFiles(dir, { scenario: name, command, machine, runs }, { 'report.md': stormMarkdown(name, command, runs, machine) });

export const writeIdleResults = (dir: string, name: string, command: string, runs: IdleResult[], machine: string) =>
  writeReportFiles(dir, { scenario: name, command, machine, runs }, { 'report.md': idleMarkdown(name, command, runs, machine) });
