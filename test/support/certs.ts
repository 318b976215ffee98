// Test PKI made with the openssl CLI: a CA that issues server and client certificates with a
// given CN, URI/DNS/IP SANs and validity window (expired and not-yet-valid ones included), and
// as many further independent CAs as a test needs ("wrong CA"). EC P-256 keys, so it is fast.
//
//   const pki = makePki();                       // a temp dir, removed by pki.cleanup()
//   const srv = pki.issue({ cn: 'typha-server', usage: 'server', ips: ['127.0.0.1'] });
//   https.createServer({ cert: srv.cert, key: srv.key, ca: pki.ca, requestCert: true });
//   const stranger = pki.otherCa.issue({ cn: 'typha-server', usage: 'server' });
//
// Certificates are signed with `openssl ca`, whose -startdate/-enddate set any validity window
// (OpenSSL 3.0's `x509 -req` can only start one now).
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const OPENSSL = process.env.OPENSSL ?? '/usr/bin/openssl';
const DAY_MS = 86_400_000;

export interface IssueOptions {
  /** Subject common name. */
  cn: string;
  /** serverAuth, clientAuth, or both in the extended key usage. */
  usage: 'server' | 'client' | 'both';
  /** URI SANs, e.g. 'spiffe://k8s.example.com/typha-server'. */
  uriSan?: string | string[];
  dnsNames?: string[];
  ips?: string[];
  /** notAfter = now + days (default 2; 0 or negative: already expired). */
  days?: number;
  /** notBefore = now - notBeforeDaysAgo days (default: 5 minutes ago; negative: not yet valid). */
  notBeforeDaysAgo?: number;
  /** Shorthand for a certificate that expired yesterday (valid from 3 days ago to 1 day ago). */
  expired?: boolean;
  /** Base name of the files (default: derived from cn and a counter). */
  name?: string;
}

export interface IssuedCert {
  certFile: string;
  keyFile: string;
  /** PEM text of the certificate and the key. */
  cert: string;
  key: string;
  notBefore: Date;
  notAfter: Date;
}

export interface Ca {
  readonly name: string;
  /** The CA certificate (PEM file and text): what a peer trusts. */
  readonly caFile: string;
  readonly ca: string;
  issue(opts: IssueOptions): IssuedCert;
}

export interface Pki extends Ca {
  readonly dir: string;
  /** A second CA, unrelated to the first: its certificates must be refused. */
  readonly otherCa: Ca;
  /** Yet another independent CA. */
  newCa(name: string): Ca;
  /** Removes the directory if makePki created it. */
  cleanup(): void;
}

/** A PKI in `dir` (created if missing), or in a new temp dir. */
export function makePki(dir?: string): Pki {
  const own = dir === undefined;
  const root = dir ?? mkdtempSync(join(tmpdir(), 'calico-fanout-pki-'));
  mkdirSync(root, { recursive: true });
  const main = makeCa(root, 'ca');
  let other: Ca | undefined;
  return {
    get name() { return main.name; },
    get caFile() { return main.caFile; },
    get ca() { return main.ca; },
    issue: (o) => main.issue(o),
    dir: root,
    get otherCa() { return (other ??= makeCa(root, 'other-ca')); },
    newCa: (name) => makeCa(root, name),
    cleanup: () => { if (own) rmSync(root, { recursive: true, force: true }); },
  };
}

