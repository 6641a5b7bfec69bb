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

export interface UpstreamConfig {
  id: string;
  url: string;
  weight: number;
  backup: boolean;
  run?: RunConfig;
}

/** Which registry allocations join a pool: by service type or by service name. */
export type DiscoverConfig = { type: string } | { name: string };

export interface PoolConfig extends PoolSettings {
  name: string;
  upstreams: UpstreamConfig[];
  discover?: DiscoverConfig;
}

export interface RouteConfig {
  /** The route's label in metrics and logs: the prefix, or `host/prefix` when it has a host. */
  id: string;
  prefix: string;
  pool: string;
  stripPrefix: boolean;
  host?: string;
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
  admin: { apiKey?: string; listen?: ListenAddress };
  pools: PoolConfig[];
  routes: RouteConfig[];
  /** Where it came from: absolute path, sha256 of the file, load time. */
  source: { path: string; hash: string; loadedAt: Date };
}
