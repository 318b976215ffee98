// Processes the harness starts: pinned to a core with taskset where asked, all tracked so that
// every one of them is stopped at the end, on Ctrl-C and on failure. CPU and peak memory are
// read from /proc (utime+stime, VmHWM).
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { readFileSync } from 'node:fs';

const live = new Set<ChildProcess>();
/** Processes started elsewhere (forked workers, the test support's etcd), by their current pid. */
const adopted = new Set<() => number | undefined>();
let hooked = false;

function hookExit(): void {
  if (hooked) return;
  hooked = true;
  const killAll = () => {
    for (const p of live) p.kill('SIGKILL');
    for (const pidOf of adopted) {
      const pid = pidOf();
      if (pid) try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
    }
  };
  process.on('exit', killAll);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => { killAll(); process.exit(130); });
}

/** Also killed on exit, Ctrl-C or SIGTERM: a process this module did not start. Returns: forget it (once stopped). */
export function killOnExit(pid: () => number | undefined): () => void {
  hookExit();
  adopted.add(pid);
  return () => { adopted.delete(pid); };
}

/** V8 flags calico-fanout runs with in production (deploy/base's NODE_OPTIONS, less the heap cap sized to its pod). */
export const PRODUCTION_V8_FLAGS = ['--max-semi-space-size=8'];

const haveTaskset = spawnSync('taskset', ['-V']).status === 0;

export interface Proc {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  stderrTail(): string;
  exited(): Promise<number | null>;
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<void>;
}

/** Starts a process; `cpus` pins it (e.g. "0"), the way calibration separated server and clients. */
export function start(name: string, cmd: string, args: string[], opts: SpawnOptions & { cpus?: string } = {}): Proc {
  hookExit();
  const [file, argv] = opts.cpus && haveTaskset ? ['taskset', ['-c', opts.cpus, cmd, ...args]] : [cmd, args];
  const child = spawn(file, argv, { stdio: ['ignore', 'ignore', 'pipe'], ...opts });
  if (child.pid === undefined) throw new Error(`cannot start ${name}`);
  live.add(child);
  let tail = '';
  child.stderr?.on('data', (d) => { tail = (tail + d).slice(-3000); });
  const done = new Promise<number | null>((resolve) => child.once('exit', (code) => { live.delete(child); resolve(code); }));
  return {
    name, child, pid: child.pid,
    stderrTail: () => tail,
    exited: () => done,
    async stop(signal = 'SIGTERM', graceMs = 5000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await done;
      clearTimeout(t);
    },
  };
}

const TICK = 100; // USER_HZ on Linux

/** CPU seconds (user + system) a process has used so far. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / TICK;
  } catch {
    return NaN;
  }
}

/** Peak resident memory (VmHWM) in MiB. */
export function peakRssMiB(pid: number): number {
  return statusField(pid, 'VmHWM') / 1024;
}

/** Current resident memory in MiB. */
export function rssMiB(pid: number): number {
  return statusField(pid, 'VmRSS') / 1024;
}

function statusField(pid: number, field: string): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

export async function waitUntil(cond: () => boolean | Promise<boolean>, what: string, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
