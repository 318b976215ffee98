// The Kubernetes API contract server (support/kube-api.ts) over real HTTP: chunked lists,
// watch resume, bookmarks, 410 both ways, clean and unclean stream ends, restarts, injected
// failures, auth, and @kubernetes/client-node 1.4.0 as a client. The Kubernetes datastore's tests
// trust this server to behave as the API docs say; these tests are what earns that trust.
import assert from 'node:assert/strict';
import { get as httpGet, type IncomingHttpHeaders } from 'node:http';
import { readFileSync } from 'node:fs';
import { after, test } from 'node:test';
import { CoreV1Api, KubeConfig, Watch } from '@kubernetes/client-node';
import { startKubeApi, type KubeApiOptions, type KubeApiServer } from './support/kube-api.js';

const LIMIT = { timeout: 10_000 };
const PODS = '/api/v1/pods';
const NODES = '/api/v1/nodes';
const IPPOOLS = '/apis/crd.projectcalico.org/v1/ippools';

const servers = new Set<KubeApiServer>();
after(async () => { await Promise.all([...servers].map((s) => s.close())); });

async function server(opts?: KubeApiOptions): Promise<KubeApiServer> {
  const s = await startKubeApi(opts);
  servers.add(s);
  return s;
}

const pod = (namespace: string, name: string, nodeName = 'n1') =>
  ({ apiVersion: 'v1', kind: 'Pod', metadata: { namespace, name }, spec: { nodeName } });
const k8sNode = (name: string, labels: Record<string, string> = {}) =>
  ({ apiVersion: 'v1', kind: 'Node', metadata: { name, labels }, spec: {} });

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(cond: () => boolean, what: string, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

// ---- a plain HTTP client -----------------------------------------------------------------

interface Reply { status: number; headers: IncomingHttpHeaders; body: any }

function getJson(base: string, path: string, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    httpGet(base + path, { headers, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { text += c; });
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text ? JSON.parse(text) : undefined }));
    }).on('error', reject);
  });
}

interface WatchEvent { type: string; object: any }
interface RawWatch {
  status: number;
  headers: IncomingHttpHeaders;
  events: WatchEvent[];
  /** The body as the reader got it, one Buffer per 'data' event. */
  chunks: Buffer[];
  /** complete: the chunked terminator arrived (a clean end) rather than a cut connection. */
  ended: Promise<{ complete: boolean }>;
  close(): void;
}

/** A watch request; `response` settles when the headers arrive (never, on a stalled server). */
function openWatch(base: string, path: string, headers: Record<string, string> = {}): { response: Promise<RawWatch>; abort(): void } {
  const req = httpGet(base + path, { headers, agent: false });
  const response = new Promise<RawWatch>((resolve, reject) => {
    req.on('error', reject);
    req.on('response', (res) => {
      const events: WatchEvent[] = [];
      const chunks: Buffer[] = [];
      let pending = Buffer.alloc(0); // bytes: a split may fall inside a UTF-8 sequence
      res.on('data', (c: Buffer) => {
        chunks.push(c);
        pending = Buffer.concat([pending, c]);
        for (let nl = pending.indexOf(10); nl >= 0; nl = pending.indexOf(10)) {
          events.push(JSON.parse(pending.subarray(0, nl).toString()));
          pending = pending.subarray(nl + 1);
        }
      });
      res.on('error', () => {});
      const ended = new Promise<{ complete: boolean }>((r) => res.on('close', () => r({ complete: res.complete && pending.length === 0 })));
      resolve({ status: res.statusCode!, headers: res.headers, events, chunks, ended, close: () => req.destroy() });
    });
  });
  return { response, abort: () => req.destroy() };
}

const watch = (base: string, path: string, headers?: Record<string, string>) => openWatch(base, path, headers).response;

/** "TYPE ns/name rv" per event, the form the assertions compare. */
const summary = (events: WatchEvent[]) => events.map((e) => {
  const m = e.object.metadata;
  return `${e.type} ${m.namespace ? `${m.namespace}/` : ''}${m.name ?? ''} ${m.resourceVersion}`.replace('  ', ' ');
});
const names = (r: Reply) => r.body.items.map((o: any) => `${o.metadata.namespace}/${o.metadata.name}`);

// ---- list --------------------------------------------------------------------------------

