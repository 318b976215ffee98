// Pod → WorkloadEndpoint, as Calico's Kubernetes datastore presents pods to Felix.
// The endpoint's name, interface name, ports and annotations follow Calico's conversion; its
// watch skips pods that are not valid Calico workload endpoints, and so does this.
import { createHash } from 'node:crypto';
import { qosControls } from './convert-pod-qos.js';
import {
  type CalicoResource, type IPNet, type KubeMeta, type Obj, compact, fail, formatIP, networkString, objectAt, optArray,
  optBool, optNumber, optObject, optString, parseCIDR, parseCIDROrIP, readObject, v3Metadata, v3Resource,
} from './read.js';

// Annotations Calico's CNI plugin and others write on pods.
const ANNOTATION_POD_IP = 'cni.projectcalico.org/podIP';
const ANNOTATION_POD_IPS = 'cni.projectcalico.org/podIPs';
const ANNOTATION_AWS_POD_IPS = 'vpc.amazonaws.com/pod-ips';
const ANNOTATION_CONTAINER_ID = 'cni.projectcalico.org/containerID';
const ANNOTATION_FLOATING_IPS = 'cni.projectcalico.org/floatingIPs';
const ANNOTATION_ALLOWED_SOURCE_PREFIXES = 'cni.projectcalico.org/allowedSourcePrefixes';
const ANNOTATION_NETWORK_STATUS = 'k8s.v1.cni.cncf.io/network-status';

const ORCHESTRATOR = 'k8s';
/** The CNI plugin's default host-side interface prefix. */
export const DEFAULT_INTERFACE_PREFIX = 'cali';

export interface PodOptions {
  /** The first prefix of FELIX_INTERFACEPREFIX: the CNI plugin names host-side veths with it. */
  interfacePrefix?: string;
}
const ENDPOINT = 'eth0';

/**
 * The WorkloadEndpoint of a pod, or null when Calico shows none to Felix:
 * - host-networked pods and pods not yet scheduled (no spec.nodeName) are not Calico workload
 *   endpoints at all (Calico's endpoint watch swallows them);
 * - a finished pod has released its IPs: phase Succeeded, Failed (or the legacy Completed), or a
 *   pod being deleted (metadata.deletionTimestamp) whose `cni.projectcalico.org/podIP` (or AWS
 *   `vpc.amazonaws.com/pod-ips`) annotation is present and empty: the CNI plugin's signal that
 *   the network is torn down. A terminating pod that still has its IP
 *   keeps its endpoint;
 * - a pod with no IP yet. Calico emits these two as an endpoint without ipNetworks, and Felix's
 *   update processor then drops every endpoint without ipNetworks, so what Felix sees is no
 *   endpoint; here that is null.
 * An unparsable pod IP, floating IP or allowed source prefix fails the conversion, as there.
 */
