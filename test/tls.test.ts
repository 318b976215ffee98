// TLS on the client port: mutual TLS with identities from the client certificate (exact CN, URI
// SAN patterns), per-view authorization, certificate reload without dropping connections, and TLS
// on the metrics and health listeners. Certificates are made with openssl (test/support/certs.ts).
import assert from 'node:assert/strict';
import { copyFileSync } from 'node:fs';
import { get as httpsGet } from 'node:https';
import { after, describe, test } from 'node:test';
import type { TLSSocket } from 'node:tls';
import { identityPattern, parseAuthorization } from '../src/authorization.js';
import type { Config } from '../src/config.js';
import { encode } from '../src/protocol/codec.js';
import { CloseCode } from '../src/protocol/messages.js';
import { makePki, type IssuedCert } from './support/certs.js';
import { cleanupAfterFile, LIMIT, rawConnect, resource, startTestServer, waitFor, wep, type RawConn } from './support/harness.js';
import { httpGet, metricValue } from './support/metrics.js';

const { track } = cleanupAfterFile();
const pki = makePki();
after(() => pki.cleanup());

const seed = [
  wep('worker-1', 'pod-1'), wep('worker-2', 'pod-2'),
  resource('Node', { name: 'worker-1' }, { bgp: { ipv4Address: '10.0.0.1/24' } }),
  resource('Node', { name: 'worker-2' }, { bgp: { ipv4Address: '10.0.0.2/24' } }),
];
const serverCert = pki.issue({ cn: 'typha-server', usage: 'server', ips: ['127.0.0.1'] });
const tlsConfig = (extra: Partial<Config> = {}): Partial<Config> => ({ serverCertFile: serverCert.certFile, serverKeyFile: serverCert.keyFile, caFile: pki.caFile, ...extra });

/** A raw WebSocket over TLS presenting `cert` (none: no client certificate). */
function connect(port: number, cert?: IssuedCert, ca = pki.ca): RawConn {
  return rawConnect(`wss://127.0.0.1:${port}`, { ca, ...(cert ? { cert: cert.cert, key: cert.key } : {}) });
}

function hello(c: RawConn, syncer = 'felix', node = ''): void {
  c.ws.send(encode({ t: 'hello', v: 1, syncer, node, clientName: 'tls-test', clientVersion: '0' } as never));
}

/** Opens, says hello, and reports what came back: welcome, or the error and close code. */
async function attempt(port: number, cert: IssuedCert | undefined, syncer = 'felix', node = '', ca = pki.ca): Promise<{ opened: boolean; welcome: boolean; error?: string; code?: number }> {
  const c = connect(port, cert, ca);
  try {
    await c.opened;
  } catch {
    return { opened: false, welcome: false };
  }
  hello(c, syncer, node);
  const closed = await Promise.race([c.closed, waitFor(() => c.frames.some((f) => f.msg.t === 'welcome'), 'welcome', 5000).then(() => undefined)]);
  const error = c.frames.find((f) => f.msg.t === 'error')?.msg.message as string | undefined;
  c.ws.close();
  return { opened: true, welcome: c.frames.some((f) => f.msg.t === 'welcome'), error, code: closed?.code };
}

test('identity patterns: * stays within a path segment, ** spans them, {node} takes a node name', () => {
  const sa = identityPattern('spiffe://cluster.local/ns/calico-system/sa/*');
  assert.ok(sa.test('spiffe://cluster.local/ns/calico-system/sa/calico-node'));
  assert.ok(!sa.test('spiffe://cluster.local/ns/calico-system/sa/a/b'));
  assert.ok(!sa.test('spiffe://cluster.local/ns/calico-systemXsa/calico-node'), 'dots and slashes are literal');
  assert.ok(identityPattern('spiffe://cluster.local/**').test('spiffe://cluster.local/ns/x/sa/y'));
  assert.equal(identityPattern('node:{node}').exec('node:worker-1')?.groups?.node, 'worker-1');
  assert.ok(!identityPattern('typha-client').test('typha-client-2'), 'exact without wildcards');
  assert.throws(() => parseAuthorization(['typha-client=felix|calico']), /not calico/);
  assert.throws(() => parseAuthorization(['no-views']), /identity-pattern=views/);
});

