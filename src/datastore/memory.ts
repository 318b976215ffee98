// The embedded datastore: a map with a revision counter, seeded from files. It behaves like a
// watched datastore (a list, then ordered events, each with its own revision) so the whole
// pipeline runs and is tested without etcd or a Kubernetes API server.
import type { Datastore, DatastoreEvent, DatastoreSink } from './datastore.js';

export class MemoryDatastore implements Datastore {
  readonly name = 'memory';
  private readonly data = new Map<string, { value: unknown; revision: number }>();
  private revision = 0;
  private sink: DatastoreSink | undefined;

  constructor(seed: readonly { key: string; value: unknown }[] = []) {
    for (const r of seed) this.data.set(r.key, { value: r.value, revision: ++this.revision });
  }

  async start(sink: DatastoreSink): Promise<void> {
    this.sink = sink;
    sink.onStatus('resync-in-progress');
    const events: DatastoreEvent[] = [];
    for (const [key, { value, revision }] of this.data) events.push({ key, value, revision: String(revision) });
    sink.onUpdates(events);
    sink.onStatus('in-sync');
  }

  async stop(): Promise<void> {
    this.sink = undefined;
  }

  async currentRevision(): Promise<number> {
    return this.revision;
  }

  get(key: string): unknown {
    return this.data.get(key)?.value;
  }

  keys(): IterableIterator<string> {
    return this.data.keys();
  }

  get size(): number { return this.data.size; }

  /** Writes a value (any JSON-like value: the pipeline must cope with bad ones). */
  put(key: string, value: unknown): string {
    return this.write([{ key, value }])[0]!;
  }

  delete(key: string): string | undefined {
    if (!this.data.has(key)) return undefined;
    return this.write([{ key, value: null }])[0];
  }

  /** Several writes delivered as one event batch, as a watch response would. */
  write(ops: readonly { key: string; value: unknown }[]): string[] {
    const events: DatastoreEvent[] = [];
    for (const { key, value } of ops) {
      const revision = ++this.revision;
      if (value === null) this.data.delete(key);
      else this.data.set(key, { value, revision });
      events.push({ key, value, revision: String(revision) });
    }
    this.sink?.onUpdates(events);
    return events.map((e) => e.revision);
  }

  /** Content as plain data, for comparing a client's cache against the source of truth. */
  snapshot(): Map<string, unknown> {
    return new Map([...this.data].map(([k, v]) => [k, v.value]));
  }
}
