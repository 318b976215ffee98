// A delta frame's `h` from the store's entry hashes against hashing each item in the frame: µs of
// CPU per frame of a batch of N WorkloadEndpoint changes (felix's frame: every item), both ways
// alternately in one process. The two frames are checked to be byte for byte the same.
//   node --import tsx bench/tools/delta-frame-hashes.ts [changes=1000] [rounds=15]
import { silentLogger } from '../../src/logging.js';
import { Metrics } from '../../src/metrics.js';
import { ViewFilter } from '../../src/model/view-filter.js';
import { itemsFrame } from '../../src/protocol/frames.js';
import { Ingest } from '../../dedupe/ingest.js';
import { Store, type Batch } from '../../snapshot/store.js';
import { BatchFrames } from '../../server/batch-frames.js';
import { NodeGroups } from '../../snapshot/node-groups.js';
import { keyOf, valueOf } from '../lib/payload.js';

const [changes = '1000', rounds = '15'] = process.argv.slice(2);
const n = Number(changes);
const store = new Store(64 << 20, new Metrics(false));
let batch: Batch | undefined;
store.subscribe({ onBatch: (b) => { batch = b; }, onStatus: () => {} });
const ingest = new Ingest(store, { windowMs: 10, maxBatchBytes: 1 << 30 }, new Metrics(false), silentLogger);
ingest.onUpdates(Array.from({ length: n }, (_, i) => ({ key: keyOf(i), value: valueOf(i, i + 1, i), revision: String(i + 1) })));
ingest.flush();
ingest.stop();
const b = batch!;
const felix = new ViewFilter('felix', '');
// As the server builds it (the store's hashes passed on), and grouped alike but with the frame
// hashing its items (as before the hashes were passed on).
const passed = () => new BatchFrames(b).frameFor(felix)!.payload;
const hashed = () => {
  const { items } = NodeGroups.ofChanges(b.changes, felix.def).itemsFor(felix.node);
  return itemsFrame({ t: 'delta', from: b.from, to: b.to }, items);
};
if (!passed().equals(hashed())) throw new Error('the two frames differ');

const usPerFrame = (f: () => Buffer, reps: number) => {
  const t = process.cpuUsage();
  for (let r = 0; r < reps; r++) f();
  const d = process.cpuUsage(t);
  return (d.user + d.system) / reps;
};
const runs = { passed: [] as number[], hashed: [] as number[] };
const reps = Math.max(10, Math.round(200_000 / n));
for (let i = 0; i < Number(rounds); i++) {
  runs.passed.push(usPerFrame(passed, reps));
  runs.hashed.push(usPerFrame(hashed, reps));
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
const row = (xs: number[]) => ({ usPerFrame: Math.round(median(xs) * 10) / 10, nsPerItem: Math.round((median(xs) * 1000) / n) });
process.stdout.write(JSON.stringify({ changes: n, itemBytes: Math.round(b.changes.reduce((s, c) => s + c.item.length, 0) / n), rounds: Number(rounds), storeHashes: row(runs.passed), hashedInFrame: row(runs.hashed) }, null, 2) + '\n');
