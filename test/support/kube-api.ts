// A Kubernetes API contract server for tests: node:http on loopback that answers list and watch
// the way kube-apiserver does, so the Kubernetes datastore can be tested without a cluster
// (Debian's kubectl reads it too: test/kubectl.test.ts). It is our reading of the API, not a
// proof: watch-cache resourceVersion quirks and auth plugins are not modelled. Where the real
// apiserver was read (its watch cache, Calico's Kubernetes backend), it follows it:
// collections that are not installed answer a 404 Status, a watch from a resourceVersion the
// server does not have yet gets an in-stream ERROR 504 "Too large resource version" after a
// wait, bookmarks come about once a minute and 2 s before a watch's timeout, and discovery
// (/api, /apis, group versions) lists what is installed, for both Calico API groups.
//
// Writes go through the methods below (there is no POST/PUT/DELETE over HTTP): the adapter only
// reads, and tests must control exactly when each write happens.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface KubeApiOptions {
  /** Events kept for watch resume (default 1000); resuming from an RV older than that gets 410. */
  historyLimit?: number;
  /**
   * Each watch that asked for bookmarks gets one this often from its start (default 60 000, the
   * cacher's defaultBookmarkFrequency); 0 = only on bookmark().
   */
  bookmarkIntervalMs?: number;
  /** And one this long before its timeoutSeconds ends (default 2000, as the cacher); 0 = none. */
  bookmarkBeforeTimeoutMs?: number;
  /**
   * A watch from a resourceVersion above the server's waits this long for it (default 3000, the
   * watch cache's blockTimeout), then gets 200 + an ERROR Status 504 "Too large resource version".
   */
  tooLargeWaitMs?: number;
  /** The Calico API groups the cluster serves (default crd.projectcalico.org/v1 only). */
  calicoGroups?: readonly CalicoGroup[];
  /** Collections whose CRD is not installed: 404, as any path of a group not served. */
  missing?: readonly string[];
  /** If set, every request needs 'Authorization: Bearer <token>', else 401 Status. */
  token?: string;
  /** More tokens accepted besides `token` (until rotateToken). */
  tokens?: string[];
  /** A too-old watch RV as an HTTP 410 response (default) or as 200 + an ERROR event, then end. */
  goneAs?: 'http' | 'event';
  /** Every Nth line of a watch stream is written in two TCP chunks (default 3; 0 = never). */
  splitEvery?: number;
}

export type CalicoGroup = 'crd.projectcalico.org/v1' | 'projectcalico.org/v3';
export const CALICO_GROUPS: readonly CalicoGroup[] = ['crd.projectcalico.org/v1', 'projectcalico.org/v3'];

/** A copy of the whole state, as an etcd backup holds it. */
export interface KubeApiBackup { readonly rv: number; readonly store: Map<string, Map<string, unknown>> }

export interface KubeApiServer {
  readonly url: string;
  readonly port: number;
  /** A kubeconfig (JSON, which is YAML) with this server, insecure-skip-tls-verify, the token if any. */
  readonly kubeconfigPath: string;
  /** Current global resourceVersion: an etcd-like counter that every write increments. */
  readonly resourceVersion: number;
  /**
   * Collections are named by their cluster-wide path ('/api/v1/pods',
   * '/apis/crd.projectcalico.org/v1/ippools', ...); any such path works without registration.
   * An object is namespaced when it has metadata.namespace.
   */
  create(collection: string, obj: object): any;
  update(collection: string, obj: object): any;
  apply(collection: string, obj: object): any;
  remove(collection: string, namespace: string | undefined, name: string): void;
  get(collection: string, namespace: string | undefined, name: string): any | undefined;
  /** Copies of the current objects, sorted by namespace then name (one namespace if given). */
  list(collection: string, namespace?: string): any[];
  /** Drops the event history: a watch resuming from an RV before now gets 410 Gone. */
  compact(): void;
  /** Sends a BOOKMARK at the current RV to every open watch that asked for bookmarks. */
  bookmark(): void;
  /** Destroys every watch connection abruptly (no chunked terminator). */
  dropWatches(): void;
  /** While on, new and open watches get nothing at all, ever (a half-open connection). */
  stall(on: boolean): void;
  /**
   * The next n list or watch requests to the collection (any namespace) fail with `status`; a
   * 429 carries Retry-After: `retryAfterSecs` (default 1).
   */
  failNext(collection: string, status: number, n?: number, retryAfterSecs?: number): void;
  /** Removes a collection's CRD: its objects are deleted (DELETED events), its watches end, then 404. */
  uninstall(collection: string): void;
  /** Installs a collection's CRD (empty): listed, watched and in discovery from now on. */
  install(collection: string): void;
  /** Which Calico API groups the cluster serves from now on; watches on the others end. */
  setCalicoGroups(groups: readonly CalicoGroup[]): void;
  /** The state now (objects and resourceVersion). */
  backup(): KubeApiBackup;
  /**
   * An etcd restore: objects and resourceVersion as in `b`, the event history gone, every watch
   * cut (the apiserver restarts). A watch from a later resourceVersion then gets 504.
   */
  restore(b: KubeApiBackup): void;
  /** Closes the listener and every socket, then listens on the same port; state is kept. */
  restart(opts?: { loseHistory?: boolean }): Promise<void>;
  /**
   * From now on only `newToken` is accepted (401 for any other), and every open watch ends
   * cleanly: the client's next request must carry the new token. The kubeconfig is not rewritten.
   */
  rotateToken(newToken: string): void;
  /** Requests answered 401 for a missing or refused token. */
  readonly unauthorized: number;
  /**
   * Requests received per collection (failed ones included), bookmarks sent, 410s and 504s
   * (too large resource version) sent, 404s for collections not installed, every list and watch
   * request with its time.
   */
  readonly stats: {
    lists: Map<string, number>; watches: Map<string, number>; bookmarks: number; gone: number; tooLarge: number; notFound: number;
    requests: { collection: string; watch: boolean; at: number; status: number }[];
  };
  close(): Promise<void>;
}

