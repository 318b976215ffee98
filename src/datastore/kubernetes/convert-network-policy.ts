// networking.k8s.io/v1 NetworkPolicy → the Calico policy Felix enforces for it.
// Selectors, rules, peers and ports are converted as Calico converts them; the KDD felix syncer
// lists Kubernetes policies as kind KubernetesNetworkPolicy. As in the reference release,
// the policy keeps its Kubernetes name and sits in the default tier.
import {
  type CalicoResource, type Obj, compact, convertUID, fail, networkString, objectAt, optArray, optNumber, optObject,
  optString, optStringArray, optStringMap, parseCIDR, readObject, v3Metadata, v3Resource,
} from './read.js';

const KIND = 'KubernetesNetworkPolicy';
const TIER = 'default';
/** "We insert all the NetworkPolicy Policies at order 1000.0 after conversion." */
const ORDER = 1000;
const ORCHESTRATOR_SELECTOR = "projectcalico.org/orchestrator == 'k8s'";

/**
 * K8sNetworkPolicyToCalico. Key: kind KubernetesNetworkPolicy, the policy's namespace and name
 * (no `knp.default.` prefix: releases before the reference one added it). Value: a v3 policy document (Calico's value is an apiv3.NetworkPolicy;
 * its `kind` here is KubernetesNetworkPolicy because our store requires a value's kind to be the
 * kind of its key) with metadata name, namespace, creationTimestamp and ConvertUID(uid), and spec:
 * - order 1000, tier default;
 * - selector: `projectcalico.org/orchestrator == 'k8s'` && the podSelector translated;
 * - ingress / egress: each k8s rule expanded to one Allow rule per (protocol, peer); a rule that
 *   cannot be converted (bad port) is dropped and the others kept, as Calico does;
 * - types: Ingress if policyTypes has Ingress, Egress if it has Egress; none listed → [Ingress]
 *   (clusters that predate policyTypes). Egress rules without the Egress type are still converted.
 * Empty rule lists are omitted (omitempty): no ingress rules with type Ingress is default deny.
 */
export function convertNetworkPolicy(obj: unknown): CalicoResource {
  const { o, meta } = readObject(obj, 'NetworkPolicy', true);
  const ns = meta.namespace!;
  const what = `NetworkPolicy ${ns}/${meta.name}`;
  const spec = optObject(o, 'spec', what) ?? {};
  const sw = `${what} spec`;

  const ingress: Obj[] = [];
  (optArray(spec, 'ingress', sw) ?? []).forEach((r, i) => {
    const rw = `${sw}.ingress[${i}]`;
    const ro = objectAt(r, rw);
    ingress.push(...ruleToCalico(optArray(ro, 'from', rw), optArray(ro, 'ports', rw), true, rw));
  });
  const egress: Obj[] = [];
  (optArray(spec, 'egress', sw) ?? []).forEach((r, i) => {
    const rw = `${sw}.egress[${i}]`;
    const ro = objectAt(r, rw);
    egress.push(...ruleToCalico(optArray(ro, 'to', rw), optArray(ro, 'ports', rw), false, rw));
  });

  const policyTypes = optStringArray(spec, 'policyTypes', sw) ?? [];
  const types: string[] = [];
  if (policyTypes.includes('Ingress')) types.push('Ingress');
  if (policyTypes.includes('Egress')) types.push('Egress');
  if (types.length === 0) types.push('Ingress');

  // An absent podSelector decodes to the empty selector (the field is a struct, not a pointer).
  const podSelector = optObject(spec, 'podSelector', sw) ?? {};
  const metadata = v3Metadata({
    name: meta.name,
    namespace: ns,
    uid: meta.uid ? convertUID(meta.uid, what) : undefined,
    creationTimestamp: meta.creationTimestamp,
  });
  return v3Resource(KIND, metadata, compact({
    order: ORDER,
    tier: TIER,
    selector: selectorToCalico(podSelector, 'pod', `${sw}.podSelector`),
    ingress: ingress.length ? ingress : undefined,
    egress: egress.length ? egress : undefined,
    types,
  }));
}

/**
 * k8sSelectorToCalico. A pod selector always starts with `projectcalico.org/orchestrator == 'k8s'`
 * (an absent one is just that). A namespace selector that is absent is "" (the policy's own
 * namespace); present but empty is `all()`. matchLabels become `k == 'v'` in sorted key order,
 * then matchExpressions in order: In `k in { 'a', 'b' }`, NotIn `k not in { ... }`, Exists
 * `has(k)`, DoesNotExist `! has(k)` (other operators are ignored). Terms are joined with ` && `.
 */
