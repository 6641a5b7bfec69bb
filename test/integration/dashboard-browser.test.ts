// End-to-end test of the status page (GET /admin/) in real headless Chromium, driven by playwright-core.
import { after, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { chromium, type Browser, type Page } from "playwright-core";
import { poolConfig, startGateway, type TestGateway } from "../helpers/gateway.ts";
import { FakeUpstream } from "../helpers/upstream.ts";
import type { UpstreamStatus } from "../../src/server/status.ts";

const CHROMIUM = "/usr/bin/chromium";
// Screenshots land beside the repo's other test output (gitignored), whatever the cwd.
const OUTPUT_DIR = fileURLToPath(new URL("../../test-output/", import.meta.url));

// In CI a missing browser is a broken setup (.ci/run installs it), so only a developer's machine may skip.
const skip =
  !existsSync(CHROMIUM) && !process.env.CI
    ? `${CHROMIUM} is missing (apt-get install chromium); skipped because CI is not set`
    : false;

// The callbacks given to page.evaluate and $eval run in the page, not in Node. The project's tsconfig has no DOM
// lib (everything else is Node), so these module-scoped declarations type the little of the DOM they use.
declare const document: {
  querySelector(selector: string): { getAttribute(name: string): string | null } | null;
  documentElement: { scrollWidth: number };
};
declare const window: { innerWidth: number };
declare function getComputedStyle(el: unknown): { display: string; backgroundColor: string };

let browserPromise: Promise<Browser> | undefined;

/** One browser for the file (a launch costs about a second); each test gets its own context. */
function browser(): Promise<Browser> {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is required when CI is set (apt-get install chromium)`);
  browserPromise ??= chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // As root Chromium needs --no-sandbox. The network flags stop its background calls home, which this
    // machine's closed network refuses, many at a time. Playwright gives every launch a fresh empty profile
    // (it refuses --user-data-dir in args), so no state leaks between runs.
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  return browserPromise;
}

after(async () => {
  if (browserPromise) await (await browserPromise).close();
});

interface OpenedPage {
  page: Page;
  /** Uncaught exceptions and console errors on the page. */
  problems: string[];
  /** Every URL the page asked for: the page must need nothing but the gateway. */
  requested: string[];
}

async function openPage(t: TestContext, viewport = { width: 1280, height: 800 }): Promise<OpenedPage> {
  const context = await (await browser()).newContext({ viewport });
  t.after(() => context.close());
  const page = await context.newPage();
  // Every wait below is for a DOM change the page makes on its 2 s poll; a few polls is plenty.
  page.setDefaultTimeout(15_000);
  const problems: string[] = [];
  const requested: string[] = [];
  page.on("pageerror", (err) => problems.push(`pageerror: ${err.message}`));
  page.on("console", (msg) => {
    if (msg.type() === "error") problems.push(`console: ${msg.text()}`);
  });
  page.on("request", (req) => requested.push(req.url()));
  return { page, problems, requested };
}

async function gatewayWithPrimaryAndBackup(t: TestContext, extra = "") {
  const primary = await FakeUpstream.start({ name: "primary" });
  t.after(() => primary.close());
  const backup = await FakeUpstream.start({ name: "backup" });
  t.after(() => backup.close());
  const g: TestGateway = await startGateway(
    poolConfig([{ url: primary.url }, { url: backup.url, backup: true }], extra),
  );
  t.after(() => g.stop());
  const [p, b] = g.gw.status().pools[0]!.upstreams;
  return { g, primary, backup, primaryId: p!.id, backupId: b!.id };
}

const row = (id: string) => `[data-pool="app"] [data-upstream="${id}"]`;

void test(
  "the status page turns a killed primary red and shows its pool on the backup",
  { skip, timeout: 90_000 },
  async (t) => {
    const { g, primary, primaryId, backupId } = await gatewayWithPrimaryAndBackup(t);
    const { page, problems, requested } = await openPage(t);

    await page.goto(`${g.url}/admin/`);
    await page.waitForSelector(`[data-pool="app"][data-tier="primary"]`);
    await page.waitForSelector(
      `${row(primaryId)}[data-health="healthy"][data-breaker="closed"][data-level="ok"]`,
    );
    await page.waitForSelector(`${row(backupId)}[data-health="healthy"][data-level="ok"]`);
    assert.equal(await page.textContent(`${row(backupId)} [data-label="Role"]`), "backup");
    assert.equal(await page.textContent(`${row(primaryId)} [data-label="Role"]`), "primary");
    assert.match((await page.getAttribute("#updated", "data-updated")) ?? "", /^\d{4}-\d\d-\d\dT/);
    assert.equal(await page.isHidden("#error"), true);

    // Traffic after the first render shows up as a rate at a later poll (the page derives it from deltas).
    for (let i = 0; i < 6; i++) {
      const res = await fetch(`${g.url}/hello`);
      assert.equal(res.status, 200);
      await res.arrayBuffer();
    }
    await page.waitForFunction(
      (sel) => Number(document.querySelector(sel)?.getAttribute("data-rate")) > 0,
      `${row(primaryId)} [data-field="rate"]`,
    );
    assert.match((await page.textContent(`${row(primaryId)} [data-field="rate"]`)) ?? "", /^\d+(\.\d)?$/);

    await primary.kill();
    await g.gw.runHealthRound();

    await page.waitForSelector(`${row(primaryId)}[data-health="unhealthy"][data-level="bad"]`);
    await page.waitForSelector(`[data-pool="app"][data-tier="backup"]`);
    assert.equal(await page.textContent(`[data-pool="app"] [data-field="tier"]`), "on backups");
    assert.notEqual((await page.textContent(`${row(primaryId)} [data-field="reason"]`))?.trim(), "–");
    assert.notEqual(
      (await page.textContent(`${row(primaryId)} [data-field="last-check"]`))?.trim(),
      "none yet",
    );
    assert.equal(await page.getAttribute(row(backupId), "data-level"), "ok");
    // Red and green at a glance: the failed row is tinted, the healthy one is not.
    const bg = (id: string) => page.$eval(row(id), (el: unknown) => getComputedStyle(el).backgroundColor);
    assert.notEqual(await bg(primaryId), await bg(backupId));

    await mkdir(OUTPUT_DIR, { recursive: true });
    await page.screenshot({ path: `${OUTPUT_DIR}dashboard.png`, fullPage: true });

    // On a phone the rows become cards and nothing scrolls sideways.
    await page.setViewportSize({ width: 390, height: 844 });
    assert.equal(await page.$eval(row(primaryId), (el: unknown) => getComputedStyle(el).display), "block");
    assert.equal(await page.isHidden(`[data-pool="app"] thead`), true);
    assert.equal(
      await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth),
      true,
      "the page is wider than a phone screen",
    );
    await page.screenshot({ path: `${OUTPUT_DIR}dashboard-phone.png`, fullPage: true });

    assert.deepEqual(problems, []);
    const foreign = requested.filter((u) => !u.startsWith(`${g.url}/`));
    assert.deepEqual(foreign, [], "the page must load nothing from anywhere but the gateway");

    // When polling fails the page says so instead of showing stale data as current.
    await g.stop();
    await page.waitForSelector("#error:not([hidden])");
    assert.match((await page.textContent("#error")) ?? "", /failed/);
    assert.equal(await page.getAttribute("#pools", "class"), "stale");
  },
);

void test(
  "with an admin key the page sends ?key= as X-API-Key, and a wrong key shows the error banner",
  { skip, timeout: 60_000 },
  async (t) => {
    const key = "s3cret-key";
    const { g, primaryId } = await gatewayWithPrimaryAndBackup(t, `admin:\n  apiKey: ${key}\n`);
    assert.equal((await fetch(`${g.url}/admin/status`)).status, 401);

    // GET /admin/ itself is behind the key too, and a browser cannot put a header on the address bar's
    // request: the test adds it to the document request only, so the status polls must carry their own.
    const withKeyOnDocument = async (page: Page) => {
      await page.route(
        (u) => u.pathname === "/admin/",
        (route) => route.continue({ headers: { ...route.request().headers(), "x-api-key": key } }),
      );
    };

    const good = await openPage(t);
    await withKeyOnDocument(good.page);
    await good.page.goto(`${g.url}/admin/?key=${key}`);
    await good.page.waitForSelector(`${row(primaryId)}[data-health="healthy"]`);
    assert.equal(await good.page.isHidden("#error"), true);

    const bad = await openPage(t);
    await withKeyOnDocument(bad.page);
    await bad.page.goto(`${g.url}/admin/?key=wrong`);
    await bad.page.waitForSelector("#error:not([hidden])");
    assert.match((await bad.page.textContent("#error")) ?? "", /HTTP 401/);
    assert.equal(await bad.page.$(row(primaryId)), null);
  },
);

void test(
  "amber for unknown, half-open and drained, red for open, and upstream text is shown as text",
  { skip, timeout: 60_000 },
  async (t) => {
    const { g } = await gatewayWithPrimaryAndBackup(t);
    // The report's shape, loosely: `managed` is optional, as the page treats it.
    type Fixture = Omit<UpstreamStatus, "managed"> & { managed?: unknown };
    const upstream = (id: string, extra: Partial<Fixture>): Fixture => ({
      id,
      url: `http://127.0.0.1:1/${id}`,
      weight: 1,
      backup: false,
      discovered: false,
      health: "healthy",
      available: true,
      breaker: "closed",
      drained: false,
      inFlight: 0,
      requests: 0,
      reason: "",
      passes: 1,
      fails: 0,
      lastCheck: null,
      ...extra,
    });
    const hostile = '<img src=x onerror="document.title=1">';
    // States a two-upstream gateway cannot be driven into quickly: the page is fed a made-up report instead.
    const report = {
      config: { path: "/etc/gateway.yaml", hash: "0123456789abcdef", loadedAt: new Date().toISOString() },
      ready: false,
      pools: [
        {
          name: "edge",
          balance: "random",
          activeTier: -1,
          activeTierName: "none",
          upstreams: [
            upstream("unknown", { health: "unknown" }),
            upstream("half", { breaker: "half_open" }),
            upstream("drained", { drained: true, available: false, reason: "drained by operator" }),
            upstream("open", { breaker: "open", available: false, reason: "breaker open" }),
            upstream(hostile, {
              managed: { pid: 4242, running: true, restarts: 2, lastExit: null },
            }),
          ],
        },
      ],
    };
    const { page, problems } = await openPage(t);
    await page.route(
      (u) => u.pathname === "/admin/status",
      (route) => route.fulfill({ json: report }),
    );
    await page.goto(`${g.url}/admin/`);
    await page.waitForSelector(`[data-pool="edge"][data-tier="none"]`);

    const rows = await page.$$eval("[data-upstream]", (els: unknown[]) =>
      (els as { getAttribute(n: string): string | null }[]).map((e) => [
        e.getAttribute("data-upstream"),
        e.getAttribute("data-level"),
      ]),
    );
    assert.deepEqual(rows, [
      ["unknown", "warn"],
      ["half", "warn"],
      ["drained", "warn"],
      ["open", "bad"],
      [hostile, "ok"],
    ]);
    assert.equal(await page.textContent(`[data-pool="edge"] [data-field="tier"]`), "nothing available");
    assert.equal(await page.getAttribute("#ready", "data-ready"), "false");
    assert.equal(await page.$("[data-pool] img"), null, "an upstream id is never parsed as markup");
    assert.notEqual(await page.title(), "1");
    assert.equal(await page.textContent("[data-managed]"), "process running, pid 4242 · 2 restarts");
    await mkdir(OUTPUT_DIR, { recursive: true });
    await page.screenshot({ path: `${OUTPUT_DIR}dashboard-states.png`, fullPage: true });
    assert.deepEqual(problems, []);
  },
);