test('a chunked list comes from the first page\'s snapshot, whatever is written between pages', LIMIT, async () => {
  const api = await server();
  for (const [ns, name] of [['b', 'p2'], ['a', 'p1'], ['b', 'p1'], ['a', 'p2'], ['c', 'p1']] as const) api.create(PODS, pod(ns, name));
  api.create(NODES, k8sNode('n1'));

  const p1 = await getJson(api.url, `${PODS}?limit=2`);
  assert.equal(p1.status, 200);
  assert.equal(p1.body.kind, 'PodList');
  assert.equal(p1.body.apiVersion, 'v1');
  const rv = p1.body.metadata.resourceVersion;
  assert.equal(rv, '6', 'the list RV is the global counter, node write included');
  assert.deepEqual(names(p1), ['a/p1', 'a/p2'], 'sorted by namespace, then name');
  assert.equal(p1.body.metadata.remainingItemCount, 3);
  assert.equal(typeof p1.body.metadata.continue, 'string');
  assert.equal(p1.body.items[0].kind, 'Pod');
  assert.equal(p1.body.items[0].metadata.resourceVersion, '2');

  // Between pages: an insert that sorts into page 2, a change in page 2, a deletion in page 3.
  api.create(PODS, pod('b', 'p0'));
  api.update(PODS, pod('b', 'p2', 'n9'));
  api.remove(PODS, 'c', 'p1');

  const p2 = await getJson(api.url, `${PODS}?limit=2&continue=${encodeURIComponent(p1.body.metadata.continue)}`);
  assert.deepEqual(names(p2), ['b/p1', 'b/p2']);
  assert.equal(p2.body.items[1].spec.nodeName, 'n1', 'the state as of the snapshot');
  assert.equal(p2.body.metadata.resourceVersion, rv, 'every page carries the first page\'s RV');
  const p3 = await getJson(api.url, `${PODS}?limit=2&continue=${encodeURIComponent(p2.body.metadata.continue)}`);
  assert.deepEqual(names(p3), ['c/p1'], 'deleted after the snapshot, still in it');
  assert.equal(p3.body.metadata.continue, undefined);
  assert.equal(p3.body.metadata.remainingItemCount, undefined);
  assert.equal(p3.body.metadata.resourceVersion, rv);

  const now = await getJson(api.url, PODS);
  assert.deepEqual(names(now), ['a/p1', 'a/p2', 'b/p0', 'b/p1', 'b/p2']);
  assert.equal(now.body.metadata.resourceVersion, '9');
  assert.equal(now.body.metadata.continue, undefined);

  // Namespaced views and single objects.
  assert.deepEqual(names(await getJson(api.url, '/api/v1/namespaces/b/pods')), ['b/p0', 'b/p1', 'b/p2']);
  const one = await getJson(api.url, '/api/v1/namespaces/b/pods/p2');
  assert.equal(one.status, 200);
  assert.equal(one.body.spec.nodeName, 'n9');
  const missing = await getJson(api.url, '/api/v1/namespaces/b/pods/nope');
  assert.equal(missing.status, 404);
  assert.equal(missing.body.kind, 'Status');
  assert.equal(missing.body.reason, 'NotFound');
  assert.equal(missing.body.code, 404);
  assert.equal((await getJson(api.url, '/api/v1/nodes/n1')).body.metadata.name, 'n1');
  assert.equal((await getJson(api.url, '/api/v1/pods/p1')).status, 404, 'a namespaced object is not found by the cluster path');

  // Tokens: a compaction expires them; an unknown one is expired too.
  const q1 = await getJson(api.url, `${PODS}?limit=1`);
  api.compact();
  for (const token of [q1.body.metadata.continue, 'bogus']) {
    const r = await getJson(api.url, `${PODS}?limit=1&continue=${encodeURIComponent(token)}`);
    assert.equal(r.status, 410);
    assert.equal(r.body.reason, 'Expired');
    assert.equal(r.body.code, 410);
  }
  const sel = await getJson(api.url, `${PODS}?labelSelector=app%3Dx`);
  assert.equal(sel.status, 400, 'selectors are refused, not ignored');
  assert.equal(sel.body.reason, 'BadRequest');
  assert.equal(api.stats.lists.get(PODS), 9, 'namespaced lists count under the cluster-wide path');
  assert.equal(api.stats.gone, 2);
});