export async function startKubeApi(opts: KubeApiOptions = {}): Promise<KubeApiServer> {
  const s = new ContractServer(opts);
  await s.listen(0);
  s.writeKubeconfig();
  return s;
}

// ---- model -------------------------------------------------------------------------------

interface Meta { name: string; namespace?: string; resourceVersion?: string; uid?: string; creationTimestamp?: string; [k: string]: unknown }
interface Obj { apiVersion?: string; kind?: string; metadata: Meta; [k: string]: unknown }
type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';
interface HistoryEvent { rv: number; collection: string; namespace: string | undefined; line: string }
/** A list as of one RV, kept so that every page of a chunked list comes from it. */
interface Snapshot { collection: string; namespace: string | undefined; rv: number; items: Obj[] }
interface Route { collection: string; apiVersion: string; plural: string; namespace?: string; name?: string }

/** Kinds the tests are likely to use; anything else is learnt from the first object stored. */
const KINDS: Record<string, string> = {
  pods: 'Pod', nodes: 'Node', namespaces: 'Namespace', services: 'Service', endpoints: 'Endpoints',
  serviceaccounts: 'ServiceAccount', endpointslices: 'EndpointSlice', networkpolicies: 'NetworkPolicy',
  adminnetworkpolicies: 'AdminNetworkPolicy', baselineadminnetworkpolicies: 'BaselineAdminNetworkPolicy',
  bgpconfigurations: 'BGPConfiguration', bgpfilters: 'BGPFilter', bgppeers: 'BGPPeer',
  blockaffinities: 'BlockAffinity', caliconodestatuses: 'CalicoNodeStatus', clusterinformations: 'ClusterInformation',
  felixconfigurations: 'FelixConfiguration', globalnetworkpolicies: 'GlobalNetworkPolicy',
  globalnetworksets: 'GlobalNetworkSet', hostendpoints: 'HostEndpoint', ipamblocks: 'IPAMBlock',
  ipamconfigs: 'IPAMConfig', ipamhandles: 'IPAMHandle', ippools: 'IPPool', ipreservations: 'IPReservation',
  kubecontrollersconfigurations: 'KubeControllersConfiguration', networksets: 'NetworkSet', tiers: 'Tier',
};

/** What discovery lists per group version: plural → [kind, namespaced]. Calico's are the same in both groups. */
const CALICO_RESOURCES: Record<string, [string, boolean]> = {
  bgpconfigurations: ['BGPConfiguration', false], bgpfilters: ['BGPFilter', false], bgppeers: ['BGPPeer', false],
  blockaffinities: ['BlockAffinity', false], caliconodestatuses: ['CalicoNodeStatus', false], clusterinformations: ['ClusterInformation', false],
  felixconfigurations: ['FelixConfiguration', false], globalnetworkpolicies: ['GlobalNetworkPolicy', false], globalnetworksets: ['GlobalNetworkSet', false],
  hostendpoints: ['HostEndpoint', false], ipamblocks: ['IPAMBlock', false], ipamhandles: ['IPAMHandle', false], ippools: ['IPPool', false],
  ipreservations: ['IPReservation', false], kubecontrollersconfigurations: ['KubeControllersConfiguration', false], networkpolicies: ['NetworkPolicy', true],
  networksets: ['NetworkSet', true], stagedglobalnetworkpolicies: ['StagedGlobalNetworkPolicy', false], stagednetworkpolicies: ['StagedNetworkPolicy', true],
  stagedkubernetesnetworkpolicies: ['StagedKubernetesNetworkPolicy', true], tiers: ['Tier', false],
};
const DISCOVERY: Record<string, Record<string, [string, boolean]>> = {
  v1: {
    pods: ['Pod', true], nodes: ['Node', false], namespaces: ['Namespace', false], services: ['Service', true],
    serviceaccounts: ['ServiceAccount', true], endpoints: ['Endpoints', true],
  },
  'discovery.k8s.io/v1': { endpointslices: ['EndpointSlice', true] },
  'networking.k8s.io/v1': { networkpolicies: ['NetworkPolicy', true] },
  'crd.projectcalico.org/v1': CALICO_RESOURCES,
  'projectcalico.org/v3': CALICO_RESOURCES,
};
const READ_VERBS = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];

