// The clients of idle-heap.ts: N WebSockets that connect and say hello, then stay idle.
import WebSocket from 'ws';
import { encode } from '../../src/protocol/codec.js';

const [url, n] = [process.argv[2]!, Number(process.argv[3])];
const sockets: WebSocket[] = [];
process.send!('ready');
process.once('message', async () => {
  await Promise.all(Array.from({ length: n }, () => new Promise<void>((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    sockets.push(ws);
    ws.once('open', () => {
      ws.send(encode({ t: 'hello', v: 1, syncer: 'felix', node: '', clientName: 'idle', clientVersion: '0' }));
      resolve();
    });
    ws.on('message', () => {});
    ws.once('error', reject);
  })));
  process.send!('connected');
});
