// Selection policies: pure choices over a list of upstreams and a usability predicate (no sockets, no timers).
import type { BalancePolicy } from "../config/types.ts";
import type { Upstream } from "./upstream.ts";

export type Usable = (u: Upstream) => boolean;

export interface Balancer {
  /** Picks one usable member of `members`, or undefined when none is usable. `clientKey` feeds ip-hash. */
  pick(members: readonly Upstream[], usable: Usable, clientKey: string): Upstream | undefined;
  /** Drops what the policy remembers of a member that left the pool; the others' state stays. */
  forget?(u: Upstream): void;
}

/**
 * nginx's smooth weighted round robin: each pick adds every usable member's weight to its current weight,
 * takes the largest, and subtracts the total from it. 3:1 gives a,a,b,a, not a,a,a,b.
 */
export class SmoothWeightedRoundRobin implements Balancer {
  private readonly current = new Map<Upstream, number>();

  pick(members: readonly Upstream[], usable: Usable): Upstream | undefined {
    let best: Upstream | undefined;
    let bestWeight = 0;
    let total = 0;
    for (const u of members) {
      if (!usable(u)) continue;
      const w = (this.current.get(u) ?? 0) + u.weight;
      this.current.set(u, w);
      total += u.weight;
      if (best === undefined || w > bestWeight) {
        best = u;
        bestWeight = w;
      }
    }
    if (best) this.current.set(best, bestWeight - total);
    return best;
  }

  forget(u: Upstream): void {
    this.current.delete(u);
  }
}

/** Fewest in-flight requests per unit of weight; ties go round the list so equal upstreams share. */
export class LeastConnections implements Balancer {
  private next = 0;

  pick(members: readonly Upstream[], usable: Usable): Upstream | undefined {
    let best: Upstream | undefined;
    let bestLoad = Infinity;
    const n = members.length;
    const start = this.next++ % Math.max(1, n);
    for (let i = 0; i < n; i++) {
      const u = members[(start + i) % n]!;
      if (!usable(u)) continue;
      const load = u.inFlight / u.weight;
      if (load < bestLoad) {
        best = u;
        bestLoad = load;
      }
    }
    return best;
  }
}

/** Weighted random choice. */
export class WeightedRandom implements Balancer {
  constructor(private readonly random: () => number = Math.random) {}

  pick(members: readonly Upstream[], usable: Usable): Upstream | undefined {
    let total = 0;
    for (const u of members) if (usable(u)) total += u.weight;
    if (total === 0) return undefined;
    let r = this.random() * total;
    let last: Upstream | undefined;
    for (const u of members) {
      if (!usable(u)) continue;
      last = u;
      r -= u.weight;
      if (r < 0) return u;
    }
    return last;
  }
}

// FNV-1a: fast, dependency-free and well spread for short keys.
function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * Client IP affinity by weighted rendezvous hashing: a client keeps its upstream while that upstream is usable,
 * and only the clients of an upstream that goes away move.
 */
export class IpHash implements Balancer {
  pick(members: readonly Upstream[], usable: Usable, clientKey: string): Upstream | undefined {
    let best: Upstream | undefined;
    let bestScore = -Infinity;
    for (const u of members) {
      if (!usable(u)) continue;
      const h = (fnv1a(`${clientKey}|${u.id}`) + 1) / 4294967297; // in (0, 1)
      const score = u.weight / -Math.log(h);
      if (score > bestScore) {
        best = u;
        bestScore = score;
      }
    }
    return best;
  }
}

export function createBalancer(policy: BalancePolicy): Balancer {
  switch (policy) {
    case "weighted-round-robin":
      return new SmoothWeightedRoundRobin();
    case "least-connections":
      return new LeastConnections();
    case "random":
      return new WeightedRandom();
    case "ip-hash":
      return new IpHash();
  }
}