test('the JS API: create/update/remove errors, server-set metadata, list and get return copies', LIMIT, async () => {
  const api = await server();
  const created = api.create(IPPOOLS, { metadata: { name: 'pool-1' }, spec: { cidr: '10.0.0.0/16' } });
  assert.equal(created.apiVersion, 'crd.projectcalico.org/v1', 'apiVersion from the path');
  assert.equal(created.kind, 'IPPool');
  assert.equal(created.metadata.resourceVersion, '1');
  assert.match(created.metadata.uid, /^[0-9a-f-]{36}$/);
  assert.match(created.metadata.creationTimestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  assert.throws(() => api.create(IPPOOLS, { metadata: { name: 'pool-1' } }), (e: any) => e.code === 409 && e.reason === 'AlreadyExists');
  assert.throws(() => api.update(IPPOOLS, { metadata: { name: 'nope' } }), (e: any) => e.code === 404);
  assert.throws(() => api.remove(IPPOOLS, undefined, 'nope'), (e: any) => e.code === 404);
  assert.throws(() => api.create('/api/v1/namespaces/a/pods', pod('a', 'x')), /cluster-wide/);
  created.spec.cidr = 'mutated';
  assert.equal(api.get(IPPOOLS, undefined, 'pool-1').spec.cidr, '10.0.0.0/16', 'the store is not the caller\'s object');
  const updated = api.apply(IPPOOLS, { metadata: { name: 'pool-1' }, spec: { cidr: '10.1.0.0/16' } });
  assert.equal(updated.metadata.resourceVersion, '2');
  assert.equal(updated.metadata.uid, created.metadata.uid, 'uid survives updates');
  api.apply(IPPOOLS, { metadata: { name: 'pool-2' }, spec: {} });
  api.remove(IPPOOLS, undefined, 'pool-1');
  assert.equal(api.get(IPPOOLS, undefined, 'pool-1'), undefined);
  assert.deepEqual(api.list(IPPOOLS).map((o) => o.metadata.name), ['pool-2']);
  api.create(PODS, pod('b', 'p1'));
  api.create(PODS, pod('a', 'p1'));
  assert.deepEqual(api.list(PODS).map((o) => `${o.metadata.namespace}/${o.metadata.name}`), ['a/p1', 'b/p1']);
  assert.deepEqual(api.list(PODS, 'b').map((o) => o.metadata.namespace), ['b']);
  assert.equal(api.resourceVersion, 6);
  const list = await getJson(api.url, IPPOOLS);
  assert.equal(list.body.kind, 'IPPoolList');
  assert.equal(list.body.apiVersion, 'crd.projectcalico.org/v1');
});

// ---- watch -------------------------------------------------------------------------------

test('a watch from a list\'s RV gets exactly the later events, in order, then live ones', LIMIT, async () => {
  const api = await server();
  const p1 = api.create(PODS, pod('a', 'p1'));
  api.create(PODS, pod('a', 'p2'));
  const rv = (await getJson(api.url, PODS)).body.metadata.resourceVersion;
  api.update(PODS, pod('a', 'p1', 'n2')); // 3
  api.create(NODES, k8sNode('n1')); // 4: another collection
  api.create(PODS, pod('b', 'p3')); // 5
  api.remove(PODS, 'a', 'p2'); // 6

  const all = await watch(api.url, `${PODS}?watch=true&resourceVersion=${rv}`);
  const inB = await watch(api.url, `/api/v1/namespaces/b/pods?watch=1&resourceVersion=${rv}`);
  assert.equal(all.status, 200);
  assert.equal(all.headers['content-type'], 'application/json');
  assert.equal(all.headers['transfer-encoding'], 'chunked');
  await until(() => all.events.length >= 3, 'replayed events');
  api.create(PODS, pod('b', 'p4')); // 7: live
  await until(() => all.events.length >= 4 && inB.events.length >= 2, 'live event');
  await sleep(30); // anything extra would show up by now

  assert.deepEqual(summary(all.events), ['MODIFIED a/p1 3', 'ADDED b/p3 5', 'DELETED a/p2 6', 'ADDED b/p4 7']);
  assert.deepEqual(summary(inB.events), ['ADDED b/p3 5', 'ADDED b/p4 7']);
  const deleted = all.events[2]!.object;
  assert.equal(deleted.spec.nodeName, 'n1', 'DELETED carries the final state');
  assert.equal(deleted.kind, 'Pod');
  assert.equal(all.events[0]!.object.metadata.uid, p1.metadata.uid);

  // RV unset or "0": synthetic ADDED for the current state, then live.
  for (const q of ['&resourceVersion=0', '']) {
    const w = await watch(api.url, `${PODS}?watch=true${q}`);
    await until(() => w.events.length >= 3, 'synthetic ADDED');
    api.update(PODS, pod('a', 'p1', 'n3'));
    await until(() => w.events.length >= 4, 'live after synthetic');
    assert.deepEqual(summary(w.events.slice(0, 3)).map((s) => s.split(' ').slice(0, 2).join(' ')), ['ADDED a/p1', 'ADDED b/p3', 'ADDED b/p4']);
    assert.equal(w.events[3]!.type, 'MODIFIED');
    w.close();
  }

  // Readers must cope with a line split across reads: some chunk ends inside a line.
  assert.ok(all.chunks.some((c) => c[c.length - 1] !== 10), 'a JSON line arrived in two pieces');
  assert.equal(api.stats.watches.get(PODS), 4);
  assert.equal((await getJson(api.url, `${PODS}?watch=true&resourceVersion=x1`)).status, 400);
});

test('bookmarks: on demand to watches that asked, none to the others; periodic ones too', LIMIT, async () => {
  const api = await server();
  api.create(PODS, pod('a', 'p1'));
  const rv = String(api.resourceVersion);
  const asked = await watch(api.url, `${PODS}?watch=true&resourceVersion=${rv}&allowWatchBookmarks=true`);
  const plain = await watch(api.url, `${PODS}?watch=true&resourceVersion=${rv}`);
  api.create(PODS, pod('a', 'p2')); // 2
  api.bookmark();
  api.create(PODS, pod('a', 'p3')); // 3
  await until(() => asked.events.length >= 3 && plain.events.length >= 2, 'events');
  assert.deepEqual(asked.events.map((e) => e.type), ['ADDED', 'BOOKMARK', 'ADDED']);
  assert.deepEqual(asked.events[1]!.object, { kind: 'Pod', apiVersion: 'v1', metadata: { resourceVersion: '2' } });
  assert.deepEqual(plain.events.map((e) => e.type), ['ADDED', 'ADDED'], 'ordered after the bookmark, so none was sent');
  assert.equal(api.stats.bookmarks, 1);

  const ticking = await server({ bookmarkIntervalMs: 20 });
  const t = await watch(ticking.url, `${IPPOOLS}?watch=true&allowWatchBookmarks=true`);
  const u = await watch(ticking.url, `${IPPOOLS}?watch=true`);
  await until(() => t.events.length >= 2, 'periodic bookmarks');
  assert.ok(t.events.every((e) => e.type === 'BOOKMARK'));
  assert.equal(t.events[0]!.object.kind, 'IPPool');
  assert.equal(t.events[0]!.object.apiVersion, 'crd.projectcalico.org/v1');
  assert.equal(u.events.length, 0);
  assert.ok(ticking.stats.bookmarks >= 2);
});

const expired = (from: number, oldest: number) => ({
  kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure',
  message: `too old resource version: ${from} (${oldest})`, reason: 'Expired', code: 410,
});

test('a compacted RV gets 410 Gone: as the HTTP response, or as an ERROR event then the end', LIMIT, async () => {
  for (const goneAs of ['http', 'event'] as const) {
    const api = await server({ goneAs });
    api.create(PODS, pod('a', 'p1'));
    api.update(PODS, pod('a', 'p1', 'n2'));
    const before = await watch(api.url, `${PODS}?watch=true&resourceVersion=1`);
    await until(() => before.events.length === 1, 'resume before compaction');
    before.close();

    api.compact();
    if (goneAs === 'http') {
      const r = await getJson(api.url, `${PODS}?watch=true&resourceVersion=1`);
      assert.equal(r.status, 410);
      assert.deepEqual(r.body, expired(1, 2));
    } else {
      const w = await watch(api.url, `${PODS}?watch=true&resourceVersion=1`);
      assert.equal(w.status, 200);
      assert.deepEqual(await w.ended, { complete: true }, 'the stream ends cleanly after the ERROR');
      assert.deepEqual(w.events, [{ type: 'ERROR', object: expired(1, 2) }]);
    }
    assert.equal(api.stats.gone, 1, goneAs);

    const fromNow = await watch(api.url, `${PODS}?watch=true&resourceVersion=${api.resourceVersion}`);
    api.create(PODS, pod('a', 'p2'));
    await until(() => fromNow.events.length === 1, 'resume from the compaction RV');
    assert.deepEqual(summary(fromNow.events), ['ADDED a/p2 3']);
  }

  // The history limit drops events the same way, oldest first.
  const small = await server({ historyLimit: 2 });
  for (const n of ['p1', 'p2', 'p3', 'p4']) small.create(PODS, pod('a', n));
  assert.equal((await getJson(small.url, `${PODS}?watch=true&resourceVersion=1`)).status, 410, 'event 2 is gone');
  const w = await watch(small.url, `${PODS}?watch=true&resourceVersion=2`);
  await until(() => w.events.length === 2, 'events 3 and 4');
  assert.deepEqual(summary(w.events), ['ADDED a/p3 3', 'ADDED a/p4 4']);
});

test('timeoutSeconds ends the stream cleanly, after everything queued', LIMIT, async () => {
  const api = await server({ splitEvery: 1 });
  api.create(PODS, pod('a', 'p1'));
  const t0 = Date.now();
  const w = await watch(api.url, `${PODS}?watch=true&timeoutSeconds=0.2`);
  assert.deepEqual(await w.ended, { complete: true });
  const took = Date.now() - t0;
  assert.ok(took >= 150 && took < 2000, `ended after ${took} ms`);
  assert.deepEqual(summary(w.events), ['ADDED a/p1 1']);
  assert.ok(w.chunks.length >= 2, 'every line split (splitEvery 1), none lost');
});

test('dropWatches cuts every watch without the chunked terminator', LIMIT, async () => {
  const api = await server();
  const w = await watch(api.url, `${PODS}?watch=true`);
  api.create(PODS, pod('a', 'p1'));
  await until(() => w.events.length === 1, 'event');
  api.dropWatches();
  assert.deepEqual(await w.ended, { complete: false });
  const again = await watch(api.url, `${PODS}?watch=true&resourceVersion=0`);
  await until(() => again.events.length === 1, 'the server still serves');
});

test('stall: open and new watches get nothing, ever; lists still work', LIMIT, async () => {
  const api = await server();
  const open = await watch(api.url, `${PODS}?watch=true&allowWatchBookmarks=true`);
  api.stall(true);
  api.create(PODS, pod('a', 'p1'));
  api.bookmark();
  const stalled = openWatch(api.url, `${PODS}?watch=true`);
  const headers = await Promise.race([stalled.response.then(() => 'headers'), sleep(150).then(() => 'nothing')]);
  assert.equal(headers, 'nothing', 'not even response headers');
  assert.equal((await getJson(api.url, PODS)).body.items.length, 1);
  api.stall(false);
  const fresh = await watch(api.url, `${PODS}?watch=true`);
  await until(() => fresh.events.length === 1, 'a new watch after the stall');
  api.create(PODS, pod('a', 'p2'));
  await until(() => fresh.events.length === 2, 'live');
  assert.equal(open.events.length, 0, 'a half-open connection never recovers');
  assert.equal(api.stats.bookmarks, 0);
  stalled.response.catch(() => {});
  api.dropWatches();
  assert.deepEqual(await open.ended, { complete: false });
  await assert.rejects(stalled.response, 'the stalled request is cut too');
});

// ---- server faults -----------------------------------------------------------------------

test('restart keeps the objects, the RV and the port; loseHistory makes old RVs 410', LIMIT, async () => {
  const api = await server();
  api.create(PODS, pod('a', 'p1'));
  api.create(PODS, pod('a', 'p2'));
  const before = await getJson(api.url, PODS);
  const rv = before.body.metadata.resourceVersion;
  const w = await watch(api.url, `${PODS}?watch=true&resourceVersion=${rv}`);
  const port = api.port;

  await api.restart();
  assert.deepEqual(await w.ended, { complete: false }, 'open watches are cut');
  assert.equal(api.port, port);
  assert.equal(api.url, `http://127.0.0.1:${port}`);
  assert.deepEqual((await getJson(api.url, PODS)).body, before.body);
  api.create(PODS, pod('a', 'p3'));
  const resumed = await watch(api.url, `${PODS}?watch=true&resourceVersion=${rv}`);
  await until(() => resumed.events.length === 1, 'resume across the restart');
  assert.deepEqual(summary(resumed.events), ['ADDED a/p3 3']);

  await api.restart({ loseHistory: true });
  assert.equal((await getJson(api.url, `${PODS}?watch=true&resourceVersion=${rv}`)).status, 410);
  assert.deepEqual(names(await getJson(api.url, PODS)), ['a/p1', 'a/p2', 'a/p3']);
});

test('failNext fails the next n lists or watches of a collection with a Status', LIMIT, async () => {
  const api = await server();
  api.create(PODS, pod('a', 'p1'));
  api.failNext(PODS, 500, 2);
  const r1 = await getJson(api.url, PODS);
  assert.equal(r1.status, 500);
  assert.equal(r1.body.kind, 'Status');
  assert.equal(r1.body.reason, 'InternalError');
  assert.equal(r1.body.code, 500);
  assert.equal((await getJson(api.url, '/api/v1/namespaces/a/pods')).status, 500, 'the namespaced path is the same collection');
  assert.equal((await getJson(api.url, NODES)).status, 200, 'other collections are unaffected');
  assert.equal((await getJson(api.url, PODS)).status, 200, 'only n of them');

  api.failNext(PODS, 503);
  assert.equal((await getJson(api.url, `${PODS}?watch=true`)).status, 503);
  const w = await watch(api.url, `${PODS}?watch=true`);
  assert.equal(w.status, 200);
  w.close();

  api.failNext(NODES, 429);
  const limited = await getJson(api.url, NODES);
  assert.equal(limited.status, 429);
  assert.equal(limited.headers['retry-after'], '1');
  assert.equal(api.stats.lists.get(PODS), 3);
  assert.equal(api.stats.watches.get(PODS), 2);
});

test('with a token, requests without the right bearer token get 401', LIMIT, async () => {
  const api = await server({ token: 's3cret' });
  for (const headers of [{}, { authorization: 'Bearer wrong' }] as Record<string, string>[]) {
    const r = await getJson(api.url, PODS, headers);
    assert.equal(r.status, 401);
    assert.deepEqual(r.body, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'Unauthorized', reason: 'Unauthorized', code: 401 });
  }
  assert.equal((await getJson(api.url, `${PODS}?watch=true`)).status, 401);
  assert.equal((await getJson(api.url, PODS, { authorization: 'Bearer s3cret' })).status, 200);
  const kubeconfig = JSON.parse(readFileSync(api.kubeconfigPath, 'utf8'));
  assert.deepEqual(kubeconfig.clusters[0].cluster, { server: api.url, 'insecure-skip-tls-verify': true });
  assert.deepEqual(kubeconfig.users[0].user, { token: 's3cret' });
});

