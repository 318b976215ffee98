// The client library an agent embeds. It keeps a cache of one view, reconnects on its own
// (jittered exponential backoff, rotating across URLs, honouring goaway), resumes from its last
// position where the server still has the history, elsewhere sends a digest of its cache so that
// any server resends only the buckets that differ, and verifies the server's checksums. The
// agent hears only about keys whose value changed: a snapshot or repair after a reconnect is
// reconciled against the cache (mark and sweep), never replayed.
import WebSocket from 'ws';
import { backoffMs } from '../src/backoff.js';
import { VERSION } from '../src/version.js';
import { isViewName, needsNode, type ViewName } from '../src/model/views.js';
import { encode, ProtocolError } from '../src/protocol/codec.js';
import { COMPRESSIONS, decompressFrame, negotiate, type Compression } from '../src/protocol/compression.js';
import { bucketsFromWire } from '../src/protocol/digest.js';
import { decodeServerFrame, type DecodedFrame, type ItemHashes, type RawItem } from '../src/protocol/frames.js';
import { PROTOCOL_VERSION, type ResumeToken, type SyncStatus } from '../src/protocol/messages.js';
import { ClientCache, type CachedValue, type Update } from './cache.js';
import { loadTlsOptions, validateTlsOptions, type ClientTlsOptions } from './tls.js';

export type { Update, CachedValue, ClientTlsOptions };

/**
 * What happens to the connection, for a caller that follows the server itself (a calico-fanout of
 * a tier below reading the mirror view): each welcome, each time the view is in sync again, each
 * close, and server messages the library has no use for (the mirror view's `progress`).
 */
export type ClientEvent =
  | { t: 'welcome'; url: string; serverId: string; mode: string; chain?: unknown }
  | { t: 'in-sync' }
  | { t: 'disconnected'; url: string; code: number; reason: string }
  | { t: 'message'; msg: Record<string, unknown> };

export interface ClientLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

export interface SyncClientOptions {
  /** One server, or several to rotate across (e.g. ws://typha-1:5473). */
  url?: string;
  urls?: string[];
  /**
   * Where the servers are now (e.g. kubernetesEndpoints(...)): called at start and before each
   * round through the list, whose place it takes. When it fails, times out (connectTimeoutMs) or
   * finds nothing, the client keeps the list it had (url/urls at first) and logs a warning.
   * The signal aborts a call the client no longer waits for (stop, timeout).
   */
  discover?: (signal?: AbortSignal) => Promise<string[]>;
  /**
   * TLS as Typha's client does it: the files are read on every connect (rotation is picked up
   * on the next one); the server's chain is verified against caFile but not its hostname, and
   * its certificate must have the subject CN serverCN or a URI SAN serverURISAN (either, when
   * both are set; one of them is required). URLs must then be wss://.
   */
  tls?: ClientTlsOptions;
  /** The view: an agent's, or `mirror` for a calico-fanout of a tier below (authorised servers only). */
  syncerType: ViewName;
  /** This agent's node name; required by node-scoped syncer types. */
  node?: string;
  clientName?: string;
  clientVersion?: string;
  /** Changed keys, in the order applied; deletions carry value null. */
  onUpdates?: (updates: Update[]) => void;
  onStatus?: (status: SyncStatus) => void;
  onEvent?: (event: ClientEvent) => void;
  /** A calico-fanout following another (mirror view): its server identity, so that the upstream refuses a loop. */
  serverId?: string;
  logger?: ClientLogger;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** Reconnect when nothing (not even a ping) arrives for this long. */
  serverTimeoutMs?: number;
  connectTimeoutMs?: number;
  /** How often applied positions are acknowledged. */
  ackIntervalMs?: number;
  /** false: keep only hashes (enough to verify checksums), not decoded values; updates still carry them. */
  keepValues?: boolean;
  /**
   * true: hash every item received and refuse a frame whose `h` (the server's entry hashes)
   * disagrees with its bytes. By default the server's hashes are taken as sent, which the view
   * checksum then rests on (PROTOCOL.md "What a checksum proves"); items of a server that sends
   * none are hashed either way.
   */
  verifyItemHashes?: boolean;
  /**
   * Algorithms for large frames (snapshots, repairs), in order of preference; [] for none.
   * Default: brotli, then deflate (PROTOCOL.md "Compression").
   */
  compression?: string[];
  /** Passed to the WebSocket (as are TLS options such as ca, cert, key; `tls` takes precedence). */
  wsOptions?: WebSocket.ClientOptions;
}

