// The HTTP side of the pipeline: a plain node:http handler whose exchanges read the body (kept for replay when
// small), forward through the breaker, retry what is safe to retry, and write one access line when they close.
import { EventEmitter } from "node:events";
import type { IncomingMessage, ServerResponse } from "node:http";
import { statusLabel } from "../metrics/metrics.ts";
import type { Upstream, Verdict } from "../pool/upstream.ts";
import { BodyTooLargeError, RequestBody } from "./body.ts";
import { writeAnswer } from "./errors.ts";
import { UpstreamError, type AttemptOutcome, type HttpAttempt } from "./forward.ts";
import { upstreamRequestHeaders } from "./headers.ts";
import type { HeaderBag } from "./phases.ts";
import { Exchange, type PipelineDeps } from "./pipeline.ts";

const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "PUT", "DELETE"]);

/** What an attempt's outcome counts as for the breaker: the pool's failure statuses, errors, or neither. */
function verdictOf(o: AttemptOutcome, failureStatuses: readonly number[]): Verdict {
  if (o.kind === "response") return failureStatuses.includes(o.status) ? "failure" : "success";
  if (o.kind === "aborted" || o.error.kind === "body_too_large") return "ignore";
  return "failure";
}

function outcomeLabel(o: AttemptOutcome): string | undefined {
  if (o.kind === "response") return statusLabel(o.status);
  if (o.kind === "aborted") return undefined;
  return o.error.kind === "response_timeout" || o.error.kind === "connect_timeout" ? "timeout" : "error";
}

/** One proxied HTTP request: driven by callbacks, with a promise only where its body is read or an attempt runs. */
class HttpExchange extends Exchange {
  /** The upstream whose in-flight count lasts until the response is sent; released when the response closes. */
  answering: Upstream | undefined = undefined;
  private body!: RequestBody;
  /** The upstream request's headers, built once: retries reuse them. */
  private headers: string[] = [];
  private current: Upstream | undefined;
  private attempt: HttpAttempt | undefined;
  /** The breaker's admission of the current attempt, handed back with its verdict. */
  private ticket: object | undefined;

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
    this.attempt?.clientClosed();
    if (this.answering) this.answering.inFlight--;
    // 499 (nginx's code) when the client left before any answer.
    this.record(this.res.headersSent ? this.res.statusCode : 499);
  }

  protected proceed(): void {
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
    if (this.gone) return;
    this.headers = upstreamRequestHeaders(this.req, {
      requestId: this.requestId,
      subject: this.subject,
      dropped: this.dropped,
      keptLength: this.body.keptLength,
    });
    this.plan.pool.budget.requestStarted();
    this.next();
  }

  private next(): void {
    const upstream = this.pick();
    if (!upstream) return this.exhausted();
    this.current = upstream;
    upstream.inFlight++;
    upstream.requests++;
    const breaker = upstream.breaker;
    if (breaker) {
      this.ticket = breaker.admit();
      // The breaker opened between pick and fire: nothing was sent, so this is a retriable refusal.
      if (!this.ticket) return this.onOutcome(REFUSED);
    }
    this.run();
  }

  private run(): void {
    const upstream = this.current!;
    const settings = this.plan.pool.pool.settings;
    const { forwarder } = this.deps;
    const body = this.body;
    this.attempt = forwarder.start(this.res, this.method, {
      target: upstream.url,
      agent: forwarder.agent(upstream, upstream.url),
      path: this.upstreamPath,
      headers: this.headers,
      body: body.replayable ? body.body() : body.open(),
      connectTimeout: settings.timeouts.connect,
      responseTimeout: settings.timeouts.response,
      requestId: this.requestId,
      withHead: this.policies?.response !== undefined,
      owner: this,
    });
    // The client is already gone: no attempt was made.
    if (!this.attempt) this.attemptOver(ABORTED);
  }

  /** How the attempt ended (AttemptOwner): through the breaker's verdict, then on to what follows. */
  attemptOver(outcome: AttemptOutcome): void {
    const ticket = this.ticket;
    if (ticket) {
      this.ticket = undefined;
      this.current!.breaker!.settle(
        ticket,
        verdictOf(outcome, this.plan.pool.pool.settings.breaker.failureStatuses),
      );
    }
    this.onOutcome(outcome);
  }

  private onOutcome(outcome: AttemptOutcome): void {
    const upstream = this.current!;
    const res = this.res;
    // A relayed response keeps its attempt: a client leaving mid-body must still cut the upstream request.
    if (outcome.kind !== "response") this.attempt = undefined;
    const label = outcomeLabel(outcome);
    if (label) this.deps.metrics.recordAttempt(this.pool, upstream.id, label);
    // A drained upstream's in-flight count must last until its response is fully sent: `finished` (on the
    // response's `close`, which has not fired while the response is neither ended nor destroyed) releases it,
    // without a listener of its own per request.
    if (outcome.kind === "response" && !res.writableEnded && !res.destroyed) this.answering = upstream;
    else upstream.inFlight--;
    this.attemptEnded();
    if (outcome.kind !== "failed") return;
    const err = outcome.error;
    // Nothing sent: any method may go elsewhere. Sent: only idempotent ones, and only with the body kept.
    const safe = err.requestSent
      ? IDEMPOTENT.has(this.method) && this.body.replayable
      : this.body.canReopen();
    const decision = this.decide(upstream, err, safe);
    if (decision.retry) this.next();
    else this.refuse(decision.code, decision.message);
  }
}

const ABORTED: AttemptOutcome = { kind: "aborted" };
const REFUSED: AttemptOutcome = {
  kind: "failed",
  error: new UpstreamError("connect", "GW_BREAKER_OPEN", "circuit breaker is open", false),
};

/** Emits `idle` when the last request in flight has finished (graceful shutdown waits for it). */
export class ProxyHandler extends EventEmitter<{ idle: [] }> {
  private active = 0;

  constructor(private readonly deps: PipelineDeps) {
    super();
    // Read at scrape time: nothing to count per request.
    deps.metrics.inflightSource(() => this.active);
  }

  /** Requests being proxied now (graceful shutdown waits for them). */
  get inflight(): number {
    return this.active;
  }

  handle(req: IncomingMessage, res: ServerResponse): void {
    const ex = new HttpExchange(this.deps, req, res);
    this.active++;
    // A closure, not a symbol on the response: a property added to Node's objects gives them a map its own code
    // then deoptimises on (attempt.ts).
    res.on("close", () => this.closed(ex));
    try {
      ex.start();
    } catch (err) {
      this.deps.log.error("request_failed", { requestId: ex.requestId, error: String(err) });
      ex.refuse("bad_gateway");
    }
  }

  private closed(ex: HttpExchange): void {
    ex.finished();
    if (--this.active === 0) this.emit("idle");
  }
}
