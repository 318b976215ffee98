// Where the status page is served, through the real wiring of `serve`: it lists clients'
// addresses, identities and nodes, so only on the health port, only when statusPageEnabled is
// set, and never on the metrics or client port; /livez and /readyz answer either way.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { startApp } from '../cmd/app.js';
import { loadConfig } from '../src/config.js';
import { MemoryDatastore } from '../src/datastore/memory.js';
import { silentLogger } from '../src/logging.js';
import type { StatusData } from '../server/status-page.js';
import { cleanupAfterFile, LIMIT, node, startTestServer, waitFor, wep, type TestServer } from './support/harness.js';
import { freePort, httpGet } from './support/metrics.js';

const { clients, track } = cleanupAfterFile();

const seed = [wep('node-0', 'pod-0'), node('node-0')];
const PAGE = ['/', '/status.json', '/?refresh=1'];
const NODE = 'status-setting-node-7';

/** A server of `serve`'s wiring with one streaming client, ready. */
async function serverWithClient(statusPageEnabled: boolean): Promise<TestServer> {
  const ts = track(await startTestServer({ statusPageEnabled }, seed));
  await waitFor(() => ts.app.store.status === 'in-sync', 'the store to be in sync');
  await clients.make({ url: ts.url, syncerType: 'felix', node: NODE, clientName: 'setting-probe' }).inSync();
  return ts;
}

async function assertProbesAnswer(port: number): Promise<void> {
  assert.equal((await httpGet(port, '/livez')).status, 200, '/livez');
  const ready = await httpGet(port, '/readyz');
  assert.equal(ready.status, 200, '/readyz');
  assert.equal((JSON.parse(ready.body) as { ready: boolean }).ready, true);
}

describe('the status page is opt-in', () => {
  test('off (the default): 404 for the page and status.json on the health port; the probes answer', LIMIT, async () => {
    assert.equal(loadConfig({ env: {} }).statusPageEnabled, false, 'off by default');
    const ts = await serverWithClient(false);
    const { health, metrics, server } = ts.app.ports;
    for (const path of PAGE) {
      const r = await httpGet(health!, path);
      assert.equal(r.status, 404, `${path} on the health port`);
      assert.ok(!r.body.includes(NODE), `${path}: no client's node in the answer`);
    }
    for (const path of PAGE) assert.equal((await httpGet(metrics!, path)).status, 404, `${path} on the metrics port`);
    for (const path of PAGE) assert.notEqual((await httpGet(server, path)).status, 200, `${path} on the client port`);
    await assertProbesAnswer(health!);
  });

  test('on: served on the health port, never on the metrics or client port', LIMIT, async () => {
    const ts = await serverWithClient(true);
    const { health, metrics, server } = ts.app.ports;
    const page = await httpGet(health!, '/');
    assert.equal(page.status, 200, 'the page on the health port');
    assert.match(String(page.headers['content-type']), /^text\/html/);
    assert.ok(page.body.includes(NODE), 'the page lists the client\'s node');
    const json = await httpGet(health!, '/status.json');
    assert.equal(json.status, 200, 'status.json on the health port');
    const data = JSON.parse(json.body) as StatusData;
    assert.deepEqual(data.clients.map((c) => c.node), [NODE]);

    for (const path of PAGE) {
      const m = await httpGet(metrics!, path);
      assert.equal(m.status, 404, `${path} on the metrics port`);
      assert.ok(!m.body.includes(NODE), `${path} on the metrics port: no client's node`);
      // The client port answers plain HTTP with 426 (upgrade to WebSocket), nothing else.
      const c = await httpGet(server, path);
      assert.equal(c.status, 426, `${path} on the client port`);
      assert.ok(!c.body.includes(NODE), `${path} on the client port: no client's node`);
    }
    assert.equal((await httpGet(metrics!, '/metrics')).status, 200, 'metrics still served');
    await assertProbesAnswer(health!);
  });

  test('on, but health and metrics share a listener: no page there (loadConfig refuses it outright)', LIMIT, async () => {
    const port = await freePort();
    const config = {
      ...loadConfig({ env: {} }),
      serverHost: '127.0.0.1', serverPort: -1, healthHost: '127.0.0.1', healthPort: port,
      prometheusMetricsHost: '127.0.0.1', prometheusMetricsPort: port, statusPageEnabled: true,
    };
    assert.throws(() => loadConfig({ env: { TYPHA_STATUSPAGEENABLED: 'true', TYPHA_HEALTHPORT: String(port), TYPHA_PROMETHEUSMETRICSPORT: String(port) } }), /metrics port/);
    // A Config built by hand skips loadConfig's rules; the wiring still keeps the page off a scraped port.
    const app = track(await startApp(config, silentLogger, new MemoryDatastore(seed)));
    assert.equal(app.ports.health, port);
    assert.equal(app.ports.metrics, port);
    for (const path of PAGE) assert.equal((await httpGet(port, path)).status, 404, `${path} on the shared port`);
    assert.equal((await httpGet(port, '/metrics')).status, 200);
    await waitFor(() => app.store.status === 'in-sync', 'the store to be in sync');
    await assertProbesAnswer(port);
  });
});