export interface ClientStats {
  connects: number;
  snapshots: number;
  /** Digest resyncs: the server resent only the buckets where the cache differed. */
  digests: number;
  resumes: number;
  framesReceived: number;
  bytesReceived: number;
  itemsReceived: number;
  checksumsVerified: number;
  checksumMismatches: number;
  /** Frames from the server that broke the protocol (each costs a reconnect and a snapshot). */
  protocolErrors: number;
  /**
   * Syncs from a datastore older than the cache (restored from a backup): the one case where a
   * key's revision may go back (status.rewound).
   */
  rewinds: number;
  /** Calls of `discover` that gave a list, and those that failed, timed out or found nothing. */
  discoveries: number;
  discoveryFailures: number;
}

/** Largest frame taken from a server, before or after decompression. */
const MAX_FRAME_BYTES = 64 << 20;

const noLog: ClientLogger = { debug() {}, info() {}, warn() {} };

export class SyncClient {
  readonly stats: ClientStats = { connects: 0, snapshots: 0, digests: 0, resumes: 0, framesReceived: 0, bytesReceived: 0, itemsReceived: 0, checksumsVerified: 0, checksumMismatches: 0, protocolErrors: 0, rewinds: 0, discoveries: 0, discoveryFailures: 0 };
  private readonly cache: ClientCache;
  private readonly itemHashes: ItemHashes;
  private urlList: string[];
  /** Whether discover has been called since start (the first round always asks it). */
  private discovered = false;
  /** Bumped by start and stop: an async step of connect() that finds it changed gives up. */
  private generation = 0;
  private discovery: AbortController | undefined;
  private readonly log: ClientLogger;
  private ws: WebSocket | undefined;
  /** The URL of the current (or last) connection. */
  private url = '';
  private urlIndex = 0;
  /** A replica a goaway pointed to: tried on the next connect. */
  private preferred: string | undefined;
  private attempt = 0;
  private running = false;
  private epoch: string | undefined;
  /** Position in the server's sequence; undefined until a snapshot completes or a resume is accepted. */
  private pos: number | undefined;
  /** Newest position whose data the cache may hold (see Hello.known). */
  private known = 0;
  private status: SyncStatus | undefined;
  private synced = false;
  private waiters: (() => void)[] = [];
  private retryAfterMs = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private lastFrameAt = 0;
  private ackTimer: NodeJS.Timeout | undefined;
  private acked = 0;
  /**
   * Flow control: bytes of frames processed on this connection, those acknowledged, and how many
   * processed bytes call for an ack (a quarter of the server's window; undefined: no window).
   */
  private bytesIn = 0;
  private bytesAcked = 0;
  private ackEvery: number | undefined;
  private compression: Compression | 'none' = 'none';

  constructor(private readonly opts: SyncClientOptions) {
    this.urlList = [...(opts.urls ?? (opts.url ? [opts.url] : []))];
    if (this.urlList.length === 0 && !opts.discover) throw new Error('SyncClient needs url, urls or discover');
    if (opts.tls) {
      validateTlsOptions(opts.tls);
      const plain = this.urlList.find((u) => !/^wss:/i.test(u));
      if (plain) throw new Error(`tls is set but ${plain} is not a wss:// URL`);
    }
    if (!isViewName(opts.syncerType)) throw new Error(`unknown syncerType ${String(opts.syncerType)}`);
    if (needsNode(opts.syncerType) && !opts.node) throw new Error(`syncerType ${opts.syncerType} needs node`);
    this.cache = new ClientCache(opts.keepValues ?? true);
    this.itemHashes = opts.verifyItemHashes ? 'verify' : 'trust';
    this.log = opts.logger ?? noLog;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.generation++;
    this.discovered = false;
    void this.connect();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.generation++;
    this.discovery?.abort(new Error('client stopping'));
    clearTimeout(this.reconnectTimer);
    clearInterval(this.idleTimer);
    clearTimeout(this.ackTimer);
    const ws = this.ws;
    this.ws = undefined;
    this.synced = false;
    if (this.cache.marking) { this.cache.abandonMark(); this.forgetPosition(); }
    if (ws && ws.readyState !== WebSocket.CLOSED) {
      await new Promise<void>((resolve) => {
        ws.once('close', () => resolve());
        ws.close(1000, 'client stopping');
        setTimeout(() => { ws.terminate(); resolve(); }, 1000).unref();
      });
    }
    for (const w of this.waiters.splice(0)) w();
  }

