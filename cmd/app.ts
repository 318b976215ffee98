// Wires one server process: datastore → ingest → store → WebSocket server, plus the health and
// metrics listeners. Used by `calico-fanout serve` and by tests that want the whole thing.
import type { Server as HttpServer } from 'node:http';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Ingest } from '../dedupe/ingest.js';
import { Store } from '../snapshot/store.js';
import { healthHandler, listenHttp, metricsHandler, portOf, type Handler } from '../server/http-endpoints.js';
import { Rebalancer } from '../server/rebalance.js';
import type { RevisionSource } from '../server/revision-probe.js';
import { FanoutServer } from '../server/server.js';
import { statusPageHandler } from '../server/status-page.js';
import { ReloadingTls } from '../server/tls.js';
import { ViewFilter } from '../src/model/view-filter.js';
import { kubernetesEndpoints } from '../src/discovery.js';
import { ConfigError, effectivePort, type Config } from '../src/config.js';
import { ChurnGenerator } from '../src/datastore/churn.js';
import type { Datastore } from '../src/datastore/datastore.js';
import { withDefaultAllowProfile } from '../src/datastore/default-allow.js';
import { MemoryDatastore } from '../src/datastore/memory.js';
import { loadResources } from '../src/datastore/seed.js';
import { identityPattern, parseAuthorization } from '../src/authorization.js';
import type { Logger } from '../src/logging.js';
import type { SyncerType } from '../src/model/views.js';
import { Metrics } from '../src/metrics.js';

export interface App {
  readonly store: Store;
  readonly server: FanoutServer;
  readonly datastore: Datastore;
  readonly metrics: Metrics;
  readonly ports: { server: number; health?: number; metrics?: number };
  /** SIGTERM: readiness false, no new clients, the connected ones sent away over the shutdown timeout. */
  drain(): Promise<void>;
  close(): Promise<void>;
}

/** The configured datastore; only its client library is loaded (etcd3, @kubernetes/client-node). */
export async function openDatastore(config: Config, logger: Logger): Promise<Datastore> {
  switch (config.datastoreType) {
    case 'memory':
      return new MemoryDatastore(loadResources(config.memorySeedPaths));
    case 'etcdv3':
      return (await import('./datastore-etcd.js')).etcdDatastore(config, logger);
    case 'kubernetes':
      return (await import('./datastore-kubernetes.js')).kubernetesDatastore(config, logger);
    case 'upstream':
      return (await import('./datastore-upstream.js')).upstreamDatastore(config, logger);
    default:
      throw new ConfigError(`datastoreType (TYPHA_DATASTORETYPE): ${String(config.datastoreType)} is not available; use memory, etcdv3, kubernetes or upstream`);
  }
}

/** The rebalancer of the configured mode: peers from the list, or from the Service's EndpointSlices. */
function rebalancerFor(config: Config, server: FanoutServer, logger: Logger): Rebalancer | undefined {
  if (config.connectionRebalancingMode === 'none') return undefined;
  const healthPort = effectivePort(config.healthPort, 9098);
  const replicas = config.connectionRebalancingMode === 'peers'
    ? async () => config.peers
    : (() => {
      const endpoints = kubernetesEndpoints({ namespace: config.k8sNamespace, service: config.k8sServiceName, portName: config.k8sPortName, kubeconfig: config.kubeconfig || undefined });
      // Every replica runs with this configuration: its health port is ours.
      return async () => (await endpoints()).map((u) => `http://${new URL(u).host.replace(/:\d+$/, '')}:${healthPort}`);
    })();
  return new Rebalancer(server, {
    lowerLimit: config.maxConnectionsLowerLimit, upperLimit: config.maxConnectionsUpperLimit,
    pollMs: config.k8sServicePollIntervalSecs * 1000, shedPerSec: config.rebalanceShedPerSec, peers: replicas,
  }, logger);
}