export function convertPod(obj: unknown, opts: PodOptions = {}): CalicoResource | null {
  const { o, meta } = readObject(obj, 'Pod', true);
  const ns = meta.namespace!;
  const what = `Pod ${ns}/${meta.name}`;
  const spec = optObject(o, 'spec', what) ?? {};
  const status = optObject(o, 'status', what) ?? {};
  const sw = `${what} spec`;
  if (optBool(spec, 'hostNetwork', sw)) return null;
  const node = optString(spec, 'nodeName', sw);
  if (!node) return null;
  const annotations = meta.annotations ?? {};

  // getPodIPs runs before the finished check, so a malformed IP is an error either way.
  const ips = podIPs(status, annotations, what);
  if (isFinished(meta, annotations, optString(status, 'phase', `${what} status`))) return null;
  if (ips.length === 0) return null;

  const pod = meta.name;
  const name = workloadEndpointName(node, pod, what);
  const sa = optString(spec, 'serviceAccountName', sw) || undefined;

  // Profiles: the namespace's, then the service account's (kns.<ns>, ksa.<ns>.<sa>).
  const profiles = [`kns.${ns}`];
  if (sa) profiles.push(`ksa.${ns}.${sa}`);

  // Labels: the pod's, plus namespace and orchestrator, plus the service account name when it is
  // shorter than 63 characters (kept for backwards compatibility, a label value's limit).
  const labels: Record<string, string> = { ...meta.labels };
  labels['projectcalico.org/namespace'] = ns;
  labels['projectcalico.org/orchestrator'] = ORCHESTRATOR;
  if (sa && sa.length < 63) labels['projectcalico.org/serviceaccount'] = sa;

  // Named and host-mapped ports of the containers, then of the init containers.
  const ports = [
    ...endpointPorts(optArray(spec, 'containers', sw), `${sw}.containers`),
    ...endpointPorts(optArray(spec, 'initContainers', sw), `${sw}.initContainers`),
  ];

  const networkStatus = annotations[ANNOTATION_NETWORK_STATUS];
  const metadata = v3Metadata({
    name,
    namespace: ns,
    uid: meta.uid, // the pod's own UID, unconverted
    creationTimestamp: meta.creationTimestamp,
    labels,
    annotations: networkStatus !== undefined ? { [ANNOTATION_NETWORK_STATUS]: networkStatus } : undefined,
  });
  const ipNATs = floatingIPs(annotations, ips, what);
  const sourcePrefixes = allowedSourcePrefixes(annotations, what);
  const wepSpec = compact({
    orchestrator: ORCHESTRATOR,
    node,
    pod,
    endpoint: ENDPOINT,
    containerID: annotations[ANNOTATION_CONTAINER_ID] || undefined,
    ipNetworks: ips.map(networkString),
    profiles,
    interfaceName: vethNameForWorkload(ns, pod, opts.interfacePrefix),
    serviceAccountName: sa,
    ports: ports.length ? ports : undefined,
    ipNATs: ipNATs.length ? ipNATs : undefined,
    allowSpoofedSourcePrefixes: sourcePrefixes.length ? sourcePrefixes : undefined,
    qosControls: qosControls(annotations),
  });
  return v3Resource('WorkloadEndpoint', metadata, wepSpec);
}

/**
 * names.WorkloadEndpointIdentifiers.CalculateWorkloadEndpointName for orchestrator k8s:
 * `<node>-k8s-<pod>-<endpoint>`, each segment with every `-` doubled (escapeDashes); a segment
 * may not begin or end with `-`.
 */
export function workloadEndpointName(node: string, pod: string, what = 'Pod', endpoint = ENDPOINT): string {
  const seg = (field: string, v: string) => {
    if (v.startsWith('-') || v.endsWith('-')) fail(`${what}: ${field} ${JSON.stringify(v)} must not begin or end with '-'`);
    return v.replace(/-/g, '--');
  };
  return [seg('node', node), seg('orchestrator', ORCHESTRATOR), seg('pod', pod), seg('endpoint', endpoint)].join('-');
}

/**
 * VethNameForWorkload: the host-side veth the CNI plugin creates, `<prefix>` + the first 11 hex
 * digits of sha1("<namespace>.<pod>"). The prefix is the first of FELIX_INTERFACEPREFIX (`eni`,
 * `gke`, `azv` with the cloud CNIs), `cali` by default.
 */
export function vethNameForWorkload(namespace: string, pod: string, prefix = DEFAULT_INTERFACE_PREFIX): string {
  return prefix + createHash('sha1').update(`${namespace}.${pod}`).digest('hex').slice(0, 11);
}

/**
 * getPodIPs: status.podIPs when filled in, else status.podIP, else the Calico CNI annotations
 * (plural `podIPs`, comma-separated, then singular `podIP`), else the AWS VPC CNI annotation.
 * Each entry is an address or a CIDR (the annotations carry /32 and /128), printed as a network.
 */
function podIPs(status: Obj, annotations: Record<string, string>, what: string): IPNet[] {
  const stw = `${what} status`;
  const list = optArray(status, 'podIPs', stw);
  const podIP = optString(status, 'podIP', stw);
  let raw: string[];
  if (list && list.length > 0) {
    raw = list.map((e, i) => optString(objectAt(e, `${stw}.podIPs[${i}]`), 'ip', `${stw}.podIPs[${i}]`) ?? '');
  } else if (podIP) raw = [podIP];
  else if (annotations[ANNOTATION_POD_IPS]) raw = annotations[ANNOTATION_POD_IPS]!.split(',');
  else if (annotations[ANNOTATION_POD_IP]) raw = [annotations[ANNOTATION_POD_IP]!];
  else if (annotations[ANNOTATION_AWS_POD_IPS]) raw = annotations[ANNOTATION_AWS_POD_IPS]!.split(',');
  else return [];
  return raw.map((s) => parseCIDROrIP(s) ?? fail(`${what} has an invalid pod IP ${JSON.stringify(s)}`));
}

