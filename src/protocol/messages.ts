// Protocol v1 messages. PROTOCOL.md is the reference; these types mirror it.
import type { ViewName } from '../model/views.js';

export const PROTOCOL_VERSION = 1;

export type SyncStatus = 'wait-for-datastore' | 'resync-in-progress' | 'in-sync';

export interface ResumeToken { epoch: string; seq: number }

/** A digest of the client's cache (digest.ts): `buckets` hashes of 8 bytes each, big-endian. */
export interface CacheDigest { scheme: number; buckets: number; hashes: Uint8Array }

// Client → server
export interface Hello {
  t: 'hello';
  v: number;
  syncer: ViewName;
  node: string;
  clientName: string;
  clientVersion: string;
  resume?: ResumeToken;
  /**
   * The newest position whose data the client's cache may hold, even where it cannot resume
   * (a snapshot cut off midway). A snapshot sent to it is at least this new, so no key goes
   * back in time at the client.
   */
  known?: ResumeToken;
  /**
   * The newest datastore revision in the client's cache (decimal). A replica behind it holds the
   * client (status only) until it has caught up, so that no key goes back in time at the client.
   */
  revision?: string;
  /** Sent by a client with a non-empty cache: lets any server resync it by difference. */
  digest?: CacheDigest;
  compression?: string[];
  /** The client acknowledges the bytes it has processed (`ack.bytes`): flow control. */
  flow?: boolean;
  /**
   * Mirror view: the asking server's identity. A server refuses it when it is that server, or
   * one above it in the chain to the root (a loop).
   */
  serverId?: string;
}
export interface Pong { t: 'pong'; ts: number }
/** `bytes`: every frame's length received on this connection so far, all processed. */
export interface Ack { t: 'ack'; seq: number; bytes?: number }
export type ClientMessage = Hello | Pong | Ack;

// Server → client (frames carrying updates are described in frames.ts)
export type SyncMode = 'resume' | 'digest' | 'snapshot';
export interface Welcome {
  t: 'welcome';
  v: number;
  serverId: string;
  serverVersion: string;
  epoch: string;
  syncer: ViewName;
  node: string;
  mode: SyncMode;
  /** The algorithm of `compressed` frames to this client, from its hello's list. */
  compression: string;
  /** For a flow-controlled client: bytes the server leaves unacknowledged at most. */
  window?: number;
  /** Mirror view: this server's chain to the root, this server first (PROTOCOL.md "Tiers"). */
  chain?: string[];
}
export interface StatusMsg {
  t: 'status';
  status: SyncStatus;
  /** The server holds this client: its cache (`revision`) is newer than the replica (`replica`). */
  held?: { revision: string; replica: string };
  /** The datastore itself is older than the client's cache (restored): what follows may go back. */
  rewound?: { revision: string; datastore: string };
}
/**
 * Mirror view, once caught up: everything up to the datastore `revision` has been sent, which the
 * root server reached at `at` (ms since the epoch); `chain` when this server's chain changed.
 */
export interface ProgressMsg { t: 'progress'; revision: string; at: number; chain?: string[] }
export interface ChecksumMsg { t: 'checksum'; seq: number; value: string; count: number }
export interface Ping { t: 'ping'; ts: number }
/** `peers`: other replicas' client URLs, tried first when known. */
export interface GoAway { t: 'goaway'; reason: string; retryAfterMs: number; resume: ResumeToken; peers?: readonly string[] }
export interface ErrorMsg { t: 'error'; code: number; message: string }
export type ControlMessage = Welcome | StatusMsg | ProgressMsg | ChecksumMsg | Ping | GoAway | ErrorMsg;

/**
 * WebSocket close codes. 1001/1009 are the RFC's; 4xxx are ours. Every close on a protocol
 * violation is preceded by an `error` frame carrying the same code.
 */
export const CloseCode = {
  goingAway: 1001,
  tooBig: 1009,
  /** Overload or rebalancing: come back later, or go to another replica (RFC 6455 1013). */
  tryAgainLater: 1013,
  malformed: 4001,
  unexpectedMessage: 4002,
  unsupportedVersion: 4003,
  handshakeTimeout: 4004,
  badHello: 4005,
  pongTimeout: 4006,
  stalled: 4007,
  forbidden: 4008,
  /** Mirror view: the asking server is this one, or above it in the chain to the root. */
  loop: 4009,
  internal: 4011,
} as const;
