// Unit tests for Router: segment-wise longest prefix, trailing-slash prefixes, host routes, stripPrefix.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { RouteConfig } from "../../src/config/types.ts";
import { Router } from "../../src/router/router.ts";

function route(prefix: string, pool: string, opts: { strip?: boolean; host?: string } = {}): RouteConfig {
  return {
    id: opts.host ? `${opts.host}${prefix}` : prefix,
    prefix,
    pool,
    stripPrefix: opts.strip ?? false,
    ...(opts.host ? { host: opts.host } : {}),
  };
}

type Case = [
  host: string | undefined,
  path: string,
  expected: [routeId: string, upstreamPath: string] | undefined,
];

function check(name: string, routes: RouteConfig[], cases: Case[]): void {
  const router = new Router(routes);
  for (const [host, path, expected] of cases) {
    void test(`${name}: ${host ?? "(no host)"} ${path} -> ${expected ? expected.join(" => ") : "no match"}`, () => {
      const m = router.match(host, path);
      if (expected === undefined) {
        assert.equal(m, undefined);
      } else {
        assert.ok(m, "expected a match");
        assert.deepEqual([m.route.id, m.upstreamPath], expected);
      }
    });
  }
}

check(
  "the bundled gateway.yaml routes",
  [
    route("/api/pdf/", "pdf_services"),
    route("/api/weather/", "weather", { strip: true }),
    route("/", "main_app"),
  ],
  [
    [undefined, "/api/pdf/render", ["/api/pdf/", "/api/pdf/render"]],
    [undefined, "/api/pdf/", ["/api/pdf/", "/api/pdf/"]],
    [undefined, "/api/pdf", ["/", "/api/pdf"]],
    [undefined, "/api/pdfx", ["/", "/api/pdfx"]],
    [undefined, "/api/weather/today", ["/api/weather/", "/today"]],
    [undefined, "/api/weather/", ["/api/weather/", "/"]],
    [undefined, "/api/weather/a/b/", ["/api/weather/", "/a/b/"]],
    [undefined, "/api/weather", ["/", "/api/weather"]],
    [undefined, "/", ["/", "/"]],
    [undefined, "/anything/else", ["/", "/anything/else"]],
    ["example.com", "/api/pdf/x", ["/api/pdf/", "/api/pdf/x"]],
  ],
);

check(
  "segment-boundary prefixes",
  [route("/api/pdf", "pdf"), route("/api", "api"), route("/api/pdf/v2/", "v2")],
  [
    [undefined, "/api/pdf", ["/api/pdf", "/api/pdf"]],
    [undefined, "/api/pdf/", ["/api/pdf", "/api/pdf/"]],
    [undefined, "/api/pdf/x", ["/api/pdf", "/api/pdf/x"]],
    [undefined, "/api/pdf/x/y", ["/api/pdf", "/api/pdf/x/y"]],
    [undefined, "/api/pdfx", ["/api", "/api/pdfx"]],
    [undefined, "/api/pd", ["/api", "/api/pd"]],
    [undefined, "/api/pdf/v2", ["/api/pdf", "/api/pdf/v2"]],
    [undefined, "/api/pdf/v2/", ["/api/pdf/v2/", "/api/pdf/v2/"]],
    [undefined, "/api/pdf/v2/a", ["/api/pdf/v2/", "/api/pdf/v2/a"]],
    [undefined, "/api/pdf/v2x", ["/api/pdf", "/api/pdf/v2x"]],
    [undefined, "/api", ["/api", "/api"]],
    [undefined, "/apix", undefined],
    [undefined, "/", undefined],
    [undefined, "/other", undefined],
    [undefined, "", undefined],
  ],
);

check(
  "longest prefix wins regardless of order",
  [route("/", "root"), route("/a/", "a"), route("/a/b/c", "abc"), route("/a/b", "ab")],
  [
    [undefined, "/a/b/c/d", ["/a/b/c", "/a/b/c/d"]],
    [undefined, "/a/b/cd", ["/a/b", "/a/b/cd"]],
    [undefined, "/a/bc", ["/a/", "/a/bc"]],
    [undefined, "/a", ["/", "/a"]],
    [undefined, "/a//b", ["/a/", "/a//b"]],
  ],
);

check(
  "repeated slashes are literal",
  [route("/a//b", "double"), route("/", "root")],
  [
    [undefined, "/a//b/c", ["/a//b", "/a//b/c"]],
    [undefined, "/a/b/c", ["/", "/a/b/c"]],
  ],
);

