// The one schema of gateway.yaml: every key, its type, its default and its error message. Types derive from it.
import { isIP } from "node:net";
import { z } from "zod";
import { DURATION_PATTERN, SIZE_PATTERN, parseDuration, parseSize } from "./duration.ts";

/** Every default in one place; a pool inherits `defaults`, which inherit these. */
export const DEFAULTS = {
  listen: 8002,
  shutdownGrace: 10_000,
  drainDelay: 0,
  workers: 1,
  balance: "weighted-round-robin",
  healthCheck: {
    enabled: true,
    path: "/health",
    interval: 5_000,
    timeout: 2_000,
    healthyThreshold: 2,
    unhealthyThreshold: 3,
    expectStatus: "200-399",
  },
  breaker: {
    errorThresholdPercentage: 50,
    volumeThreshold: 10,
    rollingWindow: 10_000,
    resetTimeout: 10_000,
    failureStatuses: [500, 502, 503, 504],
  },
  timeouts: { connect: 2_000, response: 30_000 },
  retries: 2,
  retryBudget: { percent: 20, minConcurrent: 3 },
  failbackDelay: 0,
  maxBodySize: 0,
  upstream: { weight: 1, backup: false },
  run: { cwd: ".", restart: "on-failure", stopGrace: 5_000 },
  // Edge policies (docs/policies.md).
  cors: {
    methods: ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
    headers: ["Authorization", "Content-Type"],
    exposeHeaders: [] as string[],
    credentials: false,
    maxAge: 600_000,
  },
  rateLimit: { burst: 0, key: "ip", store: "memory", maxKeys: 100_000 },
  trustedProxies: [] as string[],
  redis: { url: "redis://127.0.0.1:6379/0", keyPrefix: "gateway" },
  registry: { store: "memory", file: "./registry.json", ttl: 15_000, deregisterAfter: 60_000 },
  registryWeight: 1,
} as const;

/**
 * On only while the loader parses a valid file a second time to collect warnings (parsing is synchronous, so it
 * never leaks into another parse): a bare integer from 1 to 999 in any duration field then fails with
 * BARE_DURATION, which brings back its key path. `interval: 5` is 5 ms, which is rarely what was meant.
 */
export const bareDurationCheck = { on: false };
export const BARE_DURATION = "\u0000bare-duration";

const duration = (what: string) =>
  z.union(
    [
      z
        .number()
        .int()
        .nonnegative()
        .refine((v) => !bareDurationCheck.on || v === 0 || v >= 1000, BARE_DURATION),
      z
        .string()
        .regex(new RegExp(DURATION_PATTERN), `${what} must be a duration such as 250ms, 5s or 1m`)
        .transform((s) => parseDuration(s)!),
    ],
    { error: `${what} must be a duration such as 250ms, 5s or 1m, or milliseconds` },
  );

/** A duration that must be more than zero: a 0 ms timeout fails every request, a 0 ms interval spins. */
const positiveDuration = (what: string) => duration(what).refine((v) => v > 0, `${what} must be more than 0`);

/** A floor for what would spin: `interval: 5` (5 ms) gave 1,350 health checks a second. */
const minDuration = (what: string, min: number) =>
  duration(what).refine(
    (v) => v >= min,
    `${what} must be at least ${min}ms (a bare number means milliseconds; write 5s for seconds)`,
  );

const size = z.union(
  [
    z.number().int().nonnegative(),
    z
      .string()
      .regex(new RegExp(SIZE_PATTERN, "i"), "size must be bytes or a number with b, kb, mb or gb")
      .transform((s) => parseSize(s)!),
  ],
  { error: "size must be bytes or a number with b, kb, mb or gb" },
);

const positiveInt = (what: string) =>
  z
    .number({ error: `${what} must be a number` })
    .int(`${what} must be an integer`)
    .positive(`${what} must be positive`);
const nonNegativeInt = (what: string) =>
  z
    .number({ error: `${what} must be a number` })
    .int(`${what} must be an integer`)
    .nonnegative(`${what} must be 0 or more`);

/** "200-399", "200", "200,204,300-399" or a bare integer. */
const statusRanges = z.union([
  z.number().int().min(100).max(599),
  z
    .string()
    .regex(/^\d{3}(-\d{3})?(\s*,\s*\d{3}(-\d{3})?)*$/, 'expectStatus must look like "200-399" or "200,204"'),
]);

