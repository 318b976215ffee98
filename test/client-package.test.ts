// The library as an agent imports it: the package export `calico-fanout/client` (built into
// dist/ by `npm test` and by `npm install`), against a real server.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SyncClient, SYNCER_TYPES, type Update } from 'calico-fanout/client';
import { node, startTestServer, waitFor } from './support/harness.js';

test('calico-fanout/client syncs, reports changes and stops cleanly', async () => {
  const ts = await startTestServer({}, [node('worker-1'), node('worker-2')]);
  const updates: Update[] = [];
  const statuses: string[] = [];
  const client = new SyncClient({
    url: ts.url, syncerType: 'tunnel-ip-allocation', node: 'worker-1',
    onUpdates: (u) => updates.push(...u), onStatus: (s) => statuses.push(s),
  });
  try {
    assert.deepEqual([...SYNCER_TYPES], ['felix', 'bgp', 'tunnel-ip-allocation', 'node-status']);
    client.start();
    await client.inSync();
    assert.deepEqual(updates.map((u) => u.key), [node('worker-1').key]);
    assert.equal(updates[0]!.value?.metadata.resourceVersion, updates[0]!.revision, 'resourceVersion restored from the revision');
    assert.deepEqual(statuses, ['in-sync']);
    ts.ds.delete(node('worker-1').key);
    await waitFor(() => client.size === 0, 'deletion applied');
    assert.equal(updates.at(-1)!.value, null);
    assert.throws(() => new SyncClient({ url: ts.url, syncerType: 'node-status' }), /needs node/);
  } finally {
    await client.stop();
    await ts.close();
  }
});
