// The HTTP side of the pipeline: a plain node:http handler whose exchanges read the body (kept for replay when
// small), forward through the breaker, retry what is safe to retry, and write one access line when they close.
import { EventEmitter } from "node:events";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Upstream, Verdict } from "../pool/upstream.ts";
import { BodyTooLargeError, RequestBody } from "./body.ts";
import { writeAnswer } from "./errors.ts";
import { UpstreamError, type AttemptOutcome } from "./forward.ts";
import { prepareUpstreamHeaders } from "./headers.ts";
import type { HeaderBag } from "./phases.ts";
import { Exchange, type PipelineDeps } from "./pipeline.ts";

const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "PUT", "DELETE"]);

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

/** One proxied HTTP request. */
class HttpExchange extends Exchange {
  /** The upstream whose in-flight count lasts until the response is sent; released when the response closes. */
  answering: Upstream | undefined = undefined;
  private body!: RequestBody;

  constructor(
    deps: PipelineDeps,
    req: IncomingMessage,
    readonly res: ServerResponse,
  ) {
    super(deps, req, false);
  }

  get gone(): boolean {
    return this.res.destroyed;
  }

  protected send(status: number, headers: HeaderBag, body: string): void {
    writeAnswer(this.res, status, headers, body);
  }

  /** Called once the response closed, whatever happened. */
  finished(): void {
    if (this.answering) this.answering.inFlight--;
    // 499 (nginx's code) when the client left before any answer.
    this.record(this.res.headersSent ? this.res.statusCode : 499);
  }

  protected proceed(): void {
    prepareUpstreamHeaders(this.req, this.requestId, this.edits);
    const maxBodySize = this.plan.pool.pool.settings.maxBodySize;
    if (!RequestBody.has(this.req)) {
      this.body = RequestBody.none(this.req, maxBodySize);
      this.forwardAll();
      return;
    }
    RequestBody.read(this.req, maxBodySize).then(
      (body) => {
        this.body = body;
        this.forwardAll();
      },
      (err: unknown) => {
        if (err instanceof BodyTooLargeError) this.refuse("payload_too_large");
        // else the client went away while sending its body
      },
    );
  }

  private forwardAll(): void {
    this.plan.pool.budget.requestStarted();
    this.attempts_().catch((err: unknown) => {
      this.deps.log.error("request_failed", { requestId: this.requestId, error: String(err) });
      this.refuse("bad_gateway");
    });
  }

  private async attempts_(): Promise<void> {
    for (;;) {
      const upstream = this.pick();
      if (!upstream) return this.exhausted();
      const outcome = await this.attempt(upstream);
      this.attemptEnded();
      if (outcome.kind !== "failed") return;
      const err = outcome.error;
      // Nothing sent: any method may go elsewhere. Sent: only idempotent ones, and only with the body kept.
      const safe = err.requestSent
        ? IDEMPOTENT.has(this.method) && this.body.replayable
        : this.body.canReopen();
      const next = this.decide(upstream, err, safe);
      if (!next.retry) return this.refuse(next.code, next.message);
    }
  }

  private async attempt(upstream: Upstream): Promise<AttemptOutcome> {
    const settings = this.plan.pool.pool.settings;
    const { forwarder, metrics } = this.deps;
    const res = this.res;
    upstream.inFlight++;
    upstream.requests++;
    let outcome: AttemptOutcome;
    try {
      const run = () =>
        forwarder.forward(this.req, res, {
          target: upstream.url,
          agent: forwarder.agent(upstream, upstream.url),
          path: this.upstreamPath,
          body: this.body.open(),
          connectTimeout: settings.timeouts.connect,
          responseTimeout: settings.timeouts.response,
          onHead: this.policies?.response ? this.onResponseHead : undefined,
        });
      outcome = await Exchange.viaBreaker(upstream, run, judge(settings.breaker.failureStatuses));
    } catch (err) {
      // The breaker opened between pick and fire: nothing was sent, so this is a retriable refusal.
      const message = err instanceof Error ? err.message : String(err);
      outcome = { kind: "failed", error: new UpstreamError("connect", "GW_BREAKER_OPEN", message, false) };
    }
    const label = outcomeLabel(outcome);
    if (label) metrics.upstreamRequests.inc({ pool: this.pool, upstream: upstream.id, outcome: label });
    // A drained upstream's in-flight count must last until its response is fully sent: `finished` (on the
    // response's `close`, which has not fired while the response is neither ended nor destroyed) releases it,
    // without a listener of its own per request.
    if (outcome.kind === "response" && !res.writableEnded && !res.destroyed) this.answering = upstream;
    else upstream.inFlight--;
    return outcome;
  }
}

/** Emits `idle` when the last request in flight has finished (graceful shutdown waits for it). */
export class ProxyHandler extends EventEmitter<{ idle: [] }> {
  private active = 0;

  constructor(private readonly deps: PipelineDeps) {
    super();
  }

  /** Requests being proxied now (graceful shutdown waits for them). */
  get inflight(): number {
    return this.active;
  }

  handle(req: IncomingMessage, res: ServerResponse): void {
    const ex = new HttpExchange(this.deps, req, res);
    res.setHeader("x-request-id", ex.requestId);
    this.active++;
    this.deps.metrics.inflight.inc();
    res.once("close", () => {
      ex.finished();
      if (--this.active === 0) this.emit("idle");
      this.deps.metrics.inflight.dec();
    });
    try {
      ex.start();
    } catch (err) {
      this.deps.log.error("request_failed", { requestId: ex.requestId, error: String(err) });
      ex.refuse("bad_gateway");
    }
  }
}
