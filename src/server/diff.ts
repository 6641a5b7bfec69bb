// What a reload changed: pools, routes and upstreams added, removed or changed, for the reload answer and log.
import { isDeepStrictEqual } from "node:util";
import type { GatewayConfig } from "../config/types.ts";
import type { ConfigChanges } from "./status.ts";

function diffMaps<T>(before: Map<string, T>, after: Map<string, T>) {
  const added = [...after.keys()].filter((k) => !before.has(k));
  const removed = [...before.keys()].filter((k) => !after.has(k));
  const changed = [...after.keys()].filter(
    (k) => before.has(k) && !isDeepStrictEqual(before.get(k), after.get(k)),
  );
  return { added, removed, changed };
}

function upstreams(c: GatewayConfig) {
  return new Map(c.pools.flatMap((p) => p.upstreams.map((u) => [`${p.name}/${u.url}`, u] as const)));
}

function pools(c: GatewayConfig) {
  // A pool "changes" with its settings; its upstreams are reported on their own.
  return new Map(c.pools.map(({ upstreams: _u, ...settings }) => [settings.name, settings] as const));
}

export function diffConfigs(before: GatewayConfig, after: GatewayConfig): ConfigChanges {
  const warnings: string[] = [];
  if (
    !isDeepStrictEqual(before.listen, after.listen) ||
    !isDeepStrictEqual(before.admin.listen, after.admin.listen)
  ) {
    warnings.push("listen addresses changed: they take effect at the next restart");
  }
  return {
    pools: diffMaps(pools(before), pools(after)),
    routes: diffMaps(
      new Map(before.routes.map((r) => [r.id, r])),
      new Map(after.routes.map((r) => [r.id, r])),
    ),
    upstreams: diffMaps(upstreams(before), upstreams(after)),
    warnings,
  };
}
