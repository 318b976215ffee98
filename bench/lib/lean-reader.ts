// A lean protocol reader: what the load generator runs for most simulated agents. It does what
// PROTOCOL.md asks of any client (hello, frames, positions, pongs, acks and flow control,
// reconnects with resume) and nothing an agent does with the data: no cache, no values decoded,
// no checksums verified. Per frame it reads the head in place, counts the items and hands the
// frame's bytes to `onFrame` (which finds the stamps), so that thousands of them cost the
// generator far less than they cost the server. Real client libraries (probes) measure what an
// agent sees; these make the load.
import { brotliDecompressSync, constants, inflateRawSync } from 'node:zlib';
import { encode } from '../../src/protocol/codec.js';
import type { CacheDigest } from '../../src/protocol/messages.js';
import { MsgpackFormatError, MsgReader, NOT_SCALAR } from '../../src/protocol/msgpack-raw.js';
import { WsLite } from './ws-lite.js';

export interface LeanOptions {
  /** Tried in turn: a closed connection moves to the next. */
  urls: string[];
  syncer: string;
  node: string;
  /** Offered for snapshot chunks; 'none' asks for plain ones. */
  compression: 'brotli' | 'deflate' | 'none';
  /**
   * Items of a frame (`items` of them from byte `at`): `live` for deltas, false for snapshot and
   * repair chunks (only with scanSync). The bytes are only valid during the call.
   */
  onFrame?: (frame: Buffer, items: number, live: boolean, at: number) => void;
  /**
   * Hand snapshot and repair chunks to onFrame, inflating compressed ones whole. Without it a
   * compressed chunk is inflated only as far as its head (tens of bytes out of hundreds of KiB).
   */
  scanSync: boolean;
  /**
   * What the hello presents when it cannot resume: a lean reader has no cache, so it borrows the
   * digest of a full client of the same view (undefined: none, a snapshot).
   */
  digest?: () => { digest: CacheDigest; revision?: string } | undefined;
  /** Reconnect delay, ms (jittered ×0.5–1.5), as a client library's first backoff. */
  backoffMs: number;
  /** In sync (true), or the connection lost (false). */
  onSync?: (inSync: boolean) => void;
}

export interface LeanStats {
  connects: number;
  snapshots: number;
  digests: number;
  resumes: number;
  frames: number;
  bytes: number;
  /** Items of delta frames. */
  items: number;
  /** Items of snapshot and repair chunks. */
  syncItems: number;
  goaways: number;
  protocolErrors: number;
  /** Connections closed, by the close code the server sent ('none': the socket just went). */
  closes: Record<string, number>;
}

const WINDOW_ACK_FRACTION = 4;
const ACK_INTERVAL_MS = 1000;

export class LeanReader {
  readonly stats: LeanStats = { connects: 0, snapshots: 0, digests: 0, resumes: 0, frames: 0, bytes: 0, items: 0, syncItems: 0, goaways: 0, protocolErrors: 0, closes: {} };
  private ws: WsLite | undefined;
  private running = false;
  private urlIndex = 0;
  private epoch: string | undefined;
  private pos: number | undefined;
  /** In the middle of a snapshot or repair: no position to resume from if cut off. */
  private syncing = false;
  private status = '';
  private synced = false;
  private compression = 'none';
  private ackEvery: number | undefined;
  private bytesIn = 0;
  private bytesAcked = 0;
  private acked = -1;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private waiters: (() => void)[] = [];

  constructor(private readonly o: LeanOptions) {}

  get isInSync(): boolean { return this.synced; }
  get position(): number | undefined { return this.pos; }

  start(): void {
    this.running = true;
    this.connect();
  }

  /** Resolves once in sync (now, if already). */
  inSync(): Promise<void> {
    return this.synced ? Promise.resolve() : new Promise((r) => this.waiters.push(r));
  }

  stop(): void {
    this.running = false;
    clearTimeout(this.reconnectTimer);
    this.ws?.destroy();
  }

  /** Drops the connection at once and reconnects (a network cut, a crashed replica's clients). */
  drop(): void {
    this.ws?.destroy();
  }

