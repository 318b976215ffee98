// The Kubernetes API datastore: one list+watch per collection (Calico CRDs and the core
// resources Calico's Kubernetes datastore converts), shared by every view; conversions in
// kubernetes/resources.ts, the list/watch loop in kubernetes/collection.ts. In sync once every
// collection has been listed; a relist after 410 is an ordinary delta, never a resync.
import type { Logger } from '../logging.js';
import type { SyncStatus } from '../protocol/messages.js';
import type { Datastore, DatastoreEvent, DatastoreSink } from './datastore.js';
import { CollectionWatch, type CollectionOptions } from './kubernetes/collection.js';
import { kubeHttp, loadKubeConfig, type KubeHttp } from './kubernetes/http.js';
import { WATCHED_RESOURCES, type WatchedResource } from './kubernetes/resources.js';

export interface KubernetesOptions extends CollectionOptions {
  /** A kubeconfig file; empty: in-cluster, else $KUBECONFIG or ~/.kube/config. */
  kubeconfig: string;
  logger: Logger;
  /** The collections to watch (tests narrow it); default: all Calico needs. */
  resources?: readonly WatchedResource[];
}

export class KubernetesDatastore implements Datastore {
  readonly name = 'kubernetes';
  private watches: CollectionWatch[] = [];
  private readonly failing = new Map<string, string>();
  private api: KubeHttp | undefined;
  private sink: DatastoreSink | undefined;
  private waiting = 0;
  private status: SyncStatus | undefined;
  private reported = 0;

  constructor(private readonly opts: KubernetesOptions) {}

  get lastError(): string | undefined {
    const [first] = this.failing.entries();
    return first && `${first[0]}: ${first[1]}`;
  }

  async start(sink: DatastoreSink): Promise<void> {
    const log = this.opts.logger;
    const api = (this.api = await kubeHttp(loadKubeConfig(this.opts.kubeconfig)));
    this.sink = sink;
    log.info({ server: api.server }, 'watching the Kubernetes API');
    this.setStatus('resync-in-progress');
    const resources = this.opts.resources ?? WATCHED_RESOURCES;
    this.waiting = resources.length;
    this.watches = resources.map((r) => new CollectionWatch(r, api, this.opts, {
      publish: (events: DatastoreEvent[]) => { if (events.length) sink.onUpdates(events); },
      listed: () => { this.waiting--; this.update(); },
      failed: (err) => {
        if (err) this.failing.set(r.path, err.message); else this.failing.delete(r.path);
        this.update();
      },
      progressed: () => this.update(),
      // Counted and logged where every bad datastore value is (ingest).
      invalid: (problem) => sink.onInvalid(r.kind, `${r.path}: ${problem}`),
    }, log.child({ collection: r.path })));
    for (const w of this.watches) w.start();
  }

  async stop(): Promise<void> {
    await Promise.all(this.watches.map((w) => w.stop()));
  }

  async currentRevision(): Promise<number> {
    // Every collection of an etcd-backed API server shares etcd's revision; a list is a fresh read.
    const ac = new AbortController();
    const answers = await Promise.allSettled(this.watches.map(async (w) => {
      const page = await this.api!.getJson(`${w.resource.path}?limit=1`, ac.signal, this.opts.requestTimeoutMs);
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
    for (const w of this.watches) if ((w.watermark ?? 0) < revision) w.refresh();
  }

  /**
   * Status and watermark from the collections: in sync once all have listed and none is failing
   * (a watch that errs or falls silent turns the status at once); everything up to the lowest
   * collection watermark has been delivered.
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
