// Lease arithmetic (pure, clock injected): when an allocation expires, when it is removed, and when a reap may run.

/**
 * The two numbers a lease is made of. `ttl` is the one in force at the last heartbeat, so a reload that changes
 * `registry.ttl` applies from each allocation's next heartbeat, never retroactively.
 */
export interface Lease {
  lastHeartbeat: number;
  ttl: number;
}

export type LeaseStatus = "active" | "expired";

/**
 * The only place a ttl is added to a time. Eureka's lease expired after twice its duration because both
 * `renew()` and `isExpired()` added it (eureka#531); here renewing stores the heartbeat time, nothing else.
 */
export function expiresAt(lease: Lease): number {
  return lease.lastHeartbeat + lease.ttl;
}

/** No heartbeat for `ttl` makes a lease expired; at exactly `expiresAt` it is. */
export function statusAt(lease: Lease, now: number): LeaseStatus {
  return now < expiresAt(lease) ? "active" : "expired";
}

/** When a reap removes it: `deregisterAfter` past its expiry (Consul's deregister_critical_service_after). */
export function removeAt(lease: Lease, deregisterAfter: number): number {
  return expiresAt(lease) + deregisterAfter;
}

/** A heartbeat (allocating counts as the first): the lease runs from now with the ttl in force. */
export function renew(now: number, ttl: number): Lease {
  return { lastHeartbeat: now, ttl };
}

export type ReapVerdict = "keep" | "expire" | "remove";

/**
 * What a reap does to one allocation. Only a reap (or cleanup) removes: a heartbeat that reaches an allocation
 * still stored revives it, whatever the clock says, so a heartbeat and a reap racing end the same whichever runs
 * first (each is atomic in its store).
 */
export function reapVerdict(
  lease: Lease,
  stored: LeaseStatus,
  now: number,
  deregisterAfter: number,
): ReapVerdict {
  if (now >= removeAt(lease, deregisterAfter)) return "remove";
  if (stored === "active" && now >= expiresAt(lease)) return "expire";
  return "keep";
}

/** A reap runs every ttl/3, so one lease spans three reaps (and three heartbeats at the client's ttl/3). */
export function reapInterval(ttl: number): number {
  return Math.max(50, Math.floor(ttl / 3));
}

export type GuardDecision =
  | { reap: true }
  | { reap: false; reason: "stall"; stallMs: number }
  | { reap: false; reason: "store_down" }
  | { reap: false; reason: "store_back"; untilMs: number };

/**
 * Keeps a reap from expiring leases whose heartbeats could not be heard:
 * - after an event-loop stall longer than ttl/3 (a GC pause, a blocking call), heartbeats that arrived during it
 *   are still queued in sockets; the reap waits until the shell says they were read (`queueRead`);
 * - while the store is unreachable nothing expires (heartbeats cannot be written either), and once it is back
 *   the services get one ttl to renew before anything may expire.
 * The shell calls `tick` from its reap timer, expecting one every `interval`.
 */
export class ReapGuard {
  private lastTick: number;
  private holding: number | undefined;
  private storeUp = true;
  private graceUntil = 0;

  constructor(
    private ttl: number,
    private interval: number,
    private readonly now: () => number,
  ) {
    this.lastTick = now();
  }

  /** A reload may change the ttl; the tick rhythm follows. */
  setTtl(ttl: number, interval: number): void {
    this.ttl = ttl;
    this.interval = interval;
  }

  tick(): GuardDecision {
    const now = this.now();
    const late = now - this.lastTick - this.interval;
    this.lastTick = now;
    if (late > this.ttl / 3) this.holding = late;
    if (!this.storeUp) return { reap: false, reason: "store_down" };
    if (this.holding !== undefined) return { reap: false, reason: "stall", stallMs: this.holding };
    if (now < this.graceUntil) return { reap: false, reason: "store_back", untilMs: this.graceUntil };
    return { reap: true };
  }

  /** Whether a reap is held back for a stall whose queued heartbeats have not been read yet. */
  get stalled(): boolean {
    return this.holding !== undefined;
  }

  /** The shell read everything queued during the stall (and applied those heartbeats): reaps may run again. */
  queueRead(): void {
    this.holding = undefined;
  }

  storeDown(): void {
    this.storeUp = false;
  }

  storeBack(): void {
    if (this.storeUp) return;
    this.storeUp = true;
    this.graceUntil = this.now() + this.ttl;
  }
}
