// Every datastore adapter, made at once: for tests and tools that pick one in the same breath.
// The server does not use this (cmd/app.ts loads only the configured adapter).
import type { Config } from '../src/config.js';
import { ConfigError } from '../src/config.js';
import type { Datastore } from '../src/datastore/datastore.js';
import { MemoryDatastore } from '../src/datastore/memory.js';
import { loadResources } from '../src/datastore/seed.js';
import type { Logger } from '../src/logging.js';
import { etcdDatastore } from './datastore-etcd.js';
import { kubernetesDatastore } from './datastore-kubernetes.js';
import { upstreamDatastore } from './datastore-upstream.js';

export { etcdConnection } from './datastore-etcd.js';

export function createDatastore(config: Config, logger: Logger): Datastore {
  switch (config.datastoreType) {
    case 'memory': return new MemoryDatastore(loadResources(config.memorySeedPaths));
    case 'etcdv3': return etcdDatastore(config, logger);
    case 'kubernetes': return kubernetesDatastore(config, logger);
    case 'upstream': return upstreamDatastore(config, logger);
    default: throw new ConfigError(`datastoreType (TYPHA_DATASTORETYPE): ${String(config.datastoreType)} is not available; use memory, etcdv3, kubernetes or upstream`);
  }
}
