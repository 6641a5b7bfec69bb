// Every metric the gateway exports, declared in one list (prom-client), on a registry of its own.
import { AggregatorRegistry, Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export type BreakerStateName = "closed" | "open" | "half_open";
const BREAKER_STATES: readonly BreakerStateName[] = ["closed", "open", "half_open"];

/** What the state gauges read at scrape time, so they are never stale. */
export interface StateSnapshot {
  pools: {
    name: string;
    tier: number;
    upstreams: { id: string; up: boolean; breaker: BreakerStateName }[];
  }[];
}

/** What the registry gauges read at scrape time (absent while no registry is configured). */
export interface RegistryMetricsSnapshot {
  storeUp: boolean;
  types: { type: string; active: number; expired: number; capacity: number }[];
}

// Proxy latencies: from a 1 ms cache hit to the 30 s default response timeout.
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

const KNOWN_METHODS = new Set([
  "GET",
  "HEAD",
  "POST",
  "PUT",
  "DELETE",
  "PATCH",
  "OPTIONS",
  "CONNECT",
  "TRACE",
]);

// One string per status code, made once, instead of a number-to-string conversion per request and label (not
// measurable on its own: V8 may serve String(200) from its number-string cache).
const STATUS_LABELS = Array.from({ length: 1000 }, (_, i) => String(i));

/** The `code` and `outcome` label of an HTTP status. */
export function statusLabel(status: number): string {
  return STATUS_LABELS[status] ?? String(status);
}

/** Bounds the `method` label: a client may send any token as a method. */
export function methodLabel(method: string | undefined): string {
  return method && KNOWN_METHODS.has(method) ? method : "OTHER";
}

// prom-client keeps one entry per label set and updates it in place; holding the entry skips hashing the labels
// on every request (dependencies.md §4: ~0.4-0.6 µs per call). The shapes are prom-client 15's.
interface CounterEntry {
  value: number;
  labels: object;
}
interface HistogramEntry {
  sum: number;
  count: number;
  bucketValues: Record<number, number>;
  labels: object;
}

function entryOf(metric: object, labels: object): CounterEntry & HistogramEntry {
  const map = (metric as { hashMap: Record<string, CounterEntry & HistogramEntry> }).hashMap;
  for (const key in map) if (map[key]!.labels === labels) return map[key]!;
  throw new Error("prom-client entry not found");
}

/** One request series (route, method, code): its counter and histogram entries. */
class RequestSeries {
  constructor(
    private readonly counter: CounterEntry,
    private readonly histogram: HistogramEntry,
  ) {}

  observe(seconds: number): void {
    this.counter.value += 1;
    const h = this.histogram;
    h.sum += seconds;
    h.count += 1;
    for (const bound of LATENCY_BUCKETS) {
      if (seconds <= bound) {
        h.bucketValues[bound]! += 1;
        return;
      }
    }
  }
}

/**
 * With workers, the metrics each worker keeps (its traffic) and that are summed over them; every other gateway_
 * metric is the primary's alone (health, tiers, breakers as merged there, reloads, managed processes, registry).
 * prom-client's process_ and nodejs_ metrics come from every process, each aggregated its own way.
 */
const WORKER_METRICS = new Set([
  "gateway_requests_total",
  "gateway_request_duration_seconds",
  "gateway_upstream_requests_total",
  "gateway_failovers_total",
  "gateway_retries_total",
  "gateway_inflight_requests",
  "gateway_policy_rejections_total",
]);

function fromWorkers(name: string): boolean {
  return WORKER_METRICS.has(name) || !name.startsWith("gateway_");
}

/**
 * One /metrics view of a cluster: the primary's registry plus its workers' (prom-client's JSON form, gathered over
 * IPC by src/cluster/). Only the static `AggregatorRegistry.aggregate` is used: its cluster mode needs every worker
 * to build an AggregatorRegistry, or scrapes time out after 5 s (dependencies.md §4).
 */
export async function clusterMetricsText(
  primary: GatewayMetrics,
  workers: readonly unknown[][],
): Promise<string> {
  const own = (await primary.registry.getMetricsAsJSON()).filter((m) => !WORKER_METRICS.has(m.name));
  const theirs = workers.map((w) =>
    w.filter(
      (m) => typeof m === "object" && m !== null && fromWorkers(String((m as { name?: unknown }).name)),
    ),
  );
  return AggregatorRegistry.aggregate([own, ...theirs]).metrics();
}

export class GatewayMetrics {
  readonly registry = new Registry();
  private snapshot: () => StateSnapshot = () => ({ pools: [] });
  private registrySnapshot: (() => RegistryMetricsSnapshot) | undefined;
  private exporter: (() => Promise<string>) | undefined;

  readonly requests = new Counter({
    name: "gateway_requests_total",
    help: "Requests answered by the gateway, by route, method and status code.",
    labelNames: ["route", "method", "code"] as const,
    registers: [this.registry],
  });
  readonly requestDuration = new Histogram({
    name: "gateway_request_duration_seconds",
    help: "Time from request arrival to the end of the response.",
    labelNames: ["route", "method", "code"] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly upstreamRequests = new Counter({
    name: "gateway_upstream_requests_total",
    help: "Attempts sent to each upstream, by outcome: the status code, or error, timeout.",
    labelNames: ["pool", "upstream", "outcome"] as const,
    registers: [this.registry],
  });
  readonly failovers = new Counter({
    name: "gateway_failovers_total",
    help: "Switches of a pool's traffic between primaries and backups.",
    labelNames: ["pool", "to"] as const,
    registers: [this.registry],
  });
  readonly retries = new Counter({
    name: "gateway_retries_total",
    help: "Attempts retried on another upstream.",
    labelNames: ["pool"] as const,
    registers: [this.registry],
  });
  readonly healthChecks = new Counter({
    name: "gateway_health_checks_total",
    help: "Active health checks, by result.",
    labelNames: ["pool", "upstream", "result"] as const,
    registers: [this.registry],
  });
  private inflightNow: () => number = () => 0;
  readonly inflight = (() => {
    const read = () => this.inflightNow();
    return new Gauge({
      name: "gateway_inflight_requests",
      help: "Requests being proxied now.",
      registers: [this.registry],
      // Read at scrape time from the handler's own count: nothing to update per request.
      collect() {
        this.set(read());
      },
    });
  })();
  readonly configReloads = new Counter({
    name: "gateway_config_reloads_total",
    help: "Config loads after the first, by result.",
    labelNames: ["result"] as const,
    registers: [this.registry],
  });
  readonly configLastSuccess = new Gauge({
    name: "gateway_config_last_reload_success_timestamp_seconds",
    help: "When the running config was loaded (the initial load counts).",
    registers: [this.registry],
  });
  readonly managedRestarts = new Counter({
    name: "gateway_managed_restarts_total",
    help: "Restarts of managed upstream processes.",
    labelNames: ["pool", "upstream"] as const,
    registers: [this.registry],
  });

  readonly registryOps = new Counter({
    name: "gateway_registry_operations_total",
    help: "Registry operations, by op (allocate, heartbeat, release, expire, remove) and result (ok, error).",
    labelNames: ["op", "result"] as const,
    registers: [this.registry],
  });

  readonly policyRejections = new Counter({
    name: "gateway_policy_rejections_total",
    help: "Requests a route's policy refused, by policy name and reason (unauthorized, rate_limited).",
    labelNames: ["route", "policy", "reason"] as const,
    registers: [this.registry],
  });

  readonly workers = new Gauge({
    name: "gateway_workers",
    help: "Processes serving traffic now (1 without workers).",
    registers: [this.registry],
    aggregator: "first",
  });

  constructor(options: { defaultMetrics?: boolean } = {}) {
    this.workers.set(1);
    if (options.defaultMetrics !== false) {
      collectDefaultMetrics({ register: this.registry });
      // prom-client also exports these gauges under names ending in _total, which promtool rejects for a gauge;
      // the same values stay exported without the suffix.
      for (const name of [
        "nodejs_active_handles_total",
        "nodejs_active_requests_total",
        "nodejs_active_resources_total",
      ]) {
        this.registry.removeSingleMetric(name);
      }
    }
    const read = () => this.snapshot();
    new Gauge({
      name: "gateway_upstream_up",
      help: "1 when the upstream's health checks say healthy, else 0.",
      labelNames: ["pool", "upstream"] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const p of read().pools) {
          for (const u of p.upstreams) this.set({ pool: p.name, upstream: u.id }, u.up ? 1 : 0);
        }
      },
    });
    new Gauge({
      name: "gateway_upstream_breaker_state",
      help: "Circuit breaker state of each upstream: 1 for the current state.",
      labelNames: ["pool", "upstream", "state"] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const p of read().pools) {
          for (const u of p.upstreams) {
            for (const s of BREAKER_STATES) {
              this.set({ pool: p.name, upstream: u.id, state: s }, u.breaker === s ? 1 : 0);
            }
          }
        }
      },
    });
    new Gauge({
      name: "gateway_pool_active_tier",
      help: "Where a pool's traffic goes: 0 primaries, 1 backups, -1 none available.",
      labelNames: ["pool"] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const p of read().pools) this.set({ pool: p.name }, p.tier);
      },
    });
    this.registryGauges();
  }

  /** Gives the registry gauges their source; set when a registry is configured. */
  setRegistrySource(source: (() => RegistryMetricsSnapshot) | undefined): void {
    this.registrySnapshot = source;
  }

  private registryGauges(): void {
    const read = () => this.registrySnapshot?.();
    new Gauge({
      name: "gateway_registry_allocations",
      help: "Registry allocations, by the type they asked for and their lease status.",
      labelNames: ["type", "status"] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const t of read()?.types ?? []) {
          this.set({ type: t.type, status: "active" }, t.active);
          this.set({ type: t.type, status: "expired" }, t.expired);
        }
      },
    });
    new Gauge({
      name: "gateway_registry_capacity",
      help: "Ports of each registry type's range, minus the reserved ones.",
      labelNames: ["type"] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const t of read()?.types ?? []) if (t.capacity > 0) this.set({ type: t.type }, t.capacity);
      },
    });
    new Gauge({
      name: "gateway_registry_store_up",
      help: "1 when the registry store answers, else 0.",
      registers: [this.registry],
      collect() {
        this.reset();
        const s = read();
        if (s) this.set(s.storeUp ? 1 : 0);
      },
    });
  }

  private readonly requestSeries = new Map<string, Map<string, Map<string, RequestSeries>>>();
  private readonly upstreamSeries = new Map<string, Map<string, Map<string, CounterEntry>>>();

  /**
   * Counts one answered request in gateway_requests_total and gateway_request_duration_seconds, through entries
   * cached per route, method and code.
   */
  recordRequest(route: string, method: string, code: string, seconds: number): void {
    let byCode = this.requestSeries.get(route);
    if (!byCode) this.requestSeries.set(route, (byCode = new Map<string, Map<string, RequestSeries>>()));
    let byMethod = byCode.get(code);
    if (!byMethod) byCode.set(code, (byMethod = new Map<string, RequestSeries>()));
    let series = byMethod.get(method);
    if (!series) {
      const labels = { route, method, code };
      this.requests.inc(labels, 0);
      this.requestDuration.zero(labels);
      series = new RequestSeries(entryOf(this.requests, labels), entryOf(this.requestDuration, labels));
      byMethod.set(method, series);
    }
    series.observe(seconds);
  }

  /** Counts one attempt in gateway_upstream_requests_total, through entries cached per upstream and outcome. */
  recordAttempt(pool: string, upstream: string, outcome: string): void {
    let byUpstream = this.upstreamSeries.get(pool);
    if (!byUpstream)
      this.upstreamSeries.set(pool, (byUpstream = new Map<string, Map<string, CounterEntry>>()));
    let byOutcome = byUpstream.get(upstream);
    if (!byOutcome) byUpstream.set(upstream, (byOutcome = new Map<string, CounterEntry>()));
    let entry = byOutcome.get(outcome);
    if (!entry) {
      const labels = { pool, upstream, outcome };
      this.upstreamRequests.inc(labels, 0);
      entry = entryOf(this.upstreamRequests, labels);
      byOutcome.set(outcome, entry);
    }
    entry.value += 1;
  }

  /** The Prometheus text of /metrics: this registry, or the cluster's merged view when the primary set one. */
  text(): Promise<string> {
    return this.exporter ? this.exporter() : this.registry.metrics();
  }

  /** The cluster primary's /metrics: its own registry merged with its workers'. */
  setExporter(exporter: () => Promise<string>): void {
    this.exporter = exporter;
  }

  /**
   * Drops every series of one upstream (a discovered member that left): discovered ids come and go, and their
   * series must not pile up for the life of the process.
   */
  async removeUpstream(pool: string, upstream: string): Promise<void> {
    this.upstreamSeries.get(pool)?.delete(upstream);
    for (const metric of [this.upstreamRequests, this.healthChecks]) {
      const { values } = await metric.get();
      for (const v of values) {
        if (v.labels.pool === pool && v.labels.upstream === upstream) metric.remove(v.labels as never);
      }
    }
  }

  /** Gives gateway_inflight_requests its source (the HTTP handler's count of requests in flight). */
  inflightSource(read: () => number): void {
    this.inflightNow = read;
  }

  /** Gives the state gauges their source; the gateway sets it once its runtime exists. */
  setStateSource(source: () => StateSnapshot): void {
    this.snapshot = source;
  }
}
