// Wires one server process: datastore → ingest → store → WebSocket server, plus the health and
// metrics listeners. Used by `calico-fanout serve` and by tests that want the whole thing.
import type { Server as HttpServer } from 'node:http';
import { Ingest } from '../dedupe/ingest.js';
import { Store } from '../snapshot/store.js';
import { healthHandler, listenHttp, metricsHandler, portOf, type Handler } from '../server/http-endpoints.js';
import { FanoutServer } from '../server/server.js';
import { ConfigError, effectivePort, type Config } from './config.js';
import { ChurnGenerator } from './datastore/churn.js';
import type { Datastore } from './datastore/datastore.js';
import { EtcdDatastore, type EtcdConnection } from './datastore/etcd.js';
import { KubernetesDatastore } from './datastore/kubernetes.js';
import { MemoryDatastore } from './datastore/memory.js';
import { loadResources } from './datastore/seed.js';
import type { Logger } from './logging.js';
import { Metrics } from './metrics.js';

export interface App {
  readonly store: Store;
  readonly server: FanoutServer;
  readonly datastore: Datastore;
  readonly metrics: Metrics;
  readonly ports: { server: number; health?: number; metrics?: number };
  close(): Promise<void>;
}

/** How to reach etcd, from the settings ('' means not set). */
export function etcdConnection(c: Config): EtcdConnection {
  return {
    endpoints: c.etcdEndpoints, caFile: c.etcdCaFile || undefined, certFile: c.etcdCertFile || undefined,
    keyFile: c.etcdKeyFile || undefined, username: c.etcdUsername || undefined, password: c.etcdPassword || undefined,
  };
}

export function createDatastore(config: Config, logger: Logger): Datastore {
  switch (config.datastoreType) {
    case 'memory':
      return new MemoryDatastore(loadResources(config.memorySeedPaths));
    case 'etcdv3':
      return new EtcdDatastore({
        ...etcdConnection(config),
        prefix: config.etcdPrefix,
        pageSize: config.etcdPageSize,
        progressIntervalMs: config.etcdProgressIntervalSecs * 1000,
        watchTimeoutMs: config.etcdWatchTimeoutSecs * 1000,
        initialBackoffMs: 100,
        maxBackoffMs: 10_000,
        logger: logger.child({ stage: 'etcd' }),
      });
    case 'kubernetes':
      return new KubernetesDatastore({
        kubeconfig: config.kubeconfig,
        pageSize: config.kubernetesPageSize,
        watchTimeoutSecs: config.kubernetesWatchTimeoutSecs,
        inactivityMs: config.kubernetesWatchInactivitySecs * 1000,
        requestTimeoutMs: 60_000,
        initialBackoffMs: 100,
        maxBackoffMs: 10_000,
        logger: logger.child({ stage: 'kubernetes' }),
      });
    default:
      throw new ConfigError(`datastoreType (TYPHA_DATASTORETYPE): ${config.datastoreType} is not available in this build; use memory, etcdv3 or kubernetes`);
  }
}

export async function startApp(config: Config, logger: Logger, datastore: Datastore = createDatastore(config, logger)): Promise<App> {
  const metrics = new Metrics();
  const store = new Store(config.historyMaxBytes, metrics);
  const ingest = new Ingest(store, {
    windowMs: config.ingestBatchWindowSecs * 1000,
    maxBatchBytes: config.snapshotChunkBytes,
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
  }, metrics, logger.child({ stage: 'server' }));

  const http: HttpServer[] = [];
  const ports: App['ports'] = { server: 0 };
  const readiness = {
    // A draining server stops being ready at once, so the Service sends no one new to it.
    ready: () => store.status === 'in-sync' && !server.isDraining,
    detail: () => ({ datastore: datastore.name, datastoreError: datastore.lastError, status: store.status, draining: server.isDraining, seq: store.head, connections: server.connections.size }),
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

  let churn: ChurnGenerator | undefined;
  try {
    for (const w of want) {
      const s = await listenHttp(w.host, w.port, w.handlers);
      http.push(s);
      for (const n of w.names) ports[n] = portOf(s);
    }
    ports.server = (await server.listen()).port;
    await datastore.start(ingest);
    if (config.simulateChurn > 0 && datastore instanceof MemoryDatastore) {
      churn = new ChurnGenerator(datastore, config.simulateChurn);
      churn.start();
    }
  } catch (err) {
    for (const s of http) s.close();
    await server.close();
    throw err;
  }
  logger.info({ ports, datastore: datastore.name }, 'calico-fanout started');

  return {
    store, server, datastore, metrics, ports,
    async close() {
      churn?.stop();
      await datastore.stop();
      ingest.stop();
      await server.close();
      await Promise.all(http.map((s) => new Promise((r) => { s.close(r); s.closeAllConnections(); })));
    },
  };
}
