// Server discovery from a Service's EndpointSlices (client/discovery.ts), read from the Kubernetes
// API contract server, and a SyncClient that follows it: it syncs on its own node's replica,
// moves to the replica the slices name after one goes, and keeps its last list when the API
// server cannot be reached.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { SyncClient, type ClientLogger, type SyncClientOptions } from '../client/index.js';
import { kubernetesEndpoints } from '../client/discovery.js';
import { assertClientMatches, expectedView } from './support/expected.js';
import { cleanupAfterFile, LIMIT, resource, startTestServer, waitFor, wep, type TestServer } from './support/harness.js';
import { startKubeApi, type KubeApiServer } from './support/kube-api.js';
import { freePort } from './support/metrics.js';

const SLICES = '/apis/discovery.k8s.io/v1/endpointslices';
const NS = 'calico-system';
const { track } = cleanupAfterFile();

/** Clients made by the tests, stopped when the file ends: a test that times out skips its finally. */
const made = new Set<SyncClient>();
after(() => Promise.all([...made].map((c) => c.stop())));
function mk(o: SyncClientOptions): SyncClient {
  const c = new SyncClient(o);
  made.add(c);
  return c;
}

interface Ep { ip: string; node?: string; ready?: boolean | null }

/** An EndpointSlice as the EndpointSlice controller writes it. */
function slice(name: string, service: string, endpoints: Ep[], ports: { name: string; port: number }[], opts: { namespace?: string; addressType?: string } = {}) {
  return {
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
    metadata: {
      name, namespace: opts.namespace ?? NS,
      labels: { 'kubernetes.io/service-name': service, 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' },
      ownerReferences: [{ apiVersion: 'v1', kind: 'Service', name: service, uid: `uid-${service}`, controller: true, blockOwnerDeletion: true }],
    },
    addressType: opts.addressType ?? 'IPv4',
    endpoints: endpoints.map((e) => ({
      addresses: [e.ip],
      // A missing ready condition means unknown, which consumers treat as ready.
      conditions: e.ready === undefined ? {} : { ready: e.ready, serving: e.ready, terminating: e.ready === false },
      ...(e.node ? { nodeName: e.node } : {}),
      targetRef: { kind: 'Pod', namespace: opts.namespace ?? NS, name: `pod-${e.ip}`, uid: `uid-${e.ip}` },
    })),
    ports: ports.map((p) => ({ name: p.name, port: p.port, protocol: 'TCP' })),
  };
}

const typhaPorts = [{ name: 'calico-typha', port: 5473 }, { name: 'metrics', port: 9093 }];

describe('kubernetesEndpoints', () => {
  let kube: KubeApiServer;
  before(async () => {
    kube = await startKubeApi();
    kube.apply(SLICES, slice('calico-typha-abcde', 'calico-typha', [
      { ip: '10.0.0.1', node: 'node-a', ready: true },
      { ip: '10.0.0.2', node: 'node-b', ready: true },
      { ip: '10.0.0.3', node: 'node-c', ready: false }, // terminating
      { ip: '10.0.0.4', node: 'node-d' },               // ready unknown: counted
    ], typhaPorts));
    // A second slice of the same Service (more endpoints than one slice holds, or another family).
    kube.apply(SLICES, slice('calico-typha-fghij', 'calico-typha', [{ ip: '10.0.0.5', node: 'node-e', ready: true }], typhaPorts));
    kube.apply(SLICES, slice('calico-typha-v6xyz', 'calico-typha', [{ ip: 'fd00::6', node: 'node-f', ready: true }], typhaPorts, { addressType: 'IPv6' }));
    // The same Service's slice without the port: nothing to dial there.
    kube.apply(SLICES, slice('calico-typha-noport', 'calico-typha', [{ ip: '10.0.0.7', node: 'node-g', ready: true }], [{ name: 'metrics', port: 9093 }]));
    // Another Service in the namespace, even with a port of that name, on our node.
    kube.apply(SLICES, slice('calico-kube-controllers-metrics-q', 'calico-kube-controllers-metrics', [{ ip: '10.0.1.1', node: 'node-b', ready: true }], [{ name: 'calico-typha', port: 6000 }]));
    // The same Service name in another namespace.
    kube.apply(SLICES, slice('calico-typha-other', 'calico-typha', [{ ip: '10.0.2.1', node: 'node-b', ready: true }], typhaPorts, { namespace: 'kube-system' }));
  });
  after(() => kube.close());

  const remote = ['ws://10.0.0.1:5473', 'ws://10.0.0.4:5473', 'ws://10.0.0.5:5473', 'ws://[fd00::6]:5473'];

  test('the ready endpoints of the Service\'s named port, own node first, the rest shuffled', LIMIT, async () => {
    const discover = kubernetesEndpoints({ namespace: NS, service: 'calico-typha', node: 'node-b', kubeconfig: kube.kubeconfigPath });
    const orders = new Set<string>();
    for (let i = 0; i < 30; i++) {
      const urls = await discover();
      assert.equal(urls[0], 'ws://10.0.0.2:5473', 'the endpoint on node-b comes first');
      assert.equal(urls.length, 5, `each ready endpoint once: ${urls.join(' ')}`);
      assert.deepEqual([...urls.slice(1)].sort(), remote);
      orders.add(urls.slice(1).join(' '));
    }
    // 4 remote endpoints: 24 orders; one order 30 times running would be a (1/24)^29 chance.
    assert.ok(orders.size > 1, 'the other endpoints are shuffled');
    assert.ok((kube.stats.lists.get(SLICES) ?? 0) >= 30, 'one list per call');
  });

  test('portName, scheme, and no node', LIMIT, async () => {
    const metrics = await kubernetesEndpoints({ namespace: NS, service: 'calico-typha', portName: 'metrics', scheme: 'wss', kubeconfig: kube.kubeconfigPath })();
    assert.deepEqual([...metrics].sort(), ['wss://10.0.0.1:9093', 'wss://10.0.0.2:9093', 'wss://10.0.0.4:9093', 'wss://10.0.0.5:9093', 'wss://10.0.0.7:9093', 'wss://[fd00::6]:9093']);
    const other = await kubernetesEndpoints({ namespace: NS, service: 'calico-kube-controllers-metrics', node: 'node-b', kubeconfig: kube.kubeconfigPath })();
    assert.deepEqual(other, ['ws://10.0.1.1:6000']);
    const ks = await kubernetesEndpoints({ namespace: 'kube-system', service: 'calico-typha', kubeconfig: kube.kubeconfigPath })();
    assert.deepEqual(ks, ['ws://10.0.2.1:5473']);
    assert.deepEqual(await kubernetesEndpoints({ namespace: NS, service: 'no-such-service', kubeconfig: kube.kubeconfigPath })(), []);
  });

  test('every page of a long list is read', LIMIT, async () => {
    const k = await startKubeApi();
    try {
      // 600 slices of another Service sort before ours: ours are only on the second page.
      for (let i = 0; i < 600; i++) k.apply(SLICES, slice(`a-filler-${String(i).padStart(3, '0')}`, 'filler', [{ ip: `10.1.${i >> 8}.${i & 255}`, ready: true }], typhaPorts));
      k.apply(SLICES, slice('z-calico-typha', 'calico-typha', [{ ip: '10.0.0.9', node: 'n', ready: true }], typhaPorts));
      const urls = await kubernetesEndpoints({ namespace: NS, service: 'calico-typha', kubeconfig: k.kubeconfigPath })();
      assert.deepEqual(urls, ['ws://10.0.0.9:5473']);
      assert.equal(k.stats.lists.get(SLICES), 2, 'two pages');
    } finally {
      await k.close();
    }
  });

  test('an API error rejects, naming it', LIMIT, async () => {
    kube.failNext(SLICES, 403);
    await assert.rejects(kubernetesEndpoints({ namespace: NS, service: 'calico-typha', kubeconfig: kube.kubeconfigPath })(), /403/);
  });
});

// ---- a SyncClient that follows the slices --------------------------------------------------

const seed = [
  ...Array.from({ length: 12 }, (_, i) => wep(`node-${i % 3}`, `pod-${i}`)),
  resource('IPPool', { name: 'pool-a' }, { cidr: '10.244.0.0/16', blockSize: 26 }),
];

/** A whole server on a loopback address of its own, so that replicas share one port as in a Service. */
async function replica(ip: string, port: number): Promise<TestServer & { ep: string }> {
  const s = track(await startTestServer({ serverHost: ip, serverPort: port }, seed));
  return Object.assign(s, { ep: `ws://${ip}:${port}` });
}

function recordingLogger(): ClientLogger & { warnings: { obj: any; msg?: string }[] } {
  const warnings: { obj: any; msg?: string }[] = [];
  return { warnings, debug() {}, info() {}, warn(obj, msg) { warnings.push({ obj, msg }); } };
}

test('a client follows the Service: own node first, the replica that remains, the last list while the API is down', LIMIT, async () => {
  const port = await freePort();
  const kube = track(await startKubeApi());
  const [a, b, c] = [await replica('127.0.0.2', port), await replica('127.0.0.3', port), await replica('127.0.0.4', port)];
  const typha = (eps: Ep[]) => kube.apply(SLICES, slice('calico-typha-x1', 'calico-typha', eps, [{ name: 'calico-typha', port }]));
  typha([{ ip: '127.0.0.2', node: 'node-a', ready: true }, { ip: '127.0.0.3', node: 'node-b', ready: true }, { ip: '127.0.0.4', node: 'node-c', ready: false }]);
  // A decoy: another Service's slice in the namespace pointing at c.
  kube.apply(SLICES, slice('decoy-x1', 'decoy', [{ ip: '127.0.0.4', node: 'node-b', ready: true }], [{ name: 'calico-typha', port }]));

  const log = recordingLogger();
  const client = mk({
    discover: kubernetesEndpoints({ namespace: NS, service: 'calico-typha', node: 'node-b', kubeconfig: kube.kubeconfigPath }),
    syncerType: 'felix', initialBackoffMs: 20, maxBackoffMs: 200, logger: log,
  });
  try {
    client.start();
    await client.inSync();
    assert.equal(b.app.server.connections.size, 1, 'synced on the replica on its own node');
    assert.equal(a.app.server.connections.size + c.app.server.connections.size, 0);
    assert.equal(client.stats.connects, 1, 'straight there');
    assert.equal(client.urls[0], b.ep);
    assert.deepEqual([...client.urls].sort(), [a.ep, b.ep], 'the unready endpoint and the other Service are left out');
    assertClientMatches(client, expectedView(b.ds, 'felix', ''), 'client on b');

    // b goes: the slice loses it; the client moves to a.
    typha([{ ip: '127.0.0.2', node: 'node-a', ready: true }, { ip: '127.0.0.4', node: 'node-c', ready: false }]);
    await b.close();
    await waitFor(() => a.app.server.connections.size === 1 && client.isInSync, 'the client to sync on a');

    // a goes, c becomes ready: only a fresh look at the slices can find it.
    typha([{ ip: '127.0.0.4', node: 'node-c', ready: true }]);
    const before = client.stats.discoveries;
    await a.close();
    await waitFor(() => c.app.server.connections.size === 1 && client.isInSync, 'the client to sync on c');
    assert.ok(client.stats.discoveries > before, 'the slices were read again');
    assert.deepEqual(client.urls, [c.ep]);
    assertClientMatches(client, expectedView(c.ds, 'felix', ''), 'client on c');
    assert.equal(client.stats.discoveryFailures, 0);

    // The API server goes, then c restarts: the client keeps dialling the last list it had.
    await kube.close();
    await c.close();
    await waitFor(() => client.stats.discoveryFailures >= 1, 'a failed discovery');
    assert.ok(log.warnings.some((w) => w.msg === 'discovery failed; keeping the previous list'), JSON.stringify(log.warnings));
    assert.deepEqual(client.urls, [c.ep], 'the last list is kept');
    const c2 = await replica('127.0.0.4', port);
    await waitFor(() => c2.app.server.connections.size === 1 && client.isInSync, 'the client to sync on the restarted c');
    assertClientMatches(client, expectedView(c2.ds, 'felix', ''), 'client on the restarted c');
  } finally {
    await client.stop();
  }
});

test('discover with no urls: start() does not throw; nothing found or a failure is retried with backoff', LIMIT, async () => {
  const s = track(await startTestServer({}, seed));
  const answers: (() => Promise<string[]>)[] = [
    () => Promise.reject(new Error('API server unreachable')),
    () => Promise.resolve([]),
    () => Promise.resolve([s.url]),
  ];
  const calls: number[] = [];
  const log = recordingLogger();
  const client = mk({
    discover: () => { calls.push(Date.now()); return (answers.shift() ?? (() => Promise.resolve([s.url])))(); },
    syncerType: 'felix', initialBackoffMs: 100, maxBackoffMs: 1000, logger: log,
  });
  try {
    assert.deepEqual(client.urls, []);
    client.start();
    await client.inSync();
    assert.equal(client.stats.discoveryFailures, 2);
    assert.equal(client.stats.discoveries, 1);
    assert.equal(client.stats.connects, 1, 'no dial before a server was known');
    assert.deepEqual(log.warnings.map((w) => w.msg).filter((m) => m !== 'no server to connect to (discovery has found none yet)'),
      ['discovery failed; keeping the previous list', 'discovery found no server; keeping the previous list']);
    // Backoff between the rounds: base 100 ms, then 200 ms, each jittered down to no less than half.
    assert.ok(calls[1]! - calls[0]! >= 50 - 5, `${calls[1]! - calls[0]!} ms between the first two calls`);
    assert.ok(calls[2]! - calls[1]! >= 100 - 5, `${calls[2]! - calls[1]!} ms between the next two`);
    assert.equal(s.app.server.connections.size, 1);
  } finally {
    await client.stop();
  }
  assert.throws(() => new SyncClient({ syncerType: 'felix' }), /needs url, urls or discover/);
});

test('static urls are used until discovery works; a hanging discovery times out and is aborted', LIMIT, async () => {
  const s = track(await startTestServer({}, seed));
  let signal: AbortSignal | undefined;
  const log = recordingLogger();
  const client = mk({
    url: s.url,
    discover: (sig) => { signal = sig; return new Promise<string[]>(() => {}); },
    syncerType: 'felix', initialBackoffMs: 20, maxBackoffMs: 200, connectTimeoutMs: 300, logger: log,
  });
  try {
    const t0 = Date.now();
    client.start();
    await client.inSync();
    assert.ok(Date.now() - t0 >= 290, 'the client waited for discovery first');
    assert.equal(signal?.aborted, true, 'the hanging call was aborted');
    assert.match(String(log.warnings[0]?.obj.err), /longer than 300 ms/);
    assert.equal(client.stats.discoveryFailures, 1);
    assert.deepEqual(client.urls, [s.url]);
  } finally {
    await client.stop();
  }
});

test('stop() aborts a discovery in flight', LIMIT, async () => {
  let signal: AbortSignal | undefined;
  const client = mk({ discover: (sig) => { signal = sig; return new Promise<string[]>(() => {}); }, syncerType: 'felix' });
  client.start();
  await waitFor(() => signal !== undefined, 'discover to be called');
  await client.stop();
  assert.equal(signal!.aborted, true);
  assert.equal(client.stats.connects, 0);
  assert.equal(client.stats.discoveryFailures, 0, 'a stop is not a failure');
});

test('a URL that is no URL is a logged, retried failure, not a crash', LIMIT, async () => {
  const s = track(await startTestServer({}, seed));
  const answers = [['not a url'], [s.url]];
  const log = recordingLogger();
  const client = mk({ discover: async () => answers.shift() ?? [s.url], syncerType: 'felix', initialBackoffMs: 20, maxBackoffMs: 200, logger: log });
  try {
    client.start();
    await client.inSync();
    assert.equal(client.stats.connects, 2);
    assert.match(String(log.warnings.find((w) => w.msg === 'cannot connect')?.obj.url), /not a url/);
  } finally {
    await client.stop();
  }
});
