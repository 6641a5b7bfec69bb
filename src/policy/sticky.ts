// Sticky sessions: the cookie value is an HMAC of the upstream's id (never its address), precomputed per upstream
// for the current secret and every previous one, so reading a cookie is a Map lookup and a secret can be rotated.
import { createHmac } from "node:crypto";
import type { StickyConfig } from "../config/types.ts";

/** The cookie value naming upstream `id` under `secret`: 22 characters of base64url (128 bits of HMAC-SHA256). */
export function stickyValue(secret: string, id: string): string {
  return createHmac("sha256", secret).update(`upstream:${id}`).digest("base64url").slice(0, 22);
}

/** The value of cookie `name` in a Cookie header, or undefined. */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  let at = 0;
  for (;;) {
    const i = header.indexOf(name, at);
    if (i < 0) return undefined;
    const before = i === 0 ? "" : header.slice(0, i).trimEnd();
    if ((before === "" || before.endsWith(";")) && header.charCodeAt(i + name.length) === 61 /* = */) {
      const end = header.indexOf(";", i);
      return header.slice(i + name.length + 1, end < 0 ? undefined : end).trim();
    }
    at = i + name.length;
  }
}

/** One sticky pool's cookie: which upstream a value names, and the Set-Cookie of each upstream. */
export class StickyCookie {
  private readonly byValue = new Map<string, string>();
  private readonly current = new Map<string, string>();
  private readonly setCookies = new Map<string, { plain: string; secure: string }>();

  constructor(
    readonly config: StickyConfig,
    upstreamIds: readonly string[],
  ) {
    for (const id of upstreamIds) this.add(id);
  }

  private add(id: string): void {
    const { config } = this;
    const maxAge = config.maxAge !== undefined ? `; Max-Age=${Math.floor(config.maxAge / 1000)}` : "";
    for (const secret of config.previousSecrets) {
      const old = stickyValue(secret, id);
      if (!this.byValue.has(old)) this.byValue.set(old, id);
    }
    const value = stickyValue(config.secret, id);
    this.byValue.set(value, id);
    this.current.set(id, value);
    const plain = `${config.cookie}=${value}; Path=/; HttpOnly; SameSite=Lax${maxAge}`;
    this.setCookies.set(id, { plain, secure: `${plain}; Secure` });
  }

  /**
   * The upstream id a request's Cookie header names (current or previous secret), or undefined. `members` are the
   * pool's upstreams now: members that joined after the config loaded (discovered ones) get their values here.
   */
  upstreamOf(
    cookieHeader: string | undefined,
    members: readonly { readonly id: string }[] = [],
  ): string | undefined {
    const value = readCookie(cookieHeader, this.config.cookie);
    if (value === undefined) return undefined;
    for (const m of members) if (!this.current.has(m.id)) this.add(m.id);
    return this.byValue.get(value);
  }

  /** True when the cookie carries the current secret's value for `id` (no need to set it again). */
  isCurrent(cookieHeader: string | undefined, id: string): boolean {
    const value = readCookie(cookieHeader, this.config.cookie);
    return value !== undefined && value === this.current.get(id);
  }

  /** The Set-Cookie naming upstream `id`; Secure when the request came over https. */
  setCookie(id: string, secure: boolean): string {
    if (!this.current.has(id)) this.add(id);
    const c = this.setCookies.get(id)!;
    return secure ? c.secure : c.plain;
  }
}
