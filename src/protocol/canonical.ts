// Canonical value bytes: the one encoding of a resource that the store keeps, compares, hashes
// and splices into frames. Equal content gives equal bytes, whatever order the datastore wrote
// the fields in, so a no-op is a byte comparison and two servers hash the same state alike.
// PROTOCOL.md ("Canonical value bytes") is the normative description.
import { Packr } from 'msgpackr';

const packr = new Packr({ useRecords: false, variableMapSize: true });

function canonicalize(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonicalize);
  if (v !== null && typeof v === 'object') {
    const src = v as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(src).sort()) {
      const x = src[k];
      if (x !== undefined) out[k] = canonicalize(x);
    }
    return out;
  }
  return v;
}

/**
 * Canonical msgpack of a value. `metadata.resourceVersion` is left out: it travels as the
 * update's revision, so a rewrite that changed nothing else is recognisably a no-op.
 */
export function encodeValue(value: unknown): Buffer {
  let v = value;
  const meta = (value as any)?.metadata;
  if (meta && typeof meta === 'object' && 'resourceVersion' in meta) {
    const { resourceVersion: _rv, ...rest } = meta;
    v = { ...(value as object), metadata: rest };
  }
  // Copy out of msgpackr's shared buffer: a long-lived slice would pin its whole backing store.
  return Buffer.from(packr.pack(canonicalize(v)));
}
