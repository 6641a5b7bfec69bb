// The one request pipeline of HTTP requests and WebSocket upgrades: normalize → route → policies (request phase)
// → pick (sticky) → forward → policies (response phase). Each transport says how it answers and how it forwards.
import type { IncomingMessage } from "node:http";
import type { Logger } from "../log/log.ts";
import type { GatewayMetrics } from "../metrics/metrics.ts";
import type { Upstream, Verdict } from "../pool/upstream.ts";
import { normalizeTarget } from "../router/normalize.ts";
import type { RouteRuntime, Runtime } from "../runtime/runtime.ts";
import { GATEWAY_ERRORS, errorBody, errorHeaders, type GatewayErrorCode } from "./errors.ts";
import { recordExchange, retryAfterSeconds, type ExchangeRecord } from "./exchange.ts";
import type { Forwarder, UpstreamError } from "./forward.ts";
import { clientAddress, requestIdOf } from "./headers.ts";
import type { HeaderBag, PolicyAnswer, PolicyExchange, RequestVerdict, RoutePolicies } from "./phases.ts";

export interface PipelineDeps {
  /** The runtime of the config in force; read once per request, so a reload never changes a request mid-way. */
  runtime(): Runtime;
  forwarder: Forwarder;
  metrics: GatewayMetrics;
  log: Logger;
}

/** What a failed attempt leads to: another attempt, or this answer. */
export type FailureDecision = { retry: true } | { retry: false; code: GatewayErrorCode; message?: string };

const CLIMBS_OUT = "Bad request path: it leaves the route's prefix once %2F or %5C is decoded.";
const RETRY: FailureDecision = { retry: true };

function isPromise<T>(v: T | Promise<T>): v is Promise<T> {
  return typeof (v as { then?: unknown } | undefined)?.then === "function";
}

/**
 * One exchange, from arrival to its access line: the object both transports extend. The shared phases live
 * here; a transport supplies `proceed` (forward, with its own retry loop), `send` (write an answer of the
 * gateway's own) and `gone` (the client left).
 */
export abstract class Exchange implements PolicyExchange, ExchangeRecord {
  readonly requestId: string;
  readonly method: string;
  readonly path: string;
  readonly client: string;
  readonly started = performance.now();
  subject: string | undefined = undefined;
  target: Upstream | undefined = undefined;
  policyState: unknown = undefined;
  route = "none";
  pool = "";
  upstream = "";
  attempts = 0;
  /** The route, its pool and its policies; set once routed. */
  protected plan!: RouteRuntime;
  protected policies: RoutePolicies | undefined = undefined;
  /** The path and query sent upstream. */
  protected upstreamPath = "";
  /** Request headers the route's policies keep from the upstream. */
  dropped: string[] | undefined = undefined;
  /** Upstreams this exchange already tried; made on the first retry only (most requests never retry). */
  private tried: Set<Upstream> | undefined = undefined;
  /** A retry granted by the pool's budget, held until its attempt is over. */
  private holdingRetry = false;

  constructor(
    protected readonly deps: PipelineDeps,
    readonly req: IncomingMessage,
    readonly websocket: boolean,
  ) {
    this.requestId = requestIdOf(req);
    this.method = req.method ?? "GET";
    const rawUrl = req.url ?? "";
    const q = rawUrl.indexOf("?");
    this.path = q < 0 ? rawUrl : rawUrl.slice(0, q);
    this.client = clientAddress(req, deps.runtime().trusted);
  }

  /** Continues once routed and past the request phase, with a pool that has something available. */
  protected abstract proceed(): void;
  /** Writes an answer of the gateway's own (the response phase has run on its headers). */
  protected abstract send(status: number, headers: HeaderBag, body: string): void;
  /** True once the client went away: nothing more is worth doing. */
  abstract get gone(): boolean;

  dropUpstreamHeader(name: string): void {
    (this.dropped ??= []).push(name.toLowerCase());
  }

  /** normalize → route → request phase → (pool check) → proceed. */
  start(): void {
    const rt = this.deps.runtime();
    const target = normalizeTarget(this.req.url ?? "");
    if (!target.ok) return this.refuse("bad_request", `Bad request path: ${target.reason}.`);
    const match = rt.router.match(this.req.headers.host, target.path);
    if (!match) return this.refuse("no_route");
    if (match.climbsOut) return this.refuse("bad_request", CLIMBS_OUT);
    const plan = rt.routes.get(match.route)!;
    this.plan = plan;
    this.route = match.route.id;
    this.pool = plan.pool.pool.name;
    this.upstreamPath = target.query ? `${match.upstreamPath}?${target.query}` : match.upstreamPath;
    const policies = plan.policies;
    this.policies = policies;
    if (policies?.request) {
      let verdict: RequestVerdict | Promise<RequestVerdict>;
      try {
        verdict = policies.request(this);
      } catch (err) {
        return this.internalError(err);
      }
      if (isPromise(verdict)) {
        verdict.then(
          (v) => this.afterRequestPhase(v),
          (err: unknown) => this.internalError(err),
        );
        return;
      }
      return this.afterRequestPhase(verdict);
    }
    this.routed();
  }

