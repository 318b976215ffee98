// Every key by digest bucket, so a digest resync finds the keys of the buckets a client has wrong
// without scanning the store. Buckets here are fine (2^16, by the key bits' low 16 bits): a
// client's coarser bucket b is the fine buckets b, b + B, b + 2B, … Lists run through the entries
// themselves, as the change log does; tombstones stay listed until evicted and are skipped.
import type { Entry } from './entry.js';

export const FINE_BUCKETS = 1 << 16;

export class BucketIndex {
  private readonly heads: (Entry | null)[] = new Array(FINE_BUCKETS).fill(null);

  add(e: Entry): void {
    const f = e.bits & (FINE_BUCKETS - 1);
    const first = this.heads[f]!;
    e.bnext = first;
    e.bprev = null;
    if (first) first.bprev = e;
    this.heads[f] = e;
  }

  remove(e: Entry): void {
    if (e.bprev) e.bprev.bnext = e.bnext;
    else this.heads[e.bits & (FINE_BUCKETS - 1)] = e.bnext;
    if (e.bnext) e.bnext.bprev = e.bprev;
    e.bprev = e.bnext = null;
  }

  /** Entries (tombstones included) in bucket `b` of `buckets`, a power of two ≤ FINE_BUCKETS. */
  *inBucket(b: number, buckets: number): Generator<Entry> {
    for (let f = b; f < FINE_BUCKETS; f += buckets) for (let e: Entry | null = this.heads[f]!; e; e = e.bnext) yield e;
  }
}
