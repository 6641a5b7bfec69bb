// A pool's retry budget (Envoy's idea): concurrent retries may be at most a share of active requests, with a floor,
// so a dead pool is not hammered by every client retrying at once.

export class RetryBudget {
  private active = 0;
  private retrying = 0;

  constructor(
    private readonly percent: number,
    private readonly minConcurrent: number,
  ) {}

  requestStarted(): void {
    this.active++;
  }

  requestEnded(): void {
    this.active--;
  }

  /** Takes a retry slot if the budget allows one; give it back with `retryEnded`. */
  tryRetry(): boolean {
    const allowed = Math.max(this.minConcurrent, (this.active * this.percent) / 100);
    if (this.retrying >= allowed) return false;
    this.retrying++;
    return true;
  }

  retryEnded(): void {
    this.retrying--;
  }
}
