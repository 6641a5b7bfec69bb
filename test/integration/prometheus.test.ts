// A real Prometheus scrapes a running gateway; promtool lints /metrics and checks and unit-tests the alert rules.
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { parse, stringify } from "yaml";
import { createLogger } from "../../src/log/log.ts";
import { freePort } from "../helpers/processes.ts";
import { Gateway } from "../../src/server/gateway.ts";
import { LogCapture, poolConfig } from "../helpers/gateway.ts";
import { FakeUpstream } from "../helpers/upstream.ts";

const PROMETHEUS = "/usr/bin/prometheus";
const PROMTOOL = "/usr/bin/promtool";
const ALERTS = fileURLToPath(new URL("../../docs/prometheus/alerts.yml", import.meta.url));
const DASHBOARD = fileURLToPath(new URL("../../docs/grafana/gateway-dashboard.json", import.meta.url));

// In CI a missing binary is a broken setup (.ci/run installs the package), so only a developer may skip.
const missing = [PROMETHEUS, PROMTOOL].filter((p) => !existsSync(p));
const skip =
  missing.length && !process.env.CI
    ? `${missing.join(" and ")} missing (apt-get install prometheus); skipped because CI is not set`
    : false;

function requireTools(): void {
  assert.deepEqual(
    missing,
    [],
    "prometheus and promtool are required when CI is set (apt-get install prometheus)",
  );
}

/**
 * Findings `promtool check metrics` reports on prom-client's own default metrics (gauges named *_total), not on
 * anything the gateway declares. They go once src/metrics/metrics.ts drops or renames those three series;
 * any other finding fails the test.
 */
interface Run {
  code: number | null;
  out: string;
}

/** Runs a command to its end, feeding `input` on stdin; stdout and stderr together, as a person would read them. */
async function run(cmd: string, args: string[], input?: string): Promise<Run> {
  const child = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (c: Buffer) => (out += c.toString()));
  child.stderr.on("data", (c: Buffer) => (out += c.toString()));
  child.stdin.end(input ?? "");
  const [code] = (await once(child, "close")) as [number | null];
  return { code, out };
}

/** Starts a gateway as production runs it: with prom-client's default process and Node metrics. */
async function startGateway(t: TestContext, upstreams: FakeUpstream[]): Promise<Gateway> {
  const dir = await mkdtemp(join(tmpdir(), "gateway-prom-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const configPath = join(dir, "gateway.yaml");
  await writeFile(configPath, poolConfig(upstreams.map((u) => ({ url: u.url }))));
  const logs = new LogCapture();
  const gw = await Gateway.start({
    configPath,
    env: {},
    log: createLogger({ level: "warn", stream: logs }),
    defaultMetrics: true,
  });
  t.after(() => gw.stop());
  await gw.runHealthRound();
  return gw;
}

async function upstreams(t: TestContext, n: number): Promise<FakeUpstream[]> {
  const list = await Promise.all(Array.from({ length: n }, (_, i) => FakeUpstream.start({ name: `u${i}` })));
  t.after(() => Promise.all(list.map((u) => u.close())));
  return list;
}

/**
 * Polls `probe` until it returns a value. Prometheus is another process with no event to wait on, so this is
 * the one place that polls; the deadline keeps a broken setup from hanging the suite.
 */
async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      last = String(err);
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${last}` : ""}`);
    await delay(200);
  }
}

interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

class PrometheusServer {
  private output = "";
  private constructor(
    readonly base: string,
    private readonly child: ReturnType<typeof spawn>,
  ) {
    child.stdout?.on("data", (c: Buffer) => (this.output += c.toString()));
    child.stderr?.on("data", (c: Buffer) => (this.output += c.toString()));
  }

