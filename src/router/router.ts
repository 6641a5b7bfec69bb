// Owns route lookup: longest whole-segment prefix per host, then host-less, and the path sent upstream.
import type { RouteConfig } from "../config/types.ts";
import { encodedSlashesClimb, prefixDepth } from "./normalize.ts";

export interface RouteMatch {
  route: RouteConfig;
  /** The normalized path the upstream receives: minus the prefix with `stripPrefix`, always starting with `/`. */
  upstreamPath: string;
  /**
   * True when the path leaves the route's prefix once `%2F`/`%5C` are decoded (`/app/..%2F..%2Fetc`): the
   * contract answers it 400, since the upstream would serve what lies outside the prefix.
   */
  climbsOut: boolean;
}

const SLASH = 0x2f;
const DOT = 0x2e;

/**
 * FNV-1a over UTF-16 code units, folded to 30 bits so a key + 1 still fits a positive Int32. Computing
 * it incrementally over the path gives every candidate prefix's key in one pass, without slicing a string per
 * candidate; a hit is confirmed with startsWith, so collisions cost a comparison, never a wrong route.
 */
const FNV_OFFSET = 0x811c9dc5 | 0;
const FNV_PRIME = 0x01000193;
const KEY_MASK = 0x3fffffff;

function prefixKey(s: string): number {
  let h = FNV_OFFSET;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), FNV_PRIME);
  return h & KEY_MASK;
}

/**
 * Candidate prefixes of the path being matched, longest last: `lengths[k]` characters with key `keys[k]`.
 * Module-level scratch is safe because match() is synchronous and never re-entered.
 */
let candLengths = new Int32Array(64);
let candKeys = new Int32Array(64);

/**
 * Fills the scratch with the path's candidates and returns how many: at each `/` the prefix just before it (a
 * segment-boundary match) and the prefix up to and including it (a `/`-ending prefix matches what lies below),
 * then the whole path. Cost is one pass over the path, whatever the number of routes.
 */
function collectCandidates(path: string): number {
  const n = path.length;
  if (n * 2 + 1 > candLengths.length) {
    candLengths = new Int32Array(n * 2 + 1);
    candKeys = new Int32Array(n * 2 + 1);
  }
  let count = 0;
  let h = FNV_OFFSET;
  for (let i = 0; i < n; i++) {
    const c = path.charCodeAt(i);
    if (c === SLASH) {
      if (i > 0) {
        candLengths[count] = i;
        candKeys[count++] = h & KEY_MASK;
      }
      h = Math.imul(h ^ c, FNV_PRIME);
      if (i + 1 < n) {
        candLengths[count] = i + 1;
        candKeys[count++] = h & KEY_MASK;
      }
    } else {
      h = Math.imul(h ^ c, FNV_PRIME);
    }
  }
  if (n > 0) {
    candLengths[count] = n;
    candKeys[count++] = h & KEY_MASK;
  }
  return count;
}

/**
 * Prefixes of one host (or of no host). Lookup cost depends on the path's segments, not on the route count.
 *
 * An open-addressing table in one Int32Array rather than a Map: each probe reads one slot (key and route index side
 * by side, one cache line), which keeps a 10,000-route table about as fast as a 10-route one; a Map's separate
 * bucket and entry arrays cost two cache misses per probe once they outgrow L1.
 */
class PrefixTable {
  private readonly routes: RouteConfig[] = [];
  /** Pairs [key + 1, index into routes]; key + 1 === 0 marks an empty slot. Load factor stays at or below 1/2. */
  private slots = new Int32Array(16);
  private mask = 7;
  /** hasLength[n] === 1 when some prefix has n characters: most candidates are skipped without touching slots. */
  private hasLength = new Uint8Array(0);

  add(route: RouteConfig): void {
    // First one wins, so a (config-rejected) duplicate could never make the choice depend on insertion details.
    if (this.lookup(prefixKey(route.prefix), route.prefix, route.prefix.length) !== undefined) return;
    if ((this.routes.length + 1) * 2 > this.mask + 1) this.grow();
    this.routes.push(route);
    this.place(prefixKey(route.prefix), this.routes.length - 1);
    const n = route.prefix.length;
    if (n >= this.hasLength.length) {
      const grown = new Uint8Array(n + 1);
      grown.set(this.hasLength);
      this.hasLength = grown;
    }
    this.hasLength[n] = 1;
  }

