// Coarse deadlines for upstream attempts in flight: one sweep timer for all of them, instead of a timer (or two)
// armed and cleared per request.

/** Something with deadlines; `expire` is called on each sweep while it is registered. */
export interface Expiring {
  /** The earliest of its deadlines (performance.now() milliseconds); Infinity when none is armed. */
  readonly nextDeadline: number;
  /** Called once a sweep finds `nextDeadline` passed; it acts, re-arms, or unregisters itself. */
  expire(now: number): void;
}

/**
 * Registered items are checked every `tickMs`, so a deadline fires between its time and one tick later: with
 * the default 20 ms that is noise beside connect and response timeouts of seconds. The timer runs only while
 * something is registered (it stops on the first empty sweep) and never keeps the process alive.
 */
export class DeadlineSweep {
  private readonly items = new Set<Expiring>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly tickMs = 20,
    private readonly now: () => number = () => performance.now(),
  ) {}

  add(item: Expiring): void {
    this.items.add(item);
    if (!this.timer) {
      this.timer = setInterval(() => this.sweep(), this.tickMs);
      this.timer.unref();
    }
  }

  delete(item: Expiring): void {
    this.items.delete(item);
  }

  /** Whether the sweep timer is running. */
  get running(): boolean {
    return this.timer !== undefined;
  }

  get size(): number {
    return this.items.size;
  }

  /** One pass: every item whose deadline has passed is told so. Runs from the timer; tests may call it. */
  sweep(now = this.now()): void {
    if (this.items.size === 0) {
      clearInterval(this.timer);
      this.timer = undefined;
      return;
    }
    for (const item of this.items) if (item.nextDeadline <= now) item.expire(now);
  }

  /** Stops the timer; registered items stay (the gateway is closing). */
  close(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
