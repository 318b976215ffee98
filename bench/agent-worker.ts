// A client process of the load test: hosts many simulated agents of one system and measures,
// for every update it receives, the time since it was written. Driven by the harness over IPC.
//
//   fanout      SyncClient instances (the real client library), full or light
//   raw         bare WebSocket clients of the raw broadcast server
//   etcd        etcd3 prefix watchers, each on its own connection (direct on etcd or via grpc-proxy)
//
// Mode lean (fanout and raw alike, both speaking the protocol): lean protocol readers
// (bench/lib/lean-reader.ts), and a few probes, SyncClients that decode every value and keep it,
// whose latency is kept apart: the load generator stays cheap, the probes see what an agent sees.
import * as hdr from 'hdr-histogram-js';
import { unpack } from 'msgpackr';
import WebSocket from 'ws';
import { Etcd3 } from 'etcd3';
import { SyncClient } from '../client/index.js';
import { ackEverySecond, LeanReader } from './lib/lean-reader.js';
import { indexOfKey, nowUs, PREFIX, stampOf, stampsIn, stampsInItems, type OnStamp } from './lib/payload.js';

export type System = 'fanout' | 'raw' | 'etcd';

export interface WorkerStart {
  cmd: 'start';
  system: System;
  urls: string[];
  /** Index of this worker's first client among all clients. */
  first: number;
  count: number;
  keys: number;
  mode: 'full' | 'light' | 'lean';
  /** This worker's first `stalled` clients are the ones `stall` pauses (slow scenario). */
  stalled?: number;
  /** Lean mode: this worker's first `probes` clients are SyncClients with a full cache. */
  probes?: number;
}
export type WorkerCommand = WorkerStart | { cmd: 'progress'; lastSeq?: number[] } | { cmd: 'stall'; paused: boolean } | { cmd: 'report'; lastSeq: number[] } | { cmd: 'stop' };

export interface WorkerReport {
  ev: 'report';
  histogram: string;
  received: number[];
  /** Clients whose last seq per key equals the last one written (final state complete). */
  complete: number;
  reconnects: number;
  snapshots: number;
  /** Deletions each client saw (churn). */
  removed: number[];
  /** Latency of the stalled clients, kept apart so they do not hide or inflate everyone else's. */
  stalledHistogram: string;
  stalled: StalledClient[];
  /** Lean mode: the probes' latency (their receipts are in `histogram` too). */
  probeHistogram: string;
}

/** What became of one stalled client. SyncClient counts its initial connect and snapshot too. */
export interface StalledClient {
  received: number;
  complete: boolean;
  connects: number;
  snapshots: number;
  resumes: number;
  /** Its connection was closed and not reopened (raw clients do not reconnect). */
  closed: boolean;
}

/** Reply to `progress`; with lastSeq, also how many clients are complete. */
export interface WorkerProgress { ev: 'progress'; received: number; removed: number; complete: number }

const send = (m: object) => process.send!(m);

let keys = 0;
let received: Int32Array;
let last: Int32Array;
const histogram = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 2 });
const closers: (() => Promise<void> | void)[] = [];
let reconnects = 0;
let snapshots = 0;
let removed: Int32Array;
let stalledCount = 0;
const stalledHistogram = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 2 });
const probeHistogram = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 2 });
let probeCount = 0;
/** Per stalled client: stop or restart reading, and what its connection went through. */
const stallable: { pause(paused: boolean): void; outcome(): Omit<StalledClient, 'received' | 'complete'> }[] = [];

/**
 * The receipt callback of one client for updates that arrived at `now` (read once per frame);
 * `synced` for the items of a snapshot or repair, which bring a key's value but are not deliveries.
 */
function receiptOf(client: number): { at(now: number): OnStamp; synced: OnStamp; gone(key: string): void } {
  let now = 0;
  const h = client < stalledCount ? stalledHistogram : histogram;
  const probe = client < probeCount;
  const on: OnStamp = (key, seq, ts) => {
    if (seq <= 0) return; // preload and warm-up
    const v = Math.max(1, now - ts);
    h.recordValue(v);
    if (probe) probeHistogram.recordValue(v);
    received[client]!++;
    const slot = client * keys + key;
    if (seq > last[slot]!) last[slot] = seq;
  };
  return {
    at(t) { now = t; return on; },
    synced(key, seq) {
      const slot = client * keys + key;
      if (seq > 0 && seq > last[slot]!) last[slot] = seq;
    },
    // A deletion has no stamp: the key names the index, and -1 marks it absent.
    gone(key) {
      const k = indexOfKey(key);
      if (k < 0 || k >= keys) return;
      last[client * keys + k] = -1;
      removed[client]!++;
    },
  };
}

/** The client's last seq per key equals lastSeq's (0: not checked; -1: deleted). */
function isComplete(client: number, lastSeq: number[]): boolean {
  for (let k = 0; k < keys; k++) {
    const want = lastSeq[k] ?? 0;
    if (want !== 0 && last[client * keys + k] !== want) return false;
  }
  return true;
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
          if (!u.bytes) { r.gone(u.key); continue; }
          if (m.mode === 'full') stampOf(u.value, on);
          else stampsIn(u.bytes, on);
        }
      },
    });
    clients.push(c);
    if (i < stalledCount) stallable.push(fanoutStaller(c));
    c.start();
  }
  closers.push(async () => {
    for (const c of clients) { reconnects += c.stats.connects - 1; snapshots += c.stats.snapshots; }
    await Promise.all(clients.map((c) => c.stop()));
  });
  await Promise.all(clients.map((c) => c.inSync()));
}

