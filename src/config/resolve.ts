// Turns a validated RawConfig into the runtime GatewayConfig: applies DEFAULTS, merges defaults into each pool.
import { DEFAULTS, defaultUpstreamId, type RawConfig } from "./schema.ts";
import type { GatewayConfig, ListenAddress, PoolSettings, RunConfig, StatusRanges } from "./types.ts";

export function parseListen(value: number | string, defaultHost = "0.0.0.0"): ListenAddress {
  if (typeof value === "number") return { host: defaultHost, port: value };
  const i = value.lastIndexOf(":");
  if (i < 0) return { host: defaultHost, port: Number(value) };
  const host = value.slice(0, i).replace(/^\[(.*)\]$/, "$1");
  return { host, port: Number(value.slice(i + 1)) };
}

export function parseStatusRanges(value: number | string): StatusRanges {
  if (typeof value === "number") return [[value, value]];
  return value.split(",").map((part) => {
    const [lo, hi] = part.trim().split("-").map(Number);
    return [lo!, hi ?? lo!] as const;
  });
}

type RawSettings = NonNullable<RawConfig["defaults"]>;

function mergeSettings(base: PoolSettings, over: RawSettings | undefined): PoolSettings {
  if (!over) return base;
  const { expectStatus, ...health } = over.healthCheck ?? {};
  return {
    balance: over.balance ?? base.balance,
    healthCheck: {
      ...base.healthCheck,
      ...health,
      ...(expectStatus !== undefined ? { expectStatus: parseStatusRanges(expectStatus) } : {}),
    },
    breaker: { ...base.breaker, ...over.breaker },
    timeouts: { ...base.timeouts, ...over.timeouts },
    retries: over.retries ?? base.retries,
    retryBudget: { ...base.retryBudget, ...over.retryBudget },
    failbackDelay: over.failbackDelay ?? base.failbackDelay,
    maxBodySize: over.maxBodySize ?? base.maxBodySize,
  };
}

const BUILTIN: PoolSettings = {
  balance: DEFAULTS.balance,
  healthCheck: {
    ...DEFAULTS.healthCheck,
    expectStatus: parseStatusRanges(DEFAULTS.healthCheck.expectStatus),
  },
  breaker: { ...DEFAULTS.breaker },
  timeouts: { ...DEFAULTS.timeouts },
  retries: DEFAULTS.retries,
  retryBudget: { ...DEFAULTS.retryBudget },
  failbackDelay: DEFAULTS.failbackDelay,
  maxBodySize: DEFAULTS.maxBodySize,
};

export function resolveConfig(
  raw: RawConfig,
  source: GatewayConfig["source"],
  env: Readonly<Record<string, string | undefined>> = {},
): GatewayConfig {
  const base = raw.maxBodySize !== undefined ? { ...BUILTIN, maxBodySize: raw.maxBodySize } : BUILTIN;
  const defaults = mergeSettings(base, raw.defaults);
  // The contract's GATEWAY_ADMIN_KEY applies when the file does not set admin.apiKey itself; an explicit empty
  // value (such as `${GATEWAY_ADMIN_KEY:-}` with the variable unset) means no key: loopback clients only.
  const apiKey = raw.admin?.apiKey ?? env.GATEWAY_ADMIN_KEY;
  const adminListen = raw.admin?.listen;
  return {
    listen: parseListen(raw.listen ?? DEFAULTS.listen),
    shutdownGrace: raw.shutdownGrace ?? DEFAULTS.shutdownGrace,
    admin: {
      ...(apiKey ? { apiKey } : {}),
      ...(adminListen !== undefined ? { listen: parseListen(adminListen, "127.0.0.1") } : {}),
    },
    pools: Object.entries(raw.pools).map(([name, p]) => {
      const { upstreams, ...settings } = p;
      return {
        name,
        ...mergeSettings(defaults, settings),
        upstreams: upstreams.map((u) => ({
          id: u.id ?? defaultUpstreamId(u.url),
          url: u.url,
          weight: u.weight ?? DEFAULTS.upstream.weight,
          backup: u.backup ?? DEFAULTS.upstream.backup,
          ...(u.run ? { run: resolveRun(u.run) } : {}),
        })),
      };
    }),
    routes: raw.routes.map((r) => ({
      id: r.host ? `${r.host}${r.prefix}` : r.prefix,
      prefix: r.prefix,
      pool: r.pool,
      stripPrefix: r.stripPrefix ?? false,
      ...(r.host ? { host: r.host.toLowerCase() } : {}),
    })),
    ...(raw.processes
      ? { processes: Object.entries(raw.processes).map(([name, run]) => ({ name, run: resolveRun(run) })) }
      : {}),
    source,
  };
}

type RawRun = NonNullable<RawConfig["processes"]>[string];

function resolveRun(run: RawRun): RunConfig {
  return {
    command: run.command,
    cwd: run.cwd ?? DEFAULTS.run.cwd,
    env: run.env ?? {},
    restart: run.restart ?? DEFAULTS.run.restart,
    stopGrace: run.stopGrace ?? DEFAULTS.run.stopGrace,
  };
}
