// Self time by function in a `node --cpu-prof` profile, counting only samples taken while a
// function of the given name was on the stack (e.g. onFrame: the client library's frame handler,
// leaving out setup), as a Markdown table.
//   node --import tsx bench/tools/cpuprofile-top.ts <file.cpuprofile> [function=onFrame] [rows=15]
import { frameName, readProfile } from '../lib/cpuprofile.js';

const [file, root = 'onFrame', rows = '15'] = process.argv.slice(2);
if (!file) throw new Error('usage: cpuprofile-top.ts <file.cpuprofile> [function] [rows]');
const p = readProfile(file);
const under = new Map<number, boolean>();
function isUnder(id: number): boolean {
  let r = under.get(id);
  if (r === undefined) {
    const up = p.parent(id);
    r = p.frame(id).functionName === root || (up !== undefined && isUnder(up));
    under.set(id, r);
  }
  return r;
}
const self = new Map<string, number>();
let total = 0;
for (const s of p.samples) {
  if (!isUnder(s)) continue;
  total++;
  const name = frameName(p.frame(s));
  self.set(name, (self.get(name) ?? 0) + 1);
}
process.stdout.write(`${total} samples under ${root}\n\n| self | function |\n|---|---|\n`);
for (const [name, n] of [...self].sort((a, b) => b[1] - a[1]).slice(0, Number(rows))) {
  process.stdout.write(`| ${((100 * n) / total).toFixed(1)}% | \`${name}\` |\n`);
}
