// TLS for the client port and the health/metrics listeners. Certificates are read at start and
// read again whenever a file changes (a Kubernetes Secret volume swaps them through a symlink):
// new handshakes get the new context, established connections keep theirs. Typha reads them once
// and needs a pod restart to rotate.
import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import type { SecureContextOptions, Server as TlsServer, TLSSocket } from 'node:tls';
import type { Logger } from '../src/logging.js';

export interface TlsFiles {
  certFile: string;
  keyFile: string;
  /** Client certificates must chain to this CA (mutual TLS); none: no client certificate asked. */
  caFile?: string;
}

/** How often the files are checked for a change (fs.watchFile polls; symlink swaps are seen). */
const POLL_MS = 500;

export class ReloadingTls {
  private current: SecureContextOptions;
  private readonly servers: TlsServer[] = [];
  private readonly files: string[];

  constructor(private readonly tls: TlsFiles, private readonly logger: Logger, private readonly onReload?: (ok: boolean) => void) {
    this.current = this.read();
    this.files = [tls.certFile, tls.keyFile, ...(tls.caFile ? [tls.caFile] : [])];
    for (const f of this.files) watchFile(f, { interval: POLL_MS, persistent: false }, () => this.reload());
  }

  /** Options for a TLS server: the current files, a client certificate required when there is a CA. */
  serverOptions(): SecureContextOptions & { requestCert: boolean; rejectUnauthorized: boolean; minVersion: 'TLSv1.2' } {
    const mutual = Boolean(this.tls.caFile);
    return { ...this.current, requestCert: mutual, rejectUnauthorized: mutual, minVersion: 'TLSv1.2' };
  }

  /** Servers whose context follows the files. */
  attach(server: TlsServer): void {
    this.servers.push(server);
  }

  close(): void {
    for (const f of this.files) unwatchFile(f);
  }

  private read(): SecureContextOptions {
    return {
      cert: readFileSync(this.tls.certFile),
      key: readFileSync(this.tls.keyFile),
      ...(this.tls.caFile ? { ca: readFileSync(this.tls.caFile) } : {}),
    };
  }

  private reload(): void {
    try {
      const next = this.read();
      // setSecureContext throws on a key that does not match its certificate: the old one stays.
      for (const s of this.servers) s.setSecureContext(next);
      this.current = next;
      this.logger.info({ cert: this.tls.certFile }, 'TLS certificates reloaded');
      this.onReload?.(true);
    } catch (err) {
      // Half-written files during a rotation land here too; the next change tries again.
      this.logger.warn({ cert: this.tls.certFile, err: (err as Error).message }, 'TLS certificates not reloaded; keeping the current ones');
      this.onReload?.(false);
    }
  }
}

/** What a verified client certificate proves: its subject CN and its URI SANs. */
export function peerIdentities(socket: TLSSocket): string[] {
  const cert = socket.getPeerCertificate();
  if (!cert || Object.keys(cert).length === 0) return [];
  const out: string[] = [];
  const cn = cert.subject?.CN;
  if (typeof cn === 'string' && cn) out.push(cn);
  for (const san of (cert.subjectaltname ?? '').split(', ')) if (san.startsWith('URI:')) out.push(san.slice(4));
  return out;
}
