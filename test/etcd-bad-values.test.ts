// What a real etcd may hold besides valid Calico resources: bytes that are not JSON, JSON null,
// a resource stored under another resource's key, keys outside the Calico layout, and keys
// outside the configured prefix. None of them reaches the store or a client, each is counted
// (exactly), valid writes keep flowing, readiness is not affected, and an invalid value written
// over a valid one is dropped, not served as a deletion.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Update } from '../client/index.js';
import { createDatastore } from '../cmd/datastores.js';
import { loadConfig, type Config } from '../src/config.js';
import { DEFAULT_ALLOW_PROFILE, DEFAULT_ALLOW_PROFILE_KEY } from '../src/datastore/default-allow.js';
import { EtcdDatastore } from '../src/datastore/etcd.js';
import { silentLogger } from '../src/logging.js';
import type { Metrics } from '../src/metrics.js';
import { assertClientMatches } from './support/expected.js';
import { putMany, startEtcd, type EtcdServer } from './support/etcd.js';
import { cleanupAfterFile, LIMIT, node, resource, startServerOn, waitFor, wep } from './support/harness.js';
import { httpGet, metricNamed } from './support/metrics.js';

const { clients, track } = cleanupAfterFile();

const NODES = '/calico/resources/v3/projectcalico.org/nodes/';
const INVALID = 'calico_fanout_invalid_values_total';
const IGNORED = 'calico_fanout_ignored_keys_total';
const RECEIVED = 'calico_fanout_datastore_updates_total';

async function serveEtcd(etcd: EtcdServer, overrides: Partial<Config>) {
  const all: Partial<Config> = {
    datastoreType: 'etcdv3', etcdEndpoints: [etcd.endpoint],
    etcdProgressIntervalSecs: 0.2, etcdWatchTimeoutSecs: 2,
    ...overrides,
  };
  const ds = createDatastore({ ...loadConfig({ env: {} }), ...all }, silentLogger);
  assert.ok(ds instanceof EtcdDatastore);
  const ts = track(await startServerOn(ds, all));
  await waitFor(() => ts.app.store.status === 'in-sync', 'the server to reach in-sync', 10_000);
  return ts;
}

type Served = Awaited<ReturnType<typeof serveEtcd>>;

/** The counters that matter here, read from the server's registry. */
async function counts(m: Metrics): Promise<{ invalidNode: number; invalidAll: number; ignored: number; received: number }> {
  return {
    invalidNode: await metricNamed(m, INVALID, { kind: 'Node' }),
    invalidAll: await metricNamed(m, INVALID),
    ignored: await metricNamed(m, IGNORED),
    received: await metricNamed(m, RECEIVED),
  };
}

async function assertReady(ts: Served, when: string): Promise<void> {
  const r = await httpGet(ts.app.ports.health!, '/readyz');
  assert.equal(r.status, 200, `/readyz ${when}: ${r.body}`);
  const body = JSON.parse(r.body) as Record<string, unknown>;
  assert.equal(body.status, 'in-sync', when);
  assert.equal(body.datastoreError, undefined, `no datastore error ${when}`);
}

const put = (etcd: EtcdServer, key: string, value: unknown) =>
  etcd.client.put(key).value(typeof value === 'string' ? value : JSON.stringify(value));

/** Values as the client holds them, without the resourceVersion the client adds. */
const stripRv = (v: Record<string, any> | null | undefined) => {
  if (!v?.metadata) return v;
  const { resourceVersion: _rv, ...metadata } = v.metadata;
  return { ...v, metadata };
};

