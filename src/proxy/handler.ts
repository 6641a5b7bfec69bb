// The data plane: a plain node:http handler that takes each request through normalize → route → pick → breaker →
// forward, retries what is safe to retry, answers failures from the error catalog and writes one access line.
import { EventEmitter } from "node:events";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "../log/log.ts";
import type { GatewayMetrics } from "../metrics/metrics.ts";
import type { Upstream, Verdict } from "../pool/upstream.ts";
import { normalizeTarget } from "../router/normalize.ts";
import type { PoolRuntime, Runtime } from "../runtime/runtime.ts";
import { BodyTooLargeError, RequestBody } from "./body.ts";
import { sendError, type GatewayErrorCode } from "./errors.ts";
import { newExchange, recordExchange, retryAfterSeconds, type Exchange } from "./exchange.ts";
import { UpstreamError, type AttemptOutcome, type Forwarder } from "./forward.ts";
import { clientAddress, prepareUpstreamHeaders } from "./headers.ts";

const CLIMBS_OUT = "Bad request path: it leaves the route's prefix once %2F or %5C is decoded.";
const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "PUT", "DELETE"]);

export interface HandlerDeps {
  /** The runtime of the config in force; read once per request, so a reload never changes a request mid-way. */
  runtime(): Runtime;
  forwarder: Forwarder;
  metrics: GatewayMetrics;
  log: Logger;
}

// One judge per failure-status list (a pool's settings), not a closure per attempt.
const judges = new WeakMap<readonly number[], (o: AttemptOutcome) => Verdict>();

function judge(failureStatuses: readonly number[]): (o: AttemptOutcome) => Verdict {
  let j = judges.get(failureStatuses);
  if (!j) {
    j = (o: AttemptOutcome): Verdict => {
      if (o.kind === "response") return failureStatuses.includes(o.status) ? "failure" : "success";
      if (o.kind === "aborted" || o.error.kind === "body_too_large") return "ignore";
      return "failure";
    };
    judges.set(failureStatuses, j);
  }
  return j;
}

function outcomeLabel(o: AttemptOutcome): string | undefined {
  if (o.kind === "response") return String(o.status);
  if (o.kind === "aborted") return undefined;
  return o.error.kind === "response_timeout" || o.error.kind === "connect_timeout" ? "timeout" : "error";
}

/** Emits `idle` when the last request in flight has finished (graceful shutdown waits for it). */
export class ProxyHandler extends EventEmitter<{ idle: [] }> {
  private active = 0;

  constructor(private readonly deps: HandlerDeps) {
    super();
  }

  /** Requests being proxied now (graceful shutdown waits for them). */
  get inflight(): number {
    return this.active;
  }

  handle(req: IncomingMessage, res: ServerResponse): void {
    const ex = newExchange(req);
    res.setHeader("x-request-id", ex.requestId);
    this.active++;
    this.deps.metrics.inflight.inc();
    res.once("close", () => this.finished(res, ex));
    this.route(req, res, ex).catch((err: unknown) => {
      this.deps.log.error("request_failed", { requestId: ex.requestId, error: String(err) });
      sendError(res, "bad_gateway", ex.requestId);
    });
  }

  private finished(res: ServerResponse, ex: Exchange): void {
    if (ex.answering) ex.answering.inFlight--;
    if (--this.active === 0) this.emit("idle");
    this.deps.metrics.inflight.dec();
    // 499 (nginx's code) when the client left before any answer.
    recordExchange(this.deps, ex, res.headersSent ? res.statusCode : 499);
  }

  private async route(req: IncomingMessage, res: ServerResponse, ex: Exchange): Promise<void> {
    const rt = this.deps.runtime();
    const target = normalizeTarget(req.url ?? "");
    if (!target.ok) return this.fail(res, ex, "bad_request", `Bad request path: ${target.reason}.`);
    const match = rt.router.match(req.headers.host, target.path);
    if (!match) return this.fail(res, ex, "no_route");
    if (match.climbsOut) return this.fail(res, ex, "bad_request", CLIMBS_OUT);
    const pr = rt.pools.get(match.route.pool)!;
    ex.route = match.route.id;
    ex.pool = pr.pool.name;
    if (pr.pool.tier === -1) return this.noUpstream(res, ex, pr);

    prepareUpstreamHeaders(req, ex.requestId);
    const maxBodySize = pr.pool.settings.maxBodySize;
    let body: RequestBody;
    try {
      body = RequestBody.has(req)
        ? await RequestBody.read(req, maxBodySize)
        : RequestBody.none(req, maxBodySize);
    } catch (err) {
      if (err instanceof BodyTooLargeError) return this.fail(res, ex, "payload_too_large");
      return; // the client went away while sending its body
    }
    const path = target.query ? `${match.upstreamPath}?${target.query}` : match.upstreamPath;
    pr.budget.requestStarted();
    await this.attempts(req, res, ex, pr, body, path);
  }

