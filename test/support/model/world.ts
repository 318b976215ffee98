// The world a model run acts on: a real etcd (two replicas on it) or the Kubernetes contract
// server (one or two replicas), the calico-fanout servers, and the clients under test. In the
// tiers world, two tier-1 replicas on etcd and one or two tier-2 replicas following them through
// TCP proxies (so that a tier-1 replica can be killed or hung towards the tier below); agents
// rotate over every server of both tiers. `apply` carries out one action; `heal` ends every
// fault; `content` reads what the datastore holds.
import type { ClientCache } from '../../../client/cache.js';
import { SyncClient, type Update } from '../../../client/index.js';
import type { App } from '../../../cmd/app.js';
import { createDatastore } from '../../../cmd/datastores.js';
import { loadConfig, type Config } from '../../../src/config.js';
import { silentLogger } from '../../../src/logging.js';
import { encodeValue } from '../../../src/protocol/canonical.js';
import { etcdContent, startEtcd, type EtcdServer } from '../etcd.js';
import { startServerOn } from '../harness.js';
import { stablePort } from '../metrics.js';
import { startKubeApi, type KubeApiOptions, type KubeApiServer } from '../kube-api.js';
import { startProxy, type TcpProxy } from '../tcp-proxy.js';
import { startTier } from '../tiers.js';
import type { Action, ClientSpec, Flavour } from './actions.js';
import { UpdateChecker } from './invariants.js';
import { ghostKey, kubeContent, parseKubeId, type WriteOp } from './resources.js';

export interface WorldConfig {
  flavour: Flavour;
  /** Every server, of both tiers. */
  replicas: number;
  /** Tiers: how many of the replicas (the first ones) read etcd; the others follow them. */
  tier1?: number;
  clients: ClientSpec[];
  /** Server settings (the datastore's are derived from them). */
  server: Partial<Config>;
  kube?: KubeApiOptions;
  /** The order in which client i tries the replicas: rotated by this. */
  rotation: number[];
}

export interface ServerHandle { app: App; url: string; close(): Promise<void> }

export interface ClientUnderTest {
  readonly i: number;
  readonly label: string;
  readonly spec: ClientSpec;
  readonly client: SyncClient;
  readonly checker: UpdateChecker;
  /** Corruptions applied to its cache (each may cost one checksum mismatch). */
  corruptions: number;
  /** The last few things its library logged (welcome modes, reconnects), for failure reports. */
  readonly events: string[];
  /**
   * Protocol errors the library reported for frames that arrived after it had closed the
   * connection over a checksum mismatch (a client bug, now fixed: test/model-regressions.test.ts),
   * and every other protocol error, with its message: both fail the run, told apart.
   */
  afterMismatchErrors: number;
  readonly otherProtocolErrors: string[];
  stallTimer?: NodeJS.Timeout;
  /** The last frames its library handled (type, position before), for failure reports. */
  readonly frames: string[];
}

type Internals = { ws?: { pause(): void; resume(): void; terminate(): void }; preferred?: string; epoch?: string; cache: ClientCache };
const internals = (c: SyncClient) => c as unknown as Internals;
export const epochOf = (c: SyncClient): string => internals(c).epoch ?? '-';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `p`, or the string 'timeout' after `ms`. */
async function within<T>(p: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let t: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<'timeout'>((r) => { t = setTimeout(() => r('timeout'), ms); })]);
  } finally {
    clearTimeout(t);
  }
}

export class World {
  etcd: EtcdServer | undefined;
  api: KubeApiServer | undefined;
  readonly servers: (ServerHandle | undefined)[] = [];
  readonly ports: number[] = [];
  /** Tiers: per tier-1 replica, the proxy the tier below reaches it through. */
  readonly proxies: TcpProxy[] = [];
  readonly clients: ClientUnderTest[] = [];
  /** Observations that fail nothing but belong in the report (a slow close, …). */
  readonly notes: string[] = [];
  /** What etcd actually is (it may be continued early, see closeServer). */
  private etcdPaused = false;
  private etcdKilled = false;
  private ghosts = 0;
  private readonly t0 = Date.now();

  private constructor(readonly cfg: WorldConfig, private readonly log: (line: string) => void) {}