  /** Resolves once the view is in sync with the server (immediately if it already is). */
  inSync(): Promise<void> {
    if (this.synced) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  get isInSync(): boolean { return this.synced; }
  /** The servers the client rotates across: url/urls, or the last list discover gave. */
  get urls(): readonly string[] { return this.urlList; }
  get size(): number { return this.cache.size; }
  get(key: string): CachedValue | undefined { return this.cache.get(key); }
  entries(): IterableIterator<[string, CachedValue]> { return this.cache.entries(); }
  [Symbol.iterator](): IterableIterator<[string, CachedValue]> { return this.cache.entries(); }
  /** The local view checksum, in the server's wire form. */
  checksum(): { value: string; count: number } {
    return { value: this.cache.checksumHex(), count: this.cache.size };
  }
  get resumeToken(): ResumeToken | undefined {
    return this.epoch !== undefined && this.pos !== undefined ? { epoch: this.epoch, seq: this.pos } : undefined;
  }

  // ---- connection lifecycle --------------------------------------------------------------

  private async connect(): Promise<void> {
    if (!this.running) return;
    const gen = this.generation;
    if (this.opts.discover && (!this.discovered || this.urlIndex >= this.urlList.length)) {
      await this.rediscover(this.opts.discover);
      if (gen !== this.generation) return;
      this.urlIndex = 0;
    }
    if (this.urlList.length === 0) {
      this.log.warn({}, 'no server to connect to (discovery has found none yet)');
      return this.scheduleReconnect();
    }
    // A goaway may name other replicas: the next attempt goes to one of them, once.
    const url = this.preferred ?? this.urlList[this.urlIndex % this.urlList.length]!;
    this.preferred = undefined;
    let tlsOptions: object = {};
    if (this.opts.tls) {
      // Never fall back to plaintext: a discovered ws:// URL is a misconfiguration (scheme).
      if (!/^wss:/i.test(url)) {
        this.log.warn({ url }, 'tls is set but the URL is not wss://; not connecting');
        return this.scheduleReconnect();
      }
      try {
        tlsOptions = await loadTlsOptions(this.opts.tls);
      } catch (err) {
        this.log.warn({ url, err: (err as Error).message }, 'cannot load the TLS files; will retry');
        if (gen === this.generation) this.scheduleReconnect();
        return;
      }
      if (gen !== this.generation) return;
    }
    this.stats.connects++;
    let ws: WebSocket;
    try {
      ws = new WebSocket(url, {
        perMessageDeflate: false,
        maxPayload: MAX_FRAME_BYTES,
        handshakeTimeout: this.opts.connectTimeoutMs ?? 10_000,
        ...this.opts.wsOptions,
        ...(tlsOptions as WebSocket.ClientOptions),
      });
    } catch (err) {
      // An invalid URL (say, from discovery): ws throws before dialling.
      this.log.warn({ url, err: (err as Error).message }, 'cannot connect');
      return this.scheduleReconnect();
    }
    this.ws = ws;
    this.url = url;
    let opened = false;
    ws.on('open', () => {
      opened = true;
      this.log.debug({ url }, 'connected');
      this.watchIdle(ws);
      this.bytesIn = this.bytesAcked = 0;
      this.ackEvery = undefined;
      ws.send(encode({
        t: 'hello', v: PROTOCOL_VERSION, syncer: this.opts.syncerType, node: this.opts.node ?? '',
        clientName: this.opts.clientName ?? 'calico-fanout-client', clientVersion: this.opts.clientVersion ?? VERSION,
        resume: this.resumeToken,
        known: this.epoch !== undefined ? { epoch: this.epoch, seq: this.known } : undefined,
        digest: this.cache.digest(),
        revision: this.cache.revision > 0 ? String(this.cache.revision) : undefined,
        compression: this.opts.compression ?? [...COMPRESSIONS],
        flow: true,
        ...(this.opts.serverId !== undefined ? { serverId: this.opts.serverId } : {}),
      }));
    });
    ws.on('message', (data: Buffer) => {
      // Frames ws had already read when this connection was given up (a bad frame, a checksum
      // mismatch) belong to nothing any more: applying them would take back the decision.
      if (this.ws !== ws || ws.readyState !== WebSocket.OPEN) return;
      this.lastFrameAt = Date.now();
      try {
        this.onFrame(data);
        // Acknowledged once processed: the server sends a flow-controlled client no more than
        // its window ahead of what it has taken in, so a busy agent catches up on fresh values.
        this.bytesIn += data.length;
        if (this.ackEvery !== undefined && this.bytesIn - this.bytesAcked >= this.ackEvery) this.sendAck(true);
      } catch (err) {
        const e = err as Error;
        this.stats.protocolErrors++;
        this.log.warn({ url, err: e.message }, 'bad frame from server; reconnecting with a fresh sync');
        this.forgetPosition();
        ws.terminate();
      }
    });
    let lastError: string | undefined;
    ws.on('error', (err) => { lastError = err.message; });
    ws.on('close', (code, reason) => {
      if (this.ws !== ws) return;
      this.ws = undefined;
      clearInterval(this.idleTimer);
      // A snapshot cut off midway proves nothing about keys it did not reach: no sweep.
      if (this.cache.marking) { this.cache.abandonMark(); this.forgetPosition(); }
      this.synced = false;
      // A connection that never opened (refused, TLS verification, handshake) is worth a warning.
      if (opened) this.log.info({ url, code, reason: reason.toString() || undefined, err: lastError }, 'disconnected');
      else this.log.warn({ url, err: lastError }, 'cannot connect');
      this.opts.onEvent?.({ t: 'disconnected', url, code, reason: reason.toString() || lastError || '' });
      this.scheduleReconnect();
    });
  }

  /** Replaces the URL list with what discover finds, unless it fails, hangs or finds nothing. */
  private async rediscover(discover: NonNullable<SyncClientOptions['discover']>): Promise<void> {
    this.discovered = true;
    const gen = this.generation;
    const ac = new AbortController();
    this.discovery = ac;
    const timeoutMs = this.opts.connectTimeoutMs ?? 10_000;
    let timer: NodeJS.Timeout | undefined;
    try {
      const found = await Promise.race([
        discover(ac.signal),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`discovery took longer than ${timeoutMs} ms`)), timeoutMs);
          ac.signal.addEventListener('abort', () => reject(ac.signal.reason), { once: true });
        }),
      ]);
      if (!Array.isArray(found) || found.some((u) => typeof u !== 'string')) throw new Error('discovery did not give a list of URLs');
      if (found.length === 0) {
        this.stats.discoveryFailures++;
        this.log.warn({ urls: this.urlList }, 'discovery found no server; keeping the previous list');
        return;
      }
      this.stats.discoveries++;
      if (found.join() !== this.urlList.join()) this.log.debug({ urls: found }, 'servers discovered');
      this.urlList = [...found];
    } catch (err) {
      if (gen !== this.generation) return; // stopped meanwhile: nothing to report
      this.stats.discoveryFailures++;
      this.log.warn({ err: (err as Error)?.message ?? String(err), urls: this.urlList }, 'discovery failed; keeping the previous list');
    } finally {
      clearTimeout(timer);
      ac.abort();
      if (this.discovery === ac) this.discovery = undefined;
    }
  }

  private scheduleReconnect(): void {
    if (!this.running) return;
    this.urlIndex++;
    const delay = Math.max(this.retryAfterMs, backoffMs(this.attempt++, this.opts.initialBackoffMs ?? 250, this.opts.maxBackoffMs ?? 30_000));
    this.retryAfterMs = 0;
    this.reconnectTimer = setTimeout(() => void this.connect(), delay);
  }

  /** Reconnects when the server sends nothing, not even a ping, for serverTimeoutMs. */
  private watchIdle(ws: WebSocket): void {
    const timeout = this.opts.serverTimeoutMs ?? 90_000;
    this.lastFrameAt = Date.now();
    clearInterval(this.idleTimer);
    this.idleTimer = setInterval(() => {
      if (Date.now() - this.lastFrameAt < timeout) return;
      this.log.warn({}, 'server silent for too long; reconnecting');
      ws.terminate();
    }, Math.max(10, timeout / 4));
    this.idleTimer.unref();
  }

  private setPos(seq: number): void {
    this.pos = seq;
    this.known = Math.max(this.known, seq);
  }

  private forgetPosition(): void {
    this.pos = undefined;
  }

  // ---- protocol --------------------------------------------------------------------------

  private onFrame(data: Buffer): void {
    this.stats.framesReceived++;
    this.stats.bytesReceived += data.length;
    this.handle(decodeServerFrame(data, this.itemHashes));
  }

  private handle({ msg, items }: DecodedFrame): void {
    switch (msg.t) {
      case 'compressed': {
        if (this.compression === 'none' || !(msg.data instanceof Uint8Array)) throw new ProtocolError(0, 'compressed frame without a negotiated algorithm or data');
        const inner = decodeServerFrame(decompressFrame(msg.data, this.compression, MAX_FRAME_BYTES), this.itemHashes);
        if (inner.msg.t === 'compressed') throw new ProtocolError(0, 'compressed frame inside a compressed frame');
        return this.handle(inner);
      }
      case 'welcome':
        // The epoch goes back in every hello: an odd one would make every later hello refused.
        if (typeof msg.epoch !== 'string' || msg.epoch.length === 0 || msg.epoch.length > 128) throw new ProtocolError(0, 'welcome.epoch is not a string of 1-128 characters');
        if (msg.epoch !== this.epoch) this.known = 0;
        this.epoch = msg.epoch;
        if (msg.mode === 'resume') this.stats.resumes++;
        else {
          if (msg.mode === 'digest') this.stats.digests++;
          else this.stats.snapshots++;
          this.forgetPosition();
        }
        this.compression = negotiate([String(msg.compression)]);
        this.ackEvery = typeof msg.window === 'number' && msg.window > 0 ? Math.max(1, Math.floor(msg.window / 4)) : undefined;
        this.log.info({ server: msg.serverId, mode: msg.mode, epoch: msg.epoch }, 'syncing');
        this.opts.onEvent?.({ t: 'welcome', url: this.url, serverId: String(msg.serverId), mode: String(msg.mode), chain: msg.chain });
        return;
      case 'snapshot':
      case 'repair': {
        // A repair replaces the buckets it names; a snapshot, everything.
        const seq = num(msg.seq, 'seq');
        const scope = msg.t === 'repair' && msg.i === 0 ? { buckets: num(msg.buckets, 'buckets'), differ: new Set(bucketsFromWire(bin(msg.differ, 'differ'))) } : undefined;
        if (msg.i === 0) this.cache.beginMark(scope);
        else if (!this.cache.marking) throw new ProtocolError(0, `${msg.t} chunk out of order`);
        this.known = Math.max(this.known, seq);
        const updates = this.applyItems(items ?? []);
        if (msg.last === true) {
          updates.push(...this.cache.sweep());
          this.setPos(seq);
        }
        this.report(updates);
        // The status may have come first (a server that held this client while it caught up):
        // with a position now, an in-sync status makes the client in sync.
        if (msg.last === true && this.status) this.onStatus(this.status);
        return;
      }
      case 'delta': {
        // The whole head is checked before any item is applied: a refused frame leaves nothing.
        const from = num(msg.from, 'from');
        const to = num(msg.to, 'to');
        // A gap (from > pos) is changes outside this view that the server skipped; going back is not.
        if (this.pos === undefined || from < this.pos || to < from) throw new ProtocolError(0, `delta ${from}..${to} does not follow position ${this.pos}`);
        const updates = this.applyItems(items ?? []);
        this.setPos(to);
        this.scheduleAck();
        return this.report(updates);
      }
      case 'status':
        if (msg.held) this.log.info({ held: msg.held }, 'server holds us until it has caught up with our cache');
        if (msg.rewound) {
          this.stats.rewinds++;
          this.log.warn({ rewound: msg.rewound }, 'the datastore is older than our cache (restored?): revisions may go back');
        }
        return this.onStatus(msg.status as SyncStatus);
      case 'checksum':
        return this.onChecksum(num(msg.seq, 'seq'), String(msg.value), num(msg.count, 'count'));
      case 'ping':
        this.ws?.send(encode({ t: 'pong', ts: Number(msg.ts) }));
        return;
      case 'goaway':
        this.log.info({ reason: msg.reason, retryAfterMs: msg.retryAfterMs }, 'server asked us to go away');
        // Obeyed up to the longest backoff (at least a second): a server's bad number must not
        // keep us away for days.
        this.retryAfterMs = Math.min(Math.max(0, Number(msg.retryAfterMs) || 0), Math.max(1000, this.opts.maxBackoffMs ?? 30_000));
        this.attempt = 0;
        if (Array.isArray(msg.peers)) {
          const peers = msg.peers.filter((p): p is string => typeof p === 'string' && /^wss?:\/\//.test(p));
          this.preferred = peers[Math.floor(Math.random() * peers.length)];
        }
        if (!this.cache.marking && this.pos !== undefined) {
          const r = msg.resume as { epoch?: unknown; seq?: unknown } | undefined;
          // The token goes back in the next hello: only a well-formed one is taken.
          if (r && r.epoch === this.epoch && typeof r.seq === 'number' && Number.isSafeInteger(r.seq) && r.seq >= this.pos) this.setPos(r.seq);
        }
        return;
      case 'error':
        this.log.warn({ code: msg.code, message: msg.message }, 'server reported a protocol error');
        return;
      default:
        // Unknown server messages are skipped (a newer server may add some), or left to the caller.
        if (this.opts.onEvent) this.opts.onEvent({ t: 'message', msg });
        else this.log.debug({ t: msg.t }, 'unknown message type ignored');
    }
  }

  private applyItems(items: readonly RawItem[]): Update[] {
    this.stats.itemsReceived += items.length;
    return this.cache.applyAll(items);
  }

  private report(updates: Update[]): void {
    if (updates.length && this.opts.onUpdates) this.opts.onUpdates(updates);
  }

  private onStatus(status: SyncStatus): void {
    if (status !== this.status) {
      this.status = status;
      this.opts.onStatus?.(status);
    }
    if (status !== 'in-sync') {
      this.synced = false;
    } else if (this.pos !== undefined) {
      const was = this.synced;
      this.synced = true;
      this.sendAck();
      for (const w of this.waiters.splice(0)) w();
      if (!was) this.opts.onEvent?.({ t: 'in-sync' });
    }
  }

  private onChecksum(seq: number, value: string, count: number): void {
    if (this.pos === undefined || seq < this.pos) throw new ProtocolError(0, `checksum at ${seq} behind position ${this.pos}`);
    // The server may have advanced over changes outside this view without a frame.
    this.setPos(seq);
    const mine = this.checksum();
    if (mine.value === value && mine.count === count) {
      this.stats.checksumsVerified++;
      // Backoff restarts only once a sync is proven good: a client that keeps disagreeing with
      // the server must not pull a full snapshot every initialBackoffMs.
      this.attempt = 0;
      return;
    }
    this.stats.checksumMismatches++;
    this.log.warn({ seq, server: { value, count }, local: mine }, 'view checksum mismatch; resyncing');
    this.forgetPosition();
    this.ws?.close(1000, 'checksum mismatch');
  }

  private scheduleAck(): void {
    if (this.ackTimer) return;
    this.ackTimer = setTimeout(() => { this.ackTimer = undefined; this.sendAck(); }, this.opts.ackIntervalMs ?? 1000);
    this.ackTimer.unref();
  }

  /** Acknowledges the position (when it moved) and, under flow control, the bytes processed. */
  private sendAck(bytesDue = false): void {
    if (this.ws?.readyState !== WebSocket.OPEN) return;
    if (!bytesDue && (this.pos === undefined || this.pos === this.acked)) return;
    // During a snapshot there is no position yet: seq 0 claims nothing.
    const seq = this.pos ?? 0;
    this.acked = seq;
    if (this.ackEvery === undefined) return this.ws.send(encode({ t: 'ack', seq }));
    this.bytesAcked = this.bytesIn;
    this.ws.send(encode({ t: 'ack', seq, bytes: this.bytesIn }));
  }
}

function bin(x: unknown, field: string): Uint8Array {
  if (!(x instanceof Uint8Array) || x.byteLength % 4 !== 0) throw new ProtocolError(0, `${field} is not a list of 4-byte bucket numbers`);
  return x;
}

function num(x: unknown, field: string): number {
  if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < 0) throw new ProtocolError(0, `${field} is not a non-negative integer`);
  return x;
}
