// A memory rate limit with workers: 2 is exact for the whole gateway: the counters live in the primary
// (rate-limiter-flexible's cluster limiter), so two workers do not each grant the budget.
import assert from "node:assert/strict";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { appConfig, request } from "../helpers/gateway.ts";
import { freePort, spawnCli } from "../helpers/processes.ts";
import { FakeUpstream } from "../helpers/upstream.ts";

test("workers: 2 share one memory limit: exactly the budget passes, whichever worker serves", async (t) => {
  const up = await FakeUpstream.start();
  t.after(() => up.close());
  const dir = await mkdtemp(join(tmpdir(), "gateway-policy-workers-"));
  const config = join(dir, "gateway.yaml");
  const port = await freePort();
  const adminPort = await freePort();
  const yaml = appConfig(
    `      - { url: ${up.url} }`,
    `workers: 2
admin: { listen: ${adminPort} }
policies:
  limit:
    rateLimit: { rate: 6/m }`,
  )
    .replace("listen: 127.0.0.1:0", `listen: 127.0.0.1:${port}`)
    .replace("{ prefix: /, pool: app }", "{ prefix: /, pool: app, policies: [limit] }");
  await writeFile(config, yaml);
  const gw = spawnCli(["start", "-c", config]);
  t.after(() => {
    gw.child.kill("SIGKILL");
  });
  await gw.logs.waitFor("worker_ready", (l) => l.worker === 1);
  await gw.logs.waitFor("worker_ready", (l) => l.worker === 2);
  // A new connection per request: the primary hands connections to the workers in turn.
  const statuses: number[] = [];
  for (let i = 0; i < 20; i++) statuses.push((await request(`http://127.0.0.1:${port}/x`)).status);
  assert.equal(statuses.filter((s) => s === 200).length, 6, statuses.join(","));
  assert.equal(statuses.filter((s) => s === 429).length, 14);
  await gw.logs.waitFor("request", () => gw.logs.events("request").length >= 20);
  const workers = new Set(gw.logs.events("request").map((l) => l.worker));
  assert.equal(workers.size, 2, `both workers served (${[...workers].join(",")})`);
});