  static async create(cfg: WorldConfig, log: (line: string) => void): Promise<World> {
    const w = new World(cfg, log);
    if (cfg.flavour !== 'kube') w.etcd = await startEtcd({ progressNotifyMs: 200 });
    else w.api = await startKubeApi({ historyLimit: 5000, ...cfg.kube });
    return w;
  }

  /** Starts the replicas and the clients (after the initial content is written). */
  async startAll(): Promise<void> {
    if (this.cfg.flavour === 'tiers') {
      for (let s = 0; s < this.tier1; s++) {
        this.ports[s] ??= await stablePort();
        this.proxies[s] = await startProxy(this.ports[s]!);
      }
    }
    for (let s = 0; s < this.cfg.replicas; s++) await this.startServer(s);
    this.cfg.clients.forEach((spec, i) => this.addClient(spec, i));
  }

  url(s: number): string { return `ws://127.0.0.1:${this.ports[s]}`; }

  /** How many servers read the datastore (the tier-1 ones in the tiers world; all otherwise). */
  get tier1(): number { return this.cfg.tier1 ?? this.cfg.replicas; }

  /** The replica a client is (or was last) synced with, by its epoch. */
  serverIndexOf(c: SyncClient): number {
    const e = epochOf(c);
    return this.servers.findIndex((h) => h?.app.store.epoch === e);
  }

  private datastoreConfig(): Config {
    const base: Config = { ...loadConfig({ env: {} }), ...this.cfg.server };
    if (this.cfg.flavour !== 'kube') {
      return { ...base, datastoreType: 'etcdv3', etcdEndpoints: [this.etcd!.endpoint], etcdPageSize: 5, etcdProgressIntervalSecs: 0.3, etcdWatchTimeoutSecs: 1.5 };
    }
    return { ...base, datastoreType: 'kubernetes', kubeconfig: this.api!.kubeconfigPath, kubernetesPageSize: 4, kubernetesWatchTimeoutSecs: 20, kubernetesWatchInactivitySecs: 1 };
  }

  async startServer(s: number): Promise<void> {
    if (this.servers[s]) return;
    // A replica keeps its port across restarts, and the port is below the ephemeral range: an
    // outgoing connection (a client, an etcd client) may take a freed ephemeral port meanwhile.
    this.ports[s] ??= await stablePort();
    let h: ServerHandle | undefined;
    for (let attempt = 0; !h; attempt++) {
      try {
        h = s < this.tier1
          ? await startServerOn(createDatastore(this.datastoreConfig(), silentLogger), { ...this.cfg.server, serverPort: this.ports[s], allowUnauthenticatedMirror: this.cfg.flavour === 'tiers' })
          // A tier-2 replica: each tries the tier-1 replicas in its own order.
          : await startTier(this.proxies.map((_, k) => `ws://127.0.0.1:${this.proxies[(k + s) % this.proxies.length]!.port}`), { ...this.cfg.server, serverPort: this.ports[s] });
      } catch (err) {
        if ((err as { code?: string }).code !== 'EADDRINUSE' || attempt >= 20) throw err;
        await sleep(100);
      }
    }
    this.servers[s] = h;
    this.log(`  · s${s}${s < this.tier1 ? '' : ' (tier 2)'} up on :${this.ports[s]}, epoch ${h.app.store.epoch.slice(0, 6)}`);
  }

  /** Each replica's store and datastore position, for the trace. */
  replicaState(): string {
    return this.servers.map((h, s) => {
      if (!h) return `s${s} down`;
      const ds = h.app.datastore as unknown as { rev?: number; listed?: boolean };
      return `s${s} ${h.app.store.status} head ${h.app.store.head}${ds.rev !== undefined ? ` etcd rev ${ds.rev}${ds.listed ? '' : ' (listing)'}` : ''}${s < this.tier1 ? '' : ` watermark ${h.app.store.maxRevision}`}`;
    }).join(', ');
  }

