// Self time by function in a `node --cpu-prof` profile, counting only samples taken while a
// function of the given name was on the stack (e.g. onFrame: the client library's frame handler,
// leaving out setup), as a Markdown table.
//   node --import tsx bench/tools/cpuprofile-top.ts <file.cpuprofile> [function=onFrame] [rows=15]
import { readFileSync } from 'node:fs';

interface Node { id: number; callFrame: { functionName: string; url: string }; children?: number[] }
const [file, root = 'onFrame', rows = '15'] = process.argv.slice(2);
if (!file) throw new Error('usage: cpuprofile-top.ts <file.cpuprofile> [function] [rows]');
const p = JSON.parse(readFileSync(file, 'utf8')) as { nodes: Node[]; samples: number[] };
const byId = new Map(p.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const under = new Map<number, boolean>();
function isUnder(id: number): boolean {
  let r = under.get(id);
  if (r === undefined) {
    const up = parent.get(id);
    r = byId.get(id)!.callFrame.functionName === root || (up !== undefined && isUnder(up));
    under.set(id, r);
  }
  return r;
}
const self = new Map<string, number>();
let total = 0;
for (const s of p.samples) {
  if (!isUnder(s)) continue;
  total++;
  const f = byId.get(s)!.callFrame;
  const name = `${f.functionName || '(anonymous)'} ${f.url.split('/').slice(-2).join('/')}`.trim();
  self.set(name, (self.get(name) ?? 0) + 1);
}
process.stdout.write(`${total} samples under ${root}\n\n| self | function |\n|---|---|\n`);
for (const [name, n] of [...self].sort((a, b) => b[1] - a[1]).slice(0, Number(rows))) {
  process.stdout.write(`| ${((100 * n) / total).toFixed(1)}% | \`${name}\` |\n`);
}
