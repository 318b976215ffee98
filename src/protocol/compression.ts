// Compressed frames (PROTOCOL.md "Compression"). Large frames (snapshot chunks, digest repair
// replies) travel as `{t: 'compressed', data: bin}`, the bin holding the compressed
// bytes of one whole ordinary frame; the algorithm is the one the welcome named. Snapshot chunks
// are compressed once and the result shared by every client, which is why this is done here and
// not by WebSocket permessage-deflate (a zlib stream per socket, no sharing).
//
// Candidates measured on snapshot frames (BENCHMARKS.md "Compression"): brotli at quality 1
// gave the best ratio of the fast ones (8.0× on endpoints with random identifiers) and compressed
// fastest (670 MB/s); deflate level 1 (6.9×, 350 MB/s) is offered for agents whose language has
// zlib but no brotli. Both ship with Node: nothing to install.
import { brotliCompressSync, brotliDecompressSync, constants, deflateRawSync, inflateRawSync } from 'node:zlib';
import { binSize, writeBinHeader } from './msgpack-raw.js';
import { packr } from './codec.js';

/** Algorithms this implementation speaks, in its order of preference. */
export const COMPRESSIONS = ['brotli', 'deflate'] as const;
export type Compression = (typeof COMPRESSIONS)[number];

/** Frames below this size are sent as they are: small deltas gain little and cost latency. */
export const COMPRESS_MIN_BYTES = 16 << 10;

/** The first of the client's algorithms (its order of preference) that this side speaks. */
export function negotiate(offered: readonly string[] | undefined): Compression | 'none' {
  return (offered ?? []).find((c): c is Compression => (COMPRESSIONS as readonly string[]).includes(c)) ?? 'none';
}

const HEAD = packr.pack({ t: 'compressed', data: null }).subarray(0, -1); // without the nil

/** A whole frame, compressed into a `compressed` frame. */
export function compressFrame(frame: Buffer, alg: Compression): Buffer {
  const data = alg === 'brotli'
    ? brotliCompressSync(frame, { params: { [constants.BROTLI_PARAM_QUALITY]: 1, [constants.BROTLI_PARAM_SIZE_HINT]: frame.length } })
    : deflateRawSync(frame, { level: 1 });
  const out = Buffer.allocUnsafe(HEAD.length + binSize(data.length));
  HEAD.copy(out);
  data.copy(out, writeBinHeader(out, HEAD.length, data.length));
  return out;
}

/** The frame as sent to a client of `alg`: compressed when worth it. */
export function compressLarge(frame: Buffer, alg: Compression | 'none'): Buffer {
  return alg === 'none' || frame.length < COMPRESS_MIN_BYTES ? frame : compressFrame(frame, alg);
}

export function* compressEach(frames: Iterable<Buffer>, alg: Compression | 'none'): Generator<Buffer> {
  for (const f of frames) yield compressLarge(f, alg);
}

/** The frame a `compressed` frame holds; throws on corrupt data or more than `maxBytes` of it. */
export function decompressFrame(data: Uint8Array, alg: Compression, maxBytes: number): Buffer {
  return alg === 'brotli' ? brotliDecompressSync(data, { maxOutputLength: maxBytes }) : inflateRawSync(data, { maxOutputLength: maxBytes });
}