// ---- the real client library -------------------------------------------------------------

test('@kubernetes/client-node 1.4.0 lists and watches it through the kubeconfig it writes', LIMIT, async () => {
  const api = await server({ token: 'tok' });
  for (const n of ['node-c', 'node-a', 'node-b']) api.create(NODES, k8sNode(n));
  api.create(PODS, pod('a', 'p1'));
  const kc = new KubeConfig();
  kc.loadFromFile(api.kubeconfigPath);
  const core = kc.makeApiClient(CoreV1Api);

  const page1 = await core.listNode({ limit: 2 });
  assert.deepEqual(page1.items.map((n) => n.metadata?.name), ['node-a', 'node-b']);
  assert.equal(page1.metadata?.remainingItemCount, 1);
  const page2 = await core.listNode({ limit: 2, _continue: page1.metadata!._continue! });
  assert.deepEqual(page2.items.map((n) => n.metadata?.name), ['node-c']);
  assert.equal(page2.metadata?.resourceVersion, page1.metadata?.resourceVersion);
  const pods = await core.listPodForAllNamespaces();
  assert.deepEqual(pods.items.map((p) => p.spec?.nodeName), ['n1']);

  // Watch from the list's RV: the events after it, then an on-demand bookmark.
  const rv = page1.metadata!.resourceVersion!;
  const seen: string[] = [];
  const ctl = await new Watch(kc).watch(NODES, { resourceVersion: rv, allowWatchBookmarks: true },
    (type: string, obj: any) => seen.push(`${type} ${obj.metadata.name ?? '-'} ${obj.metadata.resourceVersion}`), () => {});
  api.update(NODES, k8sNode('node-a', { x: '1' }));
  api.remove(NODES, undefined, 'node-b');
  api.bookmark();
  await until(() => seen.length >= 3, 'client-node watch events');
  assert.deepEqual(seen, ['MODIFIED node-a 5', 'DELETED node-b 6', 'BOOKMARK - 6']);
  ctl.abort();

  // A server-side timeout is a clean end: done(null), which ListWatch resumes without relisting.
  let timedOut: unknown = 'open';
  await new Watch(kc).watch(NODES, { resourceVersion: String(api.resourceVersion), timeoutSeconds: 0.2 }, () => {}, (err: unknown) => { timedOut = err; });
  await until(() => timedOut !== 'open', 'done after timeoutSeconds');
  assert.equal(timedOut, null);

  // 410 at watch start reaches done as statusCode 410, the informer's cue to relist.
  api.compact();
  let gone: any = 'open';
  await new Watch(kc).watch(NODES, { resourceVersion: rv }, () => {}, (err: unknown) => { gone = err; });
  await until(() => gone !== 'open', 'done after 410');
  assert.equal(gone?.statusCode, 410);

  const wrong = new KubeConfig();
  wrong.loadFromString(readFileSync(api.kubeconfigPath, 'utf8').replace('"tok"', '"nope"'));
  await assert.rejects(wrong.makeApiClient(CoreV1Api).listNode(), (e: any) => e.code === 401);
});

