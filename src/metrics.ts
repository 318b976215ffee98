// Every metric the server exports, on a registry of its own (no global state: tests run several
// servers in one process). Typha's names are kept where the meaning matches;
// everything Typha has no word for is calico_fanout_*. Per-client labels are never used.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { VIEW_NAMES } from './model/views.js';
import type { SyncMode, SyncStatus } from './protocol/messages.js';

const syncer = ['syncer'] as const;

export class Metrics {
  readonly registry = new Registry();
  private readonly r = [this.registry];

  readonly connectionsAccepted = new Counter({ name: 'typha_connections_accepted', help: 'Connections accepted.', registers: this.r });
  readonly connectionsActive = new Gauge({ name: 'typha_connections_active', help: 'Open connections, including those in the handshake.', registers: this.r });
  readonly connectionsStreaming = new Gauge({ name: 'typha_connections_streaming', help: 'Connections past the handshake.', labelNames: syncer, registers: this.r });
  readonly connectionsClosed = new Counter({ name: 'calico_fanout_connections_closed_total', help: 'Connections closed, by reason.', labelNames: ['reason'] as const, registers: this.r });
  readonly connectionsDenied = new Counter({ name: 'calico_fanout_connections_denied_total', help: 'Connections refused after TLS: identity (certificate CN/URI SAN) or authorization (view not allowed), by reason.', labelNames: ['reason'] as const, registers: this.r });
  readonly connectionsShed = new Counter({ name: 'calico_fanout_connections_shed_total', help: 'Clients sent away with goaway: overload (over the connection limit at connect), rebalance (over the fair share), shutdown.', labelNames: ['reason'] as const, registers: this.r });
  readonly maxConnections = new Gauge({ name: 'typha_connections_max', help: 'The current connection limit (fair share or upper limit).', registers: this.r });
  readonly tlsReloads = new Counter({ name: 'calico_fanout_tls_reloads_total', help: 'Certificate reloads after a file changed, by result.', labelNames: ['result'] as const, registers: this.r });
  readonly badFrames = new Counter({ name: 'calico_fanout_bad_frames_total', help: 'Frames from clients rejected as protocol violations, by close code.', labelNames: ['code'] as const, registers: this.r });

  readonly updatesReceived = new Counter({ name: 'calico_fanout_datastore_updates_total', help: 'Updates received from the datastore (and, once at start, Calico\'s built-in default-allow profile).', registers: this.r });
  readonly updatesCoalesced = new Counter({ name: 'calico_fanout_updates_coalesced_total', help: 'Updates replaced by a later update of the same key within one batching window.', registers: this.r });
  readonly updatesTotal = new Counter({ name: 'typha_updates_total', help: 'Updates entering the store, per view that carries their kind.', labelNames: syncer, registers: this.r });
  readonly updatesSkipped = new Counter({ name: 'typha_updates_skipped', help: 'Updates dropped because they changed nothing, per view.', labelNames: syncer, registers: this.r });
  readonly updatesPublished = new Counter({ name: 'calico_fanout_updates_published_total', help: 'Changes published, per view.', labelNames: syncer, registers: this.r });
  readonly invalidValues = new Counter({ name: 'calico_fanout_invalid_values_total', help: 'Datastore values dropped because their shape does not fit their key.', labelNames: ['kind'] as const, registers: this.r });
  readonly ignoredKeys = new Counter({ name: 'calico_fanout_ignored_keys_total', help: 'Datastore keys outside Calico\'s layout.', registers: this.r });
  private missingSource: () => readonly string[] = () => [];
  readonly missingCollections = new Gauge({
    name: 'calico_fanout_datastore_missing_collections', help: 'Datastore collections that are not there (a CRD not installed), served as empty and polled: 1 per collection.',
    labelNames: ['collection'] as const, registers: this.r,
    collect: () => {
      this.missingCollections.reset();
      for (const c of this.missingSource()) this.missingCollections.labels(c).set(1);
    },
  });
  // One series per status, 1 for the current one: a dashboard can show it and alert on it without
  // reaching the health port.
  readonly datastoreStatus = new Gauge({ name: 'calico_fanout_datastore_status', help: 'The datastore\'s sync status: 1 for the current one (wait-for-datastore, resync-in-progress, in-sync), 0 for the others.', labelNames: ['status'] as const, registers: this.r });
  readonly unservedUpdates = new Counter({ name: 'calico_fanout_unserved_updates_total', help: 'Updates of keys Calico writes that no view carries (IPAM handles, Felix status reports, …), by kind: dropped.', labelNames: ['kind'] as const, registers: this.r });

