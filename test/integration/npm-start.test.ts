// Smoke test of `npm start`: the bundled gateway.yaml starts every sample service as a managed upstream, plus an
// extra PDF worker that registers itself (`gateway ports run`) and joins pdf_services by discovery; the gateway
// routes to each of them; on SIGTERM everything stops.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { promisify } from "node:util";
import { test } from "node:test";
import type { StatusReport } from "../../src/server/status.ts";
import { get } from "../helpers/gateway.ts";
import { ROOT, childrenOf, cmdline, portFree, spawnLogged, waitGone } from "../helpers/processes.ts";

// The sample services' ports, as gateway.yaml writes them: GATEWAY_PORT_PREFIX followed by these three digits.
const SUFFIXES = ["000", "001", "100", "101", "102", "103", "200", "201", "202", "203"];
// Prefixes the test may use: every port stays below 65536, and clear of the registry's dynamic range
// (10000-11999) and of the default block (8000-8699).
const PREFIXES = Array.from({ length: 41 }, (_, i) => 20 + i);

/** A prefix whose sample ports (and the pdf range the extra worker takes one from) are all free now. */
async function freePrefix(): Promise<string> {
  const start = Math.floor(Math.random() * PREFIXES.length);
  for (let i = 0; i < PREFIXES.length; i++) {
    const prefix = String(PREFIXES[(start + i) % PREFIXES.length]);
    const ports = [...SUFFIXES, "110", "111"].map((s) => Number(`${prefix}${s}`));
    let free = true;
    for (const p of ports) if (!(free = await portFree(p))) break;
    if (free) return prefix;
  }
  throw new Error("no free block of sample ports on 127.0.0.1");
}

/** Every process below `pid`, children first. */
function descendants(pid: number): number[] {
  return childrenOf(pid).flatMap((c) => [c, ...descendants(c)]);
}

