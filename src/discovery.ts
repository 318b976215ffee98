// Server discovery from a Kubernetes Service, as Typha's clients do it (typha/pkg/discovery),
// shared by the client library (whom to connect to) and the server's rebalancer (who the peers are):
// the EndpointSlices of the Service, the port with the configured name, the endpoint on this
// agent's own node first and the others in random order, so that a fleet of agents spreads over
// the replicas. Unlike Typha, endpoints whose `ready` condition is false (unready or terminating
// pods) are left out: a client has no use for a replica that is going away.
//
// The slices are read with one plain GET (paged) of the namespace's EndpointSlices and filtered
// here on the label `kubernetes.io/service-name`, rather than with a labelSelector: the result is
// the same, a Calico namespace holds a handful of slices, the RBAC needed is the same (list
// endpointslices in the namespace), and it works against API servers or proxies that do not
// support selectors (our contract server among them).
//
// @kubernetes/client-node is loaded on the first call only: agents that do not use discovery do
// not pay for it.
import type { KubeConfig } from '@kubernetes/client-node';

export interface KubernetesEndpointsOptions {
  /** Namespace of the Service (e.g. calico-system). */
  namespace: string;
  /** The Service's name (e.g. calico-typha): its slices carry kubernetes.io/service-name=<service>. */
  service: string;
  /** The name of the port to dial (Typha's K8sPortName); default 'calico-typha'. */
  portName?: string;
  /** This agent's node: an endpoint on it comes first. */
  node?: string;
  /** A kubeconfig file; default: in-cluster when KUBERNETES_SERVICE_HOST is set, else $KUBECONFIG or ~/.kube/config. */
  kubeconfig?: string;
  /** 'wss' when the servers use TLS; default 'ws'. */
  scheme?: 'ws' | 'wss';
  /** Timeout of each request to the API server; default 10 s. */
  timeoutMs?: number;
}

/** One EndpointSlice, as much of it as discovery reads (discovery.k8s.io/v1). */
interface EndpointSlice {
  metadata?: { name?: string; labels?: Record<string, string> };
  addressType?: string;
  endpoints?: { addresses?: string[]; conditions?: { ready?: boolean | null }; nodeName?: string }[] | null;
  ports?: { name?: string; port?: number | null; protocol?: string }[] | null;
}

const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
const PAGE = 500;

/**
 * A discovery function for SyncClientOptions.discover: each call lists the Service's
 * EndpointSlices and resolves with the URLs of its ready endpoints (own node first, then the rest
 * shuffled), or rejects when the API server cannot be read. An empty list is a valid answer (no
 * ready replica).
 */
export function kubernetesEndpoints(opts: KubernetesEndpointsOptions): (signal?: AbortSignal) => Promise<string[]> {
  if (!opts.namespace) throw new Error('kubernetesEndpoints needs namespace');
  if (!opts.service) throw new Error('kubernetesEndpoints needs service');
  const portName = opts.portName ?? 'calico-typha';
  const scheme = opts.scheme ?? 'ws';
  const timeoutMs = opts.timeoutMs ?? 10_000;
  // Loaded once it works; a kubeconfig that cannot be loaded is retried on the next call.
  // Credentials are applied per call, so a rotated service-account token is picked up.
  let kc: KubeConfig | undefined;
  const base = `/apis/discovery.k8s.io/v1/namespaces/${encodeURIComponent(opts.namespace)}/endpointslices`;

  return async (signal?: AbortSignal) => {
    const { loadKubeConfig, kubeHttp } = await import('./datastore/kubernetes/http.js');
    kc ??= loadKubeConfig(opts.kubeconfig ?? '');
    const api = await kubeHttp(kc);
    const slices: EndpointSlice[] = [];
    let cont: string | undefined;
    do {
      // resourceVersion=0: served from the API server's watch cache, not a quorum read from
      // etcd, which matters when many agents look at once (a replica went away). A continue
      // token carries its own resourceVersion.
      const q = new URLSearchParams({ limit: String(PAGE) });
      if (cont) q.set('continue', cont);
      else q.set('resourceVersion', '0');
      const list = await api.getJson(`${base}?${q}`, signal ?? new AbortController().signal, timeoutMs);
      if (!list || !Array.isArray(list.items)) throw new Error(`${base}: the answer is not a list`);
      slices.push(...(list.items as EndpointSlice[]));
      cont = typeof list.metadata?.continue === 'string' && list.metadata.continue ? list.metadata.continue : undefined;
    } while (cont);
    return endpointUrls(slices, { service: opts.service, portName, node: opts.node, scheme });
  };
}

/**
 * The URLs of the ready endpoints of one Service's port among these slices: on `node` first,
 * then the others in random order; each URL once.
 */
export function endpointUrls(slices: readonly EndpointSlice[], o: { service: string; portName: string; node?: string; scheme: 'ws' | 'wss' }): string[] {
  const local: string[] = [];
  const remote: string[] = [];
  const seen = new Set<string>();
  for (const s of slices) {
    if (s.metadata?.labels?.[SERVICE_NAME_LABEL] !== o.service) continue;
    const port = (s.ports ?? []).find((p) => (p.name ?? '') === o.portName)?.port;
    if (typeof port !== 'number' || !Number.isInteger(port) || port <= 0) continue;
    for (const e of s.endpoints ?? []) {
      if (e.conditions?.ready === false) continue;
      // All addresses of an endpoint are one pod ("fungible"); the first is enough.
      const addr = e.addresses?.[0];
      if (!addr) continue;
      const host = s.addressType === 'IPv6' || addr.includes(':') ? `[${addr}]` : addr;
      const url = `${o.scheme}://${host}:${port}`;
      if (seen.has(url)) continue;
      seen.add(url);
      (o.node !== undefined && e.nodeName === o.node ? local : remote).push(url);
    }
  }
  return [...shuffle(local), ...shuffle(remote)];
}

function shuffle<T>(a: T[]): T[] {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}
