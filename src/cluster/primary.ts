// The cluster primary (`workers` above 1): runs the gateway's control side, forks the serving workers, keeps them
// in step over IPC, replaces those that die, and merges their metrics and breakers into one view.
import cluster, { type Worker } from "node:cluster";
import { extname } from "node:path";
import { fileURLToPath } from "node:url";
import type { GatewayConfig } from "../config/types.ts";
import type { Logger } from "../log/log.ts";
import { clusterMetricsText } from "../metrics/metrics.ts";
import { setupRateLimitPrimary } from "../policy/rate-limit.ts";
import { tierName, type Tier } from "../pool/pool.ts";
import { Gateway, type ClusterRole } from "../server/gateway.ts";
import { metricsSnapshot, type StatusReport } from "../server/status.ts";
import { RestartBackoff } from "./backoff.ts";
import {
  isWorkerMessage,
  message,
  type PoolView,
  type PrimaryMessage,
  type WorkerMessage,
} from "./messages.ts";
import { mergeViews, poolMembers, upstreamStates, workerTraffic } from "./state.ts";

export interface PrimaryOptions {
  configPath: string;
  config: GatewayConfig;
  log: Logger;
  watch?: boolean;
}

interface Slot {
  /** 1-based and stable across restarts: the `worker` field of log lines. */
  index: number;
  worker: Worker | undefined;
  pid: number | undefined;
  startedAt: number;
  serving: boolean;
  configSent: GatewayConfig | undefined;
  view: PoolView[] | undefined;
  backoff: RestartBackoff;
  restart: NodeJS.Timeout | undefined;
  gaveUp: boolean;
}

/** A worker slow to answer a metrics request is left out of that scrape rather than stalling it. */
const METRICS_TIMEOUT_MS = 2_000;

// tsx runs the sources (.ts), the build runs dist/ (.js): the worker entry sits beside this file either way.
function workerEntry(): string {
  const self = fileURLToPath(import.meta.url);
  return fileURLToPath(new URL(`./worker-main${extname(self)}`, import.meta.url));
}

/** Starts the primary's gateway (no traffic listener of its own) and its workers; resolves once it runs. */
export async function startPrimary(options: PrimaryOptions): Promise<Gateway> {
  return new ClusterPrimary(options).start();
}

class ClusterPrimary {
  private gw: Gateway | undefined;
  private readonly slots: Slot[];
  private seq = 0;
  private stopping = false;
  private broadcastQueued = false;
  private readonly probing = new Set<string>();
  private nextRequest = 0;
  private readonly metricsWaiters = new Map<number, (metrics: unknown[]) => void>();

  constructor(private readonly options: PrimaryOptions) {
    this.slots = Array.from({ length: options.config.workers }, (_, i) => ({
      index: i + 1,
      worker: undefined,
      pid: undefined,
      startedAt: 0,
      serving: false,
      configSent: undefined,
      view: undefined,
      backoff: new RestartBackoff(),
      restart: undefined,
      gaveUp: false,
    }));
  }

  async start(): Promise<Gateway> {
    // Advanced serialization: the config carries Dates, and structured clone is also cheaper for the metrics JSON.
    cluster.setupPrimary({ exec: workerEntry(), serialization: "advanced" });
    // `store: memory` rate limits count in the primary, so a limit is exact for the gateway, not per worker.
    setupRateLimitPrimary();
    const role: ClusterRole = {
      kind: "primary",
      changed: () => this.scheduleBroadcast(),
      stopWorkers: () => this.stopWorkers(),
      notReady: () => (this.serving() === 0 ? "no worker serving yet" : undefined),
      status: (report) => this.status(report),
    };
    const gw = await Gateway.start({
      configPath: this.options.configPath,
      config: this.options.config,
      log: this.options.log,
      cluster: role,
      watch: this.options.watch ?? false,
    });
    this.gw = gw;
    gw.metrics.setStateSource(() => mergeViews(metricsSnapshot(gw.runtime), this.views()));
    gw.metrics.setExporter(() => this.metricsText());
    gw.metrics.workers.set(0);
    for (const slot of this.slots) this.fork(slot);
    return gw;
  }

  private get log(): Logger {
    return this.options.log;
  }

