// Port choice (pure): a preferred port or the first free one of a type's range, then of its fallbacks, per host.

export interface PortRange {
  first: number;
  last: number;
}

export interface TypeSpec {
  range: PortRange;
  /** Another type whose range is used when this one is full. */
  fallback?: string;
}

export type TypeTable = ReadonlyMap<string, TypeSpec>;

export interface PortRequest {
  type: string;
  preferred?: number;
  required?: boolean;
}

export type PortChoice =
  | { ok: true; port: number; range: string }
  | { ok: false; error: "port_unavailable" | "range_exhausted" | "unknown_type" };

export function parseRange(text: string): PortRange | undefined {
  const m = /^(\d{1,5})-(\d{1,5})$/.exec(text.trim());
  if (!m) return undefined;
  const first = Number(m[1]);
  const last = Number(m[2]);
  if (first < 1 || last > 65535 || first > last) return undefined;
  return { first, last };
}

export function formatRange(r: PortRange): string {
  return `${r.first}-${r.last}`;
}

/** The ranges tried for a type, in order: its own, then each fallback once (a cycle stops where it closes). */
export function rangeChain(types: TypeTable, type: string): string[] {
  const chain: string[] = [];
  for (let t: string | undefined = type; t !== undefined && !chain.includes(t); t = types.get(t)?.fallback) {
    if (!types.has(t)) break;
    chain.push(t);
  }
  return chain;
}

/**
 * `taken(port)` says whether a port is unusable on the allocation's host: allocated there, used by a static
 * upstream or a listener of the gateway there, reserved, or found bound by the advisory probe. A preferred port
 * may lie outside the type's range.
 */
export function choosePort(req: PortRequest, types: TypeTable, taken: (port: number) => boolean): PortChoice {
  if (!types.has(req.type)) return { ok: false, error: "unknown_type" };
  if (req.preferred !== undefined) {
    if (!taken(req.preferred)) return { ok: true, port: req.preferred, range: req.type };
    if (req.required) return { ok: false, error: "port_unavailable" };
  }
  for (const t of rangeChain(types, req.type)) {
    const { first, last } = types.get(t)!.range;
    for (let port = first; port <= last; port++) if (!taken(port)) return { ok: true, port, range: t };
  }
  return { ok: false, error: "range_exhausted" };
}

/** A type's capacity: its range minus the reserved ports in it. */
export function capacity(range: PortRange, reserved: ReadonlySet<number>): number {
  let n = range.last - range.first + 1;
  for (const p of reserved) if (p >= range.first && p <= range.last) n--;
  return n;
}

/** The first pair of overlapping ranges, for the config check. */
export function findOverlap(
  ranges: readonly { type: string; range: PortRange }[],
): [string, string] | undefined {
  for (let i = 0; i < ranges.length; i++) {
    for (let j = i + 1; j < ranges.length; j++) {
      const a = ranges[i]!;
      const b = ranges[j]!;
      if (a.range.first <= b.range.last && b.range.first <= a.range.last) return [a.type, b.type];
    }
  }
  return undefined;
}

/**
 * Hosts that name the same loopback interface share one port space: a service told to use 127.0.0.1:8100 and one
 * told localhost:8100 would collide. Other names are compared as written (case aside).
 */
export function hostKey(host: string): string {
  const h = host.toLowerCase().replace(/^\[(.*)\]$/, "$1");
  if (h === "localhost" || h === "::1" || h.startsWith("127.") || h.startsWith("::ffff:127."))
    return "127.0.0.1";
  return h.startsWith("::ffff:") ? h.slice(7) : h;
}
