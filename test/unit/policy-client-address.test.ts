// The client address behind trusted proxies: the right-most untrusted X-Forwarded-For hop, and https detection.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  TrustedProxies,
  cameOverHttps,
  clientAddressOf,
  plainAddress,
} from "../../src/policy/client-address.ts";

const trusted = new TrustedProxies(["10.0.0.0/8", "192.168.1.7", "fd00::/8"]);
const none = new TrustedProxies([]);

test("without trusted proxies X-Forwarded-For is ignored", () => {
  assert.equal(clientAddressOf("203.0.113.9", "1.2.3.4", none), "203.0.113.9");
});

test("an untrusted peer's X-Forwarded-For is ignored", () => {
  assert.equal(clientAddressOf("203.0.113.9", "1.2.3.4", trusted), "203.0.113.9");
});

test("a trusted peer: the right-most hop that is not a trusted proxy", () => {
  assert.equal(clientAddressOf("10.0.0.1", "198.51.100.7", trusted), "198.51.100.7");
  // The client forged the left entries; the proxies appended the right ones.
  assert.equal(clientAddressOf("10.0.0.1", "6.6.6.6, 198.51.100.7, 10.2.3.4", trusted), "198.51.100.7");
  assert.equal(
    clientAddressOf("10.0.0.1", ["6.6.6.6, 198.51.100.7", "192.168.1.7"], trusted),
    "198.51.100.7",
  );
});

test("every hop trusted: the left-most; a garbage hop ends the walk at the proxy that reported it", () => {
  assert.equal(clientAddressOf("10.0.0.1", "10.9.9.9, 10.0.0.2", trusted), "10.9.9.9");
  assert.equal(clientAddressOf("10.0.0.1", "1.1.1.1, not-an-ip, 10.0.0.2", trusted), "10.0.0.2");
  assert.equal(clientAddressOf("10.0.0.1", "", trusted), "10.0.0.1");
});

test("IPv4-mapped peers, ports and IPv6 hops", () => {
  assert.equal(plainAddress("::ffff:10.0.0.1"), "10.0.0.1");
  assert.equal(clientAddressOf("::ffff:10.0.0.1", "198.51.100.7:5555", trusted), "198.51.100.7");
  assert.equal(clientAddressOf("fd00::1", "[2001:db8::5]:443", trusted), "2001:db8::5");
  assert.equal(clientAddressOf("fd00::1", "2001:db8::5", trusted), "2001:db8::5");
});

test("https: TLS, or a trusted proxy's X-Forwarded-Proto", () => {
  assert.equal(cameOverHttps(true, "1.2.3.4", undefined, none), true);
  assert.equal(cameOverHttps(false, "10.0.0.1", "https", trusted), true);
  assert.equal(cameOverHttps(false, "10.0.0.1", "https, http", trusted), true);
  assert.equal(cameOverHttps(false, "203.0.113.9", "https", trusted), false);
  assert.equal(cameOverHttps(false, "10.0.0.1", "http", trusted), false);
});
