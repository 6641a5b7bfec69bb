// The JWT verification matrix, without sockets: claims, leeway, alg none, algorithm confusion, tampering, the
// verified-token cache, and kid rotation through a JWKS served by an injected fetch.
import { test } from "node:test";
import assert from "node:assert/strict";
import { JwtVerifier, type JwtVerifierOptions } from "../../src/policy/jwt.ts";
import type { JwtConfig } from "../../src/config/types.ts";
import { keyPair, signJwt } from "../helpers/jwt.ts";

const SECRET = "a-long-enough-hs256-test-secret-0123456789";
const T0 = 1_900_000_000_000; // a fixed clock, ms
const s = (ms: number) => Math.floor(ms / 1000);

function hsVerifier(extra: Partial<JwtConfig> = {}, opts: JwtVerifierOptions = {}) {
  let now = T0;
  const v = new JwtVerifier(
    { secret: SECRET, algorithms: ["HS256"], issuer: "https://auth.test", audience: "panel", ...extra },
    { now: () => now, ...opts },
  );
  return { v, advance: (ms: number) => (now += ms) };
}

const claims = (over: Record<string, unknown> = {}) => ({
  sub: "alice",
  iss: "https://auth.test",
  aud: "panel",
  exp: s(T0) + 300,
  ...over,
});

test("a valid HS256 token passes with its sub as the subject", async () => {
  const { v } = hsVerifier();
  assert.deepEqual(await v.verify(signJwt(claims(), { alg: "HS256", key: SECRET })), {
    ok: true,
    subject: "alice",
  });
});

test("a token without sub passes as the subject jwt; an aud list containing the audience passes", async () => {
  const { v } = hsVerifier();
  const t = signJwt(claims({ sub: undefined, aud: ["other", "panel"] }), { alg: "HS256", key: SECRET });
  assert.deepEqual(await v.verify(t), { ok: true, subject: "jwt" });
});

test("expired (exp has no leeway) and missing exp are refused", async () => {
  const { v } = hsVerifier();
  assert.deepEqual(await v.verify(signJwt(claims({ exp: s(T0) - 1 }), { alg: "HS256", key: SECRET })), {
    ok: false,
    reason: "expired",
  });
  assert.deepEqual(await v.verify(signJwt(claims({ exp: s(T0) }), { alg: "HS256", key: SECRET })), {
    ok: false,
    reason: "expired",
  });
  const r = await v.verify(signJwt(claims({ exp: undefined }), { alg: "HS256", key: SECRET }));
  assert.equal(r.ok, false);
});

test("nbf gets 30 s of leeway, no more", async () => {
  const { v } = hsVerifier();
  assert.equal(
    (await v.verify(signJwt(claims({ nbf: s(T0) + 25 }), { alg: "HS256", key: SECRET }))).ok,
    true,
  );
  assert.deepEqual(await v.verify(signJwt(claims({ nbf: s(T0) + 40 }), { alg: "HS256", key: SECRET })), {
    ok: false,
    reason: "not_yet_valid",
  });
});

test("wrong issuer and wrong audience are refused", async () => {
  const { v } = hsVerifier();
  for (const bad of [
    { iss: "https://evil.test" },
    { aud: "other" },
    { iss: undefined },
    { aud: undefined },
  ]) {
    const r = await v.verify(signJwt(claims(bad), { alg: "HS256", key: SECRET }));
    assert.deepEqual(r, { ok: false, reason: "claims" }, JSON.stringify(bad));
  }
});

test("alg none is never accepted, even when listed nowhere else", async () => {
  const { v } = hsVerifier();
  assert.deepEqual(await v.verify(signJwt(claims(), { alg: "none", key: "" })), {
    ok: false,
    reason: "invalid",
  });
});

test("an algorithm outside the list is refused (HS512 against an HS256 policy)", async () => {
  const { v } = hsVerifier();
  assert.equal((await v.verify(signJwt(claims(), { alg: "HS512", key: SECRET }))).ok, false);
});

test("tampered payload, tampered signature and a wrong secret are refused", async () => {
  const { v } = hsVerifier();
  const good = signJwt(claims(), { alg: "HS256", key: SECRET });
  const [h, , sig] = good.split(".");
  const forgedPayload = Buffer.from(JSON.stringify(claims({ sub: "root" }))).toString("base64url");
  assert.equal((await v.verify(`${h}.${forgedPayload}.${sig}`)).ok, false);
  assert.equal((await v.verify(`${good.slice(0, -2)}${good.endsWith("A") ? "B" : "A"}A`)).ok, false);
  assert.equal(
    (await v.verify(signJwt(claims(), { alg: "HS256", key: "another-secret-of-some-length" }))).ok,
    false,
  );
  assert.equal((await v.verify("not.a.jwt")).ok, false);
});

