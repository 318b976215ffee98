// The upstream datastore (tiers, README "Tiers"): another calico-fanout's mirror view, read with
// the client library agents embed, so it resumes, resyncs by digest, verifies checksums and
// follows goaways and rebalancing as any agent does. Values and revisions pass through as the
// upstream serves them: each key keeps the root datastore's revision at every tier, so an agent's
// cache digest means the same to every server of the tree. Its own module: only a server of a
// tier below loads it.
import { SyncClient, type ClientEvent, type Update } from '../client/index.js';
import type { Config } from '../src/config.js';
import type { Datastore, DatastoreEvent, DatastoreSink, Upstream, UpstreamStatus } from '../src/datastore/datastore.js';
import { kubernetesEndpoints } from '../src/discovery.js';
import { RateLimitedLog, type Logger } from '../src/logging.js';
import { MIRROR } from '../src/model/views.js';
import type { ClientTlsOptions } from '../client/tls.js';

export interface UpstreamOptions {
  /** The upstream replicas' client URLs (rotated on reconnect). */
  urls: string[];
  /** Where the upstream replicas are now (their Service's EndpointSlices), instead of or before `urls`. */
  discover?: (signal?: AbortSignal) => Promise<string[]>;
  tls?: ClientTlsOptions;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** Reconnect when the upstream sends nothing, not even a ping, this long. */
  serverTimeoutMs?: number;
  logger: Logger;
}

const isChain = (x: unknown): x is string[] => Array.isArray(x) && x.every((s) => typeof s === 'string');

export class UpstreamDatastore implements Datastore, Upstream {
  readonly name = 'upstream';
  lastError: string | undefined;
  readonly upstream: Upstream = this;
  private client: SyncClient | undefined;
  private sink: DatastoreSink | undefined;
  private serverId: string | undefined;
  private onChain: (chain: readonly string[]) => void = () => {};
  private url: string | null = null;
  private upstreamId: string | null = null;
  private chain: string[] = [];
  private connected = false;
  private inSync = false;
  /** Between a snapshot or digest welcome and in-sync: the deletions heard may be sweeps. */
  private resyncing = false;
  /** The last progress the upstream sent: the root's revision, and when the root server reached it. */
  private progress: { revision: number; at: number; heardAt: number } | undefined;

  private readonly warn: RateLimitedLog;

  constructor(private readonly opts: UpstreamOptions) {
    this.warn = new RateLimitedLog(opts.logger);
  }

  bind(serverId: string, onChain: (chain: readonly string[]) => void): void {
    this.serverId = serverId;
    this.onChain = onChain;
  }

  async start(sink: DatastoreSink): Promise<void> {
    this.sink = sink;
    sink.onStatus('resync-in-progress');
    // Only the upstream's progress says how far the root's revisions have reached this store: a
    // snapshot's newest revision does not (the upstream may have published it ahead of older ones).
    sink.onProgress?.('0');
    const { opts } = this;
    this.client = new SyncClient({
      urls: opts.urls, discover: opts.discover, tls: opts.tls,
      syncerType: MIRROR, serverId: this.serverId, clientName: 'calico-fanout-upstream',
      // The store below keeps the values; the library keeps only what digests and checksums need.
      keepValues: false,
      initialBackoffMs: opts.initialBackoffMs, maxBackoffMs: opts.maxBackoffMs, serverTimeoutMs: opts.serverTimeoutMs,
      onUpdates: (us) => sink.onUpdates(us.map((u) => this.event(u))),
      // In sync again is an event of its own (the status may not change across a reconnect).
      onStatus: (s) => { if (s !== 'in-sync') sink.onStatus(s); },
      onEvent: (e) => this.onEvent(e),
      logger: opts.logger,
    });
    this.client.start();
  }

  async stop(): Promise<void> {
    this.sink = undefined;
    await this.client?.stop();
  }

  status(): UpstreamStatus {
    const p = this.progress;
    return {
      url: this.url, serverId: this.upstreamId, chain: [...this.chain], connected: this.connected, inSync: this.inSync,
      revision: String(p?.revision ?? 0), lagMs: p ? Math.max(0, p.heardAt - p.at) : null,
      lastProgressAt: p ? new Date(p.heardAt).toISOString() : null,
    };
  }

