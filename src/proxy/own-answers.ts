// Request forms the gateway answers itself and never proxies: CONNECT (refused, it is no forward proxy) and
// `OPTIONS *` (a question about the server, not about any upstream).
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import type { Logger } from "../log/log.ts";
import type { GatewayMetrics } from "../metrics/metrics.ts";
import { GATEWAY_ERRORS, rawErrorResponse } from "./errors.ts";
import { newExchange, recordExchange } from "./exchange.ts";

interface Deps {
  metrics: GatewayMetrics;
  log: Logger;
}

const CONNECT_MESSAGE = "CONNECT is not supported: this gateway is not a forward proxy.";

/**
 * Node hands `CONNECT host:port` to the server's `connect` event and, with no listener, closes the connection
 * without a word. Answered instead on the raw socket, as nginx does, with an access line like any request.
 */
export function refuseConnect(deps: Deps, req: IncomingMessage, socket: Duplex): void {
  socket.on("error", () => socket.destroy());
  const ex = newExchange(req);
  socket.end(rawErrorResponse("bad_request", ex.requestId, CONNECT_MESSAGE));
  recordExchange(deps, ex, GATEWAY_ERRORS.bad_request.status);
}

/** True for `OPTIONS *`, the one asterisk-form request HTTP allows (RFC 9112 §3.2.4). */
export function isServerOptions(req: IncomingMessage): boolean {
  return req.url === "*" && req.method === "OPTIONS";
}

/** `OPTIONS *` asks what the server supports, not any resource: 200 with no body, never forwarded. */
export function answerServerOptions(deps: Deps, req: IncomingMessage, res: ServerResponse): void {
  const ex = newExchange(req);
  res.writeHead(200, { "content-length": 0, "x-request-id": ex.requestId });
  res.end();
  recordExchange(deps, ex, 200);
}
