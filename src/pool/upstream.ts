// One upstream's live state: health, breaker, drain, in-flight count, and the single availability predicate.

export type HealthState = "unknown" | "healthy" | "unhealthy";
export type BreakerStateName = "closed" | "open" | "half_open";

export type Verdict = "success" | "failure" | "ignore";

/** What pools and the proxy need of a breaker; the breaker module implements it (opossum stays behind it). */
export interface BreakerView {
  state(): BreakerStateName;
  allowsRequest(): boolean;
  reason(): string;
  /** Admits one attempt (undefined: refused); `settle` reports its verdict. The HTTP path's, with no promise. */
  admit(): object | undefined;
  settle(ticket: object, verdict: Verdict): void;
  /** Runs one attempt through the breaker; `judge` says whether its result counts as a failure. */
  run<T>(attempt: () => Promise<T>, judge: (result: T) => Verdict): Promise<T>;
}

export interface UpstreamSpec {
  id: string;
  url: string;
  weight: number;
  backup: boolean;
}

export interface UpstreamOptions {
  /** Joined through the registry rather than written in gateway.yaml. */
  discovered?: boolean;
  /**
   * "unknown" health counts as out until the first passing check (Envoy's cluster warming): a discovered service
   * may register before it listens. Static upstreams are assumed usable at boot so a gateway serves at once.
   */
  warmUp?: boolean;
}

/**
 * An upstream as pools see it. Active checks write health through `setStatus` (the one-method seam), the
 * breaker is consulted live, operators drain it. Selection only asks `available()`.
 */
export class Upstream {
  id: string;
  readonly url: URL;
  weight: number;
  backup: boolean;
  /** "unknown" until the first check: assumed usable, so a gateway serves at once (the first check decides). */
  health: HealthState = "unknown";
  healthReason = "";
  drained = false;
  inFlight = 0;
  /** Attempts sent here since the gateway started (the dashboard derives a rate from it). */
  requests = 0;
  breaker: BreakerView | undefined;
  readonly discovered: boolean;
  private readonly warmUp: boolean;
  private readonly listeners = new Set<() => void>();

  constructor(spec: UpstreamSpec, breaker?: BreakerView, options: UpstreamOptions = {}) {
    this.id = spec.id;
    this.url = new URL(spec.url);
    this.weight = spec.weight;
    this.backup = spec.backup;
    this.breaker = breaker;
    this.discovered = options.discovered ?? false;
    this.warmUp = options.warmUp ?? false;
  }

  private healthOk(): boolean {
    return this.health === "healthy" || (this.health === "unknown" && !this.warmUp);
  }

  /** Takes new weight, backup flag and id from a reloaded config; the state stays. */
  update(spec: UpstreamSpec): void {
    this.id = spec.id;
    this.weight = spec.weight;
    this.backup = spec.backup;
  }

  /** True when a new request may be sent here now (a half-open breaker allows its one trial). */
  available(): boolean {
    return this.healthOk() && !this.drained && (this.breaker?.allowsRequest() ?? true);
  }

  /** Counts for the pool's tier: like `available()`, but a half-open breaker counts as in (its trial is pending). */
  inService(): boolean {
    return this.healthOk() && !this.drained && this.breaker?.state() !== "open";
  }

  /** The health-check seam. Returns whether the health state changed. */
  setStatus(up: boolean, reason: string): boolean {
    const next: HealthState = up ? "healthy" : "unhealthy";
    this.healthReason = up ? "" : reason;
    if (next === this.health) return false;
    this.health = next;
    this.changed();
    return true;
  }

  /** Returns whether the drain state changed. */
  setDrained(drained: boolean): boolean {
    if (drained === this.drained) return false;
    this.drained = drained;
    this.changed();
    return true;
  }

  /** Why the upstream is out of service, in plain words, or "" when it is in. */
  reason(): string {
    if (this.drained) return "drained by operator";
    if (this.health === "unhealthy") return this.healthReason;
    if (!this.healthOk()) return "waiting for its first passing health check";
    return this.breaker?.reason() ?? "";
  }

  /** Tells the pool (and whoever listens) that availability may have changed. */
  changed(): void {
    for (const l of this.listeners) l();
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
