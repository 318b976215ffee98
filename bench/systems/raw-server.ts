// The raw baseline: a minimal WebSocket server that makes the same updates itself and broadcasts
// each one pre-encoded, the same Buffer to every client: the ceiling of this machine for this
// transport. `frame` sends one frame per update; `batch` one array frame per 10 ms tick.
// Updates are stamped with their scheduled time, so the server's own lag counts as latency.
import { pack } from 'msgpackr';
import { WebSocketServer, type WebSocket } from 'ws';
import { keyOf, nowUs, valueOf } from '../lib/payload.js';

const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
const clients = new Set<WebSocket>();
wss.on('connection', (ws) => { clients.add(ws); ws.on('close', () => clients.delete(ws)); ws.on('error', () => {}); });
wss.on('listening', () => process.send!({ ev: 'listening', port: (wss.address() as { port: number }).port }));

const broadcast = (frame: Buffer) => { for (const ws of clients) ws.send(frame); };

interface Run { cmd: 'run'; rate: number; durationS: number; keys: number; mode: 'frame' | 'batch'; firstSeq: number }

process.on('message', (m: Run | { cmd: 'stop' }) => {
  if (m.cmd === 'stop') { wss.close(); process.exit(0); }
  const total = Math.round(m.rate * m.durationS);
  const start = nowUs();
  const periodUs = 1e6 / m.rate;
  let i = 0;
  const tickMs = m.mode === 'batch' ? 10 : 1;
  const timer = setInterval(() => {
    const due = Math.min(total, Math.floor((nowUs() - start) / periodUs) + 1);
    const batch: unknown[] = [];
    for (; i < due; i++) {
      const seq = m.firstSeq > 0 ? m.firstSeq + i : 0;
      const key = i % m.keys;
      const u = { k: keyOf(key), v: valueOf(key, seq, Math.round(start + i * periodUs)) };
      if (m.mode === 'frame') broadcast(pack(u));
      else batch.push(u);
    }
    if (batch.length) broadcast(pack(batch));
    if (i >= total) {
      clearInterval(timer);
      process.send!({ ev: 'done', written: total });
    }
  }, tickMs);
});
// The harness gone (killed, crashed): nothing is left to serve.
process.on('disconnect', () => process.exit(0));