function makeCa(root: string, name: string): Ca {
  if (!/^[\w.-]+$/.test(name)) throw new Error(`CA name ${name}: letters, digits, '.', '_' and '-' only`);
  const dir = join(root, name);
  mkdirSync(join(dir, 'issued'), { recursive: true });
  const openssl = (...args: string[]) => execFileSync(OPENSSL, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'ca.key');
  openssl('req', '-x509', '-new', '-key', 'ca.key', '-out', 'ca.crt', '-days', '3650', '-sha256', '-subj', `/CN=${escapeDn(`${name} test CA`)}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    '-addext', 'subjectKeyIdentifier=hash');
  writeFileSync(join(dir, 'index.txt'), '');
  writeFileSync(join(dir, 'serial'), `${randomSerial()}\n`);
  writeFileSync(join(dir, 'ca.cnf'), [
    '[ca]', 'default_ca = test_ca',
    '[test_ca]', `dir = ${dir}`, 'database = $dir/index.txt', 'new_certs_dir = $dir/issued', 'serial = $dir/serial',
    'certificate = $dir/ca.crt', 'private_key = $dir/ca.key', 'default_md = sha256', 'policy = any',
    'unique_subject = no', 'copy_extensions = none', 'email_in_dn = no',
    '[any]', 'commonName = supplied', '',
  ].join('\n'));
  const caFile = join(dir, 'ca.crt');
  const ca = readFileSync(caFile, 'utf8');
  let n = 0;

  return {
    name, caFile, ca,
    issue(o: IssueOptions): IssuedCert {
      const base = o.name ?? `${++n}-${o.cn.replace(/[^\w.-]+/g, '_').slice(0, 40)}`;
      if (!/^[\w.-]+$/.test(base)) throw new Error(`certificate name ${base}: letters, digits, '.', '_' and '-' only`);
      const now = Date.now();
      const notBefore = new Date(o.expired && o.notBeforeDaysAgo === undefined ? now - 3 * DAY_MS : now - (o.notBeforeDaysAgo ?? 5 / 1440) * DAY_MS);
      const notAfter = new Date(o.expired && o.days === undefined ? now - DAY_MS : now + (o.days ?? 2) * DAY_MS);
      if (notAfter <= notBefore) throw new Error(`certificate ${base}: notAfter ${notAfter.toISOString()} is not after notBefore ${notBefore.toISOString()}`);
      const eku = { server: 'serverAuth', client: 'clientAuth', both: 'serverAuth,clientAuth' }[o.usage];
      if (!eku) throw new Error(`usage must be server, client or both, not ${String(o.usage)}`);
      const sans = [
        ...[o.uriSan ?? []].flat().map((u) => `URI:${u}`),
        ...(o.dnsNames ?? []).map((d) => `DNS:${d}`),
        ...(o.ips ?? []).map((ip) => `IP:${ip}`),
      ];
      if (sans.some((s) => /[,\n]/.test(s))) throw new Error('SANs may not contain commas or newlines here');
      const ext = join(dir, 'issued', `${base}.ext`);
      writeFileSync(ext, [
        '[v3]', 'basicConstraints = critical,CA:FALSE', 'keyUsage = critical,digitalSignature,keyEncipherment',
        `extendedKeyUsage = ${eku}`, 'subjectKeyIdentifier = hash', 'authorityKeyIdentifier = keyid',
        ...(sans.length ? [`subjectAltName = ${sans.join(',')}`] : []), '',
      ].join('\n'));
      const keyFile = join(dir, 'issued', `${base}.key`);
      const csr = join(dir, 'issued', `${base}.csr`);
      const certFile = join(dir, 'issued', `${base}.crt`);
      openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', keyFile);
      openssl('req', '-new', '-key', keyFile, '-out', csr, '-subj', `/CN=${escapeDn(o.cn)}`);
      openssl('ca', '-batch', '-config', 'ca.cnf', '-in', csr, '-out', certFile, '-notext',
        '-startdate', asn1Time(notBefore), '-enddate', asn1Time(notAfter), '-extfile', ext, '-extensions', 'v3');
      return { certFile, keyFile, cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8'), notBefore, notAfter };
    },
  };
}

/** YYYYMMDDHHMMSSZ (GeneralizedTime, which openssl ca accepts next to UTCTime). */
function asn1Time(d: Date): string {
  return d.toISOString().replace(/[-:T]/g, '').replace(/\.\d+Z$/, 'Z');
}

function escapeDn(s: string): string {
  return s.replace(/[\\/+=]/g, (c) => `\\${c}`);
}

function randomSerial(): string {
  // An even number of hex digits, the first nonzero and below 8 (a positive serial).
  return `${1 + Math.floor(Math.random() * 7)}${Array.from({ length: 15 }, () => Math.floor(Math.random() * 16).toString(16)).join('')}`;
}
