// The etcd v3 datastore: one paged list pinned at a revision, then one prefix watch from the
// next revision, for the whole server.
//
// The watch runs on a raw gRPC stream rather than etcd3's Watcher, because the Watcher loses
// events in two ways: it resumes from the server's *current* revision
// after a reconnect during catch-up, and a catch-up larger than gRPC's 4 MiB receive limit is
// dropped without an error. Here the adapter itself tracks the revision of the last event it
// delivered and always resumes from the one after; the receive limit is raised; and etcd3's
// retry and circuit-breaker policies are replaced by our own backoff, so one oversized read can
// not block every call for seconds.
//
// When etcd has compacted the revision we would resume from, the adapter lists again at a fresh
// revision and publishes only the differences against what it delivered before (it remembers
// each key's mod revision), so clients see an ordinary delta, never a resync.
import { readFileSync } from 'node:fs';
import { circuitBreaker, ConsecutiveBreaker, handleWhen, noop } from 'cockatiel';
import { Etcd3, isRecoverableError, type IKeyValue, type IWatchResponse } from 'etcd3';
import { backoffMs } from '../backoff.js';
import type { Logger } from '../logging.js';
import { BLOCK_AFFINITY, parseKey } from '../model/kinds.js';
import type { Datastore, DatastoreEvent, DatastoreSink } from './datastore.js';

export interface EtcdOptions {
  endpoints: string[];
  prefix: string;
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  username?: string;
  password?: string;
  /** Keys per range request of a list. */
  pageSize: number;
  /** How often the watch is asked to prove it is alive (a progress request). */
  progressIntervalMs: number;
  /** No answer on the watch stream for this long: the connection is presumed dead. */
  watchTimeoutMs: number;
  initialBackoffMs: number;
  maxBackoffMs: number;
  logger: Logger;
}

type IDuplex = Awaited<ReturnType<Etcd3['watchClient']['watch']>>;

/** Why a watch ended: compaction needs a new list, anything else a new watch. */
type WatchEnd = { compacted: true } | { compacted: false; error: Error };

export class EtcdError extends Error {}

/** The key just after every key with the given prefix (etcd's range_end for a prefix). */
export function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) { end[i]!++; return end.subarray(0, i + 1); }
  }
  return Buffer.from([0]);
}

export type EtcdConnection = Pick<EtcdOptions, 'endpoints' | 'caFile' | 'certFile' | 'keyFile' | 'username' | 'password'>;

export function etcdClient(o: EtcdConnection): Etcd3 {
  const read = (what: string, path: string): Buffer => {
    try { return readFileSync(path); } catch (err) { throw new EtcdError(`cannot read etcd ${what} ${path}: ${(err as Error).message}`); }
  };
  return new Etcd3({
    hosts: o.endpoints,
    credentials: o.caFile ? {
      rootCertificate: read('CA file', o.caFile),
      certChain: o.certFile ? read('certificate file', o.certFile) : undefined,
      privateKey: o.keyFile ? read('key file', o.keyFile) : undefined,
    } : undefined,
    auth: o.username ? { username: o.username, password: o.password ?? '' } : undefined,
    dialTimeout: 5000,
    grpcOptions: {
      // A catch-up or a page of large values may exceed gRPC's default 4 MiB; above the limit
      // grpc-js drops the whole message.
      'grpc.max_receive_message_length': 512 << 20,
      // etcd refuses pings more often than every 5 s; a half-open connection is found by these.
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_timeout_ms': 10_000,
    },
    // Our loop retries with its own backoff; etcd3's breaker would fail every call for 5 s. With
    // several endpoints, one that just failed is passed over for a second (its breaker open), so
    // the next attempt goes to another instead of wherever a shuffle lands.
    faultHandling: { host: () => (o.endpoints.length > 1 ? hostBreaker() : noop), global: noop },
  });
}

const hostBreaker = () => circuitBreaker(handleWhen(isRecoverableError), { halfOpenAfter: 1000, breaker: new ConsecutiveBreaker(1) });

/**
 * Writes values (JSON-encoded unless already a string) in transactions of 100 puts: etcd allows
 * 128 operations in one, and may name a key only once, so the last value of each key wins.
 */
export async function putAll(client: Etcd3, kvs: readonly { key: string; value: unknown }[]): Promise<void> {
  const unique = [...new Map(kvs.map((kv) => [kv.key, kv])).values()];
  for (let i = 0; i < unique.length; i += 100) {
    const success = unique.slice(i, i + 100).map(({ key, value }) => ({
      request_put: { key: Buffer.from(key), value: Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)) },
    }));
    await client.kv.txn({ success });
  }
}

