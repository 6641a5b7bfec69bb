// Header rules of the proxy: hop-by-hop removal both ways, X-Forwarded-*, and the request id.
import { randomUUID } from "node:crypto";
import type { IncomingHttpHeaders, IncomingMessage } from "node:http";
import { TLSSocket } from "node:tls";

// RFC 9110 §7.6.1 plus the de-facto ones (reply-from's list) and RFC 2616's `proxy-authenticate`, which Go's
// ReverseProxy drops too: a challenge for a proxy between the upstream and us must not reach the client.
// `transfer-encoding` is left to Node, which frames the outgoing body itself; `te: trailers` is the one TE value
// worth passing.
const HOP_BY_HOP = [
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "upgrade",
  "http2-settings",
];

function listedInConnection(headers: IncomingHttpHeaders): string[] {
  const c = headers.connection;
  if (!c) return [];
  return c
    .split(",")
    .map((s) => s.trim().toLowerCase())
    .filter((s) => s && s !== "close" && s !== "keep-alive");
}

/** Removes hop-by-hop headers from a header object in place (both the fixed list and names listed in Connection). */
export function stripHopByHop(headers: IncomingHttpHeaders, keepTrailersTe = false): void {
  // Read before the Connection-listed names go: RFC 9110 §10.1.4 has a sender of TE list it in Connection too.
  const te = headers.te;
  for (const name of listedInConnection(headers)) delete headers[name];
  for (const name of HOP_BY_HOP) delete headers[name];
  if (keepTrailersTe && typeof te === "string" && /(^|,)\s*trailers\s*(,|$)/i.test(te))
    headers.te = "trailers";
}

/** Response side: also drops `transfer-encoding`, since Node re-frames the body for the client. */
export function stripResponseHopByHop(headers: IncomingHttpHeaders): void {
  stripHopByHop(headers);
  delete headers["transfer-encoding"];
}

const REQUEST_ID_RE = /^[\w.:@+/=-]{1,200}$/;

/** Keeps a sane client-sent X-Request-Id, else makes one. */
export function requestIdOf(req: IncomingMessage): string {
  const given = req.headers["x-request-id"];
  return typeof given === "string" && REQUEST_ID_RE.test(given) ? given : randomUUID();
}

export function clientAddress(req: IncomingMessage): string {
  return req.socket.remoteAddress ?? "";
}

function setForwarding(req: IncomingMessage, requestId: string, proto: string): void {
  const h = req.headers;
  const ip = clientAddress(req);
  const prior = h["x-forwarded-for"];
  h["x-forwarded-for"] = prior ? `${String(prior)}, ${ip}` : ip;
  h["x-forwarded-proto"] = proto;
  if (h.host) h["x-forwarded-host"] = h.host;
  h["x-request-id"] = requestId;
}

/**
 * Prepares the headers sent upstream, once per request (retries reuse them): hop-by-hop removed, X-Forwarded-For
 * appended, X-Forwarded-Proto and -Host set, X-Request-Id passed up. `Expect` goes too: Node already answered
 * `100 Continue` to the client, and the body is sent once the upstream connection is up.
 */
export function prepareUpstreamHeaders(req: IncomingMessage, requestId: string): void {
  stripHopByHop(req.headers, true);
  delete req.headers.expect;
  setForwarding(req, requestId, req.socket instanceof TLSSocket ? "https" : "http");
}

/** For WebSocket upgrades: the same forwarding headers, but Connection/Upgrade must reach the upstream. */
export function prepareUpgradeHeaders(req: IncomingMessage, requestId: string): void {
  // The upgrade itself needs Connection and Upgrade; every other hop-by-hop header still stops here.
  const h = req.headers;
  for (const name of listedInConnection(h)) if (name !== "upgrade") delete h[name];
  delete h["proxy-authorization"];
  delete h["proxy-connection"];
  delete h["keep-alive"];
  delete h.te;
  delete h.trailer;
  setForwarding(req, requestId, req.socket instanceof TLSSocket ? "wss" : "ws");
}
