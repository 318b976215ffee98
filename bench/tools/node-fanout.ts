// Server CPU for a cluster of N nodes, each with its four clients (felix, bgp and the node-scoped
// tunnel-ip-allocation and node-status), measured on this tree and on a baseline git ref in the
// same command: a batch of M changes fanned out, every client reconnecting by resume, and the
// node-scoped clients failing over by digest. Each run starts a fresh server process (the code
// under test: its Store and FanoutServer, no datastore) and one process of lean clients (decode
// frames, keep the node-scoped caches for their digests, answer pings); CPU is the server's own.
//   node --import tsx bench/tools/node-fanout.ts [--nodes 1000] [--changes 1000] [--rounds 5] [--repeat 3] [--baseline main]
//     [--syncers felix,bgp,tunnel-ip-allocation,node-status]
// BENCH_CPU_PROF=<dir>: the server writes a CPU profile of each measured phase there
// (<tree>-<phase>-<pid>.cpuprofile; the batch profile spans every round, and the waits between).
import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import WebSocket from 'ws';
import { keyForResource } from '../../src/model/kinds.js';
import type { SyncerType } from '../../src/model/views.js';
import { keyBits } from '../../src/protocol/checksum.js';
import { encode } from '../../src/protocol/codec.js';
import { bucketCountFor, DIGEST_SCHEME, digestToWire, emptyDigest, xorInto } from '../../src/protocol/digest.js';
import { decodeServerFrame } from '../../src/protocol/frames.js';
import { median } from '../lib/report.js';

const SELF = fileURLToPath(import.meta.url);
const HERE = fileURLToPath(new URL('../..', import.meta.url));
const arg = (name: string, dflt: string) => { const i = process.argv.indexOf(`--${name}`); return i > 0 ? process.argv[i + 1]! : dflt; };
/** The clients each node runs (--syncers a,b: only those). */
const SYNCERS = arg('syncers', 'felix,bgp,tunnel-ip-allocation,node-status').split(',') as SyncerType[];
const SCOPED = new Set<SyncerType>(['tunnel-ip-allocation', 'node-status']);

// ---- the cluster's resources -----------------------------------------------------------------

const doc = (kind: string, metadata: Record<string, unknown>, spec: Record<string, unknown>) => {
  const value = { apiVersion: 'projectcalico.org/v3', kind, metadata, spec };
  return { key: keyForResource(value), value };
};
const nodeName = (i: number) => `node-${i}`;
const nodeDoc = (i: number, v: number) => doc('Node', { name: nodeName(i) }, { bgp: { ipv4Address: `10.0.${i >> 8}.${i & 255}/24` }, v });
const statusDoc = (i: number, v: number) => doc('CalicoNodeStatus', { name: `${nodeName(i)}-status` }, { node: nodeName(i), classes: ['Agent', 'BGP'], updatePeriodSeconds: 10, v });
const wepDoc = (i: number, pod: string, v: number) => doc('WorkloadEndpoint',
  { name: `${nodeName(i).replace(/-/g, '--')}-k8s-${pod}-eth0`, namespace: 'default', labels: { app: pod } },
  { node: nodeName(i), pod, orchestrator: 'k8s', endpoint: 'eth0', ipNetworks: [`10.244.${i >> 8}.${i & 255}/32`], profiles: ['kns.default'], v });
const poolDoc = (v: number) => doc('IPPool', { name: 'pool-a' }, { cidr: '10.244.0.0/16', blockSize: 26, ipipMode: 'Always', v });

/** Every node's Node, status and two endpoints, a pool and some policies. */
function clusterDocs(nodes: number) {
  const out = [poolDoc(0)];
  for (let p = 0; p < 20; p++) out.push(doc('GlobalNetworkPolicy', { name: `default.p${p}` }, { tier: 'default', selector: `app == 'a${p}'`, order: p }));
  for (let i = 0; i < nodes; i++) out.push(nodeDoc(i, 0), statusDoc(i, 0), wepDoc(i, 'a', 0), wepDoc(i, 'b', 0));
  return out;
}

