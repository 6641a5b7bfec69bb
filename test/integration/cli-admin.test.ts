// `gateway reload` (admin API and --pid-file), `drain`, `enable` and `status --json` against a running gateway
// started by the CLI, and the boot line that says where things are.
import assert from "node:assert/strict";
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { poolConfig } from "../helpers/gateway.ts";
import { runCli, stopCli } from "../helpers/cli.ts";
import { freePort, spawnCli } from "../helpers/processes.ts";
import { FakeUpstream } from "../helpers/upstream.ts";

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
