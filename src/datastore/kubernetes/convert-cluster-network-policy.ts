// policy.networking.k8s.io/v1alpha2 ClusterNetworkPolicy → the global policy Felix enforces for
// it, in the kube-admin (tier Admin) or kube-baseline (tier Baseline) tier, keyed as kind
// KubernetesClusterNetworkPolicy, as Calico converts it.
import {
  type CalicoResource, type Obj, compact, convertUID, networkString, objectAt, optArray, optNumber, optObject, optString,
  parseCIDR, readObject, v3Metadata, v3Resource,
} from './read.js';
import { type Port, namedPort, portJSON, selectorToCalico, simplifyPorts } from './convert-network-policy.js';

const KIND = 'KubernetesClusterNetworkPolicy';
const TIERS: Record<string, string> = { Admin: 'kube-admin', Baseline: 'kube-baseline' };
const ACTIONS: Record<string, string> = { Accept: 'Allow', Deny: 'Deny', Pass: 'Pass' };

/** A rule Calico could not convert: dropped, and its whole rule replaced as below. */
class BadRule extends Error {}

/**
 * K8sClusterNetworkPolicyToCalico. Key: kind KubernetesClusterNetworkPolicy, the policy's name.
 * Value: a global policy with metadata name, creationTimestamp, ConvertUID(uid), and spec:
 * - tier kube-admin or kube-baseline; order = spec.priority;
 * - subject namespaces → namespaceSelector from it and selector `projectcalico.org/orchestrator ==
 *   'k8s'` (pods only, never host endpoints); subject pods → both from its two selectors;
 * - ingress / egress: each rule expanded to one rule per protocol (sorted) and peer, action
 *   Accept → Allow, Deny, Pass, the rule's name kept as the annotation `name`. A rule that cannot
 *   be converted is dropped; a Deny or Pass one becomes a bare Deny (fail closed);
 * - types: Ingress if there are ingress rules, Egress if there are egress rules (the tiers pass
 *   by default, so a policy without rules of a direction has no say on it).
 * A policy of an unknown tier or without a subject yields nothing (a tombstone there: what was
 * published for it is withdrawn).
 */
export function convertClusterNetworkPolicy(obj: unknown): CalicoResource | null {
  const { o, meta } = readObject(obj, 'ClusterNetworkPolicy', false);
  const what = `ClusterNetworkPolicy ${meta.name}`;
  const spec = optObject(o, 'spec', what) ?? {};
  const sw = `${what} spec`;
  const tier = TIERS[optString(spec, 'tier', sw) ?? ''];
  if (!tier) return null;

  const subject = optObject(spec, 'subject', sw) ?? {};
  const namespaces = optObject(subject, 'namespaces', `${sw}.subject`);
  const pods = optObject(subject, 'pods', `${sw}.subject`);
  let namespaceSelector: string;
  let selector: string;
  if (namespaces) {
    namespaceSelector = selectorToCalico(namespaces, 'namespace', `${sw}.subject.namespaces`);
    selector = selectorToCalico(undefined, 'pod', `${sw}.subject`);
  } else if (pods) {
    ({ selector, namespaceSelector } = podsSelectors(pods, `${sw}.subject.pods`));
  } else {
    return null;
  }

  const ingress = rules(optArray(spec, 'ingress', sw), 'from', `${sw}.ingress`);
  const egress = rules(optArray(spec, 'egress', sw), 'to', `${sw}.egress`);
  const types = [...(ingress.length ? ['Ingress'] : []), ...(egress.length ? ['Egress'] : [])];
  const metadata = v3Metadata({
    name: meta.name,
    uid: meta.uid ? convertUID(meta.uid, what) : undefined,
    creationTimestamp: meta.creationTimestamp,
  });
  return v3Resource(KIND, metadata, compact({
    tier,
    order: optNumber(spec, 'priority', sw) ?? 0,
    namespaceSelector: namespaceSelector || undefined,
    selector: selector || undefined,
    ingress: ingress.length ? ingress : undefined,
    egress: egress.length ? egress : undefined,
    types: types.length ? types : undefined,
  }));
}

function podsSelectors(pods: Obj, what: string): { selector: string; namespaceSelector: string } {
  // Both are required structs there: an absent one is the empty selector (all namespaces, all pods).
  return {
    selector: selectorToCalico(optObject(pods, 'podSelector', what) ?? {}, 'pod', `${what}.podSelector`),
    namespaceSelector: selectorToCalico(optObject(pods, 'namespaceSelector', what) ?? {}, 'namespace', `${what}.namespaceSelector`),
  };
}

function rules(list: unknown[] | undefined, peersField: 'from' | 'to', what: string): Obj[] {
  const out: Obj[] = [];
  (list ?? []).forEach((r, i) => {
    const rw = `${what}[${i}]`;
    const ro = objectAt(r, rw);
    const action = optString(ro, 'action', rw) ?? '';
    try {
      out.push(...ruleToCalico(ro, action, peersField, rw));
    } catch (err) {
      if (!(err instanceof BadRule)) throw err;
      if (action === 'Deny' || action === 'Pass') out.push({ action: 'Deny' });
    }
  });
  return out;
}

