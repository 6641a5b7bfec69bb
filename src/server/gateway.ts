// The gateway process: loads the config, builds the runtime, listens, reloads, and shuts down gracefully.
import http from "node:http";
import type { Socket } from "node:net";
import { once } from "node:events";
import { ConfigError, formatIssue, loadConfigFile } from "../config/load.ts";
import type { GatewayConfig, ListenAddress } from "../config/types.ts";
import { createLogger, type Logger } from "../log/log.ts";
import { Supervisor } from "../managed/supervisor.ts";
import { GatewayMetrics } from "../metrics/metrics.ts";
import { PolicySet } from "../policy/chain.ts";
import { TrustedProxies } from "../policy/client-address.ts";
import { redisClient } from "../registry/store-redis.ts";
import { Forwarder } from "../proxy/forward.ts";
import { ProxyHandler } from "../proxy/handler.ts";
import { answerServerOptions, isServerOptions, refuseConnect } from "../proxy/own-answers.ts";
import { UpgradeHandler } from "../proxy/upgrade.ts";
import { Registry, type MembershipSink } from "../registry/registry.ts";
import {
  Runtime,
  type PolicyCompiler,
  type RuntimeObserver,
  type UpstreamEntry,
} from "../runtime/runtime.ts";
import { createAdminApp, isGatewayPath } from "./admin.ts";
import { createRegistryApi, isRegistryPath, type RegistryRequestHook } from "./registry-api.ts";
import { registryPolicyHook } from "./registry-policies.ts";
import { diffConfigs } from "./diff.ts";
import {
  metricsSnapshot,
  statusReport,
  type ConfigErrorReport,
  type ReloadResult,
  type StatusReport,
} from "./status.ts";
import { listen, ListenError, portOf } from "./listen.ts";
import { runtimeObserver } from "./observer.ts";
import { ConfigWatcher } from "./watch.ts";

export { ListenError };

export interface GatewayOptions {
  configPath: string;
  env?: Record<string, string | undefined>;
  log?: Logger;
  /** prom-client's process and Node metrics; tests that start many gateways may turn them off. */
  defaultMetrics?: boolean;
  /** Reload when the config file changes on disk. Off unless asked for (the CLI asks), so tests choose. */
  watch?: boolean;
  /** Builds each route's policy steps once per config (proxy/phases.ts); tests may pass their own. */
  policies?: PolicyCompiler;
  /** A config already loaded (the CLI reads it first to pick the process model; a worker gets it by IPC). */
  config?: GatewayConfig;
  /** Set in a cluster primary or worker (src/cluster/); absent in the single process (`workers: 1`). */
  cluster?: ClusterRole;
}

export type ReloadTrigger = "api" | "signal" | "watch" | "cluster";

/**
 * What the cluster changes in a gateway. A primary serves no traffic (its workers do): it runs the health checks,
 * managed processes and the admin listener, and tells its workers of every change. A worker serves the main port
 * only: no probes, no admin listener, no managed processes; health and drain come from the primary.
 */
export interface ClusterRole {
  kind: "primary" | "worker";
  /** worker: applies the primary's latest health and drain to a runtime before it serves. */
  prepare?(rt: Runtime): void;
  /** primary: health or drain changed, the first health round is done, or a reload swapped the runtime. */
  changed?(): void;
  /** worker: a refused connection marked an upstream down here; the primary is told and probes it. */
  refused?(entry: UpstreamEntry, reason: string): void;
  /** worker: a breaker or a pool's tier changed here. */
  viewChanged?(): void;
  /** primary: drains and stops the workers (after drainDelay, before the primary's own shutdown). */
  stopWorkers?(): Promise<void>;
  /** primary: a reason not to be ready beyond the gateway's own (no worker serving yet). */
  notReady?(): string | undefined;
  /** primary: adds what the workers know (their breakers and tiers) to the status report. */
  status?(report: StatusReport): StatusReport;
}

