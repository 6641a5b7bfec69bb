// The live objects of one loaded config (router, pools, upstreams with their breaker and checker), built without
// I/O, and the hand-over of upstream state from the runtime of the previous config on reload.
import { isDeepStrictEqual } from "node:util";
import { UpstreamBreaker, type BreakerChange } from "../breaker/breaker.ts";
import type { GatewayConfig, HealthCheckSettings, RouteConfig, UpstreamConfig } from "../config/types.ts";
import { HealthChecker, type HealthChange, type ProbeResult } from "../health/checker.ts";
import { Pool, type FailoverEvent } from "../pool/pool.ts";
import { Upstream } from "../pool/upstream.ts";
import { RetryBudget } from "../pool/retry-budget.ts";
import { Router } from "../router/router.ts";
import { TrustedProxies } from "../policy/client-address.ts";
// Types only: the seam's shape (proxy/phases.ts); the runtime holds each route's compiled steps, never runs them.
import type { RoutePolicies } from "../proxy/phases.ts";

/** One upstream's state, kept across reloads while its pool and url stay the same. */
export interface UpstreamEntry {
  /** `pool` + url: what identifies an upstream across reloads. */
  readonly key: string;
  readonly pool: string;
  spec: UpstreamConfig;
  readonly upstream: Upstream;
  breaker: UpstreamBreaker;
  checker: HealthChecker;
  /** Set for a member that joined through the registry (`discover`); absent for gateway.yaml's upstreams. */
  discovered?: DiscoveredMember;
}

/** A registry allocation as a member of one pool: what the registry hands the runtime. */
export interface DiscoveredMember {
  /** `NAME@HOST:PORT`, the member's upstream id. */
  id: string;
  url: string;
  weight: number;
  /** The allocation's own `health_path`; the pool's check path otherwise. */
  healthPath?: string;
  allocationId: string;
}

export interface PoolRuntime {
  pool: Pool;
  budget: RetryBudget;
  entries: UpstreamEntry[];
  /** The entry of each upstream, for passive health reports from the proxy. */
  byUpstream: Map<Upstream, UpstreamEntry>;
}

/** One route as the data plane uses it: its pool and its compiled policy steps, resolved once per config. */
export interface RouteRuntime {
  route: RouteConfig;
  pool: PoolRuntime;
  /** undefined when the route has no policy: the pipeline then skips every phase at no cost. */
  policies: RoutePolicies | undefined;
}

/** Builds one route's policy steps once per config (src/policy/); state that must outlive a reload is its own. */
export type PolicyCompiler = (route: RouteConfig, pool: PoolRuntime) => RoutePolicies | undefined;

/** Where runtime events go (logs, metrics); implemented by the gateway. */
export interface RuntimeObserver {
  healthResult(entry: UpstreamEntry, result: ProbeResult): void;
  healthChange(entry: UpstreamEntry, change: HealthChange): void;
  breakerChange(entry: UpstreamEntry, change: BreakerChange): void;
  failover(event: FailoverEvent): void;
  /** A discovered member left its pool: close its connections and drop its series once its requests finish. */
  memberLeft?(entry: UpstreamEntry): void;
}

export function entryKey(pool: string, url: string): string {
  return `${pool}\u0000${url}`;
}

// Discovered members are keyed by their id, not their url: a port may change hands between two services.
function memberKey(pool: string, id: string): string {
  return `${pool}\u0000@${id}`;
}

function memberHealth(settings: HealthCheckSettings, m: DiscoveredMember): HealthCheckSettings {
  return m.healthPath ? { ...settings, path: m.healthPath } : settings;
}

export class Runtime {
  readonly router: Router;
  /** `trustedProxies`, compiled: who may name the client in X-Forwarded-For. */
  readonly trusted: TrustedProxies;
  readonly pools = new Map<string, PoolRuntime>();
  /** Each route's pool and policies, keyed by the route object the router returns (no lookup by name). */
  readonly routes = new Map<RouteConfig, RouteRuntime>();
  readonly entries = new Map<string, UpstreamEntry>();
  /** Entries the runtime of a newer config took over; everything else stops when this one retires. */
  private readonly carried = new Set<UpstreamEntry>();
  private starting: Promise<void> | undefined;
  /**
   * Set by retire(): from then on this generation starts nothing (no first round, no checker), even when a
   * first round it began before finishes afterwards. Its successor starts what it carried over.
   */
  private retired = false;