/** Batch `round` of `m` changes: the pool, then statuses, Nodes and endpoints of m/4 nodes each. */
function batchDocs(nodes: number, m: number, round: number) {
  const out = [poolDoc(round)];
  for (let j = 1; j < m; j++) {
    const i = (Math.floor(j / 4) + round * Math.ceil(m / 4)) % nodes;
    out.push([statusDoc(i, round), nodeDoc(i, round), wepDoc(i, 'a', round), wepDoc(i, 'b', round)][j % 4]!);
  }
  return out;
}

// ---- the server process: the tree under test --------------------------------------------------

async function serve(root: string, nodes: number, changes: number, rounds: number): Promise<void> {
  const load = (p: string) => import(pathToFileURL(join(root, p)).href);
  const [{ Store }, { FanoutServer }, { Metrics }, { silentLogger }, { prepare }, { ViewFilter }] = await Promise.all(
    ['snapshot/store.ts', 'server/server.ts', 'src/metrics.ts', 'src/logging.ts', 'dedupe/prepare.ts', 'src/model/view-filter.ts'].map(load));
  const metrics = new Metrics(false);
  const store = new Store(64 << 20, metrics);
  let revision = 0;
  const apply = (docs: { key: string; value: unknown }[]) => store.apply(docs.map((d) => {
    const p = prepare({ key: d.key, value: d.value, revision: String(++revision) });
    if (!p.ok) throw new Error(`not a change: ${d.key}`);
    return p.change;
  }));
  apply(clusterDocs(nodes));
  store.setStatus('in-sync');
  const server = new FanoutServer(store, { host: '127.0.0.1', port: 0, maxConnections: 100_000, pingIntervalMs: 2e9, checksumIntervalMs: 2e9 }, metrics, silentLogger);
  const { port } = await server.listen();
  const counter = async (c: { get(): Promise<{ values: { value: number }[] }> }) => (await c.get()).values.reduce((n, v) => n + v.value, 0);
  const cpuMs = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };
  let mark = 0;
  let round = 0;
  const profiler = await phaseProfiler(root === HERE ? 'this' : 'baseline');
  const drained = async () => {
    while ([...server.connections].some((c: { bufferedAmount: number }) => c.bufferedAmount > 0)) await new Promise((r) => setImmediate(r));
  };
  process.on('message', async (msg: { op: string; n?: number; phase?: string }) => {
    const reply = (x: object) => process.send!({ op: msg.op, ...x });
    switch (msg.op) {
      case 'batch': {
        const docs = batchDocs(nodes, changes, ++round);
        const built0 = await counter(metrics.sharedFrames);
        await profiler.start();
        const cpu0 = cpuMs();
        apply(docs);
        const syncMs = cpuMs() - cpu0;
        await drained();
        return reply({ syncMs, cpuMs: cpuMs() - cpu0, built: (await counter(metrics.sharedFrames)) - built0, sent: await counter(metrics.framesSent) });
      }
      case 'frames': {
        // The server's batch fan-out without sockets: stand-ins for every client of every node
        // that ask for their frame, as a caught-up connection does, and write nothing.
        const fakes = [];
        for (let i = 0; i < nodes; i++) for (const syncer of SYNCERS) {
          const filter = new ViewFilter(syncer, nodeName(i));
          fakes.push({ onBatch: (_b: unknown, frameFor: (f: unknown) => unknown) => { frameFor(filter); } });
        }
        const timed = async () => {
          const times: number[] = [];
          for (let r = 0; r < rounds; r++) {
            const docs = batchDocs(nodes, changes, ++round);
            await profiler.start();
            const cpu0 = cpuMs();
            apply(docs);
            times.push(cpuMs() - cpu0);
          }
          return median(times);
        };
        const storeMs = await timed(); // the store's own part: no client
        for (const f of fakes) server.connections.add(f);
        const framesMs = await timed();
        await profiler.save('frames');
        for (const f of fakes) server.connections.delete(f);
        return reply({ storeMs, framesMs });
      }
      case 'quiet-batch': // while clients are away: not measured
        apply(batchDocs(nodes, changes, ++round));
        return reply({});
      case 'mark':
        await profiler.save('batch');
        await profiler.start();
        mark = cpuMs();
        return reply({});
      case 'measure': {
        await drained();
        const phaseMs = cpuMs() - mark;
        await profiler.save(msg.phase!);
        return reply({ cpuMs: phaseMs, sent: await counter(metrics.framesSent) });
      }
      case 'connections': {
        while (server.connections.size !== msg.n) await new Promise((r) => setTimeout(r, 5));
        return reply({});
      }
      case 'stop':
        await server.close('shutdown', 100);
        process.exit(0);
    }
  });
  process.send!({ op: 'ready', port });
}

