// CORS in real headless Chromium: a page on one loopback origin calls the gateway on another (different ports are
// different origins). The allowed origin's credentialed fetch succeeds and can read a 401; a disallowed origin's
// fetch is blocked by the browser itself.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, test, type TestContext } from "node:test";
import { chromium, type Browser } from "playwright-core";
import { startGateway } from "../helpers/gateway.ts";
import { FakeUpstream } from "../helpers/upstream.ts";

const CHROMIUM = "/usr/bin/chromium";
const KEY = "browser-test-api-key-0123";

let browserPromise: Promise<Browser> | undefined;
function browser(): Promise<Browser> {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is required (apt-get install chromium)`);
  // The same launch as the dashboard test: no sandbox as root, and no background calls home.
  browserPromise ??= chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
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

/** A server for the page's own origin: it serves one empty HTML page. */
async function pageOrigin(t: TestContext): Promise<string> {
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { "content-type": "text/html" });
    res.end("<!doctype html><title>front end</title>");
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  t.after(() => {
    server.closeAllConnections();
    return new Promise((r) => server.close(r));
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

// page.evaluate runs its callback in the page; the project has no DOM lib, so these declarations type what it uses.
declare function fetch(
  url: string,
  init: Record<string, unknown>,
): Promise<{ status: number; headers: { get(n: string): string | null }; json(): Promise<unknown> }>;

interface FetchResult {
  ok: boolean;
  status?: number;
  body?: unknown;
  requestId?: string | null;
  error?: string;
}

async function fetchFrom(
  t: TestContext,
  origin: string,
  url: string,
  headers: Record<string, string>,
): Promise<FetchResult> {
  const context = await (await browser()).newContext();
  t.after(() => context.close());
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  await page.goto(origin);
  return page.evaluate(
    async ({ url, headers }) => {
      try {
        const res = await fetch(url, { credentials: "include", headers });
        return {
          ok: true,
          status: res.status,
          body: await res.json(),
          requestId: res.headers.get("x-request-id"),
        };
      } catch (err) {
        return { ok: false, error: String(err) };
      }
    },
    { url, headers },
  );
}

test("an allowed origin's credentialed fetch succeeds; a disallowed origin's is blocked by the browser", async (t) => {
  const allowed = await pageOrigin(t);
  const other = await pageOrigin(t);
  const up = await FakeUpstream.start({
    handler: (req, res) => {
      // The upstream's own CORS headers would let any origin in; the gateway must replace them.
      res.writeHead(200, { "content-type": "application/json", "access-control-allow-origin": "*" });
      res.end(JSON.stringify({ subject: req.headers["x-auth-subject"] }));
    },
  });
  t.after(() => up.close());
  const gw = await startGateway(`listen: 127.0.0.1:0
shutdownGrace: 2s
defaults:
  healthCheck: { interval: 60s, timeout: 1s, healthyThreshold: 1, unhealthyThreshold: 1 }
policies:
  front:
    cors:
      origins: [${allowed}]
      headers: [X-API-Key, Content-Type]
      exposeHeaders: [X-Request-Id]
      credentials: true
    auth:
      apiKeys: [{ name: front-end, key: ${KEY} }]
pools:
  app: { upstreams: [{ url: ${up.url} }] }
routes:
  - { prefix: /api/, pool: app, policies: [front] }
`);
  t.after(() => gw.stop());
  const api = `${gw.url}/api/profile`;

  const ok = await fetchFrom(t, allowed, api, { "x-api-key": KEY });
  assert.deepEqual(ok.body, { subject: "front-end" });
  assert.equal(ok.status, 200);
  // Exposed to the page by Access-Control-Expose-Headers.
  assert.match(ok.requestId ?? "", /^[\w-]+$/);

  // The gateway's own 401 carries the CORS headers, so the page can read it.
  const denied = await fetchFrom(t, allowed, api, { "x-api-key": "wrong" });
  assert.equal(denied.status, 401);
  assert.equal((denied.body as { error: string }).error, "unauthorized");

  const hitsBefore = up.hits;
  const blocked = await fetchFrom(t, other, api, { "x-api-key": KEY });
  assert.equal(blocked.ok, false, JSON.stringify(blocked));
  assert.match(blocked.error ?? "", /TypeError|Failed to fetch/);
  // Blocked at the preflight: the request itself was never sent.
  assert.equal(up.hits, hitsBefore);
});
