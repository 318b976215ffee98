// What a client of (syncer, node) should hold, computed from the datastore's content by the
// oracle alone (not through the store), and a comparison that names the first difference.
//
// The views are stated here again, from PROTOCOL.md ("Concepts": the view table, node scoping,
// what Felix's syncer leaves out), not imported from src/model/views.ts or dedupe/view-filter.ts:
// an oracle that shared that code could not catch a mistake in it. Only the renaming of policies
// (servedPolicy) is reused: a value transformation with tests of its own, not view membership.
import assert from 'node:assert/strict';
import type { SyncClient } from '../../client/index.js';
import type { MemoryDatastore } from '../../src/datastore/memory.js';
import { DEFAULT_ALLOW_PROFILE, DEFAULT_ALLOW_PROFILE_KEY } from '../../src/datastore/default-allow.js';
import { servedPolicy } from '../../src/model/policy-name.js';

export type Syncer = 'felix' | 'bgp' | 'tunnel-ip-allocation' | 'node-status';

const RESOURCES = '/calico/resources/v3/projectcalico.org/';
const IPAM = '/calico/ipam/v2/';

/** Calico's key-path plurals of the namespaced kinds (`<plural>/<namespace>/<name>`). */
const NAMESPACED = new Set(['workloadendpoints', 'networkpolicies', 'stagednetworkpolicies', 'stagedkubernetesnetworkpolicies',
  'networksets', 'livemigrations', 'kubernetesnetworkpolicies', 'kubernetesendpointslices', 'kubernetesservice']);

/** PROTOCOL.md's view table, by key-path plural; 'ipam-block' and 'block-affinity' for the two IPAM paths. */
const VIEW_KINDS: Record<Syncer, ReadonlySet<string>> = {
  felix: new Set(['clusterinformations', 'felixconfigurations', 'globalnetworkpolicies', 'stagedglobalnetworkpolicies',
    'globalnetworksets', 'ippools', 'nodes', 'profiles', 'workloadendpoints', 'networkpolicies', 'stagednetworkpolicies',
    'stagedkubernetesnetworkpolicies', 'networksets', 'tiers', 'hostendpoints', 'bgpconfigurations', 'bgppeers', 'livemigrations',
    'kubernetesnetworkpolicies', 'kubernetesclusternetworkpolicies', 'kubernetesendpointslices', 'kubernetesservice', 'ipam-block']),
  bgp: new Set(['ippools', 'bgpconfigurations', 'nodes', 'bgppeers', 'bgpfilters', 'block-affinity']),
  'tunnel-ip-allocation': new Set(['ippools', 'nodes']),
  'node-status': new Set(['caliconodestatuses']),
};

/** Policy kinds by plural, for the name Calico serves them by. */
const POLICIES: Record<string, string> = {
  networkpolicies: 'NetworkPolicy', globalnetworkpolicies: 'GlobalNetworkPolicy',
  stagednetworkpolicies: 'StagedNetworkPolicy', stagedglobalnetworkpolicies: 'StagedGlobalNetworkPolicy',
};
const STAGED = new Set(['stagednetworkpolicies', 'stagedglobalnetworkpolicies', 'stagedkubernetesnetworkpolicies']);

/** What a key holds, by its path: a resource plural with its name, an IPAM block or affinity; undefined for anything else. */
function classify(key: string): { what: string; name: string } | undefined {
  if (key.startsWith(RESOURCES)) {
    const parts = key.slice(RESOURCES.length).split('/');
    const want = NAMESPACED.has(parts[0]!) ? 3 : 2;
    if (parts.length !== want || parts.some((x) => !x)) return undefined;
    return { what: parts[0]!, name: parts.at(-1)! };
  }
  if (key.startsWith(IPAM)) {
    const p = key.slice(IPAM.length).split('/');
    const ipv = (x: string | undefined) => x === 'ipv4' || x === 'ipv6';
    if (p.length === 4 && p[0] === 'assignment' && ipv(p[1]) && p[2] === 'block' && p[3]) return { what: 'ipam-block', name: p[3] };
    if (p.length === 5 && p[0] === 'host' && p[1] && ipv(p[2]) && p[3] === 'block' && p[4]) return { what: 'block-affinity', name: p[4] };
  }
  return undefined;
}

/**
 * Whether the update (key, value) belongs to the view of (syncer, node): a kind the view carries;
 * for the node-scoped ones, the client's node (tunnel-ip-allocation: the Node of that name;
 * node-status: the CalicoNodeStatus whose spec.node it is). A deletion (value null) is judged by
 * kind alone. Felix's syncer leaves out a WorkloadEndpoint with no spec.ipNetworks and a staged
 * policy whose spec.stagedAction is Delete.
 */
export function inView(syncer: Syncer, node: string, key: string, value: any): boolean {
  const c = classify(key);
  if (!c || !VIEW_KINDS[syncer].has(c.what)) return false;
  if (value === null || value === undefined) return true;
  if (syncer === 'tunnel-ip-allocation' && c.what === 'nodes' && c.name !== node) return false;
  if (syncer === 'node-status' && value?.spec?.node !== node) return false;
  if (c.what === 'workloadendpoints' && !(Array.isArray(value?.spec?.ipNetworks) && value.spec.ipNetworks.length > 0)) return false;
  if (STAGED.has(c.what) && value?.spec?.stagedAction === 'Delete') return false;
  return true;
}

export function expectedView(ds: MemoryDatastore | Map<string, unknown>, syncer: Syncer, nodeName: string): Map<string, unknown> {
  const out = new Map<string, unknown>();
  // Every datastore serves Calico's built-in profile, whatever is stored under its key.
  const content = new Map(ds instanceof Map ? ds : ds.snapshot());
  content.set(DEFAULT_ALLOW_PROFILE_KEY, DEFAULT_ALLOW_PROFILE);
  for (const [key, value] of content) {
    if (value === null || value === undefined || !inView(syncer, nodeName, key, value)) continue;
    const policy = POLICIES[classify(key)!.what];
    // Policies are served with the name Calico reads them by (src/model/policy-name.ts, tested on its own).
    const served = policy ? servedPolicy(policy, value) : { ok: true as const, value };
    out.set(key, served.ok ? served.value : value);
  }
  return out;
}

function stripRv(v: any): unknown {
  if (!v?.metadata) return v;
  const { resourceVersion: _rv, ...metadata } = v.metadata;
  return { ...v, metadata };
}

/** The client's cache holds exactly the expected content (values compared without resourceVersion). */
export function assertClientMatches(client: SyncClient, expected: Map<string, unknown>, label: string): void {
  const got = new Map([...client.entries()].map(([k, v]) => [k, stripRv(v.value)]));
  const missing = [...expected.keys()].filter((k) => !got.has(k));
  const extra = [...got.keys()].filter((k) => !expected.has(k));
  assert.deepEqual({ missing, extra }, { missing: [], extra: [] }, `${label}: key sets differ`);
  for (const [k, v] of expected) assert.deepEqual(got.get(k), stripRv(v), `${label}: value of ${k} differs`);
}