/** conversion.IsFinished. */
function isFinished(meta: KubeMeta, annotations: Record<string, string>, phase: string | undefined): boolean {
  if (meta.deletionTimestamp) {
    if (annotations[ANNOTATION_POD_IP] === '') return true;
    if (annotations[ANNOTATION_AWS_POD_IPS] === '') return true;
  }
  return phase === 'Failed' || phase === 'Succeeded' || phase === 'Completed';
}

/**
 * appendEndpointPorts: a container port is carried when it has a number and either a name (a
 * named port policy can refer to) or a hostPort. Protocol: UDP, SCTP, or TCP for TCP and the
 * unset default; any other protocol is skipped. Fields name, protocol, port, plus hostPort and
 * hostIP when set.
 */
function endpointPorts(containers: unknown[] | undefined, what: string): Obj[] {
  const out: Obj[] = [];
  (containers ?? []).forEach((c, ci) => {
    const cw = `${what}[${ci}]`;
    const ports = optArray(objectAt(c, cw), 'ports', cw) ?? [];
    ports.forEach((p, pi) => {
      const pw = `${cw}.ports[${pi}]`;
      const po = objectAt(p, pw);
      const port = optNumber(po, 'containerPort', pw) ?? 0;
      const hostPort = optNumber(po, 'hostPort', pw) ?? 0;
      const name = optString(po, 'name', pw) ?? '';
      const hostIP = optString(po, 'hostIP', pw) ?? '';
      if (port === 0 || (hostPort === 0 && name === '')) return;
      const k8sProto = optString(po, 'protocol', pw) ?? '';
      const protocol = k8sProto === 'UDP' ? 'UDP' : k8sProto === 'SCTP' ? 'SCTP' : k8sProto === 'TCP' || k8sProto === '' ? 'TCP' : undefined;
      if (!protocol) return;
      out.push(compact({ name, protocol, port, hostPort: hostPort || undefined, hostIP: hostIP || undefined }));
    });
  });
  return out;
}

/**
 * `cni.projectcalico.org/floatingIPs` (a JSON list of addresses) → ipNATs: each external address
 * maps to the pod's IPv4 or IPv6 address of the same family (the pod address must be a /32 or
 * /128); addresses with no pod address of their family are dropped.
 */
function floatingIPs(annotations: Record<string, string>, ips: IPNet[], what: string): Obj[] {
  const raw = annotations[ANNOTATION_FLOATING_IPS];
  if (raw === undefined || ips.length === 0) return [];
  const external = jsonStringList(raw, `${what} annotation ${ANNOTATION_FLOATING_IPS}`);
  let v4: IPNet | undefined;
  let v6: IPNet | undefined;
  for (const n of ips) {
    if (n.ip.version === 4) {
      if (n.prefix !== 32) fail(`${what}: pod IP ${networkString(n)} is not a valid IPv4: mask size is ${n.prefix}, not 32`);
      v4 = n;
    } else {
      if (n.prefix !== 128) fail(`${what}: pod IP ${networkString(n)} is not a valid IPv6: mask size is ${n.prefix}, not 128`);
      v6 = n;
    }
  }
  const out: Obj[] = [];
  for (const ext of external) {
    const target = ext.includes(':') ? v6 : v4;
    if (target) out.push({ internalIP: formatIP(target.ip), externalIP: ext });
  }
  return out;
}

/** HandleSourceIPSpoofingAnnotation: a non-empty JSON list of CIDRs, each normalised to its network. */
function allowedSourcePrefixes(annotations: Record<string, string>, what: string): string[] {
  const raw = annotations[ANNOTATION_ALLOWED_SOURCE_PREFIXES];
  if (!raw) return [];
  const aw = `${what} annotation ${ANNOTATION_ALLOWED_SOURCE_PREFIXES}`;
  return jsonStringList(raw, aw).map((p) => {
    const n = parseCIDR(p);
    if (!n) fail(`${aw}: ${JSON.stringify(p)} is not a CIDR`);
    return networkString(n);
  });
}

function jsonStringList(raw: string, what: string): string[] {
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    fail(`${what} is not JSON`);
  }
  if (v === null) return [];
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) fail(`${what} is not a JSON list of strings`);
  return v as string[];
}