export class Gateway {
  readonly log: Logger;
  readonly metrics: GatewayMetrics;
  private readonly forwarder = new Forwarder();
  private readonly handler: ProxyHandler;
  private readonly upgrades: UpgradeHandler;
  private readonly server: http.Server;
  private adminServer: http.Server | undefined;
  private rt!: Runtime;
  private firstRoundDone = false;
  /** The boot wait and first health round; settles also when a stop or reload came first (tests await it). */
  private booting: Promise<void> = Promise.resolve();
  private reloading: Promise<ReloadResult> = Promise.resolve({ ok: false, errors: [] });
  private stopping: Promise<void> | undefined;
  private readonly tunnels = new Set<Socket>();
  private readonly adminApp: ReturnType<typeof createAdminApp>;
  /** The processes of upstreams with `run:`. */
  readonly supervisor: Supervisor;
  private watcher: ConfigWatcher | undefined;
  /** The last rejected reload, shown by /admin/status until a good reload (or the file back in sync) clears it. */
  private lastConfigError: ConfigErrorReport | null = null;
  /** The service registry, when gateway.yaml has a `registry` section. */
  registry: Registry | undefined;
  private readonly registryApi: ReturnType<typeof createRegistryApi>;
  /** The edge policies of the config in force (their state carries over reloads). */
  private policySet: PolicySet | undefined;
  /** `registry.policies` compiled, when set. */
  private registryHook: RegistryRequestHook | undefined;
  /** The Redis client of `store: redis` rate limits, made when a policy first needs it. */
  private rateLimitRedis: { url: string; client: ReturnType<typeof redisClient> } | undefined;
  private readonly role: ClusterRole["kind"] | undefined;

  private constructor(private readonly options: GatewayOptions) {
    this.role = options.cluster?.kind;
    this.log = options.log ?? createLogger();
    this.metrics = new GatewayMetrics({ defaultMetrics: options.defaultMetrics ?? true });
    this.metrics.setStateSource(() => metricsSnapshot(this.rt));
    this.supervisor = new Supervisor({
      log: this.log,
      metrics: this.metrics,
      gatewayUrl: () => this.adminUrl,
      // A port taken by another process: the upstream goes out now, not after its next checks.
      onBlocked: (key) => void this.rt.entries.get(key)?.checker.runOnce(),
    });
    const deps = { runtime: () => this.rt, forwarder: this.forwarder, metrics: this.metrics, log: this.log };
    this.handler = new ProxyHandler(deps);
    this.upgrades = new UpgradeHandler(deps);
    const admin = createAdminApp({
      metrics: this.metrics,
      apiKey: () => this.rt.config.admin.apiKey,
      readiness: () => this.readiness(),
      status: () => this.status(),
      reload: (trigger) => this.reload(trigger),
      setDrained: (pool, id, drained) => this.setDrained(pool, id, drained),
    });
    this.registryApi = createRegistryApi({
      registry: () => this.registry,
      registryKey: () => this.rt.config.registry?.apiKey,
      adminKey: () => this.rt.config.admin.apiKey,
      hook: () => this.registryHook,
    });
    // No whole-request deadline (Node's default is 5 min): a large upload may take longer. Slow headers are still
    // cut by headersTimeout, and upstream deadlines are the pool's.
    this.server = http.createServer({ requestTimeout: 0 }, (req, res) => {
      // A worker has no admin endpoints (its primary serves them on admin.listen, which workers above 1 require).
      if (!this.adminServer && this.role !== "worker" && this.registry && isRegistryPath(req.url ?? ""))
        return this.registryApi(req, res);
      if (!this.adminServer && this.role !== "worker" && isGatewayPath(req.url ?? ""))
        return void admin(req, res);
      if (isServerOptions(req)) return answerServerOptions(deps, req, res);
      this.handler.handle(req, res);
    });
    this.server.on("upgrade", (req: http.IncomingMessage, socket: Socket, head: Buffer) => {
      this.tunnels.add(socket);
      socket.once("close", () => this.tunnels.delete(socket));
      this.upgrades.handle(req, socket, head);
    });
    this.server.on("connect", (req: http.IncomingMessage, socket: Socket) =>
      refuseConnect(deps, req, socket),
    );
    this.server.on("clientError", (_err, socket) => {
      if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n");
      else socket.destroy();
    });
    this.adminApp = admin;
  }