  constructor(
    readonly config: GatewayConfig,
    private readonly observer: RuntimeObserver,
    previous?: Runtime,
    compile: PolicyCompiler = () => undefined,
  ) {
    this.router = new Router(config.routes);
    this.trusted = new TrustedProxies(config.trustedProxies);
    for (const pc of config.pools) {
      const entries = pc.upstreams.map((spec) => {
        const key = entryKey(pc.name, spec.url);
        const old = previous?.entries.get(key);
        const entry = old
          ? this.carry(old, spec, pc.breaker, pc.healthCheck, previous!)
          : this.create(key, pc.name, spec, pc);
        this.entries.set(key, entry);
        return entry;
      });
      // Discovered members carry over like health does; the registry then reconciles them with the new `discover`.
      if (pc.discover && previous) {
        for (const old of previous.pools.get(pc.name)?.entries ?? []) {
          if (!old.discovered) continue;
          const settings = memberHealth(pc.healthCheck, old.discovered);
          const entry = this.carry(old, old.spec, pc.breaker, settings, previous);
          this.entries.set(entry.key, entry);
          entries.push(entry);
        }
      }
      const before = previous?.pools.get(pc.name)?.pool.tier;
      const pool = new Pool(
        pc.name,
        pc,
        entries.map((e) => e.upstream),
        Date.now,
        before,
      );
      pool.on("failover", (ev) => observer.failover(ev));
      pool.update();
      this.pools.set(pc.name, {
        pool,
        budget: new RetryBudget(pc.retryBudget.percent, pc.retryBudget.minConcurrent),
        entries,
        byUpstream: new Map(entries.map((e) => [e.upstream, e])),
      });
    }
    for (const route of config.routes) {
      const pool = this.pools.get(route.pool)!;
      this.routes.set(route, { route, pool, policies: compile(route, pool) });
    }
  }

  private create(
    key: string,
    pool: string,
    spec: UpstreamConfig,
    pc: GatewayConfig["pools"][number],
    discovered?: DiscoveredMember,
  ): UpstreamEntry {
    const breaker = new UpstreamBreaker(pc.breaker);
    const health = discovered ? memberHealth(pc.healthCheck, discovered) : pc.healthCheck;
    // With checks off nothing would ever warm a discovered member up, so it is taken as it comes.
    const options = discovered ? { discovered: true, warmUp: health.enabled } : {};
    const upstream = new Upstream(spec, breaker, options);
    const checker = new HealthChecker(upstream.url, health, upstream);
    const entry: UpstreamEntry = {
      key,
      pool,
      spec,
      upstream,
      breaker,
      checker,
      ...(discovered ? { discovered } : {}),
    };
    this.wireBreaker(entry);
    this.wireChecker(entry);
    return entry;
  }

  // Same pool and url: health, hysteresis counters and breaker state stay. Changed breaker or check settings need
  // new objects (timings are fixed at construction); the checker's counters move over, the breaker starts closed.
  private carry(
    entry: UpstreamEntry,
    spec: UpstreamConfig,
    breakerSettings: UpstreamBreaker["settings"],
    healthSettings: HealthChecker["settings"],
    previous: Runtime,
  ): UpstreamEntry {
    previous.carried.add(entry);
    entry.spec = spec;
    entry.upstream.update(spec);
    if (!isDeepStrictEqual(entry.breaker.settings, breakerSettings)) {
      entry.breaker.shutdown();
      entry.breaker = new UpstreamBreaker(breakerSettings);
      entry.upstream.breaker = entry.breaker;
      this.wireBreaker(entry);
      entry.upstream.changed();
    }
    if (!isDeepStrictEqual(entry.checker.settings, healthSettings)) {
      const state = entry.checker.state();
      entry.checker.stop();
      entry.checker = new HealthChecker(entry.upstream.url, healthSettings, entry.upstream, state);
      this.wireChecker(entry);
    }
    return entry;
  }

  private wireBreaker(entry: UpstreamEntry): void {
    const breaker = entry.breaker;
    breaker.on("change", (change) => {
      entry.upstream.changed();
      this.observer.breakerChange(entry, change);
    });
  }

  private wireChecker(entry: UpstreamEntry): void {
    entry.checker.on("result", (r) => this.observer.healthResult(entry, r));
    entry.checker.on("change", (c) => this.observer.healthChange(entry, c));
  }

