// One view's items in order, each shared by every client of the view or owned by one node (its
// node-scoped kinds). Grouped in one pass, so that a node's list (the shared items and its own, in
// order) costs its own length rather than a rescan of everything: a batch or a catch-up reaches
// a thousand nodes for the price of one pass plus what each receives.
import type { ViewDef } from '../src/model/views.js';
import type { Entry } from './entry.js';

/**
 * Items in order with their entry hashes (by the same index, 0n for a deletion): the store's, so
 * that a delta frame carries them without hashing the items again.
 */
export interface ItemList {
  readonly items: Buffer[];
  readonly hashes: bigint[];
}

export class NodeGroups {
  private readonly items: Buffer[] = [];
  private readonly hashes: bigint[] = [];
  /** Positions in `items` of the shared ones, and of each node's own. */
  private readonly shared: number[] = [];
  private readonly owned = new Map<string | undefined, number[]>();
  private sharedBytes = 0;
  private ownedBytes = 0;

  addShared(item: Buffer, hash: bigint): void {
    this.shared.push(this.add(item, hash));
    this.sharedBytes += item.length;
  }

  addOwned(node: string | undefined, item: Buffer, hash: bigint): void {
    let l = this.owned.get(node);
    if (!l) this.owned.set(node, (l = []));
    l.push(this.add(item, hash));
    this.ownedBytes += item.length;
  }

  private add(item: Buffer, hash: bigint): number {
    this.hashes.push(hash);
    return this.items.push(item) - 1;
  }

  /** Item bytes of every distinct list: the shared one, and each owning node's. */
  get bytes(): number {
    return this.sharedBytes * (1 + this.owned.size) + this.ownedBytes;
  }

  /** Whether `node` has items of its own; a client of any other node gets the shared ones only. */
  owns(node: string): boolean {
    return this.owned.has(node);
  }

  /** What a client of `node` gets ('' for views that are not node-scoped): in order. */
  itemsFor(node: string): ItemList {
    const own = this.owned.get(node);
    const out: ItemList = { items: [], hashes: [] };
    const take = (i: number) => { out.items.push(this.items[i]!); out.hashes.push(this.hashes[i]!); };
    let s = 0;
    if (own) {
      for (const i of own) {
        while (s < this.shared.length && this.shared[s]! < i) take(this.shared[s++]!);
        take(i);
      }
    }
    while (s < this.shared.length) take(this.shared[s++]!);
    return out;
  }

  /** Groups published changes (a batch) by what a view's clients get of them. */
  static ofChanges(changes: readonly { kind: string; node: string | undefined; item: Buffer; hash: bigint }[], def: ViewDef): NodeGroups {
    const g = new NodeGroups();
    for (const c of changes) {
      if (!def.kinds.has(c.kind)) continue;
      if (def.nodeScoped.has(c.kind)) g.addOwned(c.node, c.item, c.hash);
      else g.addShared(c.item, c.hash);
    }
    return g;
  }

  /**
   * Groups the entries changed after `seq` (oldest first) by what a view's clients catching up
   * from `seq` need: each entry's latest item, and for a node-scoped key that left a node after
   * `seq` its deletion for that node (Store.apply keeps it in `left`).
   */
  static ofEntries(changed: readonly Entry[], def: ViewDef, seq: number): NodeGroups {
    const g = new NodeGroups();
    for (const e of changed) {
      if (!def.kinds.has(e.kind)) continue;
      if (!def.nodeScoped.has(e.kind)) { g.addShared(e.item, e.hash); continue; }
      g.addOwned(e.node, e.item, e.hash);
      if (e.left) for (const [node, left] of e.left) if (node !== e.node && left.seq > seq) g.addOwned(node, left.item, 0n);
    }
    return g;
  }
}
