// Credentials for the Kubernetes API that can change while the server runs, found as client-go
// finds them: a token file (a kubeconfig user's `tokenFile`, or client-node's `token-file`, or the
// in-cluster projected service-account token) is read again at least every minute and at once
// after a 401; an exec credential plugin is run again when its credential expires or after a
// 401; an inline token is static. Anything else (client certificates, basic auth, other auth
// providers) is client-node's, applied per request.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { delimiter, dirname, isAbsolute, join, resolve, sep } from 'node:path';
import { KubeConfig, type User } from '@kubernetes/client-node';
import { parse } from 'yaml';

/** What one request carries: an Authorization header value, and a client certificate from a plugin. */
export interface Authorization {
  header?: string;
  cert?: string;
  key?: string;
}

export interface Credentials {
  /** What the next request carries. */
  current(): Promise<Authorization>;
  /**
   * A request that carried `used` was answered 401: read the file or run the plugin again on
   * the next request, unless that already happened since (concurrent 401s refresh once).
   */
  rejected(used: Authorization): void;
}

/** A token file is read again once what was read is this old (one minute, less ten seconds of leeway). */
export const TOKEN_FILE_MAX_AGE_MS = 50_000;

/** Token files of kubeconfig users, by user name, that client-node does not keep (per loaded config). */
const tokenFiles = new WeakMap<KubeConfig, { files: Map<string, string>; dir: string }>();
const memo = new WeakMap<KubeConfig, Credentials>();

/**
 * Loads a kubeconfig file with client-node, keeping each user's token file (either spelling,
 * relative paths against the file's directory) to be read per request instead of once.
 */
export function loadKubeconfigFile(kc: KubeConfig, file: string): void {
  const dir = dirname(resolve(file));
  const doc = parse(readFileSync(file, 'utf8')) as { users?: { name?: string; user?: Record<string, unknown> }[] } | null;
  const files = new Map<string, string>();
  for (const u of doc?.users ?? []) {
    const path = u?.user?.tokenFile ?? u?.user?.['token-file'];
    if (u?.user) { delete u.user.tokenFile; delete u.user['token-file']; }
    if (typeof u?.name === 'string' && typeof path === 'string' && path) files.set(u.name, isAbsolute(path) ? path : join(dir, path));
  }
  kc.loadFromString(JSON.stringify(doc ?? {}));
  kc.makePathsAbsolute(dir);
  tokenFiles.set(kc, { files, dir });
}

/** $KUBECONFIG, else ~/.kube/config: one file is loaded as above; several are merged by client-node. */
export function loadDefaultKubeconfig(kc: KubeConfig): void {
  const env = (process.env.KUBECONFIG ?? '').split(delimiter).filter(Boolean);
  const files = env.length ? env.filter((f) => existsSync(f)) : [join(homedir(), '.kube', 'config')].filter((f) => existsSync(f));
  if (files.length === 1) return loadKubeconfigFile(kc, files[0]!);
  kc.loadFromDefault();
  // client-node read any `token-file` once; the first file naming a user wins, as in the merge.
  const found = new Map<string, string>();
  for (const f of files) {
    const doc = parse(readFileSync(f, 'utf8')) as { users?: { name?: string; user?: Record<string, unknown> }[] } | null;
    for (const u of doc?.users ?? []) {
      const path = u?.user?.tokenFile ?? u?.user?.['token-file'];
      if (typeof u?.name === 'string' && typeof path === 'string' && path && !found.has(u.name)) {
        found.set(u.name, isAbsolute(path) ? path : join(dirname(resolve(f)), path));
      }
    }
  }
  tokenFiles.set(kc, { files: found, dir: process.cwd() });
}

/** The current user stripped of what credentialsFor handles, for client-node to apply TLS and the rest. */
export function userForTls(kc: KubeConfig): User | null {
  const user = kc.getCurrentUser();
  if (!user || !handles(kc, user)) return user;
  const { token: _t, exec: _e, authProvider, ...rest } = user;
  return { ...rest, ...(isTokenFileProvider(authProvider) ? {} : { authProvider }) } as User;
}

/** One Credentials per loaded configuration, so every request shares its cache. */
export function credentialsFor(kc: KubeConfig, opts: { now?: () => number } = {}): Credentials {
  let c = memo.get(kc);
  if (!c) memo.set(kc, (c = build(kc, opts.now ?? Date.now)));
  return c;
}

function isTokenFileProvider(p: unknown): p is { config: { tokenFile: string } } {
  return typeof (p as { config?: { tokenFile?: unknown } } | undefined)?.config?.tokenFile === 'string';
}

function handles(kc: KubeConfig, user: User): boolean {
  return tokenFiles.get(kc)?.files.has(user.name) || isTokenFileProvider(user.authProvider) || !!user.token || !!user.exec;
}

