// One seeded model run: build a world from the seed, carry out `steps` generated actions, heal
// every fault, wait for quiescence (every client in sync with the datastore's content), check the
// invariants. A failure names the seed and ends with the trace of the last actions.
import { prng } from '../prng.js';
import { advance, describe, newModel, nextAction, type Action, type ClientSpec, type Flavour } from './actions.js';
import { checkFinal, converged, divergence, wantedChecksums } from './invariants.js';
import { etcdPool, int, kubePool, pick, type WriteOp } from './resources.js';
import { World } from './world.js';

export interface RunOptions {
  flavour: Flavour;
  seed: number;
  steps: number;
  /** How long quiescence may take before the run fails. */
  quiesceTimeoutMs: number;
  /** Cross-replica revision regressions fail the run (the default; MODEL_STRICT_REVISIONS=0 only reports them). */
  strictRevisions?: boolean;
  /** How to replay this run, for the failure message. */
  replay: string;
}

export interface RunSummary {
  flavour: Flavour;
  seed: number;
  steps: number;
  replicas: number;
  clients: number;
  ms: number;
  quiesceMs: number;
  actions: Record<string, number>;
  client: { connects: number; snapshots: number; digests: number; resumes: number; checksumMismatches: number; corruptions: number; updates: number; afterMismatchErrors: number };
  crossReplica: string[];
  crossReplicaContext: string[];
  notes: string[];
  /** The whole trace (for MODEL_TRACE=1). */
  trace: string[];
}


