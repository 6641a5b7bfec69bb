// The command line through real processes: --version, unknown commands, the help texts, the network cause of
// `gateway status`, and `check --print`. (cli-admin.test.ts: the client commands against a running gateway;
// cli-logs.test.ts: a busy port and the log formats. Split so each file stays well within the per-file timeout.)
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { test } from "node:test";
import { poolConfig } from "../helpers/gateway.ts";
import { ROOT, freePort } from "../helpers/processes.ts";
import { configFile, runCli } from "../helpers/cli.ts";

void test("--version and -v print the package's version", async () => {
  const pkg = JSON.parse(await readFile(`${ROOT}package.json`, "utf8")) as { version: string };
  for (const flag of ["--version", "-v"]) {
    const r = await runCli([flag]);
    assert.equal(r.code, 0);
    assert.equal(r.stdout, `${pkg.version}\n`);
  }
});

void test("an unknown command is an error with a suggestion, not a config file name", async () => {
  const r = await runCli(["stauts"]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /unknown command 'stauts'/);
  assert.match(r.stderr, /Did you mean status\?/);
  assert.doesNotMatch(r.stderr, /ENOENT|stauts:/);
});

void test("the help texts name the environment variables", async () => {
  const top = await runCli(["--help"]);
  for (const v of [
    "GATEWAY_CONFIG",
    "GATEWAY_LOG_LEVEL",
    "GATEWAY_LOG_FORMAT",
    "GATEWAY_ADMIN_KEY",
    "GATEWAY_REGISTRY_KEY",
    "GATEWAY_URL",
  ])
    assert.ok(top.stdout.includes(v), v);
  const start = await runCli(["start", "--help"]);
  assert.match(start.stdout, /--log-format/);
  assert.match(start.stdout, /GATEWAY_LOG_FORMAT/);
  const status = await runCli(["status", "--help"]);
  assert.match(status.stdout, /GATEWAY_URL/);
});

void test("status names the network cause, and a URL without http://", async () => {
  const port = await freePort();
  const refused = await runCli(["status", "--url", `http://127.0.0.1:${port}`]);
  assert.equal(refused.code, 1);
  assert.equal(
    refused.stderr,
    `cannot reach http://127.0.0.1:${port}/admin/status: ECONNREFUSED 127.0.0.1:${port}\n`,
  );
  const bare = await runCli(["status"], { GATEWAY_URL: `127.0.0.1:${port}` });
  assert.equal(bare.code, 1);
  assert.match(bare.stderr, /URL needs http:\/\//);
});

void test("check --print: the effective config as JSON, defaults filled in, secrets redacted", async () => {
  const path = await configFile(
    poolConfig([{ url: "http://127.0.0.1:1" }]).replace(
      "listen: 127.0.0.1:0",
      "listen: 127.0.0.1:0\nadmin: { apiKey: s3cret }",
    ),
  );
  const r = await runCli(["check", "--print", path]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(!r.stdout.includes("s3cret"));
  const c = JSON.parse(r.stdout) as {
    admin: { apiKey: string };
    pools: { name: string; balance: string; retries: number; breaker: { failureStatuses: number[] } }[];
  };
  assert.equal(c.admin.apiKey, "<redacted>");
  assert.equal(c.pools[0]!.balance, "weighted-round-robin");
  assert.equal(typeof c.pools[0]!.retries, "number");
  assert.ok(Array.isArray(c.pools[0]!.breaker.failureStatuses));
});
