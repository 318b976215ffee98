// The reading kit the converters share: typed field reads that throw ConvertError naming the
// field, Kubernetes metadata, v3 envelopes and keys, UIDs, IP parsing.
import ipaddr from 'ipaddr.js';
import { keyForResource } from '../../model/kinds.js';

/** A malformed object (missing metadata/name, wrong types): the adapter counts and skips it. */
export class ConvertError extends Error {
  override readonly name = 'ConvertError';
}

export interface CalicoResource { key: string; value: Record<string, unknown> }

export type Obj = Record<string, unknown>;

export function fail(message: string): never {
  throw new ConvertError(message);
}

export function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** `v` must be a JSON object. */
export function objectAt(v: unknown, what: string): Obj {
  if (!isObj(v)) fail(`${what} is not an object`);
  return v;
}

// Optional field readers: an absent or null field is undefined (Go decodes both to the zero
// value); a field of the wrong type is a malformed object.

export function optObject(o: Obj, field: string, what: string): Obj | undefined {
  const v = o[field];
  if (v === undefined || v === null) return undefined;
  if (!isObj(v)) fail(`${what}.${field} is not an object`);
  return v;
}

export function optArray(o: Obj, field: string, what: string): unknown[] | undefined {
  const v = o[field];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) fail(`${what}.${field} is not an array`);
  return v;
}

export function optString(o: Obj, field: string, what: string): string | undefined {
  const v = o[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') fail(`${what}.${field} is not a string`);
  return v;
}

export function optNumber(o: Obj, field: string, what: string): number | undefined {
  const v = o[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v)) fail(`${what}.${field} is not a number`);
  return v;
}

