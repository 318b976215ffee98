// Test support for the load-test harness: finding processes it started that outlived their run,
// whether still children of the test process or orphaned in a detached CLI's session.
import { execFileSync, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** Processes the harness starts, recognised by their command line. */
export const HARNESS = /\betcd\b|raw-server|agent-worker|storm-worker|cluster-worker|calico-fanout/;

/** Every live descendant of `root` whose command line is one of the harness's processes. */
export function harnessDescendants(root = process.pid): { pid: number; args: string }[] {
  const out = execFileSync('ps', ['-e', '-o', 'pid=,ppid=,args=']).toString();
  const rows = out.split('\n').map((l) => /^\s*(\d+)\s+(\d+)\s+(.*)$/.exec(l)).filter((m): m is RegExpExecArray => !!m)
    .map((m) => ({ pid: Number(m[1]), ppid: Number(m[2]), args: m[3]! }));
  const found: { pid: number; args: string }[] = [];
  const walk = (pid: number) => {
    for (const r of rows.filter((x) => x.ppid === pid)) {
      if (HARNESS.test(r.args)) found.push({ pid: r.pid, args: r.args });
      walk(r.pid);
    }
  };
  walk(root);
  return found;
}

/** Processes of one session (a detached child and everything it started, even if orphaned). */
export function sessionProcesses(sid: number): { pid: number; args: string }[] {
  let out = '';
  try { out = execFileSync('ps', ['-o', 'pid=,args=', '--sid', String(sid)]).toString(); } catch { return []; } // exit 1: none
  return out.split('\n').map((l) => /^\s*(\d+)\s+(.*)$/.exec(l)).filter((m): m is RegExpExecArray => !!m)
    .map((m) => ({ pid: Number(m[1]), args: m[2]! }));
}

/** What `look` still finds after up to `ms` of waiting for it to go away. */
export async function settle<T>(look: () => T[], ms = 5000): Promise<T[]> {
  const end = Date.now() + ms;
  let left = look();
  while (left.length && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 100));
    left = look();
  }
  return left;
}

export const kill = (pid: number) => { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } };

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface CliRun { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; left: { pid: number; args: string }[] }

/**
 * Runs the bench CLI (`bench/cli.ts <args>`) in its own session, so that anything it leaves
 * behind can be found even once orphaned; returns its exit, output and those leftovers (killed).
 */
export async function runBenchCli(args: string[], timeoutMs = 100_000, interrupt?: { when: RegExp; signal: NodeJS.Signals }): Promise<CliRun> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/cli.ts', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let stdout = '';
  let stderr = '';
  let sent = false;
  // An operator's Ctrl-C or kill mid-run: the signal once the output shows the run has reached `when`.
  const watch = () => { if (interrupt && !sent && interrupt.when.test(stdout + stderr)) { sent = true; child.kill(interrupt.signal); } };
  child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; watch(); });
  child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; watch(); });
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.once('close', (c, sig) => resolve([c, sig])));
  clearTimeout(timer);
  const left = await settle(() => sessionProcesses(child.pid!));
  for (const p of left) kill(p.pid);
  return { code, signal, stdout, stderr, left };
}
