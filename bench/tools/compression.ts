// Which compression for shared snapshot chunks: ratio, compress and decompress speed of each
// candidate on snapshot frames built as the server builds them, from three data sets: the bench
// cluster's values as the harness writes them (their identifiers repeat an 8-digit pattern, so
// they compress unrealistically well), the same with random identifiers (container IDs, interface
// names, pod-template hashes: what real endpoints carry), and the demo cluster.
//   node --import tsx bench/tools/compression.ts [keys=100000] [repeat=3]
// Candidates: Node's zlib (deflate, brotli) always; lz4 (lz4-napi) and zstd (@bokuweb/zstd-wasm)
// when installed (`npm install --no-save lz4-napi @bokuweb/zstd-wasm`): the server uses only zlib.
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { constants, brotliCompressSync, brotliDecompressSync, deflateRawSync, inflateRawSync } from 'node:zlib';
import { loadResources } from '../../src/datastore/seed.js';
import { encodeValue } from '../../src/protocol/canonical.js';
import { chunkFrames, encodeItem } from '../../src/protocol/frames.js';
import { keyOf, valueOf } from '../lib/payload.js';
import { median } from '../lib/report.js';

const keys = Number(process.argv[2] ?? 100_000);
const repeat = Number(process.argv[3] ?? 3);

function randomIds(v: Record<string, any>): Record<string, any> {
  const hex = (bytes: number) => randomBytes(bytes).toString('hex');
  v.metadata.labels['pod-template-hash'] = hex(5);
  Object.assign(v.spec, { containerID: hex(32), interfaceName: `cali${hex(6).slice(0, 11)}`, mac: hex(6).replace(/(..)(?!$)/g, '$1:') });
  return v;
}
const demo = loadResources([fileURLToPath(new URL('../../examples/demo-cluster', import.meta.url))]);
const sets: [string, { key: string; value: Record<string, any> }[]][] = [
  [`bench cluster, ${keys} endpoints as written by the harness`, Array.from({ length: keys }, (_, i) => ({ key: keyOf(i), value: valueOf(i, 1, 1_700_000_000_000_000 + i) }))],
  [`bench cluster, ${keys} endpoints with random identifiers`, Array.from({ length: keys }, (_, i) => ({ key: keyOf(i), value: randomIds(valueOf(i, 1, 1_700_000_000_000_000 + i)) }))],
  [`demo cluster (examples/demo-cluster), ${demo.length} resources`, demo],
];

interface Codec { name: string; compress(b: Buffer): Uint8Array; decompress(b: Uint8Array): Uint8Array }
const codecs: Codec[] = [
  ...[1, 3, 6].map((level) => ({ name: `deflate-${level}`, compress: (b: Buffer) => deflateRawSync(b, { level }), decompress: (b: Uint8Array) => inflateRawSync(b) })),
  ...[1, 4, 6].map((q) => ({
    name: `brotli-${q}`,
    compress: (b: Buffer) => brotliCompressSync(b, { params: { [constants.BROTLI_PARAM_QUALITY]: q, [constants.BROTLI_PARAM_SIZE_HINT]: b.length } }),
    decompress: (b: Uint8Array) => brotliDecompressSync(b),
  })),
];
try {
  const lz4 = await import('lz4-napi' as string);
  codecs.push({ name: 'lz4 (lz4-napi)', compress: (b) => lz4.compressSync(b), decompress: (b) => lz4.uncompressSync(b) });
} catch { console.error('lz4-napi not installed: skipped'); }
try {
  const zstd = await import('@bokuweb/zstd-wasm' as string);
  await zstd.init();
  for (const level of [1, 3]) codecs.push({ name: `zstd-${level} (wasm)`, compress: (b) => zstd.compress(b, level), decompress: (b) => zstd.decompress(b) });
} catch { console.error('@bokuweb/zstd-wasm not installed: skipped'); }

for (const [name, resources] of sets) {
  const items = resources.map((r, i) => encodeItem(r.key, encodeValue(r.value), String(1000 + i)));
  measure(name, [...chunkFrames(items, 256 << 10, (i, last) => ({ t: 'snapshot', seq: keys, i, last }))]);
}

function measure(name: string, frames: Buffer[]): void {
  const total = frames.reduce((n, f) => n + f.length, 0);
  console.log(`\n${name}: ${frames.length} frames, ${(total / 2 ** 20).toFixed(2)} MiB; medians of ${repeat}\n`);
  console.log('| codec | ratio | compress MB/s | decompress MB/s | compress ms per frame |');
  console.log('|---|---|---|---|---|');
  for (const c of codecs) {
    const cs: number[] = [];
    const ds: number[] = [];
    let packed: Uint8Array[] = [];
    for (let r = 0; r < repeat; r++) {
      let t = process.hrtime.bigint();
      packed = frames.map((f) => c.compress(f));
      cs.push(Number(process.hrtime.bigint() - t) / 1e9);
      t = process.hrtime.bigint();
      for (let i = 0; i < packed.length; i++) if (c.decompress(packed[i]!).length !== frames[i]!.length) throw new Error(`${c.name}: round trip changed frame ${i}`);
      ds.push(Number(process.hrtime.bigint() - t) / 1e9);
    }
    const size = packed.reduce((n, p) => n + p.length, 0);
    const mb = total / 1e6;
    console.log(`| ${c.name} | ${(total / size).toFixed(2)} | ${(mb / median(cs)).toFixed(0)} | ${(mb / median(ds)).toFixed(0)} | ${(1000 * median(cs) / frames.length).toFixed(2)} |`);
  }
}
