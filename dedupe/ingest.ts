// Ingest: the datastore's sink. Validates and encodes each event once, coalesces per key within
// a batching window (latest wins), drops what would change nothing, and hands the rest to the
// store in batches of bounded size. The first event after a quiet spell is flushed on the next
// turn of the event loop; under load, flushes are at most one window apart, or sooner once a
// batch's worth is pending. A datastore watermark waits for the changes received before it and
// is reported with them, so a burst of small datastore writes still makes one batch per window.
import type { DatastoreEvent, DatastoreSink } from '../src/datastore/datastore.js';
import type { Logger } from '../src/logging.js';
import { RateLimitedLog } from '../src/logging.js';
import type { Metrics } from '../src/metrics.js';
import { viewsOfKind } from '../src/model/views.js';
import type { SyncStatus } from '../src/protocol/messages.js';
import type { Change } from '../src/model/change.js';
import { prepare } from './prepare.js';

/** What ingest needs of the store downstream: read the current bytes, apply, set status. */
export interface IngestTarget {
  valueOf(key: string): Buffer | null | undefined;
  apply(changes: readonly Change[]): void;
  setStatus(status: SyncStatus): void;
  setProgress?(revision: number): void;
  /** Changes that leave the value as it is, for their newer revision. */
  revise?(changes: readonly Change[]): void;
}

export interface IngestOptions {
  windowMs: number;
  /** A batch (one delta frame per view) is cut once its keys and values reach this many bytes. */
  maxBatchBytes: number;
  /** USE_POD_CIDR: no view carries IPAM blocks or block affinities. */
  usePodCidr?: boolean;
}

export class Ingest implements DatastoreSink {
  private pending = new Map<string, Change>();
  private timer: NodeJS.Timeout | NodeJS.Immediate | undefined;
  private lastFlush = 0;
  /** Key and value bytes pending (replaced values included): a full batch is not held back. */
  private pendingBytes = 0;
  /** The newest watermark received since the pending changes: reported once they are published. */
  private progress: number | undefined;
  private readonly warn: RateLimitedLog;

  constructor(
    private readonly target: IngestTarget,
    private readonly opts: IngestOptions,
    private readonly metrics: Metrics,
    private readonly logger: Logger,
  ) {
    this.warn = new RateLimitedLog(logger);
  }

  onUpdates(events: readonly DatastoreEvent[]): void {
    // Counted per call, not per update: a labelled counter costs as much as the rest of an update.
    let coalesced = 0;
    let unserved: Map<string, number> | undefined;
    for (const ev of events) {
      const p = prepare(ev, this.opts);
      if (p.ok) {
        const before = this.pending.size;
        this.pending.set(ev.key, p.change);
        if (this.pending.size === before) coalesced++;
        this.pendingBytes += ev.key.length + (p.change.value?.length ?? 0);
      } else if (!p.ignored && p.unserved) {
        // Calico's own data that no agent reads: expected, so counted apart and not logged.
        tally(unserved ??= new Map(), p.kind, 1);
      } else if (p.ignored) {
        this.metrics.ignoredKeys.inc();
        this.warn.warn('ignored-key', { key: ev.key }, "datastore key outside Calico's layout; ignored");
      } else {
        this.metrics.invalidValues.labels(p.kind).inc();
        this.warn.warn(`invalid-${p.kind}`, { key: ev.key, revision: ev.revision, problem: p.reason }, 'invalid datastore value dropped');
      }
    }
    if (events.length) this.metrics.updatesReceived.inc(events.length);
    if (coalesced) this.metrics.updatesCoalesced.inc(coalesced);
    if (unserved) for (const [kind, n] of unserved) this.metrics.unservedUpdates.labels(kind).inc(n);
    if (this.pendingBytes >= this.opts.maxBatchBytes) this.flush();
    else this.schedule();
  }

  onInvalid(kind: string, problem: string): void {
    this.metrics.invalidValues.labels(kind).inc();
    this.warn.warn(`invalid-${kind}`, { kind, problem }, 'invalid datastore object skipped');
  }

  onProgress(revision: string): void {
    const n = Number(revision);
    if (!Number.isSafeInteger(n)) return;
    // Everything received before it is published before it: with nothing pending, now; else at
    // the flush that publishes what is pending (flushing here would cut a batch per response).
    if (this.pending.size === 0) this.target.setProgress?.(n);
    else if (!(n <= (this.progress ?? -Infinity))) this.progress = n;
  }

  onStatus(status: SyncStatus): void {
    // Everything received before a status change is published before it.
    this.flush();
    this.target.setStatus(status);
  }

  /** Publishes whatever is pending now, then the watermark that came after it. */
  flush(): void {
    this.cancel();
    this.lastFlush = Date.now();
    if (this.pending.size > 0) this.publish();
    const progress = this.progress;
    this.progress = undefined;
    if (progress !== undefined) this.target.setProgress?.(progress);
  }

  private publish(): void {
    const changes = this.pending;
    this.pending = new Map();
    this.pendingBytes = 0;
    let batch: Change[] = [];
    const same: Change[] = [];
    // Updates and no-ops per kind, counted per view once per flush.
    const total = new Map<string, number>();
    const skipped = new Map<string, number>();
    let bytes = 0;
    // Counted per run of one kind (a burst is mostly one kind): a map update per run, not per change.
    let kind = '';
    let run = 0;
    for (const c of changes.values()) {
      if (c.kind !== kind) {
        if (run) tally(total, kind, run);
        kind = c.kind;
        run = 0;
      }
      run++;
      if (this.isNoOp(c)) {
        tally(skipped, c.kind, 1);
        if (c.value) same.push(c);
        continue;
      }
      batch.push(c);
      bytes += c.key.length + (c.value?.length ?? 0);
      if (bytes >= this.opts.maxBatchBytes) {
        this.target.apply(batch);
        batch = [];
        bytes = 0;
      }
    }
    if (run) tally(total, kind, run);
    this.target.apply(batch);
    if (same.length) this.target.revise?.(same);
    perView(total, this.metrics.updatesTotal);
    perView(skipped, this.metrics.updatesSkipped);
  }

  stop(): void {
    this.cancel();
  }

  private isNoOp(c: Change): boolean {
    const cur = this.target.valueOf(c.key);
    if (c.value === null) return cur === null || cur === undefined; // deleting what is not there
    return cur != null && cur.equals(c.value);
  }

  private schedule(): void {
    if (this.timer || this.pending.size === 0) return;
    const wait = this.lastFlush + this.opts.windowMs - Date.now();
    this.timer = wait <= 0 ? setImmediate(() => this.flush()) : setTimeout(() => this.flush(), wait);
  }

  private cancel(): void {
    if (!this.timer) return;
    clearTimeout(this.timer as NodeJS.Timeout);
    clearImmediate(this.timer as NodeJS.Immediate);
    this.timer = undefined;
  }
}

function tally(counts: Map<string, number>, kind: string, n: number): void {
  counts.set(kind, (counts.get(kind) ?? 0) + n);
}

/** Adds each kind's count to every view that carries the kind. */
function perView(counts: Map<string, number>, counter: Metrics['updatesTotal']): void {
  for (const [kind, n] of counts) for (const v of viewsOfKind(kind)) counter.labels(v).inc(n);
}
