// Test support: a whole server (the real wiring of `serve`) on random loopback ports, with a
// memory datastore the test writes to, plus clients and raw sockets to poke it with.
import { after } from 'node:test';
import WebSocket from 'ws';
import { SyncClient, type SyncClientOptions } from '../../client/index.js';
import { startApp, type App } from '../../cmd/app.js';
import { loadConfig, type Config } from '../../src/config.js';
import type { Datastore } from '../../src/datastore/datastore.js';
import { MemoryDatastore } from '../../src/datastore/memory.js';
import { keyForResource } from '../../src/model/kinds.js';
import { silentLogger } from '../../src/logging.js';
import { decodeServerFrame, type DecodedFrame } from '../../src/protocol/frames.js';

export interface TestServer {
  app: App;
  ds: MemoryDatastore;
  url: string;
  close(): Promise<void>;
}

/** The whole server on random loopback ports over the given datastore. */
export async function startServerOn<D extends Datastore>(ds: D, overrides: Partial<Config> = {}): Promise<{ app: App; ds: D; url: string; close(): Promise<void> }> {
  const config: Config = {
    ...loadConfig({ env: {} }),
    serverHost: '127.0.0.1', serverPort: -1,
    healthHost: '127.0.0.1', healthPort: -1,
    prometheusMetricsHost: '127.0.0.1', prometheusMetricsPort: -1,
    ...overrides,
  };
  const app = await startApp(config, silentLogger, ds);
  return { app, ds, url: `ws://127.0.0.1:${app.ports.server}`, close: () => app.close() };
}

export function startTestServer(overrides: Partial<Config> = {}, seed: { key: string; value: unknown }[] = []): Promise<TestServer> {
  return startServerOn(new MemoryDatastore(seed), overrides);
}

export async function waitFor(cond: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Clients that stop themselves when the test ends (call stopAll in an after hook). */
export class Clients {
  readonly all: SyncClient[] = [];
  make(opts: Omit<SyncClientOptions, 'url'> & { url: string }): SyncClient {
    const c = new SyncClient({ initialBackoffMs: 20, maxBackoffMs: 200, ...opts });
    this.all.push(c);
    c.start();
    return c;
  }
  async stopAll(): Promise<void> {
    await Promise.all(this.all.splice(0).map((c) => c.stop()));
  }
}

/** Nothing may hang the run: a regression fails its test instead. */
export const LIMIT = { timeout: 30_000 };

/**
 * Clients and servers of one test file, closed when the file ends: a test that times out skips
 * its own finally.
 */
export function cleanupAfterFile(): { clients: Clients; track: <T extends { close(): Promise<void> }>(s: T) => T } {
  const clients = new Clients();
  const open = new Set<{ close(): Promise<void> }>();
  after(async () => { await clients.stopAll(); await Promise.all([...open].map((s) => s.close())); });
  return { clients, track: (s) => { open.add(s); return s; } };
}

// ---- resources ---------------------------------------------------------------------------

export function node(name: string, extra: Record<string, unknown> = {}) {
  return resource('Node', { name }, { bgp: { ipv4Address: '10.0.0.1/24' }, ...extra });
}

export function wep(nodeName: string, pod: string, ns = 'default', labels: Record<string, string> = {}) {
  return resource('WorkloadEndpoint',
    { name: `${nodeName.replace(/-/g, '--')}-k8s-${pod.replace(/-/g, '--')}-eth0`, namespace: ns, labels },
    { node: nodeName, pod, orchestrator: 'k8s', endpoint: 'eth0', ipNetworks: ['10.244.0.5/32'], profiles: [`kns.${ns}`] });
}

export function resource(kind: string, metadata: Record<string, unknown>, spec: Record<string, unknown>) {
  const value = { apiVersion: 'projectcalico.org/v3', kind, metadata, spec };
  return { key: keyForResource(value), value };
}

// ---- raw sockets -------------------------------------------------------------------------

export interface RawConn {
  ws: WebSocket;
  frames: DecodedFrame[];
  opened: Promise<void>;
  closed: Promise<{ code: number; reason: string }>;
}

/** A bare WebSocket that records every server frame, for protocol-level tests. */
export function rawConnect(url: string, opts: WebSocket.ClientOptions = {}): RawConn {
  const ws = new WebSocket(url, { perMessageDeflate: false, ...opts });
  const frames: DecodedFrame[] = [];
  ws.on('message', (d: Buffer) => frames.push(decodeServerFrame(d)));
  ws.on('error', () => {});
  const opened = new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject); });
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  return { ws, frames, opened, closed };
}
