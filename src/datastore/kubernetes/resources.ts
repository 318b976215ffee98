// The collections Calico's Kubernetes datastore (KDD) watches, each with the conversion of its
// objects into Calico's model: the key path and v3 value our memory/etcd datastores serve for the
// same resource (src/model/kinds.ts, examples/demo-cluster). The adapter lists and watches every
// `path` once and feeds each object through `convert`; it imports nothing else from here.
//
// The rules follow Calico's Kubernetes backend (its resource clients and conversions). Facts carry
// over, code does not: this is a fresh TypeScript implementation.
import { BLOCK_AFFINITY, IPAM_BLOCK } from '../../model/kinds.js';
import { CRD_V1, V3, type CalicoApiGroup } from './api-group.js';
import { convertBlockAffinity, convertCalicoCrd, convertIpamBlock } from './convert-calico-crd.js';
import { convertClusterNetworkPolicy } from './convert-cluster-network-policy.js';
import { convertNetworkPolicy } from './convert-network-policy.js';
import { convertNode } from './convert-node.js';
import { convertPod, DEFAULT_INTERFACE_PREFIX } from './convert-pod.js';
import { convertNamespace, convertServiceAccount } from './convert-profile.js';
import { convertEndpointSlice, convertService } from './convert-service.js';

export { ConvertError, type CalicoResource } from './read.js';
import { convertUID, isObj, type CalicoResource } from './read.js';

export interface WatchedResource {
  /** Cluster-wide collection path to list and watch: '/api/v1/pods', '/apis/crd.projectcalico.org/v1/ippools', ... */
  readonly path: string;
  /** The Calico kind this collection's objects become (labels the adapter's count of skipped objects). */
  readonly kind: string;
  /** For Calico's own resources: the group version serving them and the plural (the same in every group). */
  readonly calico?: { readonly group: CalicoApiGroup; readonly plural: string };
  /** The Calico resource this object becomes, or null when it yields none (e.g. a pod without an IP). Throws ConvertError when malformed. Pure: same input, same output. */
  convert(obj: unknown): CalicoResource | null;
}

/**
 * Calico's own resources, stored as crd.projectcalico.org/v1 or projectcalico.org/v3 custom
 * resources in KDD (the CRD kind is the v3 kind, the plurals are the same in both groups). IPAM
 * blocks and block affinities are turned into the IPAM model, keyed under /calico/ipam/v2/.
 */
const CALICO_CRDS: readonly (readonly [plural: string, kind: string])[] = [
  ['felixconfigurations', 'FelixConfiguration'],
  ['clusterinformations', 'ClusterInformation'],
  ['globalnetworkpolicies', 'GlobalNetworkPolicy'],
  ['networkpolicies', 'NetworkPolicy'],
  ['stagedglobalnetworkpolicies', 'StagedGlobalNetworkPolicy'],
  ['stagednetworkpolicies', 'StagedNetworkPolicy'],
  ['stagedkubernetesnetworkpolicies', 'StagedKubernetesNetworkPolicy'],
  ['globalnetworksets', 'GlobalNetworkSet'],
  ['networksets', 'NetworkSet'],
  ['tiers', 'Tier'],
  ['hostendpoints', 'HostEndpoint'],
  ['ippools', 'IPPool'],
  ['ipreservations', 'IPReservation'],
  ['bgpconfigurations', 'BGPConfiguration'],
  ['bgppeers', 'BGPPeer'],
  ['bgpfilters', 'BGPFilter'],
  ['caliconodestatuses', 'CalicoNodeStatus'],
  ['kubecontrollersconfigurations', 'KubeControllersConfiguration'],
];

const CALICO_CONVERT: Record<string, (obj: unknown, group: CalicoApiGroup) => CalicoResource | null> = {
  ...Object.fromEntries(CALICO_CRDS.map(([plural, kind]) => [plural, (obj: unknown, group: CalicoApiGroup) => convertCalicoCrd(group === V3 ? v3AsStored(obj) : obj, kind)])),
  ipamblocks: (obj) => convertIpamBlock(obj),
  blockaffinities: (obj, group) => convertBlockAffinity(group === V3 ? v3AffinityAsStored(obj) : obj),
};
const CALICO_KINDS: Record<string, string> = { ...Object.fromEntries(CALICO_CRDS), ipamblocks: IPAM_BLOCK, blockaffinities: BLOCK_AFFINITY };

