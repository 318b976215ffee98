// The client's TLS identity options (client/tls.ts), against a bare wss server made here (an
// https server with a WebSocketServer on it, which accepts connections and says nothing): the
// server's chain must lead to the CA and its certificate carry the expected CN or URI SAN, while
// its hostname is not checked (replicas are dialled by IP); a refused server costs a logged,
// retried attempt; the client's certificate files are read again on every connect.
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { WebSocketServer, type WebSocket } from 'ws';
import { SyncClient, type ClientLogger, type SyncClientOptions } from '../client/index.js';
import { makePki, type IssuedCert, type Pki } from './support/certs.js';
import { LIMIT, waitFor } from './support/harness.js';

const SERVER_CN = 'typha-server';
const SERVER_URI = 'spiffe://k8s.example.com/typha-server';

let pki: Pki;
let clientCert: IssuedCert;
before(() => {
  pki = makePki();
  clientCert = pki.issue({ cn: 'typha-client', usage: 'client' });
});
after(() => pki?.cleanup());

/** Clients made by the tests, stopped when the file ends: a test that times out skips its finally. */
const made = new Set<SyncClient>();
after(() => Promise.all([...made].map((c) => c.stop())));
function mk(o: SyncClientOptions): SyncClient {
  const c = new SyncClient(o);
  made.add(c);
  return c;
}

interface TlsServer {
  url: string;
  /** The client certificate CN of each WebSocket connection accepted. */
  clients: string[];
  sockets: Set<WebSocket>;
  /** TLS handshakes that the server saw fail. */
  handshakeErrors: number;
  close(): Promise<void>;
}

/** A wss server with this certificate that requires a client certificate from the test CA. */
async function wssServer(cert: IssuedCert): Promise<TlsServer> {
  const https: Server = createServer({ cert: cert.cert, key: cert.key, ca: pki.ca, requestCert: true, rejectUnauthorized: true });
  const wss = new WebSocketServer({ server: https });
  const s: TlsServer = {
    url: '', clients: [], sockets: new Set(), handshakeErrors: 0,
    close: async () => {
      for (const ws of s.sockets) ws.terminate();
      await new Promise<void>((r) => wss.close(() => r()));
      https.closeAllConnections();
      await new Promise<void>((r) => https.close(() => r()));
    },
  };
  https.on('tlsClientError', () => { s.handshakeErrors++; });
  wss.on('connection', (ws, req) => {
    s.clients.push(String((req.socket as TLSSocket).getPeerCertificate().subject?.CN));
    s.sockets.add(ws);
    ws.on('close', () => s.sockets.delete(ws));
  });
  await new Promise<void>((r) => https.listen(0, '127.0.0.1', r));
  s.url = `wss://127.0.0.1:${(https.address() as { port: number }).port}`;
  return s;
}

function recordingLogger(): ClientLogger & { failures: string[] } {
  const failures: string[] = [];
  return { failures, debug() {}, info() {}, warn(obj: any, msg) { if (msg === 'cannot connect' || msg?.startsWith('cannot load')) failures.push(String(obj.err)); } };
}

function client(url: string, tls: SyncClientOptions['tls'], log = recordingLogger()) {
  const c = mk({ url, syncerType: 'felix', tls, logger: log, initialBackoffMs: 20, maxBackoffMs: 100 });
  c.start();
  return { c, log };
}

/** The test CA, the client certificate, and these. */
const opts = (o: Partial<NonNullable<SyncClientOptions['tls']>>) => ({ caFile: pki.caFile, certFile: clientCert.certFile, keyFile: clientCert.keyFile, ...o });

/** Connects: the server accepts one WebSocket, with our client certificate, and no attempt failed. */
async function expectConnects(server: TlsServer, tls: SyncClientOptions['tls']): Promise<void> {
  const { c, log } = client(server.url, tls);
  try {
    await waitFor(() => server.clients.length === 1, 'the server to accept the client', 5000);
    assert.deepEqual(server.clients, ['typha-client'], 'the client presented its certificate');
    assert.equal(c.stats.connects, 1);
    assert.deepEqual(log.failures, []);
  } finally {
    await c.stop();
    server.clients.length = 0;
  }
}

/** Refused, again and again (backoff, no crash), each time with an error that matches. */
async function expectRefused(server: TlsServer, tls: SyncClientOptions['tls'], error: RegExp): Promise<string> {
  const { c, log } = client(server.url, tls);
  try {
    await waitFor(() => log.failures.length >= 3, 'three refused attempts', 5000);
    assert.equal(server.clients.length, 0, 'no WebSocket was accepted');
    assert.ok(c.stats.connects >= 3, 'retried');
    assert.equal(c.isInSync, false);
    for (const f of log.failures) assert.match(f, error);
    return log.failures[0]!;
  } finally {
    await c.stop();
  }
}

