// One Kubernetes collection (pods, nodes, ippools, …): a paged list, then a watch from the list's
// resourceVersion, for the whole server. Kubernetes' documented contract (API concepts, "Efficient
// detection of changes") is what this relies on:
// - a watch from resourceVersion R delivers every change after R, in order; BOOKMARK events only
//   move R on (requested with allowWatchBookmarks, never published);
// - the server ends watches (timeoutSeconds, restarts): watch again from the last R seen;
// - 410 Gone (R older than the server keeps, as the HTTP status or as an ERROR event), and 504
//   "Too large resource version" (R newer than the server has: an etcd restore, a lagging
//   apiserver): list again and publish only what differs from what was published before (kept
//   per object: its resourceVersion and the Calico key it became), so clients see an ordinary delta;
// - 404 (a CRD not installed): the collection is empty, and listed again every missing-poll
//   interval until it is there;
// - 429: retried after the server's Retry-After, if longer than the backoff;
// - anything else (connection refused, 5xx, a line that is not JSON): retry with backoff from the
//   last R, never give up; a watch that sends nothing, not even a bookmark, for the inactivity
//   timeout is presumed half-open and restarted.
// resourceVersions are opaque to the loop: compared only for equality. The watermark alone reads
// them as numbers (what every API server backed by etcd serves), to tell how far this collection
// has delivered; a collection whose versions are not numbers reports none.
import { backoffMs } from '../../backoff.js';
import type { Logger } from '../../logging.js';
import type { DatastoreEvent } from '../datastore.js';
import { KubeApiError, statusError, type KubeHttp } from './http.js';
import { ConvertError, type WatchedResource } from './resources.js';

export interface CollectionOptions {
  pageSize: number;
  /** Asked of the server per watch (timeoutSeconds), jittered ±20% so collections do not restart together. */
  watchTimeoutSecs: number;
  inactivityMs: number;
  requestTimeoutMs: number;
  initialBackoffMs: number;
  maxBackoffMs: number;
  /** A collection that is not there (404) is listed again this often. */
  missingPollMs: number;
}

export interface CollectionSink {
  publish(events: DatastoreEvent[]): void;
  /** The first list is published (called once). */
  listed(): void;
  /** A request failed; cleared by the next success. */
  failed(err: Error | undefined): void;
  /** The watermark moved (after what it covers was published). */
  progressed(): void;
  /** An object that converts to nothing valid was skipped. */
  invalid(problem: string): void;
  /**
   * The collection answered 404 where it was there (or not known) before: settled before the
   * collection counts as missing (a Calico collection may have moved to another API group, and
   * this watch be replaced: stopped meanwhile).
   */
  notFound(): Promise<void>;
  /** It is missing (true: counted as empty, polled) or there again (false). */
  missing(missing: boolean): void;
  /** A resourceVersion read now, from a collection that is always there (proves a 404 current). */
  freshRevision(signal: AbortSignal): Promise<string>;
}

interface Known { key: string | null; rv: string }
/** What a watch published, for the watch that replaces it. */
export interface Handover { readonly known: ReadonlyMap<string, Known>; readonly listed: boolean }
/** 'quiet': the stream opened and then said nothing at all, not even a bookmark. */
type WatchEnd = 'ended' | 'gone' | 'quiet';

const sleep = (ms: number, signal: AbortSignal) => new Promise<void>((resolve) => {
  const t = setTimeout(resolve, ms);
  signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
});

/** A watch request the server has not answered within the inactivity timeout. */
class SilentWatch extends Error {}

export class CollectionWatch {
  /** The last resourceVersion seen: of the list, an event or a bookmark. */
  private rv = '';
  private readonly known = new Map<string, Known>();
  private readonly stopping = new AbortController();
  private listedOnce = false;
  private done: Promise<void> | undefined;
  /** Everything up to this resourceVersion has been published: a list's, an event's, a bookmark's. */
  private _watermark: number | undefined;
  /** A re-list was asked for (refresh): the watch in flight is ended for it. */
  private relistDue = false;
  private watchAbort: AbortController | undefined;
  /** The last list found no collection (404): the next one first reads a fresh resourceVersion. */
  private absent = false;
  /** Ends the wait between polls of a missing collection (refresh). */
  private pollAbort: AbortController | undefined;