export function selectorToCalico(s: Obj | undefined, type: 'pod' | 'namespace', what: string): string {
  const terms: string[] = type === 'pod' ? [ORCHESTRATOR_SELECTOR] : [];
  if (!s) return terms.join(' && ');
  const matchLabels = optStringMap(s, 'matchLabels', what) ?? {};
  const exprs = optArray(s, 'matchExpressions', what) ?? [];
  if (type === 'namespace' && Object.keys(matchLabels).length === 0 && exprs.length === 0) return 'all()';
  for (const k of Object.keys(matchLabels).sort()) terms.push(`${k} == '${matchLabels[k]}'`);
  exprs.forEach((e, i) => {
    const ew = `${what}.matchExpressions[${i}]`;
    const eo = objectAt(e, ew);
    const key = optString(eo, 'key', ew) ?? '';
    const values = (optStringArray(eo, 'values', ew) ?? []).join("', '");
    switch (optString(eo, 'operator', ew)) {
      case 'In': terms.push(`${key} in { '${values}' }`); break;
      case 'NotIn': terms.push(`${key} not in { '${values}' }`); break;
      case 'Exists': terms.push(`has(${key})`); break;
      case 'DoesNotExist': terms.push(`! has(${key})`); break;
    }
  });
  return terms.join(' && ');
}

/** A destination port: a number, a `min:max` range, or a port name (numorstring.Port). */
export type Port = { kind: 'num'; min: number; max: number } | { kind: 'name'; name: string };

/**
 * k8sRuleToCalico: peers × ports. Each port gets protocol TCP when unset (the k8s default, made
 * explicit because Calico needs a protocol to match ports). Ports are grouped by protocol (sorted
 * by name); a port entry with no port number means all ports of its protocol and wins over the
 * others; no ports at all means any protocol and port. One rule per protocol and peer, in that
 * order, each with the protocol's ports simplified (SimplifyPorts). No peers means any source
 * (ingress) or destination (egress). Returns [] (rule dropped) when a port cannot be parsed.
 */
function ruleToCalico(peers: unknown[] | undefined, ports: unknown[] | undefined, ingress: boolean, what: string): Obj[] {
  // protocol ('' = any) → ports (null = all ports).
  const byProto = new Map<string, Port[] | null>();
  if (!ports || ports.length === 0) {
    byProto.set('', null);
  } else {
    for (let i = 0; i < ports.length; i++) {
      const pw = `${what}.ports[${i}]`;
      const po = objectAt(ports[i], pw);
      const protocol = canonicalProtocol(optString(po, 'protocol', pw) ?? 'TCP');
      const raw = po.port;
      if (raw !== undefined && raw !== null && typeof raw !== 'number' && typeof raw !== 'string') fail(`${pw}.port is not a number or string`);
      const endPort = optNumber(po, 'endPort', pw);
      let calicoPorts: Port[] | null = null;
      if (raw !== undefined && raw !== null) {
        const p = portFromString(endPort !== undefined ? `${raw}:${endPort}` : String(raw));
        if (!p) return []; // "dropping k8s rule that couldn't be converted"
        calicoPorts = [p];
      }
      if (calicoPorts === null) byProto.set(protocol, null);
      else if (!byProto.has(protocol)) byProto.set(protocol, calicoPorts);
      else if (byProto.get(protocol) !== null) byProto.get(protocol)!.push(...calicoPorts);
    }
  }
  const peerList: (Obj | undefined)[] = peers && peers.length
    ? peers.map((p, i) => objectAt(p, `${what}.${ingress ? 'from' : 'to'}[${i}]`))
    : [undefined];

  const rules: Obj[] = [];
  for (const protocol of [...byProto.keys()].sort()) {
    const portList = byProto.get(protocol);
    const dstPorts = portList ? simplifyPorts(portList).map(portJSON) : undefined;
    peerList.forEach((peer, i) => {
      const peerFields = peerToCalicoFields(peer, `${what}.${ingress ? 'from' : 'to'}[${i}]`);
      const rule: Obj = { action: 'Allow' };
      if (protocol) rule.protocol = protocol;
      if (ingress) {
        if (Object.keys(peerFields).length) rule.source = peerFields;
        if (dstPorts) rule.destination = { ports: dstPorts };
      } else {
        const destination = compact({ ...peerFields, ports: dstPorts });
        if (Object.keys(destination).length) rule.destination = destination;
      }
      rules.push(rule);
    });
  }
  return rules;
}

