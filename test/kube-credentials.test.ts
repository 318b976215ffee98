// Credentials that rotate (src/datastore/kubernetes/credentials.ts), against the contract server's
// rotating bearer tokens. What client-go does, which these tests hold calico-fanout to:
// - a kubeconfig user's token file is spelt `tokenFile` (clientcmd/api/v1 AuthInfo) and, when
//   relative, is relative to the kubeconfig's directory (clientcmd/loader.go
//   GetAuthInfoFileReferences); a readable token file wins over an inline `token`
//   (clientcmd/client_config.go sets BearerToken and BearerTokenFile; transport/round_trippers.go
//   NewBearerAuthWithRefreshRoundTripper prefers the file's token when it reads);
// - token files (the in-cluster /var/run/secrets/kubernetes.io/serviceaccount/token too, rest/
//   config.go InClusterConfig) are cached for a minute less ten seconds of leeway, the content
//   trimmed, an empty or unreadable file keeps the last token, and a 401 drops the cached token
//   (transport/token_source.go NewCachedFileTokenSource, ResetTokenOlderThan);
// - an exec plugin's credential is kept until status.expirationTimestamp (none: until a 401) and
//   the plugin is run again after a 401 (plugin/pkg/client/auth/exec/exec.go credsExpired,
//   maybeRefreshCreds); its output must be an ExecCredential of the configured apiVersion.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import type { Update } from '../client/index.js';
import { createDatastore } from '../cmd/datastores.js';
import { loadConfig, type Config } from '../src/config.js';
import { credentialsFor, TOKEN_FILE_MAX_AGE_MS } from '../src/datastore/kubernetes/credentials.js';
import { kubeHttp, loadKubeConfig } from '../src/datastore/kubernetes/http.js';
import { WATCHED_RESOURCES } from '../src/datastore/kubernetes/resources.js';
import { silentLogger } from '../src/logging.js';
import { cleanupAfterFile, startServerOn, waitFor } from './support/harness.js';
import { startKubeApi, type KubeApiServer } from './support/kube-api.js';
import { cluster, load, pod, PODS } from './support/kube-cluster.js';
import { freePort } from './support/metrics.js';

const { clients, track } = cleanupAfterFile();
const LIMIT = { timeout: 30_000 };
const SLOW = { timeout: 120_000 };
const dirs: string[] = [];
after(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });
const tmp = () => { const d = mkdtempSync(join(tmpdir(), 'kube-creds-')); dirs.push(d); return d; };
const never = new AbortController().signal;

/** A kubeconfig for the contract server whose user is `user`. */
function kubeconfig(api: KubeApiServer, dir: string, user: object): string {
  const path = join(dir, 'kubeconfig');
  writeFileSync(path, JSON.stringify({
    apiVersion: 'v1', kind: 'Config', 'current-context': 'c',
    clusters: [{ name: 'c', cluster: { server: api.url, 'insecure-skip-tls-verify': true } }],
    users: [{ name: 'u', user }], contexts: [{ name: 'c', context: { cluster: 'c', user: 'u' } }],
  }));
  return path;
}

const calicoKey = (obj: object) => WATCHED_RESOURCES.find((r) => r.path === PODS)!.convert(obj)!.key;

describe('the contract server rotates bearer tokens', () => {
  test('an old or missing token gets a 401 Status; open watches end at rotation', LIMIT, async () => {
    const api = await startKubeApi({ token: 'old', tokens: ['spare'] });
    try {
      const get = (token?: string) => fetch(api.url + PODS, { headers: token ? { authorization: `Bearer ${token}` } : {} });
      assert.equal((await get('spare')).status, 200, 'a second accepted token');
      const watch = await get('old').then(() => fetch(`${api.url}${PODS}?watch=1`, { headers: { authorization: 'Bearer old' } }));
      assert.equal(watch.status, 200);
      const body = watch.text();
      api.rotateToken('new');
      assert.equal(await body, '', 'the watch ended cleanly at rotation');
      for (const t of ['old', 'spare', undefined]) {
        const r = await get(t);
        assert.equal(r.status, 401, `token ${t}`);
        assert.deepEqual(await r.json(), { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'Unauthorized', reason: 'Unauthorized', code: 401 });
      }
      assert.equal(api.unauthorized, 3);
      assert.equal((await get('new')).status, 200);
    } finally {
      await api.close();
    }
  });
});

