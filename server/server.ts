// The WebSocket server: accepts connections, hands each published batch to every streaming
// connection with one shared frame per view (and per node named in the batch), pings, and drains
// on shutdown.
import { createServer, type Server as HttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { randomBytes } from 'node:crypto';
import { WebSocketServer } from 'ws';
import type { ViewFilter } from '../src/model/view-filter.js';
import { MIRROR } from '../src/model/views.js';
import { SnapshotCache } from '../snapshot/snapshots.js';
import type { Batch, Store } from '../snapshot/store.js';
import { TransferCache } from '../snapshot/transfers.js';
import type { Logger } from '../src/logging.js';
import type { Metrics } from '../src/metrics.js';
import { encode } from '../src/protocol/codec.js';
import { CloseCode } from '../src/protocol/messages.js';
import { VERSION } from '../src/version.js';
import { BatchFrames } from './batch-frames.js';
import { Connection, type ServerContext } from './connection.js';
import { DEFAULT_SERVER_OPTIONS, type ServerOptions } from './context.js';
import { PublishTimes } from './publish-times.js';
import { RevisionProbe } from './revision-probe.js';
import { Watermark } from './mirror.js';
import { sharedFrame, type SharedFrame } from './shared-frame.js';
import { peerIdentities } from './tls.js';

/** Pending connections the listener asks the kernel to queue (capped at net.core.somaxconn). */
const LISTEN_BACKLOG = 65_535;

export class FanoutServer implements ServerContext {
  readonly opts: ServerOptions;
  readonly snapshots: SnapshotCache;
  readonly transfers: TransferCache;
  readonly serverId = `${process.env.HOSTNAME ?? 'calico-fanout'}-${randomBytes(3).toString('hex')}`;
  readonly serverVersion = VERSION;
  readonly connections = new Set<Connection>();
  /** Upgraded sockets until they are really gone (a closed Connection may still be flushing). */
  private readonly sockets = new Set<Socket>();

  private readonly http: HttpServer;
  private readonly wss: WebSocketServer;
  private readonly publishTimes = new PublishTimes();
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly unsubscribe: () => void;
  private nextId = 1;
  private draining = false;
  /** The connection limit now: the upper limit, or the fair share the rebalancer found. */
  maxConnections: number;
  /** Other replicas' client URLs, offered in goaways (set by the rebalancer when it knows them). */
  peers: string[] = [];
  readonly probe: RevisionProbe | undefined;
  /** When the ping round last ran: the server's own timers are turning (liveness). */
  lastTickAt = Date.now();
  /** This server's chain to the root, itself first (tiers: see setUpstreamChain). */
  chain: readonly string[] = [this.serverId];
  readonly watermark: Watermark;

  constructor(readonly store: Store, opts: Partial<ServerOptions>, readonly metrics: Metrics, readonly logger: Logger) {
    this.opts = { ...DEFAULT_SERVER_OPTIONS, ...opts };
    this.probe = this.opts.revisionSource && new RevisionProbe(this.opts.revisionSource);
    this.watermark = new Watermark(this.opts.rootTime);
    this.snapshots = new SnapshotCache(store, this.opts.chunkBytes, this.opts.snapshotReuseMs, metrics);
    this.transfers = new TransferCache(store, this.snapshots, this.opts.chunkBytes, this.opts.snapshotReuseMs, metrics);
    // Never permessage-deflate: it is per socket, so it would undo encode-once.
    this.wss = new WebSocketServer({ noServer: true, maxPayload: this.opts.maxInboundBytes, perMessageDeflate: false, clientTracking: false });
    this.maxConnections = this.opts.maxConnections;
    metrics.maxConnections.set(this.maxConnections);
    const notWebSocket = (_req: IncomingMessage, res: ServerResponse) => {
      res.writeHead(426, { 'content-type': 'text/plain', upgrade: 'websocket' });
      res.end('calico-fanout speaks WebSocket on this port (see PROTOCOL.md)\n');
    };
    // Before the upgrade a socket is the HTTP server's, whose defaults hold a silent or trickling
    // connection for 60-90 s, uncounted by the connection limit: the handshake timeout applies
    // from the first byte (ws clears the socket timeout when it takes the socket over).
    const t = this.opts.handshakeTimeoutMs;
    const httpOptions = { headersTimeout: t, requestTimeout: t, connectionsCheckingInterval: Math.min(1000, t) };
    const tls = this.opts.tls;
    if (tls) {
      // handshakeTimeout: a peer that never starts its TLS handshake (Node's default waits 120 s).
      const https = createHttpsServer({ ...tls.serverOptions(), ...httpOptions, handshakeTimeout: t }, notWebSocket);
      tls.attach(https);
      this.http = https;
    } else {
      this.http = createServer(httpOptions, notWebSocket);
    }
    this.http.timeout = t;
    this.http.on('upgrade', (req, socket: Socket, head) => {
      socket.on('error', () => socket.destroy());
      if (this.draining) {
        socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n');
        return;
      }
      this.wss.handleUpgrade(req, socket, head, (ws) => {
        this.sockets.add(socket);
        socket.once('close', () => this.sockets.delete(socket));
        const identities = socket instanceof TLSSocket ? peerIdentities(socket) : [];
        const conn = new Connection(this.nextId++, ws, socket, `${socket.remoteAddress}:${socket.remotePort}`, this, identities);
        this.connections.add(conn);
        this.metrics.connectionsAccepted.inc();
        this.metrics.connectionsActive.inc();
        // Admission: over the limit a client hears at once when to come back and where else to
        // go, rather than being served a snapshot and dropped later (Typha's way).
        if (this.connections.size > this.maxConnections) this.sendAway(conn, 'overload');
      });
    });
    this.http.on('clientError', (_err, socket) => socket.destroy());
    this.unsubscribe = store.subscribe({
      onBatch: (b) => this.onBatch(b),
      onStatus: () => { for (const c of this.connections) c.poke(); },
      // Only clients held for a newer store are waiting on it, and mirror clients hear of it.
      onProgress: () => {
        this.watermark.observe(store.maxRevision);
        for (const c of this.connections) if (c.awaitingSync || c.isMirror) c.poke();
      },
    });
  }

  async listen(): Promise<AddressInfo> {
    await new Promise<void>((resolve, reject) => {
      this.http.once('error', reject);
      // A reconnect storm of thousands of agents overflows Node's default queue of 511 pending
      // connections (each overflow costs the agent a SYN retry, a second or more); the kernel caps
      // this at net.core.somaxconn, as Go's listeners ask for.
      this.http.listen({ port: this.opts.port, host: this.opts.host, backlog: LISTEN_BACKLOG }, () => { this.http.off('error', reject); resolve(); });
    });
    this.timers.push(setInterval(() => this.pingAll(), this.opts.pingIntervalMs));
    this.timers.push(setInterval(() => { for (const c of this.connections) c.poke(true); }, this.opts.checksumIntervalMs));
    const addr = this.http.address() as AddressInfo;
    this.logger.info({ host: addr.address, port: addr.port }, 'serving clients');
    return addr;
  }

  get address(): AddressInfo { return this.http.address() as AddressInfo; }
  /** True from the start of a graceful stop: new connections are refused, readiness drops. */
  get isDraining(): boolean { return this.draining; }

  private onBatch(batch: Batch): void {
    this.publishTimes.record(batch.to, batch.at);
    this.watermark.observe(this.store.maxRevision);
    const frames = new BatchFrames(batch);
    const frameFor = (f: ViewFilter): SharedFrame | null => frames.frameFor(f);
    for (const c of this.connections) c.onBatch(batch, frameFor);
    if (frames.built) this.metrics.sharedFrames.inc(frames.built);
  }

  private pingAll(): void {
    const now = Date.now();
    this.lastTickAt = now;
    const ping = sharedFrame(encode({ t: 'ping', ts: now }));
    for (const c of this.connections) {
      if (!c.streaming) continue;
      if (now - c.lastPongAt > this.opts.pongTimeoutMs) c.goAway('pong-timeout', CloseCode.pongTimeout, 'no pong within the pong timeout');
      else c.sendShared(ping);
    }
  }

  /** A jittered retry-after, so that the clients sent away do not all come back at once. */
  retryAfterMs(): number {
    return Math.round(this.opts.overloadRetryMs * (0.5 + Math.random()));
  }

  /** Sends a client away (overload, rebalance) with a jittered retry-after and the other replicas. */
  sendAway(conn: Connection, reason: 'overload' | 'rebalance'): void {
    this.metrics.connectionsShed.labels(reason).inc();
    conn.goAway(reason, CloseCode.tryAgainLater, `${reason}: try another replica`, this.retryAfterMs(), this.peers);
  }

  /**
   * A server of a tier below: the chain its upstream gave (the upstream first, the root last). A
   * mirror client now on it would be following itself: it is sent away; the others hear the new chain.
   */
  setUpstreamChain(upstream: readonly string[]): void {
    // A reconnect to the same upstream says the same chain: nothing to tell anyone.
    if (upstream.length === this.chain.length - 1 && upstream.every((id, i) => id === this.chain[i + 1])) return;
    this.chain = [this.serverId, ...upstream];
    for (const c of [...this.connections]) {
      if (!c.isMirror) continue;
      const id = c.hello?.serverId;
      if (id !== undefined && this.chain.includes(id)) c.refuse('loop', `loop: server ${id} is now upstream of this server (chain to the root: ${this.chain.join(' → ')})`, CloseCode.loop);
      else c.poke();
    }
  }

  setMaxConnections(n: number): void {
    this.maxConnections = n;
    this.metrics.maxConnections.set(n);
  }

  /** When the batch that first reached `seq` was published; undefined when no longer remembered. */
  publishedAt(seq: number): number | undefined {
    return this.publishTimes.timeOf(seq);
  }

  observeAck(seq: number): void {
    const at = this.publishTimes.timeOf(seq);
    if (at !== undefined) this.metrics.clientLag.observe((Date.now() - at) / 1000);
  }

  onClosed(conn: Connection): void {
    if (this.connections.delete(conn)) this.metrics.connectionsActive.dec();
    // The mirror view's sums cost every change: kept only while a mirror client may ask for them.
    if (conn.isMirror && !this.anyMirror()) this.store.releaseChecksums(MIRROR);
  }

  private anyMirror(): boolean {
    for (const c of this.connections) if (c.isMirror) return true;
    return false;
  }

  /**
   * The first part of a graceful shutdown (SIGTERM): readiness drops and new connections are
   * refused at once, then the clients are sent away one by one, spread over `timeoutMs` (at most
   * one a second, as Typha does), so the other replicas take them over gradually and each
   * resyncs there by digest. Resolves when every client is gone or the time is up.
   */
  async drain(timeoutMs: number): Promise<void> {
    this.draining = true;
    this.http.close();
    const deadline = Date.now() + timeoutMs;
    while (this.connections.size > 0 && Date.now() < deadline) {
      // Caught-up clients first: they cost the other replicas only a digest repair.
      const all = [...this.connections];
      const next = all.find((c) => c.caughtUp) ?? all[0]!;
      this.metrics.connectionsShed.labels('shutdown').inc();
      next.goAway('shutdown', CloseCode.goingAway, 'server shutting down', this.opts.shutdownRetryAfterMs, this.peers);
      const interval = Math.min(1000, (0.9 * (deadline - Date.now())) / Math.max(1, this.connections.size));
      if (interval > 0) await new Promise((r) => setTimeout(r, interval));
    }
  }

  /**
   * Graceful stop: refuse new connections, send every client a goaway carrying its resume
   * position, close, and wait (bounded) for sockets to go.
   */
  async close(reason = 'shutdown', waitMs = 5000): Promise<void> {
    this.draining = true;
    for (const t of this.timers) clearInterval(t);
    this.unsubscribe();
    for (const c of [...this.connections]) c.goAway(reason, CloseCode.goingAway, 'server shutting down', this.opts.shutdownRetryAfterMs);
    const deadline = Date.now() + waitMs;
    while (this.sockets.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => {
      this.http.close(() => resolve());
      this.http.closeAllConnections();
    });
  }
}
