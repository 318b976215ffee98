// Order-independent content checksums per view, maintained on every change in O(views of the
// kind). For node-scoped kinds the sum is kept per node, so the checksum a client of
// (view, node) sees is the view's shared part XOR its node's part.
import { SYNCER_TYPES, VIEWS, viewsOfKind, type SyncerType } from '../src/model/views.js';
import type { ViewFilter } from '../dedupe/view-filter.js';

interface Sum { xor: bigint; count: number }

class ViewSum {
  readonly shared: Sum = { xor: 0n, count: 0 };
  readonly perNode = new Map<string, Sum>();
  total = 0;

  sumFor(scoped: boolean, node: string | undefined, create: boolean): Sum | undefined {
    if (!scoped) return this.shared;
    const n = node ?? '';
    let s = this.perNode.get(n);
    if (!s && create) this.perNode.set(n, (s = { xor: 0n, count: 0 }));
    return s;
  }
}

export interface Checksum { value: bigint; count: number }

export class ViewChecksums {
  private readonly views = new Map<SyncerType, ViewSum>(SYNCER_TYPES.map((v) => [v, new ViewSum()]));

  /** Removes the old contribution of a key (if it had one) and adds the new one (if live). */
  update(kind: string, old: { node: string | undefined; hash: bigint } | undefined, now: { node: string | undefined; hash: bigint } | undefined): void {
    for (const v of viewsOfKind(kind)) {
      const vs = this.views.get(v)!;
      const scoped = VIEWS[v].nodeScoped.has(kind);
      if (old) {
        const s = vs.sumFor(scoped, old.node, false)!;
        s.xor ^= old.hash;
        s.count--;
        vs.total--;
        if (scoped && s.count === 0) vs.perNode.delete(old.node ?? '');
      }
      if (now) {
        const s = vs.sumFor(scoped, now.node, true)!;
        s.xor ^= now.hash;
        s.count++;
        vs.total++;
      }
    }
  }

  get(filter: ViewFilter): Checksum {
    const vs = this.views.get(filter.syncer)!;
    const mine = vs.perNode.get(filter.node);
    return { value: vs.shared.xor ^ (mine?.xor ?? 0n), count: vs.shared.count + (mine?.count ?? 0) };
  }

  /** Live keys in a view across all nodes (typha_cache_size). */
  size(view: SyncerType): number {
    return this.views.get(view)!.total;
  }
}
