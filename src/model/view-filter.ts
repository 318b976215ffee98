// Which changes a client of (syncer type, node) receives. Clients whose filters have the same key
// share one pre-encoded frame per delta and one snapshot.
import { MIRROR, needsNode, VIEWS, type ViewDef, type ViewName } from './views.js';

export class ViewFilter {
  /** Identity of what this filter lets through: the syncer type, plus the node where it matters. */
  readonly key: string;
  readonly def: ViewDef;

  readonly node: string;
  /**
   * Snapshots and repairs carry the deletions the store still remembers too: a server of a tier
   * below (the mirror view) then deletes a key at its real revision, not at the older revision
   * a sweep would report, which its own clients may already have passed.
   */
  readonly tombstones: boolean;

  constructor(readonly syncer: ViewName, node: string) {
    this.def = VIEWS[syncer];
    // Only node-scoped views depend on the node: all Felix clients share one key.
    this.node = needsNode(syncer) ? node : '';
    this.key = this.node ? `${syncer}/${this.node}` : syncer;
    this.tombstones = syncer === MIRROR;
  }

  matches(kind: string, node: string | undefined): boolean {
    if (!this.def.kinds.has(kind)) return false;
    return !this.def.nodeScoped.has(kind) || node === this.node;
  }
}

