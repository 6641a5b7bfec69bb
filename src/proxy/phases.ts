// The seam between the request pipeline and edge policies: what a route's compiled policy steps may do to one
// exchange (HTTP request or WebSocket upgrade) before it is forwarded, at pick time, and on any answer.
import type { IncomingMessage } from "node:http";
import type { Upstream } from "../pool/upstream.ts";
import type { GatewayErrorCode } from "./errors.ts";

/** Headers of an answer about to be written, lowercase names; values as Node's header objects hold them. */
export type HeaderBag = Record<string, string | string[] | number | undefined>;

/** What policies see of one exchange, and the few things they may change on it. */
export interface PolicyExchange {
  readonly req: IncomingMessage;
  readonly requestId: string;
  readonly method: string;
  /** The path as the client sent it, without the query. */
  readonly path: string;
  /** True for a WebSocket upgrade: the answer is written on the raw socket, but the phases are the same. */
  readonly websocket: boolean;
  /** The client address (`clientAddress`): the rate-limit key, ip-hash, the access log's `client`. */
  readonly client: string;
  /** Who the route's auth identified: the access log's `subject`, sent upstream as `X-Auth-Subject`. */
  subject: string | undefined;
  /** The upstream of the current attempt once one was picked (the response phase sees who answered). */
  readonly target: Upstream | undefined;
  /** Free slot for a route's policies to carry per-request state from one phase to the next. */
  policyState: unknown;
  /** Keeps a request header from reaching the upstream (X-API-Key, an Authorization that carried a key). */
  dropUpstreamHeader(name: string): void;
}

/** A request phase's own answer: a catalog error (401, 429, with extra headers), or a bodyless one (preflight 204). */
export type PolicyAnswer =
  | { error: GatewayErrorCode; message?: string; headers?: HeaderBag }
  | { status: number; headers?: HeaderBag };

/** What a request phase returns: nothing to continue, an answer to stop; async only when it must be. */
export type RequestVerdict = PolicyAnswer | undefined;

/**
 * One route's policy steps, compiled once per config (never looked up by name per request). Every hook is
 * optional, and a route without policies holds `undefined`: the pipeline then skips the phases entirely.
 */
export interface RoutePolicies {
  /**
   * Runs after routing, before the pool is consulted and before any body is read. Returns a promise only when
   * it must wait (a Redis rate limit, a JWKS fetch); a plain value keeps the request synchronous.
   */
  request?(ex: PolicyExchange): RequestVerdict | Promise<RequestVerdict>;
  /**
   * The upstream this exchange would rather reach (a sticky cookie). The pool honours it only while it is
   * available in the pool's active tier and not yet tried by this request; otherwise it balances as usual.
   */
  prefer?(ex: PolicyExchange, upstreams: readonly Upstream[]): Upstream | undefined;
  /**
   * Runs on every answer the client gets, before its head is written: an upstream response, a gateway error
   * (HTTP or a refused WebSocket upgrade), a request phase's own answer. May add, replace or remove headers.
   */
  response?(ex: PolicyExchange, status: number, headers: HeaderBag): void;
}
