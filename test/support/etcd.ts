// A real etcd (Debian's etcd-server 3.4) for tests: random loopback ports, a temp data dir,
// stopped afterwards. It can be killed (SIGKILL), paused (SIGSTOP) and restarted on the same
// ports and data, which is how datastore outages are made.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { noop } from 'cockatiel';
import { Etcd3 } from 'etcd3';
import { putAll } from '../../src/datastore/etcd.js';
import { stablePort } from './metrics.js';

/** etcd's TLS files; the test's own client presents the same certificate (it needs clientAuth too). */
export interface EtcdTls { caFile: string; certFile: string; keyFile: string; clientCertAuth?: boolean }

export interface EtcdServer {
  endpoint: string;
  /** The etcd process (changes on restart). */
  readonly pid: number;
  dataDir: string;
  /** A client for the test itself (writes, compaction, reads to compare against). */
  client: Etcd3;
  kill(signal?: NodeJS.Signals): Promise<void>;
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/** etcd from PATH (Debian's etcd-server installs /usr/bin/etcd); ETCD_BIN overrides. */
const ETCD = process.env.ETCD_BIN ?? 'etcd';

export function haveEtcd(): boolean {
  return spawnSync(ETCD, ['--version']).status === 0;
}

export async function startEtcd(opts: { progressNotifyMs?: number; tls?: EtcdTls; cpus?: string } = {}): Promise<EtcdServer> {
  if (!haveEtcd()) throw new Error(`${ETCD} not found: install Debian's etcd-server (apt-get install etcd-server; npm test does it through scripts/ensure-etcd.sh when run as root)`);
  const dataDir = mkdtempSync(join(tmpdir(), 'fanout-etcd-'));
  // etcd restarts on the same ports (kill and restart tests).
  const [clientPort, peerPort] = [await stablePort(), await stablePort()];
  const scheme = opts.tls ? 'https' : 'http';
  const endpoint = `${scheme}://127.0.0.1:${clientPort}`;
  const args = [
    '--name', 'test', '--data-dir', dataDir,
    '--listen-client-urls', endpoint, '--advertise-client-urls', endpoint,
    '--listen-peer-urls', `http://127.0.0.1:${peerPort}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peerPort}`,
    '--initial-cluster', `test=http://127.0.0.1:${peerPort}`,
    '--experimental-watch-progress-notify-interval', `${opts.progressNotifyMs ?? 500}ms`,
    '--logger', 'zap', '--log-outputs', 'stderr', '--log-level', 'error',
    ...(opts.tls ? ['--cert-file', opts.tls.certFile, '--key-file', opts.tls.keyFile, '--trusted-ca-file', opts.tls.caFile, ...(opts.tls.clientCertAuth ? ['--client-cert-auth'] : [])] : []),
  ];
  let proc: ChildProcess | undefined;
  const client = new Etcd3({
    hosts: endpoint,
    credentials: opts.tls
      ? { rootCertificate: readFileSync(opts.tls.caFile), certChain: readFileSync(opts.tls.certFile), privateKey: readFileSync(opts.tls.keyFile) }
      : undefined,
    grpcOptions: { 'grpc.max_receive_message_length': 512 << 20 },
    // etcd3's breaker would stall the readiness probe for 5 s after the first refused connection.
    faultHandling: { host: () => noop, global: noop },
  });

  const launch = async () => {
    // Pinned to a core when asked (benchmarks keep the serving side off the clients' core).
    const p = opts.cpus ? spawn('taskset', ['-c', opts.cpus, ETCD, ...args], { stdio: ['ignore', 'ignore', 'pipe'] }) : spawn(ETCD, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    p.stderr!.on('data', (d) => { stderr = (stderr + d).slice(-4000); });
    proc = p;
    const deadline = Date.now() + 15_000;
    for (;;) {
      if (p.exitCode !== null) throw new Error(`etcd exited with ${p.exitCode}: ${stderr}`);
      try {
        await client.get('/health-probe').string();
        return;
      } catch {
        if (Date.now() > deadline) throw new Error(`etcd did not become ready: ${stderr}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  };
  const exited = () => new Promise<void>((resolve) => {
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return resolve();
    proc.once('exit', () => resolve());
  });
  try {
    await launch();
  } catch (err) {
    client.close();
    proc?.kill('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
  return {
    endpoint, dataDir, client,
    get pid() { return proc!.pid!; },
    async kill(signal = 'SIGKILL') {
      proc?.kill(signal);
      if (signal === 'SIGKILL' || signal === 'SIGTERM') await exited();
    },
    restart: launch,
    async stop() {
      client.close();
      proc?.kill('SIGTERM');
      await exited();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** etcd's own view of the prefix: every key whose value is JSON, parsed. */
export async function etcdContent(client: Etcd3, prefix = '/calico/'): Promise<Map<string, unknown>> {
  const all = await client.getAll().prefix(prefix).buffers();
  const out = new Map<string, unknown>();
  for (const [k, v] of Object.entries(all)) {
    try { out.set(k, JSON.parse(v.toString())); } catch { /* invalid values are not served */ }
  }
  return out;
}

/** Puts many keys the way load-etcd does (see putAll). */
export const putMany = putAll;