// ---- as the real apiserver: CRDs not installed, discovery, future RVs, 429, bookmark cadence ----

const NOT_FOUND = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'the server could not find the requested resource', reason: 'NotFound', details: {}, code: 404 };

test('a collection whose CRD is not installed answers a 404 Status; installed at runtime it lists and watches', LIMIT, async () => {
  const BGPFILTERS = '/apis/crd.projectcalico.org/v1/bgpfilters';
  const api = await server({ missing: [BGPFILTERS] });
  for (const path of [BGPFILTERS, `${BGPFILTERS}?watch=true`, `${BGPFILTERS}/f1`]) {
    const r = await getJson(api.url, path);
    assert.equal(r.status, 404, path);
    assert.deepEqual(r.body, NOT_FOUND, path);
  }
  assert.equal((await getJson(api.url, IPPOOLS)).status, 200, 'other CRDs are there');
  assert.throws(() => api.create(BGPFILTERS, { metadata: { name: 'f1' }, spec: {} }), /not installed/);
  api.install(BGPFILTERS);
  const w = await watch(api.url, `${BGPFILTERS}?watch=true&resourceVersion=${api.resourceVersion}`);
  assert.equal(w.status, 200);
  api.create(BGPFILTERS, { metadata: { name: 'f1' }, spec: {} });
  await until(() => w.events.length === 1, 'the new object');
  assert.equal((await getJson(api.url, BGPFILTERS)).body.items.length, 1);
  // Deleting the CRD deletes its objects (watchers see each go), ends its watches, then 404.
  api.uninstall(BGPFILTERS);
  assert.deepEqual((await w.ended), { complete: true });
  assert.deepEqual(w.events.map((e) => e.type), ['ADDED', 'DELETED']);
  assert.equal((await getJson(api.url, BGPFILTERS)).status, 404);
  assert.ok(api.stats.notFound >= 4);
});

