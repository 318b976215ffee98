// The event loop's long tasks in a `node --cpu-prof` profile: runs of consecutive samples that are
// not idle, longer than a bound, with what they spent their time in (the outermost functions of
// the server's own code on their stacks). What keeps a latency's tail long is a long task, which a
// profile's totals do not show.
//   node --import tsx bench/tools/cpuprofile-long-tasks.ts <file.cpuprofile> [minMs=20] [rows=15]
import { readFileSync } from 'node:fs';

interface Node { id: number; callFrame: { functionName: string; url: string }; children?: number[] }
const [file, minMs = '20', rows = '15'] = process.argv.slice(2);
if (!file) throw new Error('usage: cpuprofile-long-tasks.ts <file.cpuprofile> [minMs] [rows]');
const p = JSON.parse(readFileSync(file, 'utf8')) as { nodes: Node[]; samples: number[]; timeDeltas: number[]; startTime: number };
const byId = new Map(p.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

const IDLE = new Set(['(idle)', '(program)']);
const isIdle = (id: number) => IDLE.has(byId.get(id)!.callFrame.functionName);
/** The outermost frame of the project's own code (not node: or node_modules) on a sample's stack. */
function ownRoot(id: number): string {
  let found = '';
  for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
    const f = byId.get(cur)!.callFrame;
    if (f.url && !f.url.startsWith('node:') && !f.url.includes('node_modules')) found = `${f.functionName || '(anonymous)'} ${f.url.split('/').slice(-2).join('/')}`;
  }
  return found || byId.get(id)!.callFrame.functionName || '(anonymous)';
}

interface Task { startMs: number; ms: number; by: Map<string, number> }
const tasks: Task[] = [];
let t = p.startTime;
let cur: Task | undefined;
for (let i = 0; i < p.samples.length; i++) {
  const dt = p.timeDeltas[i]! / 1000;
  t += p.timeDeltas[i]!;
  const id = p.samples[i]!;
  if (isIdle(id)) { if (cur) tasks.push(cur); cur = undefined; continue; }
  cur ??= { startMs: (t - p.startTime) / 1000, ms: 0, by: new Map() };
  cur.ms += dt;
  const who = ownRoot(id);
  cur.by.set(who, (cur.by.get(who) ?? 0) + dt);
}
if (cur) tasks.push(cur);

const long = tasks.filter((x) => x.ms >= Number(minMs));
const busyMs = tasks.reduce((n, x) => n + x.ms, 0);
process.stdout.write(`${tasks.length} tasks, ${Math.round(busyMs)} ms busy; ${long.length} of ${Number(minMs)} ms or more (${Math.round(long.reduce((n, x) => n + x.ms, 0))} ms)\n\n`);
process.stdout.write('| at s | ms | mostly in |\n|---|---|---|\n');
for (const x of long.sort((a, b) => b.ms - a.ms).slice(0, Number(rows))) {
  const top = [...x.by].sort((a, b) => b[1] - a[1]).slice(0, 3).map(([n, ms]) => `\`${n}\` ${Math.round((100 * ms) / x.ms)}%`).join(', ');
  process.stdout.write(`| ${(x.startMs / 1000).toFixed(1)} | ${Math.round(x.ms)} | ${top} |\n`);
}
