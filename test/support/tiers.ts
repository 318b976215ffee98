// Test support for tiers: servers whose datastore is another calico-fanout's mirror view, with the
// reconnect timings of a test (the settings' defaults back off up to 10 s).
import { UpstreamDatastore } from '../../cmd/datastore-upstream.js';
import type { Config } from '../../src/config.js';
import { silentLogger } from '../../src/logging.js';
import type { ClientTlsOptions } from '../../client/index.js';
import { startServerOn } from './harness.js';

/** A server of a tier below following `urls`, on random loopback ports (serverPort overridable). */
export function startTier(urls: string[], overrides: Partial<Config> = {}, tls?: ClientTlsOptions) {
  const ds = new UpstreamDatastore({ urls, tls, initialBackoffMs: 20, maxBackoffMs: 300, serverTimeoutMs: 3000, logger: silentLogger });
  return startServerOn(ds, overrides);
}

type Served = Awaited<ReturnType<typeof startTier>>;

/** The upstream a server of a tier below follows, as its readiness reports it. */
export function upstreamOf(ts: Served) {
  return ts.ds.status();
}