  /** Closes a replica (after draining it, if asked). A close that hangs is a finding. */
  async closeServer(s: number, drain = false): Promise<void> {
    const h = this.servers[s];
    if (!h) return;
    this.servers[s] = undefined;
    const t0 = Date.now();
    const closing = (async () => { if (drain) await h.app.drain(); await h.close(); })();
    if (await within(closing, 4000) === 'timeout') {
      this.notes.push(`s${s}: ${drain ? 'drain + ' : ''}close still not done after 4 s (etcd ${this.etcdPaused ? 'paused' : 'running'}, datastore error: ${h.app.datastore.lastError ?? 'none'})`);
      // Whatever holds it, the run goes on only once it is closed: etcd is let go early.
      if (this.etcdPaused) { await this.etcd!.kill('SIGCONT'); this.etcdPaused = false; this.log('  · etcd continued early: a server close was waiting on it'); }
      await closing;
    }
    this.log(`  · s${s} closed in ${Date.now() - t0} ms`);
  }

  private addClient(spec: ClientSpec, i: number): void {
    const label = `c${i}(${spec.syncer}${spec.syncer === 'felix' || spec.syncer === 'bgp' ? '' : `/${spec.node}`})`;
    const checker = new UpdateChecker(label, spec.syncer, spec.node);
    const events: string[] = [];
    const event = (line: string) => { events.push(`+${Date.now() - this.t0}ms ${line}`); if (events.length > 12) events.shift(); };
    /** Whether the current connection is being closed over a checksum mismatch. */
    let closingOnMismatch = false;
    const urls = Array.from({ length: this.cfg.replicas }, (_, k) => this.url((k + (this.cfg.rotation[i] ?? 0)) % this.cfg.replicas));
    let client!: SyncClient;
    client = new SyncClient({
      urls, syncerType: spec.syncer, node: spec.node,
      initialBackoffMs: 20, maxBackoffMs: 300, serverTimeoutMs: 3000,
      compression: spec.compression ? undefined : [],
      onUpdates: (us: Update[]) => {
        const s = this.serverIndexOf(client);
        const found = checker.check(us, epochOf(client), s, this.servers[s]?.app.store.status);
        if (found.length) this.log(`  ! ${found[0]}${found.length > 1 ? ` (+${found.length - 1})` : ''}; replicas: ${this.replicaState()}`);
      },
      logger: {
        debug() {},
        info: (o: any, msg?: string) => {
          if (msg === 'syncing') { closingOnMismatch = false; event(`syncing mode=${o.mode} epoch=${String(o.epoch).slice(0, 6)}`); }
          else if (msg === 'disconnected') event(`disconnected code=${o.code}${o.reason ? ` ${o.reason}` : ''}`);
          else if (msg === 'server asked us to go away') event(`goaway ${o.reason}`);
        },
        warn: (o: any, msg?: string) => {
          event(`${msg ?? 'warn'} ${JSON.stringify(o).slice(0, 160)}`);
          if (msg?.startsWith('view checksum mismatch')) closingOnMismatch = true;
          if (msg?.startsWith('bad frame from server')) {
            const cut = this.clients[i]!;
            if (closingOnMismatch && /behind position undefined/.test(String(o.err))) cut.afterMismatchErrors++;
            else cut.otherProtocolErrors.push(String(o.err));
          }
        },
      },
    });
    this.clients.push({ i, label, spec, client, checker, corruptions: 0, events, afterMismatchErrors: 0, otherProtocolErrors: [], frames: [] });
    this.recordFrames(client, this.clients[i]!.frames);
    client.start();
  }

  /** Keeps a short log of the frames a client handles (its private `handle`, wrapped). */
  private recordFrames(client: SyncClient, out: string[]): void {
    const x = client as unknown as { handle(f: { msg: Record<string, unknown> & { t: string } }): void; pos?: number };
    const handle = x.handle.bind(client);
    x.handle = (f) => {
      const m = f.msg;
      if (m.t !== 'ping' && m.t !== 'compressed') {
        const detail = m.t === 'status' ? m.status : m.t === 'delta' ? `${m.from}-${m.to}` : m.t === 'checksum' || m.t === 'snapshot' || m.t === 'repair' ? `${m.seq}${m.i !== undefined ? ` i${m.i}${m.last ? ' last' : ''}` : ''}` : m.t === 'welcome' ? m.mode : m.t === 'goaway' ? m.reason : '';
        out.push(`+${Date.now() - this.t0}ms ${m.t} ${String(detail)} (pos ${x.pos})`);
        if (out.length > 16) out.shift();
      }
      handle(f);
    };
  }

