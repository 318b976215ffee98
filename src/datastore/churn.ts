// A churn generator for the memory datastore, so the demo (and a load test) keeps moving:
// workload endpoints relabelled, pods created and deleted, at a fixed rate.
import { keyForResource, RESOURCE_PREFIX } from '../model/kinds.js';
import type { MemoryDatastore } from './memory.js';

const WEP_PREFIX = `${RESOURCE_PREFIX}workloadendpoints/`;

export class ChurnGenerator {
  private timer: NodeJS.Timeout | undefined;
  private budget = 0;
  private counter = 0;
  private readonly created: string[] = [];
  private weps: string[] | undefined;

  constructor(private readonly ds: MemoryDatastore, private readonly perSecond: number, private readonly maxCreated = 200) {}

  start(tickMs = 20): void {
    if (this.perSecond <= 0 || this.timer) return;
    this.timer = setInterval(() => {
      this.budget += (this.perSecond * tickMs) / 1000;
      const n = Math.floor(this.budget);
      this.budget -= n;
      for (let i = 0; i < n; i++) this.step();
    }, tickMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One change: mostly relabels, sometimes a pod created or deleted. */
  step(): void {
    // The endpoint list is read once; keys that vanished since are skipped.
    this.weps ??= [...this.ds.keys()].filter((k) => k.startsWith(WEP_PREFIX));
    const key = this.weps[Math.floor(Math.random() * this.weps.length)];
    const current = key === undefined ? undefined : this.ds.get(key);
    if (!current) return;
    const n = ++this.counter;
    const r = Math.random();
    if (r < 0.15 && this.created.length > 0) {
      this.ds.delete(this.created.splice(Math.floor(Math.random() * this.created.length), 1)[0]!);
      return;
    }
    const v = structuredClone(current) as any;
    v.metadata.labels = { ...v.metadata.labels, 'churn-generation': String(n) };
    if (r < 0.3 && this.created.length < this.maxCreated) {
      const pod = `churn-${n}`;
      v.metadata.name = `${String(v.spec.node).replace(/-/g, '--')}-k8s-${pod}-eth0`;
      v.spec.pod = pod;
      const created = keyForResource(v);
      this.created.push(created);
      this.ds.put(created, v);
    } else {
      this.ds.put(key!, v);
    }
  }
}
