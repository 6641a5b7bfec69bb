// Turns a validated RawConfig into the runtime GatewayConfig: applies DEFAULTS, merges defaults into each pool.
import { createHash } from "node:crypto";
import { availableParallelism } from "node:os";
import { dirname, resolve as resolvePath } from "node:path";
import { DEFAULTS, RATE_PATTERN, defaultUpstreamId, type RawConfig } from "./schema.ts";
import type {
  GatewayConfig,
  ListenAddress,
  PolicyConfig,
  PoolSettings,
  RateLimitKey,
  RegistryConfig,
  RunConfig,
  StatusRanges,
} from "./types.ts";

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
    drainDelay: raw.drainDelay ?? DEFAULTS.drainDelay,
    workers: raw.workers === "auto" ? availableParallelism() : (raw.workers ?? DEFAULTS.workers),
    admin: {
      ...(apiKey ? { apiKey } : {}),
      ...(adminListen !== undefined ? { listen: parseListen(adminListen, "127.0.0.1") } : {}),
    },
    pools: Object.entries(raw.pools).map(([name, p]) => {
      const { upstreams = [], discover, sticky, ...settings } = p;
      return {
        name,
        ...mergeSettings(defaults, settings),
        ...(discover ? { discover } : {}),
        ...(sticky
          ? {
              sticky: {
                cookie: sticky.cookie,
                secret: sticky.secret,
                previousSecrets: sticky.previousSecrets ?? [],
                ...(sticky.maxAge !== undefined ? { maxAge: sticky.maxAge } : {}),
              },
            }
          : {}),
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
      policies: r.policies ?? [],
    })),
    policies: new Map(Object.entries(raw.policies ?? {}).map(([name, p]) => [name, resolvePolicy(name, p)])),
    trustedProxies: raw.trustedProxies ?? [...DEFAULTS.trustedProxies],
    ...(raw.processes
      ? { processes: Object.entries(raw.processes).map(([name, run]) => ({ name, run: resolveRun(run) })) }
      : {}),
    source,
  };
}

type RawPolicy = NonNullable<RawConfig["policies"]>[string];

const UNIT_MS = { s: 1_000, m: 60_000, h: 3_600_000 } as const;

function rateKey(text: string): RateLimitKey {
  if (text === "subject") return { kind: "subject" };
  if (text.startsWith("header:")) return { kind: "header", name: text.slice(7).toLowerCase() };
  return { kind: "ip" };
}

/** Applies the policy defaults; plain API keys become their SHA-256 here, so nothing downstream holds them. */
function resolvePolicy(name: string, p: RawPolicy): PolicyConfig {
  const out: PolicyConfig = { name };
  if (p.cors) {
    const d = DEFAULTS.cors;
    out.cors = {
      origins: p.cors.origins,
      methods: (p.cors.methods ?? d.methods).map((m) => m.toUpperCase()),
      headers: p.cors.headers ?? [...d.headers],
      exposeHeaders: p.cors.exposeHeaders ?? [...d.exposeHeaders],
      credentials: p.cors.credentials ?? d.credentials,
      maxAge: p.cors.maxAge ?? d.maxAge,
    };
  }
  if (p.auth) {
    out.auth = {
      apiKeys: (p.auth.apiKeys ?? []).map((k) => ({
        name: k.name,
        sha256:
          k.sha256?.toLowerCase() ??
          createHash("sha256")
            .update(k.key ?? "")
            .digest("hex"),
      })),
      ...(p.auth.jwt ? { jwt: p.auth.jwt } : {}),
    };
  }
  if (p.rateLimit) {
    const m = new RegExp(RATE_PATTERN).exec(p.rateLimit.rate)!;
    const d = DEFAULTS.rateLimit;
    out.rateLimit = {
      points: Number(m[1]),
      window: UNIT_MS[m[2] as keyof typeof UNIT_MS],
      burst: p.rateLimit.burst ?? d.burst,
      key: rateKey(p.rateLimit.key ?? d.key),
      store: p.rateLimit.store ?? d.store,
      maxKeys: p.rateLimit.maxKeys ?? d.maxKeys,
    };
  }
  return out;
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
