// CORS, hand-written: preflights answered by the gateway, the headers of allowed origins, and the rule that the
// upstream's own Access-Control-* headers never pass on a route with cors (the `cors` package cannot do that).
import type { CorsConfig } from "../config/types.ts";

export type HeaderPairs = [string, string][];
/** Header pairs built once per policy and shared by every request: never changed once made. */
export type SharedPairs = readonly (readonly [string, string])[];

/** A preflight is an OPTIONS with Origin and Access-Control-Request-Method (Fetch standard, CORS-preflight request). */
export function isPreflight(method: string | undefined, origin: unknown, requestMethod: unknown): boolean {
  return method === "OPTIONS" && typeof origin === "string" && typeof requestMethod === "string";
}

const VARY_ORIGIN: SharedPairs = [["vary", "Origin"]];
const NONE: SharedPairs = [];

/** One cors policy, with its header values joined once. */
export class Cors {
  private readonly any: boolean;
  private readonly origins: ReadonlySet<string>;
  private readonly preflightExtra: HeaderPairs;
  private readonly actualExtra: HeaderPairs;
  /** The headers of an actual request, per origin exactly as configured (and as a browser sends it). */
  private readonly actualByOrigin = new Map<string, SharedPairs>();
  private readonly actualAny: SharedPairs;

  constructor(readonly config: CorsConfig) {
    this.any = config.origins.length === 1 && config.origins[0] === "*";
    // Origins compare as the browser serializes them: scheme and host in lowercase, no trailing slash.
    this.origins = new Set(config.origins.map((o) => o.toLowerCase()));
    const credentials: HeaderPairs = config.credentials ? [["access-control-allow-credentials", "true"]] : [];
    this.preflightExtra = [
      ["access-control-allow-methods", config.methods.join(", ")],
      ...(config.headers.length
        ? [["access-control-allow-headers", config.headers.join(", ")] as [string, string]]
        : []),
      ["access-control-max-age", String(Math.floor(config.maxAge / 1000))],
      ...credentials,
    ];
    this.actualExtra = [
      ...credentials,
      ...(config.exposeHeaders.length
        ? [["access-control-expose-headers", config.exposeHeaders.join(", ")] as [string, string]]
        : []),
    ];
    this.actualAny = [["access-control-allow-origin", "*"], ...this.actualExtra];
    if (!this.any) for (const o of config.origins) this.actualByOrigin.set(o, this.actualOf(o));
  }

  allows(origin: string): boolean {
    return this.any || this.origins.has(origin.toLowerCase());
  }

  private allowOrigin(origin: string): [string, string] {
    return ["access-control-allow-origin", this.any ? "*" : origin];
  }

  /**
   * The headers of the gateway's 204 answer to a preflight: from an allowed origin the configured lists (whatever
   * was asked: the browser does the comparing), from any other none at all. `Vary: Origin` either way, so a cache
   * never serves one origin's answer to another.
   */
  preflight(origin: string): HeaderPairs {
    const vary: [string, string] = ["vary", "Origin"];
    if (!this.allows(origin)) return [vary];
    return [this.allowOrigin(origin), ...this.preflightExtra, vary];
  }

  /**
   * The headers of any other answer (proxied or the gateway's own error) to a request with `Origin`. Shared,
   * built once per configured origin: a request from one costs a Map lookup.
   */
  actual(origin: string | undefined): SharedPairs {
    if (this.any) return origin === undefined ? NONE : this.actualAny;
    if (origin === undefined) return VARY_ORIGIN;
    const known = this.actualByOrigin.get(origin);
    if (known !== undefined) return known;
    // Allowed in another spelling (the compare ignores case): echoed as sent.
    return this.allows(origin) ? this.actualOf(origin) : VARY_ORIGIN;
  }

  private actualOf(origin: string): SharedPairs {
    return [this.allowOrigin(origin), ...this.actualExtra, ["vary", "Origin"]];
  }
}

/** Removes the upstream's own CORS headers from a response header object (in place). */
export function stripCorsHeaders(headers: Record<string, unknown>): void {
  // for-in, not Object.keys: no array per response.
  for (const name in headers) {
    // Any case (a HeaderBag's names are lowercase, other callers' may not be); the first letter rules most out.
    if (
      name.length > 15 &&
      (name.charCodeAt(0) | 0x20) === 0x61 &&
      name.toLowerCase().startsWith("access-control-")
    )
      delete headers[name];
  }
}
