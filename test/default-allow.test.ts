// The built-in `projectcalico-default-allow` profile in the memory and Kubernetes datastores (etcd:
// test/etcd-calico-data.test.ts): served in the felix view though never stored, at revision "1",
// as libcalico-go lib/resources/static.go builds it and lib/backend/k8s/resources/profile.go lists it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createDatastore } from '../cmd/datastores.js';
import { loadConfig } from '../src/config.js';
import { silentLogger } from '../src/logging.js';
import { cleanupAfterFile, LIMIT, resource, startServerOn, startTestServer } from './support/harness.js';
import { startKubeApi } from './support/kube-api.js';

const { clients, track } = cleanupAfterFile();
const KEY = '/calico/resources/v3/projectcalico.org/profiles/projectcalico-default-allow';
const BUILT_IN = {
  apiVersion: 'projectcalico.org/v3', kind: 'Profile',
  metadata: { name: 'projectcalico-default-allow', resourceVersion: '1' },
  spec: { ingress: [{ action: 'Allow' }], egress: [{ action: 'Allow' }] },
};

test('memory datastore: served in the felix view only, and a stored copy does not replace it', LIMIT, async () => {
  // etcdv3.go Get answers the built-in profile whatever is stored under its key.
  const stored = resource('Profile', { name: 'projectcalico-default-allow' }, { ingress: [{ action: 'Deny' }] });
  const ts = track(await startTestServer({}, [stored]));
  const marker = resource('Profile', { name: 'kns.after' }, {});
  let markerSeen: () => void = () => {};
  const sawMarker = new Promise<void>((resolve) => { markerSeen = resolve; });
  const felix = clients.make({ url: ts.url, syncerType: 'felix', onUpdates: (us) => { if (us.some((u) => u.key === marker.key)) markerSeen(); } });
  const bgp = clients.make({ url: ts.url, syncerType: 'bgp' });
  await Promise.all([felix.inSync(), bgp.inSync()]);
  assert.equal(felix.get(KEY)?.revision, '1');
  assert.deepEqual(felix.get(KEY)?.value, BUILT_IN);
  assert.equal(bgp.get(KEY), undefined, 'bgp carries no profiles');
  ts.ds.delete(stored.key);
  ts.ds.put(stored.key, stored.value);
  ts.ds.put(marker.key, marker.value);
  await sawMarker;
  assert.deepEqual(felix.get(KEY)?.value, BUILT_IN, 'still the built-in one after writes to its key');
});

test('kubernetes datastore: served with no namespaces or service accounts at all', LIMIT, async () => {
  const api = await startKubeApi();
  try {
    const config = { ...loadConfig({ env: {} }), datastoreType: 'kubernetes' as const, kubeconfig: api.kubeconfigPath };
    const ts = track(await startServerOn(createDatastore(config, silentLogger)));
    const felix = clients.make({ url: ts.url, syncerType: 'felix' });
    await felix.inSync();
    assert.deepEqual([...felix.entries()].map(([k]) => k), [KEY]);
    assert.deepEqual(felix.get(KEY)?.value, BUILT_IN);
  } finally {
    await clients.stopAll();
    await api.close();
  }
});
