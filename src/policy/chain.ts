// A route's policies compiled once per config into pre-bound steps, run in the contract's order whatever the
// listed order (CORS preflight, auth, rate limits), and the policy state carried over a reload when unchanged.
import { createHash } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { AuthConfig, GatewayConfig, PolicyConfig } from "../config/types.ts";
import type { Logger } from "../log/log.ts";
import { ApiKeys } from "./api-keys.ts";
import { TrustedProxies, cameOverHttps } from "./client-address.ts";
import { Cors, isPreflight, stripCorsHeaders, type HeaderPairs, type SharedPairs } from "./cors.ts";
import { JwtVerifier, type JwtFailure } from "./jwt.ts";
import { RateLimit, rateLimitKeyOf, retryAfter, type RateLimitDecision } from "./rate-limit.ts";
import { StickyCookie } from "./sticky.ts";

export type { HeaderPairs } from "./cors.ts";

/** Headers of an answer about to be written (the pipeline's HeaderBag): lowercase names. */
export type HeaderBag = Record<string, string | string[] | number | undefined>;

/**
 * What the policies see of one exchange (HTTP request or WebSocket upgrade). Structurally the pipeline's
 * `PolicyExchange` (proxy/phases.ts): policy sits below proxy and does not import it.
 */
export interface PolicyExchange {
  readonly req: IncomingMessage;
  /** The client address (trustedProxies applied). */
  readonly client: string;
  /** Set by a passing auth: the key's name or the JWT's `sub`; sent upstream as X-Auth-Subject. */
  subject: string | undefined;
  /** The upstream of the current attempt, once picked. */
  readonly target: { readonly id: string } | undefined;
  /** This module's per-request state (`ChainState`), carried from the request phase to the response phase. */
  policyState: unknown;
  dropUpstreamHeader(name: string): void;
}

/** A request the policies answer themselves instead of proxying it (the pipeline's PolicyAnswer). */
export type PolicyAnswer =
  | { error: "unauthorized" | "rate_limited"; message: string; headers: HeaderBag }
  | { status: number; headers: HeaderBag };

/** What the request phase returns: an answer, nothing (proxy it), or a promise of either when it must wait. */
type Verdict = PolicyAnswer | undefined;

/**
 * What the request phase leaves for the response phase. Its values are shared (CORS pairs built once per policy)
 * or strings: nothing per request but this object.
 */
interface ChainState {
  /** The CORS headers every answer carries (a preflight's: its whole set). */
  cors: SharedPairs | undefined;
  /** RateLimit-Policy and RateLimit, once the limits have counted. */
  limitPolicy: string | undefined;
  limitState: string | undefined;
  /** Set by an auth when the Authorization header carried an API key: it is then not passed on. */
  dropAuthorization: boolean;
  /** The sticky upstream the request's cookie named (current secret), if any. */
  stickyId: string | undefined;
}

function isPromise<T>(v: T | Promise<T>): v is Promise<T> {
  return typeof (v as { then?: unknown } | undefined)?.then === "function";
}

export interface PolicyDeps {
  log: Logger;
  /** Counts a rejection (gateway_policy_rejections_total). */
  rejected(route: string, policy: string, reason: "unauthorized" | "rate_limited"): void;
  /** An ioredis client for `store: redis` limits. */
  redis?: unknown;
  redisPrefix?: string;
}

const BEARER_RE = /^Bearer[ \t]+(\S+)[ \t]*$/i;
// header.payload.signature, each base64url: what a compact JWS looks like (an API key rarely does).
const JWT_RE = /^[\w-]+\.[\w-]+\.[\w-]*$/;

const NO_CREDENTIAL = { message: "This route needs an API key or a bearer token." };
const NO_VALID_KEY = { message: "The API key is not valid." };
const INVALID_TOKEN = { message: "The bearer token is not valid." };

const JWT_MESSAGES: Record<JwtFailure, string> = {
  invalid: "The bearer token is not valid.",
  expired: "The bearer token has expired.",
  not_yet_valid: "The bearer token is not valid yet.",
  claims: "The bearer token's issuer or audience is not accepted.",
  key_unavailable: "The keys to check the bearer token could not be fetched.",
};

/** One auth policy: API keys and/or a JWT verifier; any one credential that passes is enough. */
export class Auth {
  readonly keys: ApiKeys;
  readonly jwt: JwtVerifier | undefined;
  private readonly challenge: HeaderPairs;

  constructor(
    readonly name: string,
    config: AuthConfig,
  ) {
    this.keys = new ApiKeys(config.apiKeys);
    this.jwt = config.jwt ? new JwtVerifier(config.jwt) : undefined;
    this.challenge = [["www-authenticate", "Bearer"]];
  }

