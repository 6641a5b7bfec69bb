// What the `gateway ports` commands print: tables and blocks of registry answers, and their argument parsing (pure).
import { constants } from "node:os";
import type { Allocation, Stats, TypeInfo } from "./registry-client.ts";
import { table } from "../server/status-table.ts";

export const DEFAULT_URL = "http://127.0.0.1:8002";

/** Where a `ports` command goes and with which key: flags first, then the environment (empty counts as unset). */
export function resolveTarget(
  opts: { url?: string; key?: string },
  env: Readonly<Record<string, string | undefined>>,
): { url: string; key: string | undefined } {
  const url = opts.url || env.GATEWAY_URL || DEFAULT_URL;
  const key = opts.key || env.GATEWAY_REGISTRY_KEY || env.GATEWAY_ADMIN_KEY || undefined;
  return { url, key };
}

/** A TCP port number as typed on the command line; throws with a sentence otherwise. */
export function parsePort(text: string): number {
  const n = /^\d{1,5}$/.test(text.trim()) ? Number(text) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new Error(`"${text}" is not a port (1-65535)`);
  return n;
}

/** The exit code of a wrapper that ran a child: the child's code, or 128 + the number of the signal that ended it. */
export function exitCodeFor(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  const n = signal ? (constants.signals as Record<string, number | undefined>)[signal] : undefined;
  return n !== undefined ? 128 + n : 1;
}

/** How long to wait before the next heartbeat: a third of the lease, so two may be lost before it expires. */
export function heartbeatDelay(ttlMs: number): number {
  return Math.max(50, Math.floor(ttlMs / 3));
}

/** "3s ago", "4m ago", "2h ago", "-" when there is no time. */
export function ago(iso: string | null | undefined, now: number): string {
  if (!iso) return "-";
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return iso;
  const s = Math.max(0, Math.round((now - t) / 1000));
  if (s < 120) return `${s}s ago`;
  if (s < 7200) return `${Math.round(s / 60)}m ago`;
  return `${Math.round(s / 3600)}h ago`;
}

/** The directory (or part of it) as a table, one allocation a row, ordered by name, host and port. */
export function formatAllocations(list: readonly Allocation[], now: number): string {
  if (list.length === 0) return "no allocations\n";
  const sorted = [...list].sort(
    (a, b) => a.service_name.localeCompare(b.service_name) || a.host.localeCompare(b.host) || a.port - b.port,
  );
  const rows = [["NAME", "TYPE", "HOST", "PORT", "STATUS", "HEALTH", "LAST HEARTBEAT", "POOLS", "ID"]];
  for (const a of sorted) {
    rows.push([
      a.service_name,
      a.service_type,
      a.host,
      String(a.port),
      a.status,
      a.health,
      ago(a.last_heartbeat, now),
      a.pools.length ? a.pools.join(",") : "-",
      a.allocation_id,
    ]);
  }
  return `${table(rows)}\n`;
}

/** One allocation as `key  value` lines (what allocate, heartbeat and release print). */
export function formatAllocation(a: Allocation): string {
  const rows = [
    ["id", a.allocation_id],
    ["service", `${a.service_name} (${a.service_type})`],
    ["host", a.host],
    ["port", String(a.port)],
    ["url", a.url],
    ["status", a.status],
    ["health", a.health],
    ["pools", a.pools.length ? a.pools.join(", ") : "-"],
    ["expires", a.expires_at],
    ["ttl", `${a.ttl_ms}ms`],
  ];
  return `${table(rows)}\n`;
}

export function formatStats(s: Stats): string {
  const head = `total ${s.total}, active ${s.active}, expired ${s.expired}`;
  const rows = [["TYPE", "ACTIVE", "EXPIRED", "CAPACITY", "UTILIZATION"]];
  for (const [type, t] of Object.entries(s.by_type).sort(([a], [b]) => a.localeCompare(b))) {
    rows.push([type, String(t.active), String(t.expired), String(t.capacity), percent(t.utilization)]);
  }
  return `${head}\n${table(rows)}\n`;
}

export function formatTypes(types: Record<string, TypeInfo>): string {
  const rows = [["TYPE", "RANGE", "FALLBACK", "CAPACITY", "ALLOCATED", "FREE"]];
  for (const [type, t] of Object.entries(types).sort(([a], [b]) => a.localeCompare(b))) {
    rows.push([type, t.range, t.fallback ?? "-", String(t.capacity), String(t.allocated), String(t.free)]);
  }
  return `${table(rows)}\n`;
}

/**
 * A ratio as a percentage with one decimal. It may pass 100 %: allocations that overflowed into a fallback
 * range keep the type they asked for. null: a type with no capacity (all of its range reserved).
 */
function percent(u: number | null): string {
  return u === null ? "-" : `${(u * 100).toFixed(1)}%`;
}
