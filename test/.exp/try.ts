import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeCerts } from './certs.js';
import { startEtcd } from '../support/etcd.js';
import { etcdClient } from '../../src/datastore/etcd.js';
const dir = mkdtempSync(join(tmpdir(), 'tlsx-'));
const c = makeCerts(dir);
const t0 = Date.now();
const etcd = await startEtcd({ tls: { caFile: c.ca, certFile: c.serverCert, keyFile: c.serverKey, clientCertAuth: true } });
console.log('etcd up', Date.now() - t0, etcd.endpoint);
await etcd.client.put('/x').value('1');
for (const [label, o] of [['good', { caFile: c.ca, certFile: c.clientCert, keyFile: c.clientKey }], ['wrongca', { caFile: c.otherCa, certFile: c.clientCert, keyFile: c.clientKey }], ['nocert', { caFile: c.ca }]] as const) {
  const cl = etcdClient({ endpoints: [etcd.endpoint], ...o });
  const s = Date.now();
  try { console.log(label, await cl.get('/x').string()); } catch (e) { console.log(label, 'ERR', (e as Error).constructor.name, (e as Error).message, Date.now() - s); }
  cl.close();
}
await etcd.stop();
