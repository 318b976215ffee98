// The JS heap an idle connection costs calico-fanout, apart from RSS: a server in this process
// (memory datastore), N clients that say hello from a child process, heap measured after two
// forced GCs before and after they connect. RSS includes what a burst of handshakes leaves behind
// (young-generation growth, allocator retention); this says what a connection keeps.
//   node --expose-gc --import tsx bench/tools/idle-heap.ts [N=1000] [fanout|raw]
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { WebSocketServer } from 'ws';
import { startTestServer, wep } from '../../test/support/harness.js';

const n = Number(process.argv[2] ?? 1000);
const system = process.argv[3] ?? 'fanout';
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc');
const sample = () => { gc(); gc(); const m = process.memoryUsage(); return { heap: m.heapUsed, rss: m.rss }; };

let url: string;
let close: () => Promise<void>;
if (system === 'fanout') {
  const ts = await startTestServer({}, Array.from({ length: 100 }, (_, i) => wep(`node-${i % 4}`, `pod-${i}`)));
  url = ts.url;
  close = ts.close;
} else {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
  await new Promise((r) => wss.once('listening', r));
  url = `ws://127.0.0.1:${(wss.address() as { port: number }).port}`;
  close = async () => { wss.close(); };
}
const child = fork(fileURLToPath(new URL('./idle-heap-clients.ts', import.meta.url)), [url, String(n)], { execArgv: ['--import', 'tsx'] });
await new Promise((r) => child.once('message', r)); // loaded
const before = sample();
child.send('connect');
await new Promise((r) => child.once('message', r)); // all connected and said hello
await new Promise((r) => setTimeout(r, 2000));
const after = sample();
const kib = (b: number) => Math.round((b / n / 1024) * 10) / 10;
process.stdout.write(JSON.stringify({ system, clients: n, heapKiBPerClient: kib(after.heap - before.heap), rssKiBPerClient: kib(after.rss - before.rss) }) + '\n');
child.kill();
await close();
process.exit(0);
