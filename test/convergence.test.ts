// Convergence under churn: many clients across all four views, random creates/updates/deletes
// (bursts, rapid rewrites, no-op rewrites), clients dropping and resuming on the way. Afterwards
// every client holds exactly its view of the datastore, with the server's checksum, and no
// client ever saw a key's revision go backwards or a key outside its view.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import type { SyncClient, SyncerType } from '../client/index.js';
import { ViewFilter } from '../src/model/view-filter.js';
import { parseKey } from '../src/model/kinds.js';
import { assertClientMatches, expectedView } from './support/expected.js';
import { Clients, node, resource, sleep, startTestServer, waitFor, wep } from './support/harness.js';
import { prng, testSeed } from './support/prng.js';

const clients = new Clients();
after(() => clients.stopAll());

const NODES = ['n1', 'n2', 'n3', 'n4', 'n5'];

for (let round = 0; round < 2; round++) {
  const seed = testSeed(`convergence round ${round}`) + round;
  test(`60 clients converge under random churn (TEST_SEED=${seed})`, async () => {
    const rnd = prng(seed);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
    const ts = await startTestServer({ ingestBatchWindowSecs: 0.005, historyMaxBytes: 4096 });
    try {
      const gen = (i: number) => {
        const n = pick(NODES);
        switch (Math.floor(rnd() * 6)) {
          case 0: return node(n, { asNumber: 64000 + Math.floor(rnd() * 10) });
          case 1: return resource('CalicoNodeStatus', { name: `${n}-status` }, { node: n, classes: [pick(['Agent', 'BGP', 'Routes'])] });
          case 2: return resource('IPPool', { name: `pool-${i % 3}` }, { cidr: `10.${i % 3}.0.0/16`, blockSize: 26 });
          case 3: return { key: `/calico/ipam/v2/host/${n}/ipv4/block/10.244.${i % 4}.0-26`, value: { cidr: `10.244.${i % 4}.0/26`, node: n, state: 'confirmed' } };
          default: return wep(n, `pod-${i % 20}`, pick(['default', 'frontend']), { gen: String(i) });
        }
      };
      for (let i = 0; i < 60; i++) { const r = gen(i); ts.ds.put(r.key, r.value); }

      const views: [SyncerType, number][] = [['felix', 20], ['bgp', 15], ['tunnel-ip-allocation', 15], ['node-status', 10]];
      const all: { c: SyncClient; syncer: SyncerType; node: string }[] = [];
      const violations: string[] = [];
      for (const [syncer, count] of views) {
        for (let i = 0; i < count; i++) {
          const n = NODES[i % NODES.length]!;
          const filter = new ViewFilter(syncer, n);
          const lastRev = new Map<string, number>();
          const c = clients.make({
            url: ts.url, syncerType: syncer, node: n,
            onUpdates: (us) => {
              for (const u of us) {
                const p = parseKey(u.key);
                if (!p || !filter.def.kinds.has(p.kind)) violations.push(`${syncer}/${n} got ${u.key}`);
                const rev = Number(u.revision);
                if (rev < (lastRev.get(u.key) ?? 0)) violations.push(`${syncer}/${n}: ${u.key} went back to ${rev}`);
                lastRev.set(u.key, rev);
              }
            },
          });
          all.push({ c, syncer, node: n });
        }
      }

      // Churn while clients are syncing, some of them dropping out and coming back.
      for (let step = 0; step < 40; step++) {
        const ops: { key: string; value: unknown }[] = [];
        const burst = 1 + Math.floor(rnd() * 15);
        for (let j = 0; j < burst; j++) {
          const r = gen(Math.floor(rnd() * 60));
          const x = rnd();
          if (x < 0.2) ops.push({ key: r.key, value: null });
          else if (x < 0.3) { const cur = ts.ds.get(r.key); if (cur) ops.push({ key: r.key, value: structuredClone(cur) }); }
          else if (x < 0.4) for (let k = 0; k < 5; k++) ops.push({ key: r.key, value: { ...(r.value as object), rewrite: k } });
          else ops.push(r);
        }
        ts.ds.write(ops.filter((o) => o.value !== null || ts.ds.get(o.key) !== undefined));
        if (rnd() < 0.3) {
          const victim = pick(all).c;
          await victim.stop();
          setTimeout(() => victim.start(), Math.floor(rnd() * 30));
        }
        await sleep(rnd() < 0.5 ? 0 : 5);
      }
      await sleep(50);
      for (const x of all) x.c.start(); // anyone still stopped comes back

      const settled = () => all.every((x) => {
        const s = ts.app.store.checksum(new ViewFilter(x.syncer, x.node));
        const mine = x.c.checksum();
        return x.c.isInSync && mine.count === s.count && mine.value === s.value.toString(16).padStart(16, '0');
      });
      await waitFor(settled, 'every client to match the server checksum', 20_000);
      for (const x of all) assertClientMatches(x.c, expectedView(ts.ds, x.syncer, x.node), `${x.syncer}/${x.node}`);
      assert.deepEqual(violations, []);
      assert.ok(all.some((x) => x.c.stats.resumes > 0), 'some clients resumed');
      assert.equal(all.reduce((n, x) => n + x.c.stats.checksumMismatches, 0), 0, 'no checksum mismatch on the way');
      assert.equal(all.reduce((n, x) => n + x.c.stats.protocolErrors, 0), 0, 'no protocol error on the way');
    } finally {
      await clients.stopAll();
      await ts.close();
    }
  });
}
