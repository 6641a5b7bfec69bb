// One exchange's accounting, shared by HTTP requests and WebSocket tunnels: what the access line and the request
// metrics say about it, and the Retry-After of a pool with nothing available.
import type { IncomingMessage } from "node:http";
import type { Logger } from "../log/log.ts";
import { methodLabel, statusLabel, type GatewayMetrics } from "../metrics/metrics.ts";
import type { PoolRuntime } from "../runtime/runtime.ts";
import { clientAddress, requestIdOf } from "./headers.ts";

/** What the access line and the request metrics read of an exchange once it is over. */
export interface ExchangeRecord {
  readonly requestId: string;
  readonly method: string;
  readonly path: string;
  readonly client: string;
  readonly started: number;
  subject: string | undefined;
  route: string;
  pool: string;
  upstream: string;
  attempts: number;
}

/** A bare record for a request the gateway answers before any routing (CONNECT, `OPTIONS *`). */
export function newExchange(req: IncomingMessage): ExchangeRecord {
  const rawUrl = req.url ?? "";
  const q = rawUrl.indexOf("?");
  return {
    requestId: requestIdOf(req),
    method: req.method ?? "GET",
    path: q < 0 ? rawUrl : rawUrl.slice(0, q),
    client: clientAddress(req),
    started: performance.now(),
    subject: undefined,
    route: "none",
    pool: "",
    upstream: "",
    attempts: 0,
  };
}

/** The access line and the request metrics of one exchange, once it is over. */
export function recordExchange(
  deps: { metrics: GatewayMetrics; log: Logger },
  ex: ExchangeRecord,
  status: number,
): void {
  const seconds = (performance.now() - ex.started) / 1000;
  deps.metrics.recordRequest(ex.route, methodLabel(ex.method), statusLabel(status), seconds);
  // `subject: undefined` is left out of the JSON line like an absent key, without a spread per request.
  deps.log.info("request", {
    method: ex.method,
    path: ex.path,
    status,
    durationMs: Math.round(seconds * 10_000) / 10,
    route: ex.route,
    pool: ex.pool,
    upstream: ex.upstream,
    attempts: ex.attempts,
    requestId: ex.requestId,
    client: ex.client,
    subject: ex.subject,
  });
}

/** Seconds a client should wait before trying a pool with nothing available: the sooner of a check or a reset. */
export function retryAfterSeconds(p: PoolRuntime): string {
  const s = p.pool.settings;
  return String(Math.max(1, Math.ceil(Math.min(s.healthCheck.interval, s.breaker.resetTimeout) / 1000)));
}
