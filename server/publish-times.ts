// When each recent batch was published, so an ack of seq s can be turned into a lag in seconds.
// A fixed ring: acks older than it are simply not observed.
export class PublishTimes {
  private readonly to: number[];
  private readonly at: number[];
  private next = 0;
  private count = 0;

  constructor(private readonly capacity = 4096) {
    this.to = new Array(capacity).fill(0);
    this.at = new Array(capacity).fill(0);
  }

  record(to: number, at: number): void {
    this.to[this.next] = to;
    this.at[this.next] = at;
    this.next = (this.next + 1) % this.capacity;
    this.count = Math.min(this.count + 1, this.capacity);
  }

  /** Publish time of the batch that first reached `seq`; undefined if not remembered. */
  timeOf(seq: number): number | undefined {
    const start = (this.next - this.count + this.capacity) % this.capacity;
    const idx = (i: number) => (start + i) % this.capacity;
    if (this.count === 0 || seq < this.to[idx(0)]! || seq > this.to[idx(this.count - 1)]!) return undefined;
    let lo = 0;
    let hi = this.count - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.to[idx(mid)]! >= seq) hi = mid;
      else lo = mid + 1;
    }
    return this.at[idx(lo)];
  }
}