describe('credentials that rotate', () => {
  test('a kubeconfig user with `tokenFile` (relative to the kubeconfig) sends its token', LIMIT, async () => {
    const api = await startKubeApi({ token: 'file-token' });
    try {
      const d = tmp();
      writeFileSync(join(d, 'token'), 'file-token\n');
      const api2 = await kubeHttp(loadKubeConfig(kubeconfig(api, d, { tokenFile: 'token' })));
      const list = await api2.getJson(PODS, never, 5000);
      assert.equal(list.kind, 'PodList');
      assert.equal(api.unauthorized, 0);
    } finally {
      await api.close();
    }
  });

  test('a readable token file wins over an inline token; the file is re-read after 50 s, not before', LIMIT, async () => {
    const d = tmp();
    writeFileSync(join(d, 'token'), '  A \n');
    const path = join(d, 'kubeconfig');
    writeFileSync(path, JSON.stringify({
      apiVersion: 'v1', kind: 'Config', 'current-context': 'c', clusters: [{ name: 'c', cluster: { server: 'http://127.0.0.1:1', 'insecure-skip-tls-verify': true } }],
      users: [{ name: 'u', user: { token: 'inline', 'token-file': join(d, 'token') } }], contexts: [{ name: 'c', context: { cluster: 'c', user: 'u' } }],
    }));
    const loaded = loadKubeConfig(path);
    let now = 1_000_000;
    const creds = credentialsFor(loaded, { now: () => now });
    assert.equal((await creds.current()).header, 'Bearer A', 'the file, trimmed, over the inline token');
    writeFileSync(join(d, 'token'), 'B');
    now += TOKEN_FILE_MAX_AGE_MS - 1;
    assert.equal((await creds.current()).header, 'Bearer A', 'cached under 50 s');
    now += 1;
    assert.equal((await creds.current()).header, 'Bearer B', 're-read at 50 s');
    assert.equal(TOKEN_FILE_MAX_AGE_MS, 50_000);
    writeFileSync(join(d, 'token'), '');
    now += TOKEN_FILE_MAX_AGE_MS;
    assert.equal((await creds.current()).header, 'Bearer B', 'an empty file keeps the last token');
  });

  test('the in-cluster token file: a 401 re-reads it at once and the request is retried', LIMIT, async () => {
    const api = await startKubeApi({ token: 'sa-1' });
    try {
      // client-node's in-cluster configuration, rooted in a temporary directory.
      const root = tmp();
      const sa = join(root, 'var/run/secrets/kubernetes.io/serviceaccount');
      mkdirSync(sa, { recursive: true });
      writeFileSync(join(sa, 'token'), 'sa-1');
      const url = new URL(api.url);
      const env = { host: process.env.KUBERNETES_SERVICE_HOST, port: process.env.KUBERNETES_SERVICE_PORT };
      process.env.KUBERNETES_SERVICE_HOST = url.hostname;
      process.env.KUBERNETES_SERVICE_PORT = '8080'; // client-node: http for 80, 8080, 8001
      const kc = new KubeConfig();
      try { kc.loadFromCluster(root); } finally {
        if (env.host === undefined) delete process.env.KUBERNETES_SERVICE_HOST; else process.env.KUBERNETES_SERVICE_HOST = env.host;
        if (env.port === undefined) delete process.env.KUBERNETES_SERVICE_PORT; else process.env.KUBERNETES_SERVICE_PORT = env.port;
      }
      kc.clusters[0] = { ...kc.clusters[0]!, server: api.url, caFile: undefined, skipTLSVerify: true };
      const http = await kubeHttp(kc);
      await http.getJson(PODS, never, 5000);
      writeFileSync(join(sa, 'token'), 'sa-2');
      api.rotateToken('sa-2');
      const list = await http.getJson(PODS, never, 5000);
      assert.equal(list.kind, 'PodList', 'answered with the new token');
      assert.equal(api.unauthorized, 1, 'one 401, then the retry with the file read again');
    } finally {
      await api.close();
    }
  });

  test('an exec plugin: kept until its expirationTimestamp, run again when expired and after a 401', LIMIT, async () => {
    const api = await startKubeApi({ token: 'exec-1' });
    try {
      const d = tmp();
      // The plugin hands out the token in `token` with the expiry in `exp`, and counts its runs.
      writeFileSync(join(d, 'plugin.mjs'), `import { appendFileSync, readFileSync } from 'node:fs';
const dir = ${JSON.stringify(d)};
const info = JSON.parse(process.env.KUBERNETES_EXEC_INFO);
appendFileSync(dir + '/runs', info.kind + ' ' + process.env.EXTRA + '\\n');
const exp = readFileSync(dir + '/exp', 'utf8').trim();
process.stdout.write(JSON.stringify({ apiVersion: 'client.authentication.k8s.io/v1', kind: 'ExecCredential',
  status: { token: readFileSync(dir + '/token', 'utf8').trim(), ...(exp ? { expirationTimestamp: exp } : {}) } }));
`);
      writeFileSync(join(d, 'token'), 'exec-1');
      writeFileSync(join(d, 'exp'), '2030-01-01T00:00:00Z');
      writeFileSync(join(d, 'runs'), '');
      const runs = () => readFileSync(join(d, 'runs'), 'utf8').split('\n').filter(Boolean);
      const kc = loadKubeConfig(kubeconfig(api, d, { exec: {
        apiVersion: 'client.authentication.k8s.io/v1', command: process.execPath, args: [join(d, 'plugin.mjs')],
        env: [{ name: 'EXTRA', value: 'x' }], interactiveMode: 'Never',
      } }));
      let now = Date.parse('2029-12-31T23:00:00Z');
      credentialsFor(kc, { now: () => now });
      const http = await kubeHttp(kc);
      await http.getJson(PODS, never, 5000);
      await http.getJson(PODS, never, 5000);
      assert.deepEqual(runs(), ['ExecCredential x'], 'run once while valid, with KUBERNETES_EXEC_INFO and its env');

      writeFileSync(join(d, 'token'), 'exec-2');
      api.rotateToken('exec-2');
      await http.getJson(PODS, never, 5000);
      assert.equal(runs().length, 2, 'run again after the 401');
      assert.equal(api.unauthorized, 1);

      now = Date.parse('2030-01-01T00:00:01Z');
      await http.getJson(PODS, never, 5000);
      assert.equal(runs().length, 3, 'run again once expired');
      assert.equal(api.unauthorized, 1, 'before any 401');
    } finally {
      await api.close();
    }
  });
});