  /**
   * `from`: what another watch of the same kind published (a Calico collection moved to another
   * API group): the first list publishes only what differs from it, and is no first list if that
   * watch had listed.
   */
  constructor(
    readonly resource: WatchedResource,
    private readonly api: KubeHttp,
    private readonly opts: CollectionOptions,
    private readonly sink: CollectionSink,
    private readonly log: Logger,
    from?: Handover,
  ) {
    if (from) {
      for (const [id, k] of from.known) this.known.set(id, k);
      this.listedOnce = from.listed;
    }
  }

  /** Stops at once, without waiting, and hands over what it published (see the constructor). */
  abandon(): Handover {
    this.stopping.abort();
    return { known: new Map(this.known), listed: this.listedOnce };
  }

  get isMissing(): boolean { return this.absent; }

  start(): void {
    this.done ??= this.run();
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    await this.done;
  }

  private get path(): string { return this.resource.path; }

  get watermark(): number | undefined { return this._watermark; }

  /**
   * Lists again now: a collection with nothing to say sends no event that would move its
   * watermark, and a bookmark may be a minute away; a list's resourceVersion is current.
   */
  refresh(): void {
    if (this.relistDue) return;
    this.relistDue = true;
    this.watchAbort?.abort();
    this.pollAbort?.abort();
  }

  private advance(rv: string): void {
    const n = Number(rv);
    if (!Number.isSafeInteger(n) || n <= (this._watermark ?? 0)) return;
    this._watermark = n;
    this.sink.progressed();
  }

  private async run(): Promise<void> {
    const signal = this.stopping.signal;
    let attempt = 0;
    let needList = true;
    // Watches in a row that heard nothing; the second such asks for a list.
    let quiet = 0;
    const silentAgain = (silent: boolean): boolean => {
      quiet = silent ? quiet + 1 : 0;
      if (quiet < 2) return false;
      quiet = 0;
      return true;
    };
    while (!signal.aborted) {
      try {
        if (needList || this.relistDue) {
          this.relistDue = false;
          const there = await this.list(signal);
          if (signal.aborted) return;
          needList = false;
          attempt = 0;
          if (!this.listedOnce) { this.listedOnce = true; this.sink.listed(); }
          if (!there) {
            // Nothing to watch: wait for the next poll, or a refresh asking for a current list.
            this.pollAbort = new AbortController();
            if (!this.relistDue) await sleep(this.opts.missingPollMs, AbortSignal.any([signal, this.pollAbort.signal]));
            this.pollAbort = undefined;
            needList = true;
            continue;
          }
        }
        const started = Date.now();
        const end = await this.watch(signal);
        if (end === 'gone' || this.relistDue) { needList = true; continue; }
        // A server that takes a watch from a resourceVersion it does not have yet (after a
        // restore, or behind a lagging apiserver) may say nothing at all rather than 504, with or
        // without answering the request; a healthy one sends bookmarks. Twice silent: list again.
        if (silentAgain(end === 'quiet')) { needList = true; continue; }
        // A server that ends every watch at once must not be hammered.
        const quick = Date.now() - started < 1000;
        attempt = quick ? attempt + 1 : 0;
        await sleep(quick ? this.backoff(attempt) : Math.random() * 250, signal);
      } catch (err) {
        if (signal.aborted) return;
        if (this.relistDue) continue;
        // The collection went away under its watch (a CRD deleted): the list tells for sure.
        if (err instanceof KubeApiError && err.status === 404 && !needList) {
          needList = true;
          continue;
        }
        if (err instanceof KubeApiError && (err.status === 410 || tooLarge(err))) {
          this.log.info({ rv: this.rv, err: err.message }, err.status === 410 ? 'resourceVersion too old (410): listing again' : 'resourceVersion too new for the server (504): listing again');
          needList = true;
          continue;
        }
        this.sink.failed(err as Error);
        if (silentAgain(err instanceof SilentWatch)) needList = true;
        // The server's Retry-After (429) when it asks for longer than the backoff would wait.
        const wait = Math.max(this.backoff(attempt++), err instanceof KubeApiError && err.status === 429 ? err.retryAfterMs ?? 0 : 0);
        this.log.warn({ err: (err as Error).message, attempt, waitMs: Math.round(wait) }, needList ? 'list failed; retrying' : 'watch failed; resuming');
        await sleep(wait, signal);
      }
    }
  }

