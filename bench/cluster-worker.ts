// A client process of the cluster scenario, driven by the harness over IPC: the four agents
// (felix, bgp, tunnel-ip-allocation, node-status) of each node of its share. Most are lean
// protocol readers; the agents of the probe nodes are the real client library with its full
// cache, and measure end-to-end latency. A lean reader that cannot resume presents the digest of
// this process's probe of its view, as an agent with a cache would (bench/lib/lean-reader.ts).
import { readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { join } from 'node:path';
import * as hdr from 'hdr-histogram-js';
import { SyncClient } from '../client/index.js';
import { SYNCER_TYPES, type SyncerType } from '../src/model/views.js';
import { keyBits } from '../src/protocol/checksum.js';
import { bucketCountFor, DIGEST_SCHEME, digestToWire, emptyDigest, xorInto } from '../src/protocol/digest.js';
import type { CacheDigest } from '../src/protocol/messages.js';
import { clusterStampOf, clusterStampsInItems } from './lib/cluster-model.js';
import { ackEverySecond, LeanReader } from './lib/lean-reader.js';
import { nowUs } from './lib/payload.js';
import { checkProbe, type ProbeCheck } from './lib/probe-check.js';

export type ClusterCommand =
  | { cmd: 'ping' }
  | { cmd: 'start'; urls: string[]; nodes: string[]; probeNodes: string[]; compression: 'brotli' | 'none'; wave: number; timeoutMs: number }
  | { cmd: 'measure'; on: boolean }
  | { cmd: 'fence'; seq: number }
  | { cmd: 'progress'; markerSeq?: number }
  | { cmd: 'arm' }
  | { cmd: 'storm'; timeoutMs: number }
  | { cmd: 'verify'; path: string }
  | { cmd: 'report' }
  | { cmd: 'stop' };

export interface ClusterProgress { ev: 'progress'; delivered: number; agents: number; inSync: number; markerSeen: number }

/** One agent's reconnect: when it lost its server and when it was in sync again (nowUs), and how. */
export interface StormAgent { probe: boolean; syncer: SyncerType; leftAt: number; doneAt: number; mode: 'snapshot' | 'digest' | 'resume' | 'unknown'; connects: number }

export interface ClusterReport {
  ev: 'report';
  /** Latency write → receipt, µs, of the probes' and of the lean readers' stamped updates while measuring. */
  probeHistogram: string;
  leanHistogram: string;
  /** Items delivered while measuring, by view: lean readers' delta items, probes' reported updates. */
  deliveredByView: Record<string, number>;
  /** Frames received while measuring, by view (lean readers and probes). */
  framesByView: Record<string, number>;
  /** Snapshots, digests, resumes and reconnects over the whole run, lean readers and probes together. */
  connects: number;
  agents: number;
  protocolErrors: number;
  /** Lean readers' closed connections by the server's close code, and goaways received. */
  closes: Record<string, number>;
  goaways: number;
}

const send = (m: object) => process.send!(m);
const newHistogram = () => hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 2 });

interface Lean { reader: LeanReader; syncer: SyncerType; maxSeq: number; items0: number; frames0: number; armed: number; leftAt: number; doneAt: number; before: Modes }
interface Probe { client: SyncClient; syncer: SyncerType; node: string; maxSeq: number; delivered: number; frames0: number; armed: number; leftAt: number; doneAt: number; before: Modes }
type Modes = { snapshots: number; digests: number; resumes: number };

const leans: Lean[] = [];
const probes: Probe[] = [];
let measuring = false;
/** Stamps from this seq on (the drain's marker) count as deliveries but not in the latency. */
let fence = Infinity;
let probeHistogram = newHistogram();
let leanHistogram = newHistogram();
let stopAcks = () => {};

/**
 * The digest (and newest revision) of this process's first probe of a view, as of the last time
 * that probe was in sync: worked out once per state, and kept while the probe itself resyncs (in
 * a storm thousands of readers ask at once, and a cache half through a repair describes nothing).
 */