describe('mutual TLS', () => {
  test('the right CA and CN are accepted; a wrong CN is refused with the reason; no certificate, a foreign CA or an expired certificate fail the handshake', LIMIT, async () => {
    const ts = track(await startTestServer(tlsConfig({ clientCN: 'typha-client' }), seed));
    const port = ts.app.ports.server;
    assert.deepEqual(await attempt(port, pki.issue({ cn: 'typha-client', usage: 'client' })), { opened: true, welcome: true, error: undefined, code: undefined });
    const wrong = await attempt(port, pki.issue({ cn: 'someone-else', usage: 'client' }));
    assert.equal(wrong.welcome, false);
    assert.equal(wrong.code, CloseCode.forbidden);
    assert.match(wrong.error ?? '', /forbidden: certificate identity someone-else/);
    assert.equal(await metricValue(ts.app.metrics.connectionsDenied, { reason: 'identity' }), 1);
    assert.equal((await attempt(port, undefined)).opened, false, 'no client certificate');
    assert.equal((await attempt(port, pki.otherCa.issue({ cn: 'typha-client', usage: 'client' }))).opened, false, 'a certificate of another CA');
    assert.equal((await attempt(port, pki.issue({ cn: 'typha-client', usage: 'client', expired: true }))).opened, false, 'an expired certificate');
    assert.equal((await attempt(port, pki.issue({ cn: 'typha-client', usage: 'client' }), 'felix', '', pki.otherCa.ca)).opened, false, 'the client does not trust the server');
  });

  test('a URI SAN pattern admits a whole SPIFFE path; per-view rules and node binding are enforced', LIMIT, async () => {
    const ts = track(await startTestServer(tlsConfig({
      clientURISAN: 'spiffe://cluster.local/**',
      clientAuthorization: ['spiffe://cluster.local/ns/calico-system/sa/calico-node=felix|bgp', 'spiffe://cluster.local/node/{node}=tunnel-ip-allocation|node-status'],
    }), seed));
    const port = ts.app.ports.server;
    const felixAgent = pki.issue({ cn: 'calico-node', usage: 'client', uriSan: 'spiffe://cluster.local/ns/calico-system/sa/calico-node' });
    const nodeAgent = pki.issue({ cn: 'worker-1', usage: 'client', uriSan: 'spiffe://cluster.local/node/worker-1' });
    const outsider = pki.issue({ cn: 'calico-node', usage: 'client', uriSan: 'spiffe://other.domain/ns/calico-system/sa/calico-node' });
    assert.equal((await attempt(port, felixAgent, 'felix')).welcome, true);
    assert.equal((await attempt(port, felixAgent, 'bgp')).welcome, true);
    const denied = await attempt(port, felixAgent, 'node-status', 'worker-1');
    assert.equal(denied.code, CloseCode.forbidden);
    assert.match(denied.error ?? '', /may not request the node-status view/);
    assert.equal((await attempt(port, nodeAgent, 'tunnel-ip-allocation', 'worker-1')).welcome, true, 'its own node');
    const otherNode = await attempt(port, nodeAgent, 'tunnel-ip-allocation', 'worker-2');
    assert.match(otherNode.error ?? '', /only its own node worker-1/);
    assert.equal((await attempt(port, nodeAgent, 'felix')).welcome, false, 'a node identity gets no cluster-wide view');
    assert.match((await attempt(port, outsider, 'felix')).error ?? '', /certificate identity/, 'outside the URI SAN pattern');
    assert.equal(await metricValue(ts.app.metrics.connectionsDenied, { reason: 'authorization' }), 3);
    assert.equal(await metricValue(ts.app.metrics.connectionsDenied, { reason: 'identity' }), 1);
  });

  test('certificates are reloaded when their files change; established connections stay', LIMIT, async () => {
    const dir = pki.dir;
    const a = pki.issue({ cn: 'server-a', usage: 'server', ips: ['127.0.0.1'], name: 'reload-a' });
    const b = pki.issue({ cn: 'server-b', usage: 'server', ips: ['127.0.0.1'], name: 'reload-b' });
    const live = { certFile: `${dir}/live-cert.pem`, keyFile: `${dir}/live-key.pem` };
    copyFileSync(a.certFile, live.certFile);
    copyFileSync(a.keyFile, live.keyFile);
    const ts = track(await startTestServer({ serverCertFile: live.certFile, serverKeyFile: live.keyFile }, seed));
    const port = ts.app.ports.server;
    const cnOf = (c: RawConn) => ((c.ws as unknown as { _socket: TLSSocket })._socket.getPeerCertificate().subject.CN);
    const first = connect(port);
    await first.opened;
    hello(first);
    await waitFor(() => first.frames.some((f) => f.msg.t === 'checksum'), 'first client in sync');
    assert.equal(cnOf(first), 'server-a');

    copyFileSync(b.keyFile, live.keyFile);
    copyFileSync(b.certFile, live.certFile);
    await waitForReload();
    const second = connect(port);
    await second.opened;
    assert.equal(cnOf(second), 'server-b', 'new handshakes get the new certificate');
    assert.equal(first.ws.readyState, first.ws.OPEN, 'the established connection was not dropped');
    ts.ds.put(wep('worker-1', 'pod-3').key, wep('worker-1', 'pod-3').value);
    await waitFor(() => first.frames.some((f) => f.msg.t === 'delta'), 'the old connection still streams');
    first.ws.close();
    second.ws.close();

    async function waitForReload() {
      const start = Date.now();
      while (Date.now() - start < 10_000) {
        if (await metricValue(ts.app.metrics.tlsReloads, { result: 'ok' }) >= 1) return;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error('no reload within 10 s');
    }
  });
});

test('the metrics and health listeners serve TLS with the metrics certificate', LIMIT, async () => {
  const cert = pki.issue({ cn: 'metrics', usage: 'server', ips: ['127.0.0.1'] });
  const ts = track(await startTestServer({ prometheusMetricsCertFile: cert.certFile, prometheusMetricsKeyFile: cert.keyFile }, seed));
  const get = (port: number, path: string) => new Promise<{ status: number; body: string }>((resolve, reject) => {
    httpsGet({ host: '127.0.0.1', port, path, ca: pki.ca }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).on('error', reject);
  });
  const m = await get(ts.app.ports.metrics!, '/metrics');
  assert.equal(m.status, 200);
  assert.match(m.body, /typha_connections_max/);
  assert.equal((await get(ts.app.ports.health!, '/readyz')).status, 200);
  await assert.rejects(httpGet(ts.app.ports.metrics!, '/metrics'), 'plain HTTP is not served');
});
