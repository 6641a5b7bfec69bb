// Turns a validated RawConfig into the runtime GatewayConfig: applies DEFAULTS, merges defaults into each pool.
import { dirname, resolve as resolvePath } from "node:path";
import { DEFAULTS, defaultUpstreamId, type RawConfig } from "./schema.ts";
import type { GatewayConfig, ListenAddress, PoolSettings, RegistryConfig, StatusRanges } from "./types.ts";

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
    redis: {
      url: raw.redis?.url ?? DEFAULTS.redis.url,
      keyPrefix: raw.redis?.keyPrefix ?? DEFAULTS.redis.keyPrefix,
    },
    ...(raw.registry ? { registry: resolveRegistry(raw.registry, source.path, env) } : {}),
    defaults,
    shutdownGrace: raw.shutdownGrace ?? DEFAULTS.shutdownGrace,
    admin: {
      ...(apiKey ? { apiKey } : {}),
      ...(adminListen !== undefined ? { listen: parseListen(adminListen, "127.0.0.1") } : {}),
    },
    pools: Object.entries(raw.pools).map(([name, p]) => {
      const { upstreams = [], discover, ...settings } = p;
      return {
        name,
        ...mergeSettings(defaults, settings),
        ...(discover ? { discover } : {}),
        upstreams: upstreams.map((u) => ({
          id: u.id ?? defaultUpstreamId(u.url),
          url: u.url,
          weight: u.weight ?? DEFAULTS.upstream.weight,
          backup: u.backup ?? DEFAULTS.upstream.backup,
          ...(u.run
            ? {
                run: {
                  command: u.run.command,
                  cwd: u.run.cwd ?? DEFAULTS.run.cwd,
                  env: u.run.env ?? {},
                  restart: u.run.restart ?? DEFAULTS.run.restart,
                  stopGrace: u.run.stopGrace ?? DEFAULTS.run.stopGrace,
                },
              }
            : {}),
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
    source,
  };
}

function parsePortRange(text: string): { first: number; last: number } {
  const [first, last] = text.split("-").map((x) => Number(x.trim()));
  return { first: first!, last: last! };
}

function resolveRegistry(
  raw: NonNullable<RawConfig["registry"]>,
  configPath: string,
  env: Readonly<Record<string, string | undefined>>,
): RegistryConfig {
  // As admin.apiKey: GATEWAY_REGISTRY_KEY applies when the file does not set the key; an explicit empty value
  // means none.
  const apiKey = raw.apiKey ?? env.GATEWAY_REGISTRY_KEY;
  return {
    store: raw.store ?? DEFAULTS.registry.store,
    file: resolvePath(dirname(configPath), raw.file ?? DEFAULTS.registry.file),
    ttl: raw.ttl ?? DEFAULTS.registry.ttl,
    deregisterAfter: raw.deregisterAfter ?? DEFAULTS.registry.deregisterAfter,
    ...(apiKey ? { apiKey } : {}),
    policies: raw.policies ?? [],
    reserved: raw.reserved ?? [],
    types: Object.fromEntries(
      Object.entries(raw.types ?? {}).map(([name, t]) => [
        name,
        typeof t === "string"
          ? { range: parsePortRange(t) }
          : { range: parsePortRange(t.range), ...(t.fallback ? { fallback: t.fallback } : {}) },
      ]),
    ),
  };
}