  /** Loads the config (throws ConfigError on a bad file), listens, and starts the first health round. */
  static async start(options: GatewayOptions): Promise<Gateway> {
    const config = options.config ?? (await loadConfigFile(options.configPath, options.env ?? process.env));
    const gw = new Gateway(options);
    gw.rt = gw.gated(
      new Runtime(config, gw.observer(), undefined, options.policies ?? gw.policiesFor(config)),
    );
    options.cluster?.prepare?.(gw.rt);
    gw.metrics.configLastSuccess.set(config.source.loadedAt.getTime() / 1000);
    if (gw.role !== "primary") await listen(gw.server, config.listen);
    if (gw.role === "worker") {
      // Health came with the config (prepare): the worker is ready the moment it listens.
      gw.firstRoundDone = true;
      gw.log.info("gateway_started", { listen: `${config.listen.host}:${portOf(gw.server)}` });
      return gw;
    }
    if (config.admin.listen) {
      const app = gw.adminApp;
      gw.adminServer = http.createServer((req, res) => {
        if (gw.registry && isRegistryPath(req.url ?? "")) return gw.registryApi(req, res);
        void app(req, res);
      });
      gw.adminServer.on("connect", (req: http.IncomingMessage, socket: Socket) =>
        refuseConnect(gw, req, socket),
      );
      await listen(gw.adminServer, config.admin.listen).catch((err: unknown) => {
        gw.server.close();
        throw err;
      });
    }
    // After listening (the allocator needs the actual ports) and before the first health round, so members that
    // the store already holds are checked in that round.
    if (config.registry) await gw.startRegistry(config);
    // Only once listening worked: a gateway that failed to start must not leave processes behind.
    await gw.supervisor.sync(config);
    if (options.watch) {
      gw.watcher = new ConfigWatcher({
        path: options.configPath,
        runningHash: () => gw.rt.config.source.hash,
        onChange: () => void gw.reload("watch"),
        onInSync: () => (gw.lastConfigError = null),
        log: gw.log,
      });
    }
    gw.log.info(gw.bootLine(), {});
    gw.log.info("gateway_started", {
      listen: `${config.listen.host}:${portOf(gw.server) || config.listen.port}`,
      config: config.source.path,
      pools: config.pools.length,
      routes: config.routes.length,
    });
    // gw.rt is read once the wait is over: a reload meanwhile has retired the first runtime, and a stop has
    // retired it for good (a retired runtime starts nothing).
    gw.booting = gw.supervisor
      .whenListening(5_000)
      .then(() => gw.rt.start())
      .then(() => {
        if (gw.stopping) return;
        gw.firstRoundDone = true;
        gw.log.info("ready", { routesWithoutUpstream: gw.rt.routesWithoutUpstream() });
        options.cluster?.changed?.();
      });
    return gw;
  }

  /** A managed upstream whose port another process holds is out, whatever that process answers to checks. */
  private gated(rt: Runtime): Runtime {
    for (const e of rt.entries.values()) e.checker.gate = () => this.supervisor.blocked(e.key);
    return rt;
  }

  /** The line a person starting the gateway reads first: where to send traffic, the dashboard and the metrics. */
  private bootLine(): string {
    const at = (server: http.Server, addr: ListenAddress) => {
      // A wildcard address is not a place to browse to; loopback on the same port is.
      const wild = addr.host === "0.0.0.0" || addr.host === "::";
      const host = wild ? "127.0.0.1" : addr.host.includes(":") ? `[${addr.host}]` : addr.host;
      // A cluster primary leaves the main port to its workers: the configured port is where they listen.
      const port = portOf(server) || addr.port;
      return { shown: `${addr.host.includes(":") ? `[${addr.host}]` : addr.host}:${port}`, host, port };
    };
    const main = at(this.server, this.config.listen);
    const admin =
      this.adminServer && this.config.admin.listen ? at(this.adminServer, this.config.admin.listen) : main;
    const base = `http://${admin.host}:${admin.port}`;
    return `listening on http://${main.shown} · admin and dashboard at ${base}/admin/ · metrics at ${base}/metrics`;
  }

  /** Resolves once the boot wait and the first health round are over (or were cut short by a stop). */
  whenBooted(): Promise<void> {
    return this.booting;
  }

  private membership(): MembershipSink {
    return {
      syncDiscovered: (pool, members) => this.rt.syncDiscovered(pool, members),
      memberHealth: (pool, id) =>
        this.rt.pools.get(pool)?.entries.find((e) => e.discovered && e.upstream.id === id)?.upstream.health,
    };
  }

  private async startRegistry(config: GatewayConfig): Promise<void> {
    const sink = this.membership();
    const registry = new Registry(config, {
      log: this.log,
      metrics: this.metrics,
      sink: () => sink,
      listeners: () =>
        [
          { host: config.listen.host, server: this.server },
          ...(this.adminServer && config.admin.listen
            ? [{ host: config.admin.listen.host, server: this.adminServer }]
            : []),
        ].map((l) => ({ host: l.host, port: portOf(l.server) })),
    });
    this.registry = registry;
    await registry.start();
  }

  get config(): GatewayConfig {
    return this.rt.config;
  }