  /** Sends the position (and, under flow control, the bytes taken in); called about once a second by the owner. */
  ack(bytesDue = false): void {
    const ws = this.ws;
    if (!ws?.isOpen) return;
    if (!bytesDue && (this.pos === undefined || this.pos === this.acked)) return;
    const seq = this.pos ?? 0;
    this.acked = seq;
    if (this.ackEvery === undefined) return ws.send(encode({ t: 'ack', seq }));
    this.bytesAcked = this.bytesIn;
    ws.send(encode({ t: 'ack', seq, bytes: this.bytesIn }));
  }

  private connect(): void {
    if (!this.running) return;
    const url = this.o.urls[this.urlIndex % this.o.urls.length]!;
    this.stats.connects++;
    const ws = new WsLite(url, {
      onOpen: () => this.hello(ws),
      onMessage: (data) => this.onMessage(ws, data),
      onClose: (code) => { const c = code ? String(code) : 'none'; this.stats.closes[c] = (this.stats.closes[c] ?? 0) + 1; this.onClose(ws); },
    });
    this.ws = ws;
  }

  private hello(ws: WsLite): void {
    this.bytesIn = this.bytesAcked = 0;
    this.ackEvery = undefined;
    this.acked = -1;
    const resume = this.epoch !== undefined && this.pos !== undefined ? { epoch: this.epoch, seq: this.pos } : undefined;
    // As a client library: a resume token and, for a server that cannot resume it, a digest.
    const borrowed = this.o.digest?.();
    ws.send(encode({
      t: 'hello', v: 1, syncer: this.o.syncer as 'felix', node: this.o.node, clientName: 'bench-lean', clientVersion: '0',
      resume, digest: borrowed?.digest, revision: borrowed?.revision,
      compression: this.o.compression === 'none' ? [] : [this.o.compression], flow: true,
    }));
  }

  private onClose(ws: WsLite): void {
    if (this.ws !== ws) return;
    this.ws = undefined;
    this.synced = false;
    this.o.onSync?.(false);
    if (this.syncing) { this.syncing = false; this.pos = undefined; }
    if (!this.running) return;
    this.urlIndex++;
    const delay = this.o.backoffMs * (0.5 + Math.random());
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
  }

  private onMessage(ws: WsLite, data: Buffer): void {
    if (this.ws !== ws) return;
    this.stats.frames++;
    this.stats.bytes += data.length;
    this.bytesIn += data.length;
    try {
      this.handle(data);
    } catch {
      // A frame this reader cannot read: start again, as a client library would, without resume.
      this.stats.protocolErrors++;
      this.pos = undefined;
      this.ws?.destroy();
      return;
    }
    if (this.ackEvery !== undefined && this.bytesIn - this.bytesAcked >= this.ackEvery) this.ack(true);
  }

  private handle(data: Buffer): void {
    // Nearly every frame is a delta: read in place without allocating.
    const n = deltaItems(data);
    if (n >= 0) {
      this.stats.items += n;
      this.o.onFrame?.(data, n, true, deltaAt);
      this.pos = deltaTo;
      return;
    }
    const h = readHead(data);
    if (!h) throw new MsgpackFormatError('truncated frame');
    const { head, items, at } = h;
    switch (head.t) {
      case 'compressed':
        return this.handle(this.o.scanSync ? this.inflate(head.data as Buffer) : this.inflateHead(head.data as Buffer));
      case 'welcome':
        if (head.epoch !== this.epoch) this.pos = undefined;
        this.epoch = String(head.epoch);
        if (head.mode === 'resume') this.stats.resumes++;
        else {
          if (head.mode === 'digest') this.stats.digests++;
          else this.stats.snapshots++;
          this.pos = undefined;
        }
        this.compression = String(head.compression);
        this.ackEvery = typeof head.window === 'number' && head.window > 0 ? Math.max(1, Math.floor(head.window / WINDOW_ACK_FRACTION)) : undefined;
        return;
      case 'snapshot':
      case 'repair':
        this.syncing = head.last !== true;
        this.stats.syncItems += items;
        if (this.o.scanSync) this.o.onFrame?.(data, items, false, at);
        if (head.last === true) {
          this.pos = Number(head.seq);
          this.onStatus(this.status);
        }
        return;
      case 'delta':
        this.stats.items += items;
        this.o.onFrame?.(data, items, true, at);
        this.pos = Number(head.to);
        return;
      case 'status':
        return this.onStatus(String(head.status));
      case 'checksum':
        // Not verified (no cache); its seq is a position all the same.
        if (this.pos !== undefined) this.pos = Math.max(this.pos, Number(head.seq));
        return;
      case 'ping':
        this.ws?.send(encode({ t: 'pong', ts: Number(head.ts) }));
        return;
      case 'goaway': {
        this.stats.goaways++;
        const resume = head.resume as { epoch?: string; seq?: number } | undefined;
        if (!this.syncing && this.pos !== undefined && resume?.epoch === this.epoch && typeof resume?.seq === 'number' && resume.seq >= this.pos) this.pos = resume.seq;
        return;
      }
      default:
    }
  }