/**
 * Stops a SyncClient reading. The socket is private; while paused it is re-paused every 20 ms so
 * that a connection the client opens after the server closed the stalled one stays unread too.
 */
function fanoutStaller(c: SyncClient): (typeof stallable)[number] {
  const ws = () => (c as unknown as { ws?: WebSocket }).ws;
  let timer: NodeJS.Timeout | undefined;
  return {
    pause(paused) {
      clearInterval(timer);
      if (paused) { ws()?.pause(); timer = setInterval(() => ws()?.pause(), 20); } else ws()?.resume();
    },
    outcome: () => ({ connects: c.stats.connects, snapshots: c.stats.snapshots, resumes: c.stats.resumes, closed: false }),
  };
}

/** Lean mode: lean protocol readers, the first `probes` clients SyncClients with a full cache. */
async function startLean(m: WorkerStart): Promise<void> {
  const probes: SyncClient[] = [];
  const readers: LeanReader[] = [];
  for (let i = 0; i < m.count; i++) {
    const r = receiptOf(i);
    const node = `node-${(m.first + i) % 500}`;
    if (i < probeCount) {
      const c = new SyncClient({
        urls: m.urls, syncerType: 'felix', node, clientName: 'bench-probe', keepValues: true, initialBackoffMs: 200, maxBackoffMs: 5000,
        onUpdates: (us) => {
          const on = r.at(nowUs());
          for (const u of us) if (u.bytes) stampOf(u.value, on);
        },
      });
      probes.push(c);
      c.start();
      continue;
    }
    // Snapshot chunks are read too (scanSync): after a reconnect they bring keys' latest values.
    readers.push(new LeanReader({
      urls: m.urls, syncer: 'felix', node, compression: 'brotli', scanSync: true, backoffMs: 200,
      onFrame: (frame, items, live, at) => stampsInItems(frame, at, items, live ? r.at(nowUs()) : r.synced),
    }));
  }
  for (const x of readers) x.start();
  const stopAcks = ackEverySecond(() => readers);
  closers.push(async () => {
    stopAcks();
    for (const c of probes) { reconnects += c.stats.connects - 1; snapshots += c.stats.snapshots; }
    for (const x of readers) { reconnects += x.stats.connects - 1; snapshots += x.stats.snapshots + x.stats.digests; x.stop(); }
    await Promise.all(probes.map((c) => c.stop()));
  });
  await Promise.all([...probes.map((c) => c.inSync()), ...readers.map((x) => x.inSync())]);
}

async function startRaw(m: WorkerStart): Promise<void> {
  const sockets: WebSocket[] = [];
  let closing = false;
  await Promise.all(Array.from({ length: m.count }, (_, i) => new Promise<void>((resolve, reject) => {
    const ws = new WebSocket(m.urls[0]!, { perMessageDeflate: false });
    sockets.push(ws);
    const r = receiptOf(i);
    if (i < stalledCount) {
      stallable.push({
        pause: (paused) => (paused ? ws.pause() : ws.resume()),
        outcome: () => ({ connects: 1, snapshots: 0, resumes: 0, closed: ws.readyState !== WebSocket.OPEN }),
      });
    }
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
    // etcd3's watcher resumes from the server's current revision after a reconnect: resume from
    // the one after the last event seen instead, or events are lost.
    let next = 0;
    const fix = () => { if (next > 0) (w.request as { start_revision?: string }).start_revision = String(next); };
    w.on('connected', fix);
    const rc = receiptOf(i);
    w.on('data', (r) => {
      const on = rc.at(nowUs());
      // Events are read here rather than from 'put': the Watcher emits those before this listener runs.
      for (const ev of r.events) {
        if (ev.type === 'Delete') { rc.gone(ev.kv.key.toString()); continue; }
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
        removed = new Int32Array(m.count);
        stalledCount = Math.min(m.stalled ?? 0, m.count);
        probeCount = m.mode === 'lean' ? Math.min(m.probes ?? 0, m.count) : 0;
        last = new Int32Array(m.count * m.keys);
        if (m.mode === 'lean' && m.system === 'etcd') throw new Error('lean mode speaks the calico-fanout protocol: fanout and raw-batch only');
        await (m.mode === 'lean' ? startLean(m) : m.system === 'fanout' ? startFanout(m) : m.system === 'raw' ? startRaw(m) : startEtcdWatchers(m));
        send({ ev: 'ready' });
        return;
      case 'progress': {
        const sum = (a: Int32Array) => a.reduce((n, x) => n + x, 0);
        let complete = 0;
        if (m.lastSeq) for (let c = 0; c < received.length; c++) if (isComplete(c, m.lastSeq)) complete++;
        const p: WorkerProgress = { ev: 'progress', received: sum(received), removed: sum(removed), complete };
        send(p);
        return;
      }
      case 'stall':
        for (const s of stallable) s.pause(m.paused);
        send({ ev: 'stall' });
        return;
      case 'report': {
        let complete = 0;
        for (let c = 0; c < received.length; c++) if (isComplete(c, m.lastSeq)) complete++;
        const stalled = stallable.map((s, c) => ({ received: received[c]!, complete: isComplete(c, m.lastSeq), ...s.outcome() }));
        for (const s of stallable) s.pause(false);
        for (const close of closers.splice(0)) await close();
        const report: WorkerReport = {
          ev: 'report', histogram: hdr.encodeIntoCompressedBase64(histogram), received: [...received], complete, reconnects, snapshots,
          removed: [...removed], stalledHistogram: hdr.encodeIntoCompressedBase64(stalledHistogram), stalled,
          probeHistogram: hdr.encodeIntoCompressedBase64(probeHistogram),
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
