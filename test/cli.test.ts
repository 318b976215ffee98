// The calico-fanout CLI as an operator runs it: `node bin/calico-fanout.js serve|watch|dump` in
// child processes, talking over real ports.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { DEFAULT_ALLOW_PROFILE_KEY } from '../src/datastore/default-allow.js';
import { loadResources } from '../src/datastore/seed.js';
import { parseKey } from '../src/model/kinds.js';
import { VIEWS } from '../src/model/views.js';
import { freePort } from './support/metrics.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DEMO = join(ROOT, 'examples', 'demo-cluster');

// ---- process helpers ---------------------------------------------------------------------

const children = new Set<ChildProcess>();

/** The parent's environment without any TYPHA_* setting or client log level, plus `extra`. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('TYPHA_') && k !== 'CALICO_FANOUT_LOG') env[k] = v;
  return { ...env, ...extra };
}

function launch(args: string[], env: Record<string, string> = {}): ChildProcess {
  const child = spawn(process.execPath, ['bin/calico-fanout.js', ...args], { cwd: ROOT, env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

interface Result { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }

/** Runs the CLI to completion (killed after `timeoutMs`). */
function run(args: string[], { env = {}, timeoutMs = 20_000 }: { env?: Record<string, string>; timeoutMs?: number } = {}): Promise<Result> {
  const child = launch(args, env);
  return collect(child, timeoutMs);
}

