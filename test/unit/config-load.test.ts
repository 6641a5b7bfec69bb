// Unit tests for the config loader: exact FILE:LINE:COL messages for each error kind, env, defaults, durations.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { isAbsolute, join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  ConfigError,
  formatIssue,
  loadConfigFile,
  loadConfigFileWithWarnings,
  loadConfigText,
  loadConfigTextWithWarnings,
  summarize,
} from "../../src/config/load.ts";
import { findIndentIssue } from "../../src/config/indentation.ts";
import type { GatewayConfig, PoolConfig } from "../../src/config/types.ts";

const BUNDLED = fileURLToPath(new URL("../../gateway.yaml", import.meta.url));

/** One line per argument, so a test reads like the file and line numbers are easy to count. */
const yaml = (...lines: string[]): string => `${lines.join("\n")}\n`;

/** A minimal valid file; `pool` lines are inserted into pool `a` (at line 3), after its `upstreams:` key. */
const minimal = (...pool: string[]): string =>
  yaml(
    "pools:",
    "  a:",
    ...pool,
    "    upstreams:",
    "      - url: http://127.0.0.1:8000",
    "routes:",
    "  - { prefix: /, pool: a }",
  );

function load(text: string, env: Record<string, string | undefined> = {}): GatewayConfig {
  return loadConfigText(text, "gw.yaml", env);
}

