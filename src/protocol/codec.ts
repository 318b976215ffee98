// Encoding and validating control messages. Inbound bytes are untrusted: anything that is not
// exactly one well-formed message of a known type becomes a ProtocolError naming the problem.
import { Packr, Unpackr } from 'msgpackr';
import { isViewName, needsNode, VIEW_NAMES } from '../model/views.js';
import { DIGEST_SCHEME, isBucketCount } from './digest.js';
import { CloseCode, PROTOCOL_VERSION, type ClientMessage, type ControlMessage, type Hello } from './messages.js';

export const packr = new Packr({ useRecords: false, variableMapSize: true });
export const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });

export class ProtocolError extends Error {
  constructor(readonly code: number, message: string) { super(message); }
}

export function encode(msg: ControlMessage | ClientMessage): Buffer {
  return packr.pack(msg);
}

/** Decodes one msgpack message into a plain object with a string `t`. */
export function decodeMessage(data: Buffer): Record<string, unknown> & { t: string } {
  let msg: unknown;
  try {
    msg = unpackr.unpack(data);
  } catch (err) {
    throw new ProtocolError(CloseCode.malformed, `frame is not valid msgpack: ${(err as Error).message}`);
  }
  if (msg === null || typeof msg !== 'object' || Array.isArray(msg) || msg instanceof Uint8Array) {
    throw new ProtocolError(CloseCode.malformed, 'frame is not a msgpack map');
  }
  const t = (msg as { t?: unknown }).t;
  if (typeof t !== 'string') throw new ProtocolError(CloseCode.malformed, 'message has no string field "t"');
  return msg as Record<string, unknown> & { t: string };
}

/** Untrusted values in error messages: never throws (BigInt, cycles) and stays short. */
function show(x: unknown): string {
  try {
    return (typeof x === 'bigint' ? `${x}n` : String(JSON.stringify(x))).slice(0, 40);
  } catch {
    return typeof x;
  }
}

const isCount = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
const NODE_NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

/** Validates what a client may send; throws ProtocolError. */
export function decodeClientMessage(data: Buffer): ClientMessage {
  const m = decodeMessage(data);
  switch (m.t) {
    case 'hello':
      return validateHello(m);
    case 'pong':
      if (typeof m.ts !== 'number' || !Number.isFinite(m.ts)) throw new ProtocolError(CloseCode.malformed, 'pong needs a finite numeric ts');
      return { t: 'pong', ts: m.ts };
    case 'ack':
      if (!isCount(m.seq)) throw new ProtocolError(CloseCode.malformed, 'ack needs a non-negative integer seq');
      if (m.bytes !== undefined && !isCount(m.bytes)) throw new ProtocolError(CloseCode.malformed, 'ack bytes must be a non-negative integer');
      return m.bytes === undefined ? { t: 'ack', seq: m.seq } : { t: 'ack', seq: m.seq, bytes: m.bytes };
    default:
      throw new ProtocolError(CloseCode.unexpectedMessage, `unknown message type ${show(m.t)}`);
  }
}

function validateHello(m: Record<string, unknown>): Hello {
  if (m.v !== PROTOCOL_VERSION) {
    throw new ProtocolError(CloseCode.unsupportedVersion,
      `protocol version ${show(m.v)} is not supported; this server speaks ${PROTOCOL_VERSION}`);
  }
  if (!isViewName(m.syncer)) {
    throw new ProtocolError(CloseCode.badHello, `syncer must be one of ${VIEW_NAMES.join(', ')}`);
  }
  const node = m.node ?? '';
  if (typeof node !== 'string' || (node !== '' && !NODE_NAME.test(node))) {
    throw new ProtocolError(CloseCode.badHello, 'node must be a DNS-1123 node name');
  }
  if (node === '' && needsNode(m.syncer)) {
    throw new ProtocolError(CloseCode.badHello, `syncer ${m.syncer} serves one node's data: hello must name the node`);
  }
  const text = (x: unknown, field: string): string => {
    if (x === undefined) return '';
    if (typeof x !== 'string' || x.length > 256) throw new ProtocolError(CloseCode.badHello, `${field} must be a string of at most 256 characters`);
    return x;
  };
  const hello: Hello = {
    t: 'hello', v: PROTOCOL_VERSION, syncer: m.syncer, node,
    clientName: text(m.clientName, 'clientName'), clientVersion: text(m.clientVersion, 'clientVersion'),
  };
  for (const field of ['resume', 'known'] as const) {
    const r = m[field] as Record<string, unknown> | undefined | null;
    if (r === undefined || r === null) continue;
    if (typeof r !== 'object' || typeof r.epoch !== 'string' || !isCount(r.seq)) {
      throw new ProtocolError(CloseCode.badHello, `${field} must be {epoch: string, seq: non-negative integer}`);
    }
    hello[field] = { epoch: r.epoch, seq: r.seq };
  }
  if (m.revision !== undefined && m.revision !== null) {
    if (typeof m.revision !== 'string' || !/^[0-9]{1,20}$/.test(m.revision)) throw new ProtocolError(CloseCode.badHello, 'revision must be a decimal string');
    hello.revision = m.revision;
  }
  if (m.digest !== undefined && m.digest !== null) {
    const d = m.digest as Record<string, unknown>;
    if (typeof d !== 'object' || typeof d.scheme !== 'number' || !isBucketCount(d.buckets) || !(d.hashes instanceof Uint8Array)) {
      throw new ProtocolError(CloseCode.badHello, 'digest must be {scheme: number, buckets: a power of two ≤ 16384, hashes: bin}');
    }
    if (d.hashes.byteLength !== 8 * d.buckets) throw new ProtocolError(CloseCode.badHello, `digest hashes must be 8 bytes per bucket (${8 * d.buckets}), not ${d.hashes.byteLength}`);
    // A scheme this server does not know is no error: the client gets a snapshot instead.
    if (d.scheme === DIGEST_SCHEME) hello.digest = { scheme: d.scheme, buckets: d.buckets, hashes: d.hashes };
  }
  if (m.compression !== undefined) {
    if (!Array.isArray(m.compression) || !m.compression.every((c) => typeof c === 'string')) {
      throw new ProtocolError(CloseCode.badHello, 'compression must be a list of strings');
    }
    hello.compression = m.compression as string[];
  }
  if (m.serverId !== undefined && m.serverId !== null) hello.serverId = text(m.serverId, 'serverId');
  if (m.flow !== undefined) {
    if (typeof m.flow !== 'boolean') throw new ProtocolError(CloseCode.badHello, 'flow must be a boolean');
    hello.flow = m.flow;
  }
  return hello;
}
