// Kubernetes Node → Calico Node: in KDD, calico-node keeps its per-node settings in annotations
// on the Kubernetes Node; labels, addresses and annotation names as Calico reads them.
import {
  type CalicoResource, type Obj, compact, goJSONStringMap, isObj, objectAt, optArray, optObject, optString,
  optStringArray, parseCIDR, parseCIDROrIP, parseIP, maskIP, fail, formatIP, readObject, v3Metadata, v3Resource,
} from './read.js';

const A = {
  ipv4Address: 'projectcalico.org/IPv4Address',
  ipv6Address: 'projectcalico.org/IPv6Address',
  asNumber: 'projectcalico.org/ASNumber',
  routeReflectorClusterID: 'projectcalico.org/RouteReflectorClusterID',
  ipv4IPIPTunnelAddr: 'projectcalico.org/IPv4IPIPTunnelAddr',
  ipv4VXLANTunnelAddr: 'projectcalico.org/IPv4VXLANTunnelAddr',
  vxlanTunnelMACAddr: 'projectcalico.org/VXLANTunnelMACAddr',
  ipv6VXLANTunnelAddr: 'projectcalico.org/IPv6VXLANTunnelAddr',
  vxlanTunnelMACAddrV6: 'projectcalico.org/VXLANTunnelMACAddrV6',
  wireguardIPv4: 'projectcalico.org/IPv4WireguardInterfaceAddr',
  wireguardIPv6: 'projectcalico.org/IPv6WireguardInterfaceAddr',
  wireguardPublicKey: 'projectcalico.org/WireguardPublicKey',
  wireguardPublicKeyV6: 'projectcalico.org/WireguardPublicKeyV6',
  kubeLabels: 'projectcalico.org/kube-labels',
  interfaces: 'projectcalico.org/Interfaces',
  // Calico labels and annotations of non-CRD resources, stored as JSON annotations.
  labels: 'projectcalico.org/labels',
  annotations: 'projectcalico.org/annotations',
} as const;

export interface NodeOptions {
  /** USE_POD_CIDR (host-local IPAM): the IPIP tunnel address comes from spec.podCIDR, not an annotation. */
  usePodCIDR?: boolean;
}

/**
 * K8sNodeToCalico.
 * - metadata: name, uid and creationTimestamp of the Kubernetes node; labels = the Calico labels
 *   stored in `projectcalico.org/labels` overlaid by the Kubernetes labels; annotations = those
 *   stored in `projectcalico.org/annotations` plus `projectcalico.org/kube-labels` (the Kubernetes
 *   labels as JSON, for round-tripping). Unparsable stored JSON is ignored, as there.
 * - spec.bgp: ipv4Address (IPv4 CIDR), ipv6Address (IPv6 CIDR), routeReflectorClusterID (IPv4),
 *   asNumber (plain or dotted asdot), ipv4IPIPTunnelAddr (IPv4); only when one is set.
 * - spec.wireguard: interfaceIPv4Address, interfaceIPv6Address; only when one is set.
 * - With usePodCIDR and a spec.podCIDR, the IPIP tunnel address is instead its first address (see
 *   podCIDRTunnelAddress) and the wireguard IPv4 address the same when the node has a wireguard
 *   public key; the wireguard annotations are not read. VXLAN addresses come from annotations.
 * - spec.ipv4VXLANTunnelAddr, vxlanTunnelMACAddr, ipv6VXLANTunnelAddr, vxlanTunnelMACAddrV6.
 * - spec.orchRefs: [{nodeName, orchestrator: k8s}].
 * - spec.addresses: the BGP addresses as CalicoNodeIP, then the node's InternalIP/ExternalIP.
 * - spec.interfaces: the JSON list in `projectcalico.org/Interfaces` (see nodeInterfaces).
 * - status: wireguardPublicKey, wireguardPublicKeyV6, podCIDRs (node spec.podCIDRs); only when set.
 * Each annotation passes getAnnotation's validator or is ignored (treated as unset); an AS
 * number that does not parse is ignored too.
 */
