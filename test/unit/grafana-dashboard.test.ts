// Checks docs/grafana/gateway-dashboard.json: every PromQL expression names only metrics the gateway exports.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { GatewayMetrics } from "../../src/metrics/metrics.ts";

const DASHBOARD = new URL("../../docs/grafana/gateway-dashboard.json", import.meta.url);

interface Target {
  expr?: string;
  datasource?: { type?: string; uid?: string };
}
interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { type?: string; uid?: string };
  targets?: Target[];
  panels?: Panel[];
}
interface Variable {
  name: string;
  type: string;
  query?: string | { query?: string };
}
interface Dashboard {
  schemaVersion: number;
  uid: string;
  __inputs?: { name: string; type: string; pluginId: string }[];
  panels: Panel[];
  templating: { list: Variable[] };
}

const dashboard = JSON.parse(readFileSync(DASHBOARD, "utf8")) as Dashboard;

/** Every panel, rows' collapsed children included. */
function allPanels(panels: Panel[]): Panel[] {
  return panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);
}

/** Each PromQL expression with where it comes from, for the assertion messages. */
function expressions(): { where: string; expr: string }[] {
  const out: { where: string; expr: string }[] = [];
  for (const p of allPanels(dashboard.panels)) {
    for (const t of p.targets ?? []) if (t.expr) out.push({ where: `panel "${p.title}"`, expr: t.expr });
  }
  for (const v of dashboard.templating.list) {
    if (v.type !== "query") continue;
    const q = typeof v.query === "string" ? v.query : (v.query?.query ?? "");
    // label_values(SELECTOR, label) is Grafana's, not PromQL: its first argument is the selector.
    const m = /^label_values\((.*),\s*\w+\)$/s.exec(q.trim());
    out.push({ where: `variable $${v.name}`, expr: m ? m[1]! : q });
  }
  return out;
}

const PROMQL_WORDS = new Set([
  "by",
  "without",
  "on",
  "ignoring",
  "group_left",
  "group_right",
  "and",
  "or",
  "unless",
  "bool",
  "offset",
  "inf",
  "nan",
]);

/**
 * The metric names a PromQL expression reads. Strings, label matchers, ranges, grouping clauses and Grafana
 * variables go first; what is left that is neither a function call nor a keyword is a metric name.
 */
function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, '""')
    .replace(/\{[^}]*\}/g, " ")
    .replace(/\[[^\]]*\]/g, " ")
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, " ")
    .replace(/\$\{?\w+\}?/g, " ");
  const names = new Set<string>();
  for (const m of stripped.matchAll(/(?<![\w.:])[a-zA-Z_:][\w:]*/g)) {
    const isCall = /^\s*\(/.test(stripped.slice(m.index + m[0].length));
    if (!isCall && !PROMQL_WORDS.has(m[0].toLowerCase())) names.add(m[0]);
  }
  return [...names];
}

/** Each metric family of a real registry with the series names a scrape carries for it. */
async function exportedFamilies(): Promise<Map<string, string[]>> {
  const metrics = new GatewayMetrics();
  const families = new Map<string, string[]>();
  for (const m of await metrics.registry.getMetricsAsJSON()) {
    const histogram = String(m.type) === "histogram";
    families.set(m.name, histogram ? ["_bucket", "_sum", "_count"].map((s) => m.name + s) : [m.name]);
  }
  return families;
}

async function exportedNames(): Promise<Set<string>> {
  return new Set([...(await exportedFamilies()).values()].flat());
}

void test("the metric-name extractor reads selectors and skips functions, keywords, labels and variables", () => {
  assert.deepEqual(
    metricNames(
      'histogram_quantile(0.95, sum by (le, route) (rate(gateway_request_duration_seconds_bucket{route=~"$route", code!="a b"}[$__rate_interval])))',
    ),
    ["gateway_request_duration_seconds_bucket"],
  );
  assert.deepEqual(
    metricNames("sum(a_total) without (x) / on (pool) group_left b offset 5m > bool 1e3 and c unless d"),
    ["a_total", "b", "c", "d"],
  );
  assert.deepEqual(metricNames("gateway_upstream_up == 0"), ["gateway_upstream_up"]);
});

void test("the dashboard is an importable Grafana dashboard with a Prometheus data source input", () => {
  assert.ok(dashboard.schemaVersion >= 36, "schemaVersion");
  assert.ok(dashboard.uid);
  assert.deepEqual(
    dashboard.__inputs?.map((i) => [i.name, i.type, i.pluginId]),
    [["DS_PROMETHEUS", "datasource", "prometheus"]],
  );
  const panels = allPanels(dashboard.panels);
  const ids = panels.map((p) => p.id);
  assert.equal(new Set(ids).size, ids.length, "panel ids are unique");
  for (const p of panels) {
    if (p.type === "row") continue;
    assert.equal(p.datasource?.uid, "${DS_PROMETHEUS}", `panel "${p.title}" uses the input data source`);
    assert.ok(p.targets?.length, `panel "${p.title}" has a query`);
  }
});

void test("every PromQL expression of the dashboard names only metrics the gateway exports", async () => {
  const exported = await exportedNames();
  const exprs = expressions();
  assert.ok(exprs.length >= 15, `found only ${exprs.length} expressions`);
  const unknown: string[] = [];
  for (const { where, expr } of exprs) {
    const names = metricNames(expr);
    assert.ok(names.length > 0, `${where}: no metric in ${expr}`);
    for (const n of names) if (!exported.has(n)) unknown.push(`${where}: ${n}`);
  }
  assert.deepEqual(unknown, []);
});

void test("the dashboard shows every gateway_* metric the gateway exports", async () => {
  const used = new Set(expressions().flatMap(({ expr }) => metricNames(expr)));
  const missing = [...(await exportedFamilies())]
    .filter(([family, series]) => family.startsWith("gateway_") && !series.some((n) => used.has(n)))
    .map(([family]) => family);
  assert.deepEqual(missing, []);
});
