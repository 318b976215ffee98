// The HTTP side: /livez and /readyz (and Typha's /liveness, /readiness) follow the datastore's
// sync state; /metrics serves Prometheus text; both can share one port. A datastore that takes
// its time to reach in-sync is simulated by a test adapter that says in-sync only when told.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { SyncStatus } from '../client/index.js';
import { startApp, type App } from '../cmd/app.js';
import { loadConfig, type Config } from '../src/config.js';
import type { Datastore, DatastoreEvent, DatastoreSink } from '../src/datastore/datastore.js';
import { MemoryDatastore } from '../src/datastore/memory.js';
import { silentLogger } from '../src/logging.js';
import { assertClientMatches, expectedView } from './support/expected.js';
import { cleanupAfterFile, LIMIT, node, resource, sleep, startTestServer, waitFor, wep } from './support/harness.js';
import { freePort, httpGet } from './support/metrics.js';

const { clients, track } = cleanupAfterFile();

const seed = [
  ...Array.from({ length: 10 }, (_, i) => wep(`node-${i % 2}`, `pod-${i}`)),
  node('node-0'), node('node-1'),
  resource('IPPool', { name: 'pool-a' }, { cidr: '10.244.0.0/16', blockSize: 26 }),
];

/** A datastore that lists its content at start but reports in-sync only when the test says so. */
class GatedDatastore implements Datastore {
  readonly name = 'gated';
  private sink: DatastoreSink | undefined;
  private revision = 0;
  constructor(private readonly initial: readonly { key: string; value: unknown }[]) {}

  async start(sink: DatastoreSink): Promise<void> {
    this.sink = sink;
    sink.onStatus('resync-in-progress');
    this.write(this.initial);
  }

  async stop(): Promise<void> { this.sink = undefined; }

  write(ops: readonly { key: string; value: unknown }[]): void {
    const events: DatastoreEvent[] = ops.map(({ key, value }) => ({ key, value, revision: String(++this.revision) }));
    this.sink?.onUpdates(events);
  }

  status(s: SyncStatus): void { this.sink?.onStatus(s); }
}

function testConfig(overrides: Partial<Config> = {}): Config {
  return {
    ...loadConfig({ env: {} }),
    serverHost: '127.0.0.1', serverPort: -1,
    healthHost: '127.0.0.1', healthPort: -1,
    prometheusMetricsHost: '127.0.0.1', prometheusMetricsPort: -1,
    ...overrides,
  };
}

const json = (body: string) => JSON.parse(body) as Record<string, unknown>;

