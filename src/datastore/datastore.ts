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
}
