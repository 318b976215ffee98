// The canonical encoder alone: ns of CPU per value for WorkloadEndpoint-shaped values (as JSON.parse
// gives them) and the demo cluster's resources, this checkout's encoder and another's, alternately.
//   node --import tsx bench/tools/canonical-encode.ts <other checkout> [rounds=15]
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { loadResources } from '../../src/datastore/seed.js';
import { encodeValue } from '../../src/protocol/canonical.js';
import { valueOf } from '../lib/payload.js';

const [other, rounds = '15'] = process.argv.slice(2);
if (!other) throw new Error('usage: canonical-encode.ts <other checkout> [rounds]');
const theirs = (await import(pathToFileURL(join(other, 'src/protocol/canonical.ts')).href)).encodeValue as typeof encodeValue;
const weps = Array.from({ length: 2000 }, (_, i) => JSON.parse(JSON.stringify(valueOf(i, i + 1, 1e9 + i))) as unknown);
const demo = loadResources([new URL('../../examples/demo-cluster', import.meta.url).pathname]).map((d) => JSON.parse(JSON.stringify(d.value)) as unknown);
for (const v of [...weps, ...demo]) if (!encodeValue(v).equals(theirs(v))) throw new Error('the two encoders disagree');

const nsPerValue = (f: typeof encodeValue, set: unknown[], reps: number) => {
  const t = process.cpuUsage();
  for (let r = 0; r < reps; r++) for (const v of set) f(v);
  const d = process.cpuUsage(t);
  return ((d.user + d.system) * 1000) / (reps * set.length);
};
const runs = { this: { weps: [] as number[], demo: [] as number[] }, other: { weps: [] as number[], demo: [] as number[] } };
for (let i = 0; i < Number(rounds); i++) {
  for (const [name, f] of [['this', encodeValue], ['other', theirs]] as const) {
    runs[name].weps.push(nsPerValue(f, weps, 10));
    runs[name].demo.push(nsPerValue(f, demo, 100));
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
const row = (name: 'this' | 'other') => ({ wepNs: Math.round(median(runs[name].weps)), demoNs: Math.round(median(runs[name].demo)) });
process.stdout.write(JSON.stringify({ other, rounds: Number(rounds), this: row('this'), [other]: row('other') }, null, 2) + '\n');
