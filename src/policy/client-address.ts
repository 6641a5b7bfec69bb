// Who the client is: the peer's address, or, behind trusted proxies, the right-most X-Forwarded-For hop that is not
// one of them; and whether the request came over https.
import { BlockList, isIP } from "node:net";

/** `::ffff:10.1.2.3` (an IPv4 peer on a dual-stack socket) is 10.1.2.3: one address, one rate-limit key. */
export function plainAddress(ip: string): string {
  return ip.startsWith("::ffff:") && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip;
}

/** The `trustedProxies` list, compiled once per config. */
export class TrustedProxies {
  private readonly list = new BlockList();
  readonly empty: boolean;

  constructor(cidrs: readonly string[]) {
    this.empty = cidrs.length === 0;
    for (const cidr of cidrs) {
      const [ip = "", bits] = cidr.split("/");
      const type = isIP(ip) === 6 ? "ipv6" : "ipv4";
      if (bits === undefined) this.list.addAddress(ip, type);
      else this.list.addSubnet(ip, Number(bits), type);
    }
  }

  has(ip: string): boolean {
    if (this.empty) return false;
    const plain = plainAddress(ip);
    const family = isIP(plain);
    if (family === 0) return false;
    return this.list.check(plain, family === 6 ? "ipv6" : "ipv4");
  }
}

/**
 * The client address of a request from `peer` carrying `forwardedFor`. Only a trusted peer's X-Forwarded-For is
 * read, right to left: each hop a trusted proxy added is skipped, and the first untrusted one is the client (the
 * entries left of it are whatever the client chose to send). When every hop is trusted the left-most one is the
 * client; an entry that is not an address ends the walk at the hop that reported it.
 */
export function clientAddressOf(
  peer: string,
  forwardedFor: string | string[] | undefined,
  trusted: TrustedProxies,
): string {
  const from = plainAddress(peer);
  if (trusted.empty || forwardedFor === undefined || !trusted.has(from)) return from;
  const hops = (Array.isArray(forwardedFor) ? forwardedFor.join(",") : forwardedFor).split(",");
  let client = from;
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = stripPort(hops[i]!.trim());
    if (isIP(hop) === 0) return client;
    client = plainAddress(hop);
    if (!trusted.has(client)) return client;
  }
  return client;
}

// Some proxies write `1.2.3.4:5678` or `[2001:db8::1]:443`.
function stripPort(hop: string): string {
  if (hop.startsWith("[")) {
    const end = hop.indexOf("]");
    return end > 0 ? hop.slice(1, end) : hop;
  }
  const colon = hop.indexOf(":");
  return colon > 0 && hop.indexOf(":", colon + 1) < 0 ? hop.slice(0, colon) : hop;
}

/** True when the gateway terminated TLS, or a trusted proxy said `X-Forwarded-Proto: https`. */
export function cameOverHttps(
  encrypted: boolean,
  peer: string,
  forwardedProto: string | string[] | undefined,
  trusted: TrustedProxies,
): boolean {
  if (encrypted) return true;
  if (typeof forwardedProto !== "string" || !trusted.has(peer)) return false;
  // A chain of proxies may list one value per hop; the first is what the client used.
  return forwardedProto.split(",")[0]!.trim().toLowerCase() === "https";
}
