// A Kubernetes cluster as the API server returns it, for the Kubernetes datastore's tests and the
// contract-server demo: nodes with Calico's annotations, namespaces with their default service
// accounts, running pods, and a few Calico CRD objects (shapes from Calico's manifests and docs).
import { WATCHED_RESOURCES } from '../../src/datastore/kubernetes/resources.js';
import type { KubeApiServer } from './kube-api.js';

export const PODS = '/api/v1/pods';
export const NODES = '/api/v1/nodes';

interface Meta { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> }
const meta = (name: string, namespace?: string, extra: Omit<Meta, 'name' | 'namespace'> = {}): Meta => ({ name, ...(namespace ? { namespace } : {}), ...extra });

export function k8sNode(name: string, ip: string) {
  return {
    apiVersion: 'v1', kind: 'Node',
    metadata: meta(name, undefined, { labels: { 'kubernetes.io/hostname': name }, annotations: { 'projectcalico.org/IPv4Address': `${ip}/24`, 'projectcalico.org/IPv4IPIPTunnelAddr': `10.244.${ip.split('.')[3]}.1` } }),
    spec: { podCIDR: `10.244.${ip.split('.')[3]}.0/24` },
    status: { addresses: [{ type: 'InternalIP', address: ip }, { type: 'Hostname', address: name }] },
  };
}

export function pod(name: string, ns: string, node: string, ip: string, labels: Record<string, string> = {}) {
  return {
    apiVersion: 'v1', kind: 'Pod',
    metadata: meta(name, ns, { labels: { app: name.replace(/-\d+$/, ''), ...labels } }),
    spec: { nodeName: node, serviceAccountName: 'default', containers: [{ name: 'app', image: 'nginx:1.27', ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }] }] },
    status: { phase: 'Running', podIP: ip, podIPs: [{ ip }] },
  };
}

export const podIp = (i: number) => `10.244.${Math.floor(i / 250)}.${(i % 250) + 2}`;

/** A cluster: 20 nodes, 5 namespaces with their default service accounts, pods, Calico CRDs. */
export function cluster(pods: number) {
  const namespaces = Array.from({ length: 5 }, (_, i) => `ns-${i}`);
  return {
    '/api/v1/namespaces': namespaces.map((n) => ({ apiVersion: 'v1', kind: 'Namespace', metadata: meta(n, undefined, { labels: { 'kubernetes.io/metadata.name': n, team: `t${n.at(-1)}` } }), spec: { finalizers: ['kubernetes'] }, status: { phase: 'Active' } })),
    '/api/v1/serviceaccounts': namespaces.map((n) => ({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: meta('default', n) })),
    [NODES]: Array.from({ length: 20 }, (_, i) => k8sNode(`node-${i}`, `192.168.0.${i + 10}`)),
    [PODS]: Array.from({ length: pods }, (_, i) => pod(`web-${i}`, namespaces[i % 5]!, `node-${i % 20}`, podIp(i))),
    '/apis/crd.projectcalico.org/v1/ippools': [{ apiVersion: 'crd.projectcalico.org/v1', kind: 'IPPool', metadata: meta('default-ipv4-ippool'), spec: { cidr: '10.244.0.0/16', blockSize: 26, ipipMode: 'Always', natOutgoing: true, nodeSelector: 'all()' } }],
    '/apis/crd.projectcalico.org/v1/felixconfigurations': [{ apiVersion: 'crd.projectcalico.org/v1', kind: 'FelixConfiguration', metadata: meta('default'), spec: { logSeverityScreen: 'Info', reportingInterval: '0s', bpfEnabled: false } }],
    '/apis/crd.projectcalico.org/v1/globalnetworkpolicies': [{ apiVersion: 'crd.projectcalico.org/v1', kind: 'GlobalNetworkPolicy', metadata: meta('default.allow-dns'), spec: { tier: 'default', order: 100, selector: 'all()', types: ['Egress'], egress: [{ action: 'Allow', protocol: 'UDP', destination: { ports: [53] } }] } }],
    '/apis/crd.projectcalico.org/v1/bgpconfigurations': [{ apiVersion: 'crd.projectcalico.org/v1', kind: 'BGPConfiguration', metadata: meta('default'), spec: { asNumber: 64512, nodeToNodeMeshEnabled: true, logSeverityScreen: 'Info' } }],
    '/apis/crd.projectcalico.org/v1/caliconodestatuses': [{ apiVersion: 'crd.projectcalico.org/v1', kind: 'CalicoNodeStatus', metadata: meta('node-3-status'), spec: { node: 'node-3', classes: ['Agent', 'BGP'], updatePeriodSeconds: 10 } }],
  } as Record<string, object[]>;
}

export function load(api: KubeApiServer, objects: Record<string, object[]>): void {
  for (const [collection, list] of Object.entries(objects)) for (const o of list) api.apply(collection, o);
}


/** What the Kubernetes datastore should serve: every object of the API server, converted. */
export function kubeContent(api: KubeApiServer): Map<string, unknown> {
  const out = new Map<string, unknown>();
  for (const r of WATCHED_RESOURCES) {
    for (const o of api.list(r.path)) {
      const c = r.convert(o);
      if (c) out.set(c.key, c.value);
    }
  }
  return out;
}

/** The same cluster with Calico's resources as projectcalico.org/v3 CRDs (a v3.32+ cluster without the v1 ones). */
export function asV3Crds(objects: Record<string, object[]>): Record<string, object[]> {
  const V1 = '/apis/crd.projectcalico.org/v1/';
  return Object.fromEntries(Object.entries(objects).map(([path, list]) => path.startsWith(V1)
    ? [`/apis/projectcalico.org/v3/${path.slice(V1.length)}`, list.map((o) => ({ ...o, apiVersion: 'projectcalico.org/v3' }))]
    : [path, list]));
}
