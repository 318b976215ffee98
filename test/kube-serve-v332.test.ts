// `calico-fanout serve --datastore kubernetes` as a process, against the contract server of
// test/support/kube-api.ts, with the agents' environment Calico's conversions read:
// FELIX_INTERFACEPREFIX (interface names) and USE_POD_CIDR (tunnel addresses from the Node's pod
// CIDR, no IPAM collections). A felix client sees what Calico v3.32 would serve, including the
// NetworkPolicy and ClusterNetworkPolicy conversions, and keeps following new pods.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import type { SyncClient } from '../client/index.js';
import { CRD_V1 } from '../src/datastore/kubernetes/api-group.js';
import { watchedResources, type ConversionOptions } from '../src/datastore/kubernetes/resources.js';
import { vethNameForWorkload } from '../src/datastore/kubernetes/convert-pod.js';
import { assertClientMatches, expectedView } from './support/expected.js';
import { cleanupAfterFile, waitFor } from './support/harness.js';
import { startKubeApi, type KubeApiServer } from './support/kube-api.js';
import { freePort } from './support/metrics.js';

const { clients } = cleanupAfterFile();
const SLOW = { timeout: 120_000 };
const CRD = '/apis/crd.projectcalico.org/v1/';
const PODS = '/api/v1/pods';
const CNPS = '/apis/policy.networking.k8s.io/v1alpha2/clusternetworkpolicies';
const NETPOLS = '/apis/networking.k8s.io/v1/networkpolicies';
const RESOURCES = '/calico/resources/v3/projectcalico.org/';

function node(i: number) {
  return {
    apiVersion: 'v1', kind: 'Node',
    metadata: {
      name: `node-${i}`, labels: { 'kubernetes.io/hostname': `node-${i}` },
      // The annotation Calico IPAM would have written; with USE_POD_CIDR the pod CIDR wins.
      annotations: { 'projectcalico.org/IPv4Address': `192.168.0.${10 + i}/24`, 'projectcalico.org/IPv4IPIPTunnelAddr': `10.99.${i}.1` },
    },
    spec: { podCIDR: `10.50.${i}.0/24`, podCIDRs: [`10.50.${i}.0/24`] },
    status: { addresses: [{ type: 'InternalIP', address: `192.168.0.${10 + i}` }] },
  };
}

function pod(name: string, ns: string, i: number, annotations: Record<string, string> = {}) {
  return {
    apiVersion: 'v1', kind: 'Pod',
    metadata: { name, namespace: ns, labels: { app: 'web' }, annotations },
    spec: { nodeName: `node-${i % 2}`, serviceAccountName: 'default', containers: [{ name: 'app', image: 'nginx:1.27' }] },
    status: { phase: 'Running', podIP: `10.50.${i % 2}.${i + 2}`, podIPs: [{ ip: `10.50.${i % 2}.${i + 2}` }] },
  };
}

function load(api: KubeApiServer): void {
  for (let i = 0; i < 2; i++) api.apply('/api/v1/nodes', node(i));
  for (const ns of ['ns-a', 'ns-b']) {
    api.apply('/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns, labels: { 'kubernetes.io/metadata.name': ns } } });
    api.apply('/api/v1/serviceaccounts', { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'default', namespace: ns } });
  }
  for (let i = 0; i < 6; i++) api.apply(PODS, pod(`web-${i}`, i % 2 ? 'ns-b' : 'ns-a', i, i === 0 ? { 'kubernetes.io/ingress-bandwidth': '10M' } : {}));
  api.apply(`${CRD}ippools`, { apiVersion: 'crd.projectcalico.org/v1', kind: 'IPPool', metadata: { name: 'pool' }, spec: { cidr: '10.50.0.0/16', ipipMode: 'Always' } });
  // IPAM objects a cluster may still hold: with USE_POD_CIDR no view carries them.
  api.apply(`${CRD}ipamblocks`, {
    apiVersion: 'crd.projectcalico.org/v1', kind: 'IPAMBlock', metadata: { name: '10-50-0-0-26' },
    spec: { cidr: '10.50.0.0/26', affinity: 'host:node-0', allocations: [null], unallocated: [0], attributes: [], deleted: false },
  });
  api.apply(`${CRD}blockaffinities`, {
    apiVersion: 'crd.projectcalico.org/v1', kind: 'BlockAffinity', metadata: { name: 'node-0-10-50-0-0-26' },
    spec: { state: 'confirmed', node: 'node-0', cidr: '10.50.0.0/26', deleted: 'false' },
  });
  api.apply(NETPOLS, { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: 'allow-db', namespace: 'ns-a' }, spec: { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '010.0.0.0/8' } }] }], policyTypes: ['Ingress'] } });
  api.apply(CNPS, {
    apiVersion: 'policy.networking.k8s.io/v1alpha2', kind: 'ClusterNetworkPolicy', metadata: { name: 'deny-metadata' },
    spec: { tier: 'Admin', priority: 10, subject: { namespaces: {} }, egress: [{ name: 'imds', action: 'Deny', to: [{ networks: ['169.254.169.254/32'] }] }] },
  });
}

/** What the server should serve, converted with the same settings. */
function content(api: KubeApiServer, opts: ConversionOptions): Map<string, unknown> {
  const out = new Map<string, unknown>();
  for (const r of watchedResources(CRD_V1, opts)) for (const o of api.list(r.path)) {
    const c = r.convert(o);
    if (c) out.set(c.key, c.value);
  }
  return out;
}

