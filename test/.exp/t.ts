import { startEtcd } from '../support/etcd.js';
for (let i = 0; i < 4; i++) { const t0 = Date.now(); const e = await startEtcd(); const t1 = Date.now(); await e.stop(); console.log('start', t1 - t0, 'stop', Date.now() - t1); }