  rootTime(revision: number): number | undefined {
    return this.progress?.revision === revision ? this.progress.at : undefined;
  }

  private onEvent(e: ClientEvent): void {
    const sink = this.sink;
    if (!sink) return;
    switch (e.t) {
      case 'welcome':
        this.resyncing = e.mode !== 'resume';
        this.url = e.url;
        this.upstreamId = e.serverId;
        this.connected = true;
        this.lastError = undefined;
        if (isChain(e.chain)) this.setChain(e.chain);
        return;
      case 'in-sync':
        this.inSync = true;
        this.resyncing = false;
        sink.onStatus('in-sync');
        return;
      case 'disconnected':
        this.connected = false;
        this.inSync = false;
        this.lastError = `upstream ${e.url} closed the connection (${e.code}${e.reason ? `: ${e.reason}` : ''})`;
        // Served as it is until an upstream replica takes over, as during a datastore outage.
        sink.onStatus('wait-for-datastore');
        return;
      case 'message': {
        const m = e.msg;
        if (m.t !== 'progress') return;
        if (isChain(m.chain)) this.setChain(m.chain);
        const revision = Number(m.revision);
        if (typeof m.revision !== 'string' || !/^[0-9]{1,20}$/.test(m.revision) || !Number.isSafeInteger(revision)) {
          this.warn.warn('bad-progress', { url: this.url, revision: String(m.revision).slice(0, 40) }, 'upstream progress without a decimal revision; ignored');
          return;
        }
        this.progress = { revision, at: typeof m.at === 'number' && Number.isFinite(m.at) ? m.at : Date.now(), heardAt: Date.now() };
        // Everything before it has been applied (frames are handled in order): a consistent point.
        sink.onProgress?.(m.revision);
      }
    }
  }

  private setChain(chain: string[]): void {
    this.chain = chain;
    this.onChain(chain);
  }

  /** An update of the mirror view as a datastore event: the canonical bytes and revision as served. */
  private event(u: Update): DatastoreEvent {
    if (u.bytes) return { key: u.key, value: u.value, revision: u.revision, canonical: u.bytes };
    // A key swept at the end of a resync went at an unknown revision after the one it had (the
    // upstream no longer remembered the deletion). It is published at no less than this server's
    // watermark: its clients hold nothing newer, or it would have held them.
    const watermark = this.progress?.revision ?? 0;
    const revision = this.resyncing && Number(u.revision) < watermark ? String(watermark) : u.revision;
    return { key: u.key, value: null, revision };
  }
}

/** The upstream datastore as the settings configure it. */
export function upstreamDatastore(config: Config, logger: Logger): UpstreamDatastore {
  const tlsSet = config.upstreamServerCN || config.upstreamServerURISAN;
  const tls: ClientTlsOptions | undefined = tlsSet ? {
    caFile: config.upstreamCAFile || undefined, certFile: config.upstreamCertFile || undefined, keyFile: config.upstreamKeyFile || undefined,
    serverCN: config.upstreamServerCN || undefined, serverURISAN: config.upstreamServerURISAN || undefined,
  } : undefined;
  const discover = config.upstreamK8sServiceName ? kubernetesEndpoints({
    namespace: config.upstreamK8sNamespace, service: config.upstreamK8sServiceName, portName: config.k8sPortName,
    kubeconfig: config.kubeconfig || undefined, scheme: tls ? 'wss' : 'ws',
  }) : undefined;
  return new UpstreamDatastore({
    urls: config.upstreamUrls, discover, tls,
    initialBackoffMs: 100, maxBackoffMs: 10_000,
    // The upstream pings every TYPHA_SERVERPINGINTERVALSECS (10 s by default): three missed is gone.
    serverTimeoutMs: Math.max(3 * config.serverPingIntervalSecs * 1000, 1000),
    logger: logger.child({ stage: 'upstream' }),
  });
}
