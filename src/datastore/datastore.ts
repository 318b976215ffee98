// The one interface every datastore adapter implements (memory, etcd v3, the Kubernetes API).
// An adapter owns the single upstream watch and pushes events in
// datastore order; it never learns who consumes them.
import type { SyncStatus } from '../protocol/messages.js';

export interface DatastoreEvent {
  /** Calico default path, e.g. /calico/resources/v3/projectcalico.org/nodes/node-1. */
  key: string;
  /** The resource as parsed from the datastore; null for a deletion. */
  value: unknown;
  /** The datastore's revision of this change (etcd mod revision, Kubernetes resourceVersion). */
  revision: string;
  /**
   * Set when the stored bytes could not be read as a value (bad JSON): the event is counted and
   * logged by ingest and otherwise dropped, so one bad key never stops the stream.
   */
  invalid?: string;
  /**
   * The value's canonical bytes as another calico-fanout serves them (a tier above): already
   * checked and served as Calico reads it, so taken as they are (`value` is their decoding).
   */
  canonical?: Buffer;
}

export interface DatastoreSink {
  onUpdates(events: readonly DatastoreEvent[]): void;
  /**
   * An object of `kind` was skipped because it does not make a valid resource (where there is no
   * key to put an `invalid` event under): counted and logged, never fatal.
   */
  onInvalid(kind: string, problem: string): void;
  /** `in-sync` once everything that existed at start has been delivered; adapters repeat it after a resync. */
  onStatus(status: SyncStatus): void;
  /**
   * Everything up to this datastore revision has been delivered (numeric revisions). Never
   * mid-list: a re-list publishes in key order, so only its end is a consistent point.
   */
  onProgress?(revision: string): void;
}

/** Where a server of a tier below stands with its upstream (readiness, the status page). */
export interface UpstreamStatus {
  /** The upstream server followed now (or last): its client URL and identity. */
  url: string | null;
  serverId: string | null;
  /** The upstream's chain to the root, the upstream first and the root server last. */
  chain: string[];
  connected: boolean;
  inSync: boolean;
  /** The root datastore's revision everything up to which has reached this server. */
  revision: string;
  /** How long after the root server reached that revision this server did (clocks permitting). */
  lagMs: number | null;
  /** When the upstream last said how far it had got (ISO time). */
  lastProgressAt: string | null;
}

/** A datastore that is another calico-fanout's mirror view: the server's side of following it. */
export interface Upstream {
  /** Before start: this server's identity (sent upstream, which refuses a loop) and where the chain goes. */
  bind(serverId: string, onChain: (upstreamChain: readonly string[]) => void): void;
  status(): UpstreamStatus;
  /** When the root server reached `revision`, as the upstream said; undefined when not known. */
  rootTime(revision: number): number | undefined;
}

export interface Datastore {
  readonly name: string;
  /** The last error talking to the datastore while it is failing (readiness shows it). */
  readonly lastError?: string;
  /** Collections the datastore does not have (a CRD not installed), served as empty (readiness and a metric name them). */
  readonly missing?: readonly string[];
  start(sink: DatastoreSink): Promise<void>;
  stop(): Promise<void>;
  /**
   * The datastore's current revision, read from it now (etcd: a linearizable read's header;
   * Kubernetes: the newest list resourceVersion). Tells a replica that lags its datastore from a
   * datastore restored to an older revision.
   */
  currentRevision?(): Promise<number>;
  /**
   * Deliver everything up to `revision` and report it (DatastoreSink.onProgress) even where no
   * event would show it: a quiet Kubernetes collection re-lists. etcd's one watch needs nothing.
   */
  catchUpTo?(revision: number): void;
  /** Present when the datastore is another calico-fanout (tiers). */
  readonly upstream?: Upstream;
}