/** Profiles of the measured phases only (BENCH_CPU_PROF=<dir>); without it, does nothing. */
async function phaseProfiler(tree: string) {
  const dir = process.env.BENCH_CPU_PROF;
  if (!dir) return { start: async () => {}, save: async (_phase: string) => {} };
  mkdirSync(dir, { recursive: true });
  const { Session } = await import('node:inspector/promises');
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  let running = false;
  return {
    start: async () => { if (!running) { await session.post('Profiler.start'); running = true; } },
    save: async (phase: string) => {
      if (!running) return;
      running = false;
      const { profile } = await session.post('Profiler.stop');
      writeFileSync(join(dir, `${tree}-${phase}-${process.pid}.cpuprofile`), JSON.stringify(profile));
    },
  };
}

// ---- the lean clients ----------------------------------------------------------------------------

interface Lean {
  syncer: SyncerType; node: string; ws?: WebSocket;
  epoch?: string; pos: number; synced: boolean;
  /** Node-scoped clients keep key → entry hash, for their digest. */
  cache?: Map<string, bigint>;
  incoming?: Map<string, bigint>;
  scope?: { buckets: number; differ: Set<number>; seen: Set<string> };
}

function clients(port: number, nodes: number): void {
  const all: Lean[] = [];
  for (let i = 0; i < nodes; i++) for (const syncer of SYNCERS) all.push({ syncer, node: nodeName(i), pos: 0, synced: false, cache: SCOPED.has(syncer) ? new Map() : undefined });
  let received = 0;
  const open = (c: Lean, how: 'snapshot' | 'resume' | 'digest') => {
    c.synced = false;
    const ws = new WebSocket(`ws://127.0.0.1:${port}`, { perMessageDeflate: false });
    c.ws = ws;
    ws.on('open', () => {
      let extra = {};
      if (how === 'resume') extra = { resume: { epoch: c.epoch, seq: c.pos } };
      if (how === 'digest') {
        const buckets = bucketCountFor(c.cache!.size);
        const d = emptyDigest(buckets);
        for (const [k, h] of c.cache!) xorInto(d, keyBits(k) & (buckets - 1), h);
        extra = { digest: { scheme: DIGEST_SCHEME, buckets, hashes: digestToWire(d) } };
      }
      ws.send(encode({ t: 'hello', v: 1, syncer: c.syncer, node: c.node, clientName: 'lean', clientVersion: '0', ...extra } as never));
    });
    ws.on('message', (buf: Buffer) => { received++; onFrame(c, buf); });
    ws.on('error', (err) => { console.error(`${c.syncer}/${c.node}: ${err.message}`); process.exit(1); });
    ws.on('close', () => { if (c.ws === ws) { console.error(`${c.syncer}/${c.node}: closed by the server`); process.exit(1); } });
  };
  const onFrame = (c: Lean, buf: Buffer) => {
    const { msg, items } = decodeServerFrame(buf);
    const cache = c.cache;
    switch (msg.t) {
      case 'welcome': c.epoch = msg.epoch as string; return;
      case 'ping': c.ws!.send(encode({ t: 'pong', ts: msg.ts as number })); return;
      case 'checksum': c.synced = true; return;
      case 'delta':
        if (cache) for (const it of items!) it.value ? cache.set(it.key, it.hash) : cache.delete(it.key);
        c.pos = msg.to as number;
        return;
      case 'snapshot':
        if (!cache) { if (msg.last) c.pos = msg.seq as number; return; }
        if (msg.i === 0) c.incoming = new Map();
        for (const it of items!) c.incoming!.set(it.key, it.hash);
        if (msg.last) { c.cache = c.incoming; c.incoming = undefined; c.pos = msg.seq as number; }
        return;
      case 'repair': {
        if (msg.i === 0) {
          const differ = msg.differ as Uint8Array;
          c.scope = { buckets: msg.buckets as number, differ: new Set(Array.from({ length: differ.length / 4 }, (_, k) => Buffer.from(differ).readUInt32BE(4 * k))), seen: new Set() };
        }
        for (const it of items!) { cache?.set(it.key, it.hash); c.scope!.seen.add(it.key); }
        if (msg.last) {
          const { buckets, differ, seen } = c.scope!;
          if (cache) for (const k of cache.keys()) if (differ.has(keyBits(k) & (buckets - 1)) && !seen.has(k)) cache.delete(k);
          c.scope = undefined;
          c.pos = msg.seq as number;
        }
        return;
      }
    }
  };
  const whenSynced = async (which: Lean[]) => { while (!which.every((c) => c.synced)) await new Promise((r) => setTimeout(r, 5)); };
  process.on('message', async (msg: { op: string; how?: 'snapshot' | 'resume' | 'digest'; scoped?: boolean; sent?: number }) => {
    const which = msg.scoped ? all.filter((c) => SCOPED.has(c.syncer)) : all;
    switch (msg.op) {
      case 'connect':
        for (const c of which) open(c, msg.how!);
        await whenSynced(which);
        return process.send!({ op: 'connect' });
      case 'close':
        // Closed on purpose: whatever becomes of these sockets now is no failure.
        for (const c of which) { const ws = c.ws!; c.ws = undefined; ws.removeAllListeners(); ws.on('error', () => {}); ws.close(); }
        return process.send!({ op: 'close' });
      case 'received': // every frame the server has written so far has arrived
        while (received < msg.sent!) await new Promise((r) => setTimeout(r, 2));
        return process.send!({ op: 'received' });
      case 'stop':
        for (const c of all) c.ws?.terminate();
        process.exit(0);
    }
  });
  process.send!({ op: 'ready' });
}

