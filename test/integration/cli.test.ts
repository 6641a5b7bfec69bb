// The command line through real processes: --version, unknown commands, a busy listen port, the client commands
// (status, reload, drain, enable) against a running gateway, check --print, the help texts and the log formats.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { poolConfig } from "../helpers/gateway.ts";
import { ROOT, freePort, spawnCli, type CliProcess } from "../helpers/processes.ts";
import { FakeUpstream } from "../helpers/upstream.ts";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** `gateway ARGS` to completion, from the sources (as spawnCli), with the gateway's env variables cleared. */
function runCli(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const clean = { ...process.env };
  for (const k of Object.keys(clean)) if (k.startsWith("GATEWAY_")) delete clean[k];
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ["--import", "tsx", `${ROOT}src/cli.ts`, ...args],
      { cwd: ROOT, env: { ...clean, ...env }, timeout: 60_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

async function configFile(yaml: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "gateway-cli-"));
  const path = join(dir, "gateway.yaml");
  await writeFile(path, yaml);
  return path;
}

async function stopCli(cli: CliProcess): Promise<void> {
  if (cli.child.exitCode === null && cli.child.signalCode === null) cli.child.kill("SIGTERM");
  await cli.exited;
}

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

void test("a busy listen port: one line naming the address, exit 1, no stack trace", async () => {
  const taken = net.createServer();
  taken.listen(0, "127.0.0.1");
  await once(taken, "listening");
  const { port } = taken.address() as net.AddressInfo;
  try {
    const path = await configFile(
      poolConfig([{ url: "http://127.0.0.1:1" }]).replace("127.0.0.1:0", `127.0.0.1:${port}`),
    );
    const r = await runCli(["start", "-c", path], { GATEWAY_LOG_LEVEL: "error" });
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `cannot listen on 127.0.0.1:${port}: address already in use\n`);
  } finally {
    taken.close();
  }
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

void test(
  "reload (API and --pid-file), drain and enable against a running gateway; the boot line says where",
  { timeout: 120_000 },
  async () => {
    const u = await FakeUpstream.start({ name: "a" });
    const dir = await mkdtemp(join(tmpdir(), "gateway-cli-"));
    const path = join(dir, "gateway.yaml");
    const pidFile = join(dir, "gateway.pid");
    const port = await freePort();
    const yaml = poolConfig([{ url: u.url }]).replace("127.0.0.1:0", `127.0.0.1:${port}`);
    await writeFile(path, yaml);
    const cli = spawnCli(["start", "-c", path, "--pid-file", pidFile, "--log-format", "json"]);
    try {
      const boot = await cli.logs.waitFor("gateway_started");
      const base = `http://127.0.0.1:${port}`;
      const line = cli.logs.lines.find((l) => l.msg.startsWith("listening on "));
      assert.equal(
        line?.msg,
        `listening on http://127.0.0.1:${port} · admin and dashboard at ${base}/admin/ · metrics at ${base}/metrics`,
      );
      assert.ok(boot);
      assert.equal((await readFile(pidFile, "utf8")).trim(), String(cli.child.pid));

      const viaApi = await runCli(["reload", "--url", base]);
      assert.equal(viaApi.code, 0, viaApi.stderr);
      assert.match(viaApi.stdout, /^reloaded: sha256 [0-9a-f]{12}\n {2}nothing changed\n$/);
      await cli.logs.waitFor("config_reload", (l) => l.trigger === "api");

      const viaSignal = await runCli(["reload", "--pid-file", pidFile]);
      assert.equal(viaSignal.code, 0, viaSignal.stderr);
      await cli.logs.waitFor("config_reload", (l) => l.trigger === "signal");

      await writeFile(path, `${yaml}\nbogus: 1\n`);
      const refused = await runCli(["reload"], { GATEWAY_URL: base });
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /reload refused, the running config stays:\n.*bogus/);
      await writeFile(path, yaml);

      const id = `127.0.0.1:${u.port}`;
      const drained = await runCli(["drain", "app", id, "--url", base]);
      assert.equal(drained.stdout, `drained: app ${id}\n`);
      await cli.logs.waitFor("upstream_drained", (l) => l.upstream === id);
      const status = await runCli(["status", "--json", "--url", base]);
      const report = JSON.parse(status.stdout) as { pools: { upstreams: { drained: boolean }[] }[] };
      assert.equal(report.pools[0]!.upstreams[0]!.drained, true);
      const enabled = await runCli(["enable", "app", id, "--url", base]);
      assert.equal(enabled.stdout, `enabled: app ${id}\n`);
      await cli.logs.waitFor("upstream_enabled", (l) => l.upstream === id);
      const unknown = await runCli(["drain", "app", "nope", "--url", base]);
      assert.equal(unknown.code, 1);
      assert.match(unknown.stderr, /answered 404: No upstream nope in pool app\./);
    } finally {
      await stopCli(cli);
      await u.close();
    }
    // The pid file goes with the process.
    await assert.rejects(readFile(pidFile, "utf8"), { code: "ENOENT" });
  },
);

void test(
  "--log-format pretty writes readable lines; GATEWAY_LOG_FORMAT=json the contract's JSON",
  { timeout: 120_000 },
  async () => {
    const path = await configFile(poolConfig([{ url: "http://127.0.0.1:1" }]));
    for (const [args, env, json] of [
      [["--log-format", "pretty"], {}, false],
      [[], { GATEWAY_LOG_FORMAT: "json" }, true],
    ] as const) {
      const cli = spawnCli(["start", "-c", path, ...args], { env });
      let out = "";
      cli.child.stdout!.on("data", (c: Buffer) => (out += c.toString()));
      while (!out.includes("gateway_started")) await once(cli.child.stdout!, "data");
      await stopCli(cli);
      const line = out.split("\n").find((l) => l.includes("gateway_started"))!;
      if (json) assert.match(line, /^\{"time":"[^"]+","level":"info","msg":"gateway_started",/);
      else assert.match(line, /^\d\d:\d\d:\d\d\.\d{3} INFO {2}gateway_started listen=127\.0\.0\.1:\d+ /);
    }
  },
);
