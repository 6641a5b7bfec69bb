// drainDelay: on SIGTERM readiness fails at once, traffic is still served for the delay, then the drain, exit 0.
import assert from "node:assert/strict";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { get, poolConfig } from "../helpers/gateway.ts";
import { spawnCli } from "../helpers/processes.ts";
import { FakeUpstream } from "../helpers/upstream.ts";

test("SIGTERM with drainDelay: /readyz 503 at once, /healthz 200, traffic served during the delay, exit 0", async (t) => {
  const upstream = await FakeUpstream.start({ name: "up" });
  t.after(() => upstream.close());
  const dir = await mkdtemp(join(tmpdir(), "gateway-drain-"));
  const config = join(dir, "gateway.yaml");
  // Long enough for a loaded machine to send its requests inside the window.
  const delayMs = 2_500;
  await writeFile(config, poolConfig([{ url: upstream.url }], `drainDelay: ${delayMs}ms`));
  const gw = spawnCli(["start", "-c", config]);
  t.after(() => void gw.child.kill("SIGKILL"));

  const started = await gw.logs.waitFor("gateway_started");
  const base = `http://127.0.0.1:${String(started.listen).split(":").at(-1)}`;
  await gw.logs.waitFor("ready");
  assert.equal((await get(`${base}/readyz`)).status, 200);

  gw.child.kill("SIGTERM");
  const delayLine = await gw.logs.waitFor("drain_delay");
  assert.equal(delayLine.delayMs, delayMs);
  const ready = await get(`${base}/readyz`);
  assert.equal(ready.status, 503, "readiness goes first");
  assert.equal(ready.json().reason, "shutting down");
  assert.equal((await get(`${base}/healthz`)).status, 200, "liveness stays");
  const served = await get(`${base}/during-delay`, { headers: { connection: "close" } });
  assert.equal(served.status, 200, "traffic still served during the delay");
  assert.equal(served.json().name, "up");

  assert.deepEqual(await gw.exited, { code: 0, signal: null });
  const access = gw.logs.events("request").find((l) => l.path === "/during-delay");
  const drainStarted = gw.logs.events("shutdown_started")[0];
  assert.ok(access && drainStarted, "access line and shutdown_started logged");
  const at = (l: Record<string, unknown>) => Date.parse(String(l.time));
  assert.ok(at(access) <= at(drainStarted), "the request was served before the drain began");
  assert.ok(
    at(drainStarted) - at(delayLine) >= delayMs - 50,
    `the drain waited out the delay (${at(drainStarted) - at(delayLine)} ms)`,
  );
  assert.equal(gw.logs.events("shutdown_complete").length, 1);
});
