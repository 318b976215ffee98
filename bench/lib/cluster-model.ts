// The cluster the `cluster` scenario plays: N nodes and their pods as Calico writes them to etcd
// (Node, its IPAM block and block affinity, tunnel-address handles, CalicoNodeStatus; pods as a
// WorkloadEndpoint plus their address in the node's block and its handle), namespaces with their
// profiles, policies and network sets. Then the changes of a busy cluster, at a set rate: pods
// deleted and created, policy and network-set edits, a node joining and another leaving, and each
// node's CalicoNodeStatus every 10 s. Deterministic from a seed: the etcd writer and the raw
// baseline play the same cluster. Every value a change writes is stamped (annotations bench/seq
// and bench/ts, the write time on the monotonic clock) so that any reader finds its latency.
import { keyForResource, RESOURCE_PREFIX } from '../../src/model/kinds.js';
import { asCreatedByCalico } from '../../src/datastore/calico-write.js';
import { prng } from '../../test/support/prng.js';
import { digitsAt, digitsEnd, forEachMark, STAMP_WITHIN } from './frame-items.js';

export interface ClusterShape {
  /** Simulated nodes, each with its four agents. */
  nodes: number;
  podsPerNode: number;
  namespaces: number;
  /** Namespaced NetworkPolicies (a tenth as many GlobalNetworkPolicies besides). */
  policies: number;
  /** Namespaced NetworkSets (a tenth as many GlobalNetworkSets besides). */
  networkSets: number;
  seed: number;
}

export const DEFAULT_SHAPE: Omit<ClusterShape, 'nodes'> = { podsPerNode: 10, namespaces: 20, policies: 100, networkSets: 40, seed: 17 };

/** One datastore write: a put, or a deletion (value null). */
export interface Write { key: string; value: Record<string, unknown> | null }

/** Shares of the change rate, in writes: pod churn (3 writes a pod), policy and network-set edits. */
const MIX = { pods: 0.8, policies: 0.1, networkSets: 0.1 };
/** A node joins, later leaves (it has no agents of its own), every this often. */
export const NODE_CYCLE_MS = 5000;
/** How often each node's calico-node writes its CalicoNodeStatus (its spec.updatePeriodSeconds). */
export const STATUS_PERIOD_MS = 10_000;

const BLOCK_SIZE = 64; // a /26, Calico's default block size
const POOL_CIDR = '10.64.0.0/10';
const POOL_BASE = (10 << 24) | (64 << 16);

/** The stamp every written value carries; seq 0 for the initial content and the warm-up. */
export interface Stamp { seq: number; ts: number }

interface Block { cidr: string; node: string; allocations: (number | null)[]; unallocated: number[]; attributes: { handle_id: string; secondary: Record<string, string> }[] }
interface Pod { node: number; ns: string; name: string; cid: string; ordinal: number; key: string }

