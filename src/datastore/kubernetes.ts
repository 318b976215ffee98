// The Kubernetes API datastore: one list+watch per collection (Calico CRDs and the core
// resources Calico's Kubernetes datastore converts), shared by every view; conversions in
// kubernetes/resources.ts, the list/watch loop in kubernetes/collection.ts. In sync once every
// collection has been listed; a relist after 410 is an ordinary delta, never a resync.
import type { Logger } from '../logging.js';
import type { Datastore, DatastoreEvent, DatastoreSink } from './datastore.js';
import { CollectionWatch, type CollectionOptions } from './kubernetes/collection.js';
import { kubeHttp, loadKubeConfig } from './kubernetes/http.js';
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

  constructor(private readonly opts: KubernetesOptions) {}

  get lastError(): string | undefined {
    const [first] = this.failing.entries();
    return first && `${first[0]}: ${first[1]}`;
  }

  async start(sink: DatastoreSink): Promise<void> {
    const log = this.opts.logger;
    const api = await kubeHttp(loadKubeConfig(this.opts.kubeconfig));
    log.info({ server: api.server }, 'watching the Kubernetes API');
    sink.onStatus('resync-in-progress');
    const resources = this.opts.resources ?? WATCHED_RESOURCES;
    let waiting = resources.length;
    this.watches = resources.map((r) => new CollectionWatch(r, api, this.opts, {
      publish: (events: DatastoreEvent[]) => { if (events.length) sink.onUpdates(events); },
      listed: () => { if (--waiting === 0) sink.onStatus('in-sync'); },
      failed: (err) => { if (err) this.failing.set(r.path, err.message); else this.failing.delete(r.path); },
      // Counted and logged where every bad datastore value is (ingest).
      invalid: (problem) => sink.onInvalid(r.kind, `${r.path}: ${problem}`),
    }, log.child({ collection: r.path })));
    for (const w of this.watches) w.start();
  }

  async stop(): Promise<void> {
    await Promise.all(this.watches.map((w) => w.stop()));
  }
}
