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
    const weps = [...this.ds.keys()].filter((k) => k.startsWith(WEP_PREFIX));
    if (weps.length === 0) return;
    const r = Math.random();
    const n = ++this.counter;
    if (r < 0.15 && this.created.length > 0) {
      this.ds.delete(this.created.splice(Math.floor(Math.random() * this.created.length), 1)[0]!);
    } else if (r < 0.3 && this.created.length < this.maxCreated) {
      const template = structuredClone(this.ds.get(weps[Math.floor(Math.random() * weps.length)]!)) as any;
      const pod = `churn-${n}`;
      template.metadata.name = `${String(template.spec.node).replace(/-/g, '--')}-k8s-${pod}-eth0`;
      template.spec.pod = pod;
      template.metadata.labels = { ...template.metadata.labels, 'churn-generation': String(n) };
      const key = keyForResource(template);
      this.created.push(key);
      this.ds.put(key, template);
    } else {
      const key = weps[Math.floor(Math.random() * weps.length)]!;
      const v = structuredClone(this.ds.get(key)) as any;
      v.metadata.labels = { ...v.metadata.labels, 'churn-generation': String(n) };
      this.ds.put(key, v);
    }
  }
}
