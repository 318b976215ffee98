// The history: every key ordered by the seq of its last change (a doubly linked list through
// the entries themselves), plus deletion tombstones kept as long as a byte budget allows.
//
// Catch-up from position s is then a walk back from the newest change to s: it visits each key
// changed since s exactly once, with its latest value, so it costs O(keys changed) however many
// times each changed. Live entries are the store itself; the only extra memory is tombstones,
// and evicting the oldest one raises the floor below which a client must take a snapshot.
import type { Entry } from './entry.js';
import { entryBytes } from './entry.js';

export class ChangeLog {
  private head: Entry | null = null; // oldest
  private tail: Entry | null = null; // newest
  private tombstones: { entry: Entry; seq: number }[] = [];
  private tombstoneStart = 0;
  /** Bytes held by tombstones. */
  bytes = 0;
  /** Oldest position from which catch-up is exact. */
  floor = 0;

  constructor(private readonly maxBytes: number) {}

  /** Records that `e` just changed (its seq is the new head). */
  touch(e: Entry): void {
    if (e.prev || e.next || this.head === e) this.unlink(e);
    e.prev = this.tail;
    e.next = null;
    if (this.tail) this.tail.next = e;
    else this.head = e;
    this.tail = e;
    if (e.value === null) {
      e.tombstoneBytes = entryBytes(e);
      this.tombstones.push({ entry: e, seq: e.seq });
      this.bytes += e.tombstoneBytes;
    }
  }

  /** A tombstone came back to life before eviction: it no longer counts against the budget. */
  revived(e: Entry): void {
    this.bytes -= e.tombstoneBytes;
    e.tombstoneBytes = 0;
  }

  /** Evicts the oldest tombstones over budget; returns the entries to drop from the index. */
  evict(): Entry[] {
    const dropped: Entry[] = [];
    while (this.bytes > this.maxBytes && this.tombstoneStart < this.tombstones.length) {
      const t = this.tombstones[this.tombstoneStart++]!;
      if (t.entry.value !== null || t.entry.seq !== t.seq) continue; // revived since (and maybe deleted again)
      this.revived(t.entry);
      this.unlink(t.entry);
      this.floor = Math.max(this.floor, t.seq);
      dropped.push(t.entry);
    }
    if (this.tombstoneStart > 1024 && this.tombstoneStart * 2 > this.tombstones.length) {
      this.tombstones = this.tombstones.slice(this.tombstoneStart);
      this.tombstoneStart = 0;
    }
    return dropped;
  }

  /**
   * Every entry changed after `seq`, oldest first; undefined when `seq` is below the floor (a
   * deletion the client needs is gone).
   */
  changedSince(seq: number): Entry[] | undefined {
    if (seq < this.floor) return undefined;
    const changed: Entry[] = [];
    for (let e = this.tail; e && e.seq > seq; e = e.prev) changed.push(e);
    return changed.reverse();
  }

  private unlink(e: Entry): void {
    if (e.prev) e.prev.next = e.next;
    else this.head = e.next;
    if (e.next) e.next.prev = e.prev;
    else this.tail = e.prev;
    e.prev = e.next = null;
  }
}
