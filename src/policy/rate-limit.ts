// Rate limits (the only rate-limiter-flexible import): per-key fixed windows in memory (exact across workers through
// the library's cluster limiter), or in Redis with this gateway's memory limit as insurance; the key derivation with
// a bounded key space; and the RateLimit header syntax of draft-ietf-httpapi-ratelimit-headers (-08 and later).
import cluster from "node:cluster";
import { createHash } from "node:crypto";
import { isIP } from "node:net";
import {
  BurstyRateLimiter,
  RateLimiterCluster,
  RateLimiterClusterMaster,
  RateLimiterMemory,
  RateLimiterRedis,
  RateLimiterRes,
  type RateLimiterAbstract,
} from "rate-limiter-flexible";
import type { IncomingHttpHeaders } from "node:http";
import type { RateLimitConfig, RateLimitKey } from "../config/types.ts";
import type { Logger } from "../log/log.ts";

export interface RateLimitDecision {
  allowed: boolean;
  /** Requests left in the current window. */
  remaining: number;
  /** ms until the window resets (for a rejection: until a request may pass). */
  resetMs: number;
}

// ---- Header syntax (pure) ----

/** `"NAME";q=QUOTA;w=WINDOW`: one item of RateLimit-Policy. */
export function policyItem(name: string, quota: number, windowSeconds: number): string {
  return `"${name}";q=${quota};w=${windowSeconds}`;
}

/** `"NAME";r=REMAINING;t=RESET`: one item of RateLimit, t in whole seconds. */
export function stateItem(name: string, remaining: number, resetMs: number): string {
  return `"${name}";r=${Math.max(0, remaining)};t=${Math.max(0, Math.ceil(resetMs / 1000))}`;
}

/** Retry-After: whole seconds, at least 1 (a 0 invites an immediate retry that fails again). */
export function retryAfter(resetMs: number): string {
  return String(Math.max(1, Math.ceil(resetMs / 1000)));
}

// ---- Keys (pure) ----

/** The /64 of an IPv6 address: one subscriber gets a /64 (or more), so each of its addresses is the same client. */
export function ipv6Prefix64(ip: string): string {
  const zone = ip.indexOf("%");
  const addr = (zone >= 0 ? ip.slice(0, zone) : ip).toLowerCase();
  const [head = "", tail] = addr.split("::");
  const left = head ? head.split(":") : [];
  const right = tail !== undefined && tail !== "" ? tail.split(":") : [];
  // An embedded IPv4 tail (::ffff:1.2.3.4) is two groups; only the first four groups matter here anyway.
  const groups =
    tail === undefined
      ? left
      : [...left, ...Array<string>(8 - left.length - right.length).fill("0"), ...right];
  return `${groups
    .slice(0, 4)
    .map((g) => g.replace(/^0+(?=.)/, ""))
    .join(":")}::/64`;
}

/** A client address as a rate-limit key: IPv4 as is, IPv6 by its /64. */
export function addressKey(client: string): string {
  // No colon, no IPv6: most clients skip the parse.
  return client.includes(":") && isIP(client) === 6 ? ipv6Prefix64(client) : client;
}

// Long header values would make long keys: past this length a key is its digest.
const MAX_KEY_TEXT = 128;

/**
 * The key one request counts against. `subject` without an authenticated subject, and `header:NAME` without
 * that header, fall back to the client address, so leaving a header out never escapes the limit.
 */
export function rateLimitKeyOf(
  key: RateLimitKey,
  client: string,
  subject: string | undefined,
  headers: IncomingHttpHeaders,
): string {
  if (key.kind === "subject" && subject !== undefined) return `s:${subject}`;
  if (key.kind === "header") {
    const v = headers[key.name];
    const text = Array.isArray(v) ? v[0] : v;
    if (text) {
      return text.length > MAX_KEY_TEXT
        ? `h#${createHash("sha256").update(text).digest("base64url")}`
        : `h:${text}`;
    }
  }
  return `a:${addressKey(client)}`;
}

// ---- The bounded memory store ----

/** Counters shared by keys that arrive while the store is full: a spray of keys shares these few budgets. */
const OVERFLOW_BUCKETS = 1024;

function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

interface MemoryInternals {
  _memoryStorage: {
    _storage: Map<string, unknown>;
    incrby(key: string, value: number, durationSec: number): RateLimiterRes;
  };
  getKey(key: string | number): string;
  points: number;
  duration: number;
  blockDuration: number;
  execEvenly: boolean;
}

/** The key `key` counts against in a limiter bounded to `maxKeys`: its own, or an overflow counter while full. */
function boundedKey(internals: MemoryInternals, maxKeys: number, key: string | number): string | number {
  const storage = internals._memoryStorage._storage;
  if (storage.size < maxKeys || storage.has(internals.getKey(key))) return key;
  return `~overflow:${fnv1a(String(key)) % OVERFLOW_BUCKETS}`;
}

