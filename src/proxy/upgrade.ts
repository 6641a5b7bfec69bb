// The WebSocket side of the pipeline: upgrades take the same phases as requests, retry a connect that failed
// before anything was sent, tunnel through the upstream's breaker, and are accounted when the client socket closes.
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import type { Upstream, Verdict } from "../pool/upstream.ts";
import { rawResponse } from "./errors.ts";
import { UpstreamError } from "./forward.ts";
import { prepareUpgradeHeaders } from "./headers.ts";
import type { HeaderBag } from "./phases.ts";
import { Exchange, type PipelineDeps } from "./pipeline.ts";

type WsResult = "upgraded" | number | UpstreamError;

const judgeWs = (r: WsResult): Verdict => (r instanceof UpstreamError ? "failure" : "success");

/** One WebSocket upgrade, from the request to the end of its tunnel. */
class WsExchange extends Exchange {
  /** 499 (as for HTTP) until the client has been answered something; 101 once switched. */
  private status = 499;

  constructor(
    deps: PipelineDeps,
    req: IncomingMessage,
    private readonly socket: Duplex,
    private readonly head: Buffer,
  ) {
    super(deps, req, true);
    socket.on("error", () => socket.destroy());
    socket.once("close", () => this.record(this.status));
  }

  get gone(): boolean {
    return this.socket.destroyed;
  }

  protected send(status: number, headers: HeaderBag, body: string): void {
    this.status = status;
    if (!this.socket.destroyed) this.socket.end(rawResponse(status, headers, body));
  }

  protected proceed(): void {
    prepareUpgradeHeaders(this.req, this.requestId, this.edits);
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
      const result = await this.attempt(upstream);
      this.attemptEnded();
      if (result === "upgraded") {
        this.status = 101;
        return;
      }
      if (typeof result === "number") {
        this.status = result;
        return;
      }
      // Answered by onFailure already: something was sent, so no retry is possible.
      if (result.requestSent) return;
      const next = this.decide(upstream, result, true);
      if (!next.retry) return this.refuse(next.code, next.message);
    }
  }

  private async attempt(upstream: Upstream): Promise<WsResult> {
    const settings = this.plan.pool.pool.settings;
    const socket = this.socket;
    upstream.inFlight++;
    upstream.requests++;
    const run = () =>
      this.deps.forwarder.ws(this.req, socket, this.head, {
        target: upstream.url,
        path: this.upstreamPath,
        connectTimeout: settings.timeouts.connect,
        timeout: settings.timeouts.response,
        onHead: this.policies?.response ? (s, h) => this.responseHead(s, h) : undefined,
        onFailure: (err) => this.refuse(err.kind === "response_timeout" ? "upstream_timeout" : "bad_gateway"),
      });
    let result: WsResult;
    try {
      result = await Exchange.viaBreaker(upstream, run, judgeWs);
    } catch (err) {
      // The breaker opened between pick and fire: nothing was sent, so this is a retriable refusal.
      const message = err instanceof Error ? err.message : String(err);
      result = new UpstreamError("connect", "GW_BREAKER_OPEN", message, false);
    }
    // The tunnel counts as in flight on its upstream while it lasts.
    if (result === "upgraded" && !socket.destroyed) socket.once("close", () => upstream.inFlight--);
    else upstream.inFlight--;
    return result;
  }
}

export class UpgradeHandler {
  constructor(private readonly deps: PipelineDeps) {}

  /**
   * WebSocket upgrades go through the same pipeline as requests; the tunnel gets an access line and request
   * metrics when it closes (101 once switched, else what the client was answered).
   */
  handle(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const ex = new WsExchange(this.deps, req, socket, head);
    try {
      ex.start();
    } catch (err) {
      this.deps.log.error("request_failed", { requestId: ex.requestId, error: String(err) });
      ex.refuse("bad_gateway");
    }
  }
}