test('discovery: /api, /apis and group versions list what is served, for either Calico API group', LIMIT, async () => {
  const api = await server({ missing: ['/apis/crd.projectcalico.org/v1/bgpfilters'] });
  const versions = await getJson(api.url, '/api');
  assert.equal(versions.body.kind, 'APIVersions');
  assert.deepEqual(versions.body.versions, ['v1']);
  const core = await getJson(api.url, '/api/v1');
  assert.equal(core.body.kind, 'APIResourceList');
  assert.ok(core.body.resources.some((r: any) => r.name === 'pods' && r.namespaced && r.kind === 'Pod' && r.verbs.includes('watch')));
  const groups = async () => (await getJson(api.url, '/apis')).body.groups.map((g: any) => g.name).sort();
  assert.deepEqual(await groups(), ['crd.projectcalico.org', 'discovery.k8s.io', 'networking.k8s.io']);
  const calico = await getJson(api.url, '/apis/crd.projectcalico.org/v1');
  assert.equal(calico.body.groupVersion, 'crd.projectcalico.org/v1');
  const plurals = calico.body.resources.map((r: any) => r.name);
  assert.ok(plurals.includes('ippools') && !plurals.includes('bgpfilters'), 'a missing CRD is not listed');
  assert.equal((await getJson(api.url, '/apis/crd.projectcalico.org')).body.preferredVersion.groupVersion, 'crd.projectcalico.org/v1');
  assert.equal((await getJson(api.url, '/apis/projectcalico.org/v3')).status, 404);
  assert.equal((await getJson(api.url, '/apis/projectcalico.org/v3/ippools')).status, 404, 'a group not served: 404');

  api.setCalicoGroups(['projectcalico.org/v3']);
  assert.deepEqual(await groups(), ['discovery.k8s.io', 'networking.k8s.io', 'projectcalico.org']);
  assert.equal((await getJson(api.url, IPPOOLS)).status, 404);
  api.create('/apis/projectcalico.org/v3/ippools', { metadata: { name: 'p' }, spec: { cidr: '10.0.0.0/16' } });
  const v3 = await getJson(api.url, '/apis/projectcalico.org/v3/ippools');
  assert.equal(v3.body.items[0].apiVersion, 'projectcalico.org/v3');
  const both = await server({ calicoGroups: ['crd.projectcalico.org/v1', 'projectcalico.org/v3'] });
  assert.ok((await getJson(both.url, '/apis')).body.groups.some((g: any) => g.name === 'projectcalico.org'));
});