  private onStatus(status: string): void {
    this.status = status;
    if (status !== 'in-sync') { this.synced = false; return; }
    if (this.pos === undefined || this.syncing) return;
    this.synced = true;
    this.ack();
    this.o.onSync?.(true);
    for (const w of this.waiters.splice(0)) w();
  }

  private inflate(data: Buffer, partial = false): Buffer {
    if (this.compression === 'brotli') return brotliDecompressSync(data, partial ? { finishFlush: constants.BROTLI_OPERATION_FLUSH } : {});
    if (this.compression === 'deflate') return inflateRawSync(data, partial ? { finishFlush: constants.Z_SYNC_FLUSH } : {});
    throw new Error('a compressed frame without a negotiated algorithm');
  }

  /**
   * The inner frame as far as its item count: inflated from a growing prefix of the compressed
   * bytes until the head reads whole (a repair's head holds its bucket list, up to 64 KiB).
   */
  private inflateHead(data: Buffer): Buffer {
    for (let n = 256; n < data.length; n *= 16) {
      const inner = this.inflate(data.subarray(0, n), true);
      if (readHead(inner)) return inner;
    }
    return this.inflate(data);
  }
}

// A delta frame as servers write it: {t: 'delta', from, to, h?: bin, u: [item…]}, fields in that order
// (the map header, 0x84 or 0x85 with the item hashes, is checked apart).
const DELTA_HEAD = Buffer.from([0x84, 0xa1, 0x74, 0xa5, 0x64, 0x65, 0x6c, 0x74, 0x61, 0xa4, 0x66, 0x72, 0x6f, 0x6d]);
let deltaTo = 0;
let deltaAt = 0;

/** A msgpack unsigned integer at `o` (fixint, uint8–uint64, or a float64 holding one); -1 for anything else. Leaves its end in `uintEnd`. */
function uintAt(b: Buffer, o: number): number {
  const x = b[o];
  const size = x === undefined ? 0 : x < 0x80 ? 1 : x === 0xcc ? 2 : x === 0xcd ? 3 : x === 0xce ? 5 : x === 0xcf || x === 0xcb ? 9 : 0;
  if (size === 0 || o + size > b.length) return -1;
  uintEnd = o + size;
  switch (x) {
    case 0xcc: return b[o + 1]!;
    case 0xcd: return b.readUInt16BE(o + 1);
    case 0xce: return b.readUInt32BE(o + 1);
    case 0xcf: return Number(b.readBigUInt64BE(o + 1));
    case 0xcb: return b.readDoubleBE(o + 1);
    default: return x!;
  }
}
let uintEnd = 0;