  /**
   * Runs the first health round of every checker not yet running (all at once), then schedules them all. Called
   * more than once (boot and a reload racing), it is one start; a retired runtime starts nothing.
   *
   * "Not yet running" covers what a reload carried over before the previous runtime's first round was done (e.g.
   * during the boot wait): that runtime, retired, will not start them, so this one does.
   */
  start(): Promise<void> {
    if (this.retired) return Promise.resolve();
    this.starting ??= this.firstRound();
    return this.starting;
  }

  private async firstRound(): Promise<void> {
    const fresh = [...this.entries.values()].filter((e) => !e.checker.started);
    const pools = [...this.pools.values()].map((p) => p.pool);
    for (const p of pools) p.hold();
    try {
      await Promise.all(fresh.filter((e) => e.checker.settings.enabled).map((e) => e.checker.runOnce()));
    } finally {
      for (const p of pools) p.release();
    }
    if (this.retired) return;
    for (const e of fresh) e.checker.start();
  }

  /** One health round of every upstream, now: the test hook instead of sleeping for an interval. */
  async runHealthRound(): Promise<void> {
    if (this.retired) return;
    const enabled = [...this.entries.values()].filter((e) => e.checker.settings.enabled);
    await Promise.all(enabled.map((e) => e.checker.runOnce()));
  }

  /**
   * Makes `members` the discovered members of pool `name`: new ones join (unavailable until their first passing
   * check, which runs at once once the runtime has started), missing ones leave (drained, then handed to
   * `memberLeft`), kept ones take a new weight. Nothing else in the pool is touched.
   */
  syncDiscovered(name: string, members: readonly DiscoveredMember[]): void {
    const pr = this.pools.get(name);
    if (!pr || this.retired) return;
    const pc = this.config.pools.find((p) => p.name === name)!;
    const wanted = new Map(members.map((m) => [memberKey(name, m.id), m]));
    for (const e of [...pr.entries]) {
      if (!e.discovered) continue;
      const m = wanted.get(e.key);
      if (m && m.url === e.spec.url && m.healthPath === e.discovered.healthPath) {
        wanted.delete(e.key);
        if (m.weight !== e.spec.weight) {
          e.spec = { ...e.spec, weight: m.weight };
          e.upstream.update(e.spec);
        }
        e.discovered = m;
        continue;
      }
      this.leave(pr, e);
    }
    for (const [key, m] of wanted) {
      const spec: UpstreamConfig = { id: m.id, url: m.url, weight: m.weight, backup: false };
      const entry = this.create(key, name, spec, pc, m);
      this.entries.set(key, entry);
      pr.entries.push(entry);
      pr.byUpstream.set(entry.upstream, entry);
      pr.pool.add(entry.upstream);
      if (this.starting && !this.retired) {
        if (entry.checker.settings.enabled) void entry.checker.runOnce().then(() => entry.checker.start());
      }
    }
  }

  private leave(pr: PoolRuntime, e: UpstreamEntry): void {
    pr.pool.remove(e.upstream);
    pr.entries.splice(pr.entries.indexOf(e), 1);
    // byUpstream keeps it: a request still on it may report a refused connection to its (stopped) checker.
    this.entries.delete(e.key);
    e.checker.stop();
    e.breaker.shutdown();
    this.observer.memberLeft?.(e);
  }

  /**
   * True when every route's pool has an upstream available. Lists the routes that have none. A pool with no
   * upstream of its own in gateway.yaml (only discovered ones) never holds readiness back: registrants may have to
   * reach this gateway through a load balancer that routes only to ready instances.
   */
  routesWithoutUpstream(): string[] {
    return this.config.routes
      .filter((r) => {
        const p = this.pools.get(r.pool);
        if (!p) return true;
        return p.pool.tier === -1 && p.entries.some((e) => !e.discovered);
      })
      .map((r) => r.id);
  }

  /**
   * Hands over to the runtime of a new config: pools stop listening, and the entries the new runtime did not
   * carry are stopped and returned (their agents close once their requests finish).
   */
  retire(): UpstreamEntry[] {
    this.retired = true;
    for (const p of this.pools.values()) p.pool.close();
    const removed = [...this.entries.values()].filter((e) => !this.carried.has(e));
    for (const e of removed) {
      e.checker.stop();
      e.breaker.shutdown();
    }
    return removed;
  }

  /** Stops everything (gateway shutdown): nothing is carried, so everything stops. */
  stop(): void {
    this.retire();
  }
}