  /**
   * Prometheus 2.x has no update check and no usage reporting (see `prometheus --help-long`): it only talks to
   * the scrape targets in its config and to alertmanagers, and none is configured. Loopback address, a
   * throwaway TSDB, and warnings only in the log.
   */
  static async start(t: TestContext, config: string, dir: string): Promise<PrometheusServer> {
    const port = await freePort();
    const configFile = join(dir, "prometheus.yml");
    await writeFile(configFile, config);
    const check = await run(PROMTOOL, ["check", "config", configFile]);
    assert.equal(check.code, 0, `promtool check config:\n${check.out}`);
    const child = spawn(
      PROMETHEUS,
      [
        `--config.file=${configFile}`,
        `--web.listen-address=127.0.0.1:${port}`,
        `--storage.tsdb.path=${join(dir, "data")}`,
        "--log.level=warn",
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    const server = new PrometheusServer(`http://127.0.0.1:${port}`, child);
    t.after(() => server.stop());
    return server;
  }

  /** Reads the API; an early exit (bad flag, port taken) fails at once with what Prometheus said. */
  async api<T>(path: string): Promise<T> {
    if (this.child.exitCode !== null)
      throw new Error(`prometheus exited ${this.child.exitCode}:\n${this.output}`);
    const res = await fetch(this.base + path);
    const body = (await res.json()) as { status: string; data: T; error?: string };
    if (body.status !== "success") throw new Error(`${path}: ${body.error ?? res.status}`);
    return body.data;
  }

  async query(promql: string): Promise<Sample[]> {
    const data = await this.api<{ resultType: string; result: Sample[] }>(
      `/api/v1/query?query=${encodeURIComponent(promql)}`,
    );
    return data.result;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = once(this.child, "exit");
    this.child.kill("SIGTERM");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(timer);
  }
}

/** The dashboard's PromQL with Grafana's variables given values Prometheus can evaluate. */
function dashboardExpressions(): string[] {
  interface Panel {
    targets?: { expr?: string }[];
    panels?: Panel[];
  }
  const dash = JSON.parse(readFileSync(DASHBOARD, "utf8")) as {
    panels: Panel[];
    templating: { list: { type: string; query?: string | { query?: string } }[] };
  };
  const walk = (ps: Panel[]): string[] =>
    ps.flatMap((p) => [
      ...(p.targets ?? []).flatMap((t) => (t.expr ? [t.expr] : [])),
      ...walk(p.panels ?? []),
    ]);
  const vars = dash.templating.list
    .filter((v) => v.type === "query")
    .map((v) => (typeof v.query === "string" ? v.query : (v.query?.query ?? "")))
    .map((q) => /^label_values\((.*),\s*\w+\)$/s.exec(q.trim())?.[1] ?? q);
  return [...walk(dash.panels), ...vars].map((e) =>
    e
      .replaceAll("$__rate_interval", "1m")
      .replaceAll("$__range", "5m")
      .replace(/\$\{?(instance|pool|route)\}?/g, ".*"),
  );
}

void test(
  "a real Prometheus scrapes the gateway and reads its requests, upstream health and tier",
  { skip, timeout: 60_000 },
  async (t) => {
    requireTools();
    const ups = await upstreams(t, 2);
    const gw = await startGateway(t, ups);
    const REQUESTS = 7;
    for (let i = 0; i < REQUESTS; i++) {
      const res = await fetch(`${gw.url}/items/${i}`);
      assert.equal(res.status, 200);
      await res.arrayBuffer();
    }
    assert.equal(ups[0]!.hits + ups[1]!.hits, REQUESTS);
    const ids = gw.status().pools[0]!.upstreams.map((u) => u.id);

    const dir = await mkdtemp(join(tmpdir(), "prometheus-"));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const target = new URL(gw.url).host;
    // The alert rules ride along, so Prometheus itself loads and evaluates the shipped file.
    const prom = await PrometheusServer.start(
      t,
      stringify({
        global: { scrape_interval: "1s", scrape_timeout: "1s", evaluation_interval: "1s" },
        rule_files: [ALERTS],
        scrape_configs: [
          { job_name: "gateway", metrics_path: "/metrics", static_configs: [{ targets: [target] }] },
        ],
      }),
      dir,
    );

    // About 5 s: Prometheus' discovery manager hands new targets to the scraper on a 5 s tick.
    const up = await until("the gateway target to be up", async () => {
      const data = await prom.api<{
        activeTargets: { health: string; lastError: string; scrapeUrl: string }[];
      }>("/api/v1/targets");
      const tgt = data.activeTargets[0];
      return tgt?.health === "up" ? tgt : undefined;
    });
    assert.equal(up.scrapeUrl, `${gw.url}/metrics`);
    assert.equal(up.lastError, "");

    // The first scrape came after the requests, so the first answer must already be the exact count.
    const total = await until("gateway_requests_total", async () => {
      const r = await prom.query("sum(gateway_requests_total)");
      return r.length ? r : undefined;
    });
    assert.equal(total[0]!.value[1], String(REQUESTS));
    const byCode = await prom.query("sum by (method, code) (gateway_requests_total)");
    assert.deepEqual(
      byCode.map((s) => [s.metric, s.value[1]]),
      [[{ method: "GET", code: "200" }, String(REQUESTS)]],
    );
    const attempts = await prom.query("sum(gateway_upstream_requests_total)");
    assert.equal(attempts[0]?.value[1], String(REQUESTS));

    const upSeries = await prom.query("gateway_upstream_up");
    assert.deepEqual(
      Object.fromEntries(upSeries.map((s) => [s.metric.upstream, [s.metric.pool, s.metric.job, s.value[1]]])),
      Object.fromEntries(ids.map((id) => [id, ["app", "gateway", "1"]])),
    );
    const tier = await prom.query("gateway_pool_active_tier");
    assert.deepEqual(
      tier.map((s) => [s.metric.pool, s.value[1]]),
      [["app", "0"]],
    );

    // Every alert rule evaluates without error, and none fires on a healthy gateway.
    const groups = await until("the alert rules to be evaluated", async () => {
      const data = await prom.api<{
        groups: {
          name: string;
          rules: { name: string; health: string; state: string; lastError?: string }[];
        }[];
      }>("/api/v1/rules");
      const rules = data.groups.flatMap((g) => g.rules);
      return rules.length && rules.every((r) => r.health !== "unknown") ? data.groups : undefined;
    });
    const rules = groups.flatMap((g) => g.rules);
    assert.deepEqual(
      rules.filter((r) => r.health !== "ok").map((r) => `${r.name}: ${r.lastError ?? r.health}`),
      [],
    );
    assert.deepEqual(
      rules.filter((r) => r.state !== "inactive").map((r) => `${r.name}: ${r.state}`),
      [],
    );

    // The Grafana dashboard's queries parse and evaluate on a real Prometheus (the unit test checks names).
    const failed: string[] = [];
    for (const expr of dashboardExpressions()) {
      await prom.query(expr).catch((err: unknown) => failed.push(`${expr}\n  ${String(err)}`));
    }
    assert.deepEqual(failed, []);
  },
);

void test(
  "promtool check metrics finds nothing to fix in a scrape of /metrics",
  { skip, timeout: 30_000 },
  async (t) => {
    requireTools();
    const ups = await upstreams(t, 2);
    const gw = await startGateway(t, ups);
    // Traffic first, so the labelled counters and the histogram have series to lint.
    for (const path of ["/a", "/b"]) {
      const res = await fetch(gw.url + path);
      await res.arrayBuffer();
    }
    const res = await fetch(`${gw.url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
    const scrape = await res.text();
    // promtool passes empty input, so make sure the scrape is the real thing.
    for (const name of [
      "gateway_requests_total{",
      "gateway_request_duration_seconds_bucket{",
      "process_cpu",
    ]) {
      assert.ok(scrape.includes(name), `the scrape has ${name}`);
    }

    const lint = await run(PROMTOOL, ["check", "metrics"], scrape);
    const findings = lint.out.split("\n").filter((l) => l.trim() !== "");
    assert.deepEqual(findings, [], `promtool check metrics (exit ${lint.code}):\n${lint.out}`);
    assert.equal(lint.code, 0);
  },
);

// Unit tests of the alert rules: promtool evaluates them against made-up series in fake time, so "fires after
// a minute on backup" is checked without waiting a minute. Annotations are stripped from the copy under
// test (promtool compares them verbatim); `promtool check rules` below checks that their templates parse.
const RULE_TESTS = `
rule_files: [rules.yml]
evaluation_interval: 15s
tests:
  - name: pool on backup fires after a minute on the backups
    interval: 15s
    input_series:
      - series: 'gateway_pool_active_tier{instance="gw:8002",job="gateway",pool="app"}'
        values: '0 0 1x12'
      - series: 'gateway_pool_active_tier{instance="gw:8002",job="gateway",pool="steady"}'
        values: '0x14'
    alert_rule_test:
      - { eval_time: 1m, alertname: GatewayPoolOnBackup, exp_alerts: [] }
      - eval_time: 2m
        alertname: GatewayPoolOnBackup
        exp_alerts:
          - exp_labels: { severity: warning, instance: "gw:8002", job: gateway, pool: app }
  - name: a pool with nothing available fires after 30s
    interval: 15s
    input_series:
      - series: 'gateway_pool_active_tier{instance="gw:8002",job="gateway",pool="app"}'
        values: '1 -1x8'
    alert_rule_test:
      - { eval_time: 30s, alertname: GatewayPoolNoUpstream, exp_alerts: [] }
      - eval_time: 1m
        alertname: GatewayPoolNoUpstream
        exp_alerts:
          - exp_labels: { severity: critical, instance: "gw:8002", job: gateway, pool: app }
  - name: a breaker cycling open and half-open fires; one that closes again does not
    interval: 15s
    input_series:
      - series: 'gateway_upstream_breaker_state{instance="gw:8002",job="gateway",pool="app",upstream="a",state="closed"}'
        values: '1 0 0 0 0 0 0 0 0 0 0 0'
      - series: 'gateway_upstream_breaker_state{instance="gw:8002",job="gateway",pool="app",upstream="a",state="open"}'
        values: '0 1 1 0 1 1 0 1 1 0 1 1'
      - series: 'gateway_upstream_breaker_state{instance="gw:8002",job="gateway",pool="app",upstream="a",state="half_open"}'
        values: '0 0 0 1 0 0 1 0 0 1 0 0'
      - series: 'gateway_upstream_breaker_state{instance="gw:8002",job="gateway",pool="app",upstream="b",state="closed"}'
        values: '1 0 0 1 1 1 1 1 1 1 1 1'
      - series: 'gateway_upstream_breaker_state{instance="gw:8002",job="gateway",pool="app",upstream="b",state="open"}'
        values: '0 1 1 0 0 0 0 0 0 0 0 0'
      - series: 'gateway_upstream_breaker_state{instance="gw:8002",job="gateway",pool="app",upstream="b",state="half_open"}'
        values: '0x11'
    alert_rule_test:
      - { eval_time: 45s, alertname: GatewayBreakerOpen, exp_alerts: [] }
      - eval_time: 2m
        alertname: GatewayBreakerOpen
        exp_alerts:
          - exp_labels: { severity: warning, instance: "gw:8002", job: gateway, pool: app, upstream: a }
  - name: an upstream failing its checks for a minute fires
    interval: 15s
    input_series:
      - series: 'gateway_upstream_up{instance="gw:8002",job="gateway",pool="app",upstream="a"}'
        values: '1 0x10'
      - series: 'gateway_upstream_up{instance="gw:8002",job="gateway",pool="app",upstream="b"}'
        values: '1x10'
    alert_rule_test:
      - { eval_time: 45s, alertname: GatewayUpstreamDown, exp_alerts: [] }
      - eval_time: 2m
        alertname: GatewayUpstreamDown
        exp_alerts:
          - exp_labels: { severity: warning, instance: "gw:8002", job: gateway, pool: app, upstream: a }
  - name: a 5xx ratio over 5% fires after 5m, but not on a route with almost no traffic nor under 5%
    interval: 1m
    input_series:
      - series: 'gateway_requests_total{instance="gw:8002",job="gateway",route="api",method="GET",code="200"}'
        values: '0+60x12'
      - series: 'gateway_requests_total{instance="gw:8002",job="gateway",route="api",method="GET",code="502"}'
        values: '0+6x12'
      - series: 'gateway_requests_total{instance="gw:8002",job="gateway",route="quiet",method="GET",code="503"}'
        values: '0+1x12'
      - series: 'gateway_requests_total{instance="gw:8002",job="gateway",route="fine",method="GET",code="200"}'
        values: '0+600x12'
      - series: 'gateway_requests_total{instance="gw:8002",job="gateway",route="fine",method="GET",code="500"}'
        values: '0+1x12'
    alert_rule_test:
      - { eval_time: 3m, alertname: GatewayHigh5xxRatio, exp_alerts: [] }
      - eval_time: 10m
        alertname: GatewayHigh5xxRatio
        exp_alerts:
          - exp_labels: { severity: warning, instance: "gw:8002", job: gateway, route: api }
  - name: a failed reload fires for 15 minutes
    interval: 1m
    input_series:
      - series: 'gateway_config_reloads_total{instance="gw:8002",job="gateway",result="failure"}'
        values: '0 0 1x25'
      - series: 'gateway_config_reloads_total{instance="gw:8002",job="gateway",result="success"}'
        values: '0+1x26'
    alert_rule_test:
      - { eval_time: 1m, alertname: GatewayConfigReloadFailing, exp_alerts: [] }
      - eval_time: 3m
        alertname: GatewayConfigReloadFailing
        exp_alerts:
          - exp_labels: { severity: warning, instance: "gw:8002", job: gateway, result: failure }
      - { eval_time: 20m, alertname: GatewayConfigReloadFailing, exp_alerts: [] }
  - name: a managed upstream restarting over and over fires
    interval: 1m
    input_series:
      - series: 'gateway_managed_restarts_total{instance="gw:8002",job="gateway",pool="app",upstream="a"}'
        values: '0 1 2 3 4 5 6'
    alert_rule_test:
      - { eval_time: 1m, alertname: GatewayManagedUpstreamRestarting, exp_alerts: [] }
      - eval_time: 6m
        alertname: GatewayManagedUpstreamRestarting
        exp_alerts:
          - exp_labels: { severity: warning, instance: "gw:8002", job: gateway, pool: app, upstream: a }
`;

void test(
  "promtool accepts docs/prometheus/alerts.yml and its alerts fire when they should",
  { skip },
  async (t) => {
    requireTools();
    const rules = parse(readFileSync(ALERTS, "utf8")) as {
      groups: { rules: { alert?: string; annotations?: unknown }[] }[];
    };
    const count = rules.groups.flatMap((g) => g.rules).length;
    const check = await run(PROMTOOL, ["check", "rules", ALERTS]);
    assert.equal(check.code, 0, check.out);
    assert.match(check.out, new RegExp(`SUCCESS: ${count} rules found`));

    const dir = await mkdtemp(join(tmpdir(), "alert-tests-"));
    t.after(() => rm(dir, { recursive: true, force: true }));
    for (const g of rules.groups) for (const r of g.rules) delete r.annotations;
    await writeFile(join(dir, "rules.yml"), stringify(rules));
    await writeFile(join(dir, "tests.yml"), RULE_TESTS);
    // Every alert in the file has a unit test here: a new rule needs one.
    const tested = new Set([...RULE_TESTS.matchAll(/alertname: (\w+)/g)].map((m) => m[1]));
    const alerts = rules.groups.flatMap((g) => g.rules.flatMap((r) => (r.alert ? [r.alert] : [])));
    assert.deepEqual(
      alerts.filter((a) => !tested.has(a)),
      [],
    );
    const unit = await run(PROMTOOL, ["test", "rules", join(dir, "tests.yml")]);
    assert.equal(unit.code, 0, unit.out);
  },
);
