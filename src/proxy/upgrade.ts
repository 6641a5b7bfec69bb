// WebSocket upgrades: routed like requests, tunnelled to one upstream of the pool through its breaker, and
// accounted as one exchange when the client connection closes.
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import type { Verdict } from "../pool/upstream.ts";
import { normalizeTarget } from "../router/normalize.ts";
import { GATEWAY_ERRORS, rawErrorResponse, type GatewayErrorCode } from "./errors.ts";
import { newExchange, recordExchange, retryAfterSeconds } from "./exchange.ts";
import { UpstreamError } from "./forward.ts";
import type { HandlerDeps } from "./handler.ts";
import { clientAddress, prepareUpgradeHeaders } from "./headers.ts";

export class UpgradeHandler {
  constructor(private readonly deps: HandlerDeps) {}

  /**
   * WebSocket upgrades go to the pool the path routes to; the tunnel counts as in flight on its upstream while it
   * lasts, and gets an access line and request metrics when it closes (101 once switched, else what the client
   * was answered).
   */
  handle(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on("error", () => socket.destroy());
    const ex = newExchange(req);
    // 499 (as for HTTP) until the client has been answered something.
    let status = 499;
    socket.once("close", () => recordExchange(this.deps, ex, status));
    const refuse = (code: GatewayErrorCode, headers?: Record<string, string>) => {
      status = GATEWAY_ERRORS[code].status;
      socket.end(rawErrorResponse(code, ex.requestId, undefined, headers));
    };
    const rt = this.deps.runtime();
    const target = normalizeTarget(req.url ?? "");
    if (!target.ok) return refuse("bad_request");
    const match = rt.router.match(req.headers.host, target.path);
    if (!match) return refuse("no_route");
    if (match.climbsOut) return refuse("bad_request");
    const pr = rt.pools.get(match.route.pool)!;
    ex.route = match.route.id;
    ex.pool = pr.pool.name;
    const upstream = pr.pool.pick(undefined, clientAddress(req));
    if (!upstream) return refuse("no_upstream", { "retry-after": retryAfterSeconds(pr) });
    ex.upstream = upstream.id;
    ex.attempts = 1;
    prepareUpgradeHeaders(req, ex.requestId);
    upstream.inFlight++;
    upstream.requests++;
    socket.once("close", () => upstream.inFlight--);
    const path = target.query ? `${match.upstreamPath}?${target.query}` : match.upstreamPath;
    const run = () =>
      this.deps.forwarder.ws(req, socket, head, {
        target: upstream.url,
        path,
        timeout: pr.pool.settings.timeouts.response,
        onFailure: (err) => {
          const code = err.kind === "response_timeout" ? "upstream_timeout" : "bad_gateway";
          status = GATEWAY_ERRORS[code].status;
          socket.write(rawErrorResponse(code, ex.requestId));
        },
      });
    const judgeWs = (r: "upgraded" | number | UpstreamError): Verdict =>
      r instanceof UpstreamError ? "failure" : "success";
    (upstream.breaker ? upstream.breaker.run(run, judgeWs) : run()).then(
      (r) => {
        if (r === "upgraded") status = 101;
        else if (typeof r === "number") status = r;
      },
      () => refuse("no_upstream", { "retry-after": retryAfterSeconds(pr) }),
    );
  }
}