test('a watch from a resourceVersion the server does not have yet: after the wait, 200 and an ERROR Status 504', LIMIT, async () => {
  const api = await server({ tooLargeWaitMs: 300 });
  api.create(PODS, pod('a', 'p1'));
  const future = api.resourceVersion + 5;
  const started = Date.now();
  const w = await watch(api.url, `${PODS}?watch=true&resourceVersion=${future}`);
  assert.ok(Date.now() - started >= 290, 'held for the wait before the headers');
  assert.equal(w.status, 200);
  assert.deepEqual(await w.ended, { complete: true });
  assert.deepEqual(w.events, [{
    type: 'ERROR',
    object: {
      kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', reason: 'Timeout', code: 504,
      message: `Timeout: Too large resource version: ${future}, current: ${api.resourceVersion}`,
      details: { causes: [{ reason: 'ResourceVersionTooLarge', message: 'Too large resource version' }], retryAfterSeconds: 1 },
    },
  }]);
  assert.equal(api.stats.tooLarge, 1);
  // Caught up within the wait: an ordinary watch from there.
  const soon = api.resourceVersion + 1;
  const pending = watch(api.url, `${PODS}?watch=true&resourceVersion=${soon}`);
  api.create(PODS, pod('a', 'p2'));
  api.create(PODS, pod('a', 'p3'));
  const ok = await pending;
  await until(() => ok.events.length === 1, 'the event after it');
  assert.deepEqual(summary(ok.events), [`ADDED a/p3 ${soon + 1}`]);
  ok.close();
  // An etcd restore takes the resourceVersion back: the adapter's old one is now in the future.
  const b = api.backup();
  api.create(PODS, pod('a', 'p4'));
  const before = api.resourceVersion;
  api.restore(b);
  assert.equal(api.resourceVersion, b.rv);
  assert.deepEqual(api.list(PODS).map((p) => p.metadata.name), ['p1', 'p2', 'p3']);
  const late = await watch(api.url, `${PODS}?watch=true&resourceVersion=${before}`);
  await late.ended;
  assert.equal(late.events[0]!.object.code, 504);
});