  /**
   * Checks the request's credentials. Returns the subject, or the reason for the 401; a promise only when jose
   * must verify a token its cache does not hold. Marks in `strip` whether the Authorization header carried an
   * API key (it is then not passed on).
   */
  check(
    req: IncomingMessage,
    strip: { dropAuthorization: boolean },
  ): string | { message: string } | Promise<string | { message: string }> {
    const h = req.headers;
    const apiKey = h["x-api-key"];
    if (typeof apiKey === "string" && this.keys.size > 0) {
      const name = this.keys.match(apiKey);
      if (name !== undefined) return name;
    }
    const bearer = typeof h.authorization === "string" ? BEARER_RE.exec(h.authorization)?.[1] : undefined;
    if (bearer === undefined) {
      return typeof apiKey === "string" ? NO_VALID_KEY : NO_CREDENTIAL;
    }
    if (this.keys.size > 0) {
      const name = this.keys.match(bearer);
      if (name !== undefined) {
        strip.dropAuthorization = true;
        return name;
      }
    }
    const jwt = this.jwt;
    if (jwt && JWT_RE.test(bearer)) {
      return (
        jwt.cachedSubject(bearer) ??
        jwt.verify(bearer).then((r) => (r.ok ? r.subject : { message: JWT_MESSAGES[r.reason] }))
      );
    }
    return jwt ? INVALID_TOKEN : NO_VALID_KEY;
  }

  get challengeHeaders(): HeaderPairs {
    return this.challenge;
  }
}

/** The live objects of every policy of one config; unchanged ones are taken over from the previous config. */
export class PolicySet {
  readonly trusted: TrustedProxies;
  private readonly cors = new Map<string, Cors>();
  private readonly auths = new Map<string, Auth>();
  private readonly limits = new Map<string, RateLimit>();
  /** Instances by a digest of their kind, name and config: what survives a reload. */
  private readonly byDigest = new Map<string, Cors | Auth | RateLimit>();
  private readonly chains = new Map<string, RouteChain>();
  private readonly sticky = new Map<string, StickyCookie>();

  constructor(
    config: GatewayConfig,
    private readonly deps: PolicyDeps,
    previous?: PolicySet,
  ) {
    this.trusted = new TrustedProxies(config.trustedProxies);
    for (const p of config.policies.values()) this.build(p, previous);
    for (const pool of config.pools) {
      if (pool.sticky) {
        this.sticky.set(
          pool.name,
          new StickyCookie(
            pool.sticky,
            pool.upstreams.map((u) => u.id),
          ),
        );
      }
    }
  }

  /** A route's compiled steps (the runtime's PolicyCompiler), or undefined when it has nothing to run. */
  compile(route: { id: string; pool: string; policies?: readonly string[] }): RouteChain | undefined {
    const c = this.chain(route.id, route.policies ?? [], route.pool);
    return c.empty ? undefined : c;
  }

  private build(p: PolicyConfig, previous: PolicySet | undefined): void {
    const reuse = <T extends Cors | Auth | RateLimit>(kind: string, value: unknown, make: () => T): T => {
      // The digest covers secrets, but it is only ever a Map key in this process.
      const digest = createHash("sha256")
        .update(JSON.stringify([kind, p.name, value]))
        .digest("hex");
      const kept = previous?.byDigest.get(digest) as T | undefined;
      const inst = kept ?? make();
      this.byDigest.set(digest, inst);
      return inst;
    };
    if (p.cors)
      this.cors.set(
        p.name,
        reuse("cors", p.cors, () => new Cors(p.cors!)),
      );
    if (p.auth)
      this.auths.set(
        p.name,
        reuse("auth", p.auth, () => new Auth(p.name, p.auth!)),
      );
    if (p.rateLimit) {
      const rl = p.rateLimit;
      this.limits.set(
        p.name,
        reuse("rateLimit", rl, () => new RateLimit(p.name, rl, this.deps)),
      );
    }
  }

