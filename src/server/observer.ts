// What the gateway does when its runtime reports: health, breaker and tier changes become log lines, metrics and
// cluster messages; a registry member that left is released once its requests are done.
import type { Logger } from "../log/log.ts";
import type { GatewayMetrics } from "../metrics/metrics.ts";
import { tierName } from "../pool/pool.ts";
import type { RuntimeObserver, UpstreamEntry } from "../runtime/runtime.ts";
import type { ClusterRole } from "./gateway.ts";

export interface ObserverDeps {
  log: Logger;
  metrics: GatewayMetrics;
  cluster: ClusterRole | undefined;
  /** Calls `then` once the entry has no request in flight (its agent is closed then). */
  memberLeft(e: UpstreamEntry, then: () => void): void;
}

export function runtimeObserver(deps: ObserverDeps): RuntimeObserver {
  const { log, metrics, cluster } = deps;
  const state = (h: boolean | undefined) => (h === undefined ? "unknown" : h ? "healthy" : "unhealthy");
  return {
    healthResult: (e, r) =>
      metrics.healthChecks.inc({
        pool: e.pool,
        upstream: e.upstream.id,
        result: r.ok ? "success" : "failure",
      }),
    healthChange: (e, c) => {
      // In a worker the only source is a refused connection (it runs no probes): the primary decides and logs.
      if (cluster?.kind === "worker") {
        if (!c.up) cluster.refused?.(e, c.reason);
        return;
      }
      (c.up ? log.info : log.warn)("health_change", {
        pool: e.pool,
        upstream: e.upstream.id,
        url: e.spec.url,
        from: state(c.from),
        to: state(c.up),
        reason: c.reason,
      });
      cluster?.changed?.();
    },
    breakerChange: (e, c) => {
      (c.to === "open" ? log.warn : log.info)("breaker_change", {
        pool: e.pool,
        upstream: e.upstream.id,
        from: c.from,
        to: c.to,
        reason: c.reason,
      });
      cluster?.viewChanged?.();
    },
    failover: (ev) => {
      // The workers' pools decide where traffic goes (each with its own breakers) and report their switches.
      if (cluster?.kind === "primary") return;
      const to = tierName(ev.to);
      log.warn("failover", { pool: ev.pool, from: tierName(ev.from), to, reason: ev.reason });
      if (to !== "none") metrics.failovers.inc({ pool: ev.pool, to });
      cluster?.viewChanged?.();
    },
    memberLeft: (e) => {
      deps.memberLeft(e, () => void metrics.removeUpstream(e.pool, e.upstream.id));
      cluster?.changed?.();
    },
  };
}