function collect(child: ChildProcess, timeoutMs: number): Promise<Result> {
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

const describeResult = (r: Result) => `exit ${r.code ?? r.signal}\n--- stdout:\n${r.stdout.slice(-1500)}\n--- stderr:\n${r.stderr.slice(-1500)}`;

function httpGet(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = get(url, { agent: false, timeout: 3000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on('error', reject);
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** A sleep that does not keep the process alive (for races against a result). */
const idle = (ms: number) => new Promise((r) => setTimeout(r, ms).unref());

const nonEmptyLines = (s: string) => s.split('\n').filter((l) => l.trim() !== '');

after(() => {
  for (const c of children) c.kill('SIGKILL');
});

// ---- a running server --------------------------------------------------------------------

interface Serve {
  child: ChildProcess;
  done: Promise<Result>;
  port: number;
  health: number;
  metrics: number;
  url: string;
}

async function startServe(extraArgs: string[], env: Record<string, string> = {}): Promise<Serve> {
  const [port, health, metrics] = [await freePort(), await freePort(), await freePort()];
  const child = launch(['serve', '--server-host', '127.0.0.1', '--server-port', String(port), '--health-host', '127.0.0.1', '--health-port', String(health),
    '--metrics-host', '127.0.0.1', '--metrics-port', String(metrics), ...extraArgs], env);
  const done = collect(child, 60_000);
  let exited: Result | undefined;
  void done.then((r) => { exited = r; });
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (exited) throw new Error(`serve exited before becoming ready: ${describeResult(exited)}`);
    try {
      if ((await httpGet(`http://127.0.0.1:${health}/readyz`)).status === 200) break;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) throw new Error('serve not ready within 30 s');
    await sleep(100);
  }
  return { child, done, port, health, metrics, url: `ws://127.0.0.1:${port}` };
}

async function stopServe(s: Serve | undefined): Promise<void> {
  if (s && s.child.exitCode === null && s.child.signalCode === null) {
    s.child.kill('SIGKILL');
    await s.done;
  }
}

/** Keys of the seed that a syncer view carries (node-scoped kinds only for `node`). */
function viewKeys(paths: string[], syncer: keyof typeof VIEWS, nodeName = ''): string[] {
  const view = VIEWS[syncer];
  const keys = new Set<string>();
  for (const r of loadResources(paths)) {
    const p = parseKey(r.key);
    if (!p || !view.kinds.has(p.kind)) continue;
    if (view.nodeScoped.has(p.kind)) {
      const owner = p.kind === 'Node' ? p.name : (r.value as { spec?: { node?: string } }).spec?.node;
      if (owner !== nodeName) continue;
    }
    keys.add(r.key);
  }
  // Calico's built-in profile is served in every datastore (src/datastore/default-allow.ts).
  if (view.kinds.has('Profile')) keys.add(DEFAULT_ALLOW_PROFILE_KEY);
  return [...keys].sort();
}

/** The checks every served seed gets: watch, health, metrics, dump, SIGTERM. */
function servedSeedTests(name: string, seedPaths: () => string[], seedArgs: () => string[], expectFelix: () => number, dumpNode: string, { longWatch = false } = {}) {
  describe(name, { concurrency: 1 }, () => {
    let serve: Serve | undefined;
    before(async () => { serve = await startServe(seedArgs()); });
    after(() => stopServe(serve));

    test('watch --until-in-sync exits 0 with "in sync: N keys", N = the felix resources of the seed', async () => {
      const r = await run(['watch', '--url', serve!.url, '--syncer', 'felix', '--until-in-sync', '--timeout', '20']);
      assert.equal(r.code, 0, describeResult(r));
      const lines = nonEmptyLines(r.stdout);
      const last = lines.at(-1) ?? '';
      assert.match(last, /^in sync: \d+ keys$/, describeResult(r));
      const n = Number(/^in sync: (\d+) keys$/.exec(last)![1]);
      assert.equal(n, expectFelix());
      assert.equal(lines.filter((l) => l.startsWith('SET ')).length, n, 'one SET line per key');
      assert.ok(lines.includes('status: in-sync'), 'prints the status');
    });

    test('health and metrics endpoints', async () => {
      const ready = await httpGet(`http://127.0.0.1:${serve!.health}/readyz`);
      assert.equal(ready.status, 200);
      assert.equal(JSON.parse(ready.body).ready, true);
      assert.equal((await httpGet(`http://127.0.0.1:${serve!.health}/livez`)).status, 200);
      const m = await httpGet(`http://127.0.0.1:${serve!.metrics}/metrics`);
      assert.equal(m.status, 200);
      assert.match(m.body, /^typha_connections_accepted \d+$/m);
      assert.match(m.body, /calico_fanout_bad_frames_total/);
    });

    test(`dump --syncer tunnel-ip-allocation --node ${dumpNode} prints NDJSON of the IPPools and that Node only`, async () => {
      const r = await run(['dump', '--url', serve!.url, '--syncer', 'tunnel-ip-allocation', '--node', dumpNode, '--timeout', '20']);
      assert.equal(r.code, 0, describeResult(r));
      const rows = nonEmptyLines(r.stdout).map((l) => JSON.parse(l) as { key: string; revision: string; value: { kind: string; metadata: { name: string } } });
      const expected = viewKeys(seedPaths(), 'tunnel-ip-allocation', dumpNode);
      assert.deepEqual(rows.map((x) => x.key), expected, 'keys, sorted');
      assert.ok(expected.length >= 2);
      const nodes = rows.filter((x) => x.value.kind === 'Node');
      assert.deepEqual(nodes.map((x) => x.value.metadata.name), [dumpNode]);
      assert.ok(rows.every((x) => x.value.kind === 'Node' || x.value.kind === 'IPPool'), 'IPPools and the Node only');
      assert.ok(rows.some((x) => x.value.kind === 'IPPool'));
      for (const row of rows) assert.equal(typeof row.revision, 'string');
    });

    if (longWatch) {
      test('watch --timeout bounds only the initial sync: a watch in sync keeps running past it', async () => {
        const watch = launch(['watch', '--url', serve!.url, '--syncer', 'felix', '--timeout', '1']);
        const done = collect(watch, 15_000);
        let out = '';
        watch.stdout!.on('data', (d: string) => { out += d; });
        try {
          const deadline = Date.now() + 10_000;
          while (!out.includes('status: in-sync')) {
            assert.ok(Date.now() < deadline && watch.exitCode === null, `watch did not get in sync: ${out.slice(-300)}`);
            await sleep(25);
          }
          await sleep(1500); // time must pass, past the 1 s --timeout, to show the watch keeps running
          assert.equal(watch.exitCode, null, `watch exited with ${watch.exitCode} although it was in sync`);
        } finally {
          if (watch.exitCode === null) watch.kill('SIGTERM');
          await done;
        }
      });
    }

    test('SIGTERM makes serve exit 0 (with a watch client connected); SIGTERM stops watch with 0', async () => {
      // A long-running watch, connected and in sync when the server goes.
      const watch = launch(['watch', '--url', serve!.url, '--syncer', 'felix', '--json', '--timeout', '0']);
      const watchDone = collect(watch, 30_000);
      let watchOut = '';
      watch.stdout!.on('data', (d: string) => { watchOut += d; });
      const expected = expectFelix();
      const deadline = Date.now() + 15_000;
      while (nonEmptyLines(watchOut).length < expected) {
        assert.ok(Date.now() < deadline && watch.exitCode === null, `watch did not print the snapshot: ${watchOut.slice(-500)}`);
        await sleep(50);
      }
      for (const line of nonEmptyLines(watchOut)) {
        const u = JSON.parse(line) as { key: string; revision: string };
        assert.equal(typeof u.key, 'string');
      }

      const started = Date.now();
      serve!.child.kill('SIGTERM');
      const r = await Promise.race([serve!.done, idle(10_000).then(() => undefined)]);
      assert.ok(r, 'serve exited within 10 s of SIGTERM');
      assert.equal(r.code, 0, describeResult(r));
      assert.ok(Date.now() - started < 4500, `serve took ${Date.now() - started} ms to drain one client (the 5 s shutdown wait is for clients that do not leave)`);

      // The watch client survives the server going away (it keeps retrying) and stops on SIGTERM.
      assert.equal(watch.exitCode, null, 'watch still running after the server left');
      watch.kill('SIGTERM');
      const w = await watchDone;
      assert.equal(w.code, 0, describeResult(w));
    });
  });
}

// ---- the tests ---------------------------------------------------------------------------

const TEMP_SEED = `
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: node-1}
spec: {bgp: {ipv4Address: 192.168.0.1/24}}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: node-2}
spec: {bgp: {ipv4Address: 192.168.0.2/24}}
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: pool-a}
spec: {cidr: 10.244.0.0/16, vxlanMode: Always, natOutgoing: true}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: deny-all}
spec: {selector: all(), types: [Ingress]}
---
apiVersion: projectcalico.org/v3
kind: CalicoNodeStatus
metadata: {name: node-1-status}
spec: {node: node-1, classes: [Agent], updatePeriodSeconds: 10}
---
apiVersion: projectcalico.org/v3
kind: KubeControllersConfiguration
metadata: {name: default}
spec: {}
`;

const TEMP_SEED_LIST = `
apiVersion: v1
kind: List
items:
  - apiVersion: projectcalico.org/v3
    kind: WorkloadEndpoint
    metadata: {name: node--1-k8s-web-eth0, namespace: default}
    spec: {node: node-1, pod: web, orchestrator: k8s, endpoint: eth0, ipNetworks: [10.244.0.5/32], profiles: [kns.default]}
  - apiVersion: projectcalico.org/v3
    kind: BGPPeer
    metadata: {name: tor}
    spec: {peerIP: 192.168.0.254, asNumber: 64512}
  - apiVersion: projectcalico.org/v3
    kind: BGPFilter
    metadata: {name: export-only}
    spec: {}
`;
// Felix view: 2 Nodes, the IPPool, the GlobalNetworkPolicy, the WorkloadEndpoint and the BGPPeer,
// plus Calico's built-in default-allow profile.
const TEMP_SEED_FELIX = 7;

describe('calico-fanout CLI', { concurrency: true }, () => {
  let seedDir: string;
  before(() => {
    seedDir = mkdtempSync(join(tmpdir(), 'fanout-cli-seed-'));
    writeFileSync(join(seedDir, '10-resources.yaml'), TEMP_SEED);
    writeFileSync(join(seedDir, '20-list.yaml'), TEMP_SEED_LIST);
  });
  after(() => { rmSync(seedDir, { recursive: true, force: true }); });

  servedSeedTests('serve --seed <temp dir>', () => [seedDir], () => ['--seed', seedDir], () => {
    assert.equal(viewKeys([seedDir], 'felix').length, TEMP_SEED_FELIX, 'the seed itself');
    return TEMP_SEED_FELIX;
  }, 'node-1', { longWatch: true });

  if (existsSync(DEMO)) {
    servedSeedTests('serve with the default seed (examples/demo-cluster)', () => [DEMO], () => [], () => viewKeys([DEMO], 'felix').length, 'worker-1');
  } else {
    test('serve with the default seed (examples/demo-cluster)', { skip: 'examples/demo-cluster does not exist' }, () => {});
  }

  // Tiers (README "Tiers"): a tree of processes, as a script starts one.
  test('serve --datastore upstream --upstream-urls <root> serves every view as the root does', { skip: existsSync(DEMO) ? false : 'no demo cluster' }, async () => {
    const root = await startServe([], { TYPHA_ALLOWUNAUTHENTICATEDMIRROR: 'true' });
    let below: Serve | undefined;
    try {
      below = await startServe(['--datastore', 'upstream', '--upstream-urls', root.url]);
      for (const [syncer, n] of [['felix'], ['bgp'], ['tunnel-ip-allocation', 'worker-1'], ['node-status', 'worker-1']] as [string, string?][]) {
        const args = ['dump', '--syncer', syncer, ...(n ? ['--node', n] : []), '--timeout', '20'];
        const a: Result = await run([...args, '--url', root.url]);
        const b: Result = await run([...args, '--url', below.url]);
        assert.equal(a.code, 0, describeResult(a));
        assert.equal(b.code, 0, describeResult(b));
        assert.ok(nonEmptyLines(a.stdout).length > 0 || syncer === 'node-status', `${syncer}: the root serves something`);
        assert.equal(b.stdout, a.stdout, `${syncer}: keys, revisions and values as the root's`);
      }
      const ready = JSON.parse((await httpGet(`http://127.0.0.1:${below.health}/readyz`)).body) as { datastore: string; upstream: { url: string; inSync: boolean } };
      assert.equal(ready.datastore, 'upstream');
      assert.deepEqual([ready.upstream.url, ready.upstream.inSync], [root.url, true]);
    } finally {
      await stopServe(below);
      await stopServe(root);
    }
  });

  describe('bad configuration and arguments', { concurrency: 4 }, () => {
    test('serve --server-port abc exits 2 naming the setting', async () => {
      const r = await run(['serve', '--server-port', 'abc']);
      assert.equal(r.code, 2, describeResult(r));
      assert.match(r.stderr, /serverPort/);
      assert.match(r.stderr, /TYPHA_SERVERPORT/);
      assert.match(r.stderr, /--server-port/);
      assert.match(r.stderr, /abc/);
    });

    test('TYPHA_HISTORYMAXBYTES=lots serve exits 2 naming the setting', async () => {
      const r = await run(['serve', '--server-port', '-1', '--health-port', '-1', '--metrics-port', '-1'],
        { env: { TYPHA_HISTORYMAXBYTES: 'lots' } });
      assert.equal(r.code, 2, describeResult(r));
      assert.match(r.stderr, /historyMaxBytes/);
      assert.match(r.stderr, /TYPHA_HISTORYMAXBYTES/);
      assert.match(r.stderr, /lots/);
    });

    test('serve --log-level LOUD exits 2', async () => {
      const r = await run(['serve', '--log-level', 'LOUD']);
      assert.equal(r.code, 2, describeResult(r));
      assert.match(r.stderr, /logSeverityScreen/);
    });

    test('serve --config-file with an unknown setting exits 2 naming the file and key', async () => {
      const file = join(seedDir, 'bad-config.yaml.txt');
      writeFileSync(file, 'serverPort: 5473\nserverPortt: 1\n');
      const r = await run(['serve', '--config-file', file]);
      assert.equal(r.code, 2, describeResult(r));
      assert.ok(r.stderr.includes(file), describeResult(r));
      assert.match(r.stderr, /serverPortt/);
    });

    test('serve --datastore upstream without --upstream-urls exits 2 naming the settings', async () => {
      const r = await run(['serve', '--datastore', 'upstream']);
      assert.equal(r.code, 2, describeResult(r));
      assert.match(r.stderr, /upstreamUrls \(TYPHA_UPSTREAMURLS\) or upstreamK8sServiceName/);
    });
    test('serve --seed /nonexistent exits 2', async () => {
      const r = await run(['serve', '--seed', '/nonexistent', '--server-port', '-1', '--health-port', '-1', '--metrics-port', '-1']);
      assert.equal(r.code, 2, describeResult(r));
      assert.match(r.stderr, /\/nonexistent/);
    });

    test('serve on a port in use exits 1 with "cannot listen"', async () => {
      const blocker: Server = createServer();
      await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
      try {
        const port = (blocker.address() as { port: number }).port;
        const r = await run(['serve', '--server-host', '127.0.0.1', '--server-port', String(port), '--health-port', '-1', '--metrics-port', '-1',
          '--health-host', '127.0.0.1', '--metrics-host', '127.0.0.1', '--seed', seedDir]);
        assert.equal(r.code, 1, describeResult(r));
        assert.match(r.stderr, /cannot listen/);
      } finally {
        await new Promise((r) => blocker.close(r));
      }
    });

    test('watch --syncer nope exits non-zero with a message', async () => {
      const r = await run(['watch', '--syncer', 'nope', '--timeout', '3']);
      assert.notEqual(r.code, 0, describeResult(r));
      assert.notEqual(r.code, null, describeResult(r));
      assert.match(r.stderr, /nope/);
      assert.match(r.stderr, /felix/, 'lists the valid syncers');
    });

    test('watch --syncer node-status without --node exits 2', async () => {
      const port = await freePort();
      const r = await run(['watch', '--url', `ws://127.0.0.1:${port}`, '--syncer', 'node-status', '--timeout', '3']);
      assert.equal(r.code, 2, describeResult(r));
      assert.match(r.stderr, /--node/);
    });

    test('dump --syncer tunnel-ip-allocation without --node exits 2', async () => {
      const port = await freePort();
      const r = await run(['dump', '--url', `ws://127.0.0.1:${port}`, '--syncer', 'tunnel-ip-allocation', '--timeout', '3']);
      assert.equal(r.code, 2, describeResult(r));
      assert.match(r.stderr, /--node/);
    });

    test('watch with no server gives up after --timeout with exit 1', async () => {
      const port = await freePort();
      const r = await run(['watch', '--url', `ws://127.0.0.1:${port}`, '--until-in-sync', '--timeout', '1']);
      assert.equal(r.code, 1, describeResult(r));
      assert.match(r.stderr, /not in sync within 1s/);
    });

    test('watch --timeout abc exits 2', async () => {
      const port = await freePort();
      const r = await run(['watch', '--url', `ws://127.0.0.1:${port}`, '--timeout', 'abc']);
      assert.equal(r.code, 2, describeResult(r));
      assert.match(r.stderr, /--timeout/);
    });
  });

  describe('--help', { concurrency: true }, () => {
    const cases: [string, string[]][] = [
      ['serve', ['--server-port', '--health-port', '--metrics-port', '--seed', '--config-file', '--log-level', '--history-bytes', 'TYPHA_SERVERPORT', 'TYPHA_HISTORYMAXBYTES']],
      ['watch', ['--url', '--syncer', '--node', '--timeout', '--until-in-sync', '--json']],
      ['dump', ['--url', '--syncer', '--node', '--timeout', 'NDJSON']],
    ];
    for (const [cmd, mentions] of cases) {
      test(`${cmd} --help exits 0 and lists its options`, async () => {
        const r = await run([cmd, '--help']);
        assert.equal(r.code, 0, describeResult(r));
        for (const m of mentions) assert.ok(r.stdout.includes(m), `${cmd} --help mentions ${m}\n${r.stdout}`);
      });
    }
  });
});