export function convertNode(obj: unknown, opts: NodeOptions = {}): CalicoResource {
  const { o, meta } = readObject(obj, 'Node', false);
  const what = `Node ${meta.name}`;
  const ann = meta.annotations ?? {};
  const get = (key: string, valid: (v: string) => boolean): string | undefined => {
    const v = ann[key];
    return v && valid(v) ? v : undefined;
  };

  // SetCalicoMetadataFromK8sAnnotations, then mergeCalicoAndK8sLabels.
  const labels: Record<string, string> = { ...storedMap(ann[A.labels]), ...meta.labels };
  const annotations: Record<string, string> = { ...storedMap(ann[A.annotations]) };
  annotations[A.kubeLabels] = goJSONStringMap(rawLabels(o));

  const k8sSpec = optObject(o, 'spec', what) ?? {};
  const podCIDR = opts.usePodCIDR ? optString(k8sSpec, 'podCIDR', `${what} spec`) : undefined;
  let ipipTunnel: string | undefined;
  let wireguardV4: string | undefined;
  let wireguardV6: string | undefined;
  if (podCIDR) {
    ipipTunnel = podCIDRTunnelAddress(podCIDR, what);
    wireguardV4 = ann[A.wireguardPublicKey] ? ipipTunnel : undefined;
  } else {
    ipipTunnel = get(A.ipv4IPIPTunnelAddr, isIPv4Network);
    wireguardV4 = get(A.wireguardIPv4, isIPv4Network);
    wireguardV6 = get(A.wireguardIPv6, isIPv6Network);
  }
  const bgp = compact({
    ipv4Address: get(A.ipv4Address, isCIDRv4),
    ipv6Address: get(A.ipv6Address, isCIDRv6),
    routeReflectorClusterID: get(A.routeReflectorClusterID, isIPv4Network),
    asNumber: asNumber(ann[A.asNumber]),
    ipv4IPIPTunnelAddr: ipipTunnel,
  });
  const wireguard = compact({ interfaceIPv4Address: wireguardV4, interfaceIPv6Address: wireguardV6 });

  const k8sStatus = optObject(o, 'status', what) ?? {};
  const addresses: Obj[] = [];
  if (bgp.ipv4Address) addresses.push({ address: bgp.ipv4Address, type: 'CalicoNodeIP' });
  if (bgp.ipv6Address) addresses.push({ address: bgp.ipv6Address, type: 'CalicoNodeIP' });
  (optArray(k8sStatus, 'addresses', `${what} status`) ?? []).forEach((a, i) => {
    const aw = `${what} status.addresses[${i}]`;
    const ao = objectAt(a, aw);
    const type = optString(ao, 'type', aw);
    const address = optString(ao, 'address', aw) ?? '';
    if (type === 'InternalIP' || type === 'ExternalIP') addresses.push({ address, type });
  });

  const spec = compact({
    bgp: Object.keys(bgp).length ? bgp : undefined,
    ipv4VXLANTunnelAddr: get(A.ipv4VXLANTunnelAddr, isIPv4Network),
    vxlanTunnelMACAddr: get(A.vxlanTunnelMACAddr, isMAC),
    ipv6VXLANTunnelAddr: get(A.ipv6VXLANTunnelAddr, isIPv6Network),
    vxlanTunnelMACAddrV6: get(A.vxlanTunnelMACAddrV6, isMAC),
    orchRefs: [{ nodeName: meta.name, orchestrator: 'k8s' }],
    wireguard: Object.keys(wireguard).length ? wireguard : undefined,
    addresses: addresses.length ? addresses : undefined,
    interfaces: nodeInterfaces(ann[A.interfaces]),
  });
  const podCIDRs = optStringArray(k8sSpec, 'podCIDRs', `${what} spec`);
  const status = compact({
    wireguardPublicKey: ann[A.wireguardPublicKey] || undefined,
    wireguardPublicKeyV6: ann[A.wireguardPublicKeyV6] || undefined,
    podCIDRs: podCIDRs && podCIDRs.length ? [...podCIDRs] : undefined,
  });
  const metadata = v3Metadata({ name: meta.name, uid: meta.uid, creationTimestamp: meta.creationTimestamp, labels, annotations });
  return v3Resource('Node', metadata, spec, { status: Object.keys(status).length ? status : undefined });
}

/**
 * getStaticTunnelAddress: the pod CIDR's address with its last byte incremented (wrapping within
 * the byte), `10.244.3.0/24` → `10.244.3.1`; the address as written, not the masked network. An
 * IPv6 pod CIDR gives no IPv4 tunnel address; an unparsable one fails the node's conversion.
 */
function podCIDRTunnelAddress(podCIDR: string, what: string): string | undefined {
  const n = parseCIDR(podCIDR);
  if (!n) fail(`${what} has an invalid spec.podCIDR ${JSON.stringify(podCIDR)}`);
  if (n.ip.version !== 4) return undefined;
  const b = [...n.ip.bytes];
  b[3] = (b[3]! + 1) & 0xff;
  return b.join('.');
}

/**
 * fillAllInterfaces: `projectcalico.org/Interfaces` holds a JSON list of `{name, addresses}`.
 * Not JSON, or not of that shape: no interfaces (logged there). An empty list is omitted. Invalid
 * addresses are removed, in the way Calico's in-place removal does it: after a removal the next
 * address is skipped (it moved into the checked slot), so of two invalid ones in a row the second
 * stays, and the scan runs to the original length (see removeInvalidAddresses).
 */
