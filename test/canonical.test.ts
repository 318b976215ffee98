// The canonical encoder writes msgpack itself (it is the hottest code of ingest); it must give
// exactly the bytes msgpackr gives for the key-sorted value, which is what PROTOCOL.md specifies.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Packr, unpack } from 'msgpackr';
import { loadResources } from '../src/datastore/seed.js';
import { encodeValue } from '../src/protocol/canonical.js';
import { prng, TEST_LONG, testSeed } from './support/prng.js';

const packr = new Packr({ useRecords: false, variableMapSize: true });

function sorted(v: unknown, top = true): unknown {
  if (Array.isArray(v)) return v.map((x) => sorted(x, false));
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(o).sort()) {
      if (o[k] === undefined) continue;
      if (top && k === 'metadata' && o[k] && typeof o[k] === 'object') {
        const { resourceVersion: _rv, ...rest } = o[k] as Record<string, unknown>;
        out[k] = sorted(rest, false);
      } else out[k] = sorted(o[k], false);
    }
    return out;
  }
  return v;
}

const reference = (v: unknown) => Buffer.from(packr.pack(sorted(v)));

function randomValue(rnd: () => number, depth: number): unknown {
  const r = rnd();
  const strLen = [0, 1, 31, 32, 255, 256, 70000][Math.floor(rnd() * 7)]!;
  if (depth > 3 || r < 0.5) {
    switch (Math.floor(rnd() * 9)) {
      case 0: return 'é€😀x'.repeat(Math.ceil(strLen / 4)).slice(0, strLen);
      case 1: return Math.floor(rnd() * 2 ** 33) - 2 ** 32; // across every int width and beyond
      case 2: return [0, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, -1, -32, -33, -128, -129, -32768, -32769, -(2 ** 31), -(2 ** 31) - 1][Math.floor(rnd() * 18)];
      case 3: return rnd() * 1000 - 500;
      case 4: return rnd() < 0.5;
      case 5: return null;
      case 6: return 'k'.repeat(strLen);
      default: return String(Math.floor(rnd() * 100));
    }
  }
  if (r < 0.75) return Array.from({ length: [0, 3, 15, 16, 17][Math.floor(rnd() * 5)]! }, () => randomValue(rnd, depth + 1));
  const o: Record<string, unknown> = {};
  const n = [0, 2, 15, 16, 20][Math.floor(rnd() * 5)]!;
  for (let i = 0; i < n; i++) o[`${String.fromCharCode(97 + Math.floor(rnd() * 26))}${Math.floor(rnd() * 50)}`] = randomValue(rnd, depth + 1);
  return o;
}

// 2,000 values (with leaves up to 70,000 characters) take about a minute: a stress run, so
// TEST_LONG=1; the default run's 100 still reach every width, nesting and string size.
const VALUES = TEST_LONG ? 2000 : 100;

test(`canonical bytes equal msgpackr on the key-sorted value: ${VALUES} random values`, () => {
  const seed = testSeed('canonical');
  const rnd = prng(seed);
  for (let i = 0; i < VALUES; i++) {
    const v = { metadata: { name: 'x', resourceVersion: '7', labels: randomValue(rnd, 1) }, spec: randomValue(rnd, 0) };
    const got = encodeValue(v);
    assert.deepEqual(got, reference(v), `value ${i} (TEST_SEED=${seed})`);
    assert.deepEqual(unpack(got), sorted(v), 'decodes back to the sorted value');
  }
});

test('canonical bytes equal msgpackr on the key-sorted value: the demo cluster', () => {
  const docs = loadResources([new URL('../examples/demo-cluster', import.meta.url).pathname]);
  assert.ok(docs.length > 50);
  for (const d of docs) assert.deepEqual(encodeValue(d.value), reference(d.value), d.key);
});

test('canonical encoding rejects what JSON cannot hold', () => {
  assert.throws(() => encodeValue({ f: () => 1 }), /function/);
  const deep: Record<string, unknown> = {};
  let cur = deep;
  for (let i = 0; i < 600; i++) cur = (cur.x = {}) as Record<string, unknown>;
  assert.throws(() => encodeValue(deep), /nested/);
});
