// Policy values as Calico reads them back (the four policy kinds): the name comes from the
// internal `projectcalico.org/metadata` annotation, which is then dropped; without it, a
// default-tier name loses the `default.` prefix that releases v3.25–v3.29 stored. The key keeps
// the stored name, as Calico keys the KVPair by its path.

export const POLICY_METADATA_ANNOTATION = 'projectcalico.org/metadata';

export const POLICY_KINDS: ReadonlySet<string> = new Set(['NetworkPolicy', 'GlobalNetworkPolicy', 'StagedNetworkPolicy', 'StagedGlobalNetworkPolicy']);

export type Served = { ok: true; value: unknown } | { ok: false; reason: string };

/** The value to serve for a resource of `kind`: the same object unless it is a policy to rename; never mutates. */
export function servedPolicy(kind: string, value: any): Served {
  if (!POLICY_KINDS.has(kind)) return { ok: true, value };
  const meta = value.metadata;
  const annotations = meta.annotations;
  const stored = isObject(annotations) ? annotations[POLICY_METADATA_ANNOTATION] : undefined;
  // Only a non-empty annotation counts.
  if (typeof stored === 'string' && stored !== '') {
    let parsed: unknown;
    try {
      parsed = JSON.parse(stored);
    } catch (err) {
      return { ok: false, reason: `annotation ${POLICY_METADATA_ANNOTATION} is not JSON: ${(err as Error).message}` };
    }
    // Go unmarshals JSON null into ObjectMeta as nothing; anything but an object is an error.
    if (parsed !== null && !isObject(parsed)) return { ok: false, reason: `annotation ${POLICY_METADATA_ANNOTATION} is not an object` };
    const name = parsed === null ? undefined : parsed.name;
    if (name !== undefined && typeof name !== 'string') return { ok: false, reason: `annotation ${POLICY_METADATA_ANNOTATION} has a name that is not a string` };
    const { [POLICY_METADATA_ANNOTATION]: _dropped, ...rest } = annotations as Record<string, unknown>;
    const { annotations: _all, ...others } = meta;
    // Go's omitempty leaves out the map once it is empty.
    const metadata = { ...others, name: name ?? '', ...(Object.keys(rest).length ? { annotations: rest } : {}) };
    return { ok: true, value: { ...value, metadata } };
  }
  const tier = value.spec?.tier;
  if ((tier === undefined || tier === null || tier === '' || tier === 'default') && typeof meta.name === 'string' && meta.name.startsWith('default.')) {
    return { ok: true, value: { ...value, metadata: { ...meta, name: meta.name.slice('default.'.length) } } };
  }
  return { ok: true, value };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