function donorOf(syncer: SyncerType): () => { digest: CacheDigest; revision?: string } | undefined {
  let memo: { at: string; value: { digest: CacheDigest; revision?: string } } | undefined;
  return () => {
    const p = probes.find((x) => x.syncer === syncer);
    if (!p || p.client.size === 0) return undefined;
    const at = `${p.client.resumeToken?.epoch}:${p.client.resumeToken?.seq}:${p.client.size}`;
    if (memo && (memo.at === at || !p.client.isInSync)) return memo.value;
    const buckets = bucketCountFor(p.client.size);
    const d = emptyDigest(buckets);
    let revision = 0;
    for (const [key, v] of p.client.entries()) {
      xorInto(d, keyBits(key) & (buckets - 1), v.hash);
      const r = Number(v.revision);
      if (Number.isSafeInteger(r) && r > revision) revision = r;
    }
    memo = { at, value: { digest: { scheme: DIGEST_SCHEME, buckets, hashes: digestToWire(d) }, revision: revision > 0 ? String(revision) : undefined } };
    return memo.value;
  };
}

function modes(s: Modes): Modes { return { snapshots: s.snapshots, digests: s.digests, resumes: s.resumes }; }
function modeOf(before: Modes, now: Modes): StormAgent['mode'] {
  if (now.digests > before.digests) return 'digest';
  if (now.snapshots > before.snapshots) return 'snapshot';
  if (now.resumes > before.resumes) return 'resume';
  return 'unknown';
}

async function within<T>(p: Promise<T>, ms: number, what: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(what())), ms); })]);
  } finally { clearTimeout(timer); }
}

async function start(m: Extract<ClusterCommand, { cmd: 'start' }>): Promise<void> {
  const probeNodes = new Set(m.probeNodes);
  // Probes first: they are the lean readers' digest donors.
  for (const node of m.nodes.filter((n) => probeNodes.has(n))) {
    for (const syncer of SYNCER_TYPES) {
      const p: Probe = { client: undefined as unknown as SyncClient, syncer, node, maxSeq: 0, delivered: 0, frames0: 0, armed: 0, leftAt: 0, doneAt: 0, before: { snapshots: 0, digests: 0, resumes: 0 } };
      p.client = new SyncClient({
        urls: m.urls, syncerType: syncer, node, clientName: 'bench-probe', keepValues: true, initialBackoffMs: 200, maxBackoffMs: 5000,
        compression: m.compression === 'none' ? [] : [m.compression],
        onUpdates: (us) => {
          const now = nowUs();
          for (const u of us) {
            if (!u.bytes) continue;
            const s = clusterStampOf(u.value);
            if (!s || s.seq <= 0) continue;
            if (s.seq > p.maxSeq) p.maxSeq = s.seq;
            if (measuring) { p.delivered++; if (s.seq < fence) probeHistogram.recordValue(Math.max(1, now - s.ts)); }
          }
        },
      });
      probes.push(p);
      p.client.start();
    }
  }
  await within(Promise.all(probes.map((p) => p.client.inSync())), m.timeoutMs, () => `${probes.filter((p) => !p.client.isInSync).length} of ${probes.length} probes not in sync after ${m.timeoutMs} ms`);
  const donors = new Map(SYNCER_TYPES.map((s) => [s, donorOf(s)]));
  const todo: { node: string; syncer: SyncerType }[] = [];
  for (const node of m.nodes.filter((n) => !probeNodes.has(n))) for (const syncer of SYNCER_TYPES) todo.push({ node, syncer });
  // In waves: a burst of thousands of handshakes at once would overflow the listen backlog.
  for (let i = 0; i < todo.length; i += m.wave) {
    const wave = todo.slice(i, i + m.wave).map(({ node, syncer }) => {
      const l: Lean = { reader: undefined as unknown as LeanReader, syncer, maxSeq: 0, items0: 0, frames0: 0, armed: 0, leftAt: 0, doneAt: 0, before: { snapshots: 0, digests: 0, resumes: 0 } };
      l.reader = new LeanReader({
        urls: m.urls, syncer, node, compression: m.compression, scanSync: false, backoffMs: 200, digest: donors.get(syncer),
        onFrame: (frame, items, _live, at) => {
          const now = nowUs();
          clusterStampsInItems(frame, at, items, (seq, ts) => {
            if (seq <= 0) return;
            if (seq > l.maxSeq) l.maxSeq = seq;
            if (measuring && seq < fence) leanHistogram.recordValue(Math.max(1, now - ts));
          });
        },
        onSync: (ok) => {
          if (!l.armed) return;
          if (!ok) { l.leftAt ||= nowUs(); return; }
          if (l.reader.stats.connects > l.armed && !l.doneAt) l.doneAt = nowUs();
        },
      });
      leans.push(l);
      l.reader.start();
      return l;
    });
    await within(Promise.all(wave.map((l) => l.reader.inSync())), m.timeoutMs, () => `${wave.filter((l) => !l.reader.isInSync).length} of a wave of ${wave.length} lean readers not in sync after ${m.timeoutMs} ms`);
  }
  stopAcks = ackEverySecond(() => leans.map((l) => l.reader));
}

