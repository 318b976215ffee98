// Syncer types: which kinds each agent consumes, as Typha's syncers. One store serves all of
// them; a view is only a filter over it. Kinds listed in `nodeScoped` reach a client only when the
// resource belongs to the node named in its hello (Typha sends every node's copy and lets the
// client throw away all but one).
import { BLOCK_AFFINITY, IPAM_BLOCK, type ParsedKey } from './kinds.js';

export const SYNCER_TYPES = ['felix', 'bgp', 'tunnel-ip-allocation', 'node-status'] as const;
export type SyncerType = (typeof SYNCER_TYPES)[number];

/**
 * The mirror view: every kind the agents' views carry, for every node. What a server of a tier
 * below needs to serve all four views itself; never an agent's (only identities authorised for it).
 */
export const MIRROR = 'mirror';
export type ViewName = SyncerType | typeof MIRROR;
/** The agents' views and the mirror view. */
export const VIEW_NAMES: readonly ViewName[] = [...SYNCER_TYPES, MIRROR];

export interface ViewDef {
  readonly name: ViewName;
  readonly kinds: ReadonlySet<string>;
  readonly nodeScoped: ReadonlySet<string>;
}

const def = (name: ViewName, kinds: string[], nodeScoped: string[] = []): ViewDef => ({
  name, kinds: new Set(kinds), nodeScoped: new Set(nodeScoped),
});

const AGENT_VIEWS: Readonly<Record<SyncerType, ViewDef>> = {
  felix: def('felix', [
    'ClusterInformation', 'FelixConfiguration', 'GlobalNetworkPolicy', 'StagedGlobalNetworkPolicy',
    'GlobalNetworkSet', 'IPPool', 'Node', 'Profile', 'WorkloadEndpoint', 'NetworkPolicy',
    'StagedNetworkPolicy', 'StagedKubernetesNetworkPolicy', 'NetworkSet', 'Tier', 'HostEndpoint',
    'BGPConfiguration', 'BGPPeer', 'LiveMigration',
    // What Calico's Kubernetes datastore adds for Felix.
    'KubernetesNetworkPolicy', 'KubernetesClusterNetworkPolicy', 'KubernetesEndpointSlice', 'KubernetesService',
    // Felix routes by IPAM block unless the cluster uses the pod CIDR.
    IPAM_BLOCK,
  ]),
  bgp: def('bgp', ['IPPool', 'BGPConfiguration', 'Node', 'BGPPeer', 'BGPFilter', BLOCK_AFFINITY]),
  'tunnel-ip-allocation': def('tunnel-ip-allocation', ['IPPool', 'Node'], ['Node']),
  'node-status': def('node-status', ['CalicoNodeStatus'], ['CalicoNodeStatus']),
};

export const VIEWS: Readonly<Record<ViewName, ViewDef>> = {
  ...AGENT_VIEWS,
  // Nothing node-scoped: a server of a tier below scopes its own clients' views.
  mirror: def(MIRROR, [...new Set(SYNCER_TYPES.flatMap((v) => [...AGENT_VIEWS[v].kinds]))]),
};

export function isSyncerType(s: unknown): s is SyncerType {
  return typeof s === 'string' && (SYNCER_TYPES as readonly string[]).includes(s);
}

/** An agent's view or the mirror view. */
export function isViewName(s: unknown): s is ViewName {
  return s === MIRROR || isSyncerType(s);
}

const STAGED_POLICY_KINDS: ReadonlySet<string> = new Set(['StagedNetworkPolicy', 'StagedGlobalNetworkPolicy', 'StagedKubernetesNetworkPolicy']);

/**
 * Whether a stored value of a carried kind reaches its views at all. Felix's syncer leaves out a
 * workload endpoint with no ipNetworks (its rules cannot be rendered yet) and a staged policy
 * whose stagedAction is Delete (nothing to enforce); such a value reads as the key's absence,
 * so an update into either state takes the key out of the view.
 */
export function isCarried(kind: string, value: any): boolean {
  if (kind === 'WorkloadEndpoint') {
    const nets = value?.spec?.ipNetworks;
    return Array.isArray(nets) && nets.length > 0;
  }
  if (STAGED_POLICY_KINDS.has(kind)) return value?.spec?.stagedAction !== 'Delete';
  return true;
}

/** A view needs the client's node name when any of its kinds is node-scoped. */
export function needsNode(view: ViewName): boolean {
  return VIEWS[view].nodeScoped.size > 0;
}

/**
 * The node a resource belongs to, for node scoping. Read from the fields Calico uses for it;
 * undefined for cluster-wide resources.
 */
export function nodeOf(parsed: ParsedKey, value: any): string | undefined {
  switch (parsed.kind) {
    case 'Node':
      return parsed.name;
    case BLOCK_AFFINITY:
      return parsed.host;
    case 'CalicoNodeStatus':
    case 'WorkloadEndpoint':
    case 'HostEndpoint': {
      const node = value?.spec?.node;
      return typeof node === 'string' ? node : undefined;
    }
    default:
      return undefined;
  }
}

const viewsByKind = new Map<string, ViewName[]>();
for (const v of VIEW_NAMES) for (const k of VIEWS[v].kinds) viewsByKind.set(k, [...(viewsByKind.get(k) ?? []), v]);

/** The views that carry a kind, the mirror view included (empty for kinds no agent consumes, such as IPAM handles). */
export function viewsOfKind(kind: string): readonly ViewName[] {
  return viewsByKind.get(kind) ?? [];
}

/**
 * Whether any view carries a kind. With USE_POD_CIDR (host-local IPAM) none carries IPAM blocks
 * or block affinities, as Typha's felix and bgp syncers then leave them out.
 */
export function isServed(kind: string, usePodCidr: boolean): boolean {
  if (usePodCidr && (kind === IPAM_BLOCK || kind === BLOCK_AFFINITY)) return false;
  return viewsOfKind(kind).length > 0;
}