  readonly cacheSize = new Gauge({ name: 'typha_cache_size', help: 'Live keys in each view (node-scoped kinds counted for all nodes).', labelNames: syncer, registers: this.r });
  readonly headSeq = new Gauge({ name: 'typha_breadcrumb_seq_number', help: 'Sequence number of the latest published change.', registers: this.r });
  readonly historyBytes = new Gauge({ name: 'calico_fanout_history_bytes', help: 'Bytes held for catch-up beyond the live state (deletion tombstones).', registers: this.r });
  readonly historyFloor = new Gauge({ name: 'calico_fanout_history_floor_seq', help: 'Oldest position a client can resume from without a snapshot.', registers: this.r });
  readonly snapshotsGenerated = new Counter({ name: 'typha_snapshots_generated', help: 'Pre-encoded snapshots built.', labelNames: syncer, registers: this.r });
  readonly snapshotsReused = new Counter({ name: 'typha_snapshots_reused', help: 'Snapshot sends served from an already built snapshot.', labelNames: syncer, registers: this.r });
  readonly snapshotBytes = new Gauge({ name: 'typha_snapshot_raw_bytes', help: 'Size of the last snapshot built for each view.', labelNames: syncer, registers: this.r });
  readonly resyncs = new Counter({ name: 'calico_fanout_resyncs_total', help: 'Client syncs by mode: resume (catch-up from a position), digest (the buckets that differ from the client\'s cache) or snapshot.', labelNames: ['mode'] as const, registers: this.r });
  readonly clientsHeld = new Gauge({ name: 'calico_fanout_clients_held', help: 'Clients held because their cache is newer than this replica, until it catches up.', registers: this.r });
  readonly holds = new Counter({ name: 'calico_fanout_holds_total', help: 'Holds of clients whose cache was newer than this replica, by outcome: caught-up, sent-away (hold timeout), rewound (the datastore itself was older), closed.', labelNames: ['outcome'] as const, registers: this.r });
  readonly rewoundClients = new Counter({ name: 'calico_fanout_rewound_clients_total', help: 'Clients whose cache was newer than the datastore itself (restored to an older revision), served the datastore as it is.', registers: this.r });
  readonly repairBuckets = new Histogram({ name: 'calico_fanout_digest_resync_differing_ratio', help: 'Share of a digest resync\'s buckets that differed and were resent (0: the client was right, 1: all).', buckets: [0, 0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1], registers: this.r });

  // Every write to every client counts here: tallied as plain numbers and added when scraped,
  // as a counter's inc() allocates and costs more than the write's own bookkeeping.
  private readonly unscraped = { frames: 0, bytes: 0 };
  readonly framesSent = new Counter({ name: 'calico_fanout_frames_sent_total', help: 'Frames written to client sockets.', registers: this.r, collect: () => this.addSent() });
  readonly bytesSent = new Counter({ name: 'calico_fanout_bytes_sent_total', help: 'Bytes written to client sockets.', registers: this.r, collect: () => this.addSent() });
  readonly sharedFrames = new Counter({ name: 'calico_fanout_delta_frames_built_total', help: 'Delta frames encoded for broadcast (each written to every caught-up client of its view, or of one node of a node-scoped view).', registers: this.r });
  readonly transferFrames = new Counter({ name: 'calico_fanout_transfer_frames_built_total', help: 'Catch-up and repair frames built, by transfer (each written to every client needing the same one).', labelNames: ['transfer'] as const, registers: this.r });
  readonly backpressured = new Gauge({ name: 'calico_fanout_backpressured_clients', help: 'Clients whose socket buffer is above the high-water mark.', registers: this.r });
  readonly clientLag = new Histogram({
    name: 'calico_fanout_client_lag_seconds', help: 'Time from publishing a change to the client acknowledging it.',
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60], registers: this.r,
  });
  readonly pingRtt = new Histogram({
    name: 'calico_fanout_ping_rtt_seconds', help: 'Round trip of application pings.',
    buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5], registers: this.r,
  });

  /** One frame of `bytes` written to a client socket. */
  sent(bytes: number): void {
    this.unscraped.frames++;
    this.unscraped.bytes += bytes;
  }

  private addSent(): void {
    const u = this.unscraped;
    if (u.frames === 0) return;
    this.framesSent.inc(u.frames);
    this.bytesSent.inc(u.bytes);
    u.frames = 0;
    u.bytes = 0;
  }

  setDatastoreStatus(status: SyncStatus): void {
    for (const s of ['wait-for-datastore', 'resync-in-progress', 'in-sync'] as const satisfies readonly SyncStatus[]) this.datastoreStatus.labels(s).set(s === status ? 1 : 0);
  }

  /** Where the missing collections are read from when scraped. */
  missingCollectionsOf(source: () => readonly string[]): void {
    this.missingSource = source;
  }

  constructor(defaults = true) {
    if (defaults) collectDefaultMetrics({ register: this.registry });
    for (const m of this.registry.getMetricsAsArray()) reuseChildren(m as unknown as Labelled);
    for (const s of VIEW_NAMES) {
      for (const m of [this.updatesTotal, this.updatesSkipped, this.updatesPublished, this.snapshotsGenerated, this.snapshotsReused]) m.labels(s).inc(0);
      this.connectionsStreaming.labels(s).set(0);
    }
    for (const mode of ['resume', 'digest', 'snapshot'] as const satisfies readonly SyncMode[]) this.resyncs.labels(mode).inc(0);
    for (const outcome of ['caught-up', 'sent-away', 'rewound', 'closed']) this.holds.labels(outcome).inc(0);
    for (const transfer of ['catch-up', 'repair']) this.transferFrames.labels(transfer).inc(0);
    this.setDatastoreStatus('wait-for-datastore');
  }
}

interface Labelled { labels(...values: string[]): unknown }

/**
 * prom-client's labels() binds a fresh set of functions on every call (hundreds of bytes, on
 * paths taken per connection and per batch): each label set's child is made once and kept.
 * Label values are few by design (never per client), so the cache stays small.
 */
function reuseChildren(metric: Labelled): void {
  const make = metric.labels.bind(metric);
  const children = new Map<string, unknown>();
  metric.labels = (...values: string[]) => {
    if (values.some((v) => typeof v !== 'string')) return make(...values); // the object form
    const key = values.join('\0');
    let child = children.get(key);
    if (child === undefined) children.set(key, (child = make(...values)));
    return child;
  };
}
