// Live entries by kind, for snapshots, digests and repairs. Kinds that some view scopes by node
// (a node's own Node, its CalicoNodeStatus) are held by node within their kind, so that one node's
// part of a view is found in O(its size), not by walking every node's.
import { SYNCER_TYPES, VIEWS } from '../src/model/views.js';
import type { Entry } from './entry.js';

const SCOPED_KINDS: ReadonlySet<string> = new Set(SYNCER_TYPES.flatMap((v) => [...VIEWS[v].nodeScoped]));

type ByKey = Map<string, Entry>;

export class LiveIndex {
  private readonly byKind = new Map<string, ByKey>();
  private readonly byNode = new Map<string, Map<string | undefined, ByKey>>();

  /** Adds `e` (or replaces its older self) under its kind and current node. */
  add(e: Entry): void {
    let m: ByKey | undefined;
    if (SCOPED_KINDS.has(e.kind)) {
      let nodes = this.byNode.get(e.kind);
      if (!nodes) this.byNode.set(e.kind, (nodes = new Map()));
      m = nodes.get(e.node);
      if (!m) nodes.set(e.node, (m = new Map()));
    } else {
      m = this.byKind.get(e.kind);
      if (!m) this.byKind.set(e.kind, (m = new Map()));
    }
    m.set(e.key, e);
  }

  /** Removes `e` from where it was live: under `node`, the node it had then. */
  remove(e: Entry, node: string | undefined): void {
    if (!SCOPED_KINDS.has(e.kind)) return void this.byKind.get(e.kind)?.delete(e.key);
    const nodes = this.byNode.get(e.kind);
    const m = nodes?.get(node);
    if (m?.delete(e.key) && m.size === 0) nodes!.delete(node);
  }

  *ofKind(kind: string): Generator<Entry> {
    const nodes = this.byNode.get(kind);
    if (nodes) for (const m of nodes.values()) yield* m.values();
    else { const m = this.byKind.get(kind); if (m) yield* m.values(); }
  }

  ofNode(kind: string, node: string): Iterable<Entry> {
    return this.byNode.get(kind)?.get(node)?.values() ?? [];
  }
}
