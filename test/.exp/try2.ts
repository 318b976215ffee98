import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { Etcd3 } from 'etcd3';
import { makeCerts } from './certs.js';
const dir = mkdtempSync(join(tmpdir(), 'tlsx-'));
const c = makeCerts(dir);
console.log((await import("node:child_process")).execFileSync('openssl', ['x509', '-in', c.serverCert, '-noout', '-text']).toString());