/** One of Calico's collections in the given group. */
export function calicoResource(plural: string, group: CalicoApiGroup): WatchedResource {
  const convert = CALICO_CONVERT[plural];
  if (!convert) throw new Error(`not a Calico resource: ${plural}`);
  return Object.freeze({ path: `/apis/${group}/${plural}`, kind: CALICO_KINDS[plural]!, calico: Object.freeze({ group, plural }), convert: (obj: unknown) => convert(obj, group) });
}

/**
 * A projectcalico.org/v3 CR is the v3 resource itself: Calico converts no metadata of it, so
 * its UID is its own. The v1 conversion translates
 * every UID with ConvertUID, which is its own inverse: given the translated UID, it restores it.
 */
function v3AsStored(obj: unknown): unknown {
  const uid = isObj(obj) && isObj(obj.metadata) ? obj.metadata.uid : undefined;
  if (typeof uid !== 'string' || !uid) return obj;
  let stored: string;
  try { stored = convertUID(uid, 'metadata'); } catch { return obj; }
  return { ...obj as object, metadata: { ...(obj as { metadata: object }).metadata, uid: stored } };
}

/** The v3 BlockAffinity's `deleted` is a boolean (api BlockAffinitySpec); the v1 CRD's a string. */
function v3AffinityAsStored(obj: unknown): unknown {
  const spec = isObj(obj) && isObj(obj.spec) ? obj.spec : undefined;
  if (!spec || typeof spec.deleted !== 'boolean') return obj;
  return { ...obj as object, spec: { ...spec, deleted: String(spec.deleted) } };
}

/** Settings of the agents' environment that Calico's conversions read. */
export interface ConversionOptions {
  /** FELIX_INTERFACEPREFIX's first prefix: pod interface names (default `cali`). */
  interfacePrefix?: string;
  /**
   * USE_POD_CIDR (host-local IPAM): Nodes take their IPIP tunnel address from spec.podCIDR, and
   * IPAM blocks and block affinities, which no view then carries, are not watched at all.
   */
  usePodCIDR?: boolean;
}

/**
 * Every collection the Kubernetes datastore watches (one list+watch each, shared by all views),
 * with Calico's resources in `group`.
 */
export function watchedResources(group: CalicoApiGroup = CRD_V1, opts: ConversionOptions = {}): readonly WatchedResource[] {
  const interfacePrefix = opts.interfacePrefix ?? DEFAULT_INTERFACE_PREFIX;
  const usePodCIDR = opts.usePodCIDR ?? false;
  const calico = Object.keys(CALICO_CONVERT).filter((plural) => !usePodCIDR || (plural !== 'ipamblocks' && plural !== 'blockaffinities'));
  return Object.freeze([
    ...calico.map((plural) => calicoResource(plural, group)),
    ...[
      { path: '/api/v1/nodes', kind: 'Node', convert: (obj: unknown) => convertNode(obj, { usePodCIDR }) },
      { path: '/api/v1/pods', kind: 'WorkloadEndpoint', convert: (obj: unknown) => convertPod(obj, { interfacePrefix }) },
      // Both become Profiles: kns.<namespace> and ksa.<namespace>.<service account>.
      { path: '/api/v1/namespaces', kind: 'Profile', convert: convertNamespace },
      { path: '/api/v1/serviceaccounts', kind: 'Profile', convert: convertServiceAccount },
      { path: '/apis/networking.k8s.io/v1/networkpolicies', kind: 'KubernetesNetworkPolicy', convert: convertNetworkPolicy },
      // Admin and baseline cluster policies (the kube-admin and kube-baseline tiers).
      { path: '/apis/policy.networking.k8s.io/v1alpha2/clusternetworkpolicies', kind: 'KubernetesClusterNetworkPolicy', convert: convertClusterNetworkPolicy },
      { path: '/api/v1/services', kind: 'KubernetesService', convert: convertService },
      { path: '/apis/discovery.k8s.io/v1/endpointslices', kind: 'KubernetesEndpointSlice', convert: convertEndpointSlice },
    ].map((r) => Object.freeze(r)),
  ]);
}

/** Every collection with Calico's defaults: crd.projectcalico.org/v1, interface prefix `cali`, Calico IPAM. */
export const WATCHED_RESOURCES: readonly WatchedResource[] = watchedResources();