function build(kc: KubeConfig, now: () => number): Credentials {
  const user = kc.getCurrentUser();
  if (!user) return { current: async () => ({}), rejected: () => {} };
  const file = tokenFiles.get(kc)?.files.get(user.name) ?? (isTokenFileProvider(user.authProvider) ? user.authProvider.config.tokenFile : undefined);
  // As client-go: a readable token file wins over an inline token, and any token over a plugin.
  if (file) return new FileToken(file, user.token, now);
  if (user.token) { const auth = { header: `Bearer ${user.token}` }; return { current: async () => auth, rejected: () => {} }; }
  if (user.exec) return new ExecPlugin(user.exec, tokenFiles.get(kc)?.dir ?? process.cwd(), now);
  if (user.username !== undefined) {
    const auth = { header: `Basic ${Buffer.from(`${user.username}:${user.password ?? ''}`).toString('base64')}` };
    return { current: async () => auth, rejected: () => {} };
  }
  // No credentials (a client certificate, or none: an http server of a test cluster or proxy).
  if (!user.authProvider) return { current: async () => ({}), rejected: () => {} };
  // Other auth providers (oidc, ...): client-node's, per request.
  return {
    async current() {
      const o: { headers: Record<string, string>; auth?: string } = { headers: {} };
      await kc.applyToHTTPSOptions(o);
      return o.headers.Authorization ? { header: o.headers.Authorization } : {};
    },
    rejected() {},
  };
}

class FileToken implements Credentials {
  private auth: Authorization | undefined;
  private readAt = -Infinity;

  constructor(private readonly path: string, private readonly inline: string | undefined, private readonly now: () => number) {}

  async current(): Promise<Authorization> {
    if (this.auth && this.now() - this.readAt < TOKEN_FILE_MAX_AGE_MS) return this.auth;
    try {
      const token = (await readFile(this.path, 'utf8')).trim();
      if (!token) throw new Error(`the token file ${this.path} is empty`);
      if (this.auth?.header !== `Bearer ${token}`) this.auth = { header: `Bearer ${token}` };
      this.readAt = this.now();
    } catch (err) {
      // A file being rewritten can be missing or empty for a moment: keep what was read last.
      this.auth ??= this.inline ? { header: `Bearer ${this.inline}` } : undefined;
      if (!this.auth) throw err;
    }
    return this.auth;
  }

  rejected(used: Authorization): void {
    if (used === this.auth) this.readAt = -Infinity;
  }
}

interface ExecConfig { command?: string; args?: string[]; env?: { name: string; value: string }[]; apiVersion?: string }

class ExecPlugin implements Credentials {
  private auth: Authorization | undefined;
  private expires: number | undefined;
  private running: Promise<Authorization> | undefined;

  constructor(private readonly exec: ExecConfig, private readonly dir: string, private readonly now: () => number) {}

  current(): Promise<Authorization> {
    // No expirationTimestamp: valid until a 401.
    if (this.auth && (this.expires === undefined || this.now() < this.expires)) return Promise.resolve(this.auth);
    return (this.running ??= this.run().finally(() => { this.running = undefined; }));
  }

  rejected(used: Authorization): void {
    if (used === this.auth) this.auth = undefined;
  }

  private async run(): Promise<Authorization> {
    const { command, args = [], env = [], apiVersion = 'client.authentication.k8s.io/v1' } = this.exec;
    if (!command) throw new Error('the kubeconfig exec plugin names no command');
    // A command with a path separator is relative to the kubeconfig; a bare name is looked up on PATH.
    const cmd = command.includes(sep) && !isAbsolute(command) ? join(this.dir, command) : command;
    const info = JSON.stringify({ apiVersion, kind: 'ExecCredential', spec: { interactive: false } });
    const childEnv = { ...process.env, ...Object.fromEntries(env.map((e) => [e.name, e.value])), KUBERNETES_EXEC_INFO: info };
    const out = await new Promise<string>((resolveOut, reject) => {
      const child = spawn(cmd, args, { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
      child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
      child.on('error', reject);
      child.on('close', (code) => (code === 0 ? resolveOut(stdout) : reject(new Error(`exec plugin ${command} exited with ${code}: ${stderr.trim().slice(0, 300)}`))));
    });
    let cred: { apiVersion?: string; kind?: string; status?: { token?: string; clientCertificateData?: string; clientKeyData?: string; expirationTimestamp?: string } };
    try { cred = JSON.parse(out); } catch { throw new Error(`exec plugin ${command}: its output is not JSON`); }
    if (cred.kind !== 'ExecCredential' || cred.apiVersion !== apiVersion) throw new Error(`exec plugin ${command}: expected an ExecCredential of ${apiVersion}, got ${cred.kind} ${cred.apiVersion}`);
    const s = cred.status;
    if (!s || (!s.token && !(s.clientCertificateData && s.clientKeyData))) throw new Error(`exec plugin ${command} returned neither a token nor a certificate and key`);
    const expires = s.expirationTimestamp ? Date.parse(s.expirationTimestamp) : undefined;
    if (expires !== undefined && Number.isNaN(expires)) throw new Error(`exec plugin ${command}: bad expirationTimestamp ${s.expirationTimestamp}`);
    this.expires = expires;
    this.auth = {
      ...(s.token ? { header: `Bearer ${s.token}` } : {}),
      ...(s.clientCertificateData && s.clientKeyData ? { cert: s.clientCertificateData, key: s.clientKeyData } : {}),
    };
    return this.auth;
  }
}
