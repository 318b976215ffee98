// A client process of the load test: hosts many simulated agents of one system and measures,
// for every update it receives, the time since it was written. Driven by the harness over IPC.
//
//   fanout      SyncClient instances (the real client library), full or light
//   raw         bare WebSocket clients of the raw broadcast server
//   etcd        etcd3 prefix watchers, each on its own connection (direct on etcd or via grpc-proxy)
import * as hdr from 'hdr-histogram-js';
import { unpack } from 'msgpackr';
import WebSocket from 'ws';
import { Etcd3 } from 'etcd3';
import { SyncClient } from '../client/index.js';
import { nowUs, PREFIX, stampOf, stampsIn, type OnStamp } from './lib/payload.js';

export type System = 'fanout' | 'raw' | 'etcd';

export interface WorkerStart {
  cmd: 'start';
  system: System;
  urls: string[];
  /** Index of this worker's first client among all clients. */
  first: number;
  count: number;
  keys: number;
  mode: 'full' | 'light';
}
export type WorkerCommand = WorkerStart | { cmd: 'progress' } | { cmd: 'report'; lastSeq: number[] } | { cmd: 'stop' };

export interface WorkerReport {
  ev: 'report';
  histogram: string;
  received: number[];
  /** Clients whose last seq per key equals the last one written (final state complete). */
  complete: number;
  reconnects: number;
  snapshots: number;
}

const send = (m: object) => process.send!(m);

let keys = 0;
let received: Int32Array;
let last: Int32Array;
const histogram = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 2 });
const closers: (() => Promise<void> | void)[] = [];
let reconnects = 0;
let snapshots = 0;

/** The receipt callback of one client for updates that arrived at `now` (read once per frame). */
function receiptOf(client: number): { at(now: number): OnStamp } {
  let now = 0;
  const on: OnStamp = (key, seq, ts) => {
    if (seq <= 0) return; // preload and warm-up
    histogram.recordValue(Math.max(1, now - ts));
    received[client]!++;
    const slot = client * keys + key;
    if (seq > last[slot]!) last[slot] = seq;
  };
  return { at(t) { now = t; return on; } };
}

async function startFanout(m: WorkerStart): Promise<void> {
  const clients: SyncClient[] = [];
  for (let i = 0; i < m.count; i++) {
    const r = receiptOf(i);
    const c = new SyncClient({
      urls: m.urls, syncerType: 'felix', node: `node-${(m.first + i) % 500}`, clientName: 'bench',
      keepValues: m.mode === 'full', initialBackoffMs: 200, maxBackoffMs: 5000,
      onUpdates: (us) => {
        const on = r.at(nowUs());
        for (const u of us) {
          if (!u.bytes) continue;
          if (m.mode === 'full') stampOf(u.value, on);
          else stampsIn(u.bytes, on);
        }
      },
    });
    clients.push(c);
    c.start();
  }
  closers.push(async () => {
    for (const c of clients) { reconnects += c.stats.connects - 1; snapshots += c.stats.snapshots; }
    await Promise.all(clients.map((c) => c.stop()));
  });
  await Promise.all(clients.map((c) => c.inSync()));
}

async function startRaw(m: WorkerStart): Promise<void> {
  const sockets: WebSocket[] = [];
  let closing = false;
  await Promise.all(Array.from({ length: m.count }, (_, i) => new Promise<void>((resolve, reject) => {
    const ws = new WebSocket(m.urls[0]!, { perMessageDeflate: false });
    sockets.push(ws);
    const r = receiptOf(i);
    ws.on('message', (data: Buffer) => {
      const on = r.at(nowUs());
      if (m.mode === 'light') return stampsIn(data, on);
      const msg = unpack(data) as { v: unknown } | { v: unknown }[];
      if (Array.isArray(msg)) for (const u of msg) stampOf(u.v, on);
      else stampOf(msg.v, on);
    });
    ws.on('error', reject);
    ws.on('close', () => { if (!closing) reconnects++; });
    ws.once('open', () => resolve());
  })));
  closers.push(() => { closing = true; for (const ws of sockets) ws.terminate(); });
}

async function startEtcdWatchers(m: WorkerStart): Promise<void> {
  const clients: Etcd3[] = [];
  await Promise.all(Array.from({ length: m.count }, async (_, i) => {
    const client = new Etcd3({
      hosts: m.urls,
      // Without a local subchannel pool grpc-js shares one connection among all clients here.
      grpcOptions: { 'grpc.use_local_subchannel_pool': 1, 'grpc.max_receive_message_length': 256 << 20 },
    });
    clients.push(client);
    const w = client.watch().prefix(PREFIX).watcher();
    // The revision-resume fix of research/node-libs.md §1 item 5.
    let next = 0;
    const fix = () => { if (next > 0) (w.request as { start_revision?: string }).start_revision = String(next); };
    w.on('connected', fix);
    const rc = receiptOf(i);
    w.on('data', (r) => {
      const on = rc.at(nowUs());
      // Events are read here rather than from 'put': the Watcher emits those before this listener runs.
      for (const ev of r.events) {
        if (ev.type !== 'Put') continue;
        if (m.mode === 'light') stampsIn(ev.kv.value, on);
        else try { stampOf(JSON.parse(ev.kv.value.toString()), on); } catch { /* not ours */ }
      }
      next = r.events.length ? Number(r.events[r.events.length - 1]!.kv.mod_revision) + 1 : Math.max(next, Number(r.header.revision) + 1);
      fix();
    });
    w.on('disconnected', () => { reconnects++; });
    w.on('error', () => { reconnects++; });
    await new Promise<void>((resolve) => w.once('connected', () => resolve()));
  }));
  closers.push(() => { for (const c of clients) c.close(); });
}

process.on('message', async (m: WorkerCommand) => {
  try {
    switch (m.cmd) {
      case 'start':
        keys = m.keys;
        received = new Int32Array(m.count);
        last = new Int32Array(m.count * m.keys);
        await (m.system === 'fanout' ? startFanout(m) : m.system === 'raw' ? startRaw(m) : startEtcdWatchers(m));
        send({ ev: 'ready' });
        return;
      case 'progress':
        send({ ev: 'progress', received: received.reduce((a, b) => a + b, 0), min: received.reduce((a, b) => Math.min(a, b), Infinity) });
        return;
      case 'report': {
        let complete = 0;
        for (let c = 0; c < received.length; c++) {
          let ok = true;
          for (let k = 0; k < keys && ok; k++) ok = m.lastSeq[k]! <= 0 || last[c * keys + k] === m.lastSeq[k];
          if (ok) complete++;
        }
        for (const close of closers.splice(0)) await close();
        const report: WorkerReport = {
          ev: 'report', histogram: hdr.encodeIntoCompressedBase64(histogram), received: [...received], complete, reconnects, snapshots,
        };
        send(report);
        return;
      }
      case 'stop':
        for (const close of closers.splice(0)) await close();
        process.exit(0);
    }
  } catch (err) {
    send({ ev: 'error', message: (err as Error).stack ?? String(err) });
  }
});
process.on('disconnect', () => process.exit(0));
