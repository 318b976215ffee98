// The actions of a model run and their generator. The generator sees only the model (what the
// run believes the world is: which objects exist, which servers are up, what each client and the
// datastore are doing), never the real world, so a seed always yields the same sequence of
// actions; their timing against the servers' own timers is what varies between replays.
import type { SyncerType } from '../../../src/model/views.js';
import { int, pick, type Pool, type Rnd, type WriteOp } from './resources.js';

/** `tiers`: etcd, two tier-1 replicas on it, and one or two tier-2 replicas following them. */
export type Flavour = 'etcd' | 'kube' | 'tiers';

export type Action =
  /** Writes, in order (`seq`), all at once (`parallel`), or in one etcd transaction (`txn`: one revision). */
  | { t: 'write'; what: 'put' | 'delete' | 'burst' | 'rewrite' | 'noop' | 'large' | 'move'; how: 'seq' | 'parallel' | 'txn'; ops: WriteOp[] }
  /** etcd: delete a whole prefix (several keys at one revision). */
  | { t: 'deletePrefix'; prefix: string }
  | { t: 'client'; op: 'stop' | 'start' | 'stall' | 'unstall' | 'switch'; c: number }
  /** Damage a client's cache behind its back: `pick` chooses the key among those it holds. */
  | { t: 'corrupt'; c: number; how: 'tamper' | 'drop' | 'ghost'; pick: number }
  | { t: 'server'; op: 'restart' | 'drain' | 'start'; s: number }
  /** Tiers: a tier-1 replica killed (its tier-2 links reset, no goaway), or hung towards the tier below (stall). */
  | { t: 'tier1'; op: 'kill' | 'stall' | 'unstall'; s: number }
  | { t: 'etcd'; op: 'kill' | 'restart' | 'pause' | 'cont' | 'compact' }
  | { t: 'kube'; op: 'gone' | 'drop' | 'restart' | 'restart-lose-history' | 'stall' | 'unstall' }
  | { t: 'sleep'; ms: number };

export type ClientState = 'running' | 'stopped' | 'stalled';
export type DatastoreState = 'up' | 'paused' | 'killed' | 'stalled';

export interface ClientSpec { syncer: SyncerType; node: string; compression: boolean }

/** What the run believes the world is. Changed by `advance` (and `gen` by the generator). */
export interface Model {
  readonly flavour: Flavour;
  /** Objects the datastore holds: model id → value. */
  readonly content: Map<string, object>;
  ds: DatastoreState;
  /** Actions since the datastore stopped being up (faults are kept short). */
  dsDownFor: number;
  readonly servers: ('up' | 'down')[];
  /** Tiers: how many of `servers` (the first ones) are tier-1; the others follow them. */
  readonly tier1: number;
  /** Tiers: per tier-1 replica, whether the tier below hears from it, and for how many actions not. */
  readonly stalled: number[];
  readonly clients: { spec: ClientSpec; state: ClientState }[];
  /** Values written so far (makes each write differ). */
  gen: number;
}

/** `replicas`: every server; `tier1`: how many of them read the datastore (all but in the tiers world). */
export function newModel(flavour: Flavour, replicas: number, clients: ClientSpec[], tier1 = replicas): Model {
  return {
    flavour, content: new Map(), ds: 'up', dsDownFor: 0, servers: Array.from({ length: replicas }, () => 'up'), tier1,
    stalled: Array.from({ length: tier1 }, () => -1), clients: clients.map((spec) => ({ spec, state: 'running' })), gen: 0,
  };
}

/** A weighted choice among the actions whose preconditions hold. */
function choose<T>(rnd: Rnd, options: readonly (readonly [number, () => T] | false)[]): T {
  const live = options.filter((o): o is readonly [number, () => T] => o !== false && o[0] > 0);
  const total = live.reduce((s, [w]) => s + w, 0);
  let x = rnd() * total;
  for (const [w, f] of live) { if ((x -= w) < 0) return f(); }
  return live[live.length - 1]![1]();
}