export async function startApp(config: Config, logger: Logger, given?: Datastore): Promise<App> {
  const datastore = given ?? await openDatastore(config, logger);
  // Tiers: a server whose datastore is another calico-fanout.
  const upstream = datastore.upstream;
  const metrics = new Metrics();
  metrics.missingCollectionsOf(() => datastore.missing ?? []);
  const reloaded = (ok: boolean) => metrics.tlsReloads.labels(ok ? 'ok' : 'failed').inc();
  const tls = config.serverCertFile
    ? new ReloadingTls({ certFile: config.serverCertFile, keyFile: config.serverKeyFile, caFile: config.caFile || undefined }, logger.child({ stage: 'tls' }), reloaded)
    : undefined;
  const store = new Store(config.historyMaxBytes, metrics);
  const ingest = new Ingest(store, {
    // A tier below takes its upstream's frames, each already a batch of the upstream's window: a
    // window of its own would add its wait to every change, tier after tier.
    windowMs: upstream ? 0 : config.ingestBatchWindowSecs * 1000,
    maxBatchBytes: config.snapshotChunkBytes,
    usePodCidr: config.usePodCIDR,
  }, metrics, logger.child({ stage: 'ingest' }));
  const server = new FanoutServer(store, {
    host: config.serverHost || '0.0.0.0',
    port: effectivePort(config.serverPort, 5473),
    handshakeTimeoutMs: config.serverHandshakeTimeoutSecs * 1000,
    pingIntervalMs: config.serverPingIntervalSecs * 1000,
    pongTimeoutMs: config.serverPongTimeoutSecs * 1000,
    stallTimeoutMs: config.serverWriteTimeoutSecs * 1000,
    highWaterMark: config.serverHighWaterMarkBytes,
    maxInboundBytes: config.serverMaxInboundMessageBytes,
    chunkBytes: config.snapshotChunkBytes,
    checksumIntervalMs: config.checksumIntervalSecs * 1000,
    snapshotReuseMs: config.snapshotReuseSecs * 1000,
    tls,
    requiredIdentity: [config.clientCN, config.clientURISAN].filter(Boolean).map(identityPattern),
    authorization: parseAuthorization(config.clientAuthorization),
    maxConnections: config.maxConnectionsUpperLimit,
    holdTimeoutMs: config.serverHoldTimeoutSecs * 1000,
    // The datastore says where it stands; an adapter that cannot tell leaves held clients to the timeout.
    revisionSource: datastore.currentRevision ? (datastore as RevisionSource) : undefined,
    openMirror: config.allowUnauthenticatedMirror,
    rootTime: upstream && ((revision) => upstream.rootTime(revision)),
  }, metrics, logger.child({ stage: 'server' }));
  upstream?.bind(server.serverId, (chain) => server.setUpstreamChain(chain));
  const rebalancer = rebalancerFor(config, server, logger.child({ stage: 'rebalance' }));

  const http: HttpServer[] = [];
  const tlsFiles = tls ? [tls] : [];
  const ports: App['ports'] = { server: 0 };
  // Event-loop delay over the last probe period: a loop stuck for seconds serves no one.
  const loopDelay = monitorEventLoopDelay({ resolution: 100 });
  loopDelay.enable();
  const readiness = {
    notLive: () => {
      const stuckMs = loopDelay.max / 1e6;
      loopDelay.reset();
      if (stuckMs > 10_000) return `event loop blocked for ${Math.round(stuckMs)} ms`;
      const idleMs = Date.now() - server.lastTickAt;
      if (idleMs > 3 * config.serverPingIntervalSecs * 1000 + 1000) return `server timers stopped ${Math.round(idleMs)} ms ago`;
      return undefined;
    },
    // A draining server stops being ready at once, so the Service sends no one new to it.
    ready: () => store.status === 'in-sync' && !server.isDraining,
    detail: () => ({
      datastore: datastore.name, datastoreError: datastore.lastError, status: store.status, draining: server.isDraining, seq: store.head,
      // Not there (a CRD not installed): served as empty, and no reason to be unready.
      ...(datastore.missing?.length ? { missingCollections: datastore.missing } : {}),
      // What the other replicas' rebalancers read: the load, and how clients reach this one.
      connections: server.connections.size, serverId: server.serverId, clientUrl: `${tls ? 'wss' : 'ws'}://{host}:${ports.server}`,
      // A tier below: the upstream it follows, and how far behind the root it is.
      ...(upstream ? { upstream: upstream.status() } : {}),
    }),
    view: (syncer: SyncerType) => ({ keys: store.checksum(new ViewFilter(syncer, '')).count }),
  };
  const want: { port: number; handlers: Handler[]; host: string; names: ('health' | 'metrics')[] }[] = [];
  const add = (enabled: boolean, host: string, port: number, dflt: number, name: 'health' | 'metrics', h: Handler) => {
    if (!enabled) return;
    const p = effectivePort(port, dflt);
    const same = p !== 0 ? want.find((w) => w.port === p) : undefined;
    if (same) { same.handlers.push(h); same.names.push(name); } else want.push({ port: p, host: host || '0.0.0.0', handlers: [h], names: [name] });
  };
  add(config.healthEnabled, config.healthHost, config.healthPort, 9098, 'health', healthHandler(readiness));
  add(config.prometheusMetricsEnabled, config.prometheusMetricsHost, config.prometheusMetricsPort, 9093, 'metrics', metricsHandler(metrics));
  // The status page lists clients, so only when asked for and only on a health listener no scraper
  // shares (loadConfig refuses that combination; a Config built by hand gets no page).
  const statusListener = want.find((w) => w.names.includes('health') && !w.names.includes('metrics'));
  if (config.statusPageEnabled && statusListener) statusListener.handlers.push(statusPageHandler({ store, server, datastore, metrics }));

  let churn: ChurnGenerator | undefined;
  try {
    for (const w of want) {
      // The kubelet's probes present no certificate: the CA applies only to a metrics-only port.
      const listenerTls = config.prometheusMetricsCertFile ? new ReloadingTls({
        certFile: config.prometheusMetricsCertFile, keyFile: config.prometheusMetricsKeyFile,
        caFile: w.names.includes('health') ? undefined : config.prometheusMetricsCAFile || undefined,
      }, logger.child({ stage: 'tls' }), reloaded) : undefined;
      if (listenerTls) tlsFiles.push(listenerTls);
      const s = await listenHttp(w.host, w.port, w.handlers, listenerTls);
      http.push(s);
      for (const n of w.names) ports[n] = portOf(s);
    }
    ports.server = (await server.listen()).port;
    rebalancer?.start();
    // Calico's built-in profile enters where every datastore's data does, ahead of it.
    await datastore.start(withDefaultAllowProfile(ingest));
    if (config.simulateChurn > 0 && datastore instanceof MemoryDatastore) {
      churn = new ChurnGenerator(datastore, config.simulateChurn);
      churn.start();
    }
  } catch (err) {
    rebalancer?.stop();
    for (const t of tlsFiles) t.close();
    for (const s of http) s.close();
    await server.close();
    throw err;
  }
  logger.info({ ports, datastore: datastore.name }, 'calico-fanout started');

  return {
    store, server, datastore, metrics, ports,
    async drain() {
      await server.drain(config.shutdownTimeoutSecs * 1000);
    },
    async close() {
      loopDelay.disable();
      rebalancer?.stop();
      for (const t of tlsFiles) t.close();
      churn?.stop();
      await datastore.stop();
      ingest.stop();
      await server.close();
      await Promise.all(http.map((s) => new Promise((r) => { s.close(r); s.closeAllConnections(); })));
    },
  };
}
