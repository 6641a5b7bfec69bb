// The /admin/status report and the reload answer: what operators (and `gateway status`) read about the gateway.
import type { ManagedStatus } from "../managed/supervisor.ts";
import type { StateSnapshot } from "../metrics/metrics.ts";
import { tierName } from "../pool/pool.ts";
import type { Runtime } from "../runtime/runtime.ts";

export interface UpstreamStatus {
  id: string;
  url: string;
  weight: number;
  backup: boolean;
  /** Joined through the registry (`discover`), not written in gateway.yaml. */
  discovered: boolean;
  health: "unknown" | "healthy" | "unhealthy";
  available: boolean;
  breaker: "closed" | "open" | "half_open";
  drained: boolean;
  inFlight: number;
  requests: number;
  reason: string;
  passes: number;
  fails: number;
  lastCheck: { time: string; status?: number; latencyMs: number; error?: string } | null;
  /** The upstream's process when it has `run:`, else null. */
  managed: ManagedStatus | null;
}

export interface PoolStatus {
  name: string;
  balance: string;
  activeTier: number;
  activeTierName: "primary" | "backup" | "none";
  upstreams: UpstreamStatus[];
}

/** A reload that was refused: when, what asked for it, and its errors (`FILE:LINE:COL: key.path: message`). */
export interface ConfigErrorReport {
  time: string;
  trigger: string;
  file: string;
  errors: string[];
}

export interface RouteStatus {
  id: string;
  prefix: string;
  host: string | null;
  pool: string;
  stripPrefix: boolean;
}

/** One cluster worker as /admin/status lists it: its breakers and tiers are its own. */
export interface WorkerStatus {
  worker: number;
  /** null while the slot waits to be forked again. */
  pid: number | null;
  serving: boolean;
  pools: {
    name: string;
    activeTier: number;
    breakers: { id: string; state: "closed" | "open" | "half_open" }[];
  }[];
}

export interface StatusReport {
  config: { path: string; hash: string; loadedAt: string };
  ready: boolean;
  pools: PoolStatus[];
  /** The routes as configured. */
  routes: RouteStatus[];
  /** The last refused reload, until a good one (or the file back in sync with the running config) clears it. */
  lastConfigError: ConfigErrorReport | null;
  /** With `workers` above 1 only; pools then show each upstream's worst breaker and the worst tier of them. */
  workers?: WorkerStatus[];
}

export interface ConfigChanges {
  pools: { added: string[]; removed: string[]; changed: string[] };
  routes: { added: string[]; removed: string[]; changed: string[] };
  upstreams: { added: string[]; removed: string[]; changed: string[] };
  warnings: string[];
}

export type ReloadResult =
  { ok: true; hash: string; changes: ConfigChanges } | { ok: false; errors: string[] };

export function statusReport(
  rt: Runtime,
  ready: boolean,
  managed: (key: string) => ManagedStatus | null = () => null,
): StatusReport {
  const src = rt.config.source;
  return {
    config: { path: src.path, hash: src.hash, loadedAt: src.loadedAt.toISOString() },
    ready,
    pools: [...rt.pools.values()].map(({ pool, entries }) => ({
      name: pool.name,
      balance: pool.settings.balance,
      activeTier: pool.tier,
      activeTierName: tierName(pool.tier),
      upstreams: entries.map(({ upstream: u, checker, key, spec }) => {
        const last = checker.last;
        const proc = managed(key);
        return {
          id: u.id,
          url: spec.url,
          weight: u.weight,
          backup: u.backup,
          discovered: u.discovered,
          health: u.health,
          available: u.available(),
          breaker: u.breaker?.state() ?? "closed",
          drained: u.drained,
          inFlight: u.inFlight,
          requests: u.requests,
          // An upstream out because of its process (port taken, crash loop) says so rather than "3 failed checks".
          reason: (!u.available() && !u.drained && proc?.reason) || u.reason(),
          passes: checker.passes,
          fails: checker.fails,
          lastCheck: last
            ? {
                time: last.time.toISOString(),
                latencyMs: last.latencyMs,
                ...(last.status !== undefined ? { status: last.status } : {}),
                ...(last.error !== undefined ? { error: last.error } : {}),
              }
            : null,
          managed: proc,
        };
      }),
    })),
    routes: rt.config.routes.map((r) => ({
      id: r.id,
      prefix: r.prefix,
      host: r.host ?? null,
      pool: r.pool,
      stripPrefix: r.stripPrefix,
    })),
    lastConfigError: null,
  };
}

/** What the state gauges read at scrape time. */
export function metricsSnapshot(rt: Runtime): StateSnapshot {
  return {
    pools: [...rt.pools.values()].map(({ pool }) => ({
      name: pool.name,
      tier: pool.tier,
      upstreams: pool.upstreams.map((u) => ({
        id: u.id,
        up: u.health !== "unhealthy",
        breaker: u.breaker?.state() ?? "closed",
      })),
    })),
  };
}