  private backoff(attempt: number): number {
    return backoffMs(attempt, this.opts.initialBackoffMs, this.opts.maxBackoffMs);
  }

  /**
   * A paged list, then the difference from what was published before (nothing on the first).
   * False when the collection is not there (404): then it is empty as of a resourceVersion read
   * before the 404 was asked for, and that is what is published and how far it has delivered.
   */
  private async list(signal: AbortSignal): Promise<boolean> {
    const items: unknown[] = [];
    let listRv = '';
    let cont = '';
    // A 404 says nothing of what the collection held at a revision read after it was asked.
    const before = this.absent ? await this.sink.freshRevision(signal) : undefined;
    do {
      let page: any;
      try {
        page = await this.api.getJson(`${this.path}?limit=${this.opts.pageSize}${cont ? `&continue=${encodeURIComponent(cont)}` : ''}`, signal, this.opts.requestTimeoutMs);
      } catch (err) {
        if (!(err instanceof KubeApiError && err.status === 404 && !cont)) throw err;
        if (!this.absent) {
          await this.sink.notFound();
          if (signal.aborted) return false;
          this.absent = true;
          return this.list(signal);
        }
        this.emptied(before!);
        return false;
      }
      if (!Array.isArray(page?.items)) throw new KubeApiError(200, undefined, `${this.path}: a list without items`);
      // Every page of a list is one snapshot, at the first page's resourceVersion.
      listRv ||= String(page.metadata?.resourceVersion ?? '');
      items.push(...page.items);
      cont = page.metadata?.continue ?? '';
    } while (cont);
    if (this.absent) {
      this.absent = false;
      this.log.info('the collection is there now: listed, and watched from here');
      this.sink.missing(false);
    }
    const events: DatastoreEvent[] = [];
    const seen = new Set<string>();
    for (const obj of items) {
      const id = this.apply(obj, false, events);
      if (id !== undefined) seen.add(id);
    }
    for (const [id, k] of this.known) {
      if (seen.has(id)) continue;
      if (k.key) events.push({ key: k.key, value: null, revision: listRv });
      this.known.delete(id);
    }
    this.rv = listRv;
    this.sink.failed(undefined);
    this.log.info({ objects: items.length, changes: events.length, rv: listRv }, 'listed');
    this.sink.publish(events);
    this.advance(listRv);
    return true;
  }

  /** Not there (404) as of `rv`: what was published is deleted; delivered up to `rv`. */
  private emptied(rv: string): void {
    const events: DatastoreEvent[] = [];
    for (const k of this.known.values()) if (k.key) events.push({ key: k.key, value: null, revision: rv });
    this.known.clear();
    this.rv = '';
    this.sink.failed(undefined);
    this.sink.missing(true);
    this.sink.publish(events);
    this.advance(rv);
  }