// ---- the orchestrator ------------------------------------------------------------------------

function ask(p: ChildProcess, msg: object): Promise<any> {
  return new Promise((resolve, reject) => {
    const done = () => { p.off('message', on); p.off('exit', exit); };
    const on = (m: { op: string }) => { if (m.op === (msg as { op: string }).op) { done(); resolve(m); } };
    const exit = (code: number | null) => { done(); reject(new Error(`${p.spawnargs.slice(-8).join(' ')}: exited (${code}) during ${JSON.stringify(msg)}`)); };
    p.on('message', on);
    p.on('exit', exit);
    p.send(msg);
  });
}
const started = (p: ChildProcess): Promise<any> => new Promise((resolve, reject) => {
  p.once('message', resolve);
  p.once('exit', (code) => reject(new Error(`child exited with ${code}`)));
});

interface Run { storeMs: number; framesMs: number; connectMs: number; batchMs: number; batchSyncMs: number; built: number; resumeMs: number; digestMs: number }

async function run(root: string, nodes: number, changes: number, rounds: number): Promise<Run> {
  const execArgv = ['--import', 'tsx'];
  const server = fork(SELF, ['--role', 'server', '--root', root, '--nodes', String(nodes), '--changes', String(changes), '--rounds', String(rounds), '--syncers', SYNCERS.join(',')], { execArgv, cwd: root });
  const { port } = await started(server);
  const client = fork(SELF, ['--role', 'clients', '--port', String(port), '--nodes', String(nodes), '--syncers', SYNCERS.join(',')], { execArgv });
  await started(client);
  try {
    const measured = async (phase: string, during: () => Promise<unknown>) => {
      await ask(server, { op: 'mark' });
      await during();
      const { cpuMs, sent } = await ask(server, { op: 'measure', phase });
      await ask(client, { op: 'received', sent });
      return cpuMs as number;
    };
    const { storeMs, framesMs } = await ask(server, { op: 'frames' });
    const connectMs = await measured('connect', () => ask(client, { op: 'connect', how: 'snapshot' }));
    const batches: { cpuMs: number; syncMs: number; built: number }[] = [];
    for (let r = 0; r < rounds; r++) {
      const b = await ask(server, { op: 'batch' });
      await ask(client, { op: 'received', sent: b.sent });
      batches.push(b);
    }
    // Every client away while a batch is published, back by resume.
    await ask(client, { op: 'close' });
    await ask(server, { op: 'connections', n: 0 });
    await ask(server, { op: 'quiet-batch' });
    const resumeMs = await measured('resume', () => ask(client, { op: 'connect', how: 'resume' }));
    // The node-scoped clients fail over (as from another replica) with their caches' digests.
    await ask(client, { op: 'close', scoped: true });
    await ask(server, { op: 'connections', n: nodes * SYNCERS.filter((v) => !SCOPED.has(v)).length });
    await ask(server, { op: 'quiet-batch' });
    const digestMs = await measured('digest', () => ask(client, { op: 'connect', how: 'digest', scoped: true }));
    return {
      storeMs, framesMs, connectMs, resumeMs, digestMs,
      batchMs: median(batches.map((b) => b.cpuMs)), batchSyncMs: median(batches.map((b) => b.syncMs)), built: median(batches.map((b) => b.built)),
    };
  } finally {
    for (const p of [client, server]) if (p.exitCode === null) p.send({ op: 'stop' });
  }
}

