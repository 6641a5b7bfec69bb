// A pool of upstreams in two tiers (primaries, then backups): picks an upstream and tracks where traffic goes.
import { EventEmitter } from "node:events";
import type { PoolSettings } from "../config/types.ts";
import { createBalancer, type Balancer } from "./balancer.ts";
import type { Upstream } from "./upstream.ts";

const isAvailable = (u: Upstream): boolean => u.available();

/** 0: primaries take traffic; 1: backups do; -1: nothing is available. */
export type Tier = 0 | 1 | -1;

export interface FailoverEvent {
  pool: string;
  from: Tier;
  to: Tier;
  reason: string;
}

const TIER_NAMES = { 0: "primary", 1: "backup", [-1]: "none" } as const;
export function tierName(t: Tier): "primary" | "backup" | "none" {
  return TIER_NAMES[t];
}

/**
 * Traffic goes to the primaries while one is in service; only then to the backups. Returning to the primaries
 * waits `failbackDelay` so a flapping primary cannot bounce traffic. Emits `failover` on each switch.
 */
export class Pool extends EventEmitter<{ failover: [FailoverEvent] }> {
  readonly name: string;
  readonly settings: PoolSettings;
  // Mutable since members join and leave (the registry); replaced, never spliced, so a pick or a describe that
  // holds the old array finishes on a consistent list.
  private members: readonly Upstream[];
  private primaryList: readonly Upstream[];
  private backupList: readonly Upstream[];
  private readonly primaryBalancer: Balancer;
  private readonly backupBalancer: Balancer;
  private currentTier: Tier;
  private failbackAt: number | undefined;
  private failbackTimer: NodeJS.Timeout | undefined;
  private readonly unsubscribe = new Map<Upstream, () => void>();
  private closed = false;
  private held = false;
  private readonly now: () => number;

  /**
   * `tier`: the tier the pool of the previous config was on, so a reload reports a switch it causes (through
   * `update()`) instead of switching silently.
   */
  constructor(
    name: string,
    settings: PoolSettings,
    upstreams: readonly Upstream[],
    now = Date.now,
    tier?: Tier,
  ) {
    super();
    this.name = name;
    this.settings = settings;
    this.members = [...upstreams];
    this.primaryList = upstreams.filter((u) => !u.backup);
    this.backupList = upstreams.filter((u) => u.backup);
    this.primaryBalancer = createBalancer(settings.balance);
    this.backupBalancer = createBalancer(settings.balance);
    this.now = now;
    this.currentTier = tier ?? this.wantedTier();
    for (const u of upstreams)
      this.unsubscribe.set(
        u,
        u.onChange(() => this.update()),
      );
  }

  get upstreams(): readonly Upstream[] {
    return this.members;
  }

  get primaries(): readonly Upstream[] {
    return this.primaryList;
  }

  get backups(): readonly Upstream[] {
    return this.backupList;
  }

  /**
   * A member joins without rebuilding the pool: the tier, the failback dwell and the balancer's memory of the
   * other members stay. Its availability decides whether the tier moves (through `update`, as for a health change).
   */
  add(u: Upstream): void {
    if (this.closed || this.unsubscribe.has(u)) return;
    this.members = [...this.members, u];
    if (u.backup) this.backupList = [...this.backupList, u];
    else this.primaryList = [...this.primaryList, u];
    this.unsubscribe.set(
      u,
      u.onChange(() => this.update()),
    );
    this.update();
  }

  /**
   * A member leaves: no new request picks it from now on. Requests already on it hold their own reference and
   * finish; closing its connections once they have is the caller's (the pool owns no sockets).
   */
  remove(u: Upstream): boolean {
    const off = this.unsubscribe.get(u);
    if (!off) return false;
    off();
    this.unsubscribe.delete(u);
    this.members = this.members.filter((x) => x !== u);
    this.primaryList = this.primaryList.filter((x) => x !== u);
    this.backupList = this.backupList.filter((x) => x !== u);
    this.primaryBalancer.forget?.(u);
    this.backupBalancer.forget?.(u);
    this.update();
    return true;
  }

  get tier(): Tier {
    return this.currentTier;
  }

