// Owns request-target normalization: origin/absolute-form parsing, unreserved percent-decoding, dot-segment removal,
// and the check that encoded slashes cannot climb once an upstream decodes them.

export type NormalizeResult = { ok: true; path: string; query: string } | { ok: false; reason: string };

const SLASH = 0x2f;
const DOT = 0x2e;
const PERCENT = 0x25;
const QUESTION = 0x3f;
const HASH = 0x23;
const COLON = 0x3a;
const BACKSLASH = 0x5c;

const HEX_UPPER = "0123456789ABCDEF";

/**
 * Turns a raw request-target (req.url) into the path routing and the upstream see, plus the untouched query.
 *
 * Repeated slashes (`/a//b`) are kept as they are: collapsing them would make the gateway route and forward a
 * path the upstream never asked for, and some upstreams give `//` a meaning (e.g. an empty segment as a key).
 */
export function normalizeTarget(target: string): NormalizeResult {
  let start = 0;
  if (target.charCodeAt(0) !== SLASH) {
    if (target === "*") return bad("asterisk-form (*) is only for OPTIONS");
    start = absoluteFormPathStart(target);
    if (start < 0)
      return bad("request-target must be origin-form (/path) or absolute-form (http://host/path)");
    // `http://host` and `http://host?q` have an empty path, which HTTP treats as `/` (RFC 9112 §3.2.2).
    if (target.charCodeAt(start) !== SLASH) return normalizeTarget("/" + target.slice(start));
  }

  // One pass that finds the end of the path and whether anything in it may need rewriting. A segment that merely
  // starts with `.` (`/.well-known`) also takes the slow path: rare, and the slow path is exact.
  const len = target.length;
  let end = len;
  let hasPercent = false;
  let hasBackslash = false;
  let maybeDotSegment = false;
  for (let i = start; i < len; i++) {
    const c = target.charCodeAt(i);
    if (c === QUESTION) {
      end = i;
      break;
    }
    if (c === PERCENT) hasPercent = true;
    else if (c === BACKSLASH) hasBackslash = true;
    else if (c === DOT) {
      if (target.charCodeAt(i - 1) === SLASH) maybeDotSegment = true;
    } else if (c === HASH) {
      // A fragment is never part of a request-target (RFC 9112 §3.2); forwarding it would be guesswork.
      return bad("request-target must not contain a fragment (#)");
    }
  }

  const query = end < len ? target.slice(end + 1) : "";
  let raw = start === 0 && end === len ? target : target.slice(start, end);
  // WHATWG URL parsers (browsers, many frameworks) read `\` as `/`, so `/public/..\private` could climb out of
  // a stripped prefix upstream. Sent as %5C it is data everywhere.
  if (hasBackslash) raw = raw.replaceAll("\\", "%5C");
  if (!hasPercent && !maybeDotSegment) return { ok: true, path: raw, query };

  let decoded = raw;
  if (hasPercent || hasBackslash) {
    const d = decodeUnreserved(raw);
    if (d === undefined) return bad("malformed percent-encoding in path");
    decoded = d;
  }
  // Dot segments are resolved after decoding, so `%2e%2e` cannot smuggle a `..` past the router.
  const path = removeDotSegments(decoded);
  if (path === undefined) return bad("path climbs above the root");
  if (encodedSlashesClimb(path, 0)) return bad("path climbs above the root once %2F or %5C is decoded");
  return { ok: true, path, query };
}

function bad(reason: string): NormalizeResult {
  return { ok: false, reason };
}

