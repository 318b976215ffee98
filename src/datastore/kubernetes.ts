// The Kubernetes API datastore: one list+watch per collection (Calico CRDs and the core
// resources Calico's Kubernetes datastore converts), shared by every view; conversions in
// kubernetes/resources.ts, the list/watch loop in kubernetes/collection.ts. In sync once every
// collection has been listed; a relist after 410 is an ordinary delta, never a resync. A
// collection that is not there (404: a CRD not installed) counts as listed and empty, and is
// polled until it appears. Calico's resources are read from the API group the cluster serves
// them in (kubernetes/api-group.ts), looked up again when one of them answers 404.
import type { Logger } from '../logging.js';
import type { SyncStatus } from '../protocol/messages.js';
import type { Datastore, DatastoreEvent, DatastoreSink } from './datastore.js';
import { discoverCalicoGroup, type CalicoApiGroup } from './kubernetes/api-group.js';
import { CollectionWatch, type CollectionOptions, type Handover } from './kubernetes/collection.js';
import { kubeHttp, loadKubeConfig, type KubeHttp } from './kubernetes/http.js';
import { calicoResource, watchedResources, type WatchedResource } from './kubernetes/resources.js';

export interface KubernetesOptions extends CollectionOptions {
  /** A kubeconfig file; empty: in-cluster, else $KUBECONFIG or ~/.kube/config. */
  kubeconfig: string;
  logger: Logger;
  /** Calico's CALICO_API_GROUP: the group version to read Calico's resources from; '' discovers it. */
  calicoApiGroup?: string;
  /** The collections to watch (tests narrow it; Calico's follow the discovered group); default: all Calico needs. */
  resources?: readonly WatchedResource[];
}

/** A collection every cluster has, that the RBAC lets us list: its list tells the current resourceVersion. */
const ALWAYS_THERE = '/api/v1/namespaces';

export class KubernetesDatastore implements Datastore {
  readonly name = 'kubernetes';
  private watches: CollectionWatch[] = [];
  private readonly failing = new Map<string, string>();
  private readonly absent = new Set<string>();
  private api: KubeHttp | undefined;
  private sink: DatastoreSink | undefined;
  private waiting = 0;
  private status: SyncStatus | undefined;
  private reported = 0;
  private group: CalicoApiGroup | undefined;
  private rediscovery: Promise<void> | undefined;
  private stopped = false;

  constructor(private readonly opts: KubernetesOptions) {}

  get lastError(): string | undefined {
    const [first] = this.failing.entries();
    return first && `${first[0]}: ${first[1]}`;
  }

  /** The collections that are not there (404), counted as empty and polled. */
  get missing(): readonly string[] {
    return [...this.absent].sort();
  }

  /** The group version Calico's resources are read from (once started). */
  get calicoApiGroup(): string | undefined {
    return this.group;
  }

  async start(sink: DatastoreSink): Promise<void> {
    const log = this.opts.logger;
    const api = (this.api = await kubeHttp(loadKubeConfig(this.opts.kubeconfig)));
    this.sink = sink;
    log.info({ server: api.server }, 'watching the Kubernetes API');
    this.setStatus('resync-in-progress');
    this.group = await discoverCalicoGroup(api, this.opts.calicoApiGroup ?? '', this.opts.requestTimeoutMs, log);
    const resources = this.opts.resources?.map((r) => this.inGroup(r)) ?? watchedResources(this.group);
    this.waiting = resources.length;
    this.watches = resources.map((r) => this.watch(r));
    for (const w of this.watches) w.start();
  }

  /** A Calico resource in the current group; any other as it is. */
  private inGroup(r: WatchedResource): WatchedResource {
    return r.calico && r.calico.group !== this.group ? calicoResource(r.calico.plural, this.group!) : r;
  }

  private watch(r: WatchedResource, from?: Handover): CollectionWatch {
    const log = this.opts.logger;
    // A watch replaced (its group changed) may still be finishing a callback: it no longer counts.
    const live = () => this.watches.includes(w);
    const w: CollectionWatch = new CollectionWatch(r, this.api!, this.opts, {
      publish: (events: DatastoreEvent[]) => { if (events.length && live()) this.sink!.onUpdates(events); },
      listed: () => { if (!live()) return; this.waiting--; this.update(); },
      failed: (err) => {
        if (!live()) return;
        if (err) this.failing.set(r.path, err.message); else this.failing.delete(r.path);
        this.update();
      },
      progressed: () => { if (live()) this.update(); },
      // Counted and logged where every bad datastore value is (ingest).
      invalid: (problem) => { if (live()) this.sink!.onInvalid(r.kind, `${r.path}: ${problem}`); },
      notFound: () => (r.calico && !this.opts.calicoApiGroup ? this.rediscover() : Promise.resolve()),
      missing: (missing) => {
        if (!live()) return;
        const had = this.absent.has(r.path);
        if (missing) this.absent.add(r.path); else this.absent.delete(r.path);
        if (had !== missing) {
          log.warn({ missing: this.missing, pollSecs: this.opts.missingPollMs / 1000 }, missing
            ? `${r.path} is not there (404): counted as empty, listed again every ${this.opts.missingPollMs / 1000} s`
            : `${r.path} is there now`);
        }
      },
      freshRevision: (signal) => this.freshRevision(signal),
    }, log.child({ collection: r.path }), from);
    return w;
  }

