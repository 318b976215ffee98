// Legacy API discovery documents for the contract server (/api, /apis, /api/v1,
// /apis/<group>/<version>), so that a client-go client such as kubectl can resolve resource
// names. Plain application/json answers: client-go then uses these instead of aggregated
// discovery. Only what the tests use is listed; each resource answers get, list and watch.

/** plural: [kind, namespaced] per group/version ('v1' is the core group). */
const RESOURCES: Record<string, Record<string, [string, boolean]>> = {
  v1: {
    pods: ['Pod', true], nodes: ['Node', false], namespaces: ['Namespace', false], services: ['Service', true],
    endpoints: ['Endpoints', true], serviceaccounts: ['ServiceAccount', true],
  },
  'discovery.k8s.io/v1': { endpointslices: ['EndpointSlice', true] },
  'networking.k8s.io/v1': { networkpolicies: ['NetworkPolicy', true] },
  'crd.projectcalico.org/v1': {
    bgpconfigurations: ['BGPConfiguration', false], bgpfilters: ['BGPFilter', false], bgppeers: ['BGPPeer', false],
    blockaffinities: ['BlockAffinity', false], caliconodestatuses: ['CalicoNodeStatus', false], clusterinformations: ['ClusterInformation', false],
    felixconfigurations: ['FelixConfiguration', false], globalnetworkpolicies: ['GlobalNetworkPolicy', false],
    globalnetworksets: ['GlobalNetworkSet', false], hostendpoints: ['HostEndpoint', false], ipamblocks: ['IPAMBlock', false],
    ippools: ['IPPool', false], ipreservations: ['IPReservation', false], kubecontrollersconfigurations: ['KubeControllersConfiguration', false],
    networkpolicies: ['NetworkPolicy', true], networksets: ['NetworkSet', true], stagedglobalnetworkpolicies: ['StagedGlobalNetworkPolicy', false],
    stagedkubernetesnetworkpolicies: ['StagedKubernetesNetworkPolicy', true], stagednetworkpolicies: ['StagedNetworkPolicy', true], tiers: ['Tier', false],
  },
};

/** The discovery document at `pathname`, or undefined when it is not a discovery path. */
export function discoveryDocument(pathname: string): object | undefined {
  const p = pathname.replace(/\/+$/, '');
  if (p === '/api') return { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: '127.0.0.1' }] };
  if (p === '/apis') {
    const groups = Object.keys(RESOURCES).filter((gv) => gv.includes('/')).map((gv) => {
      const [name, version] = gv.split('/') as [string, string];
      const v = { groupVersion: gv, version };
      return { name, versions: [v], preferredVersion: v };
    });
    return { kind: 'APIGroupList', apiVersion: 'v1', groups };
  }
  const gv = p === '/api/v1' ? 'v1' : /^\/apis\/([^/]+\/[^/]+)$/.exec(p)?.[1];
  const table = gv === undefined ? undefined : RESOURCES[gv];
  if (!table) return undefined;
  const resources = Object.entries(table).map(([name, [kind, namespaced]]) => ({
    name, singularName: kind.toLowerCase(), namespaced, kind, verbs: ['get', 'list', 'watch'],
  }));
  return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: gv, resources };
}