function nodeInterfaces(raw: string | undefined): Obj[] | undefined {
  if (raw === undefined) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    return undefined;
  }
  if (v === null) return undefined;
  if (!Array.isArray(v)) return undefined;
  const out: Obj[] = [];
  for (const e of v) {
    if (e === null) { out.push({}); continue; }
    if (!isObj(e)) return undefined;
    const name = goField(e, 'name');
    const addresses = goField(e, 'addresses');
    if (name !== undefined && name !== null && typeof name !== 'string') return undefined;
    if (addresses !== undefined && addresses !== null && (!Array.isArray(addresses) || addresses.some((a) => typeof a !== 'string'))) return undefined;
    const kept = addresses ? removeInvalidAddresses(addresses as string[]) : undefined;
    if (kept === null) return undefined;
    out.push(compact({ name: name || undefined, addresses: kept && kept.length ? kept : undefined }));
  }
  return out.length ? out : undefined;
}

/** Go's JSON decoding matches field names case-insensitively, preferring an exact match. */
function goField(o: Obj, name: string): unknown {
  if (name in o) return o[name];
  const k = Object.keys(o).find((x) => x.toLowerCase() === name.toLowerCase());
  return k === undefined ? undefined : o[k];
}

/**
 * The addresses Calico keeps: it ranges over the original list while deleting from it in place
 * (`append(a[:j], a[j+1:]...)`), so each deletion shifts the rest left under the loop. Returns
 * null where Calico's slice expression would go out of range (it panics there).
 */
function removeInvalidAddresses(addresses: readonly string[]): string[] | null {
  const arr = [...addresses];
  let len = arr.length;
  for (let j = 0; j < addresses.length; j++) {
    if (parseIP(arr[j]!)) continue;
    if (j + 1 > len) return null;
    for (let i = j; i < len - 1; i++) arr[i] = arr[i + 1]!;
    len--;
  }
  return arr.slice(0, len);
}

/** The node's labels exactly as sent: json.Marshal of a nil map is `null`, of an empty one `{}`. */
function rawLabels(o: Obj): Record<string, string> | undefined {
  const m = o.metadata;
  const l = isObj(m) ? m.labels : undefined;
  return isObj(l) ? (l as Record<string, string>) : undefined;
}

/** A JSON map[string]string stored in an annotation; unparsable is ignored (logged as a warning there). */
function storedMap(raw: string | undefined): Record<string, string> {
  if (raw === undefined) return {};
  try {
    const v: unknown = JSON.parse(raw);
    if (!isObj(v) || Object.values(v).some((x) => typeof x !== 'string')) return {};
    return v as Record<string, string>;
  } catch {
    return {};
  }
}

// validatorv3 functions getAnnotation uses.
/** ValidateCIDRv4 / ValidateCIDRv6: a CIDR or a bare address of that family (calico-node may write either). */
function isCIDRv4(v: string): boolean { return parseCIDROrIP(v)?.ip.version === 4; }
function isCIDRv6(v: string): boolean { return parseCIDROrIP(v)?.ip.version === 6; }
/** ValidateIPv4Network / ValidateIPv6Network: an address, or a CIDR already masked to its network. */
function isIPv4Network(v: string): boolean { return isNetwork(v, 4); }
function isIPv6Network(v: string): boolean { return isNetwork(v, 6); }
function isNetwork(v: string, version: 4 | 6): boolean {
  const n = parseCIDROrIP(v);
  return !!n && n.ip.version === version && formatIP(maskIP(n)) === formatIP(n.ip);
}
/** ValidateMAC (net.ParseMAC): 6, 8 or 20 octets, colon or dash separated, or dotted 4-digit groups. */
function isMAC(v: string): boolean {
  const octets = (sep: string) => new RegExp(`^[0-9a-fA-F]{2}(?:\\${sep}[0-9a-fA-F]{2})*$`).test(v) ? v.split(sep).length : 0;
  const dotted = /^[0-9a-fA-F]{4}(?:\.[0-9a-fA-F]{4})*$/.test(v) ? v.split('.').length * 2 : 0;
  const n = octets(':') || octets('-') || dotted;
  return n === 6 || n === 8 || n === 20;
}

/** numorstring.ASNumberFromString: a uint32, or asdot `<high>.<low>` (two uint16s). Invalid → unset. */
function asNumber(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (/^[0-9]+$/.test(v)) {
    const n = Number(v);
    return n <= 0xffffffff ? n : undefined;
  }
  const m = /^([0-9]+)\.([0-9]+)$/.exec(v);
  if (!m) return undefined;
  const hi = Number(m[1]);
  const lo = Number(m[2]);
  return hi <= 0xffff && lo <= 0xffff ? hi * 65536 + lo : undefined;
}
