// One key's state in the store. The pre-encoded wire item is the only copy of the value: the
// canonical value bytes are a view into it.
export interface Entry {
  readonly key: string;
  readonly kind: string;
  /** The node the value belongs to (for node-scoped views); kept on deletion for filtering. */
  node: string | undefined;
  /** msgpack [key, bin(value) | nil, revision], spliced into frames as is. */
  item: Buffer;
  /**
   * The nodes a node-scoped value moved away from (a CalicoNodeStatus whose spec.node was
   * edited), each with the seq it left at and the deletion item that node's clients need: a
   * client of that node catching up from before then gets the deletion.
   */
  left?: Map<string | undefined, { seq: number; item: Buffer }>;
  /** Canonical value bytes (inside `item`); null for a deletion tombstone. */
  value: Buffer | null;
  revision: string;
  /** Sequence number of the entry's last change. */
  seq: number;
  /** xxh64 of key and value (PROTOCOL.md); 0n for a tombstone, as a delta frame's `h` has it. */
  hash: bigint;
  /** The key's digest bucket bits (checksum.ts keyBits). */
  readonly bits: number;
  /** Bytes this entry counts against the history budget while it is a tombstone. */
  tombstoneBytes: number;
  // Links in the change log, oldest change first.
  prev: Entry | null;
  next: Entry | null;
  // Links in the entry's bucket list (buckets.ts).
  bprev: Entry | null;
  bnext: Entry | null;
}

/** Rough bytes an entry holds, for the history budget. */
export const entryBytes = (e: Entry): number => 120 + e.key.length * 2 + e.item.length;
