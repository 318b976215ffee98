import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { Etcd3 } from 'etcd3';
import { makeCerts } from './certs.js';
const dir = mkdtempSync(join(tmpdir(), 'tlsx-'));
const c = makeCerts(dir);
const cca = process.argv[2] === 'cca';
const p = spawn('/usr/bin/etcd', ['--name', 't', '--data-dir', join(dir, 'data'), '--listen-client-urls', 'https://127.0.0.1:23790', '--advertise-client-urls', 'https://127.0.0.1:23790',
 '--listen-peer-urls', 'http://127.0.0.1:23800', '--initial-advertise-peer-urls', 'http://127.0.0.1:23800', '--initial-cluster', 't=http://127.0.0.1:23800',
 '--cert-file', c.serverCert, '--key-file', c.serverKey, '--trusted-ca-file', c.ca, ...(cca ? ['--client-cert-auth'] : []), '--log-level', 'warn', '--logger', 'zap'], { stdio: ['ignore', 'ignore', 'pipe'] });
p.stderr!.on('data', (d) => process.stderr.write('ETCD: ' + d));
await new Promise((r) => setTimeout(r, 1500));
const cl = new Etcd3({ hosts: 'https://127.0.0.1:23790', credentials: { rootCertificate: readFileSync(c.ca), certChain: readFileSync(c.clientCert), privateKey: readFileSync(c.clientKey) } });
try { console.log('get', await cl.get('/x').string()); } catch (e) { console.log('ERR', e); }
cl.close(); p.kill();