test('invalid values and foreign keys, at list time and through the watch, are counted and dropped', LIMIT, async () => {
  const etcd = await startEtcd();
  let ts: Served | undefined;
  try {
    const victim = node('node-v', { bgp: { ipv4Address: '10.0.0.9/24' } });
    const valid = new Map<string, unknown>();
    const addValid = (...rs: { key: string; value: unknown }[]) => { for (const r of rs) valid.set(r.key, r.value); };
    addValid(node('node-1'), node('node-2'), victim, wep('node-1', 'pod-a'), resource('IPPool', { name: 'pool-a' }, { cidr: '10.244.0.0/16', blockSize: 26 }));
    assert.equal(valid.size, 5);
    // Served as well, though never stored: Calico's built-in profile (src/datastore/default-allow.ts).
    valid.set(DEFAULT_ALLOW_PROFILE_KEY, DEFAULT_ALLOW_PROFILE);

    const badAtList = {
      notJson: { key: `${NODES}bad`, value: '{not json' },
      jsonNull: { key: `${NODES}nul`, value: 'null' },
      misnamed: { key: `${NODES}misnamed`, value: node('someone-else').value },
    };
    const foreignAtList = [
      { key: '/calico/foo/bar', value: '{}' },
      { key: '/calico/resources/v3/projectcalico.org/unknownthings/x', value: '{}' },
    ];
    const outside = { key: '/other/x', value: '{}' };
    await putMany(etcd.client, [...[...valid].map(([key, value]) => ({ key, value })), ...Object.values(badAtList), ...foreignAtList, outside]);

    // ---- the initial list ----
    ts = await serveEtcd(etcd, { etcdPrefix: '/calico/' });
    const ds = ts.ds as EtcdDatastore;
    const heard: Update[] = [];
    const c = clients.make({ url: ts.url, syncerType: 'felix', onUpdates: (u) => heard.push(...u) });
    await c.inSync();

    for (const { key } of [...Object.values(badAtList), ...foreignAtList, outside]) {
      assert.equal(ts.app.store.valueOf(key), undefined, `${key} is not in the store`);
      assert.equal(c.get(key), undefined, `${key} is not at the client`);
    }
    assertClientMatches(c, valid, 'after the list');
    assert.deepEqual(await counts(ts.app.metrics), {
      invalidNode: 3, invalidAll: 3,
      ignored: 2,
      // Everything under /calico/ and nothing else: /other/x is not even read; plus the built-in profile.
      received: 5 + 3 + 2 + 1,
    }, 'counters after the list');
    await assertReady(ts, 'after a list with invalid values');
    const victimRevision = c.get(victim.key)!.revision;

    // ---- the same through the watch; a valid write after them marks when they have all passed ----
    await put(etcd, `${NODES}bad2`, '{not json either');
    await put(etcd, `${NODES}nul2`, 'null');
    await put(etcd, `${NODES}misnamed2`, node('other-name').value);
    await put(etcd, '/calico/foo/baz', '{}');
    await put(etcd, '/calico/resources/v3/projectcalico.org/unknownthings/y', '{}');
    await put(etcd, '/other/y', '{}');
    const after1 = node('node-3');
    await put(etcd, after1.key, after1.value);
    addValid(after1);
    await waitFor(() => c.get(after1.key) !== undefined, 'the valid write after the invalid ones to reach the client');

    for (const key of [`${NODES}bad2`, `${NODES}nul2`, `${NODES}misnamed2`, '/calico/foo/baz', '/calico/resources/v3/projectcalico.org/unknownthings/y', '/other/y']) {
      assert.equal(ts.app.store.valueOf(key), undefined, `${key} is not in the store`);
    }
    assertClientMatches(c, valid, 'after invalid values through the watch');
    assert.deepEqual(await counts(ts.app.metrics), {
      invalidNode: 6, invalidAll: 6,
      ignored: 4,
      received: 11 + 6, // 3 invalid, 2 foreign, 1 valid; not /other/y
    }, 'counters after the watched writes');
    await assertReady(ts, 'after invalid values through the watch');

    // ---- a valid key overwritten with invalid values keeps its last valid value ----
    await put(etcd, victim.key, '{broken');
    await put(etcd, victim.key, 'null');
    await put(etcd, victim.key, node('not-node-v').value);
    const after2 = node('node-4');
    await put(etcd, after2.key, after2.value);
    addValid(after2);
    await waitFor(() => c.get(after2.key) !== undefined, 'the valid write after the overwrites to reach the client');

    assert.ok(ts.app.store.valueOf(victim.key), 'the store still holds the last valid value');
    assert.deepEqual(stripRv(c.get(victim.key)?.value), victim.value, 'the client still holds the last valid value');
    assert.equal(c.get(victim.key)!.revision, victimRevision, 'at its old revision');
    assert.deepEqual(heard.filter((u) => u.key === victim.key && u.value === null), [], 'no deletion of it was ever sent');
    assert.equal(heard.filter((u) => u.key === victim.key).length, 1, 'the client heard of it once, in the snapshot');
    assertClientMatches(c, valid, 'after invalid overwrites');
    assert.deepEqual(await counts(ts.app.metrics), {
      invalidNode: 9, invalidAll: 9,
      ignored: 4,
      received: 17 + 4,
    }, 'counters after the invalid overwrites');
    assert.ok(c.isInSync, 'the client is still in sync');
    await assertReady(ts, 'after invalid overwrites');

    // ---- later valid values for the bad keys are served; deleting a never-served key is silent ----
    const fixed = node('bad', { bgp: { ipv4Address: '10.0.0.77/24' } });
    assert.equal(fixed.key, badAtList.notJson.key);
    const victim2 = node('node-v', { bgp: { ipv4Address: '10.0.0.99/24' } });
    await put(etcd, fixed.key, fixed.value);
    await put(etcd, victim2.key, victim2.value);
    await etcd.client.delete().key(badAtList.jsonNull.key);
    const after3 = node('node-5');
    await put(etcd, after3.key, after3.value);
    addValid(fixed, victim2, after3);
    await waitFor(() => c.get(after3.key) !== undefined, 'the valid write after the repairs to reach the client');

    assert.deepEqual(stripRv(c.get(fixed.key)?.value), fixed.value, 'the formerly invalid key is served once valid');
    assert.deepEqual(stripRv(c.get(victim.key)?.value), victim2.value, 'the overwritten key takes its next valid value');
    assert.deepEqual(heard.filter((u) => u.key === badAtList.jsonNull.key), [], 'deleting a key that was never served tells the client nothing');
    assertClientMatches(c, valid, 'after the repairs');
    const final = await counts(ts.app.metrics);
    assert.equal(final.invalidNode, 9, 'no more invalid values');
    assert.equal(final.ignored, 4, 'no more ignored keys');
    await assertReady(ts, 'at the end');
    assert.equal(ds.stats.lists, 1, 'one list, no re-list (the exact counts above depend on it)');
    assert.equal(ds.stats.reconnects, 0, 'no reconnects');
  } finally {
    await clients.stopAll();
    await ts?.close();
    await etcd.stop();
  }
});

