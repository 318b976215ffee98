// A progress line on stderr: phase, elapsed seconds, delivered/expected. On a terminal one line
// redrawn in place; in a log (CI, a test capturing stderr) a plain line every few seconds, so a
// long drain still shows signs of life without flooding the file.

/** What a scenario reports its progress to; the CLI passes a Progress, tests pass nothing. */
export interface Meter {
  /** A new phase; `expected` deliveries when the phase counts them. */
  phase(name: string, expected?: number): void;
  delivered(n: number): void;
}

export class Progress implements Meter {
  private name = '';
  private expected: number | undefined;
  private count = 0;
  private startedAt = Date.now();
  private updatedAt = Date.now();
  private lastLineAt = 0;
  private drawn = false;
  /** A count arrived since the last plain line: print the phase's final state before the next. */
  private unprinted = false;

  constructor(private readonly out: NodeJS.WriteStream = process.stderr, private readonly plainEveryMs = 3000) {}

  private get tty(): boolean { return this.out.isTTY === true; }

  phase(name: string, expected?: number): void {
    if (!this.tty && this.unprinted) this.draw(true);
    this.name = name;
    this.expected = expected;
    this.count = 0;
    this.startedAt = this.updatedAt = Date.now();
    // A plain line waits for the first count, printed at once: "0 of N" says nothing.
    this.lastLineAt = 0;
    if (this.tty) this.draw(true);
  }

  delivered(n: number): void {
    this.count = n;
    this.updatedAt = Date.now();
    this.unprinted = true;
    this.draw(false);
  }

  /** A message of its own, above the progress line. */
  say(msg: string): void {
    if (!this.tty && this.unprinted) this.draw(true);
    this.clear();
    this.out.write(`${msg}\n`);
    if (this.tty && this.name) this.draw(true);
  }

  /** Leaves the terminal on a fresh line (call before printing results). */
  done(): void {
    if (!this.tty && this.unprinted) this.draw(true);
    this.clear();
    this.name = '';
  }

  private line(): string {
    // Elapsed up to the last count: a phase's final line may be printed after it ended.
    const s = (((this.tty ? Date.now() : this.updatedAt) - this.startedAt) / 1000).toFixed(1);
    if (this.expected === undefined) return `${this.name} ${s} s`;
    const pct = this.expected ? Math.min(100, (100 * this.count) / this.expected) : 100;
    const width = 20;
    const bar = '#'.repeat(Math.round((pct / 100) * width)).padEnd(width, '.');
    return `${this.name} ${s} s [${bar}] ${this.count}/${this.expected} ${pct.toFixed(1)}%`;
  }

  private draw(force: boolean): void {
    if (!this.name) return;
    if (this.tty) {
      this.out.write(`\r${this.line()}\x1b[K`);
      this.drawn = true;
      return;
    }
    const now = Date.now();
    if (!force && now - this.lastLineAt < this.plainEveryMs) return;
    this.lastLineAt = now;
    this.unprinted = false;
    this.out.write(`${this.line()}\n`);
  }

  private clear(): void {
    if (this.tty && this.drawn) this.out.write('\r\x1b[K');
    this.drawn = false;
  }
}

/**
 * Reads the delivered count every `everyMs` for the meter until stopped; one read at a time, so
 * a busy client process is never asked again before it has answered. No meter: no polling.
 */
export function pollDelivered(meter: Meter | undefined, read: () => Promise<number>, everyMs = 500): { stop(): Promise<void> } {
  if (!meter) return { stop: async () => {} };
  let running = true;
  const loop = (async () => {
    while (running) {
      await new Promise((r) => setTimeout(r, everyMs));
      if (running) meter.delivered(await read().catch(() => 0));
    }
  })();
  return { async stop() { running = false; await loop; } };
}
