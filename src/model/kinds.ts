// Calico's datastore layout: which kinds exist, where each lives under /calico/, and how a key
// path maps back to (kind, namespace, name). Key paths are Calico's own, so that an etcd holding
// a real Calico cluster reads without translation.

export const RESOURCE_PREFIX = '/calico/resources/v3/projectcalico.org/';
export const IPAM_PREFIX = '/calico/ipam/v2/';

export interface KindInfo {
  readonly kind: string;
  readonly plural: string;
  readonly namespaced: boolean;
}

const RESOURCE_KINDS: readonly KindInfo[] = [
  ['BGPConfiguration', 'bgpconfigurations'],
  ['BGPFilter', 'bgpfilters'],
  ['BGPPeer', 'bgppeers'],
  ['CalicoNodeStatus', 'caliconodestatuses'],
  ['ClusterInformation', 'clusterinformations'],
  ['FelixConfiguration', 'felixconfigurations'],
  ['GlobalNetworkPolicy', 'globalnetworkpolicies'],
  ['GlobalNetworkSet', 'globalnetworksets'],
  ['HostEndpoint', 'hostendpoints'],
  ['IPAMConfiguration', 'ipamconfigurations'],
  ['IPPool', 'ippools'],
  ['IPReservation', 'ipreservations'],
  ['KubeControllersConfiguration', 'kubecontrollersconfigurations'],
  ['KubernetesClusterNetworkPolicy', 'kubernetesclusternetworkpolicies'],
  ['KubernetesEndpointSlice', 'kubernetesendpointslices', true],
  ['KubernetesNetworkPolicy', 'kubernetesnetworkpolicies', true],
  ['KubernetesService', 'kubernetesservice', true],
  ['LiveMigration', 'livemigrations', true],
  ['NetworkPolicy', 'networkpolicies', true],
  ['NetworkSet', 'networksets', true],
  ['Node', 'nodes'],
  ['Profile', 'profiles'],
  ['StagedGlobalNetworkPolicy', 'stagedglobalnetworkpolicies'],
  ['StagedKubernetesNetworkPolicy', 'stagedkubernetesnetworkpolicies', true],
  ['StagedNetworkPolicy', 'stagednetworkpolicies', true],
  ['Tier', 'tiers'],
  ['WorkloadEndpoint', 'workloadendpoints', true],
].map(([kind, plural, namespaced]) => ({ kind, plural, namespaced: namespaced === true }) as KindInfo);

/** IPAM kinds live outside the v3 resource tree, with values in Calico's model shape. */
export const IPAM_BLOCK = 'IPAMBlock';
export const BLOCK_AFFINITY = 'BlockAffinity';
export const IPAM_HANDLE = 'IPAMHandle';
export const IPAM_CONFIG = 'IPAMConfig';

const byPlural = new Map(RESOURCE_KINDS.map((k) => [k.plural, k]));
const byKind = new Map(RESOURCE_KINDS.map((k) => [k.kind, k]));

export interface ParsedKey {
  kind: string;
  name: string;
  namespace?: string;
  /** The node a key names in its path (block affinities), if any. */
  host?: string;
}

let lastPlural: KindInfo = RESOURCE_KINDS[0]!;

/** Parses a Calico default path; undefined for anything outside the layout we serve. */
export function parseKey(key: string): ParsedKey | undefined {
  if (key.startsWith(RESOURCE_PREFIX)) {
    // <plural>/<name> or <plural>/<namespace>/<name>, no part empty. Found with indexOf, not
    // split: this runs for every update ingested.
    const p = RESOURCE_PREFIX.length;
    const a = key.indexOf('/', p);
    if (a < 0) return undefined;
    // Keys come in runs of one kind: the last plural is checked in place before a lookup.
    let info = lastPlural;
    if (a - p !== info.plural.length || !key.startsWith(info.plural, p)) {
      const found = byPlural.get(key.slice(p, a));
      if (!found) return undefined;
      info = lastPlural = found;
    }
    const b = key.indexOf('/', a + 1);
    if (info.namespaced) {
      if (b < 0 || b === a + 1 || b === key.length - 1 || key.indexOf('/', b + 1) >= 0) return undefined;
      return { kind: info.kind, namespace: key.slice(a + 1, b), name: key.slice(b + 1) };
    }
    if (b >= 0 || a === key.length - 1) return undefined;
    return { kind: info.kind, name: key.slice(a + 1) };
  }
  if (key.startsWith(IPAM_PREFIX)) {
    const parts = key.slice(IPAM_PREFIX.length).split('/');
    // assignment/ipv4/block/<cidr>
    if (parts[0] === 'assignment' && parts.length === 4 && isIpVersion(parts[1]) && parts[2] === 'block' && parts[3]) {
      return { kind: IPAM_BLOCK, name: parts[3] };
    }
    // host/<node>/ipv4/block/<cidr>
    if (parts[0] === 'host' && parts.length === 5 && parts[1] && isIpVersion(parts[2]) && parts[3] === 'block' && parts[4]) {
      return { kind: BLOCK_AFFINITY, name: `${parts[1]}-${parts[4]}`, host: parts[1] };
    }
    if (parts[0] === 'handle' && parts.length === 2 && parts[1]) return { kind: IPAM_HANDLE, name: parts[1] };
    if (parts[0] === 'config' && parts.length === 1) return { kind: IPAM_CONFIG, name: 'default' };
  }
  return undefined;
}

