// The CLI loads what a command uses and no more: `--help`, `watch` and `dump` no datastore client,
// `serve` only the configured datastore's (etcd3 for etcdv3, @kubernetes/client-node for
// kubernetes, the client library for upstream: a tier below), and none of it the bench harness. Checked in fresh processes of bin/calico-fanout.js.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadedModules, loadsPackage } from './support/loaded-modules.js';

const DATASTORE_CLIENTS = ['@kubernetes/client-node', 'etcd3'];
const notLoaded = (urls: string[], pkgs: string[]) => pkgs.filter((p) => loadsPackage(urls, p));

test('--help loads no datastore client, no server and no client library', async () => {
  const { code, stdout, stderr, urls } = await loadedModules(['bin/calico-fanout.js', '--help']);
  assert.equal(code, 0, stderr);
  assert.match(stdout, /serve/);
  assert.ok(urls.some((u) => u.endsWith('/dist/cmd/main.js')), 'the compiled CLI runs');
  assert.deepEqual(notLoaded(urls, [...DATASTORE_CLIENTS, 'ws', 'prom-client', 'tsx']), []);
  assert.ok(!urls.some((u) => /\/(server|snapshot|dedupe|bench)\//.test(u)), 'no stage and no bench harness');
});

test('watch and dump load the client library and no datastore client', async () => {
  // Nothing listens on port 1: the client fails to connect and gives up after --timeout.
  for (const cmd of ['watch', 'dump']) {
    const { urls } = await loadedModules(['bin/calico-fanout.js', cmd, '--url', 'ws://127.0.0.1:1', '--timeout', '0.3', '--log-level', 'NONE']);
    assert.ok(urls.some((u) => u.endsWith('/dist/client/index.js')), `${cmd}: the client library loads`);
    assert.deepEqual(notLoaded(urls, [...DATASTORE_CLIENTS, 'prom-client']), [], `${cmd}: no datastore client, no metrics`);
    assert.ok(!urls.some((u) => /\/dist\/(server|snapshot|dedupe|cmd\/app)/.test(u)), `${cmd}: nothing of the server`);
  }
});

test('serve loads only the configured datastore\'s client', async () => {
  const memory = await loadedModules(['bin/calico-fanout.js', 'serve', '--seed', '/nonexistent.yaml']);
  assert.equal(memory.code, 2, memory.stderr);
  assert.ok(memory.urls.some((u) => u.endsWith('/dist/cmd/app.js')), 'memory: the server was being started');
  assert.deepEqual(notLoaded(memory.urls, DATASTORE_CLIENTS), [], 'memory: no datastore client');

  // What `serve` does first: the configured adapter, made (not started) in a fresh process.
  const open = (type: string, extra: Record<string, string> = {}) => loadedModules(['--input-type=module', '-e', [
    "const { openDatastore } = await import('./dist/cmd/app.js');",
    "const { loadConfig } = await import('./dist/src/config.js');",
    "const { createLogger } = await import('./dist/src/logging.js');",
    `const ds = await openDatastore(loadConfig({ env: ${JSON.stringify({ TYPHA_DATASTORETYPE: type, ...extra })} }), createLogger('NONE'));`,
    'process.stdout.write(ds.name);',
  ].join(' ')]);
  // The upstream datastore is the client library: only a tier below loads it.
  const upstreamAdapter = (urls: string[]) => urls.some((u) => /\/dist\/(cmd\/datastore-upstream|client\/)/.test(u));
  assert.ok(!upstreamAdapter(memory.urls), 'memory: not the client library');
  const etcd = await open('etcdv3');
  assert.equal(etcd.code, 0, etcd.stderr);
  assert.ok(loadsPackage(etcd.urls, 'etcd3'), 'etcdv3: etcd3 loaded');
  assert.ok(!loadsPackage(etcd.urls, '@kubernetes/client-node'), 'etcdv3: no Kubernetes client');
  assert.ok(!upstreamAdapter(etcd.urls), 'etcdv3: not the client library');
  const kube = await open('kubernetes');
  assert.equal(kube.code, 0, kube.stderr);
  assert.ok(loadsPackage(kube.urls, '@kubernetes/client-node'), 'kubernetes: the Kubernetes client loaded');
  assert.ok(!loadsPackage(kube.urls, 'etcd3'), 'kubernetes: no etcd3');
  assert.ok(!upstreamAdapter(kube.urls), 'kubernetes: not the client library');
  const upstream = await open('upstream', { TYPHA_UPSTREAMURLS: 'ws://127.0.0.1:1' });
  assert.equal(upstream.code, 0, upstream.stderr);
  assert.equal(upstream.stdout, 'upstream');
  assert.ok(upstream.urls.some((u) => u.endsWith('/dist/cmd/datastore-upstream.js')) && upstream.urls.some((u) => u.endsWith('/dist/client/sync-client.js')), 'upstream: the adapter and the client library loaded');
  assert.deepEqual([loadsPackage(upstream.urls, 'etcd3'), loadsPackage(upstream.urls, '@kubernetes/client-node')], [false, false], 'upstream: no datastore client');
  // Discovery of the upstream replicas loads the Kubernetes client on its first lookup only.
  const discovered = await open('upstream', { TYPHA_UPSTREAMK8SSERVICENAME: 'calico-fanout' });
  assert.equal(discovered.code, 0, discovered.stderr);
  assert.ok(!loadsPackage(discovered.urls, '@kubernetes/client-node'), 'upstream with discovery: not before the first lookup');
});
