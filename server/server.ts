// The WebSocket server: accepts connections, hands each published batch to every streaming
// connection with one shared frame per view, pings, and drains on shutdown.
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { WebSocketServer } from 'ws';
import type { ViewFilter } from '../dedupe/view-filter.js';
import { SnapshotCache } from '../snapshot/snapshots.js';
import type { Batch, Store } from '../snapshot/store.js';
import type { Logger } from '../src/logging.js';
import type { Metrics } from '../src/metrics.js';
import { encode } from '../src/protocol/codec.js';
import { itemsFrame } from '../src/protocol/frames.js';
import { CloseCode } from '../src/protocol/messages.js';
import { VERSION } from '../src/version.js';
import { Connection } from './connection.js';
import { DEFAULT_SERVER_OPTIONS, type ServerContext, type ServerOptions } from './context.js';
import { PublishTimes } from './publish-times.js';

export class FanoutServer implements ServerContext {
  readonly opts: ServerOptions;
  readonly snapshots: SnapshotCache;
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

  constructor(readonly store: Store, opts: Partial<ServerOptions>, readonly metrics: Metrics, readonly logger: Logger) {
    this.opts = { ...DEFAULT_SERVER_OPTIONS, ...opts };
    this.snapshots = new SnapshotCache(store, this.opts.chunkBytes, this.opts.snapshotReuseMs, metrics);
    // Never permessage-deflate: it is per socket, so it would undo encode-once.
    this.wss = new WebSocketServer({ noServer: true, maxPayload: this.opts.maxInboundBytes, perMessageDeflate: false, clientTracking: false });
    this.http = createServer((_req, res) => {
      res.writeHead(426, { 'content-type': 'text/plain', upgrade: 'websocket' });
      res.end('calico-fanout speaks WebSocket on this port (see PROTOCOL.md)\n');
    });
    this.http.on('upgrade', (req, socket: Socket, head) => {
      socket.on('error', () => socket.destroy());
      if (this.draining) {
        socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n');
        return;
      }
      this.wss.handleUpgrade(req, socket, head, (ws) => {
        this.sockets.add(socket);
        socket.once('close', () => this.sockets.delete(socket));
        const conn = new Connection(this.nextId++, ws, socket, `${socket.remoteAddress}:${socket.remotePort}`, this);
        this.connections.add(conn);
        this.metrics.connectionsAccepted.inc();
        this.metrics.connectionsActive.inc();
      });
    });
    this.http.on('clientError', (_err, socket) => socket.destroy());
    this.unsubscribe = store.subscribe({
      onBatch: (b) => this.onBatch(b),
      onStatus: () => { for (const c of this.connections) c.poke(); },
    });
  }

  async listen(): Promise<AddressInfo> {
    await new Promise<void>((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(this.opts.port, this.opts.host, () => { this.http.off('error', reject); resolve(); });
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
    // One frame per view key per batch, built on first use and shared by every caught-up client.
    const frames = new Map<string, Buffer | null>();
    const frameFor = (f: ViewFilter): Buffer | null => {
      let frame = frames.get(f.key);
      if (frame !== undefined) return frame;
      const items: Buffer[] = [];
      for (const c of batch.changes) if (f.matches(c.kind, c.node)) items.push(c.item);
      frame = items.length ? itemsFrame({ t: 'delta', from: batch.from, to: batch.to }, items) : null;
      if (frame) this.metrics.sharedFrames.inc();
      frames.set(f.key, frame);
      return frame;
    };
    for (const c of this.connections) c.onBatch(batch, frameFor);
  }

  private pingAll(): void {
    const now = Date.now();
    const ping = encode({ t: 'ping', ts: now });
    for (const c of this.connections) {
      if (!c.streaming) continue;
      if (now - c.lastPongAt > this.opts.pongTimeoutMs) c.goAway('pong-timeout', CloseCode.pongTimeout, 'no pong within the pong timeout');
      else c.sendShared(ping);
    }
  }

  observeAck(seq: number): void {
    const at = this.publishTimes.timeOf(seq);
    if (at !== undefined) this.metrics.clientLag.observe((Date.now() - at) / 1000);
  }

  onClosed(conn: Connection): void {
    if (this.connections.delete(conn)) this.metrics.connectionsActive.dec();
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