describe('server identity', () => {
  // No IP SAN for 127.0.0.1 and no DNS name: a hostname check would refuse every one of them.
  let right: TlsServer, impostor: TlsServer, byUri: TlsServer, stranger: TlsServer, expired: TlsServer, notYet: TlsServer;
  before(async () => {
    right = await wssServer(pki.issue({ cn: SERVER_CN, usage: 'server' }));
    impostor = await wssServer(pki.issue({ cn: 'impostor', usage: 'server', uriSan: 'spiffe://k8s.example.com/impostor' }));
    byUri = await wssServer(pki.issue({ cn: 'some-pod-name', usage: 'server', uriSan: ['spiffe://k8s.example.com/other', SERVER_URI] }));
    stranger = await wssServer(pki.otherCa.issue({ cn: SERVER_CN, usage: 'server', uriSan: SERVER_URI }));
    expired = await wssServer(pki.issue({ cn: SERVER_CN, usage: 'server', expired: true }));
    notYet = await wssServer(pki.issue({ cn: SERVER_CN, usage: 'server', notBeforeDaysAgo: -1 }));
  });
  after(async () => { await Promise.all([right, impostor, byUri, stranger, expired, notYet].map((s) => s?.close())); });

  test('right CA and CN: connects, though the certificate names no host or IP', LIMIT, async () => {
    await expectConnects(right, opts({ serverCN: SERVER_CN }));
  });

  test('right CA, wrong CN: refused, naming the CN required and the one found', LIMIT, async () => {
    const err = await expectRefused(impostor, opts({ serverCN: SERVER_CN }), /required CN "typha-server"; it has CN "impostor"/);
    assert.match(err, /URI SANs "spiffe:\/\/k8s.example.com\/impostor"/);
    // The same client settings against the right server do connect: it is the name that failed.
    await expectRefused(right, opts({ serverCN: 'typha-server-2' }), /required CN "typha-server-2"; it has CN "typha-server"/);
  });

  test('URI SAN: one of several matches; a wrong one is refused', LIMIT, async () => {
    await expectConnects(byUri, opts({ serverURISAN: SERVER_URI }));
    await expectRefused(byUri, opts({ serverURISAN: 'spiffe://k8s.example.com/typha' }), /required URI SAN "spiffe:\/\/k8s.example.com\/typha"; it has CN "some-pod-name" and URI SANs/);
    // The right CN but no URI SAN at all, when only the URI SAN is asked for.
    await expectRefused(right, opts({ serverURISAN: SERVER_URI }), /required URI SAN .*; it has CN "typha-server" and no URI SAN/);
  });

  test('both set: either matches; neither is refused naming both', LIMIT, async () => {
    await expectConnects(byUri, opts({ serverCN: SERVER_CN, serverURISAN: SERVER_URI }));
    await expectConnects(right, opts({ serverCN: SERVER_CN, serverURISAN: SERVER_URI }));
    await expectRefused(impostor, opts({ serverCN: SERVER_CN, serverURISAN: SERVER_URI }), /required CN "typha-server" or URI SAN "spiffe:\/\/k8s.example.com\/typha-server"/);
  });

  test('a server certificate from another CA is refused, whatever its names', LIMIT, async () => {
    await expectRefused(stranger, opts({ serverCN: SERVER_CN, serverURISAN: SERVER_URI }), /unable to (verify|get local issuer)/i);
    // Trusting that CA instead (and nothing else) is what makes it pass the chain check.
    const { c, log } = client(stranger.url, opts({ caFile: pki.otherCa.caFile, serverCN: SERVER_CN }));
    try {
      // The server still wants a client certificate from the first CA, which we have.
      await waitFor(() => stranger.clients.length === 1, 'the stranger accepted with its CA trusted');
      assert.deepEqual(log.failures, []);
    } finally {
      await c.stop();
    }
  });

  test('an expired or not yet valid server certificate is refused', LIMIT, async () => {
    await expectRefused(expired, opts({ serverCN: SERVER_CN }), /certificate has expired/);
    await expectRefused(notYet, opts({ serverCN: SERVER_CN }), /certificate is not yet valid/);
  });

  test('without caFile, Node\'s public roots do not vouch for the test CA', LIMIT, async () => {
    // The server sends its CA along (OpenSSL completes the chain from its trust store).
    await expectRefused(right, opts({ caFile: undefined, serverCN: SERVER_CN }), /self-signed certificate in certificate chain|unable to (verify|get local issuer)/i);
  });
});