  private serving(): number {
    return this.slots.filter((s) => s.serving).length;
  }

  private views(): PoolView[][] {
    return this.slots.flatMap((s) => (s.serving && s.view ? [s.view] : []));
  }

  private send(worker: Worker, m: PrimaryMessage): void {
    if (worker.isConnected()) worker.send(m);
  }

  private fork(slot: Slot): void {
    const gw = this.gw;
    if (!gw || this.stopping) return;
    slot.restart = undefined;
    const worker = cluster.fork({ GATEWAY_WORKER_ID: String(slot.index) });
    Object.assign(slot, {
      worker,
      pid: worker.process.pid,
      startedAt: Date.now(),
      serving: false,
      view: undefined,
      configSent: undefined,
    });
    // A send racing the worker's death fails with EPIPE; its exit is handled below.
    worker.on("error", () => undefined);
    worker.on("message", (m: unknown) => {
      if (isWorkerMessage(m)) this.onMessage(slot, worker, m);
    });
    worker.on("exit", (code: number | null, signal: NodeJS.Signals | null) =>
      this.onExit(slot, worker, code, signal),
    );
  }

  // The worker starts serving once it has both: the config at once, the health verdicts once the first round is done.
  private welcome(slot: Slot, worker: Worker): void {
    const gw = this.gw!;
    slot.configSent = gw.runtime.config;
    this.send(
      worker,
      message<PrimaryMessage>({ type: "gw:config", seq: ++this.seq, config: gw.runtime.config }),
    );
    if (gw.healthKnown) this.send(worker, this.stateMessage());
  }

  private onMessage(slot: Slot, worker: Worker, m: WorkerMessage): void {
    if (slot.worker !== worker) return;
    switch (m.type) {
      case "gw:log":
        // Whole batches of whole lines in one write each: never interleaved with another process's.
        process.stdout.write(m.text);
        return;
      case "gw:hello":
        this.welcome(slot, worker);
        return;
      case "gw:listening":
        slot.serving = true;
        this.gw?.metrics.workers.set(this.serving());
        this.log.info("worker_ready", { worker: slot.index, pid: slot.pid, port: m.port });
        return;
      case "gw:view":
        slot.view = m.pools;
        return;
      case "gw:refused":
        this.refused(m.key, m.reason);
        return;
      case "gw:metrics": {
        const done = this.metricsWaiters.get(m.id);
        this.metricsWaiters.delete(m.id);
        done?.(m.metrics);
        return;
      }
      case "gw:applied":
      case "gw:bye":
        return;
    }
  }

  private onExit(slot: Slot, worker: Worker, code: number | null, signal: NodeJS.Signals | null): void {
    if (slot.worker !== worker) return;
    const clean = this.stopping && code === 0;
    (clean ? this.log.info : this.log.warn)("worker_exit", {
      worker: slot.index,
      pid: slot.pid,
      code,
      signal,
    });
    Object.assign(slot, { worker: undefined, serving: false, view: undefined });
    this.gw?.metrics.workers.set(this.serving());
    if (this.stopping) return;
    const delay = slot.backoff.next(Date.now() - slot.startedAt);
    if (delay === undefined) {
      slot.gaveUp = true;
      this.log.error("worker_crash_loop", { worker: slot.index, message: "not restarted again" });
      if (this.slots.every((s) => s.gaveUp)) {
        // Nothing left to serve: exit non-zero so a supervisor (systemd, Kubernetes) restarts the whole gateway.
        this.log.error("no_workers", { message: "every worker is crash-looping" });
        void this.gw?.stop().then(() => {
          this.log.flush();
          process.exit(1);
        });
      }
      return;
    }
    this.log.info("worker_restart", { worker: slot.index, delayMs: delay });
    slot.restart = setTimeout(() => this.fork(slot), delay);
  }

  // Several changes in one turn (a health round, a reload) become one message per worker.
  private scheduleBroadcast(): void {
    if (this.broadcastQueued) return;
    this.broadcastQueued = true;
    setImmediate(() => {
      this.broadcastQueued = false;
      this.broadcast();
    });
  }

