// The delta frames of one published batch, each built once, on first use. Per view the batch is
// grouped once by node: clients whose node has no change of its own in the batch share the view's
// frame, and each node named in it gets one frame (the shared items and its own, in order). So a
// batch costs O(batch + clients), not a scan of the batch per node.
import type { ViewFilter } from '../src/model/view-filter.js';
import type { ViewName } from '../src/model/views.js';
import { itemsFrame } from '../src/protocol/frames.js';
import { NodeGroups, type ItemList } from '../snapshot/node-groups.js';
import type { Batch } from '../snapshot/store.js';
import { sharedFrame, type SharedFrame } from './shared-frame.js';

interface ViewFrames {
  readonly groups: NodeGroups;
  /** null: nothing of the view for that client in this batch; undefined: not built yet. */
  shared: SharedFrame | null | undefined;
  readonly byNode: Map<string, SharedFrame | null>;
}

export class BatchFrames {
  private readonly views = new Map<ViewName, ViewFrames>();
  /** Frames built so far. */
  built = 0;

  constructor(private readonly batch: Batch) {}

  /** The frame for a caught-up client of `f`; null when the batch holds nothing for it. */
  frameFor(f: ViewFilter): SharedFrame | null {
    let v = this.views.get(f.syncer);
    if (!v) this.views.set(f.syncer, (v = { groups: NodeGroups.ofChanges(this.batch.changes, f.def), shared: undefined, byNode: new Map() }));
    if (!v.groups.owns(f.node)) {
      if (v.shared === undefined) v.shared = this.frame(v.groups.itemsFor(f.node));
      return v.shared;
    }
    let frame = v.byNode.get(f.node);
    if (frame === undefined) v.byNode.set(f.node, (frame = this.frame(v.groups.itemsFor(f.node))));
    return frame;
  }

  private frame({ items, hashes }: ItemList): SharedFrame | null {
    if (items.length === 0) return null;
    this.built++;
    return sharedFrame(itemsFrame({ t: 'delta', from: this.batch.from, to: this.batch.to }, items, 0, items.length, hashes));
  }
}