check(
  "stripPrefix variants",
  [
    route("/api/weather/", "w1", { strip: true }),
    route("/svc", "svc", { strip: true }),
    route("/root-strip/deep/", "d", { strip: true }),
    route("/", "root", { strip: true }),
  ],
  [
    [undefined, "/api/weather/today", ["/api/weather/", "/today"]],
    [undefined, "/api/weather/", ["/api/weather/", "/"]],
    [undefined, "/svc", ["/svc", "/"]],
    [undefined, "/svc/", ["/svc", "/"]],
    [undefined, "/svc/x", ["/svc", "/x"]],
    [undefined, "/svc/x/y/", ["/svc", "/x/y/"]],
    [undefined, "/root-strip/deep/a%2Fb", ["/root-strip/deep/", "/a%2Fb"]],
    [undefined, "/anything", ["/", "/anything"]],
    [undefined, "/", ["/", "/"]],
  ],
);

check(
  "host routes beat host-less ones",
  [
    route("/", "default"),
    route("/api/", "api_default"),
    route("/", "example_root", { host: "example.com" }),
    route("/api/v1/", "example_v1", { host: "example.com" }),
    route("/shop", "shop", { host: "shop.example.com", strip: true }),
  ],
  [
    [undefined, "/api/v1/x", ["/api/", "/api/v1/x"]],
    ["other.org", "/api/v1/x", ["/api/", "/api/v1/x"]],
    ["example.com", "/api/v1/x", ["example.com/api/v1/", "/api/v1/x"]],
    // the host's own `/` beats a longer host-less prefix
    ["example.com", "/api/v2", ["example.com/", "/api/v2"]],
    ["EXAMPLE.com:8080", "/api/v1/x", ["example.com/api/v1/", "/api/v1/x"]],
    ["Example.COM", "/", ["example.com/", "/"]],
    ["example.com.", "/", ["example.com/", "/"]],
    ["example.com.:443", "/", ["example.com/", "/"]],
    ["www.example.com", "/", ["/", "/"]],
    // a host without a matching route of its own falls back to host-less routes
    ["shop.example.com", "/shop/cart", ["shop.example.com/shop", "/cart"]],
    ["shop.example.com:80", "/shop", ["shop.example.com/shop", "/"]],
    ["shop.example.com", "/api/x", ["/api/", "/api/x"]],
    ["shop.example.com", "/shopping", ["/", "/shopping"]],
    ["", "/api/x", ["/api/", "/api/x"]],
  ],
);

check(
  "IPv6 host literals",
  [route("/", "v6", { host: "[::1]" }), route("/", "default")],
  [
    ["[::1]:8080", "/x", ["[::1]/", "/x"]],
    ["[::1]", "/x", ["[::1]/", "/x"]],
    ["[::2]:8080", "/x", ["/", "/x"]],
  ],
);

check(
  "host-only routes without a host-less fallback",
  [route("/", "only", { host: "a.test" })],
  [
    ["a.test", "/x", ["a.test/", "/x"]],
    ["b.test", "/x", undefined],
    [undefined, "/x", undefined],
  ],
);

check("no routes", [], [[undefined, "/", undefined]]);

void test("a duplicate (host, prefix) resolves to the first route, deterministically", () => {
  const first = route("/a", "first");
  const second = route("/a", "second");
  assert.equal(new Router([first, second]).match(undefined, "/a/x")?.route, first);
  assert.equal(new Router([first, second]).match(undefined, "/a/x")?.route, first);
});

void test("match returns the route object it was given", () => {
  const r = route("/x", "p");
  assert.equal(new Router([r]).match(undefined, "/x")?.route, r);
});

void test("a path that leaves its route's prefix once %2F or %5C is decoded is flagged", () => {
  const router = new Router([
    route("/app/", "app"),
    route("/svc", "svc", { strip: true }),
    route("/a/b/", "ab"),
    route("/", "root"),
  ]);
  const climbs = (path: string) => router.match(undefined, path)?.climbsOut;
  // out of /app/ (the examples)
  assert.equal(climbs("/app/..%2F..%2Fetc/passwd"), true);
  assert.equal(climbs("/app/x%2F..%2F..%2Fy"), true);
  assert.equal(climbs("/app/..%5Cadmin"), true);
  assert.equal(climbs("/svc/..%2Fother"), true);
  assert.equal(climbs("/a/b/..%2Fc"), true);
  // climbing inside the prefix is allowed, and an encoded slash alone is data
  assert.equal(climbs("/app/x%2F..%2Fy"), false);
  assert.equal(climbs("/a/b/c%2F..%2Fd"), false);
  assert.equal(climbs("/app/a%2Fb"), false);
  assert.equal(climbs("/svc/x"), false);
  // the root route: only climbing above `/` counts
  assert.equal(climbs("/x/..%2Fy"), false);
  assert.equal(climbs("/x%2F..%2F..%2Fy"), true);
});