/** The next action for this model. */
export function nextAction(rnd: Rnd, m: Model, pool: Pool): Action {
  const tiers = m.flavour === 'tiers';
  const etcd = m.flavour === 'etcd' || tiers;
  const dsUp = m.ds === 'up';
  // The Kubernetes contract server takes writes whatever its watches do; etcd needs to be up.
  const canWrite = etcd ? dsUp : true;
  const existing = () => [...m.content.keys()];
  const someExisting = m.content.size > 0;
  const statuses = [...m.content.keys()].filter((id) => id.includes('caliconodestatuses'));
  // A fault is healed within a few actions, so that every run keeps moving.
  if (m.ds !== 'up' && m.dsDownFor >= 4 && rnd() < 0.6) return heal(m);
  const hung = tiers ? m.stalled.findIndex((n) => n >= 3) : -1;
  if (hung >= 0 && rnd() < 0.6) return { t: 'tier1', op: 'unstall', s: hung };
  const downServer = m.servers.findIndex((s) => s === 'down');
  if (downServer >= 0 && rnd() < 0.35) return { t: 'server', op: 'start', s: downServer };
  const c = int(rnd, 0, m.clients.length - 1);
  const cs = m.clients[c]!.state;
  const s = int(rnd, 0, m.servers.length - 1);

  return choose<Action>(rnd, [
    canWrite && [30, () => ({ t: 'write', what: 'put', how: 'seq', ops: [pool.put(rnd, ++m.gen)] })],
    canWrite && someExisting && [8, () => ({ t: 'write', what: 'delete', how: 'seq', ops: [{ id: pick(rnd, existing()), value: null }] })],
    canWrite && [10, () => {
      const ops = new Map<string, WriteOp>();
      const n = int(rnd, 2, 15);
      for (let i = 0; i < n; i++) {
        const op = someExisting && rnd() < 0.2 ? { id: pick(rnd, existing()), value: null } : pool.put(rnd, ++m.gen);
        ops.set(op.id, op); // one write per key: an etcd transaction names a key only once
      }
      return { t: 'write', what: 'burst', how: etcd ? pick(rnd, ['seq', 'parallel', 'txn'] as const) : 'seq', ops: [...ops.values()] };
    }],
    canWrite && [6, () => {
      const first = pool.put(rnd, ++m.gen);
      const ops = [first];
      for (let i = int(rnd, 2, 7); i > 0; i--) ops.push({ id: first.id, value: variant(first.value!, ++m.gen) });
      return { t: 'write', what: 'rewrite', how: 'seq', ops };
    }],
    canWrite && someExisting && [5, () => { const id = pick(rnd, existing()); return { t: 'write', what: 'noop', how: 'seq', ops: [{ id, value: structuredClone(m.content.get(id)!) }] }; }],
    canWrite && [3, () => ({ t: 'write', what: 'large', how: 'seq', ops: [pool.put(rnd, ++m.gen, true)] })],
    // A CalicoNodeStatus moved to another node (node-status is scoped by its spec.node).
    canWrite && statuses.length > 0 && [4, () => {
      const id = pick(rnd, statuses);
      const v = structuredClone(m.content.get(id)!) as { spec: { node: string } };
      v.spec.node = pick(rnd, pool.nodes.filter((n) => n !== v.spec.node));
      return { t: 'write', what: 'move', how: 'seq', ops: [{ id, value: v }] };
    }],
    canWrite && etcd && !!pool.prefixes && [1, () => ({ t: 'deletePrefix', prefix: pick(rnd, pool.prefixes!) })],

    cs === 'running' && [3, () => ({ t: 'client', op: 'stop', c })],
    cs === 'stopped' && [8, () => ({ t: 'client', op: 'start', c })],
    cs === 'running' && [2, () => ({ t: 'client', op: 'stall', c })],
    cs === 'stalled' && [5, () => ({ t: 'client', op: 'unstall', c })],
    // In the tiers world a switch is often a move between tiers: more of them.
    cs === 'running' && m.servers.length > 1 && [tiers ? 5 : 3, () => ({ t: 'client', op: 'switch', c })],
    [2, () => ({ t: 'corrupt', c, how: pick(rnd, ['tamper', 'drop', 'ghost'] as const), pick: rnd() })],

    m.servers[s] === 'up' && [1.5, () => ({ t: 'server', op: 'restart', s })],
    m.servers[s] === 'up' && [1, () => ({ t: 'server', op: 'drain', s })],
    tiers && s < m.tier1 && m.servers[s] === 'up' && [2, () => ({ t: 'tier1', op: 'kill', s })],
    tiers && s < m.tier1 && m.stalled[s]! < 0 && [2, () => ({ t: 'tier1', op: 'stall', s })],
    // A tier-2 replica restarted (tier-1 ones are, by the restart above, as often).
    tiers && s >= m.tier1 && m.servers[s] === 'up' && [2, () => ({ t: 'server', op: 'restart', s })],
    tiers && s < m.tier1 && m.stalled[s]! >= 0 && [3, () => ({ t: 'tier1', op: 'unstall', s })],

    etcd && dsUp && [1, () => ({ t: 'etcd', op: 'kill' })],
    etcd && dsUp && [1, () => ({ t: 'etcd', op: 'pause' })],
    etcd && dsUp && [1.5, () => ({ t: 'etcd', op: 'compact' })],
    !etcd && dsUp && [1.5, () => ({ t: 'kube', op: 'gone' })],
    !etcd && dsUp && [1.5, () => ({ t: 'kube', op: 'drop' })],
    !etcd && dsUp && [1, () => ({ t: 'kube', op: rnd() < 0.5 ? 'restart' : 'restart-lose-history' })],
    !etcd && dsUp && [0.7, () => ({ t: 'kube', op: 'stall' })],
    m.ds !== 'up' && [3, () => heal(m)],

    [8, () => ({ t: 'sleep', ms: pick(rnd, [5, 20, 50, 150, 400]) })],
  ]);
}

