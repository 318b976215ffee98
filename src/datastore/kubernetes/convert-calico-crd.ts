// Calico's own resources, stored in KDD as crd.projectcalico.org/v1 custom resources, read back
// as the projectcalico.org/v3 resources (and IPAM model documents) the other datastores serve.
import { BLOCK_AFFINITY, IPAM_BLOCK } from '../../model/kinds.js';
import {
  type CalicoResource, type KubeMeta, type Obj, compact, convertUID, fail, isObj, keyOf, networkString, objectAt,
  optArray, optBool, optNumber, optObject, optString, optStringMap, parseCIDR, readObject, v3Metadata, v3Resource,
} from './read.js';

/** Annotation in which the v3 client stores the Calico metadata of a CRD-backed resource. */
const METADATA_ANNOTATION = 'projectcalico.org/metadata';

/**
 * A Calico CRD → its v3 resource: same kind, apiVersion projectcalico.org/v3, the spec (and
 * status, for the kinds that have one, e.g. CalicoNodeStatus) unchanged.
 * As Calico's Kubernetes backend reads a custom resource: the v3 kind and version, keyed by the
 * CR's name and namespace, and its metadata converted as below.
 */
export function convertCalicoCrd(obj: unknown, kind: string): CalicoResource {
  const { o, meta } = readObject(obj, kind, false);
  const what = `${kind} ${meta.name}`;
  let spec = clone(optObject(o, 'spec', what) ?? {});
  // IPPool alone has fields of the v1 API to convert.
  if (kind === 'IPPool') spec = ipPoolV1ToV3(spec, what);
  const status = optObject(o, 'status', what);
  return v3Resource(kind, calicoMetadata(meta, what), spec, { status: status && clone(status) });
}

/**
 * The metadata of a v1 CR, as Calico converts it:
 * - the UID is never the CR's own: it is ConvertUID(CR uid);
 * - the `projectcalico.org/metadata` annotation (JSON ObjectMeta written by the v3 client) is
 *   removed and merged in: its labels and annotations over the CR's own, its creationTimestamp
 *   when set (else the CR's).
 * Name and namespace stay the CR's. (The annotation may carry a different v3 name for tiered
 * policies; Calico keys the KVPair by the CR name, and our store requires the value's name to
 * match its key, so the CR name is used for both.)
 */
function calicoMetadata(meta: KubeMeta, what: string): Obj {
  const uid = meta.uid ? convertUID(meta.uid, what) : undefined;
  const labels: Record<string, string> = { ...meta.labels };
  const annotations: Record<string, string> = { ...meta.annotations };
  let creationTimestamp = meta.creationTimestamp;
  const raw = annotations[METADATA_ANNOTATION];
  if (raw !== undefined) {
    delete annotations[METADATA_ANNOTATION];
    let stored: unknown;
    try {
      stored = JSON.parse(raw);
    } catch {
      fail(`${what} has an unparsable ${METADATA_ANNOTATION} annotation`);
    }
    const sw = `${what} ${METADATA_ANNOTATION} annotation`;
    const s = objectAt(stored, sw);
    Object.assign(labels, optStringMap(s, 'labels', sw));
    Object.assign(annotations, optStringMap(s, 'annotations', sw));
    const ct = optString(s, 'creationTimestamp', sw);
    if (ct) creationTimestamp = ct;
  }
  return v3Metadata({ name: meta.name, namespace: meta.namespace, uid, creationTimestamp, labels, annotations });
}

/**
 * An IPPool written through the v1 API
 * carries `ipip: {enabled, mode}` and `nat-outgoing`; they become ipipMode (Never when disabled,
 * CrossSubnet for mode cross-subnet, else Always) and natOutgoing (OR of both), and are dropped.
 */
function ipPoolV1ToV3(spec: Obj, what: string): Obj {
  const out: Obj = { ...spec };
  const ipip = optObject(spec, 'ipip', `${what} spec`);
  if (ipip) {
    const enabled = optBool(ipip, 'enabled', `${what} spec.ipip`) ?? false;
    const mode = optString(ipip, 'mode', `${what} spec.ipip`) ?? '';
    out.ipipMode = !enabled ? 'Never' : mode === 'cross-subnet' ? 'CrossSubnet' : 'Always';
  }
  delete out.ipip;
  if (optBool(spec, 'nat-outgoing', `${what} spec`)) out.natOutgoing = true;
  delete out['nat-outgoing'];
  return out;
}

