// One client connection: handshake → streaming → closed.
//
// A connection holds no queue of its own. Its state is a position in the store's sequence (`pos`:
// everything up to it has been written to the socket) plus, while a snapshot or catch-up is in
// flight, an iterator over frames still to write. When it is caught up it gets each new delta as
// the shared frame every client of its view gets. When its socket buffer passes the high-water
// mark it simply stops; once the socket drains it catches up from `pos` in one coalesced pass.
// So a slow client costs at most the high-water mark plus one frame, whatever the update rate.
// The socket buffer alone lets the kernel queue megabytes for a client that reads but cannot keep
// up (its CPU is busy), and that backlog is all stale. A client that asks for flow control
// acknowledges the bytes it has processed, and the same mark then bounds what is unacknowledged:
// such a client is never more than a window behind, and it catches up on the latest values.
import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';
import { ViewFilter } from '../src/model/view-filter.js';
import { snapshotFrames } from '../snapshot/snapshots.js';
import type { Batch } from '../snapshot/store.js';
import { checksumHex } from '../src/protocol/checksum.js';
import { denial } from '../src/authorization.js';
import { decodeClientMessage, encode, ProtocolError } from '../src/protocol/codec.js';
import { negotiate, type Compression } from '../src/protocol/compression.js';
import { digestFromWire } from '../src/protocol/digest.js';
import { CloseCode, PROTOCOL_VERSION, type ClientMessage, type ControlMessage, type Hello, type SyncMode, type SyncStatus } from '../src/protocol/messages.js';
import type { SnapshotCache } from '../snapshot/snapshots.js';
import type { Store } from '../snapshot/store.js';
import type { TransferCache } from '../snapshot/transfers.js';
import type { Logger } from '../src/logging.js';
import type { Metrics } from '../src/metrics.js';
import type { ServerOptions } from './context.js';
import type { RevisionProbe } from './revision-probe.js';
import { loopRefusal, MirrorTold, type Watermark } from './mirror.js';
import { MIRROR } from '../src/model/views.js';
import type { SharedFrame } from './shared-frame.js';

export type ConnectionState = 'handshake' | 'streaming' | 'closed';

/** How soon a failed read of the datastore's revision is tried again, within the hold. */
const PROBE_RETRY_MS = 1000;

/** A client held while this replica is older than its cache (see behind). */
interface Hold {
  readonly want: number;
  readonly timer: NodeJS.Timeout;
  retry?: NodeJS.Timeout;
  /** The datastore is behind the client too (restored from an older backup): serve as it is. */
  rewound?: boolean;
}

/** What every connection of one server shares (the server implements it). */
export interface ServerContext {
  readonly opts: ServerOptions;
  readonly store: Store;
  readonly snapshots: SnapshotCache;
  /** Catch-up and repair frames shared by clients needing the same ones. */
  readonly transfers: TransferCache;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly serverId: string;
  readonly serverVersion: string;
  /** Other replicas' client URLs, offered in goaways. */
  readonly peers: readonly string[];
  /** Asks the datastore where it stands (absent: a datastore that cannot tell). */
  readonly probe: RevisionProbe | undefined;
  /** This server's chain to the root, itself first (tiers); replaced, never changed in place. */
  readonly chain: readonly string[];
  /** How far the store has got in the root datastore's revisions (for mirror clients). */
  readonly watermark: Watermark;
  observeAck(seq: number): void;
  onClosed(conn: Connection): void;
}

export class Connection {
  state: ConnectionState = 'handshake';
  filter: ViewFilter | undefined;
  hello: Hello | undefined;
  /** How the client was brought in sync (welcome.mode); undefined until its hello. */
  mode: SyncMode | undefined;
  /** What its TLS client certificate proves (CN, then URI SANs); empty without mutual TLS. */
  readonly identities: readonly string[];
  /** Negotiated in the hello; applies to snapshot chunks and large repair frames. */
  private compression: Compression | 'none' = 'none';
  /** Position the client reaches once it has read everything written so far. */
  pos = 0;
  lastPongAt = Date.now();
  readonly connectedAt = Date.now();

