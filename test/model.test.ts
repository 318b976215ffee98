// Seeded model-based convergence under faults (issue 8). Each run generates, from its seed, a
// sequence of datastore writes (creates, updates, deletes, bursts, transactions, large values,
// rapid rewrites, no-op rewrites), client actions (stop, start, stall, switch replica, corrupt
// the cache), server actions (restart, drain) and datastore faults (etcd: SIGKILL and restart,
// SIGSTOP/SIGCONT, compaction; Kubernetes API: 410 Gone, dropped watches, restart, silent
// watches), then heals everything and checks that every client holds exactly its view of the
// datastore, with no revision going backwards on a server and no key outside its view
// (test/support/model/invariants.ts says exactly what is checked, and why the revision rule
// holds per replica only).
//
// The tiers world (issue 18) adds a tier: two tier-1 replicas on etcd and one or two tier-2
// replicas following them, agents on both tiers moving between them, and faults at each tier
// (a tier-1 replica killed, restarted, drained or hung towards the tier below; a tier-2 replica
// restarted or drained).
//
// Short mode (npm test): 6 etcd, 3 Kubernetes and 3 tiers seeds of 40 actions (about 30-40 s).
// MODEL_LONG=1: 30 + 15 + 15 seeds of 150 actions (about 8 min). Replay a failure with the TEST_SEED
// it prints (MODEL_SEEDS=1 runs that seed alone, MODEL_WORLD=etcd|kube one world only);
// MODEL_STEPS overrides the number of actions, MODEL_TRACE=1 prints the whole action trace of
// passing runs too, MODEL_TRACE_LINES=n shows n trace lines on failure (default 50), and
// MODEL_STRICT_REVISIONS=1 fails a run on a revision going back across replicas (a finding
// otherwise, see test/support/model/invariants.ts).
import { test } from 'node:test';
import { haveEtcd } from './support/etcd.js';
import { runSeed, type RunSummary } from './support/model/run.js';
import { randomSeed, testSeed } from './support/prng.js';

const LONG = process.env.MODEL_LONG === '1';
// npm test runs fixed seeds, so that it is reproducible; MODEL_LONG and TEST_SEED explore others
// (each seed is in its test's name).
const base = process.env.TEST_SEED ? testSeed('model') : LONG ? randomSeed() : 4200;
const env = (name: string, dflt: number) => (process.env[name] ? Number(process.env[name]) : dflt);
const worlds = (process.env.MODEL_WORLD ?? 'etcd,kube,tiers').split(',');
const plan = [
  { flavour: 'etcd' as const, seeds: env('MODEL_SEEDS', LONG ? 30 : 6), steps: env('MODEL_STEPS', LONG ? 150 : 40) },
  { flavour: 'kube' as const, seeds: env('MODEL_SEEDS', LONG ? 15 : 3), steps: env('MODEL_STEPS', LONG ? 150 : 40) },
  { flavour: 'tiers' as const, seeds: env('MODEL_SEEDS', LONG ? 15 : 3), steps: env('MODEL_STEPS', LONG ? 150 : 40) },
].filter((p) => worlds.includes(p.flavour));

function report(s: RunSummary): string {
  const c = s.client;
  return [
    `${s.flavour} seed ${s.seed}: ${s.steps} actions, ${s.replicas} replica(s), ${s.clients} clients, ${s.ms} ms (quiescence ${s.quiesceMs} ms)`,
    `actions ${Object.entries(s.actions).sort().map(([k, v]) => `${k}=${v}`).join(' ')}`,
    `clients: ${c.updates} updates, ${c.connects} connects, ${c.snapshots} snapshots, ${c.digests} digest resyncs, ${c.resumes} resumes, ${c.checksumMismatches} checksum mismatches for ${c.corruptions} corruptions`,
    ...(s.crossReplica.length ? [`FINDING cross-replica revision regressions (${s.crossReplica.length}): ${s.crossReplica.slice(0, 5).join(' | ')}`] : []),
    ...s.crossReplicaContext.map((l) => `  context: ${l}`),
    ...s.notes.map((n) => `NOTE ${n}`),
  ].join('\n');
}

for (const p of plan) {
  for (let i = 0; i < p.seeds; i++) {
    const seed = base + i;
    const world = { etcd: 'etcd, 2 replicas', kube: 'Kubernetes API, 1-2 replicas', tiers: 'tiers, etcd → 2 tier-1 → 1-2 tier-2 replicas' }[p.flavour];
    const name = `model: ${world}, ${p.steps} actions under faults converge (TEST_SEED=${seed})`;
    test(name, { timeout: LONG ? 300_000 : 120_000, skip: p.flavour !== 'kube' && !haveEtcd() ? 'no etcd binary' : false }, async (t) => {
      const summary = await runSeed({
        flavour: p.flavour, seed, steps: p.steps, quiesceTimeoutMs: LONG ? 60_000 : 30_000,
        strictRevisions: process.env.MODEL_STRICT_REVISIONS !== '0',
        replay: `TEST_SEED=${seed} MODEL_SEEDS=1 MODEL_WORLD=${p.flavour} MODEL_STEPS=${p.steps} node --import tsx --test test/model.test.ts`,
      });
      for (const line of report(summary).split('\n')) t.diagnostic(line);
      if (process.env.MODEL_TRACE === '1') for (const line of summary.trace) t.diagnostic(line);
    });
  }
}