function delivered(): number {
  let n = 0;
  for (const l of leans) n += l.reader.stats.items - l.items0;
  for (const p of probes) n += p.delivered;
  return n;
}

function progress(markerSeq?: number): ClusterProgress {
  let inSync = 0;
  let markerSeen = 0;
  for (const l of leans) {
    if (l.reader.isInSync) inSync++;
    if (markerSeq !== undefined && l.maxSeq >= markerSeq) markerSeen++;
  }
  for (const p of probes) {
    if (p.client.isInSync) inSync++;
    if (markerSeq !== undefined && p.maxSeq >= markerSeq) markerSeen++;
  }
  return { ev: 'progress', delivered: delivered(), agents: leans.length + probes.length, inSync, markerSeen };
}

function arm(): void {
  for (const l of leans) { l.armed = l.reader.stats.connects; l.leftAt = l.doneAt = 0; l.before = modes(l.reader.stats); }
  for (const p of probes) { p.armed = p.client.stats.connects; p.leftAt = p.doneAt = 0; p.before = modes(p.client.stats); }
}

/** Until every agent has lost its server and is in sync on another (probes polled, lean readers by their events). */
async function storm(timeoutMs: number): Promise<StormAgent[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const now = nowUs();
    for (const p of probes) {
      const moved = p.client.stats.connects > p.armed;
      if (!p.leftAt && (moved || !p.client.isInSync)) p.leftAt = now;
      if (!p.doneAt && moved && p.client.isInSync) p.doneAt = now;
    }
    const left = leans.filter((l) => !l.doneAt).length + probes.filter((p) => !p.doneAt).length;
    if (left === 0) break;
    if (Date.now() > deadline) throw new Error(`${left} of ${leans.length + probes.length} agents not in sync again after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
  return [
    ...probes.map((p): StormAgent => ({ probe: true, syncer: p.syncer, leftAt: p.leftAt, doneAt: p.doneAt, mode: modeOf(p.before, p.client.stats), connects: p.client.stats.connects - p.armed })),
    ...leans.map((l): StormAgent => ({ probe: false, syncer: l.syncer, leftAt: l.leftAt || l.doneAt, doneAt: l.doneAt, mode: modeOf(l.before, l.reader.stats), connects: l.reader.stats.connects - l.armed })),
  ];
}

/** Each probe's cache against the view computed from the datastore's content (the harness's dump). */
function verify(path: string): ProbeCheck[] {
  const content = new Map<string, unknown>(JSON.parse(readFileSync(path, 'utf8')) as [string, unknown][]);
  return probes.map((p) => checkProbe(p.syncer, p.node, p.client.entries(), content));
}

function report(): ClusterReport {
  const byView: Record<string, number> = Object.fromEntries(SYNCER_TYPES.map((s) => [s, 0]));
  for (const l of leans) byView[l.syncer]! += l.reader.stats.items - l.items0;
  for (const p of probes) byView[p.syncer]! += p.delivered;
  const frames: Record<string, number> = Object.fromEntries(SYNCER_TYPES.map((s) => [s, 0]));
  for (const l of leans) frames[l.syncer]! += l.reader.stats.frames - l.frames0;
  for (const p of probes) frames[p.syncer]! += p.client.stats.framesReceived - p.frames0;
  return {
    ev: 'report', probeHistogram: hdr.encodeIntoCompressedBase64(probeHistogram), leanHistogram: hdr.encodeIntoCompressedBase64(leanHistogram),
    deliveredByView: byView, framesByView: frames,
    connects: leans.reduce((n, l) => n + l.reader.stats.connects, 0) + probes.reduce((n, p) => n + p.client.stats.connects, 0),
    agents: leans.length + probes.length,
    protocolErrors: leans.reduce((n, l) => n + l.reader.stats.protocolErrors, 0) + probes.reduce((n, p) => n + p.client.stats.protocolErrors, 0),
    closes: leans.reduce((acc, l) => { for (const [c, n] of Object.entries(l.reader.stats.closes)) acc[c] = (acc[c] ?? 0) + n; return acc; }, {} as Record<string, number>),
    goaways: leans.reduce((n, l) => n + l.reader.stats.goaways, 0),
  };
}

/**
 * BENCH_CPU_PROF=<dir>: besides the whole life (--cpu-prof), a profile of the measured pass alone,
 * where connecting (snapshots) would otherwise hide what a delta costs the generator.
 */
const PROF_DIR = process.env.BENCH_CPU_PROF;
let session: Session | undefined;
async function profile(on: boolean): Promise<void> {
  if (!PROF_DIR) return;
  if (on) {
    session = new Session();
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.start');
    return;
  }
  if (!session) return;
  const { profile: p } = await session.post('Profiler.stop');
  writeFileSync(join(PROF_DIR, `cluster-worker-${process.pid}-measured.cpuprofile`), JSON.stringify(p));
  session.disconnect();
  session = undefined;
}

process.on('message', async (m: ClusterCommand) => {
  try {
    switch (m.cmd) {
      case 'ping': return send({ ev: 'pong' });
      case 'start':
        await start(m);
        return send({ ev: 'ready' });
      case 'measure':
        if (m.on) {
          probeHistogram = newHistogram();
          leanHistogram = newHistogram();
          for (const l of leans) { l.items0 = l.reader.stats.items; l.frames0 = l.reader.stats.frames; }
          for (const p of probes) { p.delivered = 0; p.frames0 = p.client.stats.framesReceived; }
          fence = Infinity;
        }
        measuring = m.on;
        await profile(m.on);
        return send({ ev: 'measuring', on: m.on });
      case 'fence':
        fence = m.seq;
        return send({ ev: 'fenced' });
      case 'progress': return send(progress(m.markerSeq));
      case 'arm':
        arm();
        return send({ ev: 'armed' });
      case 'storm': return send({ ev: 'storm', agents: await storm(m.timeoutMs) });
      case 'verify': return send({ ev: 'verified', probes: verify(m.path) });
      case 'report': return send(report());
      case 'stop':
        stopAcks();
        for (const l of leans) l.reader.stop();
        await Promise.all(probes.map((p) => p.client.stop()));
        process.exit(0);
    }
  } catch (err) {
    send({ ev: 'error', message: (err as Error).stack ?? String(err) });
  }
});
process.on('disconnect', () => process.exit(0));
