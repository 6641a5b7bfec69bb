// Sticky cookie mapping: HMAC values (never addresses), rotation through previous secrets, the Set-Cookie line.
import { test } from "node:test";
import assert from "node:assert/strict";
import { StickyCookie, readCookie, stickyValue } from "../../src/policy/sticky.ts";

const ids = ["127.0.0.1:5101", "127.0.0.1:5102"];
const cfg = {
  cookie: "gw_forum",
  secret: "current-secret-0123",
  previousSecrets: ["old-secret-456789"],
  maxAge: 3_600_000,
};

test("each upstream gets its own value; the value is not the address", () => {
  const a = stickyValue(cfg.secret, ids[0]!);
  const b = stickyValue(cfg.secret, ids[1]!);
  assert.notEqual(a, b);
  assert.match(a, /^[\w-]{22}$/);
  assert.ok(!a.includes("127"));
  assert.notEqual(stickyValue("another-secret-xyz", ids[0]!), a);
});

test("a cookie maps back to its upstream, under the current or a previous secret", () => {
  const s = new StickyCookie(cfg, ids);
  assert.equal(s.upstreamOf(`gw_forum=${stickyValue(cfg.secret, ids[1]!)}`), ids[1]);
  assert.equal(s.upstreamOf(`a=1; gw_forum=${stickyValue("old-secret-456789", ids[0]!)}; b=2`), ids[0]);
  assert.equal(s.isCurrent(`gw_forum=${stickyValue("old-secret-456789", ids[0]!)}`, ids[0]!), false);
  assert.equal(s.isCurrent(`gw_forum=${stickyValue(cfg.secret, ids[0]!)}`, ids[0]!), true);
});

test("unknown, forged and missing cookies map to nothing", () => {
  const s = new StickyCookie(cfg, ids);
  assert.equal(s.upstreamOf(undefined), undefined);
  assert.equal(s.upstreamOf("gw_forum=127.0.0.1:5101"), undefined);
  assert.equal(s.upstreamOf(`gw_forum=${stickyValue("guessed-secret-000", ids[0]!)}`), undefined);
  assert.equal(s.upstreamOf(`xgw_forum=${stickyValue(cfg.secret, ids[0]!)}`), undefined);
});

test("Set-Cookie: HttpOnly, SameSite=Lax, Path=/, Max-Age, Secure only over https", () => {
  const s = new StickyCookie(cfg, ids);
  const v = stickyValue(cfg.secret, ids[0]!);
  assert.equal(s.setCookie(ids[0]!, false), `gw_forum=${v}; Path=/; HttpOnly; SameSite=Lax; Max-Age=3600`);
  assert.equal(
    s.setCookie(ids[0]!, true),
    `gw_forum=${v}; Path=/; HttpOnly; SameSite=Lax; Max-Age=3600; Secure`,
  );
  const session = new StickyCookie({ ...cfg, maxAge: undefined }, ids);
  assert.ok(!session.setCookie(ids[0]!, false).includes("Max-Age"));
});

test("readCookie finds the exact name only", () => {
  assert.equal(readCookie("a=1; b=2", "b"), "2");
  assert.equal(readCookie("ab=1; b=2", "b"), "2");
  assert.equal(readCookie("ab=1", "b"), undefined);
  assert.equal(readCookie("b=", "b"), "");
});