test('429 carries Retry-After as asked, in the header and the Status details', LIMIT, async () => {
  const api = await server();
  api.failNext(PODS, 429, 1, 7);
  const r = await getJson(api.url, PODS);
  assert.equal(r.status, 429);
  assert.equal(r.headers['retry-after'], '7');
  assert.equal(r.body.details.retryAfterSeconds, 7);
  assert.deepEqual(api.stats.requests.map((q) => [q.collection, q.watch, q.status]), [[PODS, false, 429]]);
});

test('bookmarks on the cacher\'s cadence: every interval from the watch\'s start, and shortly before its timeout', LIMIT, async () => {
  const api = await server({ bookmarkIntervalMs: 400, bookmarkBeforeTimeoutMs: 300 });
  api.create(PODS, pod('a', 'p1'));
  const started = Date.now();
  const w = await watch(api.url, `${PODS}?watch=true&resourceVersion=${api.resourceVersion}&allowWatchBookmarks=true&timeoutSeconds=1`);
  const at: number[] = [];
  await until(() => { while (at.length < w.events.length) at.push(Date.now() - started); return at.length >= 2; }, 'two bookmarks', 3000);
  await w.ended;
  assert.deepEqual(w.events.map((e) => e.type), ['BOOKMARK', 'BOOKMARK'], 'one at 400 ms, one at 700 ms (1 s - 300 ms), then none: the next would be past the deadline');
  assert.ok(at[0]! >= 350 && at[0]! < 650, `first at ${at[0]} ms`);
  assert.ok(at[1]! >= 650 && at[1]! < 950, `second at ${at[1]} ms`);
  const defaults = await server();
  const d = await watch(defaults.url, `${PODS}?watch=true&allowWatchBookmarks=true&timeoutSeconds=1`);
  await d.ended;
  assert.deepEqual(d.events, [], 'the defaults (60 s, 2 s before the end) send none in a 1 s watch');
});
