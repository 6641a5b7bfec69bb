// A route's policies compiled once per config into pre-bound steps, run in the contract's order whatever the
// listed order (CORS preflight, auth, rate limits), and the policy state carried over a reload when unchanged.
import { createHash } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { AuthConfig, GatewayConfig, PolicyConfig } from "../config/types.ts";
import type { Logger } from "../log/log.ts";
import { ApiKeys } from "./api-keys.ts";
import { TrustedProxies, cameOverHttps } from "./client-address.ts";
import { Cors, isPreflight, stripCorsHeaders, type HeaderPairs } from "./cors.ts";
import { JwtVerifier, type JwtFailure } from "./jwt.ts";
import { RateLimit, rateLimitKeyOf, retryAfter, stateItem } from "./rate-limit.ts";
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

/** What the request phase leaves for the response phase. */
interface ChainState {
  /** Headers every answer carries: CORS, RateLimit. */
  headers: HeaderPairs;
  /** The sticky upstream the request's cookie named (current secret), if any. */
  stickyId: string | undefined;
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
   * Checks the request's credentials. Returns the subject, or the reason for the 401. Marks in `strip` whether
   * the Authorization header carried an API key (it is then not passed on).
   */
  async check(
    req: IncomingMessage,
    strip: { authorization: boolean },
  ): Promise<string | { message: string }> {
    const h = req.headers;
    const apiKey = h["x-api-key"];
    if (typeof apiKey === "string" && this.keys.size > 0) {
      const name = this.keys.match(apiKey);
      if (name !== undefined) return name;
    }
    const bearer = typeof h.authorization === "string" ? BEARER_RE.exec(h.authorization)?.[1] : undefined;
    if (bearer === undefined) {
      return {
        message:
          typeof apiKey === "string"
            ? "The API key is not valid."
            : "This route needs an API key or a bearer token.",
      };
    }
    if (this.keys.size > 0) {
      const name = this.keys.match(bearer);
      if (name !== undefined) {
        strip.authorization = true;
        return name;
      }
    }
    if (this.jwt && JWT_RE.test(bearer)) {
      const r = await this.jwt.verify(bearer);
      return r.ok ? r.subject : { message: JWT_MESSAGES[r.reason] };
    }
    return { message: this.jwt ? "The bearer token is not valid." : "The API key is not valid." };
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

  constructor(
    readonly route: string,
    readonly cors: Cors | undefined,
    readonly auths: readonly Auth[],
    readonly limits: readonly RateLimit[],
    private readonly deps: PolicyDeps,
    readonly sticky?: { cookie: StickyCookie; trusted: TrustedProxies },
  ) {
    this.empty = !cors && auths.length === 0 && limits.length === 0 && !sticky;
    if (this.empty) return;
    this.request = (ex) => this.requestPhase(ex);
    this.response = (ex, status, headers) => this.responsePhase(ex, status, headers);
    if (sticky) this.prefer = (ex, upstreams) => this.preferSticky(ex, upstreams);
  }

  private state(ex: PolicyExchange): ChainState {
    let st = ex.policyState as ChainState | undefined;
    if (!st) {
      st = { headers: [], stickyId: undefined };
      ex.policyState = st;
    }
    return st;
  }

  private requestPhase(ex: PolicyExchange): PolicyAnswer | undefined | Promise<PolicyAnswer | undefined> {
    const req = ex.req;
    const h = req.headers;
    const st = this.state(ex);
    if (this.cors) {
      const origin = h.origin;
      if (isPreflight(req.method, origin, h["access-control-request-method"])) {
        // The preflight's own headers are the whole answer; the response phase adds nothing to them.
        st.headers = this.cors.preflight(origin as string);
        return { status: 204, headers: {} };
      }
      for (const pair of this.cors.actual(origin)) st.headers.push(pair);
    }
    if (this.auths.length === 0 && this.limits.length === 0) return undefined;
    return this.guarded(ex, st);
  }

  private async guarded(ex: PolicyExchange, st: ChainState): Promise<PolicyAnswer | undefined> {
    const h = ex.req.headers;
    if (this.auths.length > 0) {
      const strip = { authorization: false };
      for (const auth of this.auths) {
        const r = await auth.check(ex.req, strip);
        if (typeof r !== "string") {
          this.deps.rejected(this.route, auth.name, "unauthorized");
          return { error: "unauthorized", message: r.message, headers: { "www-authenticate": "Bearer" } };
        }
        ex.subject ??= r;
      }
      // Credentials stop here: an API key is the gateway's business. A JWT's Authorization is passed on (the
      // upstream may read its claims).
      ex.dropUpstreamHeader("x-api-key");
      if (strip.authorization) ex.dropUpstreamHeader("authorization");
    }
    if (this.limits.length > 0) {
      const policies: string[] = [];
      const states: string[] = [];
      for (const limit of this.limits) {
        const d = await limit.consume(rateLimitKeyOf(limit.config.key, ex.client, ex.subject, h));
        policies.push(limit.policyItem);
        states.push(stateItem(limit.name, d.remaining, d.resetMs));
        if (!d.allowed) {
          this.deps.rejected(this.route, limit.name, "rate_limited");
          st.headers.push(["ratelimit-policy", policies.join(", ")], ["ratelimit", states.join(", ")]);
          return {
            error: "rate_limited",
            message: `Rate limit ${limit.name} exceeded; retry after the time in Retry-After.`,
            headers: { "retry-after": retryAfter(d.resetMs) },
          };
        }
      }
      st.headers.push(["ratelimit-policy", policies.join(", ")], ["ratelimit", states.join(", ")]);
    }
    return undefined;
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
      for (const [name, value] of st.headers) {
        if (name === "vary") addVary(headers, value);
        else headers[name] = value;
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
