// What a frame costs the load generator's reader against what it costs a server to send it: a
// bare `ws` server broadcasts a frame every 10 ms to N sockets held by a child process reading
// them with ws-lite (the lean readers' WebSocket client) or with `ws`; CPU per frame on each
// side (user + system, from /proc), measured over `seconds`.
//
//   node --import tsx bench/tools/reader-cost.ts [N=1000] [lite|ws] [frame bytes=2000] [seconds=5]
import { fork } from 'node:child_process';
import { WebSocket, WebSocketServer } from 'ws';
import { cpuSeconds } from '../lib/procs.js';
import { WsLite } from '../lib/ws-lite.js';

const [role = 'server'] = process.argv.slice(2);

if (role === 'reader') {
  const [, port, n, kind] = process.argv.slice(2);
  let bytes = 0;
  for (let i = 0; i < Number(n); i++) {
    if (kind === 'lite') new WsLite(`ws://127.0.0.1:${port}`, { onOpen() {}, onMessage(d) { bytes += d.length; }, onClose() {} });
    else new WebSocket(`ws://127.0.0.1:${port}`, { perMessageDeflate: false }).on('message', (d: Buffer) => { bytes += d.length; });
    if (i % 100 === 99) await new Promise((r) => setTimeout(r, 20)); // under the listen backlog
  }
  process.on('disconnect', () => process.exit(0));
} else {
  const [n = '1000', kind = 'lite', size = '2000', seconds = '5'] = process.argv.slice(2);
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
  await new Promise((r) => wss.once('listening', r));
  const sockets: WebSocket[] = [];
  wss.on('connection', (ws) => sockets.push(ws));
  const reader = fork(new URL(import.meta.url).pathname, ['reader', String((wss.address() as { port: number }).port), n, kind], { execArgv: ['--import', 'tsx'] });
  while (sockets.length < Number(n)) await new Promise((r) => setTimeout(r, 50));
  const frame = Buffer.alloc(Number(size), 1);
  const [s0, r0] = [cpuSeconds(process.pid), cpuSeconds(reader.pid!)];
  let frames = 0;
  const end = Date.now() + Number(seconds) * 1000;
  await new Promise<void>((resolve) => {
    const t = setInterval(() => {
      for (const ws of sockets) ws.send(frame);
      frames += sockets.length;
      if (Date.now() > end) { clearInterval(t); resolve(); }
    }, 10);
  });
  await new Promise((r) => setTimeout(r, 500)); // the last frames read
  const us = (cpu: number) => ((cpu * 1e6) / frames).toFixed(2);
  process.stdout.write(`${kind}: ${frames} frames of ${size} B to ${n} sockets; µs of CPU per frame: server ${us(cpuSeconds(process.pid) - s0)}, reader ${us(cpuSeconds(reader.pid!) - r0)}\n`);
  reader.kill();
  process.exit(0);
}
