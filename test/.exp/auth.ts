import { startEtcd } from '../support/etcd.js';
import { etcdClient } from '../../src/datastore/etcd.js';
const etcd = await startEtcd();
const c = etcd.client;
await c.role('root').create();
await c.user('root').create('pw');
await c.user('root').addRole('root');
await c.auth.authEnable({});
for (const [label, pw] of [['good', 'pw'], ['bad', 'nope']] as const) {
  const cl = etcdClient({ endpoints: [etcd.endpoint], username: 'root', password: pw });
  const s = Date.now();
  try { await cl.put('/calico/x').value('1'); console.log(label, await cl.get('/calico/x').string()); } catch (e) { console.log(label, 'ERR', (e as Error).constructor.name, (e as Error).message, Date.now() - s); }
  cl.close();
}
try { console.log('anon', await c.get('/calico/x').string()); } catch (e) { console.log('anon ERR', (e as Error).message); }
await etcd.stop();
