// What crosses between primary and workers about upstreams: the primary's health and drain verdicts, each worker's
// tiers and breakers, and the one view /metrics and /admin/status show of them.
import type { BreakerStateName, StateSnapshot } from "../metrics/metrics.ts";
import type { Runtime } from "../runtime/runtime.ts";
import type { PoolMembers, PoolView, UpstreamState } from "./messages.ts";

/** Each pool's registry members in the primary (the registry runs there). */
export function poolMembers(rt: Runtime): PoolMembers[] {
  return [...rt.pools.entries()].map(([pool, pr]) => ({
    pool,
    members: pr.entries.flatMap((e) => (e.discovered ? [e.discovered] : [])),
  }));
}

/** Makes a worker's pools hold the primary's registry members (before their health is applied). */
export function applyMembers(rt: Runtime, members: readonly PoolMembers[]): void {
  for (const m of members) rt.syncDiscovered(m.pool, m.members);
}

/** The primary's verdicts: health from its checkers, drain from the admin API. */
export function upstreamStates(rt: Runtime): UpstreamState[] {
  return [...rt.entries.values()].map((e) => ({
    key: e.key,
    health: e.upstream.health,
    reason: e.upstream.healthReason,
    drained: e.upstream.drained,
  }));
}

/**
 * Applies the primary's verdicts to a worker's runtime through the same seams the single process uses: health via
 * the checker (which never probes in a worker, but keeps its hysteresis in step so a later refused connection is
 * still noticed), drain via `setDrained`. Each pool then recomputes its tier from these and its own breakers.
 */
export function applyStates(rt: Runtime, states: readonly UpstreamState[]): void {
  for (const s of states) {
    const e = rt.entries.get(s.key);
    if (!e) continue;
    if (s.health !== "unknown") e.checker.adopt(s.health === "healthy", s.reason);
    e.upstream.setDrained(s.drained);
  }
}

/** A worker's own picture: where each pool's traffic goes here, and each upstream's breaker here. */
export function poolViews(rt: Runtime): PoolView[] {
  return [...rt.pools.values()].map(({ pool }) => ({
    name: pool.name,
    tier: pool.tier,
    breakers: pool.upstreams.map((u) => ({ id: u.id, state: u.breaker?.state() ?? "closed" })),
    traffic: pool.upstreams.map((u) => ({ id: u.id, inFlight: u.inFlight, requests: u.requests })),
  }));
}

/** An upstream's in-flight and request counts summed over the workers' views; undefined when none lists it. */
export function workerTraffic(
  views: readonly PoolView[][],
  pool: string,
  id: string,
): { inFlight: number; requests: number } | undefined {
  let found = false;
  let inFlight = 0;
  let requests = 0;
  for (const view of views)
    for (const p of view) {
      if (p.name !== pool) continue;
      for (const t of p.traffic ?? []) {
        if (t.id !== id) continue;
        found = true;
        inFlight += t.inFlight;
        requests += t.requests;
      }
    }
  return found ? { inFlight, requests } : undefined;
}

const BREAKER_RANK: Record<BreakerStateName, number> = { closed: 0, half_open: 1, open: 2 };

/** Open, then half-open, then closed: the state that needs an operator's eye first. */
export function worstBreaker(states: readonly BreakerStateName[]): BreakerStateName {
  return states.reduce<BreakerStateName>((w, s) => (BREAKER_RANK[s] > BREAKER_RANK[w] ? s : w), "closed");
}

const TIER_RANK: Record<number, number> = { 0: 0, 1: 1, [-1]: 2 };

/** None available, then backups, then primaries. */
export function worstTier(tiers: readonly number[]): number {
  return tiers.reduce((w, t) => ((TIER_RANK[t] ?? 0) > (TIER_RANK[w] ?? 0) ? t : w), 0);
}

/**
 * The state gauges of a cluster: health from the primary (one verdict, not one per worker), tiers and breakers as
 * the worst any worker has. Without worker views yet, the primary's own picture stands.
 */
export function mergeViews(own: StateSnapshot, views: readonly PoolView[][]): StateSnapshot {
  if (views.length === 0) return own;
  return {
    pools: own.pools.map((p) => {
      const mine = views.flatMap((v) => v.filter((x) => x.name === p.name));
      if (mine.length === 0) return p;
      return {
        ...p,
        tier: worstTier(mine.map((m) => m.tier)),
        upstreams: p.upstreams.map((u) => ({
          ...u,
          breaker: worstBreaker(
            mine.flatMap((m) => m.breakers.filter((b) => b.id === u.id).map((b) => b.state)),
          ),
        })),
      };
    }),
  };
}
