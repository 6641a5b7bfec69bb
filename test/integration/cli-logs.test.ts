// A busy listen port (one line, exit 1) and the log formats (--log-format, GATEWAY_LOG_FORMAT), through real
// processes.
import assert from "node:assert/strict";
import { once } from "node:events";
import net from "node:net";
import { test } from "node:test";
import { poolConfig } from "../helpers/gateway.ts";
import { configFile, runCli, stopCli } from "../helpers/cli.ts";
import { spawnCli } from "../helpers/processes.ts";

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
