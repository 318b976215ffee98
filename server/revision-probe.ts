// Where the datastore stands, for clients whose cache is newer than this replica: one read for
// every client held at the same time. An answer counts for a client only if its read began after
// the client's hello arrived: a read from before might predate the write the client has seen, and
// would make a lagging replica look like a datastore restored to an older revision.

export interface RevisionSource {
  /** The datastore's current revision, read from it now. */
  currentRevision(): Promise<number>;
  /** Deliver everything up to `revision` even where no event would show it. */
  catchUpTo?(revision: number): void;
}

interface Read { readonly n: number; readonly answer: Promise<number> }

export class RevisionProbe {
  private last: Read | undefined;
  private started = 0;

  constructor(private readonly source: RevisionSource) {}

  /** A mark to take when a hello arrives: reads begun after it are fresh enough for that client. */
  get mark(): number { return this.started; }

  /** The datastore's revision, from a read begun after `mark`. */
  read(mark: number): Promise<number> {
    if (this.last && this.last.n > mark) return this.last.answer;
    const read: Read = { n: ++this.started, answer: this.source.currentRevision() };
    this.last = read;
    // A failed read is not shared with later askers: they try again.
    read.answer.catch(() => { if (this.last === read) this.last = undefined; });
    return read.answer;
  }

  catchUpTo(revision: number): void {
    this.source.catchUpTo?.(revision);
  }
}