function serve(api: KubeApiServer, env: Record<string, string>): Promise<{ child: ChildProcess; url: string }> {
  return (async () => {
    const [port, health, metrics] = [await freePort(), await freePort(), await freePort()];
    const clean: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('TYPHA_') && k !== 'FELIX_INTERFACEPREFIX' && k !== 'USE_POD_CIDR') clean[k] = v;
    const child = spawn(process.execPath, ['bin/calico-fanout.js', 'serve', '--datastore', 'kubernetes', '--kubeconfig', api.kubeconfigPath,
      '--server-host', '127.0.0.1', '--server-port', String(port), '--health-host', '127.0.0.1', '--health-port', String(health),
      '--metrics-host', '127.0.0.1', '--metrics-port', String(metrics), '--log-level', 'WARNING'], { stdio: 'ignore', env: { ...clean, ...env } });
    return { child, url: `ws://127.0.0.1:${port}` };
  })();
}

async function stop(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

const wepKeys = (c: SyncClient) => [...c.entries()].filter(([k]) => k.startsWith(`${RESOURCES}workloadendpoints/`));

describe('serve --datastore kubernetes with FELIX_INTERFACEPREFIX=eni,gke and USE_POD_CIDR=true', () => {
  let api: KubeApiServer;
  let child: ChildProcess | undefined;
  let felix: SyncClient;
  const opts: ConversionOptions = { interfacePrefix: 'eni', usePodCIDR: true };

  before(async () => {
    api = await startKubeApi({ historyLimit: 10_000 });
    load(api);
    const s = await serve(api, { FELIX_INTERFACEPREFIX: 'eni,gke', USE_POD_CIDR: 'true' });
    child = s.child;
    felix = clients.make({ url: s.url, syncerType: 'felix' });
    await felix.inSync();
  });
  after(async () => {
    await clients.stopAll();
    await stop(child);
    await api.close();
  });

  test('the felix client holds exactly what Calico v3.32 converts with these settings', SLOW, () => {
    assertClientMatches(felix, expectedView(content(api, opts), 'felix', ''), 'felix client');
  });

  test('workload interfaces are named with the first prefix: eni…', SLOW, () => {
    const weps = wepKeys(felix);
    assert.equal(weps.length, 6);
    for (const [, v] of weps) {
      const spec = (v.value as any).spec;
      const ns = (v.value as any).metadata.namespace;
      assert.equal(spec.interfaceName, vethNameForWorkload(ns, spec.pod, 'eni'), `${ns}/${spec.pod}`);
      assert.match(spec.interfaceName, /^eni[0-9a-f]{11}$/);
    }
    const qos = weps.map(([, v]) => (v.value as any).spec.qosControls).filter(Boolean);
    assert.deepEqual(qos, [{ ingressBandwidth: 1e7, ingressBurst: 4 * 2 ** 30 }], 'the bandwidth annotation of web-0');
  });

  test('Nodes carry the IPIP tunnel address of their pod CIDR; IPAM collections are not even listed', SLOW, () => {
    for (let i = 0; i < 2; i++) {
      const n = felix.get(`${RESOURCES}nodes/node-${i}`);
      assert.equal((n?.value as any)?.spec?.bgp?.ipv4IPIPTunnelAddr, `10.50.${i}.1`, `node-${i}`);
    }
    assert.deepEqual([...felix.entries()].map(([k]) => k).filter((k) => k.startsWith('/calico/ipam/')), [], 'no IPAM block in the felix view');
    for (const plural of ['ipamblocks', 'blockaffinities']) {
      assert.equal(api.stats.lists.get(`${CRD}${plural}`) ?? 0, 0, `${plural} never listed`);
      assert.equal(api.stats.watches.get(`${CRD}${plural}`) ?? 0, 0, `${plural} never watched`);
    }
    assert.ok((api.stats.lists.get(`${CRD}ippools`) ?? 0) > 0, 'the other collections are');
  });

  test('NetworkPolicy by its own name in the default tier (legacy CIDR: any source); ClusterNetworkPolicy in kube-admin', SLOW, () => {
    const np = felix.get(`${RESOURCES}kubernetesnetworkpolicies/ns-a/allow-db`)?.value as any;
    assert.equal(np?.metadata?.name, 'allow-db');
    assert.equal(np.spec.tier, 'default');
    assert.deepEqual(np.spec.ingress, [{ action: 'Allow' }]);
    const cnp = felix.get(`${RESOURCES}kubernetesclusternetworkpolicies/deny-metadata`)?.value as any;
    assert.equal(cnp?.spec?.tier, 'kube-admin');
    assert.deepEqual(cnp.spec.egress, [{ metadata: { annotations: { name: 'imds' } }, action: 'Deny', destination: { nets: ['169.254.169.254/32'] } }]);
  });

  test('a pod created later arrives with an eni interface', SLOW, async () => {
    api.apply(PODS, pod('late-1', 'ns-b', 7));
    const key = `${RESOURCES}workloadendpoints/ns-b/node--1-k8s-late--1-eth0`;
    await waitFor(() => felix.get(key) !== undefined, 'the new pod at the client');
    assert.equal((felix.get(key)!.value as any).spec.interfaceName, vethNameForWorkload('ns-b', 'late-1', 'eni'));
    assertClientMatches(felix, expectedView(content(api, opts), 'felix', ''), 'felix client after the new pod');
  });
});
