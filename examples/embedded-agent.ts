// An agent embedding the client library: keeps a map of this node's workload endpoints up to
// date. Run against `npm start` with:  node --import tsx examples/embedded-agent.ts worker-1
import { SyncClient } from '../client/index.js';

const nodeName = process.argv[2] ?? 'worker-1';
const local = new Map<string, string[]>(); // endpoint key → its IPs

const client = new SyncClient({
  url: process.env.FANOUT_URL ?? 'ws://127.0.0.1:5473',
  syncerType: 'felix',
  node: nodeName,
  onUpdates(updates) {
    for (const u of updates) {
      if (u.kind !== 'WorkloadEndpoint') continue;
      if (u.value === null || u.value.spec?.node !== nodeName) local.delete(u.key);
      else local.set(u.key, u.value.spec.ipNetworks ?? []);
    }
  },
  onStatus: (s) => console.log(`status: ${s}`),
});

client.start();
await client.inSync();
console.log(`${nodeName} has ${local.size} local endpoints:`);
for (const [key, ips] of local) console.log(`  ${key.split('/').pop()} ${ips.join(', ')}`);
await client.stop();