  /** Longest candidate first; `count` candidates of `path` are in the scratch arrays. */
  find(path: string, count: number): RouteConfig | undefined {
    const has = this.hasLength;
    for (let k = count - 1; k >= 0; k--) {
      const len = candLengths[k]!;
      if (has[len] !== 1) continue;
      const r = this.lookup(candKeys[k]!, path, len);
      if (r !== undefined) return r;
    }
    return undefined;
  }

  /** The route whose prefix is the first `len` characters of `text` (hashing to `key`), if any. */
  private lookup(key: number, text: string, len: number): RouteConfig | undefined {
    const slots = this.slots;
    const tag = key + 1;
    for (let i = key & this.mask; ; i = (i + 1) & this.mask) {
      const t = slots[i * 2]!;
      if (t === 0) return undefined;
      if (t === tag) {
        // A colliding key is told apart by the text itself.
        const r = this.routes[slots[i * 2 + 1]!]!;
        if (r.prefix.length === len && text.startsWith(r.prefix)) return r;
      }
    }
  }

  private place(key: number, index: number): void {
    const slots = this.slots;
    let i = key & this.mask;
    while (slots[i * 2] !== 0) i = (i + 1) & this.mask;
    slots[i * 2] = key + 1;
    slots[i * 2 + 1] = index;
  }

  private grow(): void {
    const capacity = (this.mask + 1) * 2;
    this.slots = new Int32Array(capacity * 2);
    this.mask = capacity - 1;
    this.routes.forEach((r, index) => {
      this.place(prefixKey(r.prefix), index);
    });
  }
}

export class Router {
  private readonly anyHost = new PrefixTable();
  private readonly byHost = new Map<string, PrefixTable>();

  constructor(routes: readonly RouteConfig[]) {
    for (const route of routes) {
      if (route.host === undefined) {
        this.anyHost.add(route);
        continue;
      }
      // The route's host goes through the same canonical form as the Host header, so `Example.com.` or a stray
      // `:port` in the config cannot produce a route that silently never matches.
      const host = canonicalHost(route.host);
      let table = this.byHost.get(host);
      if (table === undefined) {
        table = new PrefixTable();
        this.byHost.set(host, table);
      }
      table.add(route);
    }
  }

  /** `path` is a normalized path without query; `host` is the Host header value as received. */
  match(host: string | undefined, path: string): RouteMatch | undefined {
    const count = collectCandidates(path);
    let route: RouteConfig | undefined;
    if (host !== undefined && this.byHost.size > 0) {
      route = this.byHost.get(canonicalHost(host))?.find(path, count);
    }
    route ??= this.anyHost.find(path, count);
    if (route === undefined) return undefined;
    const climbsOut = encodedSlashesClimb(path, prefixDepth(route.prefix));
    return { route, upstreamPath: route.stripPrefix ? stripPrefix(route.prefix, path) : path, climbsOut };
  }
}

function stripPrefix(prefix: string, path: string): string {
  // A `/`-ending prefix gives back its own final slash (`/api/weather/` from `/api/weather/today` is `/today`);
  // otherwise the rest starts at a `/` or is empty (the prefix itself), which the upstream sees as `/`.
  const cut = prefix.charCodeAt(prefix.length - 1) === SLASH ? prefix.length - 1 : prefix.length;
  return cut >= path.length ? "/" : path.slice(cut);
}

/** Lower-case host without `:port` or a trailing root dot, as virtual hosts compare in nginx and Envoy. */
function canonicalHost(value: string): string {
  let end = value.length;
  if (value.charCodeAt(0) === 0x5b /* [ */) {
    const close = value.indexOf("]");
    if (close > 0) end = close + 1;
  } else {
    const colon = value.indexOf(":");
    if (colon >= 0) end = colon;
  }
  if (end > 0 && value.charCodeAt(end - 1) === DOT) end--;
  return (end === value.length ? value : value.slice(0, end)).toLowerCase();
}