export const BALANCE_POLICIES = ["weighted-round-robin", "least-connections", "random", "ip-hash"] as const;

const healthCheck = z
  .object({
    enabled: z.boolean(),
    path: z.string().startsWith("/", "path must start with /"),
    interval: minDuration("interval", 100),
    timeout: minDuration("timeout", 10),
    healthyThreshold: positiveInt("healthyThreshold"),
    unhealthyThreshold: positiveInt("unhealthyThreshold"),
    expectStatus: statusRanges,
  })
  .strict()
  .partial();

const breaker = z
  .object({
    errorThresholdPercentage: z.number().min(1).max(100),
    volumeThreshold: positiveInt("volumeThreshold"),
    rollingWindow: duration("rollingWindow").refine((v) => v >= 100, "rollingWindow must be at least 100ms"),
    resetTimeout: positiveDuration("resetTimeout"),
    failureStatuses: z.array(z.number().int().min(500).max(599, "failureStatuses must be 5xx codes")),
  })
  .strict()
  .partial();

const timeouts = z
  .object({ connect: positiveDuration("connect"), response: positiveDuration("response") })
  .strict()
  .partial();

const retryBudget = z
  .object({
    percent: z.number().min(0).max(100),
    minConcurrent: nonNegativeInt("minConcurrent"),
  })
  .strict()
  .partial();

/** The settings a pool may override; `defaults` has the same shape. */
const poolSettings = {
  balance: z.enum(BALANCE_POLICIES, { error: `balance must be one of ${BALANCE_POLICIES.join(", ")}` }),
  healthCheck,
  breaker,
  timeouts,
  retries: nonNegativeInt("retries"),
  retryBudget,
  failbackDelay: duration("failbackDelay"),
  maxBodySize: size,
};

const run = z
  .object({
    command: z.string().min(1, "command must not be empty"),
    cwd: z.string().optional(),
    env: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()]).transform(String)).optional(),
    restart: z.enum(["always", "on-failure", "never"]).optional(),
    stopGrace: duration("stopGrace").optional(),
  })
  .strict();

// ---- Edge policies (docs/policies.md) ----

const ORIGIN_RE = /^https?:\/\/[^/\s?#]+$/i;
const HEADER_NAME_RE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const headerList = (what: string) =>
  z.array(z.string().regex(HEADER_NAME_RE, `${what} must be header names`), {
    error: `${what} must be a list`,
  });

const cors = z
  .object({
    origins: z
      .array(
        z
          .string()
          .refine(
            (o) => o === "*" || ORIGIN_RE.test(o),
            'origins must be "*" or origins such as https://app.example.com',
          ),
        { error: "origins must be a list" },
      )
      .min(1, "origins must not be empty"),
    methods: headerList("methods").optional(),
    headers: headerList("headers").optional(),
    exposeHeaders: headerList("exposeHeaders").optional(),
    credentials: z.boolean().optional(),
    maxAge: duration("maxAge").optional(),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.origins.includes("*") && c.origins.length > 1)
      ctx.addIssue({ code: "custom", path: ["origins"], message: '"*" must be the only origin' });
    if (c.origins.includes("*") && c.credentials)
      ctx.addIssue({
        code: "custom",
        path: ["credentials"],
        message: 'credentials cannot be used with origins ["*"]: list the origins',
      });
  });

export const JWT_ALGORITHMS = [
  "HS256",
  "HS384",
  "HS512",
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "ES512",
  "EdDSA",
] as const;

const LOOPBACK_HOST_RE = /^(localhost|127(\.\d{1,3}){3}|\[::1\])$/i;