export class EtcdDatastore implements Datastore {
  readonly name = 'etcdv3';
  lastError: string | undefined;
  /** Mod revision of every key delivered, for diffing a re-list. */
  private readonly known = new Map<string, number>();
  /** Every event up to this revision has been delivered. */
  private rev = 0;
  private listed = false;
  private sink: DatastoreSink | undefined;
  private client: Etcd3 | undefined;
  private stream: IDuplex | undefined;
  private stopped = false;
  private attempt = 0;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  /** Counters for tests and logs. */
  readonly stats = { lists: 0, rangeCalls: 0, watches: 0, compactions: 0, reconnects: 0 };
  private readonly prefix: Buffer;
  private readonly end: Buffer;

  constructor(private readonly opts: EtcdOptions) {
    this.prefix = Buffer.from(opts.prefix);
    this.end = prefixEnd(this.prefix);
  }

  async start(sink: DatastoreSink): Promise<void> {
    this.sink = sink;
    this.client = etcdClient(this.opts);
    sink.onStatus('resync-in-progress');
    // Never awaited here: an unreachable etcd must not keep the server from serving what it has.
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    this.stream?.cancel();
    // A call in flight ends at its deadline; the server's shutdown does not wait that long.
    await Promise.race([this.loop, new Promise((r) => setTimeout(r, 1000).unref())]);
    this.client?.close();
  }

  async currentRevision(): Promise<number> {
    // A linearizable read (etcd's default): its header revision is at least every write before it.
    const res = await this.client!.kv.range({ key: this.prefix, range_end: this.end, count_only: true }, { deadline: Date.now() + this.opts.watchTimeoutMs });
    return Number(res.header.revision);
  }

  private async run(): Promise<void> {
    const log = this.opts.logger;
    while (!this.stopped) {
      try {
        if (!this.listed) await this.list();
        const end = await this.watch();
        if (this.stopped) break;
        if (end.compacted) {
          this.stats.compactions++;
          log.warn({ from: this.rev + 1 }, 'etcd compacted past our revision; listing again and publishing the difference');
          this.listed = false;
          continue;
        }
        throw end.error;
      } catch (err) {
        if (this.stopped) break;
        const e = err as Error;
        if (/revision has been compacted/.test(e.message)) {
          // The revision a list was pinned at went away under it: list again, at once.
          this.stats.compactions++;
          continue;
        }
        this.stats.reconnects++;
        this.lastError = e.message;
        this.sink?.onStatus('wait-for-datastore');
        const delay = this.backoff();
        log.warn({ err: e.message, retryInMs: Math.round(delay), resumeFrom: this.listed ? this.rev + 1 : undefined }, 'etcd unavailable; serving the last known state');
        await this.sleep(delay);
      }
    }
  }

  /**
   * A consistent paged list: the first page fixes revision R, every later page reads at R, so the
   * whole list is one snapshot however long it takes. Publishes what differs from what was
   * delivered before (everything, the first time), page by page, and deletions at the end. The
   * next page is asked for before this one is processed, so that etcd reads it meanwhile.
   */
  private async list(): Promise<void> {
    const kv = this.client!.kv;
    this.stats.lists++;
    // The first list has nothing to diff against: no set of the keys seen, no deletions.
    const relist = this.known.size > 0;
    const seen = new Set<string>();
    // A deadline: an etcd that accepts the call but never answers (stopped, black-holed) must
    // become an error and a retry, not a list that waits for ever.
    const page = (key: Buffer, revision: number | undefined) => {
      this.stats.rangeCalls++;
      return kv.range({ key, range_end: this.end, limit: this.opts.pageSize, revision }, { deadline: Date.now() + this.opts.watchTimeoutMs });
    };
    let res = await page(this.prefix, undefined);
    const revision = Number(res.header.revision);
    let keys = 0;
    for (;;) {
      const last = res.kvs[res.kvs.length - 1];
      const next = res.more && last ? page(Buffer.concat([last.key, ZERO]), revision) : undefined;
      // Awaited below unless this page fails first: its rejection must not go unhandled meanwhile.
      next?.catch(() => {});
      // Handed on a few hundred at a time: each value's parsed JSON is garbage once ingest has
      // encoded it, and dies young instead of a page's worth being promoted by the collector.
      let events: DatastoreEvent[] = [];
      for (const item of res.kvs) {
        const k = item.key.toString();
        const modRev = Number(item.mod_revision);
        if (relist) {
          seen.add(k);
          if (this.known.get(k) === modRev) continue;
        }
        this.known.set(k, modRev);
        events.push(toEvent(item, k));
        if (events.length === HANDOVER) {
          this.sink!.onUpdates(events);
          events = [];
        }
      }
      keys += res.kvs.length;
      if (events.length) this.sink!.onUpdates(events);
      if (!next) break;
      res = await next;
    }
    const gone: DatastoreEvent[] = [];
    if (relist) {
      for (const k of this.known.keys()) {
        if (seen.has(k)) continue;
        this.known.delete(k);
        gone.push({ key: k, value: null, revision: String(revision) });
      }
    }
    if (gone.length) this.sink!.onUpdates(gone);
    this.rev = revision;
    this.listed = true;
    this.sink!.onProgress?.(String(revision));
    this.opts.logger.info({ revision, keys, deleted: gone.length }, 'etcd listed');
  }

