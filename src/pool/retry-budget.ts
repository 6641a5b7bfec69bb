// A pool's retry budget (Finagle's and Envoy's idea): over a rolling 10 s window, retries may add at most
// `percent` of the pool's requests, with a floor of `minConcurrent` retries at once, so a dead pool is not
// hammered while a burst of retries after one upstream dies still goes through.

const BUCKETS = 10;
const BUCKET_MS = 1_000;

/** Counts events over the last BUCKETS × BUCKET_MS, in buckets reset lazily as time moves on. */
export class RollingCount {
  private readonly counts = new Array<number>(BUCKETS).fill(0);
  private readonly stamps = new Array<number>(BUCKETS).fill(-1);

  constructor(private readonly now: () => number = Date.now) {}

  add(n = 1): void {
    const slot = Math.floor(this.now() / BUCKET_MS);
    const i = slot % BUCKETS;
    if (this.stamps[i] !== slot) {
      this.stamps[i] = slot;
      this.counts[i] = 0;
    }
    this.counts[i]! += n;
  }

  sum(): number {
    const oldest = Math.floor(this.now() / BUCKET_MS) - BUCKETS + 1;
    let total = 0;
    for (let i = 0; i < BUCKETS; i++) if (this.stamps[i]! >= oldest) total += this.counts[i]!;
    return total;
  }
}

export class RetryBudget {
  private readonly requests: RollingCount;
  private readonly retries: RollingCount;
  private retrying = 0;

  constructor(
    private readonly percent: number,
    private readonly minConcurrent: number,
    now: () => number = Date.now,
  ) {
    this.requests = new RollingCount(now);
    this.retries = new RollingCount(now);
  }

  requestStarted(): void {
    this.requests.add();
  }

  /** Takes one retry from the budget if it allows one; call `retryEnded` when that retry attempt is over. */
  tryRetry(): boolean {
    const withinRate = this.retries.sum() < (this.requests.sum() * this.percent) / 100;
    if (!withinRate && this.retrying >= this.minConcurrent) return false;
    this.retrying++;
    this.retries.add();
    return true;
  }

  retryEnded(): void {
    this.retrying--;
  }
}
