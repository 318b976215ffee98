// Namespace → Profile `kns.<ns>`, ServiceAccount → Profile `ksa.<ns>.<sa>`.
// Names and label prefixes (kns., ksa., pcns., pcsa., projectcalico.org/name) are Calico's.
import { type CalicoResource, convertUID, readObject, v3Metadata, v3Resource } from './read.js';

const NAME_LABEL = 'projectcalico.org/name';

/**
 * NamespaceToProfile: name `kns.<ns>`; labelsToApply = every namespace label with the `pcns.`
 * prefix, plus `pcns.projectcalico.org/name: <ns>` (exact name matching in namespaceSelector);
 * one allow-all ingress rule and one allow-all egress rule (a namespace does not isolate on its
 * own: policy does). Metadata: name, ConvertUID(namespace uid), the namespace's creationTimestamp.
 */
export function convertNamespace(obj: unknown): CalicoResource {
  const { meta } = readObject(obj, 'Namespace', false);
  const what = `Namespace ${meta.name}`;
  const labelsToApply: Record<string, string> = {};
  for (const [k, v] of Object.entries(meta.labels ?? {})) labelsToApply[`pcns.${k}`] = v;
  labelsToApply[`pcns.${NAME_LABEL}`] = meta.name;
  const metadata = v3Metadata({
    name: `kns.${meta.name}`,
    uid: meta.uid ? convertUID(meta.uid, what) : undefined,
    creationTimestamp: meta.creationTimestamp,
  });
  return v3Resource('Profile', metadata, {
    ingress: [{ action: 'Allow' }],
    egress: [{ action: 'Allow' }],
    labelsToApply,
  });
}

/**
 * ServiceAccountToProfile: name `ksa.<ns>.<sa>` (serviceAccountNameToProfileName, namespace
 * "default" when empty); labelsToApply = every service-account label with the `pcsa.` prefix, plus
 * `pcsa.projectcalico.org/name: <sa>`; no rules (the namespace profile carries them).
 * Metadata: name, ConvertUID(service account uid), its creationTimestamp.
 */
export function convertServiceAccount(obj: unknown): CalicoResource {
  const { meta } = readObject(obj, 'ServiceAccount', true);
  const ns = meta.namespace || 'default';
  const what = `ServiceAccount ${ns}/${meta.name}`;
  const labelsToApply: Record<string, string> = {};
  for (const [k, v] of Object.entries(meta.labels ?? {})) labelsToApply[`pcsa.${k}`] = v;
  labelsToApply[`pcsa.${NAME_LABEL}`] = meta.name;
  const metadata = v3Metadata({
    name: `ksa.${ns}.${meta.name}`,
    uid: meta.uid ? convertUID(meta.uid, what) : undefined,
    creationTimestamp: meta.creationTimestamp,
  });
  return v3Resource('Profile', metadata, { labelsToApply });
}
