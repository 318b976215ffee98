// TLS identity for the client, as Typha's client does it: the certificate files are read on every connect, so rotated ones are
// picked up on the next reconnect; the server's chain is verified against the CA, but not its
// hostname (replicas are dialled by IP); instead its certificate must carry the expected common
// name or URI SAN.
import { readFile } from 'node:fs/promises';
import type { ConnectionOptions, PeerCertificate } from 'node:tls';

export interface ClientTlsOptions {
  /** PEM bundle of the CA(s) the server's certificate must chain to; default: Node's root store. */
  caFile?: string;
  /** This client's certificate (PEM, possibly with intermediates) and key, for servers that ask. */
  certFile?: string;
  keyFile?: string;
  /** The server certificate's subject CN must equal this ... */
  serverCN?: string;
  /** ... or one of its URI SANs this (either may match when both are set). */
  serverURISAN?: string;
}

/** Throws on a combination that cannot work (checked once, when the client is made). */
export function validateTlsOptions(tls: ClientTlsOptions): void {
  if (!tls.serverCN && !tls.serverURISAN) {
    // Typha's config validation refuses this too: with the hostname unchecked, any certificate
    // the CA ever signed (a client's included) would pass.
    throw new Error('tls needs serverCN or serverURISAN: the server is identified by its certificate, not its address');
  }
  if (!tls.certFile !== !tls.keyFile) throw new Error('tls.certFile and tls.keyFile go together');
}

/**
 * The tls.connect options for one connection attempt, from files read now (ws hands its client
 * options on to tls.connect; @types/ws mistypes checkServerIdentity, so spread these with a cast).
 * Rejects when a file cannot be read.
 */
export async function loadTlsOptions(tls: ClientTlsOptions): Promise<ConnectionOptions> {
  const read = async (what: string, file: string | undefined) => {
    if (!file) return undefined;
    try {
      return await readFile(file);
    } catch (err) {
      throw new Error(`cannot read tls.${what} ${file}: ${(err as Error).message}`);
    }
  };
  const [ca, cert, key] = await Promise.all([read('caFile', tls.caFile), read('certFile', tls.certFile), read('keyFile', tls.keyFile)]);
  return {
    ...(ca ? { ca } : {}),
    ...(cert && key ? { cert, key } : {}),
    minVersion: 'TLSv1.2',
    // The chain (signature, CA, validity dates, purpose) is verified by Node as usual;
    // checkServerIdentity replaces only the hostname check.
    rejectUnauthorized: true,
    checkServerIdentity: (_host: string, peer: PeerCertificate) => checkIdentity(peer, tls),
  };
}

/**
 * Typha's rule: the leaf's subject CN equals serverCN, or one of its URI SANs equals
 * serverURISAN; either suffices when both are set. Exact matches only. Returns the error
 * (naming what was required and what the certificate has) or undefined.
 */
export function checkIdentity(peer: PeerCertificate, want: Pick<ClientTlsOptions, 'serverCN' | 'serverURISAN'>): Error | undefined {
  const cn = commonName(peer);
  const uris = uriSans(peer.subjectaltname);
  if (want.serverCN && cn === want.serverCN) return undefined;
  if (want.serverURISAN && uris.includes(want.serverURISAN)) return undefined;
  const has = `it has CN ${JSON.stringify(cn ?? '')}${uris.length ? ` and URI SANs ${uris.map((u) => JSON.stringify(u)).join(', ')}` : ' and no URI SAN'}`;
  const required = [
    want.serverCN ? `CN ${JSON.stringify(want.serverCN)}` : undefined,
    want.serverURISAN ? `URI SAN ${JSON.stringify(want.serverURISAN)}` : undefined,
  ].filter(Boolean).join(' or ');
  return Object.assign(new Error(`server certificate does not have the required ${required}; ${has}`), { code: 'ERR_SERVER_IDENTITY' });
}

/** The subject's CN; with several, the last, as Go's pkix.Name keeps it. */
function commonName(peer: PeerCertificate): string | undefined {
  const cn = peer.subject?.CN as string | string[] | undefined;
  return Array.isArray(cn) ? cn.at(-1) : cn;
}

/**
 * The URI entries of Node's subjectaltname string ("DNS:a, URI:spiffe://x, IP Address:1.2.3.4").
 * Node quotes a value that holds a comma, quote or other special character as a JSON string
 * ('URI:"a,b"'), so such a SAN cannot smuggle in a second entry.
 */
export function uriSans(subjectaltname: string | undefined): string[] {
  const out: string[] = [];
  if (!subjectaltname) return out;
  let i = 0;
  const s = subjectaltname;
  while (i < s.length) {
    const colon = s.indexOf(':', i);
    if (colon < 0) break;
    const type = s.slice(i, colon);
    let value: string;
    let next: number;
    if (s[colon + 1] === '"') {
      // A JSON string: find its closing quote, skipping escaped characters.
      let j = colon + 2;
      while (j < s.length && s[j] !== '"') j += s[j] === '\\' ? 2 : 1;
      try { value = JSON.parse(s.slice(colon + 1, j + 1)) as string; } catch { value = s.slice(colon + 2, j); }
      next = s.indexOf(', ', j + 1);
    } else {
      next = s.indexOf(', ', colon + 1);
      value = s.slice(colon + 1, next < 0 ? s.length : next);
    }
    if (type === 'URI') out.push(value);
    if (next < 0) break;
    i = next + 2;
  }
  return out;
}