export function optBool(o: Obj, field: string, what: string): boolean | undefined {
  const v = o[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') fail(`${what}.${field} is not a boolean`);
  return v;
}

/** A map of string to string (labels, annotations, matchLabels). */
export function optStringMap(o: Obj, field: string, what: string): Record<string, string> | undefined {
  const m = optObject(o, field, what);
  if (!m) return undefined;
  for (const [k, v] of Object.entries(m)) if (typeof v !== 'string') fail(`${what}.${field}[${JSON.stringify(k)}] is not a string`);
  return m as Record<string, string>;
}

export function optStringArray(o: Obj, field: string, what: string): string[] | undefined {
  const a = optArray(o, field, what);
  if (!a) return undefined;
  a.forEach((v, i) => { if (typeof v !== 'string') fail(`${what}.${field}[${i}] is not a string`); });
  return a as string[];
}

/** Copies `o` without its undefined fields (the JSON `omitempty` of the Go types, for absent values). */
export function compact<T extends Obj>(o: T): T {
  const out: Obj = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v;
  return out as T;
}

export function nonEmptyMap(m: Record<string, string> | undefined): Record<string, string> | undefined {
  return m && Object.keys(m).length > 0 ? { ...m } : undefined;
}

/** The parts of Kubernetes ObjectMeta the converters read. */
export interface KubeMeta {
  name: string;
  namespace?: string;
  uid?: string;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

/**
 * Reads an object and its metadata. `metadata.name` is required, and `metadata.namespace` when
 * the object is namespaced. A `kind`, if the object carries one (list items often do not), must
 * be the expected kind.
 */
export function readObject(obj: unknown, kind: string, namespaced: boolean): { o: Obj; meta: KubeMeta } {
  const o = objectAt(obj, kind);
  if (o.kind !== undefined && o.kind !== null && o.kind !== kind) fail(`expected a ${kind}, got kind ${JSON.stringify(o.kind)}`);
  const m = o.metadata;
  if (m === undefined || m === null) fail(`${kind} has no metadata`);
  if (!isObj(m)) fail(`${kind} metadata is not an object`);
  const name = optString(m, 'name', `${kind}.metadata`);
  if (!name) fail(`${kind} has no metadata.name`);
  const what = `${kind} ${name}`;
  const namespace = optString(m, 'namespace', `${what} metadata`);
  if (namespaced && !namespace) fail(`${what} has no metadata.namespace`);
  const meta: KubeMeta = compact({
    name,
    namespace: namespace || undefined,
    uid: optString(m, 'uid', `${what} metadata`) || undefined,
    creationTimestamp: optString(m, 'creationTimestamp', `${what} metadata`) || undefined,
    deletionTimestamp: optString(m, 'deletionTimestamp', `${what} metadata`) || undefined,
    labels: optStringMap(m, 'labels', `${what} metadata`),
    annotations: optStringMap(m, 'annotations', `${what} metadata`),
  });
  return { o, meta };
}

export const V3_API_VERSION = 'projectcalico.org/v3';

/** The metadata of a v3 value: only name, namespace, uid, creationTimestamp, labels, annotations (never resourceVersion). */
export function v3Metadata(m: {
  name: string; namespace?: string | undefined; uid?: string | undefined; creationTimestamp?: string | undefined;
  labels?: Record<string, string> | undefined; annotations?: Record<string, string> | undefined;
}): Obj {
  return compact({
    name: m.name,
    namespace: m.namespace,
    uid: m.uid,
    creationTimestamp: m.creationTimestamp,
    labels: nonEmptyMap(m.labels),
    annotations: nonEmptyMap(m.annotations),
  });
}

/** A v3 resource `{apiVersion, kind, metadata, spec, ...extra}` and its default key path. */
export function v3Resource(kind: string, metadata: Obj, spec: Obj, extra: Obj = {}): CalicoResource {
  const value: Record<string, unknown> = { apiVersion: V3_API_VERSION, kind, metadata, spec, ...compact(extra) };
  return { key: keyOf(value), value };
}

/** keyForResource, with its complaints turned into ConvertError. */
export function keyOf(doc: { kind?: unknown; metadata?: unknown; spec?: unknown }): string {
  try {
    return keyForResource(doc);
  } catch (err) {
    throw new ConvertError((err as Error).message);
  }
}

/**
 * Calico's UID conversion: resources derived from another object (profiles from
 * namespaces and service accounts, converted NetworkPolicies, every Calico CRD read back as v3)
 * get a UID derived deterministically from the source UID, so that two objects never share one
 * (Kubernetes garbage collection would confuse them). The bits of every byte are reversed except
 * bytes 6 and 8, which carry the UUID version and variant. An unparsable UID is an error there too.
 */
export function convertUID(uid: string, what: string): string {
  const hex = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/.test(uid) ? uid.replace(/-/g, '') : undefined;
  if (!hex) fail(`${what} has an invalid metadata.uid ${JSON.stringify(uid)}`);
  const out: string[] = [];
  for (let i = 0; i < 16; i++) {
    let b = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
    if (i !== 6 && i !== 8) b = reverseBits(b);
    out.push(b.toString(16).padStart(2, '0'));
  }
  const h = out.join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function reverseBits(b: number): number {
  let r = 0;
  for (let i = 0; i < 8; i++) r |= ((b >> i) & 1) << (7 - i);
  return r;
}

/** Go's json.Marshal of a map[string]string: keys sorted, <, > and & escaped. */
export function goJSONStringMap(m: Record<string, string> | undefined): string {
  if (m === undefined) return 'null';
  const sorted: Record<string, string> = {};
  for (const k of Object.keys(m).sort()) sorted[k] = m[k]!;
  return JSON.stringify(sorted)
    .replace(/</g, '\\u003c').replace(/>/g, '\\u003e').replace(/&/g, '\\u0026')
    .replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

// --- IP addresses, as Go's net package parses and prints them (Calico uses it; a network prints
// masked).

export interface IPAddr { readonly version: 4 | 6; readonly bytes: readonly number[] }
export interface IPNet { readonly ip: IPAddr; readonly prefix: number }

/**
 * Go's net.ParseIP, through ipaddr.js: dotted-quad IPv4 without leading zeros (Go rejects them as
 * ambiguous octal since 1.17), IPv6 without a zone.
 */
export function parseIP(s: string): IPAddr | undefined {
  if (s.includes(':')) {
    return !s.includes('%') && ipaddr.IPv6.isValid(s) ? { version: 6, bytes: ipaddr.IPv6.parse(s).toByteArray() } : undefined;
  }
  return ipaddr.IPv4.isValidFourPartDecimal(s) && !/(^|\.)0\d/.test(s) ? { version: 4, bytes: ipaddr.IPv4.parse(s).toByteArray() } : undefined;
}

/** Go's IP.String(): dotted IPv4; IPv6 as RFC 5952 has it (lower case, longest run of zeros as `::`). */
export function formatIP(ip: IPAddr): string {
  return ip.version === 4 ? ip.bytes.join('.') : (ipaddr.fromByteArray([...ip.bytes]) as ipaddr.IPv6).toRFC5952String();
}

/** An address with a prefix length (`a/n`); undefined for anything else. */
export function parseCIDR(s: string): IPNet | undefined {
  const slash = s.indexOf('/');
  if (slash < 0) return undefined;
  const ip = parseIP(s.slice(0, slash));
  const p = s.slice(slash + 1);
  if (!ip || !/^(0|[1-9][0-9]{0,2})$/.test(p)) return undefined;
  const prefix = Number(p);
  if (prefix > (ip.version === 4 ? 32 : 128)) return undefined;
  return { ip, prefix };
}

/** A CIDR, or a bare address as a full-length prefix (as Calico parses either). */
export function parseCIDROrIP(s: string): IPNet | undefined {
  if (s.includes('/')) return parseCIDR(s);
  const ip = parseIP(s);
  return ip ? { ip, prefix: ip.version === 4 ? 32 : 128 } : undefined;
}

export function maskIP(n: IPNet): IPAddr {
  const bytes = n.ip.bytes.map((b, i) => {
    const bits = Math.min(8, Math.max(0, n.prefix - i * 8));
    return b & ((0xff << (8 - bits)) & 0xff);
  });
  return { version: n.ip.version, bytes };
}

/** Go's IPNet.String() of a parsed CIDR: the masked network, `10.0.0.0/8`. */
export function networkString(n: IPNet): string {
  return `${formatIP(maskIP(n))}/${n.prefix}`;
}
