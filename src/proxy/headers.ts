// Header rules of the proxy: hop-by-hop removal both ways, X-Forwarded-*, and the request id; for plain HTTP the
// header lists of both directions are built in one pass over rawHeaders, never by deleting from a header object.
import { randomUUID } from "node:crypto";
import type { IncomingHttpHeaders, IncomingMessage } from "node:http";
import { TLSSocket } from "node:tls";
import { clientAddressOf, type TrustedProxies } from "../policy/client-address.ts";
import type { HeaderBag } from "./phases.ts";

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

// What a header name means to the one-pass builders. Names are matched through a small cache of the spellings
// seen (clients send the same few spellings over and over), so the usual header costs one Map lookup and no
// toLowerCase copy.
const KEEP = 0;
const DROP = 1;
const XFF = 2;
const TE = 3;
const FRAMING = 4;
const CONNECTION = 5;
const REQUEST_ID = 6;
const HOST = 7;

const REQUEST_RULES = new Map<string, number>([
  ...HOP_BY_HOP.map((n): [string, number] => [n, DROP]),
  ["connection", CONNECTION],
  ["te", TE],
  ["x-forwarded-for", XFF],
  ["host", HOST],
  ["content-length", FRAMING],
  ["transfer-encoding", FRAMING],
  // Node already answered `100 Continue`; the body goes up once the upstream connection is open.
  ["expect", DROP],
  // Set by the gateway below, whatever the client said.
  ["x-forwarded-proto", DROP],
  ["x-forwarded-host", DROP],
  ["x-request-id", DROP],
  ["x-auth-subject", DROP],
]);

const RESPONSE_RULES = new Map<string, number>([
  ...HOP_BY_HOP.map((n): [string, number] => [n, DROP]),
  ["connection", CONNECTION],
  // Node re-frames the body for the client.
  ["transfer-encoding", DROP],
  ["x-request-id", REQUEST_ID],
]);

const SPELLINGS_MAX = 512;

function ruleOf(rules: Map<string, number>, spellings: Map<string, number>, name: string): number {
  let rule = spellings.get(name);
  if (rule === undefined) {
    rule = rules.get(name.toLowerCase()) ?? KEEP;
    if (spellings.size < SPELLINGS_MAX) spellings.set(name, rule);
  }
  return rule;
}

const requestSpellings = new Map<string, number>();
const responseSpellings = new Map<string, number>();

/**
 * Adds the names a Connection header lists (other than close and keep-alive), lowercase, to `into`. The usual
 * bare `keep-alive` or `close` (nearly every request and response) costs no split and no array.
 */
function connectionNames(value: string, into: string[] | undefined): string[] | undefined {
  const c = value.charCodeAt(0) | 0x20;
  if ((c === 0x6b || c === 0x63) && value.length <= 10) {
    const bare = value.toLowerCase();
    if (bare === "keep-alive" || bare === "close") return into;
  }
  for (const part of value.split(",")) {
    const name = part.trim().toLowerCase();
    if (name && name !== "close" && name !== "keep-alive") (into ??= []).push(name);
  }
  return into;
}

function withoutNames(list: string[], names: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < list.length; i += 2) {
    if (!names.includes(list[i]!.toLowerCase())) out.push(list[i]!, list[i + 1]!);
  }
  return out;
}

/** What the upstream request needs besides the client's own headers. */
export interface UpstreamRequestHead {
  requestId: string;
  subject: string | undefined;
  /** Request headers the route's policies keep from the upstream (lowercase). */
  dropped: readonly string[] | undefined;
  /** The length of a body read whole (it replaces the client's framing), or undefined when streamed or none. */
  keptLength: number | undefined;
}

/**
 * The upstream request's headers as a flat [name, value, ...] list, built in one pass over the client's
 * rawHeaders: hop-by-hop headers (and those named in Connection) out, `TE: trailers` kept, X-Forwarded-For
 * appended to, X-Forwarded-Proto and -Host, X-Request-Id and X-Auth-Subject set by the gateway. The client's
 * own spelling and order of every other header is kept, duplicates included.
 */
export function upstreamRequestHeaders(req: IncomingMessage, head: UpstreamRequestHead): string[] {
  const raw = req.rawHeaders;
  const out: string[] = [];
  let prior: string | undefined;
  let host: string | undefined;
  let trailers = false;
  let hasLength = false;
  let listed: string[] | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1]!;
    const rule = ruleOf(REQUEST_RULES, requestSpellings, name);
    if (rule === KEEP) out.push(name, value);
    else if (rule === HOST) {
      out.push(name, value);
      host ??= value;
    } else if (rule === XFF) {
      prior = prior === undefined ? value : `${prior}, ${value}`;
    } else if (rule === TE) {
      if (/(^|,)\s*trailers\s*(,|$)/i.test(value)) trailers = true;
    } else if (rule === FRAMING) {
      if (head.keptLength === undefined) {
        out.push(name, value);
        hasLength = true;
      }
    } else if (rule === CONNECTION) {
      listed = connectionNames(value, listed);
    }
  }
  let list = out;
  if (listed)
    list = withoutNames(
      list,
      listed.filter((n) => n !== "te"),
    );
  if (head.dropped) list = withoutNames(list, head.dropped);
  const method = req.method;
  // A body read whole goes up with its own length in place of the client's framing.
  if (head.keptLength !== undefined) list.push("content-length", String(head.keptLength));
  else if (!hasLength && (method === "DELETE" || method === "OPTIONS")) {
    // What http-proxy did: a bodyless DELETE or OPTIONS says so, rather than being sent chunked.
    list.push("content-length", "0");
  }
  if (trailers) list.push("te", "trailers");
  // X-Forwarded-For records the hop: the peer's own address, whatever it says the client was.
  const ip = req.socket.remoteAddress ?? "";
  list.push("x-forwarded-for", prior === undefined ? ip : `${prior}, ${ip}`);
  list.push("x-forwarded-proto", req.socket instanceof TLSSocket ? "https" : "http");
  if (host !== undefined) list.push("x-forwarded-host", host);
  list.push("x-request-id", head.requestId);
  if (head.subject !== undefined) list.push("x-auth-subject", head.subject);
  return list;
}

/**
 * The response's headers for the client as a flat list, in one pass over the upstream's rawHeaders: hop-by-hop
 * headers, those named in Connection and Transfer-Encoding out; the request id added unless the upstream sent one.
 */
export function clientResponseHeaders(raw: readonly string[], requestId: string): string[] {
  const out: string[] = [];
  let listed: string[] | undefined;
  let hasId = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const rule = ruleOf(RESPONSE_RULES, responseSpellings, name);
    if (rule === KEEP) out.push(name, raw[i + 1]!);
    else if (rule === REQUEST_ID) {
      out.push(name, raw[i + 1]!);
      hasId = true;
    } else if (rule === CONNECTION) listed = connectionNames(raw[i + 1]!, listed);
  }
  const list = listed ? withoutNames(out, listed) : out;
  if (!hasId) list.push("x-request-id", requestId);
  return list;
}

/** A flat header list as a HeaderBag (lowercase names; repeated names as arrays), for the response phase. */
export function headerBagOf(list: readonly string[]): HeaderBag {
  const bag: HeaderBag = {};
  for (let i = 0; i < list.length; i += 2) {
    const name = list[i]!.toLowerCase();
    const value = list[i + 1]!;
    const prev = bag[name];
    if (prev === undefined) bag[name] = name === "set-cookie" ? [value] : value;
    else if (Array.isArray(prev)) prev.push(value);
    else bag[name] = [String(prev), value];
  }
  return bag;
}
