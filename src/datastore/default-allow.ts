// The `projectcalico-default-allow` profile: never stored, yet every Calico datastore serves it
// in every profile list. Automatic host endpoints reference only it, and Felix turns a referenced
// but missing profile into drop.
import { keyForResource } from '../model/kinds.js';
import type { DatastoreEvent, DatastoreSink } from './datastore.js';

export const DEFAULT_ALLOW_PROFILE_NAME = 'projectcalico-default-allow';

/** As Calico builds it: only a name, one allow-all rule each way (empty fields left out). */
export const DEFAULT_ALLOW_PROFILE = Object.freeze({
  apiVersion: 'projectcalico.org/v3',
  kind: 'Profile',
  metadata: { name: DEFAULT_ALLOW_PROFILE_NAME },
  spec: { ingress: [{ action: 'Allow' }], egress: [{ action: 'Allow' }] },
});

export const DEFAULT_ALLOW_PROFILE_KEY = keyForResource(DEFAULT_ALLOW_PROFILE);

/**
 * Calico's fixed revision for it ("1"): the same on every replica, so digests agree, and never
 * newer than anything a datastore holds, so no client's position moves back.
 */
export const DEFAULT_ALLOW_PROFILE_REVISION = '1';

/**
 * A sink that starts with the profile and then passes on what the datastore sends, except
 * anything stored under the profile's key: Calico's Get answers the built-in one whatever is stored.
 */
export function withDefaultAllowProfile(sink: DatastoreSink): DatastoreSink {
  sink.onUpdates([{ key: DEFAULT_ALLOW_PROFILE_KEY, value: structuredClone(DEFAULT_ALLOW_PROFILE), revision: DEFAULT_ALLOW_PROFILE_REVISION }]);
  return {
    onUpdates: (events: readonly DatastoreEvent[]) => {
      sink.onUpdates(events.some((e) => e.key === DEFAULT_ALLOW_PROFILE_KEY) ? events.filter((e) => e.key !== DEFAULT_ALLOW_PROFILE_KEY) : events);
    },
    onInvalid: (kind, problem) => sink.onInvalid(kind, problem),
    onStatus: (status) => sink.onStatus(status),
    onProgress: sink.onProgress && ((revision) => sink.onProgress!(revision)),
  };
}
