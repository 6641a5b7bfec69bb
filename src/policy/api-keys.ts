// API keys: stored as SHA-256 digests only, and a presented key compared with every stored one in constant time.
import { createHash, timingSafeEqual } from "node:crypto";

export function sha256Hex(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

/** The keys of one auth policy. */
export class ApiKeys {
  private readonly digests: { name: string; digest: Buffer }[];

  constructor(entries: readonly { name: string; sha256: string }[]) {
    this.digests = entries.map((e) => ({ name: e.name, digest: Buffer.from(e.sha256, "hex") }));
  }

  get size(): number {
    return this.digests.length;
  }

  /**
   * The name of the key `presented` is, or undefined. Digests have one length, and every stored digest is
   * compared (no early exit), so the time taken says nothing about which key, or how much of one, matched.
   */
  match(presented: string): string | undefined {
    const digest = createHash("sha256").update(presented).digest();
    let found: string | undefined;
    for (const e of this.digests) {
      if (timingSafeEqual(digest, e.digest) && found === undefined) found = e.name;
    }
    return found;
  }
}