  private wantedTier(): Tier {
    // Traffic on the backups returns to a primary only once its breaker has closed: a half-open breaker allows
    // one trial (which `pick` still routes there), and counting it as back would switch tiers twice per
    // resetTimeout while a primary keeps failing.
    // With nothing in service (tier -1) the half-open primary is all there is: it must count, or no request
    // would ever reach it to close the breaker.
    const back =
      this.currentTier !== 1
        ? (u: Upstream) => u.inService()
        : (u: Upstream) => u.inService() && u.breaker?.state() !== "half_open";
    if (this.primaries.some(back)) return 0;
    if (this.backups.some((u) => u.inService())) return 1;
    return -1;
  }

  /**
   * Picks an upstream for one attempt, skipping `exclude` (upstreams this request already tried). The active
   * tier goes first; the other tier is the fallback, so a retry after the only primary failed reaches a backup.
   * `preferred` (the pick hook of a route's policies) is taken when it is available in the active tier.
   */
  pick(
    exclude: ReadonlySet<Upstream> | undefined,
    clientKey: string,
    preferred?: Upstream,
  ): Upstream | undefined {
    // A preferred upstream (a sticky cookie) wins only inside the active tier: it must not pull traffic onto a
    // backup while primaries serve, nor back onto a primary before the failback dwell is over.
    if (
      preferred &&
      this.currentTier !== -1 &&
      preferred.backup === (this.currentTier === 1) &&
      preferred.available() &&
      !exclude?.has(preferred) &&
      this.upstreams.includes(preferred)
    ) {
      return preferred;
    }
    // The common first attempt excludes nothing: a shared predicate, no closure per pick.
    const usable = exclude?.size ? (u: Upstream) => u.available() && !exclude.has(u) : isAvailable;
    if (this.currentTier === 1) {
      // While traffic is on the backups, a primary's half-open breaker still gets its one trial request: that
      // trial is what closes the breaker and brings the primary back.
      const trial = this.primaries.find((u) => u.breaker?.state() === "half_open" && usable(u));
      if (trial) return trial;
    }
    // Two plain branches rather than a destructured array: no allocation per pick.
    if (this.currentTier === 1)
      return (
        this.backupBalancer.pick(this.backups, usable, clientKey) ??
        this.primaryBalancer.pick(this.primaries, usable, clientKey)
      );
    return (
      this.primaryBalancer.pick(this.primaries, usable, clientKey) ??
      this.backupBalancer.pick(this.backups, usable, clientKey)
    );
  }

  /** Re-evaluates the active tier; called whenever an upstream's availability may have changed. */
  update(): void {
    if (this.closed || this.held) return;
    const want = this.wantedTier();
    if (want === this.currentTier) {
      this.cancelFailback();
      return;
    }
    // The dwell only makes sense while the backups still serve; if they died meanwhile, go back at once.
    const backupsServe = this.backups.some((u) => u.inService());
    if (want === 0 && this.currentTier === 1 && this.settings.failbackDelay > 0 && backupsServe) {
      const now = this.now();
      if (this.failbackAt === undefined) {
        this.failbackAt = now + this.settings.failbackDelay;
        this.failbackTimer = setTimeout(() => {
          this.failbackTimer = undefined;
          this.update();
        }, this.settings.failbackDelay);
        this.failbackTimer.unref();
        return;
      }
      if (now < this.failbackAt) return;
    }
    this.cancelFailback();
    const from = this.currentTier;
    this.currentTier = want;
    this.emit("failover", { pool: this.name, from, to: want, reason: this.describe(want) });
  }

  private cancelFailback(): void {
    this.failbackAt = undefined;
    if (this.failbackTimer) clearTimeout(this.failbackTimer);
    this.failbackTimer = undefined;
  }

  private describe(to: Tier): string {
    const out = (list: readonly Upstream[]) =>
      list.map((u) => `${u.id}: ${u.reason() || "out of service"}`).join("; ");
    if (to === 0) {
      const back = this.primaries.filter((u) => u.inService()).map((u) => u.id);
      return `primary available again: ${back.join(", ")}`;
    }
    if (to === 1) return `no primary available (${out(this.primaries)})`;
    return `no upstream available (${out(this.upstreams)})`;
  }

  /**
   * Defers tier decisions while the boot health round runs, so the pool reports one switch with the round's
   * verdict instead of one per upstream as their checks come in.
   */
  hold(): void {
    this.held = true;
  }

  release(): void {
    this.held = false;
    this.update();
  }

  /** Stops listening to the upstreams (they may move to the pool of a reloaded config). */
  close(): void {
    this.closed = true;
    this.cancelFailback();
    for (const off of this.unsubscribe.values()) off();
    this.unsubscribe.clear();
    this.removeAllListeners();
  }
}
