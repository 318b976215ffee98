// The etcd v3 adapter as the settings configure it. Its own module so that only a server on etcd
// loads the etcd3 client.
import type { Config } from '../src/config.js';
import { EtcdDatastore, type EtcdConnection } from '../src/datastore/etcd.js';
import type { Logger } from '../src/logging.js';

/** How to reach etcd, from the settings ('' means not set). */
export function etcdConnection(c: Config): EtcdConnection {
  return {
    endpoints: c.etcdEndpoints, caFile: c.etcdCaFile || undefined, certFile: c.etcdCertFile || undefined,
    keyFile: c.etcdKeyFile || undefined, username: c.etcdUsername || undefined, password: c.etcdPassword || undefined,
  };
}

export function etcdDatastore(config: Config, logger: Logger): EtcdDatastore {
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
}