test('readiness follows the datastore: 503 until in-sync, 200 after; liveness throughout', LIMIT, async () => {
  const ds = new GatedDatastore(seed);
  const app: App = track(await startApp(testConfig({ statusPageEnabled: true }), silentLogger, ds));
  try {
    const hp = app.ports.health!;
    assert.ok(hp > 0 && hp !== app.ports.server);

    for (const path of ['/readyz', '/readiness', '/readyz?verbose=1']) {
      const r = await httpGet(hp, path);
      assert.equal(r.status, 503, `${path} while resyncing`);
      assert.match(String(r.headers['content-type']), /application\/json/);
      const body = json(r.body);
      assert.equal(body.ready, false);
      assert.equal(body.status, 'resync-in-progress');
      assert.equal(body.datastore, 'gated');
    }
    for (const path of ['/livez', '/liveness']) {
      const r = await httpGet(hp, path);
      assert.equal(r.status, 200, `${path} while resyncing`);
      assert.equal(r.body, 'ok\n');
    }
    // The same status as a gauge, one series per status (what the Grafana dashboard shows).
    const status = async () => {
      const body = (await httpGet(app.ports.metrics!, '/metrics')).body;
      return ['wait-for-datastore', 'resync-in-progress', 'in-sync'].map((st) => sample(body, 'calico_fanout_datastore_status', `{status="${st}"}`));
    };
    assert.deepEqual(await status(), [0, 1, 0], 'calico_fanout_datastore_status while resyncing');
    for (const path of ['/metrics', '/readyzz', '/livez/extra']) assert.equal((await httpGet(hp, path)).status, 404, `${path} on the health port`);
    const page = await httpGet(hp, '/');
    assert.equal(page.status, 200, 'the status page on the health port');
    assert.match(page.body, /resync-in-progress/);

    // A client connecting now hears the status but gets no data: the list is not whole yet, and a
    // snapshot of part of it would make a client with a cache delete the rest.
    const statuses: SyncStatus[] = [];
    const url = `ws://127.0.0.1:${app.ports.server}`;
    const c = clients.make({ url, syncerType: 'felix', onStatus: (s) => statuses.push(s) });
    let synced = false;
    void c.inSync().then(() => { synced = true; });
    await waitFor(() => statuses.length > 0, 'the client to receive a status');
    assert.deepEqual(statuses, ['resync-in-progress']);
    const late = wep('node-1', 'late-pod');
    ds.write([late]);
    await sleep(200); // nothing says in-sync, so nothing may resolve
    assert.equal(c.size, 0, 'no data before the datastore is in sync');
    assert.equal(synced, false, 'inSync() waits for the datastore');
    assert.equal(c.isInSync, false);
    assert.equal((await httpGet(hp, '/readyz')).status, 503);
    assert.equal(json((await httpGet(hp, '/readyz')).body).connections, 1);

    ds.status('in-sync');
    await waitFor(() => synced, 'inSync() to resolve once the datastore is in sync');
    assert.ok(c.isInSync);
    assert.deepEqual(statuses, ['resync-in-progress', 'in-sync']);
    const ready = await httpGet(hp, '/readyz');
    assert.equal(ready.status, 200);
    assert.deepEqual(await status(), [0, 0, 1], 'calico_fanout_datastore_status in sync');
    assert.equal(json(ready.body).ready, true);
    assert.equal(json(ready.body).status, 'in-sync');
    assert.equal((await httpGet(hp, '/readiness')).status, 200);
    assert.equal((await httpGet(hp, '/livez')).status, 200);
    // Per view: ready with the store, plus the view's size; an unknown view is 404.
    const felix = await httpGet(hp, '/readyz?view=felix');
    assert.equal(felix.status, 200);
    assert.equal(json(felix.body).view, 'felix');
    assert.equal(json(felix.body).keys, expectedView(new MemoryDatastore([...seed, late]), 'felix', '').size);
    assert.equal((await httpGet(hp, '/readyz?view=calico')).status, 404);
    // Liveness follows the server's own timers: stopped ones (here faked) make the process not live.
    const tick = app.server.lastTickAt;
    app.server.lastTickAt = 0;
    const dead = await httpGet(hp, '/livez');
    assert.equal(dead.status, 503);
    assert.match(dead.body, /server timers stopped/);
    app.server.lastTickAt = tick;
    assert.equal((await httpGet(hp, '/livez')).status, 200);
    assertClientMatches(c, expectedView(new MemoryDatastore([...seed, late]), 'felix', ''), 'client after in-sync');

    // An adapter that resyncs says so again: not ready, and clients hear it.
    ds.status('resync-in-progress');
    await waitFor(() => statuses.length === 3, 'the client to hear the new status');
    assert.equal(statuses[2], 'resync-in-progress');
    assert.equal((await httpGet(hp, '/readyz')).status, 503);
    assert.equal((await httpGet(hp, '/livez')).status, 200);
  } finally {
    await clients.stopAll();
    await app.close();
  }
});

function sample(text: string, name: string, labels = ''): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