function ruleToCalico(ro: Obj, k8sAction: string, peersField: 'from' | 'to', rw: string): Obj[] {
  const action = ACTIONS[k8sAction];
  if (!action) throw new BadRule(`unsupported action ${k8sAction}`);
  const byProto = unpackProtocols(optArray(ro, 'protocols', rw), rw);
  const name = optString(ro, 'name', rw);
  const metadata = name ? { annotations: { name } } : undefined;
  const peers = optArray(ro, peersField, rw) ?? [];
  const out: Obj[] = [];
  for (const protocol of [...byProto.keys()].sort()) {
    const portList = byProto.get(protocol);
    const ports = portList && portList.length ? simplifyPorts(portList).map(portJSON) : undefined;
    peers.forEach((p, i) => {
      const pw = `${rw}.${peersField}[${i}]`;
      const fields = peerFields(objectAt(p, pw), peersField === 'to', pw);
      const rule: Obj = compact({ metadata, action, protocol: protocol || undefined });
      if (peersField === 'from') {
        if (Object.keys(fields).length) rule.source = fields;
        if (ports) rule.destination = { ports };
      } else {
        const destination = compact({ ports, ...fields });
        if (Object.keys(destination).length) rule.destination = destination;
      }
      out.push(rule);
    });
  }
  return out;
}

/**
 * A peer: namespaces → namespaceSelector; pods → selector and namespaceSelector (pods wins when
 * both are set); egress networks → nets, each a CIDR printed as its network. None of them, or a
 * network Go does not parse, fails the rule.
 */
function peerFields(peer: Obj, egress: boolean, what: string): Obj {
  let selector = '';
  let namespaceSelector = '';
  let found = false;
  const namespaces = optObject(peer, 'namespaces', what);
  if (namespaces) {
    namespaceSelector = selectorToCalico(namespaces, 'namespace', `${what}.namespaces`);
    found = true;
  }
  const pods = optObject(peer, 'pods', what);
  if (pods) {
    ({ selector, namespaceSelector } = podsSelectors(pods, `${what}.pods`));
    found = true;
  }
  const nets: string[] = [];
  const networks = egress ? optArray(peer, 'networks', what) ?? [] : [];
  for (const n of networks) {
    const cidr = typeof n === 'string' ? parseCIDR(n) : undefined;
    if (!cidr) throw new BadRule(`invalid CIDR ${JSON.stringify(n)}`);
    nets.push(networkString(cidr));
  }
  if (nets.length) found = true;
  if (!found) throw new BadRule(`none of the supported fields of '${egress ? 'to' : 'from'}' is set`);
  return compact({ selector: selector || undefined, namespaceSelector: namespaceSelector || undefined, nets: nets.length ? nets : undefined });
}

/**
 * unpackCNPProtocols: protocol ('' = any, or named ports) → ports (null = all ports). No
 * protocols, or one entry naming nothing, means any protocol and port. Per entry: tcp, udp or sctp
 * (checked in that order) with an optional destinationPort {number} or {range: {start, end}}, or a
 * destinationNamedPort (protocol left open).
 */
function unpackProtocols(list: unknown[] | undefined, what: string): Map<string, Port[] | null> {
  const entries = list && list.length ? list : [{}];
  let byProto = new Map<string, Port[] | null>();
  for (let i = 0; i < entries.length; i++) {
    const ew = `${what}.protocols[${i}]`;
    const { protocol, port } = protocolEntry(objectAt(entries[i], ew), ew);
    if (protocol === undefined && port === undefined) {
      byProto = new Map([['', null]]);
      break;
    }
    const key = protocol ?? '';
    if (port === undefined) byProto.set(key, null);
    else if (!byProto.has(key)) byProto.set(key, [port]);
    else if (byProto.get(key) !== null) byProto.get(key)!.push(port);
  }
  return byProto;
}

function protocolEntry(e: Obj, what: string): { protocol?: string; port?: Port } {
  for (const [field, protocol] of [['tcp', 'TCP'], ['udp', 'UDP'], ['sctp', 'SCTP']] as const) {
    const p = optObject(e, field, what);
    if (p) return compact({ protocol, port: destinationPort(optObject(p, 'destinationPort', `${what}.${field}`), `${what}.${field}.destinationPort`) });
  }
  const named = optString(e, 'destinationNamedPort', what);
  if (named) {
    const port = namedPort(named);
    if (!port) throw new BadRule(`invalid named port ${JSON.stringify(named)}`);
    return { port };
  }
  return {};
}

/** k8sCNPPortToCalico: a number (0 = none), or a range with start ≤ end; as uint16, as there. */
function destinationPort(p: Obj | undefined, what: string): Port | undefined {
  if (!p) return undefined;
  const number = optNumber(p, 'number', what) ?? 0;
  if (number !== 0) return { kind: 'num', min: number & 0xffff, max: number & 0xffff };
  const range = optObject(p, 'range', what);
  if (!range) return undefined;
  const start = (optNumber(range, 'start', `${what}.range`) ?? 0) & 0xffff;
  const end = (optNumber(range, 'end', `${what}.range`) ?? 0) & 0xffff;
  if (start > end) throw new BadRule(`port range ${start}-${end} runs backwards`);
  return { kind: 'num', min: start, max: end };
}
