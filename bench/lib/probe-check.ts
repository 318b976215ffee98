// Whether a probe's cache is the datastore's view: the view computed from the datastore's content
// by the test oracle (test/support/expected.ts, which states the views again from PROTOCOL.md),
// compared key by key with what the client library holds, values without resourceVersion.
import { isDeepStrictEqual } from 'node:util';
import type { CachedValue } from '../../client/index.js';
import type { SyncerType } from '../../src/model/views.js';
import { expectedView } from '../../test/support/expected.js';

/** A probe's cache against the datastore's view for its (syncer, node). */
export interface ProbeCheck { syncer: SyncerType; node: string; keys: number; expected: number; missing: number; extra: number; differing: number; firstDifferences: string[] }

function stripRv(v: any): unknown {
  if (!v?.metadata || v.metadata.resourceVersion === undefined) return v;
  const { resourceVersion: _rv, ...metadata } = v.metadata;
  return { ...v, metadata };
}

/** `content`: every key the datastore holds and its value (as stored); `cache`: the probe's entries. */
export function checkProbe(syncer: SyncerType, node: string, cache: Iterable<[string, CachedValue]>, content: Map<string, unknown>): ProbeCheck {
  const want = expectedView(content, syncer, node);
  const got = new Map([...cache].map(([k, v]) => [k, v.value]));
  const missing = [...want.keys()].filter((k) => !got.has(k));
  const extra = [...got.keys()].filter((k) => !want.has(k));
  const differing = [...want.keys()].filter((k) => got.has(k) && !isDeepStrictEqual(stripRv(got.get(k)), stripRv(want.get(k))));
  return {
    syncer, node, keys: got.size, expected: want.size, missing: missing.length, extra: extra.length, differing: differing.length,
    firstDifferences: [...missing.map((k) => `missing ${k}`), ...extra.map((k) => `extra ${k}`), ...differing.map((k) => `differs ${k}`)].slice(0, 5),
  };
}

export const matches = (c: ProbeCheck) => c.missing + c.extra + c.differing === 0;
