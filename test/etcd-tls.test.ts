// The etcd adapter over TLS and with etcd authentication, against a real etcd: certificates
// made with openssl for the run; a server with the right CA and client certificate syncs, one
// with the wrong CA, without its client certificate or with a wrong password keeps serving
// (it starts, it is just never ready) and says why in /readyz; and the TLS settings are checked
// together at configuration time.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Etcd3 } from 'etcd3';
import { createDatastore } from '../cmd/datastores.js';
import { ConfigError, loadConfig, type Config } from '../src/config.js';
import { EtcdDatastore } from '../src/datastore/etcd.js';
import { silentLogger } from '../src/logging.js';
import { assertClientMatches, expectedView } from './support/expected.js';
import { etcdContent, putMany, startEtcd, type EtcdServer } from './support/etcd.js';
import { cleanupAfterFile, LIMIT, node, resource, startServerOn, waitFor, wep } from './support/harness.js';
import { httpGet } from './support/metrics.js';

const { clients, track } = cleanupAfterFile();

interface Certs {
  ca: string; otherCa: string;
  serverCert: string; serverKey: string;
  clientCert: string; clientKey: string;
}

/**
 * A CA, a server certificate for 127.0.0.1 and a client certificate signed by it, and an
 * unrelated second CA; all EC P-256. The server certificate also carries clientAuth: etcd's own
 * gRPC gateway dials its client port with it, and test/support/etcd.ts gives the test's etcd
 * client the server's certificate (EtcdTls has no separate client pair).
 */
