// Child process of a fuzz regression (test/fuzz-regressions.test.ts): a hostile server sends a
// SyncClient one `compressed` frame of a few KiB that inflates to just under the client's 256 MiB
// cap: a delta of tiny deletion items ([“”, nil, “”], 4 bytes each), tens of millions of them.
// Prints "survived <protocolErrors>" and exits 0 if the client refuses it and lives on.
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { constants, createBrotliCompress } from 'node:zlib';
import { WebSocketServer } from 'ws';
import { SyncClient } from '../../../client/index.js';
import { encode, packr } from '../../../src/protocol/codec.js';

const MIB = Number(process.env.BOMB_MIB ?? 255);
const kind = process.env.BOMB_KIND ?? 'items';

async function compressedBomb(): Promise<Buffer> {
  const z = createBrotliCompress({ params: { [constants.BROTLI_PARAM_QUALITY]: 5 } });
  const out: Buffer[] = [];
  z.on('data', (b: Buffer) => out.push(b));
  // items: {t: 'delta', from, to, u: [ ["", nil, ""] × count ]}
  // fields: {t: 'delta', u: [], u: [], … × count} (a map may repeat a key)
  const unit = kind === 'items' ? Buffer.from([0x93, 0xa0, 0xc0, 0xa0]) : Buffer.from([0xa1, 0x75, 0x90]);
  const count = Math.floor(((MIB << 20) - 64) / unit.length);
  const head = kind === 'items'
    ? Buffer.concat([packr.pack({ t: 'delta', from: 1, to: 2, u: [] }).subarray(0, -1), Buffer.from([0xdd]), u32(count)])
    : Buffer.concat([Buffer.from([0xdf]), u32(count + 1), packr.pack('t'), packr.pack('delta')]);
  z.write(head);
  const block = Buffer.concat(Array.from({ length: 1 << 16 }, () => unit));
  for (let left = count; left > 0;) {
    const n = Math.min(left, 1 << 16);
    if (!z.write(block.subarray(0, n * unit.length))) await once(z, 'drain');
    left -= n;
  }
  z.end();
  await once(z, 'end');
  const data = Buffer.concat(out);
  return Buffer.concat([packr.pack({ t: 'compressed', data: null }).subarray(0, -1), Buffer.from([0xc6]), u32(data.length), data]);
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

const frame = await compressedBomb();
const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
await once(wss, 'listening');
wss.on('connection', (ws) => {
  ws.once('message', () => {
    ws.send(encode({ t: 'welcome', v: 1, serverId: 'bomb', serverVersion: '0', epoch: 'e', syncer: 'felix', node: '', mode: 'snapshot', compression: 'brotli' }));
    ws.send(frame);
  });
});
const client = new SyncClient({ url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`, syncerType: 'felix', initialBackoffMs: 60_000 });
process.stdout.write(`bomb frame ${frame.length} B, inflating to ${MIB} MiB of ${kind}\n`);
const started = Date.now();
client.start();
const timer = setInterval(() => {
  if (client.stats.protocolErrors > 0) {
    process.stdout.write(`survived ${client.stats.protocolErrors} after ${Date.now() - started} ms\n`);
    process.exit(0);
  }
}, 20);
setTimeout(() => { clearInterval(timer); process.stdout.write(`no verdict after ${Date.now() - started} ms\n`); process.exit(2); }, Number(process.env.BOMB_WAIT_MS ?? 60_000)).unref();