/**
 * Caps the keys a memory limiter holds. rate-limiter-flexible keeps one record and one timer per key for a whole
 * window, so a spray of distinct keys (random source addresses, random header values) would grow memory without
 * limit. Past `maxKeys`, a new key counts against one of a fixed set of overflow counters instead: still limited
 * (never unlimited), at the price of sharing a budget while the store is full. Reaches into the library's
 * storage map (pinned ~11.4; a unit test checks the shape).
 */
export function boundKeys(limiter: RateLimiterMemory, maxKeys: number): RateLimiterMemory {
  const internals = limiter as unknown as MemoryInternals;
  const consume = limiter.consume.bind(limiter);
  limiter.consume = (key, points, options) => consume(boundedKey(internals, maxKeys, key), points, options);
  return limiter;
}

/**
 * RateLimiterMemory.consume(key) of a bounded limiter without its promise: the same storage call (`incrby` on the
 * library's own store, so records, timers and dump/restore stay the library's) and the same arithmetic, for the
 * options this module sets (no blockDuration, no execEvenly: any other gets undefined, and the promise path). A
 * promise per request and its microtask hop cost more than the count itself (docs/benchmarks.md,
 * bench:policies). A unit test holds it to the library's consume, decision for decision.
 */
function syncCounter(
  limiter: RateLimiterMemory,
  maxKeys: number,
): ((key: string) => RateLimitDecision) | undefined {
  const internals = limiter as unknown as MemoryInternals;
  if (internals.blockDuration > 0 || internals.execEvenly) return undefined;
  const store = internals._memoryStorage;
  return (key) => {
    const rlKey = internals.getKey(boundedKey(internals, maxKeys, key));
    const consumed = store.incrby(rlKey, 1, internals.duration);
    return {
      allowed: consumed.consumedPoints <= internals.points,
      remaining: Math.max(internals.points - consumed.consumedPoints, 0),
      resetMs: consumed.msBeforeNext,
    };
  };
}

/** Keys held by a bounded memory limiter (bench and tests). */
export function storedKeys(limiter: RateLimiterMemory): number {
  return (limiter as unknown as MemoryInternals)._memoryStorage._storage.size;
}

// The primary's cluster limiters are bounded too; they are created from the workers' options, so the bound
// travels in the key prefix (`…:max=N`).
const MAX_IN_PREFIX = /:max=(\d+)$/;

let primarySetUp = false;

/**
 * Call once in the cluster primary before forking workers: it keeps the counters of every `store: memory` rate
 * limit, so the limit is exact for the whole gateway whatever the number of workers.
 */
export function setupRateLimitPrimary(): void {
  if (primarySetUp) return;
  primarySetUp = true;
  const master = new RateLimiterClusterMaster() as unknown as {
    _rateLimiters: Record<string, RateLimiterMemory>;
  };
  master._rateLimiters = new Proxy<Record<string, RateLimiterMemory>>(
    {},
    {
      set(target, prefix: string, limiter: RateLimiterMemory) {
        const max = MAX_IN_PREFIX.exec(prefix);
        target[prefix] = max ? boundKeys(limiter, Number(max[1])) : limiter;
        return true;
      },
    },
  );
}

// ---- One limit ----

export interface RateLimitDeps {
  log: Logger;
  /** An ioredis client, for `store: redis`. */
  redis?: unknown;
  /** Prefix of the Redis keys (the top-level redis.keyPrefix). */
  redisPrefix?: string;
}

type Consumer = Pick<BurstyRateLimiter, "consume">;

/**
 * The burst refills once a minute (or once per window, when the window is longer): over a span of T seconds at most
 * rate × (T + 1) + burst requests pass for spans up to a minute, the contract's bound (docs/policies.md).
 */
const BURST_WINDOW_S = 60;

function layered(
  make: (opts: { keyPrefix: string; points: number; duration: number }) => RateLimiterAbstract,
  prefix: string,
  cfg: RateLimitConfig,
): Consumer {
  const duration = cfg.window / 1000;
  const main = make({ keyPrefix: prefix, points: cfg.points, duration });
  if (cfg.burst === 0) return main;
  const burst = make({
    keyPrefix: `${prefix}:burst`,
    points: cfg.burst,
    duration: Math.max(duration, BURST_WINDOW_S),
  });
  return new BurstyRateLimiter(main, burst);
}

/**
 * The synchronous decision of a memory limit, with its burst layer: what BurstyRateLimiter.consume resolves or
 * rejects with (the burst is asked only once the window's points are spent; the wait is the nearer of the two).
 */
function decideNow(
  main: RateLimiterMemory,
  burst: RateLimiterMemory | undefined,
  maxKeys: number,
): ((key: string) => RateLimitDecision) | undefined {
  const count = syncCounter(main, maxKeys);
  const countBurst = burst ? syncCounter(burst, maxKeys) : undefined;
  if (!count || (burst && !countBurst)) return undefined;
  return (key) => {
    const r = count(key);
    if (r.allowed || !countBurst) return r;
    const b = countBurst(key);
    return { allowed: b.allowed, remaining: r.remaining, resetMs: Math.min(r.resetMs, b.resetMs) };
  };
}