const REASONS: Record<number, string> = {
  400: 'BadRequest', 401: 'Unauthorized', 403: 'Forbidden', 404: 'NotFound', 405: 'MethodNotAllowed',
  409: 'Conflict', 410: 'Expired', 422: 'Invalid', 429: 'TooManyRequests', 500: 'InternalError',
  503: 'ServiceUnavailable', 504: 'Timeout',
};

function status(code: number, message: string, reason = REASONS[code] ?? 'Unknown', details?: object) {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, ...(details ? { details } : {}), code };
}

function apiError(code: number, reason: string, message: string): Error {
  return Object.assign(new Error(message), { code, reason });
}

/** '/api/v1/<plural>' or '/apis/<group>/<version>/<plural>' and what follows it. */
function parseRoute(pathname: string): Route | undefined {
  const segs = pathname.split('/').filter(Boolean).map(decodeURIComponent);
  let prefixLen: number;
  if (segs[0] === 'api' && segs.length >= 3) prefixLen = 2;
  else if (segs[0] === 'apis' && segs.length >= 4) prefixLen = 3;
  else return undefined;
  const prefix = segs.slice(0, prefixLen);
  const apiVersion = prefixLen === 2 ? prefix[1]! : `${prefix[1]}/${prefix[2]}`;
  const rest = segs.slice(prefixLen);
  const at = (plural: string) => ({ collection: `/${[...prefix, plural].join('/')}`, apiVersion, plural });
  // By length, so '/api/v1/namespaces/x' is the namespace x and '/api/v1/namespaces/x/pods' the pods in x.
  if (rest.length === 1) return at(rest[0]!);
  if (rest.length === 2) return { ...at(rest[0]!), name: rest[1]! };
  if (rest.length === 3 && rest[0] === 'namespaces') return { ...at(rest[2]!), namespace: rest[1]! };
  if (rest.length === 4 && rest[0] === 'namespaces') return { ...at(rest[2]!), namespace: rest[1]!, name: rest[3]! };
  return undefined;
}

function collectionRoute(collection: string): Route {
  const r = parseRoute(collection);
  if (!r || r.name !== undefined || r.namespace !== undefined) throw new Error(`not a cluster-wide collection path: ${collection}`);
  return r;
}

const keyOf = (namespace: string | undefined, name: string) => `${namespace ?? ''}/${name}`;

function byNamespaceThenName(a: Obj, b: Obj): number {
  const [na, nb] = [a.metadata.namespace ?? '', b.metadata.namespace ?? ''];
  if (na !== nb) return na < nb ? -1 : 1;
  return a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0;
}

// ---- one watch response ------------------------------------------------------------------

/**
 * The line writer of one watch. Lines go out in order through a queue because some are written
 * in two halves, a couple of event-loop turns apart, so that readers see a JSON line split across
 * TCP reads as they do from a real apiserver behind a proxy.
 */
class WatchStream {
  private queue: Buffer[] = [];
  private written = 0;
  private halfWritten = false;
  private ending = false;
  private readonly cleanups = new Set<() => void>();
  /** 'stalled': half-open, nothing is ever written again. */
  state: 'open' | 'stalled' | 'closed' = 'open';

  constructor(
    readonly route: Route,
    readonly wantsBookmarks: boolean,
    readonly socket: Socket,
    private readonly res: ServerResponse,
    private readonly splitEvery: number,
  ) {}

  matches(collection: string, namespace: string | undefined): boolean {
    return this.route.collection === collection && (this.route.namespace === undefined || this.route.namespace === namespace);
  }

  send(line: string): void {
    if (this.state !== 'open' || this.ending) return;
    this.queue.push(Buffer.from(line));
    this.pump();
  }

  /** A clean end (chunked terminator) once everything queued is out. */
  end(): void {
    this.ending = true;
    this.pump();
  }

  timer(ms: number, fn: () => void): void {
    const t = setTimeout(() => { this.cleanups.delete(clear); fn(); }, ms);
    const clear = () => clearTimeout(t);
    this.cleanups.add(clear);
  }

  stall(): void { this.stop('stalled'); }
  close(): void { this.stop('closed'); }

  private stop(state: 'stalled' | 'closed'): void {
    if (this.state === 'closed') return;
    this.state = state;
    this.queue = [];
    for (const c of this.cleanups) c();
    this.cleanups.clear();
  }

  private pump(): void {
    while (this.state === 'open' && !this.halfWritten && this.queue.length > 0) {
      const line = this.queue.shift()!;
      this.written++;
      if (this.splitEvery > 0 && this.written % this.splitEvery === 0 && line.length > 1) {
        // Split by bytes, possibly inside a UTF-8 sequence, which TCP may do too. Two immediates,
        // not one: the reader's poll phase must run in between to read the first half alone.
        const cut = line.length >> 1;
        this.res.write(line.subarray(0, cut));
        this.halfWritten = true;
        this.immediate(() => this.immediate(() => {
          this.halfWritten = false;
          if (this.state !== 'open') return;
          this.res.write(line.subarray(cut));
          this.pump();
        }));
        return;
      }
      this.res.write(line);
    }
    if (this.ending && this.state === 'open' && !this.halfWritten && this.queue.length === 0) {
      this.res.end();
      this.close();
    }
  }