/** A kubeconfig with `tokenFile` and the file it names, on the contract server. */
function rotatingSetup(api: KubeApiServer, token: string): { path: string; rotate(next: string): void } {
  const d = tmp();
  writeFileSync(join(d, 'token'), token);
  return {
    path: kubeconfig(api, d, { tokenFile: join(d, 'token') }),
    rotate(next) { writeFileSync(join(d, 'token'), next); api.rotateToken(next); },
  };
}

describe('the Kubernetes datastore across a rotation', () => {
  test('watches end at rotation and resume with the new token: nothing lost, nothing published twice', SLOW, async () => {
    const api = await startKubeApi({ token: 't1', historyLimit: 10_000 });
    try {
      load(api, cluster(20));
      const setup = rotatingSetup(api, 't1');
      const config: Config = { ...loadConfig({ env: {} }), datastoreType: 'kubernetes', kubeconfig: setup.path, kubernetesWatchInactivitySecs: 30 };
      const ts = track(await startServerOn(createDatastore(config, silentLogger), {}));
      await waitFor(() => ts.app.store.status === 'in-sync', 'in sync', 30_000);
      await waitFor(() => WATCHED_RESOURCES.every((r) => (api.stats.watches.get(r.path) ?? 0) >= 1), 'every collection watched');
      const heard = new Map<string, string[]>();
      const c = clients.make({ url: ts.url, syncerType: 'felix', onUpdates: (us: Update[]) => { for (const u of us) heard.set(u.key, [...(heard.get(u.key) ?? []), u.revision]); } });
      await c.inSync();
      heard.clear();
      const lists = api.stats.lists.get(PODS);
      const watches = api.stats.watches.get(PODS)!;
      // A change just before the rotation, and several after it, before the watch is back.
      const before = pod('before', 'ns-0', 'node-0', '10.244.9.1');
      api.apply(PODS, before);
      setup.rotate('t2');
      const afterPods = [1, 2, 3].map((i) => pod(`after-${i}`, 'ns-1', 'node-1', `10.244.9.${i + 1}`));
      for (const p of afterPods) api.apply(PODS, p);
      await waitFor(() => afterPods.every((p) => c.get(calicoKey(p)) !== undefined) && c.get(calicoKey(before)) !== undefined, 'the pods written around the rotation', 20_000);
      assert.ok(api.unauthorized > 0, 'the old token was refused');
      assert.ok(api.stats.watches.get(PODS)! > watches, 'the pods watch was resumed');
      assert.equal(api.stats.lists.get(PODS), lists, 'resumed from its resourceVersion, no relist');
      for (const [key, revs] of heard) assert.equal(new Set(revs).size, revs.length, `${key} heard a revision twice: ${revs.join(', ')}`);
      assert.equal(ts.app.store.status, 'in-sync');
      await clients.stopAll();
      await ts.close();
    } finally {
      await api.close();
    }
  });

  test('`serve --datastore kubernetes --kubeconfig <tokenFile>`: after rotations it keeps following new pods', SLOW, async () => {
    const api = await startKubeApi({ token: 'gen-1', historyLimit: 10_000 });
    let child: ChildProcess | undefined;
    try {
      load(api, cluster(10));
      const setup = rotatingSetup(api, 'gen-1');
      const [port, health, metrics] = [await freePort(), await freePort(), await freePort()];
      child = spawn(process.execPath, ['bin/calico-fanout.js', 'serve', '--datastore', 'kubernetes', '--kubeconfig', setup.path,
        '--server-host', '127.0.0.1', '--server-port', String(port), '--health-host', '127.0.0.1', '--health-port', String(health),
        '--metrics-host', '127.0.0.1', '--metrics-port', String(metrics), '--log-level', 'WARNING'], { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr!.setEncoding('utf8').on('data', (s: string) => { stderr += s; });
      const c = clients.make({ url: `ws://127.0.0.1:${port}`, syncerType: 'felix' });
      await c.inSync();
      for (const gen of [2, 3]) {
        const refused = api.unauthorized;
        setup.rotate(`gen-${gen}`);
        const p = pod(`new-${gen}`, 'ns-0', 'node-0', `10.244.8.${gen}`);
        api.apply(PODS, p);
        await waitFor(() => c.get(calicoKey(p)) !== undefined, `the pod created after rotation ${gen}`, 20_000).catch((err) => { throw new Error(`${err.message}; server stderr: ${stderr.slice(-2000)}`); });
        assert.ok(api.unauthorized > refused, `rotation ${gen}: the old token was refused, then the new one read`);
      }
      await clients.stopAll();
    } finally {
      if (child && child.exitCode === null) {
        child.kill('SIGTERM');
        await new Promise((r) => child!.once('exit', r));
      }
      await api.close();
    }
  });
});

test('basic auth and a user without credentials need no TLS: both work against a plain-http server', async () => {
  const kc = (user: object) => {
    const k = new KubeConfig();
    k.loadFromOptions({ clusters: [{ name: 'c', server: 'http://127.0.0.1:1' }], users: [{ name: 'u', ...user }], contexts: [{ name: 'x', cluster: 'c', user: 'u' }], currentContext: 'x' });
    return k;
  };
  assert.deepEqual(await credentialsFor(kc({ username: 'admin', password: 's3cret' })).current(), { header: `Basic ${Buffer.from('admin:s3cret').toString('base64')}` });
  assert.deepEqual(await credentialsFor(kc({})).current(), {});
});
