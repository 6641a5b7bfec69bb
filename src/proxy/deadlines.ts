// Coarse deadlines for upstream attempts in flight: one sweep timer for all of them, instead of a timer (or two)
// armed and cleared per request.

/** Something with deadlines; `expire` is called on each sweep while it is registered. */
export interface Expiring {
  /** The earliest of its deadlines (performance.now() milliseconds); Infinity when none is armed. */
  readonly nextDeadline: number;
  /** Called once a sweep finds `nextDeadline` passed; it acts, re-arms, or unregisters itself. */
  expire(now: number): void;
  /**
   * The sweep's own bookkeeping: the item's index in its list, -1 or absent when not registered. A class that
   * is registered per request declares it (initialised to -1) so the sweep never changes the object's shape.
   */
  sweepSlot?: number;
}

/**
 * Registered items are checked every `tickMs`, so a deadline fires between its time and one tick later: with
 * the default 20 ms that is noise beside connect and response timeouts of seconds. The timer runs only while
 * something is registered (it stops on the first empty sweep) and never keeps the process alive.
 *
 * The items are an array in which each item knows its index (removal moves the last item into the hole), not a
 * Set: one add and one delete per request on a Set (or a Map) measured 15-25 µs of CPU per proxied request in the
 * gateway (docs/benchmarks.md, "Fifth pass"), the array nothing measurable.
 */
export class DeadlineSweep {
  private readonly items: Expiring[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly tickMs = 20,
    private readonly now: () => number = () => performance.now(),
  ) {}

  add(item: Expiring): void {
    if ((item.sweepSlot ?? -1) !== -1) return;
    item.sweepSlot = this.items.length;
    this.items.push(item);
    if (!this.timer) {
      this.timer = setInterval(() => this.sweep(), this.tickMs);
      this.timer.unref();
    }
  }

  delete(item: Expiring): void {
    const slot = item.sweepSlot ?? -1;
    if (slot === -1) return;
    item.sweepSlot = -1;
    const last = this.items.pop()!;
    if (last !== item) {
      this.items[slot] = last;
      last.sweepSlot = slot;
    }
  }

  /** Whether the sweep timer is running. */
  get running(): boolean {
    return this.timer !== undefined;
  }

  get size(): number {
    return this.items.length;
  }

  /** One pass: every item whose deadline has passed is told so. Runs from the timer; tests may call it. */
  sweep(now = this.now()): void {
    if (this.items.length === 0) {
      clearInterval(this.timer);
      this.timer = undefined;
      return;
    }
    // A copy: an item's expire may unregister it (or another), which reorders the list.
    for (const item of this.items.slice()) {
      if (item.sweepSlot !== -1 && item.nextDeadline <= now) item.expire(now);
    }
  }

  /** Stops the timer; registered items stay (the gateway is closing). */
  close(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
