// The top-level `processes:` key (how `npm start` runs a self-registering service): parsed with run's defaults,
// and its mistakes reported with their key path.
import assert from "node:assert/strict";
import { test } from "node:test";
import { ConfigError, loadConfigText } from "../../src/config/load.ts";
import { logTags } from "../../src/managed/process.ts";

const BASE = `pools:
  app:
    upstreams: [{ url: "http://127.0.0.1:9" }]
routes:
  - { prefix: /, pool: app }
`;

void test("processes take run's keys and defaults, in file order", () => {
  const config = loadConfigText(
    `${BASE}processes:
  pdf-extra:
    command: node bin/gateway.js ports run pdf-extra pdf -- node examples/services/pdf.js
  other:
    command: sleep 1
    cwd: sub
    env: { A: 1 }
    restart: always
    stopGrace: 1s
`,
    "gw.yaml",
    {},
  );
  assert.deepEqual(config.processes, [
    {
      name: "pdf-extra",
      run: {
        command: "node bin/gateway.js ports run pdf-extra pdf -- node examples/services/pdf.js",
        cwd: ".",
        env: {},
        restart: "on-failure",
        stopGrace: 5_000,
      },
    },
    {
      name: "other",
      run: { command: "sleep 1", cwd: "sub", env: { A: "1" }, restart: "always", stopGrace: 1_000 },
    },
  ]);
  assert.equal(loadConfigText(BASE, "gw.yaml", {}).processes, undefined);
});

void test("a bad process entry names its key", () => {
  const bad = `${BASE}processes:
  "bad name":
    command: x
  p:
    command: ""
    restart: sometimes
    port: 3
`;
  try {
    loadConfigText(bad, "gw.yaml", {});
    assert.fail("should not load");
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    const paths = err.issues.map((i) => `${i.path}: ${i.message}`);
    assert.ok(
      paths.some((p) => p.startsWith("processes.bad name") && p.includes("process names")),
      paths.join("\n"),
    );
    assert.ok(
      paths.some((p) => p.startsWith("processes.p.command")),
      paths.join("\n"),
    );
    assert.ok(
      paths.some((p) => p.startsWith("processes.p.restart")),
      paths.join("\n"),
    );
    assert.ok(
      paths.some((p) => p.startsWith("processes.p") && p.includes("port")),
      paths.join("\n"),
    );
  }
});

void test("a process's log lines name the process, an upstream's its pool and id", () => {
  const spec = { command: "x", argv: ["x"], cwd: "/", env: {}, restart: "never" as const, stopGrace: 1 };
  assert.deepEqual(logTags({ ...spec, pool: "", upstream: "pdf-extra", process: "pdf-extra" }), {
    process: "pdf-extra",
  });
  assert.deepEqual(logTags({ ...spec, pool: "app", upstream: "h:1" }), { pool: "app", upstream: "h:1" });
});
