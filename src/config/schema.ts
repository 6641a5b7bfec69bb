// The one schema of gateway.yaml: every key, its type, its default and its error message. Types derive from it.
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
    failureStatuses: [502, 503, 504],
  },
  timeouts: { connect: 2_000, response: 30_000 },
  retries: 2,
  retryBudget: { percent: 20, minConcurrent: 3 },
  failbackDelay: 0,
  maxBodySize: 0,
  upstream: { weight: 1, backup: false },
  run: { cwd: ".", restart: "on-failure", stopGrace: 5_000 },
} as const;

const duration = (what: string) =>
  z.union(
    [
      z.number().int().nonnegative(),
      z
        .string()
        .regex(new RegExp(DURATION_PATTERN), `${what} must be a duration such as 250ms, 5s or 1m`)
        .transform((s) => parseDuration(s)!),
    ],
    { error: `${what} must be a duration such as 250ms, 5s or 1m, or milliseconds` },
  );

/** A duration that must be more than zero: a 0 ms timeout fails every request, a 0 ms interval spins. */
const positiveDuration = (what: string) => duration(what).refine((v) => v > 0, `${what} must be more than 0`);

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
    interval: positiveDuration("interval"),
    timeout: positiveDuration("timeout"),
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

const pool = z
  .object({
    upstreams: z
      .array(upstream, { error: "upstreams must be a list" })
      .min(1, "a pool needs at least one upstream"),
    ...poolSettings,
  })
  .strict()
  .partial()
  .required({ upstreams: true });

const route = z
  .object({
    prefix: z.string({ error: "prefix is required" }).startsWith("/", "prefix must start with /"),
    pool: z.string({ error: "pool is required" }),
    stripPrefix: z.boolean().optional(),
    host: z.string().min(1).optional(),
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
  })
  .strict()
  .superRefine(
    (cfg, ctx) => {
      // This also runs when other keys failed (see `when`), so each value is checked before it is used.
      const pools: Record<string, unknown> = isObject(cfg.pools) ? cfg.pools : {};
      for (const [name, p] of Object.entries(pools)) {
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
      const routes: unknown[] = Array.isArray(cfg.routes) ? cfg.routes : [];
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
      });
    },
    // By default zod skips this once any other key failed; run it anyway so every error is reported at once.
    { when: (payload) => isObject(payload.value) },
  );

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
