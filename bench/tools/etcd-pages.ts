// How long etcd takes to list K keys in pages of several sizes, pinned at one revision as the
// etcd adapter lists, against one unpaged range read (etcd 3.4 reads the rest of the range for
// every page, so small pages cost time quadratic in the keys). etcd and this reader on one core.
//   node --import tsx bench/tools/etcd-pages.ts [keys=100000] [pages=500,2000,5000,10000] [rounds=2] [cpus=0]
import { prefixEnd } from '../../src/datastore/etcd.js';
import { startEtcd } from '../../test/support/etcd.js';
import { preload } from '../lib/writer.js';
import { pin } from '../scenarios/steady.js';

const [keys = '100000', pages = '500,2000,5000,10000', rounds = '2', cpus = '0'] = process.argv.slice(2);
const PREFIX = Buffer.from('/calico/');
const END = prefixEnd(PREFIX);
const etcd = await startEtcd({ cpus, progressNotifyMs: 5000 });
try {
  await preload(etcd.client, Number(keys));
  pin(process.pid, cpus);
  const kv = etcd.client.kv;
  const seconds = async (f: () => Promise<unknown>) => { const t = process.hrtime.bigint(); await f(); return Math.round(Number(process.hrtime.bigint() - t) / 1e7) / 100; };
  const out: Record<string, number[]> = {};
  for (let r = 0; r < Number(rounds); r++) {
    (out.unpaged ??= []).push(await seconds(() => kv.range({ key: PREFIX, range_end: END })));
    for (const limit of pages.split(',').map(Number)) {
      (out[`pages of ${limit}`] ??= []).push(await seconds(async () => {
        let key = PREFIX;
        let revision: string | undefined;
        for (;;) {
          const res = await kv.range({ key, range_end: END, limit, revision });
          revision ??= res.header.revision;
          const last = res.kvs[res.kvs.length - 1];
          if (!res.more || !last) break;
          key = Buffer.concat([last.key, Buffer.from([0])]);
        }
      }));
    }
  }
  process.stdout.write(JSON.stringify({ keys: Number(keys), cpus, seconds: out }, null, 2) + '\n');
} finally {
  await etcd.stop();
}
process.exit(0);