/**
 * k8sPeerToCalicoFields: an ipBlock gives nets [cidr] and notNets [except...] (each printed as its
 * masked network), and nothing else; otherwise selector = the podSelector as a pod selector (so a
 * namespaceSelector-only peer still selects k8s pods) and namespaceSelector = the namespace
 * selector. A CIDR Go does not parse (the API server's legacy validation lets through IPv4 with
 * leading zeros, `010.0.0.0/8`) ends the peer where it stands, as there: a bad cidr leaves no
 * fields at all (the rule then matches any peer), a bad except keeps the nets and the excepts
 * before it.
 */
function peerToCalicoFields(peer: Obj | undefined, what: string): Obj {
  if (!peer) return {};
  const ipBlock = optObject(peer, 'ipBlock', what);
  if (ipBlock) {
    const bw = `${what}.ipBlock`;
    const cidr = parseCIDR(optString(ipBlock, 'cidr', bw) ?? '');
    if (!cidr) return {};
    const notNets: string[] = [];
    for (const e of optStringArray(ipBlock, 'except', bw) ?? []) {
      const n = parseCIDR(e);
      if (!n) break;
      notNets.push(networkString(n));
    }
    return compact({ nets: [networkString(cidr)], notNets: notNets.length ? notNets : undefined });
  }
  const selector = selectorToCalico(optObject(peer, 'podSelector', what), 'pod', `${what}.podSelector`);
  const namespaceSelector = selectorToCalico(optObject(peer, 'namespaceSelector', what), 'namespace', `${what}.namespaceSelector`);
  return compact({ selector: selector || undefined, namespaceSelector: namespaceSelector || undefined });
}

/** numorstring.ProtocolFromString: the canonical spelling of a known protocol name. */
export function canonicalProtocol(p: string): string {
  for (const n of ['UDP', 'TCP', 'ICMP', 'ICMPv6', 'SCTP', 'UDPLite']) if (n.toLowerCase() === p.toLowerCase()) return n;
  return p;
}

/** numorstring.PortFromString: `n`, `min:max` (min ≤ max), or a port name. */
export function portFromString(s: string): Port | undefined {
  if (/^[0-9]+$/.test(s)) {
    const n = Number(s);
    return n <= 65535 ? { kind: 'num', min: n, max: n } : undefined;
  }
  const m = /^([0-9]+):([0-9]+)$/.exec(s);
  if (m) {
    const min = Number(m[1]);
    const max = Number(m[2]);
    return min <= max && max <= 65535 ? { kind: 'num', min, max } : undefined;
  }
  return namedPort(s);
}

/** numorstring.NamedPort: 1 to 128 letters, digits, `_`, `.` or `-`. */
export function namedPort(s: string): Port | undefined {
  return /^[a-zA-Z0-9_.-]{1,128}$/.test(s) ? { kind: 'name', name: s } : undefined;
}

/**
 * SimplifyPorts: with two or more numeric ports, named ports come first (in order), then the
 * numeric ports merged into the fewest sorted ranges; otherwise the list is returned unchanged.
 */
export function simplifyPorts(ports: Port[]): Port[] {
  if (ports.length <= 1) return ports;
  const named: Port[] = [];
  const nums: number[] = [];
  for (const p of ports) {
    if (p.kind === 'name') named.push(p);
    else for (let n = p.min; n <= p.max; n++) nums.push(n);
  }
  if (nums.length <= 1) return ports;
  nums.sort((a, b) => a - b);
  const out = [...named];
  for (let i = 0; i < nums.length;) {
    const first = nums[i]!;
    let last = first;
    i++;
    while (i < nums.length && nums[i]! <= last + 1) last = nums[i++]!;
    out.push({ kind: 'num', min: first, max: last });
  }
  return out;
}

/** numorstring.Port's JSON: a number for a single port, "min:max" for a range, the name for a named port. */
export function portJSON(p: Port): number | string {
  if (p.kind === 'name') return p.name;
  return p.min === p.max ? p.min : `${p.min}:${p.max}`;
}