  private frames: Iterator<Buffer> | undefined;
  /**
   * The sync owed to the client once the store is complete: a snapshot at least as new as
   * `minSeq`, or the repair of what differs from the client's cache digest.
   */
  private syncDue: { minSeq: number } | { digest: Uint32Array } | undefined;
  private framesEnd = 0;
  private sentStatus: SyncStatus | undefined;
  private checksumDue = true;
  private waitingDrain = false;
  /** Flow control (hello.flow): bytes written, and bytes the client says it has processed. */
  private bytesOut = 0;
  private bytesAcked = 0;
  private waitingAck = false;
  private timer: NodeJS.Timeout | undefined;
  private hold: Hold | undefined;
  /** Reads of the datastore's revision begun after this are fresh enough for this client. */
  private probeMark = 0;
  /** A mirror client (a server of a tier below): what it has been told of progress and chain. */
  private mirror: MirrorTold | undefined;

  constructor(
    readonly id: number,
    private readonly ws: WebSocket,
    private readonly socket: Socket,
    readonly remote: string,
    private readonly ctx: ServerContext,
    identities: readonly string[] = [],
  ) {
    this.identities = identities;
    this.timer = setTimeout(() => this.fail(CloseCode.handshakeTimeout, 'no hello within the handshake timeout'), ctx.opts.handshakeTimeoutMs);
    ws.on('message', (data, isBinary) => this.onMessage(data as Buffer, isBinary));
    ws.on('close', () => this.onClosed());
    ws.on('error', (err: Error & { code?: string }) => {
      // ws reports oversize and malformed WebSocket frames here, with the close code it sends.
      const code = err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' ? CloseCode.tooBig
        : err.code === 'WS_ERR_INVALID_UTF8' ? 1007 : err.code?.startsWith('WS_ERR_') ? 1002 : undefined;
      if (code !== undefined) ctx.metrics.badFrames.labels(String(code)).inc();
      ctx.logger.debug({ conn: this.id, err: err.message }, 'connection error');
      // The connection is over now, not when a silent peer lets ws's close handshake time out
      // (30 s of a slot counted against the connection limit).
      this.onClosed(code === CloseCode.tooBig ? 'too-big' : code !== undefined ? 'protocol-error' : 'socket-error');
      setTimeout(() => ws.terminate(), 2000).unref();
    });
  }

  get streaming(): boolean { return this.state === 'streaming'; }
  /** Streaming, nothing owed or in flight: it would resync anywhere by a small digest repair. */
  get caughtUp(): boolean {
    return this.state === 'streaming' && !this.frames && this.syncDue === undefined && this.pos === this.ctx.store.head;
  }

  /** Its snapshot or repair is still owed (held for a complete or newer store). */
  get awaitingSync(): boolean { return this.syncDue !== undefined; }

  /** Bytes written to this client so far. */
  get bytesSent(): number { return this.bytesOut; }
  /** Bytes written to this client and not yet taken by the kernel. */
  get bufferedAmount(): number { return this.ws.bufferedAmount; }

  // ---- inbound ---------------------------------------------------------------------------

  private onMessage(data: Buffer, isBinary: boolean): void {
    if (this.state === 'closed') return;
    let msg;
    try {
      if (!isBinary) throw new ProtocolError(CloseCode.malformed, 'text frames are not part of the protocol');
      msg = decodeClientMessage(data);
    } catch (err) {
      // Whatever a client sends costs it its connection, never the process.
      if (err instanceof ProtocolError) return this.fail(err.code, err.message);
      return this.fail(CloseCode.malformed, `undecodable message: ${(err as Error).message}`);
    }
    // What a message makes the server write leaves in one write (a welcome with the sync's frames).
    this.socket.cork();
    try {
      this.dispatch(msg);
    } catch (err) {
      // Nothing a client sends may throw out of the socket's handler: that would end the process.
      this.ctx.logger.error({ conn: this.id, err: (err as Error).message }, 'internal error handling a client message');
      this.fail(CloseCode.internal, 'internal error');
    } finally {
      this.socket.uncork();
    }
  }

