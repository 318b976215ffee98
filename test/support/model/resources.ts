// The data of the model's two worlds: bounded pools of keys (so that creates, updates, deletes and
// re-creates collide) and the values written under them, spread over every view and over the node
// scoping of tunnel-ip-allocation (Node, by name) and node-status (CalicoNodeStatus, by spec.node,
// which moves between nodes). The etcd world writes Calico's v3 documents; the Kubernetes world
// writes Kubernetes objects, which the adapter converts (src/datastore/kubernetes/resources.ts).
import type { SyncerType } from '../../../src/model/views.js';
import { node as calicoNode, resource, wep } from '../harness.js';
import { k8sNode, NODES as K8S_NODES, pod, PODS } from '../kube-cluster.js';

export type Rnd = () => number;
export const pick = <T>(rnd: Rnd, xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
export const int = (rnd: Rnd, lo: number, hi: number): number => lo + Math.floor(rnd() * (hi - lo + 1));

/** One write: `value` null deletes. `id` names the object in the model (etcd: its key). */
export interface WriteOp { id: string; value: object | null }

/** A generator of values for one world, over the model's idea of what exists. */
export interface Pool {
  /** Node names: the clients of node-scoped views sit on the first two, the others exist too. */
  readonly nodes: readonly string[];
  /** A create or update of a random object (large: a value of tens of KiB). */
  put(rnd: Rnd, gen: number, large?: boolean): WriteOp;
  /** Ids a prefix deletion can take together (etcd: one namespace's endpoints), if the world has one. */
  prefixes?: readonly string[];
}

// ---- etcd: Calico's v3 documents and IPAM model documents under /calico/ --------------------

const ETCD_NODES = ['n1', 'n2', 'n3', 'n4'];
const NAMESPACES = ['ns-a', 'ns-b', 'ns-c'];

/** A GlobalNetworkSet of about `kib` KiB: a large value (snapshot chunks, backpressure). */
function bigNets(rnd: Rnd, kib: number): string[] {
  const n = Math.round((kib * 1024) / 16);
  const base = int(rnd, 0, 200);
  return Array.from({ length: n }, (_, i) => `10.${base}.${(i >> 8) & 255}.${i & 255}/32`);
}

export const etcdPool: Pool = {
  nodes: ETCD_NODES,
  prefixes: NAMESPACES.map((ns) => `/calico/resources/v3/projectcalico.org/workloadendpoints/${ns}/`),
  put(rnd, gen, large = false) {
    const n = pick(rnd, ETCD_NODES);
    if (large) {
      const r = resource('GlobalNetworkSet', { name: `big-${int(rnd, 0, 2)}` }, { nets: bigNets(rnd, int(rnd, 10, 60)), gen });
      return { id: r.key, value: r.value };
    }
    let r: { key: string; value: object };
    switch (int(rnd, 0, 9)) {
      case 0: r = calicoNode(n, { asNumber: 64500 + int(rnd, 0, 20), gen }); break;
      // Its node moves: the node-status clients of the node it leaves must see it go.
      case 1: r = resource('CalicoNodeStatus', { name: `status-${int(rnd, 0, 3)}` }, { node: n, classes: [pick(rnd, ['Agent', 'BGP', 'Routes'])], gen }); break;
      case 2: r = resource('IPPool', { name: `pool-${int(rnd, 0, 2)}` }, { cidr: `10.${int(rnd, 0, 2)}.0.0/16`, blockSize: 26, gen }); break;
      case 3: { const b = int(rnd, 0, 5); r = { key: `/calico/ipam/v2/host/${n}/ipv4/block/10.244.${b}.0-26`, value: { state: 'confirmed', node: n, cidr: `10.244.${b}.0/26`, deleted: false, gen } }; break; }
      case 4: { const b = int(rnd, 0, 5); r = { key: `/calico/ipam/v2/assignment/ipv4/block/10.244.${b}.0-26`, value: { cidr: `10.244.${b}.0/26`, affinity: `host:${n}`, strictAffinity: false, allocations: [0, null, gen % 7], unallocated: [1, 2], attributes: [], deleted: false } }; break; }
      case 5: r = resource('BGPPeer', { name: `peer-${int(rnd, 0, 2)}` }, { peerIP: `192.168.1.${int(rnd, 1, 9)}`, asNumber: 64512 + (gen % 10) }); break;
      // In no view at all: must reach no client.
      case 6: r = resource('KubeControllersConfiguration', { name: `kcc-${int(rnd, 0, 1)}` }, { logSeverityScreen: 'Info', gen }); break;
      default: r = wep(n, `pod-${int(rnd, 0, 9)}`, pick(rnd, NAMESPACES), { gen: String(gen) }); break;
    }
    return { id: r.key, value: r.value };
  },
};

// ---- Kubernetes: objects in the contract server's collections --------------------------------

const CRD = '/apis/crd.projectcalico.org/v1/';
const KUBE_NS = ['ns-0', 'ns-1', 'ns-2'];
const KUBE_NODE_NAMES = ['node-0', 'node-1', 'node-2', 'node-3'];

/** Model ids of Kubernetes objects: collection, namespace ('' when cluster-wide), name. */
export const kubeId = (collection: string, namespace: string | undefined, name: string) => `${collection}|${namespace ?? ''}|${name}`;
export function parseKubeId(id: string): { collection: string; namespace: string | undefined; name: string } {
  const [collection, ns, name] = id.split('|') as [string, string, string];
  return { collection, namespace: ns || undefined, name };
}

function crd(plural: string, kind: string, name: string, spec: object, namespace?: string) {
  return { apiVersion: 'crd.projectcalico.org/v1', kind, metadata: { name, ...(namespace ? { namespace } : {}) }, spec };
}

export const kubePool: Pool = {
  nodes: KUBE_NODE_NAMES,
  put(rnd, gen, large = false) {
    const n = pick(rnd, KUBE_NODE_NAMES);
    const op = (collection: string, obj: { metadata: { name: string; namespace?: string } }): WriteOp =>
      ({ id: kubeId(collection, obj.metadata.namespace, obj.metadata.name), value: obj });
    if (large) {
      return op(`${CRD}globalnetworksets`, crd('globalnetworksets', 'GlobalNetworkSet', `big-${int(rnd, 0, 2)}`, { nets: bigNets(rnd, int(rnd, 10, 60)) }));
    }
    switch (int(rnd, 0, 10)) {
      case 0: {
        const i = int(rnd, 0, 3);
        const o = k8sNode(KUBE_NODE_NAMES[i]!, `192.168.0.${i + 10}`);
        o.metadata.labels = { ...o.metadata.labels, gen: String(gen) };
        return op(K8S_NODES, o);
      }
      case 1: return op(`${CRD}caliconodestatuses`, crd('caliconodestatuses', 'CalicoNodeStatus', `status-${int(rnd, 0, 3)}`, { node: n, classes: [pick(rnd, ['Agent', 'BGP', 'Routes'])], updatePeriodSeconds: 10 + (gen % 5) }));
      case 2: return op(`${CRD}ippools`, crd('ippools', 'IPPool', `pool-${int(rnd, 0, 2)}`, { cidr: `10.${int(rnd, 0, 2)}.0.0/16`, blockSize: 26, ipipMode: pick(rnd, ['Always', 'Never']), natOutgoing: true, nodeSelector: 'all()' }));
      // Named as Calico's IPAM names them (<node>-<cidr>): one CR per Calico key. (Two CRs of one
      // node and CIDR would share a key, and the adapter would rightly delete it with either.)
      case 3: { const b = int(rnd, 0, 4); return op(`${CRD}blockaffinities`, crd('blockaffinities', 'BlockAffinity', `${n}-10-244-${b}-0-26`, { node: n, cidr: `10.244.${b}.0/26`, state: pick(rnd, ['confirmed', 'pending']), deleted: 'false' })); }
      case 4: return op(`${CRD}bgppeers`, crd('bgppeers', 'BGPPeer', `peer-${int(rnd, 0, 2)}`, { peerIP: `192.168.1.${int(rnd, 1, 9)}`, asNumber: 64512 + (gen % 10) }));
      case 5: {
        const ns = pick(rnd, KUBE_NS);
        return op('/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns, labels: { 'kubernetes.io/metadata.name': ns, gen: String(gen) } }, spec: { finalizers: ['kubernetes'] }, status: { phase: 'Active' } } as never);
      }
      // In no view at all: must reach no client.
      case 6: return op(`${CRD}kubecontrollersconfigurations`, crd('kubecontrollersconfigurations', 'KubeControllersConfiguration', 'default', { logSeverityScreen: pick(rnd, ['Info', 'Debug']), etcdV3CompactionPeriod: `${gen % 9}m` }));
      default: {
        const i = int(rnd, 0, 9);
        const p = pod(`web-${i}`, KUBE_NS[i % 3]!, n, `10.244.9.${i + 2}`, { gen: String(gen) }) as any;
        // A pod without an IP yet is no endpoint: its key goes away (or never comes).
        if (rnd() < 0.1) { delete p.status.podIP; delete p.status.podIPs; }
        return op(PODS, p);
      }
    }
  },
};

export { kubeContent } from '../kube-cluster.js';

/** A key in `syncer`'s view that no datastore ever holds: what a corrupted cache invents. */
export function ghostKey(syncer: SyncerType, node: string, n: number): { key: string; value: object } {
  switch (syncer) {
    case 'felix': return wep(node, `ghost-${n}`, 'ghost-ns');
    case 'bgp': return resource('BGPPeer', { name: `ghost-${n}` }, { peerIP: '192.168.99.1', asNumber: 1 });
    case 'tunnel-ip-allocation': return resource('IPPool', { name: `ghost-${n}` }, { cidr: '10.99.0.0/16', blockSize: 26 });
    case 'node-status': return resource('CalicoNodeStatus', { name: `ghost-${n}` }, { node, classes: ['Agent'] });
  }
}
