// Header rules of the proxy: hop-by-hop removal both ways, X-Forwarded-*, and the request id.
import { randomUUID } from "node:crypto";
import type { IncomingHttpHeaders, IncomingMessage } from "node:http";
import { TLSSocket } from "node:tls";
import { clientAddressOf, type TrustedProxies } from "../policy/client-address.ts";

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

/**
 * The client's address: the one function the access log's `client`, the rate-limit key and ip-hash read. The
 * peer's address, or behind `trustedProxies` the right-most X-Forwarded-For hop that is not one of them.
 */
export function clientAddress(req: IncomingMessage, trusted?: TrustedProxies): string {
  const peer = req.socket.remoteAddress ?? "";
  return trusted ? clientAddressOf(peer, req.headers["x-forwarded-for"], trusted) : peer;
}

/** What the exchange asks of the upstream headers beyond the fixed rules (policies: subject, dropped names). */
export interface UpstreamHeaderEdits {
  subject: string | undefined;
  dropped: readonly string[] | undefined;
}

function setForwarding(
  req: IncomingMessage,
  requestId: string,
  proto: string,
  edits?: UpstreamHeaderEdits,
): void {
  const h = req.headers;
  // X-Forwarded-For records the hop: the peer's own address, whatever it says the client was.
  const ip = req.socket.remoteAddress ?? "";
  const prior = h["x-forwarded-for"];
  h["x-forwarded-for"] = prior ? `${String(prior)}, ${ip}` : ip;
  h["x-forwarded-proto"] = proto;
  if (h.host) h["x-forwarded-host"] = h.host;
  h["x-request-id"] = requestId;
  // Only the gateway says who the client is: a client-sent X-Auth-Subject never passes, on any route.
  if (h["x-auth-subject"] !== undefined) delete h["x-auth-subject"];
  if (!edits) return;
  if (edits.dropped) for (const name of edits.dropped) delete h[name];
  if (edits.subject !== undefined) h["x-auth-subject"] = edits.subject;
}

/**
 * Prepares the headers sent upstream, once per request (retries reuse them): hop-by-hop removed, X-Forwarded-For
 * appended, X-Forwarded-Proto and -Host set, X-Request-Id passed up. `Expect` goes too: Node already answered
 * `100 Continue` to the client, and the body is sent once the upstream connection is up.
 */
export function prepareUpstreamHeaders(
  req: IncomingMessage,
  requestId: string,
  edits?: UpstreamHeaderEdits,
): void {
  stripHopByHop(req.headers, true);
  delete req.headers.expect;
  setForwarding(req, requestId, req.socket instanceof TLSSocket ? "https" : "http", edits);
}

/** For WebSocket upgrades: the same forwarding headers, but Connection/Upgrade must reach the upstream. */
export function prepareUpgradeHeaders(
  req: IncomingMessage,
  requestId: string,
  edits?: UpstreamHeaderEdits,
): void {
  // The upgrade itself needs Connection and Upgrade; every other hop-by-hop header still stops here.
  const h = req.headers;
  for (const name of listedInConnection(h)) if (name !== "upgrade") delete h[name];
  delete h["proxy-authorization"];
  delete h["proxy-connection"];
  delete h["keep-alive"];
  delete h.te;
  delete h.trailer;
  setForwarding(req, requestId, req.socket instanceof TLSSocket ? "wss" : "ws", edits);
}
