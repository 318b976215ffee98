// The fast path given to the Long class etcd3 decodes responses with (src/datastore/etcd-long.ts):
// the same text as long.js's own toString for every value, signed or not, and in place on the
// instance etcd3 really uses, so that a key's revisions read back right from a real etcd.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { etcd3Long, speedUpLongToString } from '../src/datastore/etcd-long.js';
import { haveEtcd, startEtcd, type EtcdServer } from './support/etcd.js';
import { prng, testSeed } from './support/prng.js';

test('Long.toString gives the text BigInt gives, across signed and unsigned 64-bit values and radixes', () => {
  const Long = etcd3Long();
  assert.ok(Long, 'etcd3\'s Long class is found through its dependencies');
  assert.equal(speedUpLongToString(Long), true);
  assert.equal(speedUpLongToString(Long), true, 'installed once, however often asked');
  const seed = testSeed('long');
  const rnd = prng(seed);
  const u32 = () => Math.floor(rnd() * 2 ** 32);
  const highs = [0, 1, 0x1fffff, 0x200000, 0x7fffffff, 0x80000000, 0xffffffff];
  for (let i = 0; i < 20_000; i++) {
    const high = rnd() < 0.5 ? highs[Math.floor(rnd() * highs.length)]! : u32();
    const low = rnd() < 0.1 ? [0, 1, 0xffffffff][Math.floor(rnd() * 3)]! : u32();
    const unsigned = rnd() < 0.3;
    const bits = (BigInt(high) << 32n) | BigInt(low);
    const big = unsigned ? BigInt.asUintN(64, bits) : BigInt.asIntN(64, bits);
    const l = Long.fromBits(low | 0, high | 0, unsigned);
    for (const radix of [undefined, 10, 16]) assert.equal(l.toString(radix), big.toString(radix ?? 10), `${big} radix ${radix} (TEST_SEED=${seed})`);
  }
});

let etcd: EtcdServer;
before(async () => { if (haveEtcd()) etcd = await startEtcd(); });
after(async () => { await etcd?.stop(); });

test('etcd3 decodes through the fast path: revisions of a real etcd read back as its header says', { skip: !haveEtcd() && 'etcd not installed' }, async () => {
  speedUpLongToString();
  const Long = etcd3Long()!;
  let calls = 0;
  const fast = Long.prototype.toString;
  Long.prototype.toString = function (this: unknown, radix?: number) { calls++; return fast.call(this, radix); };
  try {
    const put = await etcd.client.put('/long/a').value('x').exec();
    const res = await etcd.client.kv.range({ key: Buffer.from('/long/a') });
    assert.ok(calls > 0, 'etcd3 turns its 64-bit fields into text through this class');
    assert.equal(res.kvs[0]!.mod_revision, put.header.revision);
    assert.equal(res.kvs[0]!.version, '1');
  } finally {
    Long.prototype.toString = fast;
  }
});