  private async attempts(
    req: IncomingMessage,
    res: ServerResponse,
    ex: Exchange,
    pr: PoolRuntime,
    body: RequestBody,
    path: string,
  ): Promise<void> {
    const { pool } = pr;
    const settings = pool.settings;
    const tried = new Set<Upstream>();
    const clientKey = clientAddress(req);
    // A retry granted by the budget is held until its attempt is over.
    let holdingRetry = false;
    for (;;) {
      const upstream = pool.pick(tried, clientKey);
      if (!upstream) {
        if (holdingRetry) pr.budget.retryEnded();
        if (tried.size === 0) return this.noUpstream(res, ex, pr);
        return this.fail(res, ex, "bad_gateway", "Every available upstream failed.");
      }
      tried.add(upstream);
      ex.attempts++;
      ex.upstream = upstream.id;
      const outcome = await this.attempt(req, res, ex, pr, upstream, body, path);
      if (holdingRetry) pr.budget.retryEnded();
      if (outcome.kind !== "failed") return;
      const err = outcome.error;
      if (err.code === "ECONNREFUSED") {
        pr.byUpstream
          .get(upstream)
          ?.checker.markDown("connection refused (ECONNREFUSED) on a proxied request");
      }
      if (err.kind === "body_too_large") return this.fail(res, ex, "payload_too_large");
      if (err.kind === "response_timeout") return this.fail(res, ex, "upstream_timeout");
      // Nothing sent: any method may go elsewhere. Sent: only idempotent ones, and only with the body kept.
      const safe = err.requestSent ? IDEMPOTENT.has(ex.method) && body.replayable : body.canReopen();
      if (!safe || ex.attempts > settings.retries || res.destroyed) {
        return this.fail(res, ex, "bad_gateway", `Upstream ${upstream.id} failed: ${err.code}.`);
      }
      if (!pr.budget.tryRetry()) {
        const message = `Upstream ${upstream.id} failed: ${err.code}; retry budget spent.`;
        return this.fail(res, ex, "bad_gateway", message);
      }
      holdingRetry = true;
      this.deps.metrics.retries.inc({ pool: pool.name });
    }
  }

  private async attempt(
    req: IncomingMessage,
    res: ServerResponse,
    ex: Exchange,
    pr: PoolRuntime,
    upstream: Upstream,
    body: RequestBody,
    path: string,
  ): Promise<AttemptOutcome> {
    const settings = pr.pool.settings;
    const { forwarder, metrics } = this.deps;
    upstream.inFlight++;
    upstream.requests++;
    let outcome: AttemptOutcome;
    try {
      const run = () =>
        forwarder.forward(req, res, {
          target: upstream.url,
          agent: forwarder.agent(upstream, upstream.url),
          path,
          body: body.open(),
          connectTimeout: settings.timeouts.connect,
          responseTimeout: settings.timeouts.response,
        });
      outcome = upstream.breaker
        ? await upstream.breaker.run(run, judge(settings.breaker.failureStatuses))
        : await run();
    } catch (err) {
      // The breaker opened between pick and fire: nothing was sent, so this is a retriable refusal.
      const message = err instanceof Error ? err.message : String(err);
      outcome = { kind: "failed", error: new UpstreamError("connect", "GW_BREAKER_OPEN", message, false) };
    }
    const label = outcomeLabel(outcome);
    if (label) metrics.upstreamRequests.inc({ pool: pr.pool.name, upstream: upstream.id, outcome: label });
    // A drained upstream's in-flight count must last until its response is fully sent: `finished` (on the
    // response's `close`, which has not fired while the response is neither ended nor destroyed) releases it,
    // without a listener of its own per request.
    if (outcome.kind === "response" && !res.writableEnded && !res.destroyed) ex.answering = upstream;
    else upstream.inFlight--;
    return outcome;
  }

  private noUpstream(res: ServerResponse, ex: Exchange, pr: PoolRuntime): void {
    this.fail(res, ex, "no_upstream", `No upstream is available in pool ${pr.pool.name}.`, {
      "retry-after": retryAfterSeconds(pr),
    });
  }

  private fail(
    res: ServerResponse,
    ex: Exchange,
    code: GatewayErrorCode,
    message?: string,
    headers?: Record<string, string>,
  ): void {
    sendError(res, code, ex.requestId, { ...(message ? { message } : {}), ...(headers ? { headers } : {}) });
  }
}
