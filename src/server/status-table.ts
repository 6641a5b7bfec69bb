// Renders the /admin/status report as the plain-text table `gateway status` prints.
import type { StatusReport } from "./status.ts";

/** Left-aligned columns two spaces apart, as `gateway status` and `gateway ports` print them. */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return rows
    .map((r) =>
      r
        .map((cell, i) => cell.padEnd(widths[i]!))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

export function formatStatusTable(report: StatusReport): string {
  const rows = [
    [
      "POOL",
      "TIER",
      "UPSTREAM",
      "URL",
      "WEIGHT",
      "ROLE",
      "HEALTH",
      "BREAKER",
      "DRAINED",
      "INFLIGHT",
      "LAST CHECK",
      "REASON",
    ],
  ];
  for (const p of report.pools) {
    for (const u of p.upstreams) {
      const last = u.lastCheck
        ? `${u.lastCheck.status ?? u.lastCheck.error ?? "-"} ${u.lastCheck.latencyMs}ms`
        : "-";
      rows.push([
        p.name,
        p.activeTierName,
        u.id,
        u.url,
        String(u.weight),
        (u.backup ? "backup" : "primary") + (u.discovered ? " (discovered)" : ""),
        u.health,
        u.breaker,
        u.drained ? "yes" : "no",
        String(u.inFlight),
        last,
        u.reason || "-",
      ]);
    }
  }
  const head = `config ${report.config.path} (sha256 ${report.config.hash.slice(0, 12)}, loaded ${report.config.loadedAt}), ready: ${report.ready ? "yes" : "no"}`;
  return `${head}\n${table(rows)}\n${configErrorLines(report)}`;
}

/** The last refused reload, when there is one: it stays until a good reload clears it. */
function configErrorLines(report: StatusReport): string {
  // An older gateway's report has no such field.
  const e = report.lastConfigError ?? null;
  if (!e) return "";
  const lines = e.errors.map((x) => `  ${x}`).join("\n");
  return `\nlast config error (${e.time}, ${e.trigger}; the running config stays):\n${lines}\n`;
}