/**
 * Keys Calico writes that no syncer reads, by what they hold: the v3 plurals blockaffinities and
 * ipamconfigs, load-balancer affinities under virtual/, and Felix's status reports. Undefined for
 * any other key.
 */
export function unservedKind(key: string): string | undefined {
  const parts = key.split('/');
  if (key.startsWith(RESOURCE_PREFIX)) {
    const [plural, name, extra] = key.slice(RESOURCE_PREFIX.length).split('/');
    if (!name || extra !== undefined) return undefined;
    if (plural === 'blockaffinities') return BLOCK_AFFINITY;
    if (plural === 'ipamconfigs') return IPAM_CONFIG;
    return undefined;
  }
  if (key.startsWith(IPAM_PREFIX)) {
    // virtual/<name>/ipv4/block/<cidr>: affinities of load-balancer IPAM; the bgp syncer lists host/ only.
    const [type, host, ipv, block, cidr, extra] = key.slice(IPAM_PREFIX.length).split('/');
    if (type === 'virtual' && host && isIpVersion(ipv) && block === 'block' && cidr && extra === undefined) return BLOCK_AFFINITY;
    return undefined;
  }
  // /calico/felix/v2/<region>/host/<h>/status | last_reported_status | workload/<o>/<w>/endpoint/<e>
  if (parts[1] === 'calico' && parts[2] === 'felix' && parts[3] === 'v2' && parts[4] && parts[5] === 'host' && parts[6]) {
    if (parts.length === 8 && parts[7] === 'status') return 'ActiveStatusReport';
    if (parts.length === 8 && parts[7] === 'last_reported_status') return 'LastStatusReport';
    if (parts.length === 12 && parts[7] === 'workload' && parts[8] && parts[9] && parts[10] === 'endpoint' && parts[11]) return 'WorkloadEndpointStatus';
  }
  // /calico/felix/v1/host/<h>/endpoint/<e>
  if (parts.length === 8 && parts[1] === 'calico' && parts[2] === 'felix' && parts[3] === 'v1' && parts[4] === 'host' && parts[5] && parts[6] === 'endpoint' && parts[7]) {
    return 'HostEndpointStatus';
  }
  return undefined;
}

function isIpVersion(s: string | undefined): boolean {
  return s === 'ipv4' || s === 'ipv6';
}

/** `10.0.1.0/26` → `10.0.1.0-26`, as Calico writes CIDRs into paths. */
export function cidrToPath(cidr: string): string {
  return cidr.replace('/', '-');
}

function ipVersionOf(cidr: string): string {
  return cidr.includes(':') ? 'ipv6' : 'ipv4';
}

/**
 * The default path of a resource document (`apiVersion`, `kind`, `metadata`, `spec`).
 * IPAM documents (kind IPAMBlock / BlockAffinity) name their CIDR and node in `spec`.
 */
export function keyForResource(doc: { kind?: unknown; metadata?: any; spec?: any }): string {
  const kind = String(doc.kind ?? '');
  const name = doc.metadata?.name;
  if (kind === IPAM_BLOCK) {
    const cidr = String(doc.spec?.cidr ?? '');
    if (!cidr) throw new Error(`IPAMBlock ${name ?? '?'} has no spec.cidr`);
    return `${IPAM_PREFIX}assignment/${ipVersionOf(cidr)}/block/${cidrToPath(cidr)}`;
  }
  if (kind === BLOCK_AFFINITY) {
    const cidr = String(doc.spec?.cidr ?? '');
    const node = String(doc.spec?.node ?? '');
    if (!cidr || !node) throw new Error(`BlockAffinity ${name ?? '?'} needs spec.cidr and spec.node`);
    return `${IPAM_PREFIX}host/${node}/${ipVersionOf(cidr)}/block/${cidrToPath(cidr)}`;
  }
  const info = byKind.get(kind);
  if (!info) throw new Error(`unknown kind ${JSON.stringify(kind)}`);
  if (typeof name !== 'string' || !name) throw new Error(`${kind} without metadata.name`);
  if (!info.namespaced) return `${RESOURCE_PREFIX}${info.plural}/${name}`;
  const ns = doc.metadata?.namespace;
  if (typeof ns !== 'string' || !ns) throw new Error(`${kind} ${name} without metadata.namespace`);
  return `${RESOURCE_PREFIX}${info.plural}/${ns}/${name}`;
}
