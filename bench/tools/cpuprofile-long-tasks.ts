// The event loop's long tasks in a `node --cpu-prof` profile: runs of consecutive samples that are
// not idle, longer than a bound, with what they spent their time in (the outermost functions of
// the server's own code on their stacks). What keeps a latency's tail long is a long task, which a
// profile's totals do not show.
//   node --import tsx bench/tools/cpuprofile-long-tasks.ts <file.cpuprofile> [minMs=20] [rows=15]
import { frameName, readProfile } from '../lib/cpuprofile.js';

const [file, minMs = '20', rows = '15'] = process.argv.slice(2);
if (!file) throw new Error('usage: cpuprofile-long-tasks.ts <file.cpuprofile> [minMs] [rows]');
const p = readProfile(file);

const IDLE = new Set(['(idle)', '(program)']);
const isIdle = (id: number) => IDLE.has(p.frame(id).functionName);
/** The outermost frame of the project's own code (not node: or node_modules) on a sample's stack. */
function ownRoot(id: number): string {
  let found = '';
  for (let cur: number | undefined = id; cur !== undefined; cur = p.parent(cur)) {
    const f = p.frame(cur);
    if (f.url && !f.url.startsWith('node:') && !f.url.includes('node_modules')) found = frameName(f);
  }
  return found || p.frame(id).functionName || '(anonymous)';
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
