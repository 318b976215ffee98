// A rolling deployment on the memory datastore, as bench/scenarios/churn.ts does it on etcd
// (bench/lib/writer.ts writeChurn): in waves, the oldest pods' WorkloadEndpoints are deleted and
// as many are created under new names, `rate` operations/s, a pause between waves, for as long
// as it runs. Values are bench/lib/payload.ts's, so each creation carries its write time
// (`bench/ts`, µs on the monotonic clock) for measuring delivery latency.
import { nowUs, valueOf } from '../lib/payload.js';
import type { MemoryDatastore } from '../../src/datastore/memory.js';
import { keyForResource } from '../../src/model/kinds.js';

export interface RollingOptions {
  /** Pods alive at any time (the seed holds pods 0..pods-1). */
  pods: number;
  waveSize: number;
  /** Deletions and creations per second during a wave. */
  rate: number;
  pauseMs: number;
}

export const podKey = (i: number, seq = 0, ts = 0): { key: string; value: Record<string, unknown> } => {
  const value = valueOf(i, seq, ts);
  return { key: keyForResource(value), value };
};

/** The initial pods, unstamped (seq 0, ts 0). */
export function seedPods(n: number): { key: string; value: Record<string, unknown> }[] {
  return Array.from({ length: n }, (_, i) => podKey(i));
}

export class RollingDeployment {
  created = 0;
  deleted = 0;
  waves = 0;
  private readonly live: number[];
  private next: number;
  private running = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;

  constructor(private readonly ds: MemoryDatastore, private readonly o: RollingOptions) {
    this.live = Array.from({ length: o.pods }, (_, i) => i);
    this.next = o.pods;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  /** Stops at the next tick; resolves once nothing more will be written. */
  async stop(): Promise<void> {
    this.running = false;
    this.wake?.();
    await this.loop;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => { this.wake = undefined; resolve(); }, ms);
      this.wake = () => { clearTimeout(t); this.wake = undefined; resolve(); };
    });
  }

  private async run(): Promise<void> {
    while (this.running) {
      const gone = this.live.splice(0, Math.min(this.o.waveSize, this.live.length));
      await this.paced(gone.length, (i) => { this.deleted++; return { key: podKey(gone[i]!).key, value: null }; });
      const fresh = gone.map(() => this.next++);
      await this.paced(fresh.length, (i, ts) => {
        this.created++;
        this.live.push(fresh[i]!);
        return podKey(fresh[i]!, this.created, ts);
      });
      // Stopped mid-wave, the wave is left half done: the datastore, not `live`, is then the truth.
      this.waves++;
      if (this.running) await this.sleep(this.o.pauseMs);
    }
  }

  /** `total` operations at `rate`/s, those due written as one batch per 20 ms tick. */
  private async paced(total: number, op: (i: number, ts: number) => { key: string; value: unknown }): Promise<void> {
    const start = Date.now();
    let i = 0;
    while (i < total && this.running) {
      const due = Math.min(total, Math.floor(((Date.now() - start) / 1000) * this.o.rate) + 1);
      if (due > i) {
        const ts = nowUs();
        const ops: { key: string; value: unknown }[] = [];
        for (; i < due; i++) ops.push(op(i, ts));
        this.ds.write(ops);
      }
      await this.sleep(20);
    }
  }
}
