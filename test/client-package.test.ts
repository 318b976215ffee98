// The library as an agent imports it: the package export `calico-fanout/client` (built into
// dist/ by `npm test` and by `npm install`), against a real server.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SyncClient, SYNCER_TYPES, type Update } from 'calico-fanout/client';
import { node, startTestServer, waitFor } from './support/harness.js';
import { loadedModules, loadsPackage } from './support/loaded-modules.js';

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

test('importing calico-fanout/client loads nothing of the server side and no datastore client', async () => {
  const { code, stderr, urls } = await loadedModules(['--input-type=module', '-e', "await import('calico-fanout/client')"]);
  assert.equal(code, 0, stderr);
  assert.ok(urls.some((u) => u.endsWith('/dist/client/index.js')), 'the compiled library is what loads');
  const ours = urls.filter((u) => u.includes('/dist/')).map((u) => u.slice(u.indexOf('/dist/') + 6));
  assert.deepEqual(ours.filter((p) => !/^(client|src\/(model|protocol)\/|src\/(version|backoff)\.js)/.test(p)), [], 'only the client and the model and protocol it speaks');
  for (const pkg of ['@kubernetes/client-node', 'etcd3', '@grpc/grpc-js', 'prom-client', 'pino', 'commander']) {
    assert.ok(!loadsPackage(urls, pkg), `${pkg} is not loaded`);
  }
});

test('calico-fanout/client/discovery is its own export and loads the Kubernetes client only when asked', async () => {
  const { code, stderr, urls } = await loadedModules(['--input-type=module', '-e',
    "const d = await import('calico-fanout/client/discovery'); if (typeof d.kubernetesEndpoints !== 'function') process.exit(3)"]);
  assert.equal(code, 0, stderr);
  assert.ok(!loadsPackage(urls, '@kubernetes/client-node'), 'not loaded before the first lookup');
});
