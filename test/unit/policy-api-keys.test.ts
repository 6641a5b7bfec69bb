// API keys: digests only, the right name for the right key, nothing for a wrong, empty, longer or shorter key.
import { test } from "node:test";
import assert from "node:assert/strict";
import { inspect } from "node:util";
import { ApiKeys, DIGEST_CACHE_SIZE, sha256Hex } from "../../src/policy/api-keys.ts";

const keys = new ApiKeys([
  { name: "panel-web", sha256: sha256Hex("web-secret-1") },
  { name: "panel-cli", sha256: sha256Hex("cli-secret-2") },
]);

test("a key matches the name it was stored under", () => {
  assert.equal(keys.match("web-secret-1"), "panel-web");
  assert.equal(keys.match("cli-secret-2"), "panel-cli");
});

test("wrong, empty, prefix and extended keys match nothing", () => {
  for (const k of ["web-secret-2", "", "web-secret-", "web-secret-1x", "WEB-SECRET-1", " web-secret-1"]) {
    assert.equal(keys.match(k), undefined, k);
  }
});

test("the sha256 form is the key's SHA-256 in hex (the contract's example is the digest of 'test')", () => {
  assert.equal(sha256Hex("test"), "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
  assert.equal(new ApiKeys([{ name: "t", sha256: sha256Hex("test") }]).match("test"), "t");
});

test("the compare holds digests only: no plain key is kept in the object", () => {
  const k = new ApiKeys([{ name: "n", sha256: sha256Hex("plain-key-value") }]);
  assert.ok(!JSON.stringify(k).includes("plain-key-value"));
  assert.ok(!inspect(k, { depth: 5 }).includes("plain-key-value"));
});

test("the digests of presented keys are cached, bounded, and never shown", () => {
  const k = new ApiKeys([{ name: "n", sha256: sha256Hex("plain-key-value") }], 8);
  assert.equal(k.match("plain-key-value"), "n");
  assert.equal(k.match("plain-key-value"), "n", "a cached digest matches as the computed one did");
  assert.equal(k.cachedDigests, 1);
  // A spray of distinct wrong keys never holds more than the bound, and the right key still matches after it.
  for (let i = 0; i < 100; i++) assert.equal(k.match(`wrong-${i}`), undefined);
  assert.equal(k.cachedDigests, 8);
  assert.equal(k.match("plain-key-value"), "n");
  assert.equal(k.match("wrong-99"), undefined);
  // Header-sized keys are digested each time, not kept.
  const before = k.cachedDigests;
  assert.equal(k.match("x".repeat(4096)), undefined);
  assert.equal(k.cachedDigests, before);
  // Presented keys live in a private field: neither JSON nor inspect shows them.
  assert.ok(!JSON.stringify(k).includes("plain-key-value"));
  assert.ok(!inspect(k, { depth: 5, showHidden: true }).includes("plain-key-value"));
});

test("the default digest cache holds DIGEST_CACHE_SIZE keys at most", () => {
  const k = new ApiKeys([{ name: "n", sha256: sha256Hex("k") }]);
  for (let i = 0; i < DIGEST_CACHE_SIZE + 500; i++) k.match(`spray-${i}`);
  assert.equal(k.cachedDigests, DIGEST_CACHE_SIZE);
});
