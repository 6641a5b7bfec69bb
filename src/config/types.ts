// The runtime view of a loaded gateway.yaml: every default applied, every duration in ms, pools merged with defaults.

export type BalancePolicy = "weighted-round-robin" | "least-connections" | "random" | "ip-hash";
export type RestartPolicy = "always" | "on-failure" | "never";

/** Inclusive status ranges, e.g. [[200, 399]]. */
export type StatusRanges = readonly (readonly [number, number])[];

export interface HealthCheckSettings {
  enabled: boolean;
  path: string;
  interval: number;
  timeout: number;
  healthyThreshold: number;
  unhealthyThreshold: number;
  expectStatus: StatusRanges;
}

export interface BreakerSettings {
  errorThresholdPercentage: number;
  volumeThreshold: number;
  rollingWindow: number;
  resetTimeout: number;
  failureStatuses: readonly number[];
}

export interface PoolSettings {
  balance: BalancePolicy;
  healthCheck: HealthCheckSettings;
  breaker: BreakerSettings;
  timeouts: { connect: number; response: number };
  retries: number;
  retryBudget: { percent: number; minConcurrent: number };
  failbackDelay: number;
  /** Bytes; 0 means no limit. */
  maxBodySize: number;
}

export interface RunConfig {
  command: string;
  cwd: string;
  env: Record<string, string>;
  restart: RestartPolicy;
  stopGrace: number;
}

/** A top-level `processes:` entry: a managed process that belongs to no upstream. */
export interface ProcessConfig {
  name: string;
  run: RunConfig;
}

export interface UpstreamConfig {
  id: string;
  url: string;
  weight: number;
  backup: boolean;
  run?: RunConfig;
}

/** Which registry allocations join a pool: by service type or by service name. */
export type DiscoverConfig = { type: string } | { name: string };

export interface StickyConfig {
  cookie: string;
  /** HMAC key of the cookie value; `previousSecrets` are still accepted, so the secret can be rotated. */
  secret: string;
  previousSecrets: string[];
  /** ms; undefined: a session cookie. */
  maxAge?: number;
}

export interface PoolConfig extends PoolSettings {
  name: string;
  upstreams: UpstreamConfig[];
  discover?: DiscoverConfig;
  sticky?: StickyConfig;
}

export interface CorsConfig {
  origins: string[];
  methods: string[];
  headers: string[];
  exposeHeaders: string[];
  credentials: boolean;
  /** ms */
  maxAge: number;
}

export type JwtAlgorithm =
  | "HS256"
  | "HS384"
  | "HS512"
  | "RS256"
  | "RS384"
  | "RS512"
  | "PS256"
  | "PS384"
  | "PS512"
  | "ES256"
  | "ES384"
  | "ES512"
  | "EdDSA";

export interface JwtConfig {
  secret?: string;
  publicKey?: string;
  jwksUrl?: string;
  issuer?: string;
  audience?: string | string[];
  algorithms: JwtAlgorithm[];
}

export interface AuthConfig {
  /** Keys by name, as lowercase hex SHA-256 digests: a plain `key` is digested when the config loads. */
  apiKeys: { name: string; sha256: string }[];
  jwt?: JwtConfig;
}

export type RateLimitKey = { kind: "ip" } | { kind: "subject" } | { kind: "header"; name: string };

export interface RateLimitConfig {
  /** Requests allowed per window. */
  points: number;
  /** ms: 1 s, 1 min or 1 h, from the rate's unit. */
  window: number;
  burst: number;
  key: RateLimitKey;
  store: "memory" | "redis";
  /** Counters kept in memory at most; beyond, new keys share a few overflow counters. */
  maxKeys: number;
}

export interface PolicyConfig {
  name: string;
  cors?: CorsConfig;
  auth?: AuthConfig;
  rateLimit?: RateLimitConfig;
}

export interface RouteConfig {
  /** The route's label in metrics and logs: the prefix, or `host/prefix` when it has a host. */
  id: string;
  prefix: string;
  pool: string;
  stripPrefix: boolean;
  host?: string;
  /** Names from `policies`, in the order listed. */
  policies?: string[];
}

export interface ListenAddress {
  host: string;
  port: number;
}

export interface RedisConfig {
  url: string;
  keyPrefix: string;
}

export interface RegistryTypeConfig {
  range: { first: number; last: number };
  fallback?: string;
}

export interface RegistryConfig {
  store: "memory" | "file" | "redis";
  /** Absolute (resolved against the config file's folder). */
  file: string;
  ttl: number;
  deregisterAfter: number;
  apiKey?: string;
  policies: string[];
  reserved: number[];
  types: Record<string, RegistryTypeConfig>;
}

export interface GatewayConfig {
  listen: ListenAddress;
  redis: RedisConfig;
  /** Absent: no registry API. */
  registry?: RegistryConfig;
  /** `defaults` merged over the built-in ones: what a pool without overrides gets (and registry health checks). */
  defaults: PoolSettings;
  shutdownGrace: number;
  /** ms between SIGTERM (readiness already failing) and the drain. */
  drainDelay: number;
  /** Processes that serve traffic; 1 is the single process (no cluster). "auto" is resolved to the CPU count. */
  workers: number;
  admin: { apiKey?: string; listen?: ListenAddress };
  pools: PoolConfig[];
  routes: RouteConfig[];
  /** Named edge policies. */
  policies: Map<string, PolicyConfig>;
  /** Addresses and CIDR blocks whose X-Forwarded-For is believed. */
  trustedProxies: string[];
  /** `processes:`, in file order (absent when the file has none). */
  processes?: ProcessConfig[];
  /** Where it came from: absolute path, sha256 of the file, load time. */
  source: { path: string; hash: string; loadedAt: Date };
}