  // ---- actions -------------------------------------------------------------------------------

  async apply(a: Action): Promise<void> {
    switch (a.t) {
      case 'write': return this.write(a.ops, a.how);
      case 'deletePrefix': await this.etcdCall(this.etcd!.client.delete().prefix(a.prefix).exec(), 'delete prefix'); return;
      case 'client': return this.clientAction(a.op, this.clients[a.c]!);
      case 'corrupt': return this.corrupt(this.clients[a.c]!, a.how, a.pick);
      case 'server':
        if (a.op === 'start') return this.startServer(a.s);
        await this.closeServer(a.s, a.op === 'drain');
        if (a.op === 'restart') await this.startServer(a.s);
        return;
      case 'tier1': return this.tier1Action(a.op, a.s);
      case 'etcd': return this.etcdAction(a.op);
      case 'kube': return this.kubeAction(a.op);
      case 'sleep': await sleep(a.ms); return;
    }
  }

  private async etcdCall<T>(p: Promise<T>, what: string): Promise<T> {
    const r = await within(p, 10_000);
    if (r === 'timeout') throw new Error(`${what}: etcd did not answer within 10 s`);
    return r;
  }

  private async write(ops: readonly WriteOp[], how: 'seq' | 'parallel' | 'txn'): Promise<void> {
    if (this.cfg.flavour === 'kube') {
      // The contract server's writes are synchronous: a burst lands in one tick.
      for (const op of ops) {
        const { collection, namespace, name } = parseKubeId(op.id);
        if (op.value === null) this.api!.remove(collection, namespace, name);
        else this.api!.apply(collection, op.value);
      }
      return;
    }
    const etcd = this.etcd!.client;
    const one = (op: WriteOp): Promise<unknown> => (op.value === null ? etcd.delete().key(op.id).exec() : etcd.put(op.id).value(JSON.stringify(op.value)).exec());
    if (how === 'txn') {
      await this.etcdCall(etcd.kv.txn({
        success: ops.map((op) => (op.value === null
          ? { request_delete_range: { key: Buffer.from(op.id) } }
          : { request_put: { key: Buffer.from(op.id), value: Buffer.from(JSON.stringify(op.value)) } })),
      }), 'txn');
    } else if (how === 'parallel') {
      await this.etcdCall(Promise.all(ops.map(one)), 'parallel writes');
    } else {
      for (const op of ops) await this.etcdCall(one(op), `write ${op.id}`);
    }
  }

  private async clientAction(op: 'stop' | 'start' | 'stall' | 'unstall' | 'switch', c: ClientUnderTest): Promise<void> {
    const i = internals(c.client);
    switch (op) {
      case 'stop': return c.client.stop();
      case 'start': c.client.start(); return;
      case 'stall':
        // As bench/agent-worker.ts fanoutStaller: re-paused so that a new connection stays unread too.
        i.ws?.pause();
        c.stallTimer = setInterval(() => i.ws?.pause(), 20);
        return;
      case 'unstall':
        clearInterval(c.stallTimer);
        c.stallTimer = undefined;
        i.ws?.resume();
        return;
      case 'switch': {
        // To the replica after the one it is on; goaway's peers take the same path (`preferred`).
        const on = this.serverIndexOf(c.client);
        const to = (Math.max(on, 0) + 1) % this.cfg.replicas;
        i.preferred = this.url(to);
        i.ws?.terminate();
        c.events.push(`+${Date.now() - this.t0}ms switched from s${on} to s${to}`);
        return;
      }
    }
  }

  private corrupt(c: ClientUnderTest, how: 'tamper' | 'drop' | 'ghost', pick: number): void {
    const cache = internals(c.client).cache;
    const entries = [...c.client.entries()];
    if (how !== 'ghost' && entries.length === 0) return;
    c.corruptions++;
    if (how === 'ghost') {
      // Revision 0: when the repair deletes it, the agent hears of it at that revision, which
      // is older than anything real (a ghost key is never written to the datastore).
      const g = ghostKey(c.spec.syncer, c.spec.node, this.ghosts++);
      cache.apply(g.key, encodeValue(g.value), '0');
      return;
    }
    const [key, cur] = entries[Math.min(entries.length - 1, Math.floor(pick * entries.length))]!;
    // At the key's own revision: the repair (or the next real change) brings a revision at least as new.
    if (how === 'drop') cache.apply(key, null, cur.revision);
    else cache.apply(key, encodeValue({ ...(cur.value ?? {}), tampered: this.ghosts++ }), cur.revision);
  }