/**
 * IPAMBlock CR → the IPAM model block (Calico's AllocationBlock, the value Felix gets for a
 * block key), keyed /calico/ipam/v2/assignment/ipv4|6/block/<cidr with ->.
 * As Calico converts it: the CIDR parsed and printed as the network; affinity,
 * strictAffinity, allocations, unallocated, attributes {handle_id, secondary}, deleted copied;
 * the sequence numbers where the CRD has them. Same shape as the IPAMBlock specs in
 * examples/demo-cluster/20-ipam.yaml. A block marked deleted is still delivered, as Calico's
 * watch does.
 */
export function convertIpamBlock(obj: unknown): CalicoResource {
  const { o, meta } = readObject(obj, IPAM_BLOCK, false);
  const what = `${IPAM_BLOCK} ${meta.name}`;
  const spec = optObject(o, 'spec', what) ?? fail(`${what} has no spec`);
  const sw = `${what} spec`;
  const cidrStr = optString(spec, 'cidr', sw);
  const net = cidrStr ? parseCIDR(cidrStr) : undefined;
  if (!net) fail(`${what} has no valid spec.cidr`);
  const cidr = networkString(net);
  const allocations = optArray(spec, 'allocations', sw) ?? [];
  allocations.forEach((a, i) => { if (a !== null && typeof a !== 'number') fail(`${sw}.allocations[${i}] is not a number or null`); });
  const unallocated = optArray(spec, 'unallocated', sw) ?? [];
  unallocated.forEach((a, i) => { if (typeof a !== 'number') fail(`${sw}.unallocated[${i}] is not a number`); });
  const attributes = (optArray(spec, 'attributes', sw) ?? []).map((a, i) => {
    const aw = `${sw}.attributes[${i}]`;
    const at = objectAt(a, aw);
    const secondary = optStringMap(at, 'secondary', aw);
    return { handle_id: optString(at, 'handle_id', aw) ?? null, secondary: secondary ? { ...secondary } : null };
  });
  const seqForAlloc = optObject(spec, 'sequenceNumberForAllocation', sw);
  const value = compact({
    cidr,
    affinity: optString(spec, 'affinity', sw) ?? null,
    affinityClaimTime: optString(spec, 'affinityClaimTime', sw),
    strictAffinity: optBool(spec, 'strictAffinity', sw) ?? false,
    allocations: [...allocations],
    unallocated: [...unallocated],
    attributes,
    deleted: optBool(spec, 'deleted', sw) ?? false,
    sequenceNumber: optNumber(spec, 'sequenceNumber', sw),
    sequenceNumberForAllocation: seqForAlloc && clone(seqForAlloc),
  });
  return { key: keyOf({ kind: IPAM_BLOCK, metadata: { name: meta.name }, spec: { cidr } }), value };
}

/**
 * BlockAffinity CR → the IPAM model affinity, keyed /calico/ipam/v2/host/<node>/ipv4|6/block/<cidr>.
 * As Calico converts it (key from spec.node and the parsed spec.cidr; value
 * state and deleted, the CRD's string `deleted` parsed as a bool with strconv.ParseBool, empty
 * meaning false). The value also keeps node and cidr, as the demo-cluster documents do, but
 * `deleted` is a real boolean as in the model (the CRD's "false" string would be truthy in JS).
 * Affinities of another type than `host` (spec.type, newer CRDs) have no path in our layout: null.
 */
export function convertBlockAffinity(obj: unknown): CalicoResource | null {
  const { o, meta } = readObject(obj, BLOCK_AFFINITY, false);
  const what = `${BLOCK_AFFINITY} ${meta.name}`;
  const spec = optObject(o, 'spec', what) ?? fail(`${what} has no spec`);
  const sw = `${what} spec`;
  const type = optString(spec, 'type', sw);
  if (type && type !== 'host') return null;
  const cidrStr = optString(spec, 'cidr', sw);
  const net = cidrStr ? parseCIDR(cidrStr) : undefined;
  if (!net) fail(`${what} has no valid spec.cidr`);
  const node = optString(spec, 'node', sw);
  if (!node) fail(`${what} has no spec.node`);
  const cidr = networkString(net);
  const deletedStr = optString(spec, 'deleted', sw) ?? '';
  const value = { state: optString(spec, 'state', sw) ?? '', node, cidr, deleted: parseGoBool(deletedStr, `${sw}.deleted`) };
  return { key: keyOf({ kind: BLOCK_AFFINITY, metadata: { name: meta.name }, spec: { cidr, node } }), value };
}

/** Go's strconv.ParseBool, with "" as false (Calico only parses a non-empty string). */
function parseGoBool(s: string, what: string): boolean {
  if (s === '') return false;
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(s)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(s)) return false;
  fail(`${what} ${JSON.stringify(s)} is not a boolean`);
}

function clone<T>(v: T): T {
  return isObj(v) || Array.isArray(v) ? structuredClone(v) : v;
}