/**
 * One rateLimit policy's counters. Reject only: nothing is ever delayed (a queue holds sockets open, which is what
 * a flood wants).
 */
export class RateLimit {
  /** The RateLimit-Policy item of this limit. */
  readonly policyItem: string;
  private readonly primary: Consumer;
  /** The gateway's own memory limit, when the primary store is Redis or the cluster primary: used while it fails. */
  private readonly insurance: Consumer | undefined;
  private storeDown = false;
  /** The memory limiter of a single process, for the bench and tests. */
  readonly memory: RateLimiterMemory | undefined;
  /** The same count without a promise, when the store is this process's memory (neither Redis nor cluster). */
  private readonly now: ((key: string) => RateLimitDecision) | undefined;
  /** `"NAME";r=`: the fixed head of this limit's RateLimit item. */
  private readonly stateHead: string;

  constructor(
    readonly name: string,
    readonly config: RateLimitConfig,
    private readonly deps: RateLimitDeps,
  ) {
    this.policyItem = policyItem(name, config.points, config.window / 1000);
    this.stateHead = `"${name}";r=`;
    const id = createHash("sha256").update(JSON.stringify(config)).digest("hex").slice(0, 12);
    const local = (prefix: string) => {
      const mems: RateLimiterMemory[] = [];
      const c = layered(
        (o) => {
          const m = boundKeys(new RateLimiterMemory(o), config.maxKeys);
          mems.push(m);
          return m;
        },
        prefix,
        config,
      );
      return { consumer: c, main: mems[0]!, burst: mems[1] };
    };
    if (config.store === "redis" && deps.redis !== undefined) {
      const prefix = `${deps.redisPrefix ?? "gateway"}:rl:${name}:${id}`;
      this.primary = layered(
        (o) =>
          new RateLimiterRedis({
            ...o,
            storeClient: deps.redis,
            rejectIfRedisNotReady: true,
            // Keys over the limit are answered from memory until their window ends: no Redis trip per rejected request.
            inMemoryBlockOnConsumed: o.points + 1,
          }),
        prefix,
        config,
      );
      this.insurance = local(`rl:${name}:${id}`).consumer;
    } else if (cluster.isWorker) {
      this.primary = layered(
        (o) =>
          new RateLimiterCluster({
            ...o,
            keyPrefix: `${o.keyPrefix}:max=${config.maxKeys}`,
            timeoutMs: 2_000,
          }),
        `rl:${name}:${id}`,
        config,
      );
      this.insurance = local(`rl:${name}:${id}`).consumer;
    } else {
      const l = local(`rl:${name}:${id}`);
      this.primary = l.consumer;
      this.memory = l.main;
      this.now = decideNow(l.main, l.burst, config.maxKeys);
    }
  }

  /**
   * Counts one request against `key` at once, or returns undefined when the store must be asked (Redis, the
   * cluster primary): then `consume`. Same counters and same decisions as `consume` on a memory store.
   */
  consumeNow(key: string): RateLimitDecision | undefined {
    return this.now?.(key);
  }

  /** The RateLimit item of a decision of this limit: `stateItem(name, ...)` with its head built once. */
  stateItem(d: RateLimitDecision): string {
    return `${this.stateHead}${Math.max(0, d.remaining)};t=${Math.max(0, Math.ceil(d.resetMs / 1000))}`;
  }

  /** Counts one request against `key`. */
  async consume(key: string): Promise<RateLimitDecision> {
    try {
      const res = await this.primary.consume(key);
      if (this.storeDown) this.storeBack();
      return { allowed: true, remaining: res.remainingPoints, resetMs: res.msBeforeNext };
    } catch (err) {
      if (err instanceof RateLimiterRes) {
        if (this.storeDown) this.storeBack();
        return { allowed: false, remaining: 0, resetMs: err.msBeforeNext };
      }
      if (!this.insurance) throw err;
      this.storeFailed(err);
      return this.consumeInsured(key);
    }
  }

  private async consumeInsured(key: string): Promise<RateLimitDecision> {
    try {
      const res = await this.insurance!.consume(key);
      return { allowed: true, remaining: res.remainingPoints, resetMs: res.msBeforeNext };
    } catch (err) {
      if (err instanceof RateLimiterRes) return { allowed: false, remaining: 0, resetMs: err.msBeforeNext };
      throw err;
    }
  }

  // Logged once per outage, not once per request.
  private storeFailed(err: unknown): void {
    if (this.storeDown) return;
    this.storeDown = true;
    const store = this.config.store === "redis" ? "redis" : "cluster";
    this.deps.log.warn("rate_limit_store_down", {
      policy: this.name,
      store,
      error: err instanceof Error ? err.message : String(err),
      fallback: "this gateway's memory limit",
    });
  }

  private storeBack(): void {
    this.storeDown = false;
    this.deps.log.info("rate_limit_store_up", { policy: this.name });
  }
}
