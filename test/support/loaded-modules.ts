// Which modules a fresh Node process loads: for checking that a command or an import pulls in no
// more than it needs (a datastore client, the server).
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const HOOKS = fileURLToPath(new URL('./load-hooks/register.mjs', import.meta.url));

export interface Loaded {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Resolved module URLs, in the order first resolved. */
  urls: string[];
}

/** Runs `node --import <hooks> ...args` in the repository and lists the modules it resolved. */
export async function loadedModules(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Loaded> {
  const dir = mkdtempSync(join(tmpdir(), 'calico-fanout-loaded-'));
  const file = join(dir, 'modules.txt');
  try {
    const child = spawn(process.execPath, ['--import', HOOKS, ...args], {
      cwd: ROOT, env: { ...process.env, ...env, LOADED_MODULES_FILE: file }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const code = await new Promise<number | null>((r) => child.on('close', r));
    let text = '';
    try { text = readFileSync(file, 'utf8'); } catch { /* nothing resolved */ }
    return { code, stdout, stderr, urls: [...new Set(text.split('\n').filter(Boolean))] };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Whether any of `urls` is the package `name` (under node_modules). */
export function loadsPackage(urls: readonly string[], name: string): boolean {
  return urls.some((u) => u.includes(`/node_modules/${name}/`));
}
