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

export interface PoolConfig extends PoolSettings {
  name: string;
  upstreams: UpstreamConfig[];
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

export interface GatewayConfig {
  listen: ListenAddress;
  shutdownGrace: number;
  admin: { apiKey?: string; listen?: ListenAddress };
  pools: PoolConfig[];
  routes: RouteConfig[];
  /** `processes:`, in file order (absent when the file has none). */
  processes?: ProcessConfig[];
  /** Where it came from: absolute path, sha256 of the file, load time. */
  source: { path: string; hash: string; loadedAt: Date };
}