void test(
  "drain and enable buttons (with the key from ?key=), the routes table, and the last config error",
  { skip, timeout: 90_000 },
  async (t) => {
    const key = "s3cret-key";
    const { g, primaryId } = await gatewayWithPrimaryAndBackup(t, `admin:\n  apiKey: ${key}\n`);
    const { page, problems } = await openPage(t);
    await page.goto(`${g.url}/admin/?key=${key}`);
    await page.waitForSelector(`${row(primaryId)}[data-drained="false"]`);

    // The routes table.
    await page.waitForSelector(`[data-routes] [data-route="/"]`);
    assert.equal(await page.textContent(`[data-route="/"] [data-label="Pool"]`), "app");
    assert.equal(await page.textContent(`[data-route="/"] [data-label="Prefix"]`), "/");

    // Drain: the POST carries the key, the gateway drains, the row says so.
    await page.click(`${row(primaryId)} [data-action="drain"]`);
    await page.waitForSelector(`${row(primaryId)}[data-drained="true"] [data-action="enable"]`);
    assert.equal(g.gw.status().pools[0]!.upstreams[0]!.drained, true);
    await g.logs.waitFor("upstream_drained", (l) => l.upstream === primaryId);
    await page.click(`${row(primaryId)} [data-action="enable"]`);
    await page.waitForSelector(`${row(primaryId)}[data-drained="false"] [data-action="drain"]`);
    assert.equal(g.gw.status().pools[0]!.upstreams[0]!.drained, false);
    await g.logs.waitFor("upstream_enabled", (l) => l.upstream === primaryId);
    assert.equal(await page.isHidden("#error"), true);

    // A refused reload shows with its FILE:LINE:COL lines until a good reload clears it.
    assert.equal(await page.isHidden("#config-error"), true);
    const good = await readFile(g.configPath, "utf8");
    await g.writeConfig(`${good}\nbogus: 1\n`);
    assert.equal((await g.gw.reload("api")).ok, false);
    await page.waitForSelector(`#config-error:not([hidden])`);
    const lines = (await page.textContent("#config-error-lines")) ?? "";
    assert.ok(lines.startsWith(`${g.configPath}:`), lines);
    assert.match(lines, /:\d+:\d+: .*bogus/);
    await g.writeConfig(good);
    assert.equal((await g.gw.reload("api")).ok, true);
    await page.waitForSelector(`#config-error[hidden]`, { state: "attached" });
    assert.deepEqual(problems, []);
  },
);