/** The item count of a delta frame (its `to` left in deltaTo); -1 when the frame is anything else. */
function deltaItems(b: Buffer): number {
  if (b.length < 20 || (b[0] !== 0x84 && b[0] !== 0x85) || b.compare(DELTA_HEAD, 1, DELTA_HEAD.length, 1, DELTA_HEAD.length) !== 0) return -1;
  if (uintAt(b, DELTA_HEAD.length) < 0) return -1;
  let o = uintEnd;
  if (b[o] !== 0xa2 || b[o + 1] !== 0x74 || b[o + 2] !== 0x6f) return -1; // "to"
  const to = uintAt(b, o + 3);
  if (to < 0) return -1;
  o = uintEnd;
  if (b[0] === 0x85) {
    if (o + 7 > b.length || b[o] !== 0xa1 || b[o + 1] !== 0x68) return -1; // "h": the items' hashes, stepped over
    const t = b[o + 2];
    if (t === 0xc4) o += 4 + b[o + 3]!;
    else if (t === 0xc5) o += 5 + b.readUInt16BE(o + 3);
    else if (t === 0xc6) o += 7 + b.readUInt32BE(o + 3);
    else return -1;
  }
  if (b[o] !== 0xa1 || b[o + 1] !== 0x75) return -1; // "u"
  const h = b[o + 2]!;
  let n: number;
  if ((h & 0xf0) === 0x90) { n = h & 0x0f; deltaAt = o + 3; }
  else if (h === 0xdc && o + 5 <= b.length) { n = b.readUInt16BE(o + 3); deltaAt = o + 5; }
  else if (h === 0xdd && o + 7 <= b.length) { n = b.readUInt32BE(o + 3); deltaAt = o + 7; }
  else return -1;
  deltaTo = to;
  return n;
}

/** The fast path's reading of a delta frame, for tests: its item count and `to`; undefined when it is not one. */
export function readDelta(b: Buffer): { items: number; to: number; at: number } | undefined {
  const items = deltaItems(b);
  return items < 0 ? undefined : { items, to: deltaTo, at: deltaAt };
}

/**
 * A frame's head fields read in place, up to the item array (`u`, always last) whose length is
 * `items`; undefined when the bytes end first (a head inflated from a prefix).
 */
function readHead(data: Buffer): { head: Record<string, unknown>; items: number; at: number } | undefined {
  try {
    const r = new MsgReader(data);
    const fields = r.mapLength();
    const head: Record<string, unknown> = {};
    for (let i = 0; i < fields; i++) {
      const name = r.str();
      if (name === 'u') { const items = r.arrayLength(); return { head, items, at: r.pos }; }
      const v = r.scalar();
      if (v !== NOT_SCALAR) { head[name] = v; continue; }
      // A ping's ts (ms since the epoch) is past 32 bits: a uint64 or a float64.
      const b = data[r.pos];
      if (b === 0xcb || b === 0xcf) { head[name] = b === 0xcb ? data.readDoubleBE(r.pos + 1) : Number(data.readBigUInt64BE(r.pos + 1)); r.skip(); continue; }
      if (name === 'data') { const at = r.bin(); head.data = data.subarray(at, r.pos); continue; }
      if (name === 'resume') { head.resume = resumeOf(r); continue; }
      r.skip();
    }
    return { head, items: 0, at: r.pos };
  } catch (err) {
    if (err instanceof MsgpackFormatError) return undefined;
    throw err;
  }
}

/** goaway.resume: {epoch, seq}, read in place. */
function resumeOf(r: MsgReader): { epoch?: string; seq?: number } {
  const out: { epoch?: string; seq?: number } = {};
  const n = r.mapLength();
  for (let i = 0; i < n; i++) {
    const k = r.str();
    const v = r.scalar();
    if (v === NOT_SCALAR) { r.skip(); continue; }
    if (k === 'epoch' && typeof v === 'string') out.epoch = v;
    if (k === 'seq' && typeof v === 'number') out.seq = v;
  }
  return out;
}

/** Acks every reader about once a second (one timer for all, not one per reader). */
export function ackEverySecond(readers: () => Iterable<LeanReader>): () => void {
  const t = setInterval(() => { for (const r of readers()) r.ack(); }, ACK_INTERVAL_MS);
  t.unref();
  return () => clearInterval(t);
}