  private dispatch(msg: ClientMessage): void {
    if (this.state === 'handshake') {
      if (msg.t !== 'hello') return this.fail(CloseCode.unexpectedMessage, `expected hello, got ${msg.t}`);
      return this.onHello(msg);
    }
    switch (msg.t) {
      case 'hello':
        return this.fail(CloseCode.unexpectedMessage, 'hello sent twice');
      case 'pong':
        this.lastPongAt = Date.now();
        if (msg.ts <= this.lastPongAt) this.ctx.metrics.pingRtt.observe((this.lastPongAt - msg.ts) / 1000);
        return;
      case 'ack':
        if (msg.bytes !== undefined) this.onAckedBytes(msg.bytes);
        return this.ctx.observeAck(msg.seq);
    }
  }

  /** The identity shown for this client: the one its certificate proves first. */
  get identity(): string | undefined { return this.identities[0]; }

  private onHello(hello: Hello): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const { store, metrics, opts } = this.ctx;
    // Identity and authorization are checked here rather than at the TLS handshake so that the
    // client hears why (an error frame) instead of a bare reset.
    const required = opts.requiredIdentity;
    if (required.length && !this.identities.some((id) => required.some((p) => p.test(id)))) {
      return this.deny('identity', `certificate identity ${this.identities.join(', ') || '(none)'} is not one this server accepts`);
    }
    const denied = denial(opts.authorization, this.identities, hello.syncer, hello.node, opts.openMirror);
    if (denied) return this.deny(hello.syncer === MIRROR ? 'mirror' : 'authorization', denied);
    const loop = hello.syncer === MIRROR ? loopRefusal(hello.serverId, this.ctx.chain) : undefined;
    if (loop) return this.refuse('loop', loop, CloseCode.loop);
    this.hello = hello;
    this.probeMark = this.ctx.probe?.mark ?? 0;
    this.filter = new ViewFilter(hello.syncer, hello.node);
    this.compression = negotiate(hello.compression);
    const r = hello.resume;
    const canResume = r !== undefined && r.epoch === store.epoch && store.canCatchUp(r.seq);
    // Cheapest first: catch-up from a known position, else the difference from the client's
    // cache (any replica, any epoch), else everything.
    const mode: SyncMode = canResume ? 'resume' : hello.digest ? 'digest' : 'snapshot';
    this.send({
      t: 'welcome', v: PROTOCOL_VERSION, serverId: this.ctx.serverId, serverVersion: this.ctx.serverVersion,
      epoch: store.epoch, syncer: hello.syncer, node: this.filter.node, mode, compression: this.compression,
      ...(hello.flow ? { window: this.ctx.opts.highWaterMark } : {}),
      ...(hello.syncer === MIRROR ? { chain: [...this.ctx.chain] } : {}),
    });
    if (hello.syncer === MIRROR) this.mirror = new MirrorTold(this.ctx.chain);
    this.mode = mode;
    metrics.resyncs.labels(mode).inc();
    metrics.connectionsStreaming.labels(hello.syncer).inc();
    this.state = 'streaming';
    this.ctx.logger.info({ conn: this.id, remote: this.remote, syncer: hello.syncer, node: hello.node, client: hello.clientName, mode, from: r?.seq }, 'client syncing');
    if (canResume) this.pos = r.seq;
    else if (hello.digest) this.syncDue = { digest: digestFromWire(hello.digest.hashes) };
    else this.syncDue = { minSeq: Math.max(...[r, hello.known].map((t) => (t?.epoch === store.epoch ? t.seq : 0))) };
    this.pump();
  }

  // ---- outbound --------------------------------------------------------------------------

  /** A batch was published: the fast path writes the view's shared frame. */
  onBatch(batch: Batch, frameFor: (f: ViewFilter) => SharedFrame | null): void {
    if (this.state !== 'streaming') return;
    if (!this.frames && this.syncDue === undefined && !this.waitingDrain && !this.waitingAck && this.pos === batch.from && !this.full) {
      const frame = frameFor(this.filter!);
      if (frame) this.sendShared(frame);
      this.pos = batch.to;
      this.sendProgress();
      return;
    }
    this.pump();
  }

  /** Status changed, or a checksum is due: delivered once the client is caught up. */
  poke(checksumDue = false): void {
    if (checksumDue) this.checksumDue = true;
    this.pump();
  }

  private startSnapshot(minSeq: number): void {
    const snap = this.ctx.snapshots.get(this.filter!, minSeq);
    this.sendFrames(snapshotFrames(snap, this.compression), snap.seq);
  }

  /** Digest resync: the buckets the client has wrong (TransferCache.repair). */
  private startRepair(digest: Uint32Array): void {
    const { frames, end, differing } = this.ctx.transfers.repair(this.filter!, digest, this.compression);
    this.ctx.metrics.repairBuckets.observe(differing / (digest.length / 2));
    this.sendFrames(frames[Symbol.iterator](), end);
  }

  private sendFrames(frames: Iterator<Buffer>, end: number): void {
    this.frames = frames;
    this.framesEnd = end;
    // The status follows the sync too, whatever was said while the client was held.
    this.sentStatus = undefined;
  }

  /** Writes what is owed; one pass goes out as one write (a snapshot's chunks, status, checksum), not one per frame. */
  private pump(): void {
    this.socket.cork();
    try {
      this.pumpCorked();
    } finally {
      this.socket.uncork();
    }
  }

  private pumpCorked(): void {
    const { store, opts } = this.ctx;
    while (this.state === 'streaming' && !this.waitingDrain && !this.waitingAck) {
      if (this.ws.bufferedAmount >= opts.highWaterMark) return this.waitForDrain();
      if (this.unacked >= opts.highWaterMark) return this.waitForAck();
      if (this.syncDue !== undefined) {
        // Until then the client hears the status (it keeps its cache) and pings.
        if (!store.complete) return this.sendStatus();
        if (this.behind()) return;
        if ('digest' in this.syncDue) this.startRepair(this.syncDue.digest);
        else this.startSnapshot(this.syncDue.minSeq);
        this.syncDue = undefined;
      }
      if (this.frames) {
        const next = this.frames.next();
        if (!next.done) { this.write(next.value); continue; }
        this.frames = undefined;
        this.pos = this.framesEnd;
      }
      if (this.pos < store.head) {
        const catchUp = this.ctx.transfers.catchUp(this.filter!, this.pos);
        if (!catchUp) { this.startSnapshot(this.pos); continue; } // history no longer reaches back to pos
        this.frames = catchUp.frames[Symbol.iterator]();
        this.framesEnd = catchUp.end;
        continue;
      }
      this.sendStatus();
      if (this.checksumDue) {
        this.checksumDue = false;
        const c = store.checksum(this.filter!);
        this.send({ t: 'checksum', seq: this.pos, value: checksumHex(c.value), count: c.count });
      }
      this.sendProgress();
      return;
    }
  }

  /**
   * True while this replica is older than the client's cache: a repair or snapshot from it now
   * would take keys back in time. The datastore says which it is. Ahead of the client: this
   * replica lags, and holds the client until it has caught up, or sends it to another replica
   * after the hold timeout. Behind the client too (restored from an older backup, whose
   * revisions never come again): the client is told so and served the datastore as it is.
   * A datastore that does not answer leaves the client held, then sent away: never served stale.
   */
  private behind(): boolean {
    const want = Number(this.hello?.revision ?? 0);
    if (!(want > this.ctx.store.maxRevision)) {
      this.endHold('caught-up');
      return false;
    }
    if (this.hold?.rewound) {
      this.endHold('rewound');
      return false;
    }
    if (!this.hold) this.startHold(want);
    return true;
  }

  private startHold(want: number): void {
    const { store, metrics, opts, logger } = this.ctx;
    const hold: Hold = {
      want,
      timer: setTimeout(() => {
        this.endHold('sent-away');
        this.goAway('behind', CloseCode.tryAgainLater, `this replica has not reached revision ${want} within the hold timeout`, 0, this.ctx.peers);
      }, opts.holdTimeoutMs),
    };
    this.hold = hold;
    metrics.clientsHeld.inc();
    logger.debug({ conn: this.id, revision: want, replica: store.maxRevision }, 'client cache newer than this replica: held until it catches up');
    this.sentStatus = store.status;
    this.send({ t: 'status', status: store.status, held: { revision: String(want), replica: String(store.maxRevision) } });
    this.askDatastore(hold);
  }

  private askDatastore(hold: Hold): void {
    const { probe, store, metrics, logger } = this.ctx;
    // Without a way to ask, the client is held for the hold timeout and then sent away.
    if (!probe) return;
    probe.read(this.probeMark).then((datastore) => {
      if (this.hold !== hold) return;
      if (datastore >= hold.want) return probe.catchUpTo(hold.want);
      hold.rewound = true;
      metrics.rewoundClients.inc();
      logger.warn({ conn: this.id, revision: hold.want, datastore, replica: store.maxRevision }, 'client cache newer than the datastore itself (restored to an older revision?): serving the datastore as it is');
      this.send({ t: 'status', status: store.status, rewound: { revision: String(hold.want), datastore: String(datastore) } });
      this.pump();
    }, (err: Error) => {
      if (this.hold !== hold) return;
      logger.debug({ conn: this.id, err: err.message }, 'cannot read the datastore revision; asking again');
      hold.retry = setTimeout(() => this.askDatastore(hold), PROBE_RETRY_MS);
    });
  }

  private endHold(outcome: 'caught-up' | 'sent-away' | 'rewound' | 'closed'): void {
    const hold = this.hold;
    if (!hold) return;
    this.hold = undefined;
    clearTimeout(hold.timer);
    clearTimeout(hold.retry);
    this.ctx.metrics.clientsHeld.dec();
    this.ctx.metrics.holds.labels(outcome).inc();
  }

  /** A caught-up mirror client hears how far the root's revisions have reached it, and the chain. */
  private sendProgress(): void {
    const due = this.mirror?.due(this.ctx.watermark, this.ctx.chain);
    if (due) this.send(due);
  }

  /** A client of the mirror view (a server of a tier below). */
  get isMirror(): boolean { return this.mirror !== undefined; }

  private sendStatus(): void {
    const { status } = this.ctx.store;
    if (this.sentStatus === status) return;
    this.sentStatus = status;
    this.send({ t: 'status', status });
  }

  /** Unacknowledged bytes of a flow-controlled client (0 for others: they do not acknowledge). */
  private get unacked(): number {
    return this.hello?.flow ? this.bytesOut - this.bytesAcked : 0;
  }

  /** Whether a new frame must wait: the socket buffer, or the flow window, is at the mark. */
  private get full(): boolean {
    const mark = this.ctx.opts.highWaterMark;
    return this.ws.bufferedAmount >= mark || this.unacked >= mark;
  }

  private waitForDrain(): void {
    this.waitingDrain = true;
    this.ctx.metrics.backpressured.inc();
    const onDrain = () => {
      this.waitingDrain = false;
      this.endWait();
    };
    this.socket.once('drain', onDrain);
    this.startStallTimer(() => { this.socket.off('drain', onDrain); this.waitingDrain = false; });
  }

  private waitForAck(): void {
    this.waitingAck = true;
    this.ctx.metrics.backpressured.inc();
    this.startStallTimer(() => { this.waitingAck = false; });
  }

  private onAckedBytes(bytes: number): void {
    // A client cannot have processed more than was sent: a larger claim counts as everything.
    this.bytesAcked = Math.max(this.bytesAcked, Math.min(bytes, this.bytesOut));
    if (this.waitingAck && this.unacked < this.ctx.opts.highWaterMark) {
      this.waitingAck = false;
      this.endWait();
    }
  }

  /** A client that makes no progress for the stall timeout is let go. */
  private startStallTimer(giveUp: () => void): void {
    this.timer = setTimeout(() => {
      giveUp();
      this.ctx.metrics.backpressured.dec();
      this.goAway('stalled', CloseCode.stalled, 'no progress within the stall timeout');
    }, this.ctx.opts.stallTimeoutMs);
  }

  private endWait(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.ctx.metrics.backpressured.dec();
    this.pump();
  }

  private write(frame: Buffer): void {
    this.bytesOut += frame.length;
    this.ws.send(frame);
    this.ctx.metrics.sent(frame.length);
  }

  send(msg: ControlMessage): void {
    this.write(encode(msg));
  }

  /** Writes a frame encoded and framed once for many connections (deltas, pings) as it is. */
  sendShared(frame: SharedFrame): void {
    // As ws.send: nothing goes out once a close frame has (ws's own state, not this connection's).
    if (this.state !== 'streaming' || this.ws.readyState !== this.ws.OPEN) return;
    this.bytesOut += frame.payload.length;
    this.socket.write(frame.wire);
    this.ctx.metrics.sent(frame.payload.length);
  }

  // ---- closing ---------------------------------------------------------------------------

  private deny(reason: 'identity' | 'authorization' | 'mirror', message: string): void {
    this.refuse(reason, `forbidden: ${message}`, CloseCode.forbidden);
  }

  /** Refused for who it is (identity, view, a loop of servers): counted as a denial, then the error and close. */
  refuse(reason: 'identity' | 'authorization' | 'mirror' | 'loop', message: string, code: number): void {
    this.ctx.metrics.connectionsDenied.labels(reason).inc();
    this.fail(code, message);
  }

  /** Protocol violation: an error frame naming it, then close. */
  fail(code: number, message: string): void {
    if (this.state === 'closed') return;
    this.ctx.metrics.badFrames.labels(String(code)).inc();
    this.ctx.logger.warn({ conn: this.id, remote: this.remote, code, problem: message }, 'closing connection on protocol error');
    this.send({ t: 'error', code, message });
    this.close(code, 'protocol-error', message);
  }

  /** Closing on purpose: tell the client when to come back and where it was. */
  goAway(reason: string, code: number, message: string, retryAfterMs = 0, peers?: readonly string[]): void {
    if (this.state === 'closed') return;
    this.send({ t: 'goaway', reason, retryAfterMs, resume: { epoch: this.ctx.store.epoch, seq: this.pos }, ...(peers?.length ? { peers } : {}) });
    this.close(code, reason, message);
  }

  private close(code: number, reason: string, message: string): void {
    if (this.state === 'closed') return;
    this.onClosed(reason);
    // Close reasons are limited to 123 bytes on the wire.
    this.ws.close(code, Buffer.from(message).subarray(0, 120).toString());
    // A peer that does not answer the close handshake is not waited for.
    setTimeout(() => this.ws.terminate(), 2000).unref();
  }

  private onClosed(reason = 'client-closed'): void {
    if (this.state === 'closed') return;
    if (this.state === 'streaming') this.ctx.metrics.connectionsStreaming.labels(this.hello!.syncer).dec();
    if (this.waitingDrain || this.waitingAck) this.ctx.metrics.backpressured.dec();
    this.state = 'closed';
    clearTimeout(this.timer);
    this.endHold('closed');
    this.ctx.metrics.connectionsClosed.labels(reason).inc();
    this.ctx.onClosed(this);
  }
}