const jwt = z
  .object({
    secret: z.string().min(1, "secret must not be empty").optional(),
    publicKey: z
      .string()
      .includes("-----BEGIN", { message: "publicKey must be a PEM public key" })
      .optional(),
    jwksUrl: z
      .string()
      .refine((s) => {
        if (!URL.canParse(s)) return false;
        const u = new URL(s);
        return (
          u.protocol === "https:" ||
          (u.protocol === "http:" && LOOPBACK_HOST_RE.test(u.host.replace(/:\d+$/, "")))
        );
      }, "jwksUrl must be an https:// URL (http:// only to a loopback host)")
      .optional(),
    issuer: z.string().min(1).optional(),
    audience: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).optional(),
    algorithms: z
      .array(
        z.enum(JWT_ALGORITHMS, {
          error: `algorithms must be among ${JWT_ALGORITHMS.join(", ")} ("none" is never accepted)`,
        }),
        {
          error: "algorithms is required: the list of accepted algorithms",
        },
      )
      .min(1, "algorithms must not be empty"),
  })
  .strict()
  .superRefine((j, ctx) => {
    const sources = [j.secret, j.publicKey, j.jwksUrl].filter((v) => v !== undefined).length;
    if (sources !== 1)
      ctx.addIssue({
        code: "custom",
        path: [],
        message: "jwt needs exactly one of secret, publicKey, jwksUrl",
      });
    // A key of one kind used for an algorithm of the other is the algorithm-confusion attack; refuse the mix here.
    const hmac = (j.algorithms ?? []).filter((a) => a.startsWith("HS"));
    if (j.secret !== undefined && hmac.length !== j.algorithms.length)
      ctx.addIssue({ code: "custom", path: ["algorithms"], message: "a secret verifies HS256/384/512 only" });
    if (j.secret === undefined && hmac.length > 0)
      ctx.addIssue({
        code: "custom",
        path: ["algorithms"],
        message: "HS* algorithms need a secret, not a public key",
      });
  });

const apiKey = z
  .object({
    name: z
      .string({ error: "name is required" })
      .regex(/^[\w.@:-]{1,100}$/, "name uses letters, digits and _ . @ : -"),
    key: z.string().min(1, "key must not be empty").optional(),
    sha256: z
      .string()
      .regex(/^[0-9a-fA-F]{64}$/, "sha256 must be 64 hex digits (the key's SHA-256)")
      .optional(),
  })
  .strict()
  .refine(
    (k) => (k.key === undefined) !== (k.sha256 === undefined),
    "an API key needs exactly one of key, sha256",
  );

const auth = z
  .object({
    apiKeys: z.array(apiKey, { error: "apiKeys must be a list" }).optional(),
    jwt: jwt.optional(),
  })
  .strict()
  .refine((a) => (a.apiKeys?.length ?? 0) > 0 || a.jwt !== undefined, "auth needs apiKeys or jwt");

export const RATE_PATTERN = "^(\\d+)\\s*/\\s*(s|m|h)$";