async function main(): Promise<void> {
  const nodes = Number(arg('nodes', '1000'));
  const changes = Number(arg('changes', '1000'));
  const rounds = Number(arg('rounds', '5'));
  const repeat = Number(arg('repeat', '3'));
  const ref = arg('baseline', 'main');
  // The baseline's sources as of `ref`, with this tree's node_modules.
  const base = mkdtempSync(join(tmpdir(), 'node-fanout-'));
  try {
    execFileSync('sh', ['-c', `git -C "${HERE}" archive "${ref}" | tar -x -C "${base}"`]);
    symlinkSync(join(HERE, 'node_modules'), join(base, 'node_modules'));
    const trees: [string, string][] = [[`${ref} (baseline)`, base], ['this tree', HERE]];
    const runs = new Map<string, Run[]>(trees.map(([name]) => [name, []]));
    for (let i = 0; i < repeat; i++) {
      for (const [name, root] of trees) {
        const r = await run(root, nodes, changes, rounds);
        runs.get(name)!.push(r);
        process.stderr.write(`${name} #${i + 1}: ${JSON.stringify(r)}\n`);
      }
    }
    const med = (name: string, k: keyof Run) => median(runs.get(name)!.map((r) => r[k]));
    const rows: [keyof Run, string][] = [
      ['storeMs', `one batch of ${changes} changes into the store, no client (CPU ms)`],
      ['framesMs', '  the same with a frame asked for every client, no sockets (CPU ms)'],
      ['batchMs', `one batch of ${changes} changes to every client (CPU ms, until written)`],
      ['batchSyncMs', '  of which inside store.apply (CPU ms)'],
      ['built', '  delta frames built for the batch'],
      ['connectMs', `${SYNCERS.length * nodes} clients connecting, by snapshot (CPU ms)`],
      ['resumeMs', `${SYNCERS.length * nodes} clients back by resume after a batch (CPU ms)`],
      ['digestMs', `${SYNCERS.filter((v) => SCOPED.has(v)).length * nodes} node-scoped clients failing over by digest after a batch (CPU ms)`],
    ];
    const [b, t] = trees.map(([name]) => name) as [string, string];
    console.log(`\nnode-fanout: ${nodes} nodes × ${SYNCERS.length} clients (${SYNCERS.join(', ')}), batches of ${changes} changes; server CPU, medians of ${repeat} runs (batches: median of ${rounds} each)\n`);
    console.log(`| | ${b} | ${t} | ratio |\n|---|---|---|---|`);
    for (const [k, what] of rows) {
      const x = med(b, k);
      const y = med(t, k);
      console.log(`| ${what} | ${x.toFixed(k === 'built' ? 0 : 1)} | ${y.toFixed(k === 'built' ? 0 : 1)} | ${(y / x).toFixed(2)} |`);
    }
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
}

const role = arg('role', 'main');
if (role === 'server') await serve(arg('root', HERE), Number(arg('nodes', '1000')), Number(arg('changes', '1000')), Number(arg('rounds', '5')));
else if (role === 'clients') clients(Number(arg('port', '0')), Number(arg('nodes', '1000')));
else await main();