void test(
  "npm start brings up the bundled topology and routes to every sample service",
  { timeout: 120_000 },
  async () => {
    const prefix = await freePrefix();
    const port = (suffix: string) => `${prefix}${suffix}`;
    // npm ci builds dist/ (prepare); a checkout without it builds here rather than skip.
    if (!existsSync(`${ROOT}dist/cli.js`)) await promisify(execFile)("npm", ["run", "build"], { cwd: ROOT });
    const npm = spawnLogged(["npm", "start", "--silent"], {
      env: {
        GATEWAY_PORT: "0",
        GATEWAY_PORT_PREFIX: prefix,
        GATEWAY_ADMIN_KEY: "",
        GATEWAY_REGISTRY_KEY: "",
        GATEWAY_LOG_LEVEL: "info",
      },
      detached: true,
    });
    let gatewayPid: number | undefined;
    try {
      const started = await npm.logs.waitFor("gateway_started");
      const base = `http://127.0.0.1:${String(started.listen).split(":").at(-1)}`;
      // Health checks run every 5 s and need 2 passes: each upstream comes up within about 10 s.
      const upstreams = [
        ["main_app", `127.0.0.1:${port("000")}`],
        ["main_app", `127.0.0.1:${port("001")}`],
        ...["100", "101", "102", "103"].map((p) => ["pdf_services", `127.0.0.1:${port(p)}`]),
        ["weather", `127.0.0.1:${port("200")}`],
        ["chart", `127.0.0.1:${port("201")}`],
        ["files", `127.0.0.1:${port("202")}`],
        ["analysis", `127.0.0.1:${port("203")}`],
      ];
      await Promise.all(
        upstreams.map(([pool, upstream]) =>
          npm.logs.waitFor(
            "health_change",
            (l) => l.pool === pool && l.upstream === upstream && l.to === "healthy",
          ),
        ),
      );
      // The extra worker: a pdf port from the registry, then a member of pdf_services once its check passed.
      const joined = await npm.logs.waitFor(
        "health_change",
        (l) =>
          l.pool === "pdf_services" &&
          /^pdf-extra@127\.0\.0\.1:\d+$/.test(String(l.upstream)) &&
          l.to === "healthy",
      );
      const extraId = String(joined.upstream);
      const extraPort = Number(extraId.split(":").at(-1));
      const [extra] = (await get(`${base}/registry/allocations?name=pdf-extra`)).json<{
        allocations: { service_type: string; port: number; pools: string[]; status: string }[];
      }>().allocations;
      assert.ok(extra, "pdf-extra is registered");
      assert.equal(extra.service_type, "pdf");
      assert.equal(extra.port, extraPort);
      assert.ok(
        (extraPort >= Number(port("110")) && extraPort <= Number(port("119"))) ||
          (extraPort >= 10000 && extraPort <= 11999),
        `pdf range, else its fallback (dynamic): ${extraPort}`,
      );
      assert.deepEqual(extra.pools, ["pdf_services"]);
      assert.equal(extra.status, "active");

      const answers: Record<string, Record<string, unknown>> = {};
      for (const path of [
        "/",
        "/api/pdf/report",
        "/api/weather/paris",
        "/api/chart/sales?points=3",
        "/api/files/report.pdf",
        "/api/analysis/?values=1,2,3",
      ]) {
        const res = await get(`${base}${path}`);
        assert.equal(res.status, 200, path);
        answers[path] = res.json();
      }
      assert.equal(answers["/"]?.service, "main_app");
      assert.equal(answers["/"]?.instance, "primary");
      assert.equal(answers["/api/pdf/report"]?.service, "pdf");
      assert.ok(["a", "b", "c", "extra"].includes(String(answers["/api/pdf/report"]?.variant)));
      assert.equal(answers["/api/pdf/report"]?.path, "/api/pdf/report", "pdf keeps its prefix");
      assert.equal(answers["/api/weather/paris"]?.service, "weather");
      assert.equal(answers["/api/weather/paris"]?.path, "/paris", "weather's prefix is stripped");
      assert.equal(answers["/api/chart/sales?points=3"]?.service, "chart");
      assert.equal(answers["/api/files/report.pdf"]?.service, "files");
      assert.equal(answers["/api/analysis/?values=1,2,3"]?.service, "analysis");
      assert.equal(answers["/api/analysis/?values=1,2,3"]?.mean, 2);

      // The backups serve too: drain the primaries and they take over.
      const drain = (pool: string, id: string) =>
        get(`${base}/admin/pools/${pool}/upstreams/${id}/drain`, { method: "POST" });
      assert.equal((await drain("main_app", `127.0.0.1:${port("000")}`)).status, 200);
      assert.equal((await get(`${base}/`)).json().instance, "backup");
      for (const p of ["100", "101", "102"]) await drain("pdf_services", `127.0.0.1:${port(p)}`);
      await drain("pdf_services", extraId);
      assert.equal((await get(`${base}/api/pdf/x`)).json().variant, "backup");

      const status = (await get(`${base}/admin/status`)).json<StatusReport>();
      const managed = status.pools.flatMap((p) =>
        p.upstreams.flatMap((u) => (u.discovered ? [] : [u.managed])),
      );
      assert.equal(managed.length, 10);
      assert.ok(managed.every((m) => m?.running === true && typeof m.pid === "number"));
      const extraWrapper = Number(
        (await npm.logs.waitFor("managed_start", (l) => l.process === "pdf-extra")).pid,
      );
      const extraListening = await npm.logs.waitFor(
        "managed_output",
        (l) => l.process === "pdf-extra" && / listening on .*\(pid \d+\)/.test(String(l.line)),
      );
      const extraChild = Number(/\(pid (\d+)\)/.exec(String(extraListening.line))![1]);
      const servicePids = [...managed.map((m) => m!.pid!), extraWrapper, extraChild];

      // The node process itself, not the `sh -c` npm runs it through.
      gatewayPid = descendants(npm.child.pid!).find((p) => /^\S*node bin\/gateway\.js /.test(cmdline(p)));
      assert.ok(gatewayPid, "the gateway process under npm");
      const guards = childrenOf(gatewayPid);
      process.kill(gatewayPid, "SIGTERM");
      const done = await npm.logs.waitFor("shutdown_complete");
      assert.equal(done.clean, true);
      assert.equal(npm.logs.events("managed_exit").length, 11);
      assert.ok(npm.logs.events("managed_exit").every((e) => e.reason === "stopped" && e.code === 0));
      assert.deepEqual(await npm.exited, { code: 0, signal: null });
      assert.deepEqual(await waitGone([...servicePids, ...guards, gatewayPid], 10_000), []);
    } finally {
      // Whatever happened above, take the whole tree down.
      try {
        process.kill(-npm.child.pid!, "SIGKILL");
      } catch {
        // Already gone.
      }
    }
  },
);
