// What one idle connection costs the JS heap, by where: a server in this process (memory
// datastore, or a bare ws server), N clients saying hello from a child process.
//   keeps      heap snapshots before and after, by constructor: what a connection holds on to
//   allocates  the sampling heap profiler over the connecting burst, collected objects included,
//              by allocating function: what a handshake allocates (young-generation pressure)
//   node --import tsx bench/tools/connection-heap.ts keeps|allocates [N=1000] [fanout|raw]
import { fork } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { fileURLToPath } from 'node:url';
import { writeHeapSnapshot } from 'node:v8';
import { WebSocketServer } from 'ws';
import { startTestServer, wep } from '../../test/support/harness.js';

const mode = process.argv[2] ?? 'allocates';
const n = Number(process.argv[3] ?? 1000);
const system = process.argv[4] ?? 'fanout';
type Tally = Map<string, number>;

/** Self sizes of a heap snapshot's nodes, by constructor (objects, closures) or node type. */
function byConstructor(): Tally {
  const file = writeHeapSnapshot();
  const snap = JSON.parse(readFileSync(file, 'utf8'));
  rmSync(file);
  const fields: string[] = snap.snapshot.meta.node_fields;
  const types: string[] = snap.snapshot.meta.node_types[0];
  const [ti, ni, si] = ['type', 'name', 'self_size'].map((f) => fields.indexOf(f)) as [number, number, number];
  const out: Tally = new Map();
  for (let i = 0; i < snap.nodes.length; i += fields.length) {
    const type = types[snap.nodes[i + ti]]!;
    const name = type === 'object' || type === 'closure' ? `${type} ${snap.strings[snap.nodes[i + ni]]}` : type;
    out.set(name, (out.get(name) ?? 0) + snap.nodes[i + si]);
  }
  return out;
}

interface ProfileNode { callFrame: { functionName: string; url: string; lineNumber: number }; selfSize: number; children: ProfileNode[] }
const frameName = (f: ProfileNode['callFrame']) => `${f.functionName || '(anonymous)'} ${f.url.replace(/.*node_modules\//, '').replace(/^file:\/\/.*?\/(server|snapshot|src|client)\//, '$1/')}:${f.lineNumber + 1}`;

let url: string;
let close: () => Promise<void>;
if (system === 'fanout') {
  const ts = await startTestServer({}, Array.from({ length: 100 }, (_, i) => wep(`node-${i % 4}`, `pod-${i}`)));
  ({ url, close } = ts);
} else {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
  await new Promise((r) => wss.once('listening', r));
  wss.on('connection', (ws) => ws.on('message', () => {}));
  url = `ws://127.0.0.1:${(wss.address() as { port: number }).port}`;
  close = async () => { wss.close(); };
}
const child = fork(fileURLToPath(new URL('./idle-heap-clients.ts', import.meta.url)), [url, String(n)], { execArgv: ['--import', 'tsx'] });
await new Promise((r) => child.once('message', r)); // loaded
const connect = async () => {
  child.send('connect');
  await new Promise((r) => child.once('message', r)); // all connected and said hello
  await new Promise((r) => setTimeout(r, 1500)); // their syncs written
};

let rows: [string, number][];
if (mode === 'keeps') {
  const before = byConstructor();
  await connect();
  const after = byConstructor();
  rows = [...after].map(([k, v]) => [k, v - (before.get(k) ?? 0)]);
} else {
  const session = new Session();
  session.connect();
  await session.post('HeapProfiler.startSampling', { samplingInterval: 512, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
  await connect();
  const { profile } = await session.post('HeapProfiler.stopSampling') as unknown as { profile: { head: ProfileNode } };
  const sites: Tally = new Map();
  const walk = (node: ProfileNode) => {
    if (node.selfSize) sites.set(frameName(node.callFrame), (sites.get(frameName(node.callFrame)) ?? 0) + node.selfSize);
    node.children.forEach(walk);
  };
  walk(profile.head);
  rows = [...sites];
}
const total = rows.reduce((s, [, v]) => s + v, 0);
process.stdout.write(`${system}, ${n} clients: ${mode} ${(total / n / 1024).toFixed(1)} KiB per connection\n`);
for (const [k, v] of rows.filter(([, v]) => v > 0).sort((a, b) => b[1] - a[1]).slice(0, Number(process.env.TOP ?? 25))) process.stdout.write(`${(v / n).toFixed(0).padStart(7)} B  ${k}\n`);
child.kill();
await close();
process.exit(0);