const ip = (n: number) => `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
const dashes = (s: string) => s.replace(/-/g, '--');

export class ClusterModel {
  private readonly rand: () => number;
  private readonly pods: Pod[] = [];
  private readonly blocks = new Map<string, Block>();
  private podCounter = 0;
  private transient = 0;
  /** A node that joined and has not left yet. */
  private joined: { name: string; index: number } | undefined;
  private policyEdits = 0;
  private setEdits = 0;
  /** Writes owed to the change rate (fractional), and statuses owed per node. */
  private budget = 0;
  private elapsedMs = 0;
  private nextCycleMs = NODE_CYCLE_MS;
  private nextStatusAt: Float64Array;
  private seq = 0;

  constructor(readonly shape: ClusterShape, private readonly rate: number) {
    this.rand = prng(shape.seed);
    // Statuses spread over the period, as calico-node starts at different times on each node.
    this.nextStatusAt = Float64Array.from({ length: shape.nodes }, (_, i) => (i * STATUS_PERIOD_MS) / shape.nodes);
  }

  static nodeName(i: number): string { return `node-${String(i).padStart(5, '0')}`; }

  /** Everything the cluster holds before any change: what a replica lists at start. */
  initial(): Write[] {
    const out: Write[] = [];
    const s0: Stamp = { seq: 0, ts: 0 };
    const put = (value: Record<string, unknown>) => out.push({ key: keyForResource(value), value: this.created(value) });
    put({ apiVersion: 'projectcalico.org/v3', kind: 'ClusterInformation', metadata: { name: 'default' }, spec: { clusterGUID: this.hex(32), calicoVersion: 'v3.32.1', clusterType: 'k8s,bgp,kubeadm', datastoreReady: true } });
    put({ apiVersion: 'projectcalico.org/v3', kind: 'FelixConfiguration', metadata: { name: 'default' }, spec: { bpfEnabled: false, logSeverityScreen: 'Info', reportingInterval: '0s', vxlanEnabled: true, vxlanVNI: 4096, vxlanPort: 4789, healthPort: 9099, floatingIPs: 'Disabled' } });
    put({ apiVersion: 'projectcalico.org/v3', kind: 'BGPConfiguration', metadata: { name: 'default' }, spec: { logSeverityScreen: 'Info', nodeToNodeMeshEnabled: false, asNumber: 64512, serviceClusterIPs: [{ cidr: '10.96.0.0/12' }] } });
    put({ apiVersion: 'projectcalico.org/v3', kind: 'KubeControllersConfiguration', metadata: { name: 'default' }, spec: { logSeverityScreen: 'Info', healthChecks: 'Enabled', etcdV3CompactionPeriod: '10m', controllers: { node: { reconcilerPeriod: '5m', syncLabels: 'Enabled' }, policy: { reconcilerPeriod: '5m' }, workloadEndpoint: { reconcilerPeriod: '5m' }, serviceAccount: { reconcilerPeriod: '5m' }, namespace: { reconcilerPeriod: '5m' } } } });
    put({ apiVersion: 'projectcalico.org/v3', kind: 'IPPool', metadata: { name: 'default-ipv4-ippool' }, spec: this.poolSpec() });
    put({ apiVersion: 'projectcalico.org/v3', kind: 'Tier', metadata: { name: 'default' }, spec: { order: 1_000_000, defaultAction: 'Deny' } });
    // Route reflectors instead of a full mesh, as clusters of this size run BGP.
    put({ apiVersion: 'projectcalico.org/v3', kind: 'BGPPeer', metadata: { name: 'peer-with-route-reflectors' }, spec: { nodeSelector: 'all()', peerSelector: "route-reflector == 'true'" } });
    for (let n = 0; n < this.shape.namespaces; n++) {
      const ns = this.ns(n);
      put({ apiVersion: 'projectcalico.org/v3', kind: 'Profile', metadata: { name: `kns.${ns}` }, spec: { ingress: [{ action: 'Allow' }], egress: [{ action: 'Allow' }], labelsToApply: { 'pcns.projectcalico.org/name': ns, 'pcns.kubernetes.io/metadata.name': ns } } });
      put({ apiVersion: 'projectcalico.org/v3', kind: 'Profile', metadata: { name: `ksa.${ns}.default` }, spec: { labelsToApply: { 'pcsa.projectcalico.org/name': 'default' } } });
    }
    for (let p = 0; p < this.shape.policies; p++) put(this.policy(p, s0));
    for (let p = 0; p < Math.ceil(this.shape.policies / 10); p++) put(this.globalPolicy(p, s0));
    for (let k = 0; k < this.shape.networkSets; k++) put(this.networkSet(k, s0));
    for (let k = 0; k < Math.ceil(this.shape.networkSets / 10); k++) put(this.globalNetworkSet(k, s0));
    for (let i = 0; i < this.shape.nodes; i++) {
      out.push(...this.nodeWrites(ClusterModel.nodeName(i), i, s0));
      for (let p = 0; p < this.shape.podsPerNode; p++) out.push(...this.createPod(i, s0));
    }
    return out;
  }

  /**
   * The writes due after `elapsedMs` of playing (called every few ms with a growing value): the
   * changes the rate allows since the last call, the statuses whose time has come. `stamped`
   * false for a warm-up (seq 0, which readers ignore).
   */
  due(elapsedMs: number, ts: number, stamped = true): Write[] {
    const dt = Math.max(0, elapsedMs - this.elapsedMs);
    this.elapsedMs = elapsedMs;
    const stamp = (): Stamp => ({ seq: stamped ? ++this.seq : 0, ts });
    const out: Write[] = [];
    for (let i = 0; i < this.shape.nodes; i++) {
      if (this.nextStatusAt[i]! > elapsedMs) continue;
      this.nextStatusAt[i]! += STATUS_PERIOD_MS;
      out.push(this.status(ClusterModel.nodeName(i), stamp()));
    }
    if (elapsedMs >= this.nextCycleMs) {
      this.nextCycleMs += NODE_CYCLE_MS;
      out.push(...this.nodeCycle(stamp()));
    }
    this.budget += (this.rate * dt) / 1000;
    while (this.budget >= 1) {
      const w = this.change(stamp());
      this.budget -= w.length;
      out.push(...w);
    }
    return out;
  }

  /**
   * A write every reader sees, stamped: the IPPool (felix, bgp, tunnel-ip-allocation) and each
   * node's status (node-status). Played after the changes, a reader that holds its marker has
   * been sent everything written before it.
   */
  marker(ts: number): Write[] {
    const pool = this.created({ apiVersion: 'projectcalico.org/v3', kind: 'IPPool', metadata: { annotations: stampOf({ seq: ++this.seq, ts }), name: 'default-ipv4-ippool' }, spec: this.poolSpec() });
    const out: Write[] = [{ key: keyForResource(pool), value: pool }];
    for (let i = 0; i < this.shape.nodes; i++) out.push(this.status(ClusterModel.nodeName(i), { seq: ++this.seq, ts }));
    return out;
  }

  /** The last seq stamped so far. */
  get lastSeq(): number { return this.seq; }

  /** How far the model has been played, ms. */
  get clockMs(): number { return this.elapsedMs; }

  // ---- changes -------------------------------------------------------------------------------

  private change(s: Stamp): Write[] {
    // An operation is picked with odds that give each its share of the writes.
    const pods = MIX.pods / 3;
    const r = this.rand() * (pods + MIX.policies + MIX.networkSets);
    if (r < pods) {
      // Pods are deleted and created in turn, so the cluster keeps its size.
      if (this.podCounter % 2 === 0 && this.pods.length > 0) return this.deletePod(s);
      return this.createPod(Math.floor(this.rand() * this.shape.nodes), s);
    }
    if (r < pods + MIX.policies) {
      const n = this.policyEdits++;
      const globals = Math.ceil(this.shape.policies / 10);
      return [this.put(n % 11 === 10 ? this.globalPolicy(n % globals, s) : this.policy(n % this.shape.policies, s))];
    }
    const n = this.setEdits++;
    const globals = Math.ceil(this.shape.networkSets / 10);
    return [this.put(n % 11 === 10 ? this.globalNetworkSet(n % globals, s) : this.networkSet(n % this.shape.networkSets, s))];
  }

  /** A pod on node i: its handle, its address in the node's block, then its endpoint (CNI's order). */
  private createPod(i: number, s: Stamp): Write[] {
    const node = ClusterModel.nodeName(i);
    const block = this.blocks.get(node)!;
    this.podCounter++;
    const ordinal = block.unallocated.shift();
    if (ordinal === undefined) return this.deletePod(s); // the node is full: make room instead
    const ns = this.ns(Math.floor(this.rand() * this.shape.namespaces));
    const name = `app-${this.podCounter % 97}-${this.hex(10)}-${this.hex(5)}`;
    const cid = this.hex(64);
    const handle = `k8s-pod-network.${cid}`;
    block.attributes.push({ handle_id: handle, secondary: { namespace: ns, node, pod: name, timestamp: new Date(1_700_000_000_000 + this.podCounter * 1000).toISOString() } });
    block.allocations[ordinal] = block.attributes.length - 1;
    const addr = ip(this.blockBase(i) + ordinal);
    const wep = this.created({
      apiVersion: 'projectcalico.org/v3', kind: 'WorkloadEndpoint',
      metadata: {
        annotations: stampOf(s), name: `${dashes(node)}-k8s-${dashes(name)}-eth0`, namespace: ns,
        labels: { app: `app-${this.podCounter % 97}`, 'pod-template-hash': name.split('-')[2]!, 'projectcalico.org/namespace': ns, 'projectcalico.org/orchestrator': 'k8s', 'projectcalico.org/serviceaccount': 'default' },
      },
      spec: {
        orchestrator: 'k8s', node, pod: name, endpoint: 'eth0', containerID: cid, ipNetworks: [`${addr}/32`],
        profiles: [`kns.${ns}`, `ksa.${ns}.default`], interfaceName: `cali${this.hex(11)}`, mac: this.mac(), serviceAccountName: 'default',
        ports: [{ name: 'http', protocol: 'TCP', port: 8080 }],
      },
    });
    const key = keyForResource(wep);
    this.pods.push({ node: i, ns, name, cid, ordinal, key });
    return [
      { key: `/calico/ipam/v2/handle/${handle}`, value: { block: { [block.cidr]: 1 }, deleted: false } },
      this.blockWrite(node),
      { key, value: wep },
    ];
  }

  /** A pod gone: its endpoint, then its address released, then its handle (CNI's order). */
  private deletePod(_s: Stamp): Write[] {
    this.podCounter++;
    const pod = this.pods.splice(Math.floor(this.rand() * this.pods.length), 1)[0]!;
    const node = ClusterModel.nodeName(pod.node);
    const block = this.blocks.get(node)!;
    const attr = block.allocations[pod.ordinal]!;
    block.allocations[pod.ordinal] = null;
    block.unallocated.push(pod.ordinal);
    // libcalico-go drops an attribute no allocation refers to any more and renumbers the rest.
    block.attributes.splice(attr, 1);
    for (let o = 0; o < block.allocations.length; o++) {
      const a = block.allocations[o];
      if (a !== null && a !== undefined && a > attr) block.allocations[o] = a - 1;
    }
    return [
      { key: pod.key, value: null },
      this.blockWrite(node),
      { key: `/calico/ipam/v2/handle/k8s-pod-network.${pod.cid}`, value: null },
    ];
  }

  /** Every other cycle a node joins (its Node, block, affinity, tunnel handles, status); the next, it leaves. */
  private nodeCycle(s: Stamp): Write[] {
    if (!this.joined) {
      const index = this.shape.nodes + (this.transient++ % 64);
      const name = `joining-${String(this.transient).padStart(5, '0')}`;
      this.joined = { name, index };
      return this.nodeWrites(name, index, s);
    }
    const { name } = this.joined;
    this.joined = undefined;
    const block = this.blocks.get(name)!;
    this.blocks.delete(name);
    // kube-controllers' node controller: Node and status gone, the block's handles released, then the block and its affinity.
    return [
      { key: `${RESOURCE_PREFIX}nodes/${name}`, value: null },
      { key: `${RESOURCE_PREFIX}caliconodestatuses/${name}`, value: null },
      ...block.attributes.map((a) => ({ key: `/calico/ipam/v2/handle/${a.handle_id}`, value: null })),
      { key: `/calico/ipam/v2/assignment/ipv4/block/${block.cidr.replace('/', '-')}`, value: null },
      { key: `/calico/ipam/v2/host/${name}/ipv4/block/${block.cidr.replace('/', '-')}`, value: null },
    ];
  }

  // ---- resources -----------------------------------------------------------------------------

  /** A node as calico-node registers it: Node, block affinity and block with its tunnel addresses, their handles, its status. */
  private nodeWrites(name: string, i: number, s: Stamp): Write[] {
    const base = this.blockBase(i);
    const cidr = `${ip(base)}/26`;
    const block: Block = {
      cidr, node: name, allocations: new Array(BLOCK_SIZE).fill(null), unallocated: Array.from({ length: BLOCK_SIZE - 2 }, (_, k) => k + 2),
      attributes: [
        { handle_id: `vxlan-tunnel-addr-${name}`, secondary: { node: name, type: 'vxlanTunnelAddress' } },
      ],
    };
    block.allocations[0] = 0;
    this.blocks.set(name, block);
    const hostIp = ip((192 << 24) | (168 << 16) | (i + 256));
    const node = this.created({
      apiVersion: 'projectcalico.org/v3', kind: 'Node',
      metadata: {
        annotations: stampOf(s), name,
        labels: { 'beta.kubernetes.io/arch': 'amd64', 'beta.kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64', 'kubernetes.io/hostname': name, 'kubernetes.io/os': 'linux', 'topology.kubernetes.io/zone': `zone-${'abc'[i % 3]}`, ...(i < 2 ? { 'route-reflector': 'true' } : {}) },
      },
      spec: {
        addresses: [{ address: hostIp, type: 'InternalIP' }, { address: `${hostIp}/16`, type: 'CalicoNodeIP' }],
        bgp: { ipv4Address: `${hostIp}/16`, ...(i < 2 ? { routeReflectorClusterID: '224.0.0.1' } : {}) },
        ipv4VXLANTunnelAddr: ip(base), vxlanTunnelMACAddr: this.mac(), orchRefs: [{ nodeName: name, orchestrator: 'k8s' }],
      },
    });
    const blockPath = cidr.replace('/', '-');
    return [
      { key: `/calico/ipam/v2/host/${name}/ipv4/block/${blockPath}`, value: { state: 'confirmed', deleted: false } },
      { key: `/calico/ipam/v2/handle/vxlan-tunnel-addr-${name}`, value: { block: { [cidr]: 1 }, deleted: false } },
      this.blockWrite(name),
      { key: keyForResource(node), value: node },
      this.status(name, s),
    ];
  }

  private poolSpec(): Record<string, unknown> {
    return { cidr: POOL_CIDR, blockSize: 26, ipipMode: 'Never', vxlanMode: 'CrossSubnet', natOutgoing: true, disabled: false, nodeSelector: 'all()', allowedUses: ['Workload', 'Tunnel'], assignmentMode: 'Automatic' };
  }

  private blockBase(i: number): number { return POOL_BASE + i * BLOCK_SIZE; }

  private blockWrite(node: string): Write {
    const b = this.blocks.get(node)!;
    return {
      key: `/calico/ipam/v2/assignment/ipv4/block/${b.cidr.replace('/', '-')}`,
      value: { cidr: b.cidr, affinity: `host:${node}`, strictAffinity: false, allocations: [...b.allocations], unallocated: [...b.unallocated], attributes: b.attributes.map((a) => ({ handle_id: a.handle_id, secondary: { ...a.secondary } })), deleted: false },
    };
  }

  /** The status calico-node's reporter writes every updatePeriodSeconds. */
  private status(node: string, s: Stamp): Write {
    const v = this.created({
      apiVersion: 'projectcalico.org/v3', kind: 'CalicoNodeStatus',
      metadata: { annotations: stampOf(s), name: node },
      spec: { node, classes: ['Agent', 'BGP', 'Routes'], updatePeriodSeconds: STATUS_PERIOD_MS / 1000 },
      status: {
        lastUpdated: new Date(1_700_000_000_000 + this.elapsedMs).toISOString().replace(/\.\d+Z$/, 'Z'),
        agent: { birdV4: { state: 'Ready', version: 'v0.3.3+2.0.14', routerID: node, lastBootTime: '2025-01-01 00:00:00', lastReconfigurationTime: '2025-01-01 00:00:05' } },
        bgp: {
          numberEstablishedV4: 2, numberEstablishedV6: 0, numberNotEstablishedV4: 0, numberNotEstablishedV6: 0,
          peersV4: [{ peerIP: '192.168.1.0', type: 'GlobalPeer', state: 'Established', since: '00:00:07' }, { peerIP: '192.168.1.1', type: 'GlobalPeer', state: 'Established', since: '00:00:07' }],
        },
        routes: { routesV4: [{ type: 'FIB', destination: '0.0.0.0/0', gateway: '192.168.0.1', interface: 'eth0', learnedFrom: { sourceType: 'Kernel' } }] },
      },
    });
    return { key: `${RESOURCE_PREFIX}caliconodestatuses/${node}`, value: v };
  }

  private policy(p: number, s: Stamp): Record<string, unknown> {
    const ns = this.ns(p % this.shape.namespaces);
    const gen = s.seq % 7;
    return this.created({
      apiVersion: 'projectcalico.org/v3', kind: 'NetworkPolicy',
      metadata: { annotations: stampOf(s), name: `allow-app-${p}`, namespace: ns },
      spec: {
        tier: 'default', order: 100 + gen, selector: `app == 'app-${p % 97}'`, types: ['Ingress', 'Egress'],
        ingress: [{ action: 'Allow', protocol: 'TCP', source: { selector: `app == 'app-${(p + 1 + gen) % 97}'` }, destination: { ports: [8080] } }],
        egress: [{ action: 'Allow', destination: { selector: `app == 'app-${(p + 2) % 97}'` } }, { action: 'Allow', protocol: 'UDP', destination: { ports: [53] } }],
      },
    });
  }

  private globalPolicy(p: number, s: Stamp): Record<string, unknown> {
    return this.created({
      apiVersion: 'projectcalico.org/v3', kind: 'GlobalNetworkPolicy',
      metadata: { annotations: stampOf(s), name: `platform-${p}` },
      spec: {
        tier: 'default', order: 10 + (s.seq % 5), selector: 'all()', types: ['Ingress'],
        ingress: [{ action: 'Deny', source: { selector: `blocked-${p} == 'true'` } }, { action: 'Pass' }],
      },
    });
  }

  private networkSet(k: number, s: Stamp): Record<string, unknown> {
    return this.created({
      apiVersion: 'projectcalico.org/v3', kind: 'NetworkSet',
      metadata: { annotations: stampOf(s), name: `partners-${k}`, namespace: this.ns(k % this.shape.namespaces), labels: { role: 'partner', set: String(k) } },
      spec: { nets: Array.from({ length: 8 }, (_, j) => `203.${(k + s.seq) % 256}.${j * 16}.0/28`) },
    });
  }

  private globalNetworkSet(k: number, s: Stamp): Record<string, unknown> {
    return this.created({
      apiVersion: 'projectcalico.org/v3', kind: 'GlobalNetworkSet',
      metadata: { annotations: stampOf(s), name: `threat-feed-${k}`, labels: { feed: 'threat', set: String(k) } },
      spec: { nets: Array.from({ length: 16 }, (_, j) => `198.${(k + s.seq) % 256}.${j}.0/24`) },
    });
  }

  // ---- helpers -------------------------------------------------------------------------------

  private put(value: Record<string, unknown>): Write { return { key: keyForResource(value), value }; }
  private ns(n: number): string { return `team-${String(n).padStart(3, '0')}`; }
  private hex(len: number): string { let s = ''; while (s.length < len) s += Math.floor(this.rand() * 2 ** 32).toString(16).padStart(8, '0'); return s.slice(0, len); }
  private mac(): string { return Array.from({ length: 6 }, (_, i) => (i === 0 ? 0x02 : Math.floor(this.rand() * 256)).toString(16).padStart(2, '0')).join(':'); }

  /** As Calico stores a new v3 resource (uid, creationTimestamp, a policy's name annotation); the uid from the seed. */
  private created(v: Record<string, unknown>): Record<string, unknown> {
    const meta = v.metadata as Record<string, unknown>;
    const h = this.hex(32);
    meta.uid = `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
    meta.creationTimestamp = '2025-01-01T00:00:00Z';
    return asCreatedByCalico(keyForResource(v), v) as Record<string, unknown>;
  }
}

