// Active health checks of one upstream: timed HTTP probes, hysteresis, and status written through one seam.
import { EventEmitter } from "node:events";
import type http from "node:http";
import type { HealthCheckSettings, StatusRanges } from "../config/types.ts";
import { upstreamAgent, upstreamRequest } from "../net/upstream-http.ts";
import { INITIAL, observe, type HysteresisState } from "./hysteresis.ts";

/** The one-method seam between checkers and pools (Traefik's SetStatus): returns whether the state changed. */
export interface StatusSetter {
  setStatus(up: boolean, reason: string): boolean;
}

export interface ProbeResult {
  ok: boolean;
  time: Date;
  latencyMs: number;
  status?: number;
  error?: string;
}

export interface HealthChange {
  /** The state before: undefined when this was the first check. */
  from: boolean | undefined;
  up: boolean;
  reason: string;
}

function inRanges(status: number, ranges: StatusRanges): boolean {
  return ranges.some(([lo, hi]) => status >= lo && status <= hi);
}

/** Probes one upstream on its own timer. Settings are fixed at construction; a reload builds a new checker. */
export class HealthChecker extends EventEmitter<{ result: [ProbeResult]; change: [HealthChange] }> {
  readonly settings: HealthCheckSettings;
  private readonly probeUrl: URL;
  /** The probe's headers: a flat list, as proxied requests send them (net/upstream-http.ts). */
  private readonly probeHeaders: string[];
  /** A connection per probe (a check also proves that new connections work), in the proxy's agent class. */
  private readonly agent: http.Agent;
  private readonly target: StatusSetter;
  private hysteresis: HysteresisState;
  private lastResult: ProbeResult | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  /** Once stopped (reload, shutdown), a probe still under way must not write a result it caused itself. */
  private stopped = false;
  private inFlight: http.ClientRequest | undefined;
  /**
   * Set by the gateway for managed upstreams: a reason here (its port is held by another process) fails every
   * check without probing, since whatever answers on that port is not the upstream.
   */
  gate: (() => string | undefined) | undefined;

  constructor(base: URL, settings: HealthCheckSettings, target: StatusSetter, carried?: HealthCheckerState) {
    super();
    this.settings = settings;
    this.probeUrl = new URL(settings.path, base);
    this.probeHeaders = ["host", this.probeUrl.host, "user-agent", "gateway-health-check"];
    // What http.get(url) did with credentials in the upstream's URL; Node adds none to a flat header list.
    const { username, password } = this.probeUrl;
    if (username || password) {
      const basic = `${decodeURIComponent(username)}:${decodeURIComponent(password)}`;
      this.probeHeaders.push("authorization", `Basic ${Buffer.from(basic).toString("base64")}`);
    }
    this.agent = upstreamAgent(this.probeUrl, false);
    this.target = target;
    this.hysteresis = carried?.hysteresis ?? INITIAL;
    this.lastResult = carried?.last;
  }

  /** What a reloaded checker for the same upstream carries over. */
  state(): HealthCheckerState {
    return { hysteresis: this.hysteresis, ...(this.lastResult ? { last: this.lastResult } : {}) };
  }

  get last(): ProbeResult | undefined {
    return this.lastResult;
  }

  get passes(): number {
    return this.hysteresis.passes;
  }

  get fails(): number {
    return this.hysteresis.fails;
  }

  /** Whether its probes are scheduled (start() was called and stop() was not). */
  get started(): boolean {
    return this.running;
  }

  /** Whether anything of this checker is live: probes scheduled, or one under way. */
  get active(): boolean {
    return this.running || this.timer !== undefined || this.inFlight !== undefined;
  }

  /**
   * Schedules probes every `interval` plus up to 10% jitter, so many checkers do not fire together. A stopped
   * checker never starts again: whatever still holds it (a retired runtime finishing its first round) cannot
   * bring back the probes of an upstream that left the config.
   */
  start(): void {
    if (this.running || this.stopped || !this.settings.enabled) return;
    this.running = true;
    this.schedule();
  }

  stop(): void {
    this.running = false;
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.inFlight?.destroy();
  }