  private async tier1Action(op: 'kill' | 'stall' | 'unstall', s: number): Promise<void> {
    const proxy = this.proxies[s]!;
    switch (op) {
      // The tier below sees its connections reset, with no goaway; the agents on it are closed.
      case 'kill': proxy.cut(); return this.closeServer(s);
      case 'stall': proxy.pause(); return;
      case 'unstall': proxy.resume(); return;
    }
  }

  private async etcdAction(op: 'kill' | 'restart' | 'pause' | 'cont' | 'compact'): Promise<void> {
    const etcd = this.etcd!;
    switch (op) {
      case 'kill': if (this.etcdPaused) { await etcd.kill('SIGCONT'); this.etcdPaused = false; } await etcd.kill('SIGKILL'); this.etcdKilled = true; return;
      case 'restart': await etcd.restart(); this.etcdKilled = false; return;
      case 'pause': await etcd.kill('SIGSTOP'); this.etcdPaused = true; return;
      case 'cont': await etcd.kill('SIGCONT'); this.etcdPaused = false; return;
      case 'compact': {
        const rev = Number((await this.etcdCall(etcd.client.kv.range({ key: Buffer.from('/') }), 'range')).header.revision);
        try {
          await this.etcdCall(etcd.client.kv.compact({ revision: String(rev), physical: true }), 'compact');
          this.log(`  · compacted at ${rev}`);
        } catch (err) {
          // Compacting at a revision compacted already: nothing to do.
          if (!/compacted/.test((err as Error).message)) throw err;
        }
      }
    }
  }

  private async kubeAction(op: 'gone' | 'drop' | 'restart' | 'restart-lose-history' | 'stall' | 'unstall'): Promise<void> {
    const api = this.api!;
    switch (op) {
      // In one tick: watches resume from where they were, which is now before the history.
      case 'gone': api.compact(); api.dropWatches(); return;
      case 'drop': api.dropWatches(); return;
      case 'restart': await api.restart(); return;
      case 'restart-lose-history': await api.restart({ loseHistory: true }); return;
      case 'stall': api.stall(true); return;
      case 'unstall': api.stall(false); return;
    }
  }

  // ---- quiescence ----------------------------------------------------------------------------

  /** Ends every fault: the datastore answers, every replica is up, every client runs and reads. */
  async heal(): Promise<void> {
    if (this.etcd) {
      if (this.etcdPaused) { await this.etcd.kill('SIGCONT'); this.etcdPaused = false; }
      if (this.etcdKilled) { await this.etcd.restart(); this.etcdKilled = false; }
    }
    this.api?.stall(false);
    for (const p of this.proxies) p.resume();
    for (let s = 0; s < this.cfg.replicas; s++) await this.startServer(s);
    for (const c of this.clients) {
      clearInterval(c.stallTimer);
      c.stallTimer = undefined;
      internals(c.client).ws?.resume();
      c.client.start();
    }
  }

  /** What the datastore holds now, as Calico keys and values. */
  async content(): Promise<Map<string, unknown>> {
    return this.etcd ? etcdContent(this.etcd.client) : kubeContent(this.api!);
  }

  async close(): Promise<void> {
    for (const c of this.clients) clearInterval(c.stallTimer);
    await Promise.all(this.clients.map((c) => { internals(c.client).ws?.resume(); return c.client.stop(); }));
    // A paused etcd would hold the servers' close and ignore its own SIGTERM.
    if (this.etcdPaused) await this.etcd!.kill('SIGCONT');
    await Promise.all(this.servers.map(async (h, s) => {
      if (!h) return;
      this.servers[s] = undefined;
      if (await within(h.close(), 10_000) === 'timeout') this.notes.push(`s${s}: close at the end still not done after 10 s`);
    }));
    await Promise.all(this.proxies.map((p) => p.close()));
    await this.etcd?.stop();
    await this.api?.close();
  }
}
