// A route's policies compiled once per config into pre-bound steps, run in the contract's order whatever the
// listed order (CORS preflight, auth, rate limits), and the policy state carried over a reload when unchanged.
import { createHash } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { AuthConfig, GatewayConfig, PolicyConfig } from "../config/types.ts";
import type { Logger } from "../log/log.ts";
import { ApiKeys } from "./api-keys.ts";
import { TrustedProxies } from "./client-address.ts";
import { Cors, isPreflight, type HeaderPairs } from "./cors.ts";
import { JwtVerifier, type JwtFailure } from "./jwt.ts";
import { RateLimit, rateLimitKeyOf, retryAfter, stateItem } from "./rate-limit.ts";

export type { HeaderPairs } from "./cors.ts";

/** What the policies learn and decide about one request, filled as the steps run. */
export interface PolicyExchange {
  /** The client address (trustedProxies applied). */
  client: string;
  /** Set by a passing auth: the key's name or the JWT's `sub`. */
  subject: string | undefined;
  /** Headers every answer to this request carries (CORS, RateLimit), proxied or the gateway's own. */
  responseHeaders: HeaderPairs;
}

/** A request the policies answer themselves instead of proxying it. */
export type PolicyAnswer =
  | { kind: "preflight"; headers: HeaderPairs }
  | {
      kind: "reject";
      code: "unauthorized" | "rate_limited";
      policy: string;
      message: string;
      headers: HeaderPairs;
    };

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

  constructor(
    config: GatewayConfig,
    private readonly deps: PolicyDeps,
    previous?: PolicySet,
  ) {
    this.trusted = new TrustedProxies(config.trustedProxies);
    for (const p of config.policies.values()) this.build(p, previous);
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
  chain(route: string, names: readonly string[]): RouteChain {
    const key = `${route}\u0000${names.join("\u0000")}`;
    let c = this.chains.get(key);
    if (!c) {
      // The last listed cors applies; every auth and every rate limit apply, each once.
      const corsName = names.findLast((n) => this.cors.has(n));
      const unique = [...new Set(names)];
      c = new RouteChain(
        route,
        corsName !== undefined ? this.cors.get(corsName)! : undefined,
        unique.flatMap((n) => (this.auths.has(n) ? [this.auths.get(n)!] : [])),
        unique.flatMap((n) => (this.limits.has(n) ? [this.limits.get(n)!] : [])),
        this.deps,
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
 * The pre-bound steps of one route. `request` runs the request phase: it removes a client-sent X-Auth-Subject
 * (on every route), answers a preflight, checks every auth, counts every rate limit, and sets X-Auth-Subject for
 * the upstream. It returns an answer for the client, or undefined to proxy the request.
 */
export class RouteChain {
  /** True when the route has no policy at all: the proxy only needs `stripClientHeaders`. */
  readonly empty: boolean;
  /** The upstream's Access-Control-* headers are removed from its answers. */
  readonly stripsUpstreamCors: boolean;

  constructor(
    readonly route: string,
    readonly cors: Cors | undefined,
    readonly auths: readonly Auth[],
    readonly limits: readonly RateLimit[],
    private readonly deps: PolicyDeps,
  ) {
    this.empty = !cors && auths.length === 0 && limits.length === 0;
    this.stripsUpstreamCors = cors !== undefined;
  }

  /** Runs the request phase (see the class comment). Synchronous when the route has no auth or limit. */
  request(
    req: IncomingMessage,
    ex: PolicyExchange,
  ): PolicyAnswer | undefined | Promise<PolicyAnswer | undefined> {
    const h = req.headers;
    delete h["x-auth-subject"];
    if (this.empty) return undefined;
    if (this.cors) {
      const origin = h.origin;
      if (isPreflight(req.method, origin, h["access-control-request-method"])) {
        return { kind: "preflight", headers: this.cors.preflight(origin as string) };
      }
      for (const pair of this.cors.actual(origin)) ex.responseHeaders.push(pair);
    }
    if (this.auths.length === 0 && this.limits.length === 0) return undefined;
    return this.guarded(req, ex);
  }

  private async guarded(req: IncomingMessage, ex: PolicyExchange): Promise<PolicyAnswer | undefined> {
    const h = req.headers;
    if (this.auths.length > 0) {
      const strip = { authorization: false };
      for (const auth of this.auths) {
        const r = await auth.check(req, strip);
        if (typeof r !== "string") {
          this.deps.rejected(this.route, auth.name, "unauthorized");
          return {
            kind: "reject",
            code: "unauthorized",
            policy: auth.name,
            message: r.message,
            headers: auth.challengeHeaders,
          };
        }
        ex.subject ??= r;
      }
      // Credentials stop here: an API key is the gateway's business. A JWT's Authorization is passed on (the
      // upstream may read its claims).
      delete h["x-api-key"];
      if (strip.authorization) delete h.authorization;
      h["x-auth-subject"] = ex.subject;
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
          ex.responseHeaders.push(
            ["ratelimit-policy", policies.join(", ")],
            ["ratelimit", states.join(", ")],
          );
          return {
            kind: "reject",
            code: "rate_limited",
            policy: limit.name,
            message: `Rate limit ${limit.name} exceeded; retry after the time in Retry-After.`,
            headers: [["retry-after", retryAfter(d.resetMs)]],
          };
        }
      }
      ex.responseHeaders.push(["ratelimit-policy", policies.join(", ")], ["ratelimit", states.join(", ")]);
    }
    return undefined;
  }
}
