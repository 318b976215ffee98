// calico-fanout `serve` on etcd from a checkout: this one, or another (an older commit built with
// `npm run build`), so that a scenario can run today's code and a baseline in the same command.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../../test/support/metrics.js';
import { start, type Proc } from './procs.js';
import { serveNodeArgs } from '../scenarios/steady.js';

export const THIS_CHECKOUT = fileURLToPath(new URL('../..', import.meta.url));

/** A checkout to run: its compiled CLI must be there (`npm run build` in it). */
export function checkout(dir: string): string {
  const root = resolve(dir);
  if (!existsSync(join(root, 'dist', 'cmd', 'main.js'))) throw new Error(`${root}: no dist/cmd/main.js (run npm run build there)`);
  return root;
}

/** A short name for a checkout in reports: "this" or the folder's path. */
export const checkoutName = (root: string) => (resolve(root) === resolve(THIS_CHECKOUT) ? 'this' : resolve(root));

export interface Served { proc: Proc; url: string; health: number; startedAt: number }

/** Starts `serve` (not waiting for it to be ready); `startedAt` is Date.now() just before the spawn. */
export async function serveCheckout(root: string, etcdEndpoint: string, cpus: string, env: NodeJS.ProcessEnv = {}): Promise<Served> {
  const [port, health] = [await freePort(), await freePort()];
  const startedAt = Date.now();
  const proc = start('calico-fanout', process.execPath, [
    ...serveNodeArgs(), join(root, 'bin', 'calico-fanout.js'), 'serve', '--datastore', 'etcdv3', '--etcd-endpoints', etcdEndpoint,
    '--server-host', '127.0.0.1', '--server-port', String(port), '--health-port', String(health), '--health-host', '127.0.0.1',
    '--metrics-port', String(health), '--log-level', 'WARNING',
  ], { cpus, cwd: root, env: { ...process.env, ...env } });
  return { proc, url: `ws://127.0.0.1:${port}`, health, startedAt };
}