export async function runSeed(o: RunOptions): Promise<RunSummary> {
  const rnd = prng(o.seed);
  const t0 = Date.now();
  const trace: string[] = [];
  const log = (line: string) => { trace.push(`+${String(Date.now() - t0).padStart(5)}ms ${line}`); };
  const pool = o.flavour === 'kube' ? kubePool : etcdPool;

  // The world's shape and settings, from the seed. Tiers: two tier-1 replicas, one or two below.
  const tier1 = o.flavour === 'kube' ? int(rnd, 1, 2) : 2;
  const replicas = o.flavour === 'tiers' ? tier1 + int(rnd, 1, 2) : tier1;
  const clientNodes = pool.nodes.slice(0, 2);
  const clients: ClientSpec[] = [];
  for (const syncer of ['felix', 'bgp', 'tunnel-ip-allocation', 'node-status'] as const) {
    for (const n of clientNodes) clients.push({ syncer, node: n, compression: rnd() < 0.5 });
  }
  const server = {
    ingestBatchWindowSecs: pick(rnd, [0, 0.005, 0.02]),
    historyMaxBytes: pick(rnd, [2048, 16 << 10, 64 << 20]),
    serverHighWaterMarkBytes: pick(rnd, [16 << 10, 64 << 10, 1 << 20]),
    snapshotChunkBytes: pick(rnd, [4 << 10, 16 << 10, 256 << 10]),
    snapshotReuseSecs: pick(rnd, [0, 1]),
    checksumIntervalSecs: 0.5,
    serverPingIntervalSecs: 1,
    serverPongTimeoutSecs: 30,
    serverWriteTimeoutSecs: 1.5,
    shutdownTimeoutSecs: 0.3,
  };
  const kube = { bookmarkIntervalMs: pick(rnd, [0, 0, 300]), goneAs: pick(rnd, ['http', 'event'] as const) };
  const rotation = clients.map((_, i) => (replicas > 1 ? (i + int(rnd, 0, 1)) % replicas : 0));
  log(`${o.flavour} world: ${replicas} replica(s)${o.flavour === 'tiers' ? ` (${tier1} on etcd, ${replicas - tier1} below them)` : ''}, ${clients.length} clients, server ${JSON.stringify(server)}${o.flavour === 'kube' ? `, api ${JSON.stringify(kube)}` : ''}`);

  const model = newModel(o.flavour, replicas, clients, tier1);
  const actions: Record<string, number> = {};

  const world = await World.create({ flavour: o.flavour, replicas, tier1, clients, server, kube, rotation }, log);
  let quiesceMs = 0;
  try {
    // Some content before anyone connects: the first sync is a real snapshot.
    const initial: WriteOp[] = [];
    for (let i = int(rnd, 10, 25); i > 0; i--) initial.push(pool.put(rnd, ++model.gen));
    const seedAction: Action = { t: 'write', what: 'burst', how: 'seq', ops: [...new Map(initial.map((x) => [x.id, x])).values()] };
    await world.apply(seedAction);
    advance(model, seedAction);
    log(`initial content: ${model.content.size} objects`);
    await world.startAll();

    for (let step = 0; step < o.steps; step++) {
      const a = nextAction(rnd, model, pool);
      log(`#${step} ${describe(a, model)}`);
      const name = a.t === 'write' ? `write:${a.what}` : a.t === 'client' || a.t === 'server' || a.t === 'etcd' || a.t === 'kube' || a.t === 'tier1' ? `${a.t}:${a.op}` : a.t === 'corrupt' ? `corrupt:${a.how}` : a.t;
      actions[name] = (actions[name] ?? 0) + 1;
      await world.apply(a);
      advance(model, a);
      await new Promise((r) => setImmediate(r));
    }

    log('quiescence: writes stop, faults healed, every replica up, every client running');
    const tq = Date.now();
    await world.heal();
    const content = await world.content();
    const want = wantedChecksums(world, content);
    const deadline = Date.now() + o.quiesceTimeoutMs;
    while (!converged(world, content, want)) {
      if (Date.now() > deadline) {
        throw new Error(`no convergence within ${o.quiesceTimeoutMs} ms of quiescence:\n  ${divergence(world, content).join('\n  ')}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    quiesceMs = Date.now() - tq;
    log(`converged in ${quiesceMs} ms`);

    const failures = checkFinal(world, content, o.strictRevisions ?? false);
    if (failures.length) throw new Error(`invariants violated:\n  ${failures.join('\n  ')}`);

    const sum = (f: (c: (typeof world.clients)[number]) => number) => world.clients.reduce((n, c) => n + f(c), 0);
    return {
      flavour: o.flavour, seed: o.seed, steps: o.steps, replicas, clients: clients.length, ms: Date.now() - t0, quiesceMs, actions,
      client: {
        connects: sum((c) => c.client.stats.connects), snapshots: sum((c) => c.client.stats.snapshots), digests: sum((c) => c.client.stats.digests),
        resumes: sum((c) => c.client.stats.resumes), checksumMismatches: sum((c) => c.client.stats.checksumMismatches),
        corruptions: sum((c) => c.corruptions), updates: sum((c) => c.checker.updates), afterMismatchErrors: sum((c) => c.afterMismatchErrors),
      },
      crossReplica: world.clients.flatMap((c) => c.checker.crossReplica),
      // The first cross-replica step with what led to it: the actions before it and the replicas' state.
      crossReplicaContext: (() => {
        const at = trace.findIndex((l) => l.includes('  ! '));
        return at < 0 ? [] : trace.slice(Math.max(0, at - 12), at + 1);
      })(),
      notes: world.notes,
      trace,
    };
  } catch (err) {
    const e = err as Error;
    const notes = world.notes.length ? `\nnotes: ${world.notes.join('; ')}` : '';
    const shown = Number(process.env.MODEL_TRACE_LINES ?? 50);
    throw new Error(`model run failed (${o.flavour} world, TEST_SEED=${o.seed}, ${o.steps} steps): ${e.message}${notes}\nreplay: ${o.replay}\nlast ${Math.min(shown, trace.length)} of ${trace.length} trace lines:\n${trace.slice(-shown).join('\n')}${e.stack && !/invariants violated|no convergence/.test(e.message) ? `\n${e.stack}` : ''}`);
  } finally {
    await world.close();
  }
}