function errors(text: string, env: Record<string, string | undefined> = {}): string[] {
  try {
    load(text, env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    assert.equal(err.message, err.issues.map(formatIssue).join("\n"));
    return err.issues.map(formatIssue);
  }
  assert.fail("expected the config to be rejected");
}

function pool(c: GatewayConfig, name: string): PoolConfig {
  const p = c.pools.find((x) => x.name === name);
  assert.ok(p, `pool ${name}`);
  return p;
}

// --- valid files ---

void test("the bundled gateway.yaml loads", async () => {
  const c = await loadConfigFile(BUNDLED, {});
  assert.equal(summarize(c), "ok: 6 pools, 6 routes, 10 upstreams");
  assert.deepEqual(c.listen, { host: "0.0.0.0", port: 8002 });
  assert.deepEqual(c.admin, {});
  assert.equal(c.shutdownGrace, 10_000);
  assert.ok(isAbsolute(c.source.path));
  assert.equal(c.source.path, BUNDLED);
  assert.equal(
    c.source.hash,
    createHash("sha256")
      .update(await readFile(BUNDLED))
      .digest("hex"),
  );
  assert.ok(c.source.loadedAt instanceof Date);
  const main = pool(c, "main_app");
  assert.deepEqual(
    main.upstreams.map((u) => [u.id, u.weight, u.backup]),
    [
      ["127.0.0.1:8000", 3, false],
      ["127.0.0.1:8001", 1, true],
    ],
  );
  assert.deepEqual(
    c.routes.find((r) => r.prefix === "/api/weather/"),
    { id: "/api/weather/", prefix: "/api/weather/", pool: "weather", stripPrefix: true, policies: [] },
  );
});

void test("the bundled gateway.yaml takes its port and admin key from the environment", async () => {
  const c = await loadConfigFile(BUNDLED, { GATEWAY_PORT: "9100", GATEWAY_ADMIN_KEY: "s3cret" });
  assert.deepEqual(c.listen, { host: "0.0.0.0", port: 9100 });
  assert.equal(c.admin.apiKey, "s3cret");
});

void test("summarize counts upstreams across pools", () => {
  const c = load(
    yaml(
      "pools:",
      "  a: { upstreams: [{ url: http://h:1 }, { url: http://h:2 }] }",
      "  b: { upstreams: [{ url: http://h:3 }] }",
      "routes:",
      "  - { prefix: /, pool: a }",
    ),
  );
  assert.equal(summarize(c), "ok: 2 pools, 1 routes, 3 upstreams");
});

void test("defaults are merged into pools; a pool overriding one key keeps the other defaults", () => {
  const c = load(
    yaml(
      "defaults:",
      "  healthCheck:",
      "    interval: 10s",
      "    timeout: 1s",
      "  retries: 4",
      "pools:",
      "  fast:",
      "    healthCheck:",
      "      interval: 1s",
      "    upstreams: [{ url: http://h:1 }]",
      "  plain:",
      "    upstreams: [{ url: http://h:2 }]",
      "routes:",
      "  - { prefix: /, pool: fast }",
    ),
  );
  const fast = pool(c, "fast");
  assert.deepEqual(fast.healthCheck, {
    enabled: true,
    path: "/health",
    interval: 1_000,
    timeout: 1_000,
    healthyThreshold: 2,
    unhealthyThreshold: 3,
    expectStatus: [[200, 399]],
  });
  assert.equal(fast.retries, 4);
  assert.equal(fast.breaker.resetTimeout, 10_000);
  assert.equal(pool(c, "plain").healthCheck.interval, 10_000);
  assert.equal(pool(c, "plain").healthCheck.timeout, 1_000);
});

void test("durations accept 250ms, 5s, 1m, 1.5s and integers of milliseconds", () => {
  const c = load(
    minimal(
      "    healthCheck: { interval: 250ms, timeout: 5s }",
      "    breaker: { resetTimeout: 1m, rollingWindow: 1.5s }",
      "    timeouts: { connect: 1500, response: 1 }",
    ),
  );
  const a = pool(c, "a");
  assert.equal(a.healthCheck.interval, 250);
  assert.equal(a.healthCheck.timeout, 5_000);
  assert.equal(a.breaker.resetTimeout, 60_000);
  assert.equal(a.breaker.rollingWindow, 1_500);
  assert.deepEqual(a.timeouts, { connect: 1_500, response: 1 });
});

void test("timeouts, intervals and the reset timeout must be more than 0", () => {
  assert.throws(
    () => load(minimal("    healthCheck: { interval: 0 }", "    timeouts: { response: 0ms }")),
    (e: ConfigError) => {
      assert.deepEqual(e.issues.map(formatIssue), [
        "gw.yaml:3:30: pools.a.healthCheck.interval: interval must be at least 100ms (a bare number means milliseconds; write 5s for seconds)",
        "gw.yaml:4:27: pools.a.timeouts.response: response must be more than 0",
      ]);
      return true;
    },
  );
});

void test("expectStatus accepts a range, a list and a bare code", () => {
  const status = (value: string) => pool(load(minimal(`    healthCheck: { expectStatus: ${value} }`)), "a");
  assert.deepEqual(status("200-399").healthCheck.expectStatus, [[200, 399]]);
  assert.deepEqual(status("204").healthCheck.expectStatus, [[204, 204]]);
  assert.deepEqual(status('"200, 204,300-302"').healthCheck.expectStatus, [
    [200, 200],
    [204, 204],
    [300, 302],
  ]);
});

void test("${NAME} and ${NAME:-default} are substituted; plain scalars are re-typed, quoted ones stay strings", () => {
  const text = yaml(
    "listen: ${PORT:-8002}",
    "admin:",
    "  apiKey: ${KEY}",
    "pools:",
    "  a:",
    "    upstreams:",
    "      - url: http://${HOST}:8000",
    "        weight: ${WEIGHT:-3}",
    "        backup: ${BACKUP:-true}",
    "        id: '${ID:-007}'",
    "        run:",
    "          command: node app.js --port ${APP_PORT:-8000}",
    "          env:",
    "            EMPTY: ${UNSET:-}",
    "            LITERAL: $${NOT_A_VAR}",
    "routes:",
    "  - { prefix: /, pool: a }",
  );
  const c = load(text, { KEY: "k", HOST: "127.0.0.9", BACKUP: "", APP_PORT: "9000" });
  assert.deepEqual(c.listen, { host: "0.0.0.0", port: 8002 });
  assert.equal(c.admin.apiKey, "k");
  const [u] = pool(c, "a").upstreams;
  assert.ok(u);
  assert.equal(u.url, "http://127.0.0.9:8000");
  assert.equal(u.weight, 3);
  assert.equal(u.backup, true, "an empty variable takes the :- default, as in the shell");
  assert.equal(u.id, "007");
  assert.equal(u.run?.command, "node app.js --port 9000");
  assert.deepEqual(u.run?.env, { EMPTY: "", LITERAL: "${NOT_A_VAR}" });

  const set = load(text, { PORT: "127.0.0.1:9001", KEY: "k", HOST: "h", WEIGHT: "5", BACKUP: "false" });
  assert.deepEqual(set.listen, { host: "127.0.0.1", port: 9001 });
  assert.equal(set.pools[0]?.upstreams[0]?.weight, 5);
  assert.equal(set.pools[0]?.upstreams[0]?.backup, false);
});

void test("a quoted ${...} stays a string, so a number key rejects it", () => {
  assert.deepEqual(errors(minimal("    retries: '${RETRIES:-2}'"), {}), [
    "gw.yaml:3:14: pools.a.retries: retries must be a number",
  ]);
});

void test("a duplicate route prefix is an error", () => {
  assert.deepEqual(
    errors(
      yaml(
        "pools:",
        "  a: { upstreams: [{ url: http://h:1 }] }",
        "routes:",
        "  - { prefix: /x, pool: a, host: A.example }",
        "  - { prefix: /x, pool: a, host: a.example }",
      ),
    ),
    ['gw.yaml:5:15: routes.1.prefix: duplicate route "/x" (also routes.0)'],
  );
});

// --- one error of each kind ---

void test("unknown key at the top level", () => {
  assert.deepEqual(errors(`listn: 8002\n${minimal()}`), ['gw.yaml:1:1: listn: unknown key "listn"']);
});

void test("unknown key nested in a pool (typo healthCheck.intervall)", () => {
  assert.deepEqual(errors(minimal("    healthCheck:", "      intervall: 5s")), [
    'gw.yaml:4:7: pools.a.healthCheck.intervall: unknown key "intervall"',
  ]);
});

void test("wrong type: weight given as a string", () => {
  assert.deepEqual(errors(minimal().replace("8000\n", '8000\n        weight: "x"\n')), [
    "gw.yaml:5:17: pools.a.upstreams.0.weight: weight must be a number",
  ]);
});

void test("zero, negative and fractional weights", () => {
  const text = yaml(
    "pools:",
    "  a:",
    "    upstreams:",
    "      - { url: http://h:1, weight: 0 }",
    "      - { url: http://h:2, weight: -2 }",
    "      - { url: http://h:3, weight: 1.5 }",
    "routes:",
    "  - { prefix: /, pool: a }",
  );
  assert.deepEqual(errors(text), [
    "gw.yaml:4:36: pools.a.upstreams.0.weight: weight must be positive",
    "gw.yaml:5:36: pools.a.upstreams.1.weight: weight must be positive",
    "gw.yaml:6:36: pools.a.upstreams.2.weight: weight must be an integer",
  ]);
});

void test("a duration without a known unit", () => {
  assert.deepEqual(errors(minimal("    healthCheck:", "      interval: 5 seconds")), [
    "gw.yaml:4:17: pools.a.healthCheck.interval: interval must be a duration such as 250ms, 5s or 1m, or milliseconds",
  ]);
});

void test("a url that is not http(s)", () => {
  const text = yaml(
    "pools:",
    "  a:",
    "    upstreams:",
    "      - url: ftp://127.0.0.1:21",
    "      - url: not a url",
    "routes:",
    "  - { prefix: /, pool: a }",
  );
  assert.deepEqual(errors(text), [
    "gw.yaml:4:14: pools.a.upstreams.0.url: url must be an http:// or https:// URL",
    "gw.yaml:5:14: pools.a.upstreams.1.url: url must be an http:// or https:// URL",
  ]);
});

void test("a route naming a pool that does not exist", () => {
  assert.deepEqual(errors(minimal().replace("pool: a }", "pool: b }")), [
    'gw.yaml:6:24: routes.0.pool: unknown pool "b"',
  ]);
});

void test("a pool with no upstreams, and one without the key", () => {
  const text = yaml(
    "pools:",
    "  a:",
    "    upstreams: []",
    "  b:",
    "    retries: 1",
    "routes:",
    "  - { prefix: /, pool: a }",
  );
  assert.deepEqual(errors(text), [
    "gw.yaml:3:16: pools.a.upstreams: a pool needs at least one upstream",
    "gw.yaml:5:5: pools.b.upstreams: upstreams is required",
  ]);
});

void test("required keys: a missing one points at its parent, an empty one at its key", () => {
  const text = yaml(
    "pools:",
    "  a:",
    "    upstreams:",
    "      - url:",
    "        weight: 2",
    "routes:",
    "  - pool: a",
  );
  assert.deepEqual(errors(text), [
    "gw.yaml:4:9: pools.a.upstreams.0.url: url is required",
    "gw.yaml:7:5: routes.0.prefix: prefix is required",
  ]);
  assert.deepEqual(errors("listen: 8002\n"), [
    "gw.yaml:1:1: pools: pools is required",
    "gw.yaml:1:1: routes: routes is required",
  ]);
});

void test("two upstreams with the same host:port", () => {
  const text = yaml(
    "pools:",
    "  a:",
    "    upstreams:",
    "      - url: http://127.0.0.1:8000",
    "      - url: http://127.0.0.1:8000/other",
    "routes:",
    "  - { prefix: /, pool: a }",
  );
  assert.deepEqual(errors(text), [
    'gw.yaml:5:14: pools.a.upstreams.1.url: duplicate upstream id "127.0.0.1:8000" (also upstreams.0)',
  ]);
});

void test("two upstreams with the same explicit id", () => {
  const text = yaml(
    "pools:",
    "  a:",
    "    upstreams:",
    "      - { url: http://h:1, id: app }",
    "      - { url: http://h:2, id: app }",
    "routes:",
    "  - { prefix: /, pool: a }",
  );
  assert.deepEqual(errors(text), [
    'gw.yaml:5:32: pools.a.upstreams.1.id: duplicate upstream id "app" (also upstreams.0)',
  ]);
});

void test("a YAML syntax error stops at the parser's message", () => {
  const text = yaml("pools:", "  a: { upstreams: [{ url: http://h:1 }]", "routes: []");
  assert.deepEqual(errors(text), [
    "gw.yaml:3:1: routes: flow map in block collection must be sufficiently indented and end with a }",
  ]);
});

void test("an over-indented key points at its own line, with the path of the key it fell under", () => {
  const text = yaml(
    "defaults:",
    "  healthCheck:",
    "    interval: 5s",
    "      timeout: 2s",
    "pools: { a: { upstreams: [{ url: http://h:1 }] } }",
    "routes: [{ prefix: /, pool: a }]",
  );
  assert.deepEqual(errors(text), [
    'gw.yaml:4:7: defaults.healthCheck.interval: bad indentation: "timeout:" is indented under "interval:" ' +
      '(line 3), which already has a value (5s); indent it like "interval:" to make it a sibling',
  ]);
  assert.deepEqual(errors(yaml("shutdownGrace: 5s", "  listen: 8000", "pools: {}", "routes: []")), [
    'gw.yaml:2:3: shutdownGrace: bad indentation: "listen:" is indented under "shutdownGrace:" (line 1), ' +
      'which already has a value (5s); indent it like "shutdownGrace:" to make it a sibling',
  ]);
  assert.deepEqual(errors(yaml("routes:", "  - /a", "    pool: x")), [
    'gw.yaml:3:5: routes.0: bad indentation: "pool:" is indented under the list entry "- /a" (line 2), which ' +
      "is a plain value and cannot hold keys",
  ]);
});

void test("an under-indented key points at its own line, with the path of its enclosing map", () => {
  const nested = yaml(
    "defaults:",
    "  healthCheck:",
    "    interval: 5s",
    "   timeout: 2s",
    "pools: { a: { upstreams: [{ url: http://h:1 }] } }",
    "routes: [{ prefix: /, pool: a }]",
  );
  assert.deepEqual(errors(nested), [
    'gw.yaml:4:4: defaults.healthCheck: bad indentation: "timeout:" starts at column 4, but "interval:" on ' +
      "line 3 starts at column 5; the lines of one block must line up",
  ]);
  const list = yaml(
    "pools:",
    "  a:",
    "    upstreams:",
    "    - url: http://h:1",
    "      weight: 2",
    "    - url: http://h:2",
    "     backup: true",
    "routes: [{ prefix: /, pool: a }]",
  );
  assert.deepEqual(errors(list), [
    'gw.yaml:7:6: pools.a.upstreams.1: bad indentation: "backup:" starts at column 6, but "url:" on line 6 ' +
      "starts at column 7; the lines of one block must line up",
  ]);
  const entry = yaml("pools:", "  a:", "    upstreams:", "      - url: http://h:1", "     weight: 2");
  assert.deepEqual(errors(entry), [
    'gw.yaml:5:6: pools.a.upstreams: bad indentation: "weight:" starts at column 6, but entry 0 on line 4 ' +
      "starts at column 7 (its keys at column 9); the lines of one block must line up",
  ]);
});

void test("one mistake gives one error", () => {
  const text = yaml(
    "listen: 80o2",
    "pools: { a: { upstreams: [{ url: http://h:1 }] } }",
    "routes: [{ prefix: /, pool: a }]",
  );
  assert.deepEqual(errors(text), ['gw.yaml:1:9: listen: listen must be a port or "host:port"']);
  // Two mistakes in two places are still both reported.
  assert.deepEqual(errors(text.replace("listen: 80o2", "listen: 80o2\nshutdownGrace: soon")), [
    'gw.yaml:1:9: listen: listen must be a port or "host:port"',
    "gw.yaml:2:16: shutdownGrace: shutdownGrace must be a duration such as 250ms, 5s or 1m, or milliseconds",
  ]);
});

void test("an unquoted ${VAR} inside a flow mapping gets a hint", () => {
  const text = yaml("pools:", "  a: { upstreams: [{ url: ${URL} }] }", "routes: []");
  assert.deepEqual(errors(text, { URL: "http://h:1" }), [
    'gw.yaml:2:28: pools.a.upstreams.0.url: unexpected flow-map-start at node end; inside { } or [ ], write "${VAR}" in quotes',
  ]);
});

void test("a duplicate YAML key", () => {
  assert.deepEqual(errors(minimal("    retries: 1", "    retries: 2")), [
    'gw.yaml:4:5: pools.a.retries: duplicate key "retries"',
  ]);
});

void test("an unset environment variable without a default", () => {
  const text = yaml(
    "listen: ${GW_PORT}",
    "admin:",
    '  apiKey: "${GW_KEY}"',
    "pools:",
    "  a: { upstreams: [{ url: 'http://${GW_HOST}:1' }] }",
    "routes:",
    "  - { prefix: /, pool: a }",
  );
  assert.deepEqual(errors(text, { GW_HOST: "h" }), [
    "gw.yaml:1:9: listen: environment variable GW_PORT is not set",
    "gw.yaml:3:11: admin.apiKey: environment variable GW_KEY is not set",
  ]);
});

void test("a malformed ${...} reference and an unknown alias", () => {
  assert.deepEqual(errors(minimal("    retries: ${1BAD}")), [
    'gw.yaml:3:14: pools.a.retries: invalid variable reference "${1BAD}"',
  ]);
  assert.deepEqual(errors(minimal("    retries: *nope")), [
    "gw.yaml:3:14: pools.a.retries: unknown alias *nope",
  ]);
});

void test("an empty file and a file that is not a map", () => {
  assert.deepEqual(errors("# nothing\n"), [
    "gw.yaml:1:1: (root): the file is empty; pools and routes are required",
  ]);
  assert.deepEqual(errors("- a\n"), ["gw.yaml:1:1: (root): the config must be a map"]);
});

void test("several errors in one file are all reported, in file order", () => {
  const text = yaml(
    "listen: ${NOPE}", // 1
    "shutdownGrace: 5 seconds", // 2
    "colour: blue", // 3
    "pools:", // 4
    "  a:", // 5
    "    balance: fastest", // 6
    "    healthCheck: { intervall: 5s, path: health }", // 7
    "    upstreams:", // 8
    "      - { url: http://h:1, weight: x }", // 9
    "      - { url: http://h:1, weight: -1 }", // 10
    "  empty:", // 11
    "    upstreams: []", // 12
    "routes:", // 13
    "  - { prefix: /, pool: missing }", // 14
    "  - { prefix: api, pool: a, strip: true }", // 15
  );
  assert.deepEqual(errors(text), [
    "gw.yaml:1:9: listen: environment variable NOPE is not set",
    "gw.yaml:2:16: shutdownGrace: shutdownGrace must be a duration such as 250ms, 5s or 1m, or milliseconds",
    'gw.yaml:3:1: colour: unknown key "colour"',
    "gw.yaml:6:14: pools.a.balance: balance must be one of weighted-round-robin, least-connections, random, ip-hash",
    'gw.yaml:7:20: pools.a.healthCheck.intervall: unknown key "intervall"',
    "gw.yaml:7:41: pools.a.healthCheck.path: path must start with /",
    "gw.yaml:9:36: pools.a.upstreams.0.weight: weight must be a number",
    'gw.yaml:10:16: pools.a.upstreams.1.url: duplicate upstream id "h:1" (also upstreams.0)',
    "gw.yaml:10:36: pools.a.upstreams.1.weight: weight must be positive",
    "gw.yaml:12:16: pools.empty.upstreams: a pool needs at least one upstream",
    'gw.yaml:14:24: routes.0.pool: unknown pool "missing"',
    "gw.yaml:15:15: routes.1.prefix: prefix must start with /",
    'gw.yaml:15:29: routes.1.strip: unknown key "strip"',
  ]);
});

void test("generic zod messages are phrased with the key's name", () => {
  const text = minimal(
    "    breaker: { errorThresholdPercentage: 0, failureStatuses: [404] }",
    "    healthCheck: { expectStatus: 600, enabled: yes }",
  );
  assert.deepEqual(errors(text), [
    "gw.yaml:3:42: pools.a.breaker.errorThresholdPercentage: errorThresholdPercentage must be at least 1",
    "gw.yaml:3:63: pools.a.breaker.failureStatuses.0: each entry of failureStatuses must be at least 500",
    "gw.yaml:4:34: pools.a.healthCheck.expectStatus: expectStatus must be at most 599",
    "gw.yaml:4:48: pools.a.healthCheck.enabled: enabled must be true or false",
  ]);
});

void test("an unreadable file is a ConfigError at 1:1", async () => {
  const dir = await mkdtemp(join(tmpdir(), "gw-config-"));
  try {
    const missing = join(dir, "missing.yaml");
    await assert.rejects(loadConfigFile(missing, {}), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.equal(err.message, `${missing}:1:1: (root): cannot read the file (no such file)`);
      return true;
    });
    await assert.rejects(loadConfigFile(dir, {}), /\(root\): cannot read the file \(it is a directory\)$/);

    const file = join(dir, "gw.yaml");
    await writeFile(file, minimal("    retries: -1"));
    await assert.rejects(loadConfigFile(file, {}), {
      name: "ConfigError",
      message: `${file}:3:14: pools.a.retries: retries must be 0 or more`,
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

void test("formatIssue writes (root) for an empty path", () => {
  assert.equal(
    formatIssue({ file: "f.yaml", line: 2, col: 3, path: "", message: "m" }),
    "f.yaml:2:3: (root): m",
  );
});

void test("GATEWAY_ADMIN_KEY is the admin key when the file sets none; an explicit empty key means none", () => {
  const base =
    "pools: { a: { upstreams: [{ url: 'http://127.0.0.1:1' }] } }\nroutes: [{ prefix: /, pool: a }]\n";
  assert.equal(loadConfigText(base, "gw.yaml", { GATEWAY_ADMIN_KEY: "k1" }).admin.apiKey, "k1");
  assert.equal(
    loadConfigText(`admin: { apiKey: k2 }\n${base}`, "gw.yaml", { GATEWAY_ADMIN_KEY: "k1" }).admin.apiKey,
    "k2",
  );
  assert.equal(
    loadConfigText(`admin: { apiKey: "" }\n${base}`, "gw.yaml", { GATEWAY_ADMIN_KEY: "k1" }).admin.apiKey,
    undefined,
  );
  assert.equal(loadConfigText(base, "gw.yaml", {}).admin.apiKey, undefined);
});

void test("maxBodySize at the top is the default of every pool; defaults and pools may override it", () => {
  const text = `maxBodySize: 1mb
defaults: {}
pools:
  a: { upstreams: [{ url: "http://127.0.0.1:1" }] }
  b: { upstreams: [{ url: "http://127.0.0.1:2" }], maxBodySize: 10kb }
routes: [{ prefix: /, pool: a }]
`;
  const c = loadConfigText(text, "gw.yaml", {});
  assert.equal(pool(c, "a").maxBodySize, 1024 * 1024);
  assert.equal(pool(c, "b").maxBodySize, 10 * 1024);
});

void test("a YAML tag outside the core schema is an error at the tag, not a silently dropped tag", () => {
  const core =
    "only the core schema's tags are allowed (!!str, !!int, !!float, !!bool, !!null, !!map, !!seq)";
  const text = yaml(
    "admin:",
    "  apiKey: !env GATEWAY_ADMIN_KEY",
    "shutdownGrace: !!timestamp 2001-12-14",
    "defaults:",
    "  healthCheck: !custom",
    "    path: /x",
    "pools:",
    "  a: { upstreams: [{ url: http://h:1, weight: !!binary aGVsbG8= }] }",
    "routes:",
    "  - { prefix: /, pool: a }",
  );
  assert.deepEqual(errors(text, { GATEWAY_ADMIN_KEY: "secret" }), [
    `gw.yaml:2:11: admin.apiKey: unknown YAML tag !env: ${core}; for an environment variable write "\${NAME}"`,
    `gw.yaml:3:16: shutdownGrace: unknown YAML tag !!timestamp: ${core}`,
    `gw.yaml:5:16: defaults.healthCheck: unknown YAML tag !custom: ${core}`,
    `gw.yaml:8:47: pools.a.upstreams.0.weight: unknown YAML tag !!binary: ${core}`,
  ]);
  assert.deepEqual(errors(minimal("    retries: !!int two")), [
    "gw.yaml:3:14: pools.a.retries: the value does not fit its tag !!int",
  ]);
});

void test("the core schema's tags and the non-specific ! are honoured", () => {
  const c = load(
    yaml(
      "listen: !!str 127.0.0.1:9000",
      "shutdownGrace: ! 5s",
      "pools: !!map",
      "  a:",
      "    retries: !!int 3",
      "    breaker: { errorThresholdPercentage: !!float 25.5, failureStatuses: !!seq [502] }",
      "    upstreams:",
      "      - { url: http://h:1, backup: !!bool false }",
      "admin: { apiKey: !!null }",
      "routes:",
      "  - { prefix: /, pool: a }",
    ),
  );
  assert.deepEqual(c.listen, { host: "127.0.0.1", port: 9000 });
  assert.equal(c.shutdownGrace, 5_000);
  assert.equal(pool(c, "a").retries, 3);
  assert.equal(pool(c, "a").breaker.errorThresholdPercentage, 25.5);
});

void test("a health interval under 100ms and a health timeout under 10ms are errors, however written", () => {
  const floor = "(a bare number means milliseconds; write 5s for seconds)";
  assert.deepEqual(errors(minimal("    healthCheck: { interval: 5, timeout: 5 }")), [
    `gw.yaml:3:30: pools.a.healthCheck.interval: interval must be at least 100ms ${floor}`,
    `gw.yaml:3:42: pools.a.healthCheck.timeout: timeout must be at least 10ms ${floor}`,
  ]);
  assert.deepEqual(errors(minimal("    healthCheck: { interval: 99ms, timeout: 9ms }")), [
    `gw.yaml:3:30: pools.a.healthCheck.interval: interval must be at least 100ms ${floor}`,
    `gw.yaml:3:45: pools.a.healthCheck.timeout: timeout must be at least 10ms ${floor}`,
  ]);
  const c = load(minimal("    healthCheck: { interval: 100ms, timeout: 10 }"));
  assert.equal(pool(c, "a").healthCheck.interval, 100);
  assert.equal(pool(c, "a").healthCheck.timeout, 10);
});

void test("a bare integer below 1000 in a duration field is a warning with its position; 0 and units are not", () => {
  const text = yaml(
    "shutdownGrace: 500",
    "defaults:",
    "  healthCheck: { interval: 900, timeout: 2s }",
    "  breaker: { resetTimeout: 1000, rollingWindow: 100ms }",
    "  failbackDelay: 0",
    "pools:",
    "  a:",
    "    timeouts: { connect: 200ms, response: 30 }",
    "    retries: 5",
    "    upstreams:",
    "      - url: http://127.0.0.1:8000",
    "        run: { command: x, stopGrace: 3 }",
    "routes:",
    "  - { prefix: /, pool: a }",
  );
  const { config, warnings } = loadConfigTextWithWarnings(text, "gw.yaml", {});
  assert.equal(config.shutdownGrace, 500, "still milliseconds");
  const hint = (n: number) =>
    `warning: a bare ${n} means ${n} milliseconds; did you mean ${n}s? (write ${n}ms to keep it)`;
  assert.deepEqual(warnings.map(formatIssue), [
    `gw.yaml:1:16: shutdownGrace: ${hint(500)}`,
    `gw.yaml:3:28: defaults.healthCheck.interval: ${hint(900)}`,
    `gw.yaml:8:43: pools.a.timeouts.response: ${hint(30)}`,
    `gw.yaml:12:39: pools.a.upstreams.0.run.stopGrace: ${hint(3)}`,
  ]);
  assert.deepEqual(loadConfigTextWithWarnings(minimal(), "gw.yaml", {}).warnings, []);
});

void test("the bundled gateway.yaml has no warnings", async () => {
  assert.deepEqual((await loadConfigFileWithWarnings(BUNDLED, {})).warnings, []);
});

void test("the indentation reader finds nothing wrong in valid files", async () => {
  assert.equal(findIndentIssue(await readFile(BUNDLED, "utf8")), undefined);
  const text = yaml(
    "pools:",
    "  a:",
    "    upstreams:",
    "    - url: http://h:1   # a compact list",
    "      run:",
    "        command: >",
    "          node app.js",
    "            --port 1",
    "        env: { A: 1 }",
    "    - { url: http://h:2 }",
    "  b:",
    "    upstreams:",
    "      - url: http://h:3",
    "        weight: 2",
    "    retries: 1",
    "routes:",
    "  - prefix: /",
    "    pool: a",
    "  - { prefix: /b, pool: b }",
  );
  assert.equal(findIndentIssue(text), undefined);
  load(text);
});