function stampOf(s: Stamp): Record<string, string> {
  return { 'bench/seq': String(s.seq), 'bench/ts': String(s.ts) };
}

const SEQ = Buffer.from('bench/seq');

/**
 * Finds every stamp in encoded bytes (a frame of msgpack items, or JSON) without decoding them:
 * the annotation name is followed by its digits after a header byte or `":"`, and bench/ts comes
 * next in any encoding that sorts map keys or keeps the order written, with no digit in between
 * (its name has none): so one search per stamp. Lean readers run this on every frame they get.
 */
export function clusterStampsIn(buf: Buffer, on: (seq: number, ts: number) => void, from = 0): void {
  let i = buf.indexOf(SEQ, from);
  while (i >= 0) {
    const seq = digitsAt(buf, i + SEQ.length);
    on(seq, digitsAt(buf, digitsEnd));
    i = buf.indexOf(SEQ, digitsEnd);
  }
}

/** The stamp of a decoded value (what a full agent reads); undefined when it has none. */
export function clusterStampOf(v: unknown): Stamp | undefined {
  const a = (v as { metadata?: { annotations?: Record<string, string> } } | null)?.metadata?.annotations;
  if (!a || a['bench/seq'] === undefined) return undefined;
  return { seq: Number(a['bench/seq']), ts: Number(a['bench/ts']) };
}

/**
 * The stamps of a frame's items, `count` of them from byte `at`, searched for only near the start
 * of each value (bench/lib/frame-items.ts): what lean readers do with every frame.
 */
export function clusterStampsInItems(buf: Buffer, at: number, count: number, on: (seq: number, ts: number) => void): void {
  forEachMark(buf, at, count, SEQ, STAMP_WITHIN, (after) => {
    const seq = digitsAt(buf, after);
    on(seq, digitsAt(buf, digitsEnd));
  });
}

