// The server's options, shared by the server and its connections.
import type { AuthRule } from '../src/authorization.js';
import type { RevisionSource } from './revision-probe.js';
import type { ReloadingTls } from './tls.js';

export interface ServerOptions {
  host: string;
  port: number;
  handshakeTimeoutMs: number;
  pingIntervalMs: number;
  pongTimeoutMs: number;
  /** A client whose socket stays above the high-water mark this long is closed. */
  stallTimeoutMs: number;
  highWaterMark: number;
  /** Largest frame a client may send (ws maxPayload). */
  maxInboundBytes: number;
  chunkBytes: number;
  checksumIntervalMs: number;
  snapshotReuseMs: number;
  /** How long clients are told to wait before reconnecting after a shutdown goaway. */
  shutdownRetryAfterMs: number;
  /** TLS on the client port (mutual when it has a CA). */
  tls: ReloadingTls | undefined;
  /** A client must prove one identity matching one of these (CN / URI SAN patterns); empty: any. */
  requiredIdentity: readonly RegExp[];
  authorization: readonly AuthRule[];
  /** Connections above this many get goaway {reason: overload}; the rebalancer lowers it to the fair share. */
  maxConnections: number;
  /** Base of the jittered retryAfterMs in overload and rebalance goaways. */
  overloadRetryMs: number;
  /** A client whose cache is newer than this replica is held at most this long, then sent away. */
  holdTimeoutMs: number;
  /** Where the datastore stands, for telling a lagging replica from a restored datastore. */
  revisionSource: RevisionSource | undefined;
  /** Without authorization rules, serve the mirror view to any client (TYPHA_ALLOWUNAUTHENTICATEDMIRROR). */
  openMirror: boolean;
  /** A server of a tier below: when the root server reached a revision, as the upstream said. */
  rootTime: ((revision: number) => number | undefined) | undefined;
}

export const DEFAULT_SERVER_OPTIONS: ServerOptions = {
  host: '0.0.0.0',
  port: 5473,
  handshakeTimeoutMs: 10_000,
  pingIntervalMs: 10_000,
  pongTimeoutMs: 60_000,
  stallTimeoutMs: 120_000,
  highWaterMark: 1 << 20,
  maxInboundBytes: 256 << 10,
  chunkBytes: 256 << 10,
  checksumIntervalMs: 30_000,
  snapshotReuseMs: 1_000,
  shutdownRetryAfterMs: 0,
  tls: undefined,
  requiredIdentity: [],
  authorization: [],
  maxConnections: 10_000,
  overloadRetryMs: 2_000,
  holdTimeoutMs: 10_000,
  revisionSource: undefined,
  openMirror: false,
  rootTime: undefined,
};