  private broadcast(): void {
    const gw = this.gw;
    if (!gw || !gw.healthKnown) return;
    const rt = gw.runtime;
    for (const slot of this.slots) {
      const w = slot.worker;
      // Not welcomed yet: it gets the current config and state when it says hello.
      if (w && slot.configSent && slot.configSent !== rt.config) {
        slot.configSent = rt.config;
        this.send(w, message<PrimaryMessage>({ type: "gw:config", seq: ++this.seq, config: rt.config }));
      }
    }
    // One sequence number per broadcast: every worker logs the same one when it has applied it.
    const state = this.stateMessage();
    for (const slot of this.slots) if (slot.worker && slot.configSent) this.send(slot.worker, state);
    this.log.debug("cluster_broadcast", { seq: this.seq, workers: this.serving() });
  }

  private stateMessage(): PrimaryMessage {
    const rt = this.gw!.runtime;
    return message<PrimaryMessage>({
      type: "gw:state",
      seq: ++this.seq,
      members: poolMembers(rt),
      upstreams: upstreamStates(rt),
    });
  }

  /**
   * A worker's proxied request was refused: the same rule as in one process (out at once, back after
   * `healthyThreshold` passing checks), decided here so every worker follows, and a probe now rather than at the
   * next interval.
   */
  private refused(key: string, reason: string): void {
    const e = this.gw?.runtime.entries.get(key);
    if (!e || !e.checker.settings.enabled) return;
    e.checker.markDown(reason);
    if (this.probing.has(key)) return;
    this.probing.add(key);
    void e.checker.runOnce().finally(() => this.probing.delete(key));
  }

  private requestMetrics(worker: Worker): Promise<unknown[]> {
    const id = ++this.nextRequest;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.metricsWaiters.delete(id);
        resolve([]);
      }, METRICS_TIMEOUT_MS);
      this.metricsWaiters.set(id, (metrics) => {
        clearTimeout(timer);
        resolve(metrics);
      });
      this.send(worker, message<PrimaryMessage>({ type: "gw:metrics-request", id }));
    });
  }

  private async metricsText(): Promise<string> {
    const live = this.slots.flatMap((s) => (s.serving && s.worker ? [s.worker] : []));
    const replies = await Promise.all(live.map((w) => this.requestMetrics(w)));
    return clusterMetricsText(this.gw!.metrics, replies);
  }

  /** Each worker's breakers and tiers; the pools show the worst of them, as the metrics do. */
  private status(report: StatusReport): StatusReport {
    const views = this.views();
    const merged = mergeViews(metricsSnapshot(this.gw!.runtime), views);
    const pools = report.pools.map((p) => {
      const m = merged.pools.find((x) => x.name === p.name);
      if (!m) return p;
      const tier = m.tier as Tier;
      return {
        ...p,
        activeTier: tier,
        activeTierName: tierName(tier),
        // The workers proxy, so their counts are the traffic (reported within a second, see worker.ts).
        upstreams: p.upstreams.map((u) => ({
          ...u,
          ...workerTraffic(views, p.name, u.id),
          breaker: m.upstreams.find((x) => x.id === u.id)?.breaker ?? u.breaker,
        })),
      };
    });
    const workers = this.slots.map((s) => ({
      worker: s.index,
      pid: s.worker ? (s.pid ?? null) : null,
      serving: s.serving,
      pools: (s.view ?? []).map((v) => ({ name: v.name, activeTier: v.tier, breakers: v.breakers })),
    }));
    return { ...report, pools, workers };
  }

  /** Tells every worker to drain, waits for them (up to their grace plus a margin), then kills what is left. */
  private async stopWorkers(): Promise<void> {
    this.stopping = true;
    for (const s of this.slots) clearTimeout(s.restart);
    const grace = (this.gw?.runtime.config.shutdownGrace ?? 0) + 5_000;
    const alive = this.slots.flatMap((s) => (s.worker ? [s.worker] : []));
    await Promise.all(
      alive.map(
        (w) =>
          new Promise<void>((resolve) => {
            if (w.isDead()) return resolve();
            const kill = setTimeout(() => w.process.kill("SIGKILL"), grace);
            w.once("exit", () => {
              clearTimeout(kill);
              resolve();
            });
            this.send(w, message<PrimaryMessage>({ type: "gw:stop" }));
          }),
      ),
    );
  }
}
