// What Calico adds to a v3 resource when it creates it in etcd, so that `load-etcd` leaves the
// datastore as a real cluster's: metadata.uid (a random UUID) and creationTimestamp (now, whole
// seconds, UTC) when unset, and a policy's v3 name in the `projectcalico.org/metadata` annotation.
import { randomUUID } from 'node:crypto';
import { parseKey, RESOURCE_PREFIX } from '../model/kinds.js';
import { POLICY_KINDS, POLICY_METADATA_ANNOTATION } from '../model/policy-name.js';

/** The value as Calico would store it; IPAM model values and anything outside the v3 tree unchanged. */
export function asCreatedByCalico(key: string, value: unknown, now: Date = new Date()): unknown {
  if (!key.startsWith(RESOURCE_PREFIX) || typeof value !== 'object' || value === null) return value;
  const v = value as { metadata?: Record<string, unknown> };
  const metadata: Record<string, unknown> = { ...v.metadata };
  metadata.uid ||= randomUUID();
  // metav1.Time marshals as RFC 3339 in UTC with whole seconds.
  metadata.creationTimestamp ||= now.toISOString().replace(/\.\d+Z$/, 'Z');
  if (POLICY_KINDS.has(parseKey(key)?.kind ?? '')) {
    metadata.annotations = { ...(metadata.annotations as object | undefined), [POLICY_METADATA_ANNOTATION]: JSON.stringify({ name: metadata.name }) };
  }
  return { ...v, metadata };
}