test("algorithm confusion: HS256 signed with the RSA public key against an RS256 policy is refused", async () => {
  const rsa = keyPair("rsa");
  const v = new JwtVerifier({ publicKey: rsa.publicPem, algorithms: ["RS256"] }, { now: () => T0 });
  assert.deepEqual(await v.verify(signJwt(claims(), { alg: "RS256", key: rsa.privateKey })), {
    ok: true,
    subject: "alice",
  });
  const confused = signJwt(claims(), { alg: "HS256", key: rsa.publicPem });
  assert.deepEqual(await v.verify(confused), { ok: false, reason: "invalid" });
});

test("RS*, PS*, ES* and EdDSA with a static public key", async () => {
  const rsa = keyPair("rsa");
  const ec = keyPair("ec");
  const ed = keyPair("ed25519");
  const cases = [
    { pair: rsa, alg: "RS384" },
    { pair: rsa, alg: "PS256" },
    { pair: ec, alg: "ES256" },
    { pair: ed, alg: "EdDSA" },
  ] as const;
  for (const { pair, alg } of cases) {
    const v = new JwtVerifier({ publicKey: pair.publicPem, algorithms: [alg] }, { now: () => T0 });
    assert.deepEqual(
      await v.verify(signJwt(claims(), { alg, key: pair.privateKey })),
      { ok: true, subject: "alice" },
      alg,
    );
  }
});

test("the cache answers a verified token until min(exp, 60 s), and not past exp", async () => {
  const { v, advance } = hsVerifier();
  const t = signJwt(claims({ exp: s(T0) + 30 }), { alg: "HS256", key: SECRET });
  assert.equal((await v.verify(t)).ok, true);
  assert.equal(v.cached, 1);
  advance(29_000);
  assert.equal((await v.verify(t)).ok, true);
  advance(2_000);
  assert.deepEqual(await v.verify(t), { ok: false, reason: "expired" });
  assert.equal(v.cached, 0);
});

test("the cache is bounded", async () => {
  const { v } = hsVerifier({}, { cacheSize: 5 });
  for (let i = 0; i < 12; i++)
    await v.verify(signJwt(claims({ sub: `u${i}` }), { alg: "HS256", key: SECRET }));
  assert.equal(v.cached, 5);
});

test("kid rotation through a JWKS: an unknown kid refetches at most once per 30 s; a changed set flushes the cache", async (t) => {
  // jose's cooldown reads the wall clock: mock Date only (the fetch timeout keeps real timers).
  t.mock.timers.enable({ apis: ["Date"], now: T0 });
  const k1 = keyPair("ec");
  const k2 = keyPair("ec");
  let served = [k1.jwk("k1", "ES256")];
  let fetches = 0;
  const fetch = () => {
    fetches++;
    const body = JSON.stringify({ keys: served });
    return Promise.resolve(new Response(body, { headers: { "content-type": "application/json" } }));
  };
  const v = new JwtVerifier(
    { jwksUrl: "https://idp.test/jwks.json", algorithms: ["ES256"] },
    { fetch, now: () => Date.now() },
  );
  const exp = s(T0) + 3600;
  const t1 = signJwt({ sub: "a", exp }, { alg: "ES256", key: k1.privateKey, kid: "k1" });
  const t2 = signJwt({ sub: "b", exp }, { alg: "ES256", key: k2.privateKey, kid: "k2" });
  assert.deepEqual(await v.verify(t1), { ok: true, subject: "a" });
  assert.equal(fetches, 1);
  assert.equal(v.cached, 1);

  // k2 is published, but an unknown kid inside the cooldown does not refetch.
  served = [k1.jwk("k1", "ES256"), k2.jwk("k2", "ES256")];
  t.mock.timers.tick(10_000);
  assert.equal((await v.verify(t2)).ok, false);
  assert.equal(fetches, 1);

  // Past the cooldown the unknown kid refetches once; the set changed, so t1's cached verdict is gone.
  t.mock.timers.tick(21_000);
  assert.deepEqual(await v.verify(t2), { ok: true, subject: "b" });
  assert.equal(fetches, 2);
  assert.equal(v.cached, 1, "only t2: the cache was flushed when the JWKS changed");
  // Another unknown kid right after: no third fetch.
  const t3 = signJwt({ sub: "c", exp }, { alg: "ES256", key: keyPair("ec").privateKey, kid: "k3" });
  assert.equal((await v.verify(t3)).ok, false);
  assert.equal(fetches, 2);
});
