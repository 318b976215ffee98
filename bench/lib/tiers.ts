// The second tier of the cluster scenario's fanout-tier2 system: calico-fanout servers whose
// datastore is the root's mirror view (README "Tiers"), started with the root's own arguments
// (as /proc shows them) on their own ports, so that both tiers run alike but for the datastore.
import { fileURLToPath } from 'node:url';
import { freePort } from '../../test/support/metrics.js';
import { argvOf, isReady, withPorts } from './fanout-process.js';
import { start, waitUntil } from './procs.js';

export interface Downstream { name: string; pid: number; url: string; healthPort: number }

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** The root's arguments with the upstream datastore (the root's client URL) instead of etcd. */
export function downstreamArgv(rootArgv: string[], rootUrl: string, ports: { server: number; health: number }): string[] {
  const out = withPorts(rootArgv, ports);
  const at = (flag: string) => { const i = out.indexOf(flag); if (i < 0) throw new Error(`the root calico-fanout started without ${flag}`); return i; };
  out[at('--datastore') + 1] = 'upstream';
  const e = at('--etcd-endpoints');
  out.splice(e, 2, '--upstream-urls', rootUrl);
  return out;
}

/**
 * Starts one calico-fanout per name below the root and waits until each is ready (in sync with
 * the root: a tier below is ready only while its upstream is). The root must serve the mirror
 * view (TYPHA_ALLOWUNAUTHENTICATEDMIRROR).
 */
export async function startDownstreams(
  root: { pid: number; url: string }, names: string[],
  o: { cpus: string; env: Record<string, string>; timeoutMs: number }, cleanup: (() => Promise<void>)[],
): Promise<Downstream[]> {
  const rootArgv = argvOf(root.pid);
  const started = await Promise.all(names.map(async (name) => {
    const ports = { server: await freePort(), health: await freePort() };
    const argv = downstreamArgv(rootArgv, root.url, ports);
    const p = start(name, argv[0]!, argv.slice(1), { cpus: o.cpus, cwd: ROOT, env: { ...process.env, ...o.env } });
    // SIGINT: closes at once (SIGTERM would drain its agents one a second).
    cleanup.push(() => p.stop('SIGINT'));
    return { p, d: { name, pid: p.pid, url: `ws://127.0.0.1:${ports.server}`, healthPort: ports.health } };
  }));
  await Promise.all(started.map(({ p, d }) => waitUntil(async () => {
    if (p.child.exitCode !== null) throw new Error(`${d.name} exited (${p.child.exitCode}): ${p.stderrTail()}`);
    return isReady(d.healthPort);
  }, `${d.name} (a tier-2 calico-fanout) ready`, o.timeoutMs)));
  return started.map((s) => s.d);
}