  /** The compiled chain of a list of policy names (a route's, or the registry API's), labelled `route`. */
  chain(route: string, names: readonly string[], pool?: string): RouteChain {
    const key = `${route}\u0000${pool ?? ""}\u0000${names.join("\u0000")}`;
    let c = this.chains.get(key);
    if (!c) {
      // The last listed cors applies; every auth and every rate limit apply, each once.
      const corsName = names.findLast((n) => this.cors.has(n));
      const unique = [...new Set(names)];
      const sticky = pool !== undefined ? this.sticky.get(pool) : undefined;
      c = new RouteChain(
        route,
        corsName !== undefined ? this.cors.get(corsName)! : undefined,
        unique.flatMap((n) => (this.auths.has(n) ? [this.auths.get(n)!] : [])),
        unique.flatMap((n) => (this.limits.has(n) ? [this.limits.get(n)!] : [])),
        this.deps,
        sticky ? { cookie: sticky, trusted: this.trusted } : undefined,
      );
      this.chains.set(key, c);
    }
    return c;
  }

  /** The rate limit of policy `name` (bench and tests). */
  rateLimit(name: string): RateLimit | undefined {
    return this.limits.get(name);
  }

  /** The auth of policy `name` (tests). */
  auth(name: string): Auth | undefined {
    return this.auths.get(name);
  }
}

/**
 * The pre-bound steps of one route, in the shape of the pipeline's `RoutePolicies` (proxy/phases.ts):
 * - `request`: answers a preflight, checks every auth, counts every rate limit (in that order), and marks the
 *   credentials that must not reach the upstream. Returns an answer for the client, or undefined to proxy.
 * - `prefer`: the upstream a sticky cookie names (the pool honours it only inside its active tier).
 * - `response`: on every answer, the upstream's Access-Control-* headers replaced by the route's, the RateLimit
 *   headers, and the sticky cookie (re-)issued when the request did not already carry the right one.
 */
export class RouteChain {
  readonly request?: (ex: PolicyExchange) => PolicyAnswer | undefined | Promise<PolicyAnswer | undefined>;
  readonly prefer?: <U extends { readonly id: string }>(
    ex: PolicyExchange,
    upstreams: readonly U[],
  ) => U | undefined;
  readonly response?: (ex: PolicyExchange, status: number, headers: HeaderBag) => void;
  /** True when the route has no policy and no sticky pool: the pipeline skips every phase. */
  readonly empty: boolean;
  /** RateLimit-Policy when limit i is the last that counted: the items of limits 0..i, joined once. */
  private readonly limitPolicies: readonly string[];
  private readonly limitMessages: readonly string[];

  constructor(
    readonly route: string,
    readonly cors: Cors | undefined,
    readonly auths: readonly Auth[],
    readonly limits: readonly RateLimit[],
    private readonly deps: PolicyDeps,
    readonly sticky?: { cookie: StickyCookie; trusted: TrustedProxies },
  ) {
    this.empty = !cors && auths.length === 0 && limits.length === 0 && !sticky;
    this.limitPolicies = limits.map((_, i) =>
      limits
        .slice(0, i + 1)
        .map((l) => l.policyItem)
        .join(", "),
    );
    this.limitMessages = limits.map(
      (l) => `Rate limit ${l.name} exceeded; retry after the time in Retry-After.`,
    );
    if (this.empty) return;
    this.request = (ex) => this.requestPhase(ex);
    this.response = (ex, status, headers) => this.responsePhase(ex, status, headers);
    if (sticky) this.prefer = (ex, upstreams) => this.preferSticky(ex, upstreams);
  }

  private state(ex: PolicyExchange): ChainState {
    let st = ex.policyState as ChainState | undefined;
    if (!st) {
      st = {
        cors: undefined,
        limitPolicy: undefined,
        limitState: undefined,
        dropAuthorization: false,
        stickyId: undefined,
      };
      ex.policyState = st;
    }
    return st;
  }

  /**
   * Synchronous until something must wait (a JWT jose has not verified yet, a Redis or cluster limit): from
   * there on the rest runs as a promise. A memory limit and API keys never wait, so such a route costs no
   * promise and no microtask hop per request.
   */
  private requestPhase(ex: PolicyExchange): Verdict | Promise<Verdict> {
    const req = ex.req;
    const h = req.headers;
    const st = this.state(ex);
    if (this.cors) {
      const origin = h.origin;
      if (isPreflight(req.method, origin, h["access-control-request-method"])) {
        // The preflight's own headers are the whole answer; the response phase adds nothing to them.
        st.cors = this.cors.preflight(origin as string);
        return { status: 204, headers: {} };
      }
      st.cors = this.cors.actual(origin);
    }
    if (this.auths.length > 0) return this.authFrom(ex, st, 0);
    if (this.limits.length > 0) return this.limitFrom(ex, st, 0, "");
    return undefined;
  }

  /** Runs auth `i` and those after it, then the limits. */
  private authFrom(ex: PolicyExchange, st: ChainState, i: number): Verdict | Promise<Verdict> {
    const r = this.auths[i]!.check(ex.req, st);
    return isPromise(r) ? r.then((v) => this.authed(ex, st, i, v)) : this.authed(ex, st, i, r);
  }