  private immediate(fn: () => void): void {
    const i = setImmediate(() => { this.cleanups.delete(clear); fn(); });
    const clear = () => clearImmediate(i);
    this.cleanups.add(clear);
  }
}

// ---- the server --------------------------------------------------------------------------

class ContractServer implements KubeApiServer {
  readonly stats: KubeApiServer['stats'] = { lists: new Map(), watches: new Map(), bookmarks: 0, gone: 0, tooLarge: 0, notFound: 0, requests: [] };
  readonly kubeconfigPath: string;
  port = 0;

  private rv = 0;
  private readonly store = new Map<string, Map<string, Obj>>();
  private readonly kinds = new Map<string, string>();
  /** history[head..] are the retained events, oldest first. */
  private history: HistoryEvent[] = [];
  private head = 0;
  /** Resuming from an RV below this needs events that are gone. */
  private minResumeRv = 0;
  private readonly snapshots = new Map<number, Snapshot>();
  private nextSnapshotId = 1;
  private readonly watches = new Set<WatchStream>();
  private readonly sockets = new Set<Socket>();
  private readonly failures = new Map<string, { status: number; n: number; retryAfterSecs: number }>();
  private stalled = false;
  private closed = false;
  private readonly bookmarkIntervalMs: number;
  private readonly bookmarkBeforeTimeoutMs: number;
  private readonly tooLargeWaitMs: number;
  private calicoGroups: Set<string>;
  private readonly missing: Set<string>;
  private readonly server: Server;
  private readonly dir: string;
  private readonly historyLimit: number;
  private readonly goneAs: 'http' | 'event';
  private readonly splitEvery: number;
  private token: string | undefined;
  private accepted: Set<string> | undefined;
  unauthorized = 0;

  constructor(opts: KubeApiOptions) {
    this.historyLimit = opts.historyLimit ?? 1000;
    this.goneAs = opts.goneAs ?? 'http';
    this.splitEvery = opts.splitEvery ?? 3;
    this.token = opts.token;
    if (opts.token !== undefined || opts.tokens?.length) this.accepted = new Set([...(opts.token !== undefined ? [opts.token] : []), ...(opts.tokens ?? [])]);
    this.bookmarkIntervalMs = opts.bookmarkIntervalMs ?? 60_000;
    this.bookmarkBeforeTimeoutMs = opts.bookmarkBeforeTimeoutMs ?? 2000;
    this.tooLargeWaitMs = opts.tooLargeWaitMs ?? 3000;
    this.calicoGroups = new Set(opts.calicoGroups ?? ['crd.projectcalico.org/v1']);
    this.missing = new Set((opts.missing ?? []).map((c) => collectionRoute(c).collection));
    this.dir = mkdtempSync(join(tmpdir(), 'kube-api-'));
    this.kubeconfigPath = join(this.dir, 'kubeconfig');
    this.server = createServer((req, res) => {
      try { this.handle(req, res); } catch (err) { this.fail(res, 500, String((err as Error)?.message ?? err)); }
    });
    this.server.on('connection', (s) => { this.sockets.add(s); s.on('close', () => this.sockets.delete(s)); });
    this.server.on('clientError', (_err, socket) => socket.destroy());
  }

  get url(): string { return `http://127.0.0.1:${this.port}`; }
  get resourceVersion(): number { return this.rv; }

