// The client library's cost per update now and at another commit, in the same process and the
// same interleaved passes as `npm run bench -- client` (bench/scenarios/client.ts): the other
// commit's client/ and src/ are extracted under tmp/ and fed frames its own frames.ts builds.
//   node --import tsx bench/tools/client-before-after.ts <commit> [perFrame=10] [repeat=9] [ways]
// `ways` (comma-separated, e.g. beforeLight,fanoutLight) runs only those: for a profile of one.
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { runClientCost, type ClientLibrary, type Way } from '../scenarios/client.js';
import { cpus } from 'node:os';

const [commit, perFrame = '10', repeat = '9', only] = process.argv.slice(2);
if (!commit) throw new Error('usage: client-before-after.ts <commit> [perFrame] [repeat]');
const root = fileURLToPath(new URL('../..', import.meta.url));
const sha = execFileSync('git', ['rev-parse', '--short', commit], { cwd: root, encoding: 'utf8' }).trim();
// Inside the repository, so that the extracted tree resolves the same node_modules.
const dir = `${root}tmp/client-${sha}`;
mkdirSync(dir, { recursive: true });
execFileSync('sh', ['-c', `git archive ${sha} client src | tar -x -C ${dir}`], { cwd: root });
const at = (path: string) => import(pathToFileURL(`${dir}/${path}`).href);
const { SyncClient } = await at('client/index.ts');
const { encodeItem, itemsFrame } = await at('src/protocol/frames.ts');
const before: ClientLibrary = { SyncClient, encodeItem, itemsFrame };

const r = runClientCost({ perFrame: Number(perFrame), frames: 20_000 / Number(perFrame), keys: 1000, repeat: Number(repeat), before, only: only?.split(',') as Way[] | undefined });
const n = r.nsPerUpdate;
const ratio = (a = 0, b = 1) => Math.round((100 * a) / b) / 100;
process.stdout.write(JSON.stringify({
  machine: `${cpus().length} × ${cpus()[0]?.model ?? '?'}, Node ${process.version}`, before: sha, ...r,
  beforeRatio: { full: ratio(n.beforeFull, n.rawFull), light: ratio(n.beforeLight, n.rawLight) },
}, null, 2) + '\n');