  private authed(
    ex: PolicyExchange,
    st: ChainState,
    i: number,
    r: string | { message: string },
  ): Verdict | Promise<Verdict> {
    if (typeof r !== "string") {
      this.deps.rejected(this.route, this.auths[i]!.name, "unauthorized");
      return { error: "unauthorized", message: r.message, headers: { "www-authenticate": "Bearer" } };
    }
    ex.subject ??= r;
    if (i + 1 < this.auths.length) return this.authFrom(ex, st, i + 1);
    // Credentials stop here: an API key is the gateway's business. A JWT's Authorization is passed on (the
    // upstream may read its claims).
    ex.dropUpstreamHeader("x-api-key");
    if (st.dropAuthorization) ex.dropUpstreamHeader("authorization");
    return this.limits.length > 0 ? this.limitFrom(ex, st, 0, "") : undefined;
  }

  /** Counts limit `i` and those after it; `states`: the RateLimit items of the limits before it. */
  private limitFrom(
    ex: PolicyExchange,
    st: ChainState,
    i: number,
    states: string,
  ): Verdict | Promise<Verdict> {
    const limit = this.limits[i]!;
    const key = rateLimitKeyOf(limit.config.key, ex.client, ex.subject, ex.req.headers);
    const now = limit.consumeNow(key);
    if (now !== undefined) return this.counted(ex, st, i, states, now);
    return limit.consume(key).then((d) => this.counted(ex, st, i, states, d));
  }

  private counted(
    ex: PolicyExchange,
    st: ChainState,
    i: number,
    states: string,
    d: RateLimitDecision,
  ): Verdict | Promise<Verdict> {
    const limit = this.limits[i]!;
    const item = limit.stateItem(d);
    const all = i === 0 ? item : `${states}, ${item}`;
    if (!d.allowed || i + 1 === this.limits.length) {
      st.limitPolicy = this.limitPolicies[i];
      st.limitState = all;
    }
    if (!d.allowed) {
      this.deps.rejected(this.route, limit.name, "rate_limited");
      return {
        error: "rate_limited",
        message: this.limitMessages[i]!,
        headers: { "retry-after": retryAfter(d.resetMs) },
      };
    }
    return i + 1 < this.limits.length ? this.limitFrom(ex, st, i + 1, all) : undefined;
  }

  private preferSticky<U extends { readonly id: string }>(
    ex: PolicyExchange,
    upstreams: readonly U[],
  ): U | undefined {
    const cookie = this.sticky!.cookie;
    const id = cookie.upstreamOf(ex.req.headers.cookie, upstreams);
    if (id === undefined) return undefined;
    const st = this.state(ex);
    if (cookie.isCurrent(ex.req.headers.cookie, id)) st.stickyId = id;
    for (const u of upstreams) if (u.id === id) return u;
    return undefined;
  }

  private responsePhase(ex: PolicyExchange, status: number, headers: HeaderBag): void {
    const st = ex.policyState as ChainState | undefined;
    if (this.cors) stripCorsHeaders(headers);
    if (st) {
      const cors = st.cors;
      if (cors) {
        for (const [name, value] of cors) {
          if (name === "vary") addVary(headers, value);
          else headers[name] = value;
        }
      }
      if (st.limitPolicy !== undefined) {
        headers["ratelimit-policy"] = st.limitPolicy;
        headers.ratelimit = st.limitState;
      }
    }
    const sticky = this.sticky;
    const target = ex.target;
    // Only an upstream's own answer pins the client; a cookie that already names the upstream is left alone.
    if (sticky && target && status < 500 && st?.stickyId !== target.id) {
      const req = ex.req;
      const secure = cameOverHttps(
        "encrypted" in req.socket && req.socket.encrypted === true,
        req.socket.remoteAddress ?? "",
        req.headers["x-forwarded-proto"],
        sticky.trusted,
      );
      const line = sticky.cookie.setCookie(target.id, secure);
      const prior = headers["set-cookie"];
      headers["set-cookie"] =
        prior === undefined ? line : [...(Array.isArray(prior) ? prior : [String(prior)]), line];
    }
  }
}

function addVary(headers: HeaderBag, value: string): void {
  const prior = headers.vary;
  if (prior === undefined) headers.vary = value;
  else if (!/(^|,)\s*(origin|\*)\s*(,|$)/i.test(String(prior))) headers.vary = `${String(prior)}, ${value}`;
}
