// API keys: stored as SHA-256 digests only, and a presented key compared with every stored one in constant time.
import { hash, timingSafeEqual } from "node:crypto";

export function sha256Hex(text: string): string {
  return hash("sha256", text, "hex");
}

/**
 * Distinct presented keys whose digest is kept. A client sends the same key on every request, and its sha256 is
 * most of an API key check (about 1-3 µs of 4); past this many distinct keys the oldest digest is dropped, so a
 * spray of random keys costs a digest each and never grows memory.
 */
export const DIGEST_CACHE_SIZE = 1024;
/** Longer presented keys are digested every time: 1,024 header-sized strings would hold megabytes. */
const MAX_CACHED_KEY = 256;

/** The keys of one auth policy. */
export class ApiKeys {
  private readonly digests: { name: string; digest: Buffer }[];
  /**
   * Presented key -> its digest. Private (#), so neither JSON nor util.inspect shows a presented key. Its lookup
   * time depends on the presented text alone, never on a stored key: the compare below still runs on digests.
   */
  readonly #seen = new Map<string, Buffer>();
  readonly #cacheSize: number;

  constructor(entries: readonly { name: string; sha256: string }[], cacheSize = DIGEST_CACHE_SIZE) {
    this.digests = entries.map((e) => ({ name: e.name, digest: Buffer.from(e.sha256, "hex") }));
    this.#cacheSize = cacheSize;
  }

  get size(): number {
    return this.digests.length;
  }

  /** Presented keys whose digest is cached now (tests). */
  get cachedDigests(): number {
    return this.#seen.size;
  }

  /**
   * The name of the key `presented` is, or undefined. Digests have one length, and every stored digest is
   * compared (no early exit), so the time taken says nothing about which key, or how much of one, matched.
   */
  match(presented: string): string | undefined {
    const digest = this.digestOf(presented);
    let found: string | undefined;
    for (const e of this.digests) {
      if (timingSafeEqual(digest, e.digest) && found === undefined) found = e.name;
    }
    return found;
  }

  private digestOf(presented: string): Buffer {
    if (presented.length > MAX_CACHED_KEY) return hash("sha256", presented, "buffer");
    const seen = this.#seen;
    let digest = seen.get(presented);
    if (digest === undefined) {
      digest = hash("sha256", presented, "buffer");
      // Oldest first out: a Map iterates in insertion order.
      if (seen.size >= this.#cacheSize) seen.delete(seen.keys().next().value!);
      seen.set(presented, digest);
    }
    return digest;
  }
}
