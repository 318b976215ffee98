// Admission, rebalancing and drain: clients above the connection limit are told to come back
// later instead of being served and dropped; replicas converge on a fair share of the clients;
// SIGTERM hands every client to the other replica gradually, by digest resync.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { test } from 'node:test';
import type { SyncClient } from '../client/index.js';
import { fairShare } from '../server/rebalance.js';
import { loadResources } from '../src/datastore/seed.js';
import { encode } from '../src/protocol/codec.js';
import { CloseCode } from '../src/protocol/messages.js';
import { cleanupAfterFile, rawConnect, startTestServer, waitFor } from './support/harness.js';
import { startKubeApi } from './support/kube-api.js';
import { freePort, httpGet, metricValue } from './support/metrics.js';

const { clients, track } = cleanupAfterFile();
const SLOW = { timeout: 90_000 };
const DEMO = new URL('../examples/demo-cluster', import.meta.url).pathname;
const seed = loadResources([DEMO]);

test('the fair share: clients over ready replicas plus 10%, within the limits; alone, the upper limit', () => {
  assert.equal(fairShare(300, 3, 0, 1000), 110);
  assert.equal(fairShare(300, 3, 400, 1000), 400);
  assert.equal(fairShare(30_000, 3, 0, 10_000), 10_000);
  assert.equal(fairShare(300, 1, 0, 1000), 1000);
  assert.equal(fairShare(0, 0, 5, 1000), 1000);
});

test('over the connection limit a client gets goaway {overload, retryAfterMs} and gets in later', SLOW, async () => {
  const ts = track(await startTestServer({ maxConnectionsUpperLimit: 3, maxConnectionsLowerLimit: 0 }, seed));
  ts.app.server.opts.overloadRetryMs = 300;
  const first = Array.from({ length: 3 }, () => clients.make({ url: ts.url, syncerType: 'felix' }));
  await Promise.all(first.map((c) => c.inSync()));
  const raw = rawConnect(ts.url);
  await raw.opened;
  raw.ws.send(encode({ t: 'hello', v: 1, syncer: 'felix', node: '', clientName: 'extra', clientVersion: '0' }));
  const closed = await raw.closed;
  const goaway = raw.frames.find((f) => f.msg.t === 'goaway')?.msg;
  assert.equal(goaway?.reason, 'overload');
  assert.ok(Number(goaway?.retryAfterMs) >= 150 && Number(goaway?.retryAfterMs) <= 450, `retryAfterMs ${goaway?.retryAfterMs} is the jittered 300 ms`);
  assert.equal(closed.code, CloseCode.tryAgainLater);
  assert.ok(!raw.frames.some((f) => f.msg.t === 'snapshot'), 'no snapshot for a client sent away');

  const late = clients.make({ url: ts.url, syncerType: 'felix' });
  await waitFor(() => late.stats.connects >= 2, 'the late client to be sent away and try again');
  assert.equal(late.isInSync, false);
  await first[0]!.stop();
  await late.inSync();
  assert.equal(ts.app.server.connections.size, 3);
  assert.ok(await metricValue(ts.app.metrics.connectionsShed, { reason: 'overload' }) >= 2);
});

test('three replicas: clients that all start on one converge to a fair share, each in sync', SLOW, async () => {
  const health = [await freePort(), await freePort(), await freePort()];
  const peers = health.map((p) => `http://127.0.0.1:${p}`);
  const servers: Awaited<ReturnType<typeof startTestServer>>[] = [];
  for (const h of health) {
    servers.push(track(await startTestServer({
      healthHost: '127.0.0.1', healthPort: h, connectionRebalancingMode: 'peers', peers, k8sServicePollIntervalSecs: 0.2,
      rebalanceShedPerSec: 20, maxConnectionsLowerLimit: 0, maxConnectionsUpperLimit: 1000,
    }, seed)));
  }
  for (const s of servers) s.app.server.opts.overloadRetryMs = 100;
  const urls = servers.map((s) => s.url);
  const all: SyncClient[] = Array.from({ length: 30 }, () => clients.make({ urls, url: urls[0]!, syncerType: 'felix' }));
  await Promise.all(all.map((c) => c.inSync()));
  const counts = () => servers.map((s) => s.app.server.connections.size);
  // At most the fair share each (11 of 30 over 3): 10/10/10 and 11/8/11 are both fair.
  await waitFor(() => counts().every((n) => n <= 11) && all.every((c) => c.isInSync), 'every replica at or under its fair share', 30_000);
  assert.equal(counts().reduce((a, b) => a + b, 0), 30, `counts ${counts().join('/')}`);
  await waitFor(() => servers.every((s) => s.app.server.maxConnections === 11), `every limit at the fair share 11 (${servers.map((s) => s.app.server.maxConnections).join('/')})`);
  assert.ok(all.filter((c) => c.stats.digests > 0).length >= 15, 'the moved clients resynced by digest');
  // Each knows the others' client URLs (from their /readyz), offered in its goaways.
  await waitFor(() => servers.every((s, i) => JSON.stringify([...s.app.server.peers].sort()) === JSON.stringify(urls.filter((_, j) => j !== i).sort())), 'every replica to know its peers');
  await clients.stopAll();
});