function makeCerts(dir: string): Certs {
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  const key = (name: string) => openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${name}.key`);
  const ca = (name: string) => {
    key(name);
    openssl('req', '-x509', '-new', '-key', `${name}.key`, '-out', `${name}.crt`, '-days', '2', '-subj', `/CN=${name}`,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  };
  const leaf = (name: string, signer: string, ext: string[]) => {
    key(name);
    openssl('req', '-new', '-key', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
    writeFileSync(join(dir, `${name}.ext`), ['basicConstraints=CA:FALSE', 'keyUsage=critical,digitalSignature,keyEncipherment', ...ext].join('\n') + '\n');
    openssl('x509', '-req', '-in', `${name}.csr`, '-CA', `${signer}.crt`, '-CAkey', `${signer}.key`, '-CAcreateserial',
      '-days', '2', '-out', `${name}.crt`, '-extfile', `${name}.ext`);
  };
  ca('ca');
  ca('other-ca');
  leaf('server', 'ca', ['extendedKeyUsage=serverAuth,clientAuth', 'subjectAltName=IP:127.0.0.1']);
  leaf('client', 'ca', ['extendedKeyUsage=clientAuth']);
  const p = (f: string) => join(dir, f);
  return {
    ca: p('ca.crt'), otherCa: p('other-ca.crt'),
    serverCert: p('server.crt'), serverKey: p('server.key'),
    clientCert: p('client.crt'), clientKey: p('client.key'),
  };
}

let dir: string;
let certs: Certs;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'fanout-etcd-tls-'));
  certs = makeCerts(dir);
});
after(() => { rmSync(dir, { recursive: true, force: true }); });

const content = [
  node('node-1'), node('node-2'),
  wep('node-1', 'pod-a'), wep('node-2', 'pod-b', 'kube-system', { app: 'b' }),
  resource('IPPool', { name: 'pool-a' }, { cidr: '10.244.0.0/16', blockSize: 26 }),
];

const ETCD_TUNING: Partial<Config> = { datastoreType: 'etcdv3', etcdProgressIntervalSecs: 0.2, etcdWatchTimeoutSecs: 2 };

/** A whole server over an EtcdDatastore built the way `serve` builds it. */
async function serveEtcd(etcd: Partial<Config>) {
  const overrides: Partial<Config> = { ...ETCD_TUNING, ...etcd };
  const ds = createDatastore({ ...loadConfig({ env: {} }), ...overrides }, silentLogger);
  assert.ok(ds instanceof EtcdDatastore);
  // It must not wait for etcd: an unreachable or refusing etcd still gives a serving server.
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error('startServerOn did not resolve within 5 s')), 5000); });
  try {
    return track(await Promise.race([startServerOn(ds, overrides), hung]));
  } finally {
    clearTimeout(timer);
  }
}

type Served = Awaited<ReturnType<typeof serveEtcd>>;

async function readyz(ts: Served): Promise<{ status: number; body: Record<string, unknown>; text: string }> {
  const r = await httpGet(ts.app.ports.health!, '/readyz');
  return { status: r.status, body: JSON.parse(r.body) as Record<string, unknown>, text: r.body };
}

/**
 * For `ms`, the server never reaches in-sync while its adapter keeps retrying; then /readyz
 * answers 503 and carries the adapter's last error, which is returned.
 */
async function assertNeverInSync(ts: Served, ms: number): Promise<string> {
  const ds = ts.ds as EtcdDatastore;
  const end = Date.now() + ms;
  while (Date.now() < end) {
    assert.notEqual(ts.app.store.status, 'in-sync', 'the server must not be in sync');
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.ok(ds.stats.reconnects >= 2, `the adapter keeps retrying (${ds.stats.reconnects} attempts so far)`);
  assert.equal(ds.stats.watches, 0, 'no attempt got past the list to a watch');
  // Only Calico's built-in default-allow profile, which needs no datastore.
  assert.equal(ts.app.store.size, 1, 'nothing from etcd was served');
  const r = await readyz(ts);
  assert.equal(r.status, 503, `/readyz: ${r.text}`);
  assert.equal(r.body.ready, false);
  assert.equal(r.body.datastore, 'etcdv3');
  assert.notEqual(r.body.status, 'in-sync');
  const err = r.body.datastoreError;
  assert.equal(typeof err, 'string', `/readyz carries datastoreError: ${r.text}`);
  assert.ok((err as string).length > 0, `datastoreError is not empty: ${r.text}`);
  return err as string;
}

describe('etcd over TLS with client-certificate authentication', () => {
  let etcd: EtcdServer;
  before(async () => {
    etcd = await startEtcd({ tls: { caFile: certs.ca, certFile: certs.serverCert, keyFile: certs.serverKey, clientCertAuth: true } });
    assert.match(etcd.endpoint, /^https:\/\/127\.0\.0\.1:\d+$/);
    await putMany(etcd.client, content);
  });
  after(async () => { await etcd?.stop(); });

  test('with the CA and a client certificate the server syncs, and watched writes flow', LIMIT, async () => {
    const ts = await serveEtcd({ etcdEndpoints: [etcd.endpoint], etcdCaFile: certs.ca, etcdCertFile: certs.clientCert, etcdKeyFile: certs.clientKey });
    try {
      await waitFor(() => ts.app.store.status === 'in-sync', 'the server to reach in-sync over TLS', 10_000);
      const r = await readyz(ts);
      assert.equal(r.status, 200, `/readyz: ${r.text}`);
      assert.equal(r.body.datastoreError, undefined, 'no error once in sync');

      const c = clients.make({ url: ts.url, syncerType: 'felix' });
      await c.inSync();
      const want = expectedView(await etcdContent(etcd.client), 'felix', '');
      assert.equal(want.size, content.length + 1, 'the expected view holds everything written, and the built-in default-allow profile');
      assertClientMatches(c, want, 'felix client over TLS etcd');

      // The watch is on the same TLS connection: a later write arrives too.
      const later = wep('node-1', 'pod-later', 'default', { app: 'later' });
      await etcd.client.put(later.key).value(JSON.stringify(later.value));
      await waitFor(() => c.get(later.key) !== undefined, 'the watched write to reach the client');
      assertClientMatches(c, expectedView(await etcdContent(etcd.client), 'felix', ''), 'after a watched write');
      await etcd.client.delete().key(later.key);
      await waitFor(() => c.get(later.key) === undefined, 'the watched deletion to reach the client');
    } finally {
      await clients.stopAll();
      await ts.close();
    }
  });

  test('with the wrong CA the server starts but is never ready, and /readyz says why', LIMIT, async (t) => {
    const ts = await serveEtcd({ etcdEndpoints: [etcd.endpoint], etcdCaFile: certs.otherCa, etcdCertFile: certs.clientCert, etcdKeyFile: certs.clientKey });
    try {
      const err = await assertNeverInSync(ts, 3000);
      t.diagnostic(`datastoreError: ${err}`);
      // Observed (grpc-js over Node's TLS): "14 UNAVAILABLE: No connection established. Last
      // error: Error: unable to verify the first certificate. ..."
      assert.match(err, /certificate|verify|SSL|TLS|handshake/i, `datastoreError should name the TLS failure: ${JSON.stringify(err)}`);
    } finally {
      await ts.close();
    }
  });

  test('without a client certificate, against client-cert-auth etcd, the server is never ready', LIMIT, async (t) => {
    const ts = await serveEtcd({ etcdEndpoints: [etcd.endpoint], etcdCaFile: certs.ca });
    try {
      const err = await assertNeverInSync(ts, 3000);
      t.diagnostic(`datastoreError: ${err}`);
      // Observed: "14 UNAVAILABLE: No connection established. Last error: ...:SSL routines:
      // ssl3_read_bytes:sslv3 alert bad certificate:...:SSL alert number 42".
      assert.match(err, /certificate|SSL|TLS|handshake/i, `datastoreError should name the TLS failure: ${JSON.stringify(err)}`);
    } finally {
      await ts.close();
    }
  });
});

describe('TLS settings are checked together when the configuration is loaded', () => {
  function configError(env: NodeJS.ProcessEnv): ConfigError {
    let caught: unknown;
    try { loadConfig({ env }); } catch (err) { caught = err; }
    assert.ok(caught instanceof ConfigError, `expected a ConfigError, got ${caught === undefined ? 'none' : String(caught)}`);
    return caught;
  }

  test('a complete TLS configuration is accepted as given', () => {
    const c = loadConfig({ env: {
      TYPHA_DATASTORETYPE: 'etcdv3', TYPHA_ETCDENDPOINTS: 'https://127.0.0.1:2379,https://127.0.0.2:2379',
      TYPHA_ETCDCAFILE: certs.ca, TYPHA_ETCDCERTFILE: certs.clientCert, TYPHA_ETCDKEYFILE: certs.clientKey,
    } });
    assert.deepEqual(c.etcdEndpoints, ['https://127.0.0.1:2379', 'https://127.0.0.2:2379']);
    assert.equal(c.etcdCaFile, certs.ca);
    assert.equal(c.etcdCertFile, certs.clientCert);
    assert.equal(c.etcdKeyFile, certs.clientKey);
  });

  test('a certificate without its key (and a key without its certificate) is an error naming both', () => {
    for (const env of [
      { TYPHA_ETCDENDPOINTS: 'https://127.0.0.1:2379', TYPHA_ETCDCAFILE: certs.ca, TYPHA_ETCDCERTFILE: certs.clientCert },
      { TYPHA_ETCDENDPOINTS: 'https://127.0.0.1:2379', TYPHA_ETCDCAFILE: certs.ca, TYPHA_ETCDKEYFILE: certs.clientKey },
    ]) {
      const e = configError(env);
      assert.ok(e.message.includes('TYPHA_ETCDCERTFILE') && e.message.includes('TYPHA_ETCDKEYFILE'), e.message);
    }
  });

  test('a CA file that does not exist is an error naming TYPHA_ETCDCAFILE', () => {
    const missing = join(dir, 'no-such-ca.crt');
    const e = configError({ TYPHA_ETCDENDPOINTS: 'https://127.0.0.1:2379', TYPHA_ETCDCAFILE: missing });
    assert.ok(e.message.includes('TYPHA_ETCDCAFILE'), e.message);
    assert.ok(e.message.includes(missing), e.message);
  });

  test('a CA with an http:// endpoint is an error', () => {
    const e = configError({ TYPHA_ETCDENDPOINTS: 'https://127.0.0.1:2379,http://127.0.0.1:2380', TYPHA_ETCDCAFILE: certs.ca });
    assert.ok(e.message.includes('TYPHA_ETCDCAFILE') && e.message.includes('TYPHA_ETCDENDPOINTS'), e.message);
  });

  test('an endpoint without a scheme is an error naming TYPHA_ETCDENDPOINTS', () => {
    for (const bad of ['127.0.0.1:2379', 'http://127.0.0.1', 'ftp://127.0.0.1:2379']) {
      const e = configError({ TYPHA_ETCDENDPOINTS: bad });
      assert.ok(e.message.includes('TYPHA_ETCDENDPOINTS'), `${bad}: ${e.message}`);
      assert.ok(e.message.includes(bad), `${bad}: ${e.message}`);
    }
  });
});

describe('etcd with authentication enabled', () => {
  let etcd: EtcdServer;
  let root: Etcd3;
  before(async () => {
    etcd = await startEtcd();
    await putMany(etcd.client, content);
    await etcd.client.role('root').create();
    await etcd.client.user('root').create('pw');
    await etcd.client.user('root').addRole('root');
    await etcd.client.auth.authEnable({});
    root = new Etcd3({ hosts: etcd.endpoint, auth: { username: 'root', password: 'pw' } });
    // Auth is really on: an anonymous client is refused now.
    await assert.rejects(etcd.client.get(content[0]!.key).string(), /user name is empty|permission denied|auth/i);
  });
  after(async () => {
    root?.close();
    await etcd?.stop();
  });

  test('a server with the username and password syncs, and watched writes flow', LIMIT, async () => {
    const ts = await serveEtcd({ etcdEndpoints: [etcd.endpoint], etcdUsername: 'root', etcdPassword: 'pw' });
    try {
      await waitFor(() => ts.app.store.status === 'in-sync', 'the server to reach in-sync with etcd auth', 10_000);
      assert.equal((await readyz(ts)).status, 200);
      const c = clients.make({ url: ts.url, syncerType: 'felix' });
      await c.inSync();
      assertClientMatches(c, expectedView(await etcdContent(root), 'felix', ''), 'felix client, authenticated etcd');

      // The watch stream is authorized too.
      const later = node('node-3');
      await root.put(later.key).value(JSON.stringify(later.value));
      await waitFor(() => c.get(later.key) !== undefined, 'a watched write to reach the client');
      assertClientMatches(c, expectedView(await etcdContent(root), 'felix', ''), 'after a watched write');
    } finally {
      await clients.stopAll();
      await ts.close();
    }
  });

  test('with a wrong password the server is never ready, and /readyz says why', LIMIT, async (t) => {
    const ts = await serveEtcd({ etcdEndpoints: [etcd.endpoint], etcdUsername: 'root', etcdPassword: 'not-the-password' });
    try {
      const err = await assertNeverInSync(ts, 3000);
      t.diagnostic(`datastoreError: ${err}`);
      // Observed: "3 INVALID_ARGUMENT: etcdserver: authentication failed, invalid user ID or password".
      assert.match(err, /authentication failed|password/i, `datastoreError should name the auth failure: ${JSON.stringify(err)}`);
    } finally {
      await ts.close();
    }
  });

  test('once the credentials work (the user is created), the server syncs, is ready and clears its error', LIMIT, async () => {
    const ts = await serveEtcd({ etcdEndpoints: [etcd.endpoint], etcdUsername: 'late', etcdPassword: 'pw2' });
    try {
      const ds = ts.ds as EtcdDatastore;
      await waitFor(() => ds.lastError !== undefined, 'the first failure');
      assert.notEqual(ts.app.store.status, 'in-sync');
      await root.user('late').create('pw2');
      await root.user('late').addRole('root');
      await waitFor(() => ts.app.store.status === 'in-sync', 'the server to sync once the user exists', 10_000);
      const r = await readyz(ts);
      assert.equal(r.status, 200, `/readyz: ${r.text}`);
      // Datastore.lastError is "the last error ... while it is failing": gone once it works.
      assert.equal(r.body.datastoreError, undefined, `a recovered server reports no datastore error: ${r.text}`);
      const c = clients.make({ url: ts.url, syncerType: 'felix' });
      await c.inSync();
      assertClientMatches(c, expectedView(await etcdContent(root), 'felix', ''), 'felix client after the user was created');
    } finally {
      await clients.stopAll();
      await ts.close();
    }
  });
});
