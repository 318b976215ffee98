// Turns a datastore event into a Change: the key parsed, the value checked against its key and
// encoded once into canonical bytes. Everything downstream works on those bytes.
import { parseKey, RESOURCE_PREFIX, unservedKind } from '../src/model/kinds.js';
import { servedPolicy } from '../src/model/policy-name.js';
import { isCarried, isServed, nodeOf } from '../src/model/views.js';
import { encodeValue } from '../src/protocol/canonical.js';
import type { DatastoreEvent } from '../src/datastore/datastore.js';
import type { Change } from '../src/model/change.js';

export type Prepared =
  | { ok: true; change: Change }
  /** Outside Calico's layout. */
  | { ok: false; ignored: true }
  /** A key Calico writes that no view carries (IPAM handles, Felix status reports, …). */
  | { ok: false; ignored: false; unserved: true; kind: string; reason?: undefined }
  | { ok: false; ignored: false; unserved?: false; kind: string; reason: string };

export interface PrepareOptions {
  /** USE_POD_CIDR: IPAM blocks and affinities are served by no view. */
  usePodCidr?: boolean;
}

export function prepare(ev: DatastoreEvent, opts: PrepareOptions = {}): Prepared {
  const parsed = parseKey(ev.key);
  if (!parsed) {
    const kind = unservedKind(ev.key);
    return kind ? { ok: false, ignored: false, unserved: true, kind } : { ok: false, ignored: true };
  }
  // Checked before the value: what no view carries is never read, so its value cannot be wrong.
  if (!isServed(parsed.kind, opts.usePodCidr ?? false)) return { ok: false, ignored: false, unserved: true, kind: parsed.kind };
  const revision = String(ev.revision);
  if (ev.invalid !== undefined) return rejected(parsed.kind, ev.invalid);
  if (ev.value === null || ev.value === undefined) {
    return { ok: true, change: { key: ev.key, kind: parsed.kind, node: undefined, value: null, revision } };
  }
  // Served already by a calico-fanout of a tier above: checked, renamed and encoded there.
  if (ev.canonical) return { ok: true, change: { key: ev.key, kind: parsed.kind, node: nodeOf(parsed, ev.value), value: ev.canonical, revision } };
  let v = ev.value as any;
  if (typeof v !== 'object' || Array.isArray(v) || v instanceof Uint8Array) return rejected(parsed.kind, 'value is not an object');
  if (ev.key.startsWith(RESOURCE_PREFIX)) {
    // A v3 resource must be the resource its path names.
    if (v.kind !== undefined && v.kind !== parsed.kind) return rejected(parsed.kind, `kind ${JSON.stringify(v.kind)} stored under a ${parsed.kind} path`);
    const meta = v.metadata;
    if (typeof meta !== 'object' || meta === null) return rejected(parsed.kind, 'metadata is missing');
    if (meta.name !== parsed.name) return rejected(parsed.kind, `metadata.name ${JSON.stringify(meta.name)} does not match the path`);
    if (parsed.namespace !== undefined && meta.namespace !== undefined && meta.namespace !== parsed.namespace) {
      return rejected(parsed.kind, `metadata.namespace ${JSON.stringify(meta.namespace)} does not match the path`);
    }
    if (v.spec !== undefined && (typeof v.spec !== 'object' || v.spec === null || Array.isArray(v.spec))) return rejected(parsed.kind, 'spec is not an object');
    // Checked as stored; served with the name Calico reads it by.
    const served = servedPolicy(parsed.kind, v);
    if (!served.ok) return rejected(parsed.kind, served.reason);
    v = served.value;
  }
  // Valid but left out of every view (a WEP without addresses, a staged deletion): a deletion.
  if (!isCarried(parsed.kind, v)) return { ok: true, change: { key: ev.key, kind: parsed.kind, node: undefined, value: null, revision } };
  let value: Buffer;
  try {
    value = encodeValue(v);
  } catch (err) {
    return rejected(parsed.kind, `value cannot be encoded: ${(err as Error).message}`);
  }
  return { ok: true, change: { key: ev.key, kind: parsed.kind, node: nodeOf(parsed, v), value, revision } };
}

function rejected(kind: string, reason: string): Prepared {
  return { ok: false, ignored: false, kind, reason };
}
