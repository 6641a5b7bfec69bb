// JWT verification (the only jose import): a static key imported once or a remote JWKS, the claim rules of the
// contract, and a bounded cache of verified tokens in front of jose, whose WebCrypto verify costs 44-187 µs.
import {
  createRemoteJWKSet,
  customFetch,
  errors,
  importSPKI,
  jwksCache,
  jwtVerify,
  type CryptoKey,
  type JWSHeaderParameters,
  type JWTPayload,
} from "jose";
import type { JwtAlgorithm, JwtConfig } from "../config/types.ts";

export type JwtFailure = "invalid" | "expired" | "not_yet_valid" | "claims" | "key_unavailable";

export type JwtResult = { ok: true; subject: string } | { ok: false; reason: JwtFailure };

export interface JwtVerifierOptions {
  /** Clock in ms (tests move it). */
  now?: () => number;
  /** Fetch used for the JWKS (tests serve one without a socket). */
  fetch?: (url: string, init: RequestInit) => Promise<Response>;
  /** Verified tokens kept at most. */
  cacheSize?: number;
}

/** Seconds of clock skew allowed on `nbf` (and `iat`); `exp` gets none. */
export const NBF_LEEWAY_S = 30;
/** A verified token is trusted from the cache for at most this long (and never past its exp). */
export const CACHE_TTL_MS = 60_000;
/** An unknown `kid` refetches the JWKS at most this often (jose's cooldown). */
export const JWKS_COOLDOWN_MS = 30_000;

type KeySource = (header: JWSHeaderParameters) => Promise<CryptoKey>;

interface Cached {
  subject: string;
  until: number;
}

export class JwtVerifier {
  private readonly now: () => number;
  private readonly cacheSize: number;
  private readonly cache = new Map<string, Cached>();
  private readonly keys: KeySource;
  /** Filled by jose on each JWKS fetch: how a changed key set is noticed. */
  private readonly jwksState: { uat?: number; jwks?: unknown } = {};
  private jwksSeen: number | undefined;
  private jwksText = "";

  constructor(
    readonly config: JwtConfig,
    options: JwtVerifierOptions = {},
  ) {
    this.now = options.now ?? Date.now;
    this.cacheSize = options.cacheSize ?? 10_000;
    this.keys = this.keySource(options);
  }

  private keySource(options: JwtVerifierOptions): KeySource {
    const { config } = this;
    if (config.jwksUrl !== undefined) {
      const set = createRemoteJWKSet(new URL(config.jwksUrl), {
        cooldownDuration: JWKS_COOLDOWN_MS,
        timeoutDuration: 5_000,
        [jwksCache]: this.jwksState as Record<string, never>,
        ...(options.fetch ? { [customFetch]: options.fetch } : {}),
      });
      return (header) => set(header);
    }
    // A static key is imported once per algorithm (a CryptoKey is bound to one), when first needed.
    const imported = new Map<string, Promise<CryptoKey>>();
    const importFor = (alg: JwtAlgorithm): Promise<CryptoKey> => {
      if (config.secret !== undefined) {
        // A CryptoKey, not the raw bytes: jose then skips its per-verify import (70 -> 44 µs, notes §2.2).
        const hash = { name: `SHA-${alg.slice(2)}` };
        const bytes = Buffer.from(config.secret, "utf8");
        return crypto.subtle.importKey("raw", bytes, { name: "HMAC", hash }, false, ["verify"]);
      }
      return importSPKI(config.publicKey!, alg);
    };
    return async (header) => {
      const alg = header.alg as JwtAlgorithm;
      if (!config.algorithms.includes(alg)) throw new errors.JOSEAlgNotAllowed("algorithm not allowed");
      let key = imported.get(alg);
      if (!key) {
        key = importFor(alg);
        imported.set(alg, key);
      }
      return key;
    };
  }

  /** Verified tokens in the cache now. */
  get cached(): number {
    return this.cache.size;
  }

  /**
   * The subject of a token verified before and still within its cache TTL, or undefined (then `verify`). Lets a
   * warm request stay synchronous: no promise, no microtask hop.
   */
  cachedSubject(token: string): string | undefined {
    const hit = this.cache.get(token);
    if (hit === undefined) return undefined;
    if (hit.until > this.now()) return hit.subject;
    this.cache.delete(token);
    return undefined;
  }

  /** Verifies a compact JWS; a token verified before is answered from the cache until its TTL. */
  async verify(token: string): Promise<JwtResult> {
    const cached = this.cachedSubject(token);
    if (cached !== undefined) return { ok: true, subject: cached };
    const now = this.now();
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.keys, {
        algorithms: this.config.algorithms,
        ...(this.config.issuer !== undefined ? { issuer: this.config.issuer } : {}),
        ...(this.config.audience !== undefined ? { audience: this.config.audience } : {}),
        requiredClaims: ["exp"],
        clockTolerance: NBF_LEEWAY_S,
        currentDate: new Date(now),
      }));
    } catch (err) {
      this.noticeJwksChange();
      return { ok: false, reason: failureOf(err) };
    }
    this.noticeJwksChange();
    // jose's tolerance covers exp too; the contract gives leeway to nbf only.
    const expMs = (payload.exp ?? 0) * 1000;
    if (expMs <= now) return { ok: false, reason: "expired" };
    const subject = typeof payload.sub === "string" && payload.sub !== "" ? payload.sub : "jwt";
    this.remember(token, subject, Math.min(expMs, now + CACHE_TTL_MS));
    return { ok: true, subject };
  }

  private remember(token: string, subject: string, until: number): void {
    // Oldest first out: a Map iterates in insertion order.
    if (this.cache.size >= this.cacheSize) {
      const oldest = this.cache.keys().next().value;
      if (oldest !== undefined) this.cache.delete(oldest);
    }
    this.cache.set(token, { subject, until });
  }

  // A refetched JWKS that differs (a key rotated out, say) must not leave tokens of a removed key trusted.
  private noticeJwksChange(): void {
    const uat = this.jwksState.uat;
    if (uat === undefined || uat === this.jwksSeen) return;
    this.jwksSeen = uat;
    const text = JSON.stringify(this.jwksState.jwks);
    if (text !== this.jwksText) {
      if (this.jwksText !== "") this.cache.clear();
      this.jwksText = text;
    }
  }
}

function failureOf(err: unknown): JwtFailure {
  if (err instanceof errors.JWTExpired) return "expired";
  if (err instanceof errors.JWTClaimValidationFailed) return err.claim === "nbf" ? "not_yet_valid" : "claims";
  if (err instanceof errors.JWKSTimeout) return "key_unavailable";
  if (err instanceof errors.JOSEError && err.code === "ERR_JOSE_GENERIC" && /fetch|JWKS/i.test(err.message))
    return "key_unavailable";
  return "invalid";
}