/** The same object with one label (or, without metadata, one field) changed. */
function variant(value: object, n: number): object {
  const v = structuredClone(value) as { metadata?: { labels?: Record<string, string> }; rewrite?: number };
  if (v.metadata) v.metadata.labels = { ...v.metadata.labels, rewrite: String(n) };
  else v.rewrite = n;
  return v;
}

function heal(m: Model): Action {
  switch (m.ds) {
    case 'killed': return { t: 'etcd', op: 'restart' };
    case 'paused': return { t: 'etcd', op: 'cont' };
    default: return { t: 'kube', op: 'unstall' };
  }
}

/** The model after an action (the world has carried it out). */
export function advance(m: Model, a: Action): void {
  if (m.ds !== 'up') m.dsDownFor++;
  m.stalled.forEach((n, i) => { if (n >= 0) m.stalled[i] = n + 1; });
  const setDs = (ds: DatastoreState) => { m.ds = ds; m.dsDownFor = 0; };
  switch (a.t) {
    case 'write':
      for (const op of a.ops) { if (op.value === null) m.content.delete(op.id); else m.content.set(op.id, op.value); }
      return;
    case 'deletePrefix':
      for (const id of [...m.content.keys()]) if (id.startsWith(a.prefix)) m.content.delete(id);
      return;
    case 'client': {
      const cl = m.clients[a.c]!;
      if (a.op === 'stop') cl.state = 'stopped';
      else if (a.op === 'start' || a.op === 'unstall') cl.state = 'running';
      else if (a.op === 'stall') cl.state = 'stalled';
      return;
    }
    case 'server':
      m.servers[a.s] = a.op === 'drain' ? 'down' : 'up';
      return;
    case 'tier1':
      if (a.op === 'kill') m.servers[a.s] = 'down';
      else m.stalled[a.s] = a.op === 'stall' ? 0 : -1;
      return;
    case 'etcd':
      if (a.op === 'kill') setDs('killed');
      else if (a.op === 'pause') setDs('paused');
      else if (a.op === 'restart' || a.op === 'cont') setDs('up');
      return;
    case 'kube':
      if (a.op === 'stall') setDs('stalled');
      else if (a.op === 'unstall') setDs('up');
      return;
    default:
  }
}

/** One line of the action trace. */
export function describe(a: Action, m: Model): string {
  const client = (c: number) => { const s = m.clients[c]!.spec; return `c${c}(${s.syncer}${s.syncer === 'felix' || s.syncer === 'bgp' ? '' : `/${s.node}`})`; };
  switch (a.t) {
    case 'write': {
      const ops = a.ops.map((o) => `${o.value === null ? 'del' : 'put'} ${shortId(o.id)}${o.value && a.what === 'large' ? ` (${Math.round(JSON.stringify(o.value).length / 1024)} KiB)` : ''}`);
      const shown = ops.length > 4 ? [...ops.slice(0, 4), `… ${ops.length - 4} more`] : ops;
      return `write ${a.what}${a.ops.length > 1 ? ` ×${a.ops.length} ${a.how}` : ''}: ${shown.join(', ')}`;
    }
    case 'deletePrefix': return `delete prefix ${a.prefix}`;
    case 'client': return `client ${a.op} ${client(a.c)}`;
    case 'corrupt': return `corrupt ${client(a.c)} ${a.how} (pick ${a.pick.toFixed(3)})`;
    case 'server': return `server ${a.op} s${a.s}`;
    case 'tier1': return `tier-1 ${a.op} s${a.s}`;
    case 'etcd': return `etcd ${a.op}`;
    case 'kube': return `kube-api ${a.op}`;
    case 'sleep': return `sleep ${a.ms} ms`;
  }
}

function shortId(id: string): string {
  return id.replace('/calico/resources/v3/projectcalico.org/', '').replace('/calico/ipam/v2/', 'ipam/').replace('/apis/crd.projectcalico.org/v1/', 'crd/').replace('/api/v1/', '');
}