test('kubernetes mode: the replicas come from the Service\'s EndpointSlices, and the clients spread over them', SLOW, async () => {
  const api = await startKubeApi();
  try {
    const [port, healthPort] = [await freePort(), await freePort()];
    const hosts = ['127.0.0.2', '127.0.0.3'];
    api.apply('/apis/discovery.k8s.io/v1/endpointslices', {
      apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
      metadata: { name: 'calico-fanout-x7k2p', namespace: 'calico-system', labels: { 'kubernetes.io/service-name': 'calico-fanout' } },
      addressType: 'IPv4',
      endpoints: hosts.map((ip, i) => ({ addresses: [ip], conditions: { ready: true }, nodeName: `node-${i}` })),
      ports: [{ name: 'calico-typha', port, protocol: 'TCP' }],
    });
    const servers: Awaited<ReturnType<typeof startTestServer>>[] = [];
    for (const host of hosts) {
      servers.push(track(await startTestServer({
        serverHost: host, serverPort: port, healthHost: host, healthPort, prometheusMetricsPort: -1,
        connectionRebalancingMode: 'kubernetes', kubeconfig: api.kubeconfigPath, k8sServicePollIntervalSecs: 0.2,
        rebalanceShedPerSec: 20, maxConnectionsLowerLimit: 0,
      }, seed)));
    }
    const urls = hosts.map((h) => `ws://${h}:${port}`);
    const all = Array.from({ length: 20 }, () => clients.make({ urls, url: urls[0]!, syncerType: 'felix' }));
    await Promise.all(all.map((c) => c.inSync()));
    const counts = () => servers.map((s) => s.app.server.connections.size);
    // The limits follow the rebalancer's next poll of the slices: waited for, then checked.
    const limits = () => servers.map((s) => s.app.server.maxConnections);
    await waitFor(() => counts().every((n) => n >= 9 && n <= 11) && all.every((c) => c.isInSync) && limits().every((l) => l === 11),
      `a fair share each (now ${counts().join('/')}, limits ${limits().join('/')})`, 30_000);
    assert.deepEqual(limits(), [11, 11]);
    assert.deepEqual(servers[0]!.app.server.peers, [urls[1]], 'the other replica, as clients reach it');
    await clients.stopAll();
  } finally {
    await api.close();
  }
});

test('SIGTERM: readiness drops at once, every client moves to the other replica by digest, the process exits within the timeout', SLOW, async () => {
  const [port, healthPort] = [await freePort(), await freePort()];
  const a = spawn(process.execPath, ['bin/calico-fanout.js', 'serve', '--server-host', '127.0.0.1', '--server-port', String(port),
    '--health-host', '127.0.0.1', '--health-port', String(healthPort), '--metrics-port', '-1', '--log-level', 'WARNING'],
  { stdio: 'ignore', env: { ...process.env, TYPHA_SHUTDOWNTIMEOUTSECS: '4' } });
  const exited = once(a, 'exit');
  try {
    const deadline = Date.now() + 60_000;
    while ((await httpGet(healthPort, '/readyz').catch(() => ({ status: 0 }))).status !== 200) {
      if (Date.now() > deadline) throw new Error('A not ready within 60 s');
      await new Promise((r) => setTimeout(r, 100));
    }
    const b = track(await startTestServer({}, seed));
    const aUrl = `ws://127.0.0.1:${port}`;
    const all = Array.from({ length: 200 }, () => clients.make({ urls: [aUrl, b.url], url: aUrl, syncerType: 'felix', compression: [] }));
    await Promise.all(all.map((c) => c.inSync()));
    const firstSync = all[0]!.stats.bytesReceived;
    const before = all.map((c) => c.stats.bytesReceived);

    const t0 = Date.now();
    a.kill('SIGTERM');
    // Not ready from the start of the drain: A answers 503 (draining) while it is still sending its
    // clients away. Polled without a fixed delay: how soon A handles the signal depends on the
    // machine's load, what it answers once it has does not. (Once A has exited, httpGet throws.)
    let ready = await httpGet(healthPort, '/readyz');
    while (ready.status === 200) ready = await httpGet(healthPort, '/readyz');
    assert.equal(ready.status, 503, 'not ready from the start of the drain');
    assert.equal(JSON.parse(ready.body).draining, true);
    assert.ok(b.app.server.connections.size < 200, `readiness dropped while A was still draining (${b.app.server.connections.size} clients on b already)`);
    await waitFor(() => b.app.server.connections.size === 200 && all.every((c) => c.isInSync), 'every client on b', 30_000);
    const [code] = await exited;
    assert.equal(code, 0);
    assert.ok(Date.now() - t0 < 4000 + 5000, `A exited ${Date.now() - t0} ms after SIGTERM (timeout 4 s)`);
    for (const [i, c] of all.entries()) {
      assert.equal(c.stats.digests, 1, 'moved by digest resync');
      assert.ok(c.stats.bytesReceived - before[i]! < firstSync / 10, `${c.stats.bytesReceived - before[i]!} B to move vs ${firstSync} B first`);
    }
    assert.equal(await metricValue(b.app.metrics.resyncs, { mode: 'digest' }), 200);
  } finally {
    if (a.exitCode === null) a.kill('SIGKILL');
    await clients.stopAll();
  }
});