test('/metrics serves Prometheus text with the server\'s and the process\'s metrics', LIMIT, async () => {
  const ts = track(await startTestServer({}, seed));
  try {
    const c = clients.make({ url: ts.url, syncerType: 'felix' });
    await c.inSync();
    const mp = ts.app.ports.metrics!;
    assert.ok(mp > 0 && mp !== ts.app.ports.health, 'metrics on a port of its own');
    const r = await httpGet(mp, '/metrics');
    assert.equal(r.status, 200);
    assert.match(String(r.headers['content-type']), /^text\/plain/);
    assert.match(r.body, /^# HELP typha_connections_accepted /m);
    assert.match(r.body, /^# TYPE typha_connections_accepted counter$/m);
    assert.equal(sample(r.body, 'typha_connections_accepted'), 1);
    assert.equal(sample(r.body, 'typha_cache_size', '{syncer="felix"}'), seed.length + 1, 'the seed and the built-in default-allow profile');
    assert.equal(sample(r.body, 'typha_cache_size', '{syncer="tunnel-ip-allocation"}'), 3, 'pool and both nodes, counted for all nodes');
    assert.equal(sample(r.body, 'calico_fanout_history_bytes'), 0, 'no tombstones yet');
    // Present is the point: prom-client counts CPU since the registry was made, which a fast
    // first scrape can see as 0.
    assert.ok((sample(r.body, 'process_cpu_user_seconds_total') ?? -1) >= 0, 'process metrics are collected');
    assert.match(r.body, /^typha_connections_streaming\{syncer="felix"\} 1$/m);

    ts.ds.delete(seed[0]!.key);
    await waitFor(() => !c.get(seed[0]!.key), 'the deletion reaches the client');
    const r2 = await httpGet(mp, '/metrics?x=1');
    assert.equal(sample(r2.body, 'typha_cache_size', '{syncer="felix"}'), seed.length - 1 + 1);
    assert.ok((sample(r2.body, 'calico_fanout_history_bytes') ?? 0) > 0, 'a tombstone is history');

    for (const path of ['/livez', '/readyz', '/', '/metricsz']) assert.equal((await httpGet(mp, path)).status, 404, `${path} on the metrics port`);
  } finally {
    await clients.stopAll();
    await ts.close();
  }
});

test('health and metrics configured on the same port share one listener', LIMIT, async () => {
  const port = await freePort();
  const app = track(await startApp(testConfig({ healthPort: port, prometheusMetricsPort: port }), silentLogger, new MemoryDatastore(seed)));
  try {
    assert.equal(app.ports.health, port);
    assert.equal(app.ports.metrics, port);
    assert.equal((await httpGet(port, '/livez')).status, 200);
    assert.equal((await httpGet(port, '/liveness')).status, 200);
    const ready = await httpGet(port, '/readyz');
    assert.equal(ready.status, 200);
    assert.equal(json(ready.body).status, 'in-sync');
    const m = await httpGet(port, '/metrics');
    assert.equal(m.status, 200);
    assert.equal(sample(m.body, 'typha_cache_size', '{syncer="felix"}'), seed.length + 1, 'and the built-in default-allow profile');
    assert.equal((await httpGet(port, '/nope')).status, 404);
  } finally {
    await app.close();
  }
});

test('a disabled endpoint gets no listener', LIMIT, async () => {
  const app = track(await startApp(testConfig({ healthEnabled: false }), silentLogger, new MemoryDatastore(seed)));
  try {
    assert.equal(app.ports.health, undefined);
    assert.ok(app.ports.metrics);
    assert.equal((await httpGet(app.ports.metrics!, '/readyz')).status, 404, 'health paths are not served from the metrics port');
    assert.equal((await httpGet(app.ports.metrics!, '/metrics')).status, 200);
  } finally {
    await app.close();
  }
});

test('a draining server is not ready, while its health port still answers', LIMIT, async () => {
  const app = track(await startApp(testConfig(), silentLogger, new MemoryDatastore(seed)));
  try {
    const hp = app.ports.health!;
    assert.equal((await httpGet(hp, '/readyz')).status, 200);
    const c = clients.make({ url: `ws://127.0.0.1:${app.ports.server}`, syncerType: 'felix' });
    await c.inSync();
    const closing = app.server.close('shutdown', 1000);
    const r = await httpGet(hp, '/readyz');
    assert.equal(r.status, 503);
    assert.equal(json(r.body).draining, true);
    assert.equal((await httpGet(hp, '/livez')).status, 200);
    await c.stop();
    await closing;
  } finally {
    await app.close();
  }
});