  get runtime(): Runtime {
    return this.rt;
  }

  /** True once the first health round is done (a cluster primary sends its workers health only from then). */
  get healthKnown(): boolean {
    return this.firstRoundDone;
  }

  /** Base URL of the main listener, on loopback. */
  get url(): string {
    return `http://127.0.0.1:${portOf(this.server)}`;
  }

  /** Base URL of the admin listener, or the main one when there is none. */
  get adminUrl(): string {
    return this.adminServer ? `http://127.0.0.1:${portOf(this.adminServer)}` : this.url;
  }

  /**
   * The edge policies of a config, compiled per route. Policies that did not change keep their state (rate-limit
   * counters, JWKS, verified tokens) from the previous config's set.
   */
  private policiesFor(config: GatewayConfig): PolicyCompiler {
    const needsRedis = [...config.policies.values()].some((p) => p.rateLimit?.store === "redis");
    if (needsRedis && this.rateLimitRedis?.url !== config.redis.url) {
      this.rateLimitRedis?.client.disconnect();
      this.rateLimitRedis = { url: config.redis.url, client: redisClient(config.redis) };
    }
    const set = new PolicySet(
      config,
      {
        log: this.log,
        rejected: (route, policy, reason) => this.metrics.policyRejections.inc({ route, policy, reason }),
        ...(needsRedis ? { redis: this.rateLimitRedis!.client, redisPrefix: config.redis.keyPrefix } : {}),
      },
      this.policySet,
    );
    this.policySet = set;
    const names = config.registry?.policies ?? [];
    this.registryHook = names.length
      ? registryPolicyHook(set.chain("registry", names), new TrustedProxies(config.trustedProxies))
      : undefined;
    return (route) => set.compile(route);
  }

  private observer(): RuntimeObserver {
    return runtimeObserver({
      log: this.log,
      metrics: this.metrics,
      cluster: this.options.cluster,
      memberLeft: (e, then) => this.releaseWhenIdle(e, then),
    });
  }

  readiness(): { ready: boolean; reason?: string; routesWithoutUpstream?: string[] } {
    if (this.stopping) return { ready: false, reason: "shutting down" };
    if (!this.firstRoundDone) return { ready: false, reason: "first health-check round not done" };
    const notReady = this.options.cluster?.notReady?.();
    if (notReady) return { ready: false, reason: notReady };
    const missing = this.rt.routesWithoutUpstream();
    if (missing.length)
      return { ready: false, reason: "routes without an available upstream", routesWithoutUpstream: missing };
    return { ready: true };
  }

  status(): StatusReport {
    const report = {
      ...statusReport(this.rt, this.readiness().ready, (key) => this.supervisor.status(key)),
      lastConfigError: this.lastConfigError,
    };
    return this.options.cluster?.status?.(report) ?? report;
  }

  /** Runs one health round of every upstream now (the hook tests use instead of waiting for the interval). */
  async runHealthRound(): Promise<void> {
    await Promise.all([this.rt.runHealthRound(), this.registry?.runHealthRound()]);
    this.firstRoundDone = true;
  }

  setDrained(pool: string, id: string, drained: boolean): "ok" | "no_pool" | "no_upstream" {
    const p = this.rt.pools.get(pool);
    if (!p) return "no_pool";
    const e = p.entries.find((x) => x.upstream.id === id);
    if (!e) return "no_upstream";
    if (e.upstream.setDrained(drained)) {
      this.log.info(drained ? "upstream_drained" : "upstream_enabled", { pool, upstream: id });
      this.options.cluster?.changed?.();
    }
    return "ok";
  }

  /**
   * Loads the config file again and swaps it in: requests in flight finish on the old runtime, new ones use
   * the new one. A bad file changes nothing. Reloads run one at a time.
   */
  reload(trigger: ReloadTrigger): Promise<ReloadResult> {
    this.reloading = this.reloading.then(() => this.doReload(trigger));
    return this.reloading;
  }

  private async doReload(trigger: ReloadTrigger): Promise<ReloadResult> {
    let config: GatewayConfig;
    try {
      config = await loadConfigFile(this.options.configPath, this.options.env ?? process.env);
    } catch (err) {
      const errors = err instanceof ConfigError ? err.issues.map(formatIssue) : [String(err)];
      this.log.error("config_error", { trigger, file: this.options.configPath, errors });
      this.lastConfigError = {
        time: new Date().toISOString(),
        trigger,
        file: this.options.configPath,
        errors,
      };
      this.metrics.configReloads.inc({ result: "failure" });
      return { ok: false, errors };
    }
    return this.swapIn(config, trigger);
  }