test('keys outside the configured prefix are not read at all', LIMIT, async () => {
  const etcd = await startEtcd();
  let ts: Served | undefined;
  try {
    const n1 = node('node-1');
    // With prefix /calico/resources/, even Calico's own /calico/foo/... and IPAM keys are outside.
    await putMany(etcd.client, [
      n1,
      { key: '/calico/foo/bar', value: '{}' },
      { key: '/calico/ipam/v2/handle/h1', value: '{}' },
      { key: '/other/x', value: '{}' },
      { key: '/calico', value: '{}' },
      { key: '/calico/resources', value: '{}' },
      { key: '/calico/resourcesX/v3/projectcalico.org/nodes/node-x', value: JSON.stringify(node('node-x').value) },
    ]);
    ts = await serveEtcd(etcd, { etcdPrefix: '/calico/resources/' });
    const c = clients.make({ url: ts.url, syncerType: 'felix' });
    await c.inSync();
    const builtIn: [string, unknown] = [DEFAULT_ALLOW_PROFILE_KEY, DEFAULT_ALLOW_PROFILE];
    assertClientMatches(c, new Map([[n1.key, n1.value], builtIn]), 'after the list');
    assert.deepEqual(await counts(ts.app.metrics), { invalidNode: 0, invalidAll: 0, ignored: 0, received: 1 + 1 }, 'only the one key under the prefix was read (and the built-in profile)');

    await put(etcd, '/calico/foo/baz', '{}');
    await put(etcd, '/other/y', '{}');
    await put(etcd, '/calico/resourcesX/v3/projectcalico.org/nodes/node-y', node('node-y').value);
    const n2 = node('node-2');
    await put(etcd, n2.key, n2.value);
    await waitFor(() => c.get(n2.key) !== undefined, 'a write under the prefix to reach the client');
    assertClientMatches(c, new Map([[n1.key, n1.value], [n2.key, n2.value], builtIn]), 'after the watched writes');
    assert.deepEqual(await counts(ts.app.metrics), { invalidNode: 0, invalidAll: 0, ignored: 0, received: 2 + 1 }, 'the watch sees only the prefix too');
    await assertReady(ts, 'at the end');
  } finally {
    await clients.stopAll();
    await ts?.close();
    await etcd.stop();
  }
});