  /** One watch from rev + 1 until it fails, is compacted, or the adapter stops. */
  private watch(): Promise<WatchEnd> {
    return new Promise<WatchEnd>((resolve, reject) => {
      this.stats.watches++;
      let settled = false;
      let lastHeard = Date.now();
      let created = false;
      let timer: NodeJS.Timeout | undefined;
      const finish = (end: WatchEnd) => {
        if (settled) return;
        settled = true;
        clearInterval(timer);
        this.stream?.cancel();
        this.stream = undefined;
        resolve(end);
      };
      this.client!.watchClient.watch().then((stream) => {
        if (this.stopped) { stream.cancel(); return resolve({ compacted: false, error: new EtcdError('stopped') }); }
        this.stream = stream;
        stream.on('data', (res: IWatchResponse) => {
          // A stream given up on may still deliver what it had buffered: the next watch resumes
          // from the last revision delivered, so anything later here would move it out of order.
          if (settled) return;
          lastHeard = Date.now();
          if (res.canceled) {
            if (Number(res.compact_revision) > 0) return finish({ compacted: true });
            return finish({ compacted: false, error: new EtcdError(`watch canceled: ${res.cancel_reason || 'no reason given'}`) });
          }
          if (res.created) {
            created = true;
            this.attempt = 0;
            this.lastError = undefined;
            // Ask at once whether we are current; the answer comes after the catch-up.
            stream.write({ progress_request: {} });
            return;
          }
          if (res.events.length > 0) {
            const events = res.events.map((ev) => {
              const k = ev.kv.key.toString();
              const modRev = Number(ev.kv.mod_revision);
              if (ev.type === 'Delete') {
                this.known.delete(k);
                return { key: k, value: null, revision: String(modRev) };
              }
              this.known.set(k, modRev);
              return toEvent(ev.kv);
            });
            this.rev = Number(res.events[res.events.length - 1]!.kv.mod_revision);
            this.sink!.onUpdates(events);
            this.sink!.onProgress?.(String(this.rev));
            return;
          }
          // A progress notification: etcd has sent everything it had when it answered. Its
          // revision is not used to resume (etcd 3.4 can answer a progress request ahead of the
          // catch-up it is still sending), only to know that we are current.
          this.sink!.onStatus('in-sync');
        });
        stream.on('error', (err: Error) => finish({ compacted: false, error: err }));
        stream.on('end', () => finish({ compacted: false, error: new EtcdError('watch stream ended') }));
        stream.write({
          create_request: { key: this.prefix, range_end: this.end, start_revision: this.rev + 1, progress_notify: true },
        });
        timer = setInterval(() => {
          if (Date.now() - lastHeard > this.opts.watchTimeoutMs) {
            return finish({ compacted: false, error: new EtcdError(`no answer on the watch for ${this.opts.watchTimeoutMs} ms${created ? '' : ' (not yet created)'}`) });
          }
          if (created) stream.write({ progress_request: {} });
        }, this.opts.progressIntervalMs);
      }, reject);
    });
  }

  private backoff(): number {
    return backoffMs(this.attempt++, this.opts.initialBackoffMs, this.opts.maxBackoffMs);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.wake = () => { clearTimeout(t); resolve(); };
    });
  }
}

const ZERO = Buffer.from([0]);
/** Events of a listed page handed to the sink per call. */
const HANDOVER = 256;

function toEvent(kv: IKeyValue, key = kv.key.toString()): DatastoreEvent {
  const revision = String(kv.mod_revision);
  // Older Calico releases stored block affinities with no value, which Calico reads as {} (state
  // "", which is not "pending": confd acts on it).
  if (kv.value.length === 0 && parseKey(key)?.kind === BLOCK_AFFINITY) return { key, value: {}, revision };
  let value: unknown;
  try {
    value = JSON.parse(kv.value.toString());
  } catch (err) {
    return { key, value: undefined, revision, invalid: `value is not JSON: ${(err as Error).message}` };
  }
  // JSON null must not read as a deletion.
  if (value === null) return { key, value: undefined, revision, invalid: 'value is JSON null' };
  return { key, value, revision };
}
