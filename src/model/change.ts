// One datastore change as every stage after ingest sees it: the key parsed, the value checked
// against its key and encoded once into canonical msgpack.
export interface Change {
  readonly key: string;
  readonly kind: string;
  readonly node: string | undefined;
  /** Canonical value bytes; null for a deletion. */
  readonly value: Buffer | null;
  readonly revision: string;
}