describe('client certificate files', () => {
  let dir: string;
  let server: TlsServer;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'calico-fanout-client-tls-'));
    server = await wssServer(pki.issue({ cn: SERVER_CN, usage: 'server' }));
  });
  after(async () => { await server?.close(); rmSync(dir, { recursive: true, force: true }); });

  test('rotated files are read again on reconnect: the server sees the new certificate', LIMIT, async () => {
    const first = pki.issue({ cn: 'agent-cert-1', usage: 'client' });
    const second = pki.issue({ cn: 'agent-cert-2', usage: 'client' });
    const certFile = join(dir, 'tls.crt');
    const keyFile = join(dir, 'tls.key');
    copyFileSync(first.certFile, certFile);
    copyFileSync(first.keyFile, keyFile);
    const { c, log } = client(server.url, { caFile: pki.caFile, certFile, keyFile, serverCN: SERVER_CN });
    try {
      await waitFor(() => server.clients.length === 1, 'the first connection');
      assert.deepEqual(server.clients, ['agent-cert-1']);
      copyFileSync(second.certFile, certFile);
      copyFileSync(second.keyFile, keyFile);
      for (const ws of server.sockets) ws.terminate();
      await waitFor(() => server.clients.length === 2, 'the reconnection');
      assert.deepEqual(server.clients, ['agent-cert-1', 'agent-cert-2']);
      assert.equal(c.stats.connects, 2);
      assert.deepEqual(log.failures, []);
    } finally {
      await c.stop();
      server.clients.length = 0;
    }
  });

  test('a missing file is a logged, retried failure until it appears', LIMIT, async () => {
    const certFile = join(dir, 'late.crt');
    const keyFile = join(dir, 'late.key');
    const { c, log } = client(server.url, { caFile: pki.caFile, certFile, keyFile, serverCN: SERVER_CN });
    try {
      await waitFor(() => log.failures.length >= 2, 'two failed attempts');
      assert.match(log.failures[0]!, /cannot read tls\.(certFile|keyFile) .*late\.(crt|key)/);
      assert.equal(c.stats.connects, 0, 'nothing dialled without the files');
      copyFileSync(clientCert.certFile, certFile);
      copyFileSync(clientCert.keyFile, keyFile);
      await waitFor(() => server.clients.length === 1, 'a connection once the files exist');
      assert.deepEqual(server.clients, ['typha-client']);
    } finally {
      await c.stop();
      server.clients.length = 0;
    }
  });

  test('without a client certificate the server (which requires one) refuses the handshake', LIMIT, async () => {
    const before = server.handshakeErrors;
    await expectRefused(server, { caFile: pki.caFile, serverCN: SERVER_CN }, /certificate|alert|socket hang up|ECONNRESET/i);
    assert.ok(server.handshakeErrors > before, 'the server saw failed handshakes');
  });
});

test('settings that cannot work are refused when the client is made', () => {
  assert.throws(() => new SyncClient({ url: 'wss://127.0.0.1:1', syncerType: 'felix', tls: { caFile: '/x' } }), /serverCN or serverURISAN/);
  assert.throws(() => new SyncClient({ url: 'wss://127.0.0.1:1', syncerType: 'felix', tls: { serverCN: 'x', certFile: '/x' } }), /certFile and tls\.keyFile go together/);
  assert.throws(() => new SyncClient({ urls: ['wss://127.0.0.1:1', 'ws://127.0.0.1:2'], syncerType: 'felix', tls: { serverCN: 'x' } }), /ws:\/\/127\.0\.0\.1:2 is not a wss:\/\/ URL/);
});

test('a discovered ws:// URL is not dialled in plaintext when tls is set', LIMIT, async () => {
  const warnings: string[] = [];
  const c = mk({
    discover: async () => ['ws://127.0.0.1:9'], syncerType: 'felix', tls: { serverCN: 'x' }, initialBackoffMs: 20, maxBackoffMs: 50,
    logger: { debug() {}, info() {}, warn(_o, msg) { warnings.push(String(msg)); } },
  });
  c.start();
  try {
    await waitFor(() => warnings.length >= 2, 'two refusals');
    assert.equal(c.stats.connects, 0);
    assert.match(warnings[0]!, /not wss/);
  } finally {
    await c.stop();
  }
});
