// A real client-go client against the contract server: kubectl (Debian's kubernetes-client, or
// any kubectl on PATH; scripts/ensure-kubectl.sh installs it) lists, gets and watches through it.
// Where kubectl disagrees with the contract server, the server is wrong. kubectl sends no
// credentials over plain http (client-go reads the kubeconfig user only for a TLS transport), so
// the server here has no token.
import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { waitFor } from './support/harness.js';
import { startKubeApi, type KubeApiServer } from './support/kube-api.js';

const PODS = '/api/v1/pods';
const IPPOOLS = '/apis/crd.projectcalico.org/v1/ippools';
const probe = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' });
const skip = probe.error || probe.status !== 0 ? `kubectl is not on PATH (run scripts/ensure-kubectl.sh as root): ${probe.error?.message ?? probe.stderr}` : false;
const LIMIT = { timeout: 60_000, skip };

describe(`kubectl against the contract server (${skip ? 'skipped' : probe.stdout.split('\n')[0]})`, () => {
  let api: KubeApiServer;
  let cache: string;
  before(async () => {
    api = await startKubeApi();
    cache = mkdtempSync(join(tmpdir(), 'kubectl-cache-'));
    const meta = (namespace: string, name: string) => ({ metadata: { namespace, name }, spec: { nodeName: 'node-1', containers: [{ name: 'c', image: 'busybox' }] }, status: { phase: 'Running' } });
    api.create(PODS, meta('default', 'web-1'));
    api.create(PODS, meta('kube-system', 'dns-1'));
    api.create(IPPOOLS, { kind: 'IPPool', metadata: { name: 'default-ipv4' }, spec: { cidr: '10.244.0.0/16' } });
  });
  after(async () => { await api?.close(); if (cache) rmSync(cache, { recursive: true, force: true }); });

  const env = () => ({ ...process.env, KUBECONFIG: api.kubeconfigPath });
  const kubectl = async (...args: string[]) => (await promisify(execFile)('kubectl', ['--cache-dir', cache, ...args], { env: env(), timeout: 30_000 })).stdout;

  test('get pods -A and get one pod: through discovery, the objects as stored', LIMIT, async () => {
    const all = JSON.parse(await kubectl('get', 'pods', '-A', '-o', 'json'));
    assert.deepEqual(all.items.map((p: any) => `${p.metadata.namespace}/${p.metadata.name}`), ['default/web-1', 'kube-system/dns-1']);
    const table = await kubectl('get', 'pods', '-A');
    assert.match(table, /^NAMESPACE\s+NAME\s+AGE\n/, 'no Table from the server: kubectl prints its default columns');
    assert.match(table, /kube-system\s+dns-1\s/);
    const one = JSON.parse(await kubectl('get', 'pod', 'web-1', '-n', 'default', '-o', 'json'));
    assert.equal(one.metadata.uid, api.get(PODS, 'default', 'web-1').metadata.uid);
    await assert.rejects(kubectl('get', 'pod', 'nope', '-n', 'default'), (e: any) => /NotFound|not found/.test(e.stderr), 'a missing pod is NotFound');
  });

  test('get --raw /apis and a Calico CRD list', LIMIT, async () => {
    const groups = JSON.parse(await kubectl('get', '--raw', '/apis'));
    assert.equal(groups.kind, 'APIGroupList');
    assert.ok(groups.groups.some((g: any) => g.name === 'crd.projectcalico.org' && g.preferredVersion.groupVersion === 'crd.projectcalico.org/v1'));
    const pools = JSON.parse(await kubectl('get', '--raw', IPPOOLS));
    assert.equal(pools.kind, 'IPPoolList');
    assert.deepEqual(pools.items.map((p: any) => p.spec.cidr), ['10.244.0.0/16']);
    assert.match(await kubectl('get', 'ippools.crd.projectcalico.org', '-o', 'name'), /^ippool\.crd\.projectcalico\.org\/default-ipv4\n$/);
  });

  test('get pods -w: the list, then a change as it happens, until stopped', LIMIT, async () => {
    const child = spawn('kubectl', ['--cache-dir', cache, 'get', 'pods', '-n', 'default', '-w', '-o', 'name'], { env: env(), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => { out += s; });
    child.stderr.setEncoding('utf8').on('data', (s: string) => { err += s; });
    try {
      await waitFor(() => out.includes('pod/web-1\n'), `the initial list (stderr: ${err})`, 20_000);
      await waitFor(() => (api.stats.watches.get(PODS) ?? 0) >= 1, 'the watch request');
      api.create(PODS, { metadata: { namespace: 'default', name: 'web-2' }, spec: { nodeName: 'node-1', containers: [{ name: 'c', image: 'busybox' }] } });
      api.create(PODS, { metadata: { namespace: 'other', name: 'elsewhere' }, spec: { nodeName: 'node-1', containers: [{ name: 'c', image: 'busybox' }] } });
      await waitFor(() => out.includes('pod/web-2\n'), `the new pod (stderr: ${err})`, 20_000);
      assert.ok(!out.includes('elsewhere'), 'the watch is of one namespace');
      assert.equal(child.exitCode, null, 'still watching');
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.exitCode !== null ? r(undefined) : child.once('exit', r));
    }
  });
});
