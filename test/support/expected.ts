// What a client of (syncer, node) should hold, computed from the datastore's content by the
// model alone (not through the store), and a comparison that names the first difference.
import assert from 'node:assert/strict';
import type { SyncClient } from '../../client/index.js';
import { ViewFilter } from '../../src/model/view-filter.js';
import type { MemoryDatastore } from '../../src/datastore/memory.js';
import { DEFAULT_ALLOW_PROFILE, DEFAULT_ALLOW_PROFILE_KEY } from '../../src/datastore/default-allow.js';
import { parseKey, RESOURCE_PREFIX } from '../../src/model/kinds.js';
import { servedPolicy } from '../../src/model/policy-name.js';
import { isCarried, nodeOf, type SyncerType } from '../../src/model/views.js';

export function expectedView(ds: MemoryDatastore | Map<string, unknown>, syncer: SyncerType, nodeName: string): Map<string, unknown> {
  const f = new ViewFilter(syncer, nodeName);
  const out = new Map<string, unknown>();
  // Every datastore serves Calico's built-in profile, whatever is stored under its key.
  const content = new Map(ds instanceof Map ? ds : ds.snapshot());
  content.set(DEFAULT_ALLOW_PROFILE_KEY, DEFAULT_ALLOW_PROFILE);
  for (const [key, value] of content) {
    const p = parseKey(key);
    if (!p || !f.matches(p.kind, nodeOf(p, value))) continue;
    // What Felix's syncer leaves out reads as absent (src/model/views.ts isCarried).
    if (!isCarried(p.kind, value)) continue;
    // Policies are served with the name Calico reads them by (src/model/policy-name.ts, tested on its own).
    const served = value && key.startsWith(RESOURCE_PREFIX) ? servedPolicy(p.kind, value) : { ok: true as const, value };
    out.set(key, served.ok ? served.value : value);
  }
  return out;
}

function stripRv(v: any): unknown {
  if (!v?.metadata) return v;
  const { resourceVersion: _rv, ...metadata } = v.metadata;
  return { ...v, metadata };
}

/** The client's cache holds exactly the expected content (values compared without resourceVersion). */
export function assertClientMatches(client: SyncClient, expected: Map<string, unknown>, label: string): void {
  const got = new Map([...client.entries()].map(([k, v]) => [k, stripRv(v.value)]));
  const missing = [...expected.keys()].filter((k) => !got.has(k));
  const extra = [...got.keys()].filter((k) => !expected.has(k));
  assert.deepEqual({ missing, extra }, { missing: [], extra: [] }, `${label}: key sets differ`);
  for (const [k, v] of expected) assert.deepEqual(got.get(k), stripRv(v), `${label}: value of ${k} differs`);
}
