// The raw baseline: a minimal WebSocket server that makes the same updates itself and broadcasts
// each one pre-encoded, the same Buffer to every client: the ceiling of this machine for this
// transport. Updates are stamped with their scheduled time (steady) or the tick's time (cluster),
// so the server's own lag counts as latency.
//
// Two kinds of clients. Those that send nothing (steady's light and full clients) get steady's
// updates as `{k, v}` maps: `frame` sends one frame per update, `batch` one array frame per 10 ms
// tick. Those that say hello (lean readers, client libraries) are served their view in protocol
// frames (raw-views.ts), from steady's keys or from the cluster model.
import { writeFileSync } from 'node:fs';
import { pack } from 'msgpackr';
import { WebSocketServer, type WebSocket } from 'ws';
import { unpackr } from '../../src/protocol/codec.js';
import { isSyncerType } from '../../src/model/views.js';
import { ClusterModel, type ClusterShape } from '../lib/cluster-model.js';
import { keyOf, nowUs, valueOf } from '../lib/payload.js';
import { RawViews } from './raw-views.js';

const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false, backlog: 65_535 }); // the listen queue calico-fanout asks for
const plain = new Set<WebSocket>();
const views = new RawViews();
wss.on('connection', (ws) => {
  plain.add(ws);
  ws.on('close', () => plain.delete(ws));
  ws.on('error', () => {});
  // The first message is a hello; anything after it (acks, pongs) needs no answer.
  ws.once('message', (data: Buffer) => {
    let hello: { t?: unknown; syncer?: unknown; node?: unknown; compression?: unknown };
    try { hello = unpackr.unpack(data); } catch { ws.close(4001, 'not msgpack'); return; }
    if (hello?.t !== 'hello' || !isSyncerType(hello.syncer)) { ws.close(4005, 'bad hello'); return; }
    plain.delete(ws);
    views.join(ws, {
      syncer: hello.syncer, node: typeof hello.node === 'string' ? hello.node : '',
      compression: Array.isArray(hello.compression) ? hello.compression.filter((c): c is string => typeof c === 'string') : [],
    });
  });
});
wss.on('listening', () => process.send!({ ev: 'listening', port: (wss.address() as { port: number }).port }));

const broadcast = (frame: Buffer) => { for (const ws of plain) ws.send(frame); };

/** steady: `rate` updates/s over `keys` keys for `durationS`. */
interface Run { cmd: 'run'; rate: number; durationS: number; keys: number; mode: 'frame' | 'batch'; firstSeq: number }
/** The content hello-clients see before anything is played: steady's preload, or a cluster. */
type Load = { cmd: 'load'; source: 'steady'; keys: number } | { cmd: 'load'; source: 'cluster'; shape: ClusterShape; rate: number };
/** cluster: `durationS` of the loaded model's changes; `stamped` false for a warm-up. */
interface Play { cmd: 'play'; durationS: number; stamped: boolean }
/** cluster: the model's marker (a write every reader sees); replies with its first seq. */
interface Marker { cmd: 'marker' }
/** Writes what the views serve, as [key, value] JSON, to `path` (what probes must hold). */
interface Dump { cmd: 'dump'; path: string }

let model: ClusterModel | undefined;

process.on('message', (m: Run | Load | Play | Marker | Dump | { cmd: 'stop' }) => {
  switch (m.cmd) {
    case 'stop':
      wss.close();
      process.exit(0);
      break;
    case 'load':
      if (m.source === 'steady') views.publish(Array.from({ length: m.keys }, (_, i) => ({ key: keyOf(i), value: valueOf(i, 0, 0) })));
      else {
        model = new ClusterModel(m.shape, m.rate);
        views.publish(model.initial());
      }
      process.send!({ ev: 'loaded' });
      break;
    case 'run':
      return runSteady(m);
    case 'play':
      return play(m);
    case 'marker': {
      const writes = model!.marker(nowUs());
      views.publish(writes);
      process.send!({ ev: 'marked', firstSeq: model!.lastSeq - writes.length + 1 });
      break;
    }
    case 'dump':
      writeFileSync(m.path, JSON.stringify(views.content()));
      process.send!({ ev: 'dumped' });
      break;
  }
});

function runSteady(m: Run): void {
  const total = Math.round(m.rate * m.durationS);
  const start = nowUs();
  const periodUs = 1e6 / m.rate;
  let i = 0;
  const tickMs = m.mode === 'batch' ? 10 : 1;
  const timer = setInterval(() => {
    const due = Math.min(total, Math.floor((nowUs() - start) / periodUs) + 1);
    const batch: unknown[] = [];
    const writes: { key: string; value: unknown }[] = [];
    for (; i < due; i++) {
      const seq = m.firstSeq > 0 ? m.firstSeq + i : 0;
      const key = i % m.keys;
      const u = { k: keyOf(key), v: valueOf(key, seq, Math.round(start + i * periodUs)) };
      if (m.mode === 'frame') broadcast(pack(u));
      else batch.push(u);
      writes.push({ key: u.k, value: u.v });
    }
    if (batch.length) broadcast(pack(batch));
    // Only when someone follows a view: the plain clients' figures must not pay for it.
    if (views.clients > 0) views.publish(writes);
    if (i >= total) {
      clearInterval(timer);
      process.send!({ ev: 'done', written: total });
    }
  }, tickMs);
}

function play(m: Play): void {
  const start = Date.now();
  const base = model!.clockMs;
  let written = 0;
  const timer = setInterval(() => {
    const elapsed = Math.min(Date.now() - start, m.durationS * 1000);
    const writes = model!.due(base + elapsed, nowUs(), m.stamped);
    written += writes.length;
    views.publish(writes);
    if (elapsed >= m.durationS * 1000) {
      clearInterval(timer);
      process.send!({ ev: 'done', written, lastSeq: model!.lastSeq });
    }
  }, 10);
}

// The harness gone (killed, crashed): nothing is left to serve.
process.on('disconnect', () => process.exit(0));