  /** Swaps in a validated config; a cluster worker is handed its primary's this way. */
  async swapIn(config: GatewayConfig, trigger: ReloadTrigger): Promise<ReloadResult> {
    const old = this.rt;
    const changes = diffConfigs(old.config, config);
    const next = this.gated(
      new Runtime(config, this.observer(), old, this.options.policies ?? this.policiesFor(config)),
    );
    this.options.cluster?.prepare?.(next);
    const removed = old.retire();
    this.rt = next;
    const warnings = this.role === "worker" ? [] : await this.reconfigureRegistry(config);
    changes.warnings.push(...warnings);
    for (const e of removed) {
      const { metrics } = this;
      this.releaseWhenIdle(
        e,
        e.discovered ? () => void metrics.removeUpstream(e.pool, e.upstream.id) : undefined,
      );
    }
    if (this.role !== "worker") void next.start();
    // Not awaited: stopping a replaced process may take its stopGrace, and the reload is done without it.
    if (!this.stopping && this.role !== "worker") void this.supervisor.sync(config);
    this.lastConfigError = null;
    this.metrics.configReloads.inc({ result: "success" });
    this.metrics.configLastSuccess.set(config.source.loadedAt.getTime() / 1000);
    this.log.info("config_reload", { trigger, file: config.source.path, hash: config.source.hash, changes });
    this.options.cluster?.changed?.();
    return { ok: true, hash: config.source.hash, changes };
  }

  private async reconfigureRegistry(config: GatewayConfig): Promise<string[]> {
    if (this.registry && config.registry) return this.registry.configure(config);
    if (!this.registry && config.registry) {
      await this.startRegistry(config);
      return [];
    }
    if (this.registry && !config.registry) {
      const old = this.registry;
      this.registry = undefined;
      this.metrics.setRegistrySource(undefined);
      await old.close();
      return ["the registry section was removed: its API is gone and its allocations are forgotten"];
    }
    return [];
  }

  // A removed upstream's pooled connections close once its last request has finished.
  private releaseWhenIdle(e: UpstreamEntry, then?: () => void): void {
    const u = e.upstream;
    const release = () => {
      this.forwarder.releaseAgent(u);
      then?.();
    };
    if (u.inFlight === 0) return release();
    const timer = setInterval(() => {
      if (u.inFlight > 0 && !this.stopping) return;
      clearInterval(timer);
      release();
    }, 250);
    timer.unref();
  }

  /** Stops accepting, lets requests in flight finish (up to shutdownGrace), then closes everything. */
  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    // `stopping` is set: /readyz already answers 503. Load balancers (a Kubernetes Service) take a moment to notice,
    // so traffic is still served for drainDelay before the listeners close (shutdownGrace counts from then).
    // A worker is stopped by its primary once the primary's delay is over.
    const delay = this.role === "worker" ? 0 : this.rt.config.drainDelay;
    if (delay > 0) {
      this.log.info("drain_delay", { delayMs: delay, inflight: this.handler.inflight });
      await new Promise((r) => setTimeout(r, delay));
    }
    const grace = this.rt.config.shutdownGrace;
    this.log.info("shutdown_started", { inflight: this.handler.inflight, graceMs: grace });
    // Before the primary's own listeners and managed processes: the workers' requests in flight need upstreams.
    await this.options.cluster?.stopWorkers?.();
    this.watcher?.close();
    const closed = Promise.all([
      new Promise<void>((r) => this.server.close(() => r())),
      this.adminServer ? new Promise<void>((r) => this.adminServer!.close(() => r())) : undefined,
    ]);
    this.server.closeIdleConnections();
    this.adminServer?.closeIdleConnections();
    const drained =
      this.handler.inflight === 0 ? Promise.resolve(true) : once(this.handler, "idle").then(() => true);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((r) => (timer = setTimeout(() => r(false), grace)));
    const clean = await Promise.race([drained, timedOut]);
    clearTimeout(timer);
    this.server.closeAllConnections();
    this.adminServer?.closeAllConnections();
    for (const s of this.tunnels) s.destroy();
    await closed;
    await this.registry?.close();
    this.rateLimitRedis?.client.disconnect();
    this.rt.stop();
    this.forwarder.close();
    // Last: requests that were still finishing needed their upstreams.
    await this.supervisor.stopAll();
    this.log.info("shutdown_complete", { clean, inflight: this.handler.inflight });
  }
}