  /**
   * Asks /apis again (one question at a time): Calico's resources may have moved to the other
   * group (the v1 CRDs removed on an upgrade to v3 CRDs). Then every Calico collection is
   * replaced by its twin in the new group, which publishes only what differs from the old one.
   */
  private rediscover(): Promise<void> {
    this.rediscovery ??= (async () => {
      const group = await discoverCalicoGroup(this.api!, '', this.opts.requestTimeoutMs, this.opts.logger);
      if (group === this.group || this.stopped) return;
      this.opts.logger.warn({ from: this.group, to: group }, 'Calico resources are served in another API group now: watching that one');
      this.group = group;
      this.watches = this.watches.map((w) => {
        if (!w.resource.calico) return w;
        const from = w.abandon();
        this.failing.delete(w.resource.path);
        this.absent.delete(w.resource.path);
        return this.watch(this.inGroup(w.resource), from);
      });
      for (const w of this.watches) w.start();
      this.update();
    })().finally(() => { this.rediscovery = undefined; });
    return this.rediscovery;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.rediscovery?.catch(() => {});
    await Promise.all(this.watches.map((w) => w.stop()));
  }

  /** The datastore's resourceVersion now: a fresh list of a collection that is always there. */
  private async freshRevision(signal: AbortSignal): Promise<string> {
    const page = await this.api!.getJson(`${ALWAYS_THERE}?limit=1`, signal, this.opts.requestTimeoutMs);
    const rv = page?.metadata?.resourceVersion;
    if (typeof rv !== 'string' || !rv) throw new Error(`${ALWAYS_THERE}: a list without a resourceVersion`);
    return rv;
  }

  async currentRevision(): Promise<number> {
    // Every collection of an etcd-backed API server shares etcd's revision; a list is a fresh read.
    const ac = new AbortController();
    const there = this.watches.filter((w) => !w.isMissing).map((w) => `${w.resource.path}?limit=1`);
    const answers = await Promise.allSettled((there.length ? there : [`${ALWAYS_THERE}?limit=1`]).map(async (path) => {
      const page = await this.api!.getJson(path, ac.signal, this.opts.requestTimeoutMs);
      return Number(page?.metadata?.resourceVersion);
    }));
    const revs = answers.flatMap((a) => (a.status === 'fulfilled' && Number.isSafeInteger(a.value) ? [a.value] : []));
    if (revs.length === 0) {
      const failed = answers.find((a): a is PromiseRejectedResult => a.status === 'rejected');
      throw new Error(`no collection told its resourceVersion${failed ? `: ${(failed.reason as Error).message}` : ''}`);
    }
    return Math.max(...revs);
  }

  catchUpTo(revision: number): void {
    // A missing collection lists again too: its 404 proves it empty only up to when it was asked.
    for (const w of this.watches) if ((w.watermark ?? 0) < revision) w.refresh();
  }

  /**
   * Status and watermark from the collections: in sync once all have listed (a missing one is
   * listed, empty) and none is failing (a watch that errs or falls silent turns the status at
   * once); everything up to the lowest collection watermark has been delivered. A collection
   * that is missing delivered up to a resourceVersion read before its last 404: no further, as
   * its CRD may have appeared since.
   */
  private update(): void {
    if (this.waiting > 0) return;
    let low = Infinity;
    for (const w of this.watches) low = Math.min(low, w.watermark ?? 0);
    // The watermark first: a server told in-sync serves held clients by it at once.
    if (low > this.reported && Number.isFinite(low)) {
      this.reported = low;
      this.sink!.onProgress?.(String(low));
    }
    this.setStatus(this.failing.size ? 'wait-for-datastore' : 'in-sync');
  }

  private setStatus(status: SyncStatus): void {
    if (status === this.status) return;
    this.status = status;
    this.sink!.onStatus(status);
  }
}