  private schedule(): void {
    if (!this.running) return;
    const delay = this.settings.interval * (1 + Math.random() * 0.1);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.runOnce().then(() => this.schedule());
    }, delay);
    this.timer.unref();
  }

  /**
   * Runs one probe now and applies its result; the "run one health round now" hook for tests and boot. A stopped
   * checker probes nothing and resolves undefined.
   */
  async runOnce(): Promise<ProbeResult | undefined> {
    if (this.stopped) return undefined;
    const blocked = this.gate?.();
    if (blocked !== undefined) return this.holdDown(blocked);
    const result = await this.probe();
    if (this.stopped) return result;
    this.lastResult = result;
    this.emit("result", result);
    const from = this.hysteresis.healthy;
    const { state, changed } = observe(this.hysteresis, result.ok, this.settings);
    this.hysteresis = state;
    if (changed && state.healthy !== undefined) {
      const reason = state.healthy
        ? `${state.passes} passed check${state.passes === 1 ? "" : "s"}`
        : `${state.fails} failed check${state.fails === 1 ? "" : "s"}: ${result.error ?? `status ${result.status}`}`;
      if (this.target.setStatus(state.healthy, reason))
        this.emit("change", { from, up: state.healthy, reason });
    }
    return result;
  }

  /** Out at once with `reason`, no probe: the result of a gated check. */
  private holdDown(reason: string): ProbeResult {
    const result: ProbeResult = { ok: false, time: new Date(), latencyMs: 0, error: reason };
    this.lastResult = result;
    this.emit("result", result);
    const from = this.hysteresis.healthy;
    this.hysteresis = { healthy: false, passes: 0, fails: this.hysteresis.fails + 1 };
    if (this.target.setStatus(false, reason)) this.emit("change", { from, up: false, reason });
    return result;
  }

  /**
   * A passive observation that leaves no doubt, such as a refused connection: the upstream is out at once
   * (nginx's max_fails=1, HAProxy's observe layer4) and comes back after `healthyThreshold` passing checks.
   * Ignored when active checks are off, since nothing would bring the upstream back.
   */
  markDown(reason: string): void {
    if (this.stopped || !this.settings.enabled || this.hysteresis.healthy === false) return;
    const from = this.hysteresis.healthy;
    this.hysteresis = { ...this.hysteresis, healthy: false, passes: 0 };
    if (this.target.setStatus(false, reason)) this.emit("change", { from, up: false, reason });
  }

  /**
   * Takes a verdict made elsewhere: a cluster worker runs no probes and follows its primary's checks. The hysteresis
   * follows too, so `markDown` still acts on the next refused connection after the primary saw the upstream recover.
   */
  adopt(up: boolean, reason: string): void {
    this.hysteresis = { healthy: up, passes: 0, fails: 0 };
    this.target.setStatus(up, reason);
  }

  private probe(): Promise<ProbeResult> {
    const started = performance.now();
    const time = new Date();
    return new Promise((resolve) => {
      let done = false;
      const finish = (r: Omit<ProbeResult, "time" | "latencyMs">) => {
        if (done) return;
        done = true;
        clearTimeout(deadline);
        this.inFlight = undefined;
        resolve({ ...r, time, latencyMs: Math.round((performance.now() - started) * 10) / 10 });
      };
      const url = this.probeUrl;
      const req = upstreamRequest(url, "GET", url.pathname + url.search, this.probeHeaders, this.agent);
      req.on("response", (res) => {
        const status = res.statusCode ?? 0;
        res.resume();
        const ok = inRanges(status, this.settings.expectStatus);
        finish(ok ? { ok, status } : { ok, status, error: `status ${status}` });
        req.destroy();
      });
      req.end();
      this.inFlight = req;
      const deadline = setTimeout(() => {
        finish({ ok: false, error: `timeout after ${this.settings.timeout}ms` });
        req.destroy();
      }, this.settings.timeout);
      deadline.unref();
      req.on("error", (err: NodeJS.ErrnoException) => finish({ ok: false, error: err.code ?? err.message }));
    });
  }
}

export interface HealthCheckerState {
  hysteresis: HysteresisState;
  last?: ProbeResult;
}