/** Index of the path (or `?`, or the end) in `scheme://authority...`, or -1 when it is not http(s) absolute-form. */
function absoluteFormPathStart(target: string): number {
  const colon = target.indexOf(":");
  if (colon < 0) return -1;
  const scheme = target.slice(0, colon).toLowerCase();
  // Only http(s): a proxy that accepted `ftp://` or authority-form (`host:443`) here would route nonsense.
  if (scheme !== "http" && scheme !== "https") return -1;
  if (target.charCodeAt(colon + 1) !== SLASH || target.charCodeAt(colon + 2) !== SLASH) return -1;
  const authorityStart = colon + 3;
  let i = authorityStart;
  for (; i < target.length; i++) {
    const c = target.charCodeAt(i);
    if (c === SLASH || c === QUESTION) break;
    if (c === HASH) return -1;
  }
  // An http URI with an empty host is invalid (RFC 9110 §4.2.1).
  if (i === authorityStart || target.charCodeAt(authorityStart) === COLON) return -1;
  return i;
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

function isUnreserved(b: number): boolean {
  return (
    (b >= 0x61 && b <= 0x7a) || // a-z
    (b >= 0x41 && b <= 0x5a) || // A-Z
    (b >= 0x30 && b <= 0x39) || // 0-9
    b === 0x2d || // -
    b === 0x2e || // .
    b === 0x5f || // _
    b === 0x7e // ~
  );
}

/**
 * Decodes %XX only where XX is an unreserved character; every other escape keeps its meaning (`%2F` is data, not a
 * separator) and gets upper-case hex so equivalent spellings route and forward identically (RFC 3986 §6.2.2).
 */
function decodeUnreserved(raw: string): string | undefined {
  let out = "";
  let copied = 0;
  let i = raw.indexOf("%");
  while (i >= 0) {
    const hi = i + 2 < raw.length ? hexValue(raw.charCodeAt(i + 1)) : -1;
    const lo = hi >= 0 ? hexValue(raw.charCodeAt(i + 2)) : -1;
    if (lo < 0) return undefined;
    const byte = (hi << 4) | lo;
    out += raw.slice(copied, i);
    out += isUnreserved(byte) ? String.fromCharCode(byte) : "%" + HEX_UPPER[hi]! + HEX_UPPER[lo]!;
    copied = i + 3;
    i = raw.indexOf("%", copied);
  }
  return out + raw.slice(copied);
}

/**
 * RFC 3986 §5.2.4 remove_dot_segments, except that climbing above `/` is refused (undefined) rather than clamped:
 * such a request is an attack or a bug, and silently serving `/` would hide both.
 */
function removeDotSegments(path: string): string | undefined {
  if (!hasDotSegment(path)) return path;
  const parts = path.split("/");
  const out: string[] = [];
  // A trailing `.` or `..` names a directory, so the result keeps a trailing slash (`/a/b/..` is `/a/`).
  let trailingSlash = false;
  for (let k = 1; k < parts.length; k++) {
    const seg = parts[k]!;
    const last = k === parts.length - 1;
    if (seg === ".") {
      if (last) trailingSlash = true;
    } else if (seg === "..") {
      if (out.length === 0) return undefined;
      out.pop();
      if (last) trailingSlash = true;
    } else {
      out.push(seg);
    }
  }
  const joined = "/" + out.join("/");
  return trailingSlash && out.length > 0 ? joined + "/" : joined;
}

const ENCODED_SLASH = /%2F|%5C/gi;
const HAS_ENCODED_SLASH = /%2F|%5C/i;

/**
 * Whether a normalized path, read by an upstream that decodes `%2F` and `%5C` as separators (many do: PHP, some
 * Java containers, anything built on a WHATWG URL parser for `\`), would climb above its first `keep` segments:
 * `/app/..%2F..%2Fetc` stays below `/app/` here, but lands on `/etc` there. `keep` 0 means above `/`.
 */
export function encodedSlashesClimb(path: string, keep: number): boolean {
  if (path.indexOf("%") < 0) return false;
  if (!HAS_ENCODED_SLASH.test(path)) return false;
  const parts = path.replace(ENCODED_SLASH, "/").split("/");
  let depth = 0;
  for (let k = 1; k < parts.length; k++) {
    const seg = parts[k]!;
    if (seg === "..") {
      if (depth <= keep) return true;
      depth--;
    } else if (seg !== ".") {
      depth++;
    }
  }
  return false;
}

/** How many segments a route prefix spans: `/` 0, `/app` and `/app/` 1 (encoded slashes count as separators). */
export function prefixDepth(prefix: string): number {
  const parts = prefix.replace(ENCODED_SLASH, "/").split("/");
  return parts.length - 1 - (parts.at(-1) === "" ? 1 : 0);
}

function hasDotSegment(path: string): boolean {
  let i = path.indexOf("/.");
  while (i >= 0) {
    let j = i + 2;
    if (path.charCodeAt(j) === DOT) j++;
    if (j === path.length || path.charCodeAt(j) === SLASH) return true;
    i = path.indexOf("/.", i + 2);
  }
  return false;
}
