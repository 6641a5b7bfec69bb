// Unit tests for normalizeTarget: request-target forms, unreserved decoding, dot segments, climbing, query.
import { test } from "node:test";
import assert from "node:assert/strict";
import { encodedSlashesClimb, normalizeTarget, prefixDepth } from "../../src/router/normalize.ts";

const accepted: [target: string, path: string, query: string][] = [
  // plain origin-form, untouched
  ["/", "/", ""],
  ["/a/b", "/a/b", ""],
  ["/a/b/", "/a/b/", ""],
  ["/a//b", "/a//b", ""],
  ["//", "//", ""],
  ["/.well-known/x", "/.well-known/x", ""],
  ["/a/.b/..c/...", "/a/.b/..c/...", ""],
  ["/a.b/c..", "/a.b/c..", ""],
  // dot segments
  ["/a/./b", "/a/b", ""],
  ["/a/b/../c", "/a/c", ""],
  ["/a/..", "/", ""],
  ["/a/b/..", "/a/", ""],
  ["/a/b/.", "/a/b/", ""],
  ["/a/./", "/a/", ""],
  ["/.", "/", ""],
  ["/./", "/", ""],
  ["/a/../b/./c/..", "/b/", ""],
  ["/a//..", "/a/", ""],
  // unreserved characters decoded, everything else kept with upper-case hex
  ["/%7Euser", "/~user", ""],
  ["/%7euser", "/~user", ""],
  ["/%41%5a%61%7A%30%39%2D%2E%5F%7E", "/AZaz09-._~", ""],
  ["/a%2fb", "/a%2Fb", ""],
  ["/a%2Fb", "/a%2Fb", ""],
  ["/a%20b%3f%c3%a9", "/a%20b%3F%C3%A9", ""],
  ["/%25", "/%25", ""],
  ["/%2541", "/%2541", ""],
  // decoding happens before dot-segment removal
  ["/a/%2e/b", "/a/b", ""],
  ["/a/b/%2e%2E/c", "/a/c", ""],
  ["/a/b/.%2e", "/a/", ""],
  ["/a%2f..", "/a%2F..", ""],
  ["/a%2f..%2fb", "/a%2F..%2Fb", ""],
  ["/a/b%5C..%5C..%5Cc", "/a/b%5C..%5C..%5Cc", ""],
  ["/%2F%2F..", "/%2F%2F..", ""],
  ["/a/%2e%2e%2f", "/a/..%2F", ""],
  // query kept untouched
  ["/a?x=1", "/a", "x=1"],
  ["/a?", "/a", ""],
  ["/a?a=%2e&b=..", "/a", "a=%2e&b=.."],
  ["/a/./b?q=%7e%zz/../?x", "/a/b", "q=%7e%zz/../?x"],
  ["/%7e?%7e", "/~", "%7e"],
  ["/?#", "/", "#"],
  // absolute-form: only the path (and query) count
  ["http://example.com/a/b?x", "/a/b", "x"],
  ["https://example.com:8443/a/../b", "/b", ""],
  ["HTTP://Example.com/%7e", "/~", ""],
  ["http://example.com", "/", ""],
  ["http://example.com?x=1", "/", "x=1"],
  ["http://[::1]:8080/a", "/a", ""],
];

for (const [target, path, query] of accepted) {
  void test(`normalizeTarget(${JSON.stringify(target)}) -> ${path} ? ${query}`, () => {
    assert.deepEqual(normalizeTarget(target), { ok: true, path, query });
  });
}

const rejected: [target: string, why: string][] = [
  ["", "empty"],
  ["*", "asterisk-form"],
  ["a/b", "no leading slash"],
  ["example.com:443", "authority-form"],
  ["ftp://example.com/a", "not http(s)"],
  ["http:/a", "no authority"],
  ["http:///a", "empty host"],
  ["http://:80/a", "empty host with port"],
  ["/..", "climbs from root"],
  ["/../a", "climbs from root then descends"],
  ["/a/../../b", "climbs past root"],
  ["/a/../..", "climbs past root at the end"],
  ["/%2e%2e/x", "encoded dot-dot climbs"],
  ["/%2E%2E", "upper-case encoded dot-dot climbs"],
  ["/.%2e/x", "half-encoded dot-dot climbs"],
  ["http://example.com/../x", "absolute-form climbs"],
  ["/%zz", "non-hex escape"],
  ["/a%4", "truncated escape"],
  ["/a%", "bare percent"],
  ["/%g1", "non-hex first digit"],
  ["/%1g?x", "non-hex second digit before a query"],
  ["/a#frag", "fragment"],
  // encoded slashes that climb above `/` once an upstream decodes them
  ["/..%2f..%2fetc/passwd", "encoded slashes climb from the root"],
  ["/..%2F", "dot-dot before an encoded slash"],
  ["/a%2f..%2f..%2fb", "climbs past the root inside one segment"],
  ["/a/b%2F..%2F..%2F..%2Fc", "climbs past the root across segments"],
  ["/..%5Cwindows", "encoded backslash"],
  ["/..\\windows", "raw backslash, sent as %5C"],
  ["/%2e%2e%2fx", "everything encoded"],
];

for (const [target, why] of rejected) {
  void test(`normalizeTarget(${JSON.stringify(target)}) is rejected: ${why}`, () => {
    const r = normalizeTarget(target);
    assert.equal(r.ok, false);
    if (!r.ok) assert.ok(r.reason.length > 0);
  });
}

void test("the common case hands back the request-target itself", () => {
  const target = "/api/pdf/render/document";
  const r = normalizeTarget(target);
  assert.ok(r.ok);
  assert.equal(r.path, target);
});

test("a backslash is sent as %5C, so no parser downstream can read it as a separator", () => {
  assert.deepEqual(normalizeTarget("/public/..\\private/x"), {
    ok: true,
    path: "/public/..%5Cprivate/x",
    query: "",
  });
  assert.deepEqual(normalizeTarget("/a\\b?x=\\"), { ok: true, path: "/a%5Cb", query: "x=\\" });
});

void test("encodedSlashesClimb counts segments as an upstream that decodes %2F and %5C would", () => {
  assert.equal(encodedSlashesClimb("/app/x", 1), false);
  assert.equal(encodedSlashesClimb("/app/x%2F..%2Fy", 1), false);
  assert.equal(encodedSlashesClimb("/app/x%2F..%2F..%2Fy", 1), true);
  assert.equal(encodedSlashesClimb("/app/..%2F..%2Fetc/passwd", 1), true);
  assert.equal(encodedSlashesClimb("/app/..%2f", 1), true);
  assert.equal(encodedSlashesClimb("/app/.%2F.%2Fx", 1), false);
  assert.equal(encodedSlashesClimb("/a/b/c%2F..%2F..%2Fd", 1), false);
  assert.equal(encodedSlashesClimb("/a/b/c%2F..%2F..%2Fd", 2), true);
  // without an encoded slash the path is already resolved, whatever it holds
  assert.equal(encodedSlashesClimb("/a/%25/..x", 5), false);
});

void test("prefixDepth counts the segments a prefix spans", () => {
  assert.equal(prefixDepth("/"), 0);
  assert.equal(prefixDepth("/app"), 1);
  assert.equal(prefixDepth("/app/"), 1);
  assert.equal(prefixDepth("/api/pdf/v2/"), 3);
  assert.equal(prefixDepth("/a%2Fb/"), 2);
});