  private afterRequestPhase(verdict: RequestVerdict): void {
    if (this.gone) return;
    if (verdict) return this.answer(verdict);
    this.routed();
  }

  private routed(): void {
    if (this.plan.pool.pool.tier === -1) return this.noUpstream();
    this.proceed();
  }

  private internalError(err: unknown): void {
    this.deps.log.error("request_failed", { requestId: this.requestId, error: String(err) });
    this.refuse("bad_gateway");
  }

  /** The next upstream to try: the policies' preferred one when the pool honours it, else the balancer's. */
  protected pick(): Upstream | undefined {
    const pool = this.plan.pool.pool;
    const preferred = this.policies?.prefer?.(this, pool.upstreams);
    if (this.target && !this.tried) this.tried = new Set([this.target]);
    const upstream = pool.pick(this.tried, this.client, preferred);
    if (upstream) {
      this.tried?.add(upstream);
      this.attempts++;
      this.upstream = upstream.id;
      this.target = upstream;
    }
    return upstream;
  }

  /** Called when `pick` found nothing: no upstream at all, or every one failed. */
  protected exhausted(): void {
    this.attemptEnded();
    if (this.attempts === 0) return this.noUpstream();
    this.refuse("bad_gateway", "Every available upstream failed.");
  }

  /** Gives back a retry taken from the budget once its attempt is over. */
  protected attemptEnded(): void {
    if (!this.holdingRetry) return;
    this.holdingRetry = false;
    this.plan.pool.budget.retryEnded();
  }

  /**
   * After a failed attempt: passive health (a refused connection marks the upstream down), then retry when it
   * is safe (`safe`: the transport's word on what was sent), within `retries` and the pool's retry budget.
   */
  protected decide(upstream: Upstream, err: UpstreamError, safe: boolean): FailureDecision {
    const pr = this.plan.pool;
    if (err.code === "ECONNREFUSED") {
      pr.byUpstream.get(upstream)?.checker.markDown("connection refused (ECONNREFUSED) on a proxied request");
    }
    if (err.kind === "body_too_large") return { retry: false, code: "payload_too_large" };
    if (err.kind === "response_timeout") return { retry: false, code: "upstream_timeout" };
    const failed = `Upstream ${upstream.id} failed: ${err.code}`;
    if (!safe || this.attempts > pr.pool.settings.retries || this.gone) {
      return { retry: false, code: "bad_gateway", message: `${failed}.` };
    }
    if (!pr.budget.tryRetry())
      return { retry: false, code: "bad_gateway", message: `${failed}; retry budget spent.` };
    this.holdingRetry = true;
    this.deps.metrics.retries.inc({ pool: pr.pool.name });
    return RETRY;
  }

  /** Answers a gateway error from the catalog, through the response phase. */
  refuse(code: GatewayErrorCode, message?: string, extra?: HeaderBag): void {
    const body = errorBody(code, this.requestId, message);
    const headers = errorHeaders(code, this.requestId, body, extra);
    const status = GATEWAY_ERRORS[code].status;
    this.policies?.response?.(this, status, headers);
    this.send(status, headers, body);
  }

  /** A request phase's own answer (401, 429, a preflight's 204). */
  private answer(a: PolicyAnswer): void {
    if ("error" in a) return this.refuse(a.error, a.message, a.headers);
    const headers: HeaderBag = { ...a.headers, "content-length": 0, "x-request-id": this.requestId };
    this.policies?.response?.(this, a.status, headers);
    this.send(a.status, headers, "");
  }

  /** The response phase on an upstream's response head, before it is written to the client. */
  responseHead(status: number, headers: HeaderBag): void {
    this.policies?.response?.(this, status, headers);
  }

  protected noUpstream(): void {
    const pr = this.plan.pool;
    this.refuse("no_upstream", `No upstream is available in pool ${pr.pool.name}.`, {
      "retry-after": retryAfterSeconds(pr),
    });
  }

  /** The access line and request metrics, once the exchange is over. */
  protected record(status: number): void {
    recordExchange(this.deps, this, status);
  }

  /** The headers the policies asked of the upstream request. */
  protected get edits(): { subject: string | undefined; dropped: string[] | undefined } {
    return this;
  }

  /** One attempt through the upstream's breaker; `judge` says what counts as a failure. */
  protected static viaBreaker<T>(
    upstream: Upstream,
    run: () => Promise<T>,
    judge: (r: T) => Verdict,
  ): Promise<T> {
    return upstream.breaker ? upstream.breaker.run(run, judge) : run();
  }
}
