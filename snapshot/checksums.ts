// Order-independent content checksums per view, maintained on every change in O(views of the
// kind). For node-scoped kinds the sum is kept per node, so the checksum a client of
// (view, node) sees is the view's shared part XOR its node's part. The shared part is also kept
// per fine digest bucket, so a digest for any bucket count is a fold away (O(buckets), not O(keys)),
// and each fold is kept until the shared part changes: clients resyncing together share it.
//
// A view's hashes may also go unkept (counts are always kept): then the first checksum or digest
// asked of it sums its live entries again, and from then on they are kept. The mirror view starts
// so, and goes so again when its last client leaves (Store.releaseChecksums): a server without
// servers of a tier below would otherwise pay for its sums on every change, for no one.
import { MIRROR, VIEW_NAMES, VIEWS, viewsOfKind, type ViewName } from '../src/model/views.js';
import { halvesToBigInt } from '../src/protocol/checksum.js';
import { emptyDigest, fold } from '../src/protocol/digest.js';
import type { ViewFilter } from '../src/model/view-filter.js';
import { FINE_BUCKETS } from './buckets.js';

/** A XOR of entry hashes as signed 32-bit halves: XOR-ing numbers allocates nothing, BigInts do. */
interface Sum { hi: number; lo: number; count: number }

const halves = new DataView(new ArrayBuffer(8));
/** Splits a hash into `halves` (high word at 0, low at 4). */
const split = (hash: bigint) => halves.setBigUint64(0, hash);

/** What a checksum needs of a live entry. */
export interface Hashed { readonly node: string | undefined; readonly hash: bigint; readonly bits: number }

class ViewSum {
  readonly shared: Sum = { hi: 0, lo: 0, count: 0 };
  /** The shared part by fine bucket; allocated with the view's first key. */
  fine: Uint32Array | undefined;
  /** `fine` folded onto the bucket counts clients asked for, valid while `fine` is unchanged. */
  readonly folds = new Map<number, Uint32Array>();
  readonly perNode = new Map<string, Sum>();
  total = 0;

  /** Whether the XORs and `fine` are up to date (the counts always are). */
  constructor(public kept: boolean) {}

  sumFor(scoped: boolean, node: string | undefined, create: boolean): Sum | undefined {
    if (!scoped) return this.shared;
    const n = node ?? '';
    let s = this.perNode.get(n);
    if (!s && create) this.perNode.set(n, (s = { hi: 0, lo: 0, count: 0 }));
    return s;
  }
}

export interface Checksum { value: bigint; count: number }

export class ViewChecksums {
  private readonly views = new Map<ViewName, ViewSum>(VIEW_NAMES.map((v) => [v, new ViewSum(v !== MIRROR)]));

  /** `liveOf`: the live entries of a kind, every node's, for summing a view again. */
  constructor(private readonly liveOf: (kind: string) => Iterable<Hashed>) {}

  /**
   * Removes the old contribution of a key (if it had one) and adds the new one (if live). `bits`
   * are the key's bucket bits.
   */
  update(kind: string, bits: number, old: { node: string | undefined; hash: bigint } | undefined, now: { node: string | undefined; hash: bigint } | undefined): void {
    const f = 2 * (bits & (FINE_BUCKETS - 1));
    // Each hash split once for every view (0 for one not there).
    let oldHi = 0, oldLo = 0, nowHi = 0, nowLo = 0;
    if (old) { split(old.hash); oldHi = halves.getInt32(0); oldLo = halves.getInt32(4); }
    if (now) { split(now.hash); nowHi = halves.getInt32(0); nowLo = halves.getInt32(4); }
    for (const v of viewsOfKind(kind)) {
      const vs = this.views.get(v)!;
      const scoped = VIEWS[v].nodeScoped.has(kind);
      const kept = vs.kept;
      if (!scoped && kept) {
        const fine = (vs.fine ??= emptyDigest(FINE_BUCKETS));
        if (vs.folds.size) vs.folds.clear();
        // Old and new lie in the same bucket (the key's).
        fine[f] ^= oldHi ^ nowHi;
        fine[f + 1] ^= oldLo ^ nowLo;
      }
      if (old) {
        const s = vs.sumFor(scoped, old.node, false)!;
        if (kept) { s.hi ^= oldHi; s.lo ^= oldLo; }
        s.count--;
        vs.total--;
        if (scoped && s.count === 0) vs.perNode.delete(old.node ?? '');
      }
      if (now) {
        const s = vs.sumFor(scoped, now.node, true)!;
        if (kept) { s.hi ^= nowHi; s.lo ^= nowLo; }
        s.count++;
        vs.total++;
      }
    }
  }

  get(filter: ViewFilter): Checksum {
    const vs = this.current(filter.syncer);
    const mine = vs.perNode.get(filter.node);
    return { value: halvesToBigInt(vs.shared.hi ^ (mine?.hi ?? 0), vs.shared.lo ^ (mine?.lo ?? 0)), count: vs.shared.count + (mine?.count ?? 0) };
  }

  /** The digest of a view's shared part (node-scoped kinds excluded) in `buckets` buckets: a copy. */
  sharedDigest(view: ViewName, buckets: number): Uint32Array {
    const vs = this.current(view);
    let d = vs.folds.get(buckets);
    if (!d) vs.folds.set(buckets, (d = vs.fine ? fold(vs.fine, buckets) : emptyDigest(buckets)));
    return d.slice();
  }

  /** Live keys in a view across all nodes (typha_cache_size). */
  size(view: ViewName): number {
    return this.views.get(view)!.total;
  }

  /** Stops keeping a view's hashes until its checksum or digest is asked for again. */
  release(view: ViewName): void {
    const vs = this.views.get(view)!;
    vs.kept = false;
    vs.fine = undefined;
    vs.folds.clear();
  }

  /** The view's sums, up to date: its hashes summed again from its live entries if they were not kept. */
  private current(view: ViewName): ViewSum {
    const vs = this.views.get(view)!;
    if (vs.kept) return vs;
    vs.shared.hi = vs.shared.lo = 0;
    for (const s of vs.perNode.values()) s.hi = s.lo = 0;
    const { kinds, nodeScoped } = VIEWS[view];
    for (const kind of kinds) {
      const scoped = nodeScoped.has(kind);
      for (const e of this.liveOf(kind)) {
        split(e.hash);
        const hi = halves.getInt32(0);
        const lo = halves.getInt32(4);
        if (!scoped) {
          const fine = (vs.fine ??= emptyDigest(FINE_BUCKETS));
          const f = 2 * (e.bits & (FINE_BUCKETS - 1));
          fine[f] ^= hi;
          fine[f + 1] ^= lo;
        }
        const s = vs.sumFor(scoped, e.node, false)!;
        s.hi ^= hi;
        s.lo ^= lo;
      }
    }
    vs.kept = true;
    return vs;
  }
}