  listen(port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, '127.0.0.1', () => {
        this.server.off('error', reject);
        this.port = (this.server.address() as { port: number }).port;
        resolve();
      });
    });
  }

  writeKubeconfig(): void {
    // As most kubeconfigs for a local http server say it (kubectl needs neither; see kubernetes.test.ts).
    const config = {
      apiVersion: 'v1', kind: 'Config', preferences: {},
      clusters: [{ name: 'contract', cluster: { server: this.url, 'insecure-skip-tls-verify': true } }],
      users: [{ name: 'contract', user: this.token !== undefined ? { token: this.token } : {} }],
      contexts: [{ name: 'contract', context: { cluster: 'contract', user: 'contract' } }],
      'current-context': 'contract',
    };
    writeFileSync(this.kubeconfigPath, JSON.stringify(config, null, 2));
  }

  // ---- writes ----

  create(collection: string, obj: object): any {
    const route = collectionRoute(collection);
    if (!this.installed(route)) throw apiError(404, 'NotFound', `the server could not find the requested resource (${collection} is not installed)`);
    const o = this.prepare(route, obj);
    const items = this.items(collection);
    if (items.has(keyOf(o.metadata.namespace, o.metadata.name))) {
      throw apiError(409, 'AlreadyExists', `${route.plural} "${o.metadata.name}" already exists`);
    }
    o.metadata.uid = randomUUID();
    // RFC 3339 at second precision, as metav1.Time serialises.
    o.metadata.creationTimestamp = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
    return this.commit(collection, 'ADDED', o);
  }

  update(collection: string, obj: object): any {
    const route = collectionRoute(collection);
    const o = this.prepare(route, obj);
    const old = this.items(collection).get(keyOf(o.metadata.namespace, o.metadata.name));
    if (!old) throw apiError(404, 'NotFound', `${route.plural} "${o.metadata.name}" not found`);
    // Identity fields are the server's, whatever the caller sent.
    o.metadata.uid = old.metadata.uid;
    o.metadata.creationTimestamp = old.metadata.creationTimestamp;
    return this.commit(collection, 'MODIFIED', o);
  }

  apply(collection: string, obj: object): any {
    const m = (obj as Partial<Obj>).metadata;
    const exists = m?.name !== undefined && this.get(collection, m.namespace || undefined, m.name) !== undefined;
    return exists ? this.update(collection, obj) : this.create(collection, obj);
  }

  remove(collection: string, namespace: string | undefined, name: string): void {
    const route = collectionRoute(collection);
    const old = this.items(collection).get(keyOf(namespace, name));
    if (!old) throw apiError(404, 'NotFound', `${route.plural} "${name}" not found`);
    // The DELETED event carries the last state under the deletion's own RV (api-concepts,
    // "Efficient detection of changes"). A copy: snapshots still hold the old object.
    this.commit(collection, 'DELETED', { ...old, metadata: { ...old.metadata } });
  }

  get(collection: string, namespace: string | undefined, name: string): any | undefined {
    collectionRoute(collection);
    const o = this.store.get(collection)?.get(keyOf(namespace, name));
    return o && structuredClone(o);
  }

  list(collection: string, namespace?: string): any[] {
    return structuredClone(this.current({ ...collectionRoute(collection), namespace }));
  }

  /** A JSON copy of the caller's object with apiVersion/kind filled in as the server would. */
  private prepare(route: Route, obj: object): Obj {
    const o = JSON.parse(JSON.stringify(obj)) as Obj;
    if (typeof o.metadata?.name !== 'string' || o.metadata.name === '') throw apiError(422, 'Invalid', 'metadata.name: Required value');
    if (o.metadata.namespace === '') delete o.metadata.namespace;
    if (o.apiVersion === undefined) o.apiVersion = route.apiVersion;
    else if (o.apiVersion !== route.apiVersion) throw new Error(`apiVersion ${o.apiVersion} does not belong in ${route.collection}`);
    if (typeof o.kind === 'string') this.kinds.set(route.collection, o.kind);
    else o.kind = this.kindOf(route);
    return o;
  }

  /** Stored objects are never mutated after this, so snapshots can share them. */
  private commit(collection: string, type: EventType, o: Obj): any {
    this.rv++;
    o.metadata.resourceVersion = String(this.rv);
    const key = keyOf(o.metadata.namespace, o.metadata.name);
    if (type === 'DELETED') this.items(collection).delete(key);
    else this.items(collection).set(key, o);
    const line = `${JSON.stringify({ type, object: o })}\n`;
    this.history.push({ rv: this.rv, collection, namespace: o.metadata.namespace, line });
    this.trimHistory();
    for (const w of this.watches) if (w.matches(collection, o.metadata.namespace)) w.send(line);
    return structuredClone(o);
  }

  private trimHistory(): void {
    while (this.history.length - this.head > this.historyLimit) this.minResumeRv = this.history[this.head++]!.rv;
    if (this.head > 1024 && this.head * 2 > this.history.length) { this.history = this.history.slice(this.head); this.head = 0; }
    this.expireSnapshots();
  }

  /** A continue token lives as long as its RV is in history, like etcd's compaction window. */
  private expireSnapshots(): void {
    for (const [id, s] of this.snapshots) if (s.rv < this.minResumeRv) this.snapshots.delete(id);
  }

  /** A Calico group the cluster does not serve, or a CRD not installed. */
  private installed(route: Route): boolean {
    const calico = CALICO_GROUPS.find((g) => route.apiVersion === g);
    return !this.missing.has(route.collection) && (calico === undefined || this.calicoGroups.has(calico));
  }

  uninstall(collection: string): void {
    const route = collectionRoute(collection);
    // Deleting a CRD deletes its objects first, each a DELETED event to the watches.
    for (const o of this.current(route)) this.remove(collection, o.metadata.namespace, o.metadata.name);
    this.missing.add(route.collection);
    this.endWatches((w) => w.route.collection === route.collection);
  }

  install(collection: string): void {
    this.missing.delete(collectionRoute(collection).collection);
  }

  setCalicoGroups(groups: readonly CalicoGroup[]): void {
    this.calicoGroups = new Set(groups);
    this.endWatches((w) => !this.installed(w.route));
  }

  private endWatches(which: (w: WatchStream) => boolean): void {
    for (const w of [...this.watches]) if (which(w)) w.end();
  }

  backup(): KubeApiBackup {
    return { rv: this.rv, store: new Map([...this.store].map(([c, m]) => [c, new Map([...m].map(([k, o]) => [k, structuredClone(o)]))])) };
  }

  restore(b: KubeApiBackup): void {
    this.store.clear();
    for (const [c, m] of b.store) this.store.set(c, new Map([...m].map(([k, o]) => [k, structuredClone(o) as Obj])));
    this.rv = b.rv;
    this.compact();
    this.dropWatches();
  }

  compact(): void {
    this.history = [];
    this.head = 0;
    this.minResumeRv = this.rv;
    this.snapshots.clear();
  }

  // ---- faults ----

  bookmark(): void {
    for (const w of this.watches) this.sendBookmark(w);
  }

  private sendBookmark(w: WatchStream): void {
    if (!w.wantsBookmarks || w.state !== 'open') return;
    // "Object returned in that event is of the type requested by the request, but only
    // resourceVersion field is set" (api-concepts, "Watch bookmarks").
    const object = { kind: this.kindOf(w.route), apiVersion: w.route.apiVersion, metadata: { resourceVersion: String(this.rv) } };
    w.send(`${JSON.stringify({ type: 'BOOKMARK', object })}\n`);
    this.stats.bookmarks++;
  }

  dropWatches(): void {
    for (const w of [...this.watches]) { w.close(); w.socket.destroy(); }
  }

  stall(on: boolean): void {
    this.stalled = on;
    if (on) for (const w of this.watches) w.stall();
  }

  failNext(collection: string, status: number, n = 1, retryAfterSecs = 1): void {
    collectionRoute(collection);
    if (n > 0) this.failures.set(collection, { status, n, retryAfterSecs });
    else this.failures.delete(collection);
  }

  async restart(opts: { loseHistory?: boolean } = {}): Promise<void> {
    await this.closeListener();
    if (opts.loseHistory) this.compact();
    await this.listen(this.port);
  }

  rotateToken(newToken: string): void {
    this.token = newToken;
    this.accepted = new Set([newToken]);
    for (const w of this.watches) w.end();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.closeListener();
    rmSync(this.dir, { recursive: true, force: true });
  }

  private closeListener(): Promise<void> {
    const done = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const w of this.watches) w.close();
    this.watches.clear();
    for (const s of this.sockets) s.destroy();
    return done;
  }

  // ---- HTTP ----

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (this.accepted && !this.accepted.has(/^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '')) {
      this.unauthorized++;
      return this.fail(res, 401, 'Unauthorized');
    }
    if (req.method !== 'GET') return this.fail(res, 405, `the contract server is read-only over HTTP (${req.method})`);
    if (this.serveDiscovery(res, url.pathname)) return;
    const route = parseRoute(url.pathname);
    if (!route) return this.fail(res, 404, 'the server could not find the requested resource');
    // The apiserver's answer for a resource no CRD defines: the same Status as any unknown path.
    const notInstalled = () => { this.stats.notFound++; this.fail(res, 404, 'the server could not find the requested resource', 'NotFound', {}); };
    if (route.name !== undefined) return this.installed(route) ? this.serveGet(res, route) : notInstalled();

    const q = url.searchParams;
    const watch = q.get('watch') === 'true' || q.get('watch') === '1';
    const counts = watch ? this.stats.watches : this.stats.lists;
    counts.set(route.collection, (counts.get(route.collection) ?? 0) + 1);
    const logged = { collection: route.collection, watch, at: Date.now(), status: 200 };
    this.stats.requests.push(logged);
    if (!this.installed(route)) { logged.status = 404; return notInstalled(); }

    const f = this.failures.get(route.collection);
    if (f) {
      if (--f.n <= 0) this.failures.delete(route.collection);
      logged.status = f.status;
      return this.fail(res, f.status, `injected failure (${f.status})`, undefined, undefined, f.retryAfterSecs);
    }
    // Unsupported, and silently ignoring them would hide a misuse.
    for (const p of ['labelSelector', 'fieldSelector', 'sendInitialEvents']) {
      if (q.get(p)) return this.fail(res, 400, `${p} is not supported by the contract server`);
    }
    if (watch) this.serveWatch(req, res, route, q);
    else this.serveList(res, route, q);
  }

  /**
   * Discovery as the apiserver serves it: /api (APIVersions), /apis (APIGroupList), /apis/<group>
   * (APIGroup) and /api/v1, /apis/<group>/<version> (APIResourceList). A Calico group is listed
   * while it is served and has a CRD installed. False when `pathname` is not a discovery path.
   */
  private serveDiscovery(res: ServerResponse, pathname: string): boolean {
    const segs = pathname.split('/').filter(Boolean);
    const listed = (gv: string) => Object.entries(DISCOVERY[gv] ?? {}).filter(([plural]) => this.installed(collectionRoute(`/${gv === 'v1' ? 'api' : 'apis'}/${gv}/${plural}`)));
    const groups = Object.keys(DISCOVERY).filter((gv) => gv !== 'v1' && listed(gv).length > 0);
    const group = (gv: string) => {
      const [name, version] = gv.split('/');
      const v = { groupVersion: gv, version };
      return { name, versions: [v], preferredVersion: v };
    };
    const resources = (gv: string) => ({
      kind: 'APIResourceList', apiVersion: 'v1', groupVersion: gv,
      resources: listed(gv).map(([plural, [kind, namespaced]]) => ({ name: plural, singularName: kind.toLowerCase(), namespaced, kind, verbs: READ_VERBS })),
    });
    if (segs.length === 1 && segs[0] === 'api') {
      this.json(res, 200, { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: `127.0.0.1:${this.port}` }] });
    } else if (segs.length === 2 && segs[0] === 'api' && segs[1] === 'v1') {
      this.json(res, 200, resources('v1'));
    } else if (segs.length === 1 && segs[0] === 'apis') {
      this.json(res, 200, { kind: 'APIGroupList', apiVersion: 'v1', groups: groups.map(group) });
    } else if (segs[0] === 'apis' && (segs.length === 2 || segs.length === 3)) {
      const gv = groups.find((g) => g === segs.slice(1).join('/') || (segs.length === 2 && g.split('/')[0] === segs[1]));
      if (!gv) this.fail(res, 404, 'the server could not find the requested resource', 'NotFound', {});
      else this.json(res, 200, segs.length === 2 ? { kind: 'APIGroup', apiVersion: 'v1', ...group(gv) } : resources(gv));
    } else {
      return false;
    }
    return true;
  }

  private serveGet(res: ServerResponse, route: Route): void {
    const o = this.store.get(route.collection)?.get(keyOf(route.namespace, route.name!));
    if (!o) {
      const group = route.apiVersion.includes('/') ? route.apiVersion.split('/')[0] : '';
      return this.fail(res, 404, `${route.plural} "${route.name}" not found`, 'NotFound', { name: route.name, group, kind: route.plural });
    }
    this.json(res, 200, o);
  }

  /**
   * "Retrieving large results sets in chunks": every page comes from the first page's snapshot
   * and carries its RV; the token is opaque; an expired one gets 410 (reason Expired).
   */
  private serveList(res: ServerResponse, route: Route, q: URLSearchParams): void {
    const limitParam = q.get('limit');
    const limit = limitParam === null || limitParam === '' ? 0 : Number(limitParam);
    if (!Number.isInteger(limit) || limit < 0) return this.fail(res, 400, `invalid limit: ${limitParam}`);
    const token = q.get('continue');
    let snap: Snapshot;
    let id: number | undefined;
    let start = 0;
    if (token) {
      const t = decodeToken(token);
      const found = t && this.snapshots.get(t.id);
      if (!t || !found || found.rv !== t.rv) {
        return this.fail(res, 410, 'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.', 'Expired');
      }
      if (found.collection !== route.collection || found.namespace !== route.namespace) return this.fail(res, 400, 'continue token belongs to another list');
      snap = found;
      id = t.id;
      start = t.start;
    } else {
      snap = { collection: route.collection, namespace: route.namespace, rv: this.rv, items: this.current(route) };
    }
    const end = limit > 0 ? Math.min(start + limit, snap.items.length) : snap.items.length;
    const metadata: Record<string, unknown> = { resourceVersion: String(snap.rv) };
    if (end < snap.items.length) {
      if (id === undefined) id = this.keepSnapshot(snap);
      metadata.continue = encodeToken({ v: 'meta.k8s.io/v1', rv: snap.rv, start: end, id });
      metadata.remainingItemCount = snap.items.length - end;
    }
    this.json(res, 200, { kind: `${this.kindOf(route)}List`, apiVersion: route.apiVersion, metadata, items: snap.items.slice(start, end) });
  }

  private keepSnapshot(s: Snapshot): number {
    const id = this.nextSnapshotId++;
    this.snapshots.set(id, s);
    // Abandoned paged lists must not pile up; the oldest token expires first.
    if (this.snapshots.size > 64) this.snapshots.delete(this.snapshots.keys().next().value!);
    return id;
  }

  /**
   * "Semantics for watch": resourceVersion unset or "0" starts with synthetic ADDED events for
   * the current state; "N" replays every event after N, or 410 Gone if that history is lost.
   */
  private serveWatch(req: IncomingMessage, res: ServerResponse, route: Route, q: URLSearchParams): void {
    const rvParam = q.get('resourceVersion') ?? '';
    let from: number | undefined;
    if (rvParam !== '' && rvParam !== '0') {
      if (!/^\d+$/.test(rvParam)) return this.fail(res, 400, `invalid resource version: ${rvParam}`);
      from = Number(rvParam);
      if (from < this.minResumeRv) return this.gone(res, from);
    }
    // Fractions are accepted (the apiserver wants an integer) so tests can time out quickly.
    const timeout = Number(q.get('timeoutSeconds') ?? 0);
    if (!Number.isFinite(timeout) || timeout < 0) return this.fail(res, 400, `invalid timeoutSeconds: ${q.get('timeoutSeconds')}`);

    const w = new WatchStream(route, q.get('allowWatchBookmarks') === 'true', req.socket, res, this.splitEvery);
    this.watches.add(w);
    res.on('close', () => { w.close(); this.watches.delete(w); });
    if (this.stalled) { w.stall(); return; } // not even the response headers
    if (from !== undefined && from > this.rv) {
      // The watch cache waits up to blockTimeout for a resourceVersion it has not seen, then
      // answers NewTooLargeResourceVersionError as an ERROR event (storage/errors.go). Nothing
      // is written meanwhile, not even the headers.
      this.watches.delete(w);
      w.timer(this.tooLargeWaitMs, () => {
        if (from! <= this.rv) return this.startWatch(w, res, route, from, timeout);
        this.stats.tooLarge++;
        w.close();
        const body = status(504, `Timeout: Too large resource version: ${from}, current: ${this.rv}`, 'Timeout', {
          causes: [{ reason: 'ResourceVersionTooLarge', message: 'Too large resource version' }], retryAfterSeconds: 1,
        });
        res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private' });
        res.end(`${JSON.stringify({ type: 'ERROR', object: body })}\n`);
      });
      return;
    }
    this.startWatch(w, res, route, from, timeout);
  }

  private startWatch(w: WatchStream, res: ServerResponse, route: Route, from: number | undefined, timeout: number): void {
    this.watches.add(w);
    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private' });
    res.flushHeaders();
    if (from === undefined) {
      for (const o of this.current(route)) w.send(`${JSON.stringify({ type: 'ADDED', object: o })}\n`);
    } else {
      for (let i = this.head; i < this.history.length; i++) {
        const e = this.history[i]!;
        if (e.rv > from && w.matches(e.collection, e.namespace)) w.send(e.line);
      }
    }
    // timeoutSeconds ends the response cleanly, the normal way a watch ends.
    if (timeout > 0) w.timer(timeout * 1000, () => w.end());
    // The cacher's nextBookmarkTime: min(now + bookmarkFrequency, deadline - 2 s), none once that is past.
    const deadline = timeout > 0 && this.bookmarkBeforeTimeoutMs > 0 ? Date.now() + timeout * 1000 - this.bookmarkBeforeTimeoutMs : Infinity;
    const schedule = () => {
      const now = Date.now();
      const next = Math.min(this.bookmarkIntervalMs > 0 ? now + this.bookmarkIntervalMs : Infinity, deadline);
      // The one before the deadline is the last (timers may fire a millisecond early by the wall clock).
      if (Number.isFinite(next) && next > now) w.timer(next - now, () => { this.sendBookmark(w); if (next < deadline) schedule(); });
    };
    if (w.wantsBookmarks) schedule();
  }

  private gone(res: ServerResponse, from: number): void {
    this.stats.gone++;
    const body = status(410, `too old resource version: ${from} (${this.minResumeRv})`, 'Expired');
    if (this.goneAs === 'http') return this.json(res, 410, body);
    // What a watch served from the watch cache does: 200, one ERROR event, end of stream.
    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private' });
    res.end(`${JSON.stringify({ type: 'ERROR', object: body })}\n`);
  }

  private fail(res: ServerResponse, code: number, message: string, reason?: string, details?: object, retryAfterSecs = 1): void {
    if (code === 410) this.stats.gone++;
    const d = code === 429 ? { ...details, retryAfterSeconds: retryAfterSecs } : details;
    this.json(res, code, status(code, message, reason, d), code === 429 ? { 'Retry-After': String(retryAfterSecs) } : {});
  }

  private json(res: ServerResponse, code: number, body: unknown, headers: Record<string, string> = {}): void {
    const data = JSON.stringify(body);
    res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data), ...headers });
    res.end(data);
  }

  // ---- store ----

  private items(collection: string): Map<string, Obj> {
    let m = this.store.get(collection);
    if (!m) this.store.set(collection, (m = new Map()));
    return m;
  }

  private current(route: Route): Obj[] {
    const all = [...(this.store.get(route.collection)?.values() ?? [])];
    return all.filter((o) => route.namespace === undefined || o.metadata.namespace === route.namespace).sort(byNamespaceThenName);
  }

  private kindOf(route: Route): string {
    return this.kinds.get(route.collection) ?? KINDS[route.plural] ?? route.plural.replace(/^./, (c) => c.toUpperCase()).replace(/s$/, '');
  }
}

// ---- continue tokens ---------------------------------------------------------------------

interface Token { v: string; rv: number; start: number; id: number }

function encodeToken(t: Token): string {
  return Buffer.from(JSON.stringify(t)).toString('base64url');
}

function decodeToken(s: string): Token | undefined {
  try {
    const t = JSON.parse(Buffer.from(s, 'base64url').toString()) as Partial<Token>;
    return Number.isInteger(t.rv) && Number.isInteger(t.start) && Number.isInteger(t.id) ? (t as Token) : undefined;
  } catch {
    return undefined;
  }
}