  private async watch(signal: AbortSignal): Promise<WatchEnd> {
    // A refresh asked for while the list ran: that list may predate what it was asked for.
    if (this.relistDue) return 'ended';
    const ac = new AbortController();
    this.watchAbort = ac;
    const abortAll = () => ac.abort();
    signal.addEventListener('abort', abortAll, { once: true });
    // Silence, from the request on (a server may not even send headers), restarts the watch. Once
    // the stream is open, silence may be a quiet collection on a server that sends no bookmarks:
    // a restart, not a failure. A server that does not even answer the new request has failed.
    let silent = false;
    let heard = false;
    let timer: NodeJS.Timeout | undefined;
    const idle = () => {
      clearTimeout(timer);
      timer = setTimeout(() => { silent = true; ac.abort(); }, this.opts.inactivityMs);
    };
    const why = (err: unknown) => (silent ? new SilentWatch(`watch silent for ${this.opts.inactivityMs} ms (no event, no bookmark)`) : err);
    const timeout = Math.round(this.opts.watchTimeoutSecs * (0.8 + Math.random() * 0.4));
    idle();
    try {
      const res = await this.api.stream(`${this.path}?watch=1&resourceVersion=${encodeURIComponent(this.rv)}&allowWatchBookmarks=true&timeoutSeconds=${timeout}`, ac.signal);
      this.sink.failed(undefined);
      return await new Promise<WatchEnd>((resolve, reject) => {
        let partial = '';
        const finish = (end: WatchEnd | Error) => {
          res.removeAllListeners('data');
          ac.abort();
          if (end instanceof Error) reject(end); else resolve(end);
        };
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          if (ac.signal.aborted) return; // ended (or handed over): what is still buffered is not ours
          heard = true;
          idle();
          // Lines may be split across chunks: only whole lines are read.
          const lines = (partial + chunk).split('\n');
          partial = lines.pop()!;
          const events: DatastoreEvent[] = [];
          try {
            for (const line of lines) {
              if (line.trim() && this.onLine(line, events) === 'gone') {
                this.sink.publish(events);
                return finish('gone');
              }
            }
            this.sink.publish(events);
            // Events arrive in resourceVersion order: the last one read covers all before it.
            this.advance(this.rv);
          } catch (err) {
            // What was read so far is good; the rest comes again from the last resourceVersion.
            this.sink.publish(events);
            finish(err as Error);
          }
        });
        res.on('end', () => finish('ended'));
        const quietEnd = () => (heard ? 'ended' : 'quiet');
        res.on('error', (err) => finish(silent ? quietEnd() : err));
        res.on('close', () => finish(silent ? quietEnd() : new Error('watch connection closed before the end of the stream')));
      });
    } catch (err) {
      throw why(err);
    } finally {
      clearTimeout(timer);
      this.watchAbort = undefined;
      signal.removeEventListener('abort', abortAll);
    }
  }

  private onLine(line: string, events: DatastoreEvent[]): WatchEnd | undefined {
    let ev: { type?: unknown; object?: any };
    try { ev = JSON.parse(line); } catch { throw new KubeApiError(200, undefined, `${this.path}: a watch line that is not JSON: ${line.slice(0, 80)}`); }
    switch (ev.type) {
      case 'ADDED':
      case 'MODIFIED':
      case 'DELETED':
        this.apply(ev.object, ev.type === 'DELETED', events);
        return;
      case 'BOOKMARK': {
        const rv = ev.object?.metadata?.resourceVersion;
        if (typeof rv === 'string' && rv) this.rv = rv;
        return;
      }
      case 'ERROR': {
        const err = statusError(500, ev.object ?? {});
        if (err.status === 410) return 'gone';
        if (tooLarge(err)) {
          this.log.info({ rv: this.rv, err: err.message }, 'resourceVersion too new for the server (504): listing again');
          return 'gone';
        }
        throw err;
      }
      default:
        throw new KubeApiError(200, undefined, `${this.path}: unknown watch event type ${JSON.stringify(ev.type)}`);
    }
  }

  /**
   * Records one object's state and the events it means; returns its id (undefined when it has
   * none). An object that becomes something else (a pod that lost its IP, a policy renamed by
   * conversion) first deletes what it was.
   */
  private apply(obj: any, deleted: boolean, events: DatastoreEvent[]): string | undefined {
    const meta = obj?.metadata;
    const rv = typeof meta?.resourceVersion === 'string' ? meta.resourceVersion : '';
    if (typeof meta?.name !== 'string' || !meta.name || !rv) {
      this.sink.invalid('an object without metadata.name or metadata.resourceVersion');
      return undefined;
    }
    const id = `${meta.namespace ?? ''}/${meta.name}`;
    this.rv = rv;
    const prev = this.known.get(id);
    if (deleted) {
      if (prev?.key) events.push({ key: prev.key, value: null, revision: rv });
      this.known.delete(id);
      return id;
    }
    if (prev?.rv === rv) return id; // unchanged since last published (a relist)
    let next: ReturnType<WatchedResource['convert']>;
    try {
      next = this.resource.convert(obj);
    } catch (err) {
      if (!(err instanceof ConvertError)) throw err;
      // Skipped and counted; what was published for it before stays, as for a bad etcd value.
      this.sink.invalid(`${id}: ${err.message}`);
      return id;
    }
    if (prev?.key && prev.key !== next?.key) events.push({ key: prev.key, value: null, revision: rv });
    if (next) events.push({ key: next.key, value: next.value, revision: rv });
    this.known.set(id, { key: next?.key ?? null, rv });
    return id;
  }
}

/**
 * The watch cache's answer to a resourceVersion it does not have yet: 504 Timeout, cause
 * ResourceVersionTooLarge, "Too large resource version" in the message (older servers say only
 * that). Retrying the same version could wait forever: list again, as client-go and Calico do.
 */
function tooLarge(err: KubeApiError): boolean {
  return err.status === 504 && /too large resource version/i.test(err.message);
}