const rateLimit = z
  .object({
    rate: z
      .string({ error: "rate is required" })
      .regex(new RegExp(RATE_PATTERN), "rate must look like 100/s, 600/m or 1000/h"),
    burst: nonNegativeInt("burst").optional(),
    key: z
      .string()
      .regex(/^(ip|subject|header:[!#$%&'*+.^_`|~0-9A-Za-z-]+)$/, "key must be ip, subject or header:NAME")
      .optional(),
    store: z.enum(["memory", "redis"], { error: "store must be memory or redis" }).optional(),
    maxKeys: positiveInt("maxKeys").optional(),
  })
  .strict()
  .refine((r) => Number(new RegExp(RATE_PATTERN).exec(r.rate)?.[1]) > 0, {
    path: ["rate"],
    message: "rate must be more than 0",
  });

const policy = z
  .object({ cors: cors.optional(), auth: auth.optional(), rateLimit: rateLimit.optional() })
  .strict()
  .refine((p) => p.cors ?? p.auth ?? p.rateLimit, "a policy needs cors, auth or rateLimit");

const sticky = z
  .object({
    cookie: z.string({ error: "cookie is required" }).regex(HEADER_NAME_RE, "cookie must be a cookie name"),
    secret: z.string({ error: "secret is required" }).min(16, "secret must be at least 16 characters"),
    previousSecrets: z.array(z.string().min(1)).optional(),
    maxAge: duration("maxAge").optional(),
  })
  .strict();

/** An address or CIDR block: 10.0.0.0/8, 192.168.1.7, fd00::/8. */
export function isCidr(text: string): boolean {
  const [ip, bits, more] = text.split("/");
  if (more !== undefined || !ip) return false;
  const family = isIP(ip);
  if (family === 0) return false;
  if (bits === undefined) return true;
  return /^\d{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128);
}

const trustedProxies = z.array(
  z.string().refine(isCidr, "trustedProxies entries must be addresses or CIDR blocks such as 10.0.0.0/8"),
  { error: "trustedProxies must be a list" },
);

const upstreamUrl = z
  .string({ error: "url is required" })
  .refine(
    (s) => URL.canParse(s) && /^https?:$/.test(new URL(s).protocol),
    "url must be an http:// or https:// URL",
  );

const upstream = z
  .object({
    url: upstreamUrl,
    weight: positiveInt("weight").optional(),
    backup: z.boolean().optional(),
    id: z.string().min(1).optional(),
    run: run.optional(),
  })
  .strict();

// Which registry allocations join the pool as primaries: by service type, or by service name.
const discover = z.union(
  [z.object({ type: z.string().min(1) }).strict(), z.object({ name: z.string().min(1) }).strict()],
  { error: "discover must be { type: TYPE } or { name: NAME }" },
);

// A pool that discovers its members may start with none; the others need one (checked in superRefine, which knows
// both keys).
const pool = z
  .object({
    upstreams: z.array(upstream, { error: "upstreams must be a list" }),
    discover,
    ...poolSettings,
    sticky: sticky,
  })
  .strict()
  .partial();

const PORT_RANGE = /^\s*(\d{1,5})\s*-\s*(\d{1,5})\s*$/;
const portRange = z
  .string({ error: 'a port range is "FIRST-LAST"' })
  .regex(PORT_RANGE, 'a port range is "FIRST-LAST", such as 8120-8299')
  .refine((s) => {
    const [, a, b] = PORT_RANGE.exec(s) ?? [];
    return Number(a) >= 1 && Number(b) <= 65535 && Number(a) <= Number(b);
  }, "a port range runs from a lower to a higher port, within 1-65535");

const registryType = z.union(
  [portRange, z.object({ range: portRange, fallback: z.string().min(1).optional() }).strict()],
  { error: 'a type is a port range "FIRST-LAST" or { range, fallback }' },
);

const port = z.number().int().min(1).max(65535, "a port is 1-65535");

const redis = z
  .object({
    url: z
      .string()
      .refine(
        (s) => /^(redis|rediss):\/\/.+|^unix:\/\/\/.+/.test(s) && URL.canParse(s),
        "url must be redis://, rediss:// or unix:///path/to/socket",
      ),
    keyPrefix: z
      .string()
      .min(1)
      .regex(/^[^{}\s]+$/, "keyPrefix may not hold braces or spaces"),
  })
  .strict()
  .partial();

const registry = z
  .object({
    store: z.enum(["memory", "file", "redis"], { error: "store must be memory, file or redis" }),
    file: z.string().min(1),
    ttl: duration("ttl").refine((v) => v >= 100, "ttl must be at least 100ms"),
    deregisterAfter: duration("deregisterAfter"),
    apiKey: z.string().nullable(),
    policies: z.array(z.string().min(1)),
    reserved: z.array(port),
    types: z.record(
      z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, "type names use a-z, 0-9, . _ -"),
      registryType,
    ),
  })
  .strict()
  .partial();

const route = z
  .object({
    prefix: z.string({ error: "prefix is required" }).startsWith("/", "prefix must start with /"),
    pool: z.string({ error: "pool is required" }),
    stripPrefix: z.boolean().optional(),
    host: z.string().min(1).optional(),
    policies: z.array(z.string({ error: "policies lists policy names" })).optional(),
  })
  .strict();

const listen = z.union(
  [
    z.number().int().min(0).max(65535),
    z
      .string()
      .regex(/^(\[[0-9a-fA-F:.]+\]|[^:\s]+):\d{1,5}$|^\d{1,5}$/, 'listen must be a port or "host:port"')
      .refine((s) => Number(s.slice(s.lastIndexOf(":") + 1)) <= 65535, "listen port must be 0-65535"),
  ],
  { error: 'listen must be a port or "host:port"' },
);

export const configSchema = z
  .object({
    listen: listen.optional(),
    shutdownGrace: duration("shutdownGrace").optional(),
    // Kubernetes removes a terminating pod from its Service's endpoints while SIGTERM is already on its way: keep
    // serving this long (with /readyz at 503) so requests routed in that window still land (issue 12).
    drainDelay: duration("drainDelay").optional(),
    workers: z
      .union([positiveInt("workers"), z.literal("auto")], {
        error: 'workers must be a positive integer or "auto"',
      })
      .optional(),
    // Also accepted at the top, where nginx users put client_max_body_size: the default for every pool.
    maxBodySize: size.optional(),
    admin: z
      .object({ apiKey: z.string().nullable().optional(), listen: listen.optional() })
      .strict()
      .optional(),
    defaults: z.object(poolSettings).strict().partial().optional(),
    pools: z.record(z.string().regex(/^[A-Za-z0-9_.-]+$/, "pool names use letters, digits, _ . -"), pool),
    routes: z.array(route).min(1, "at least one route is required"),
    trustedProxies: trustedProxies.optional(),
    policies: z
      .record(z.string().regex(/^[A-Za-z0-9_.-]+$/, "policy names use letters, digits, _ . -"), policy)
      .optional(),
    // Processes the gateway runs beside its upstreams, tied to no upstream url (a service that registers itself
    // through `gateway ports run`, for instance); the same keys as an upstream's `run`.
    processes: z
      .record(z.string().regex(/^[A-Za-z0-9_.-]+$/, "process names use letters, digits, _ . -"), run)
      .optional(),
    redis: redis.optional(),
    registry: registry.optional(),
  })
  .strict()
  .superRefine(
    (cfg, ctx) => {
      // This also runs when other keys failed (see `when`), so each value is checked before it is used.
      const pools: Record<string, unknown> = isObject(cfg.pools) ? cfg.pools : {};
      for (const [name, p] of Object.entries(pools)) {
        if (isObject(p) && p.discover === undefined) {
          if (p.upstreams === undefined)
            ctx.addIssue({
              code: "custom",
              path: ["pools", name, "upstreams"],
              message: "upstreams is required",
            });
          else if (Array.isArray(p.upstreams) && p.upstreams.length === 0)
            ctx.addIssue({
              code: "custom",
              path: ["pools", name, "upstreams"],
              message: "a pool needs at least one upstream",
            });
        }
        const upstreams: unknown[] = isObject(p) && Array.isArray(p.upstreams) ? p.upstreams : [];
        const seen = new Map<string, number>();
        upstreams.forEach((u, i) => {
          if (!isObject(u) || typeof u.url !== "string") return;
          if (u.id !== undefined && typeof u.id !== "string") return;
          const id = typeof u.id === "string" ? u.id : defaultUpstreamId(u.url);
          const first = seen.get(id);
          if (first !== undefined) {
            ctx.addIssue({
              code: "custom",
              path: ["pools", name, "upstreams", i, u.id !== undefined ? "id" : "url"],
              message: `duplicate upstream id "${id}" (also upstreams.${first})`,
            });
          } else seen.set(id, i);
        });
      }
      // The primary serves the admin endpoints; the workers share the main port and serve only routes.
      const admin = isObject(cfg.admin) ? cfg.admin : {};
      if (
        (cfg.workers === "auto" || (typeof cfg.workers === "number" && cfg.workers > 1)) &&
        admin.listen === undefined
      ) {
        ctx.addIssue({
          code: "custom",
          path: ["workers"],
          message:
            "workers above 1 needs admin.listen (the primary process serves the admin endpoints there)",
        });
      }
      checkRegistry(cfg.registry, pools, ctx);
      const routes: unknown[] = Array.isArray(cfg.routes) ? cfg.routes : [];
      const policies: Record<string, unknown> = isObject(cfg.policies) ? cfg.policies : {};
      const routeKeys = new Map<string, number>();
      routes.forEach((r, i) => {
        if (!isObject(r) || typeof r.prefix !== "string" || typeof r.pool !== "string") return;
        // hasOwn, not `in`: a pool named "toString" must not pass for one.
        if (!Object.hasOwn(pools, r.pool)) {
          ctx.addIssue({ code: "custom", path: ["routes", i, "pool"], message: `unknown pool "${r.pool}"` });
        }
        const key = `${typeof r.host === "string" ? r.host.toLowerCase() : ""} ${r.prefix}`;
        const first = routeKeys.get(key);
        if (first !== undefined) {
          ctx.addIssue({
            code: "custom",
            path: ["routes", i, "prefix"],
            message: `duplicate route "${r.prefix}" (also routes.${first})`,
          });
        } else routeKeys.set(key, i);
        const names: unknown[] = Array.isArray(r.policies) ? r.policies : [];
        names.forEach((n, j) => {
          if (typeof n === "string" && !Object.hasOwn(policies, n))
            ctx.addIssue({
              code: "custom",
              path: ["routes", i, "policies", j],
              message: `unknown policy "${n}"`,
            });
        });
      });
      // The registry has its own key: only CORS and rate limits may guard its API.
      const reg = (cfg as Record<string, unknown>).registry;
      const regPolicies: unknown[] = isObject(reg) && Array.isArray(reg.policies) ? reg.policies : [];
      regPolicies.forEach((n, j) => {
        if (typeof n !== "string") return;
        const p = Object.hasOwn(policies, n) ? policies[n] : undefined;
        if (p === undefined) {
          ctx.addIssue({
            code: "custom",
            path: ["registry", "policies", j],
            message: `unknown policy "${n}"`,
          });
        } else if (isObject(p) && p.auth !== undefined) {
          ctx.addIssue({
            code: "custom",
            path: ["registry", "policies", j],
            message: `policy "${n}" has auth: the registry API takes cors and rateLimit policies only (it has its own key)`,
          });
        }
      });
      const redis = (cfg as Record<string, unknown>).redis;
      for (const [name, p] of Object.entries(policies)) {
        const rl = isObject(p) && isObject(p.rateLimit) ? p.rateLimit : undefined;
        if (rl?.store === "redis" && redis === undefined)
          ctx.addIssue({
            code: "custom",
            path: ["policies", name, "rateLimit", "store"],
            message: "store: redis needs the top-level redis key",
          });
      }
    },
    // By default zod skips this once any other key failed; run it anyway so every error is reported at once.
    { when: (payload) => isObject(payload.value) },
  );

// Overlapping ranges would hand one port to two types; a fallback must name a type; discover must name one too.
function checkRegistry(reg: unknown, pools: Record<string, unknown>, ctx: z.RefinementCtx): void {
  const types = isObject(reg) && isObject(reg.types) ? reg.types : {};
  const ranges: { type: string; first: number; last: number }[] = [];
  for (const [type, spec] of Object.entries(types)) {
    const text = typeof spec === "string" ? spec : isObject(spec) ? spec.range : undefined;
    const m = typeof text === "string" ? PORT_RANGE.exec(text) : null;
    if (m) {
      const first = Number(m[1]);
      const last = Number(m[2]);
      const other = ranges.find((r) => first <= r.last && r.first <= last);
      if (other)
        ctx.addIssue({
          code: "custom",
          path: ["registry", "types", type, ...(typeof spec === "string" ? [] : ["range"])],
          message: `range ${first}-${last} overlaps ${other.type} (${other.first}-${other.last})`,
        });
      ranges.push({ type, first, last });
    }
    if (isObject(spec) && typeof spec.fallback === "string" && !Object.hasOwn(types, spec.fallback))
      ctx.addIssue({
        code: "custom",
        path: ["registry", "types", type, "fallback"],
        message: `unknown type "${spec.fallback}"`,
      });
  }
  for (const [name, p] of Object.entries(pools)) {
    if (!isObject(p) || !isObject(p.discover)) continue;
    if (reg === undefined)
      ctx.addIssue({
        code: "custom",
        path: ["pools", name, "discover"],
        message: "discover needs a registry section",
      });
    else if (typeof p.discover.type === "string" && !Object.hasOwn(types, p.discover.type))
      ctx.addIssue({
        code: "custom",
        path: ["pools", name, "discover", "type"],
        message: `unknown registry type "${p.discover.type}"`,
      });
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The config as written, after parsing (durations already in ms). */
export type RawConfig = z.output<typeof configSchema>;

/** `host:port` of a URL, the default upstream id. */
export function defaultUpstreamId(url: string): string {
  if (!URL.canParse(url)) return url;
  const u = new URL(url);
  const port = u.port || (u.protocol === "https:" ? "443" : "80");
  return `${u.hostname}:${port}`;
}
