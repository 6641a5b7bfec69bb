// CORS decisions without sockets: preflights, allowed and disallowed origins, "*", credentials, stripping.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Cors, isPreflight, stripCorsHeaders } from "../../src/policy/cors.ts";
import type { CorsConfig } from "../../src/config/types.ts";

const base: CorsConfig = {
  origins: ["https://panel.example.com"],
  methods: ["GET", "POST"],
  headers: ["Authorization", "Content-Type"],
  exposeHeaders: ["X-Request-Id"],
  credentials: true,
  maxAge: 600_000,
};

test("a preflight needs OPTIONS, Origin and Access-Control-Request-Method", () => {
  assert.equal(isPreflight("OPTIONS", "https://a", "GET"), true);
  assert.equal(isPreflight("OPTIONS", "https://a", undefined), false);
  assert.equal(isPreflight("OPTIONS", undefined, "GET"), false);
  assert.equal(isPreflight("GET", "https://a", "GET"), false);
});

test("a preflight from an allowed origin gets the configured lists, whatever was asked", () => {
  const h = Object.fromEntries(new Cors(base).preflight("https://panel.example.com"));
  assert.deepEqual(h, {
    "access-control-allow-origin": "https://panel.example.com",
    "access-control-allow-methods": "GET, POST",
    "access-control-allow-headers": "Authorization, Content-Type",
    "access-control-max-age": "600",
    "access-control-allow-credentials": "true",
    vary: "Origin",
  });
});

test("origins compare case-insensitively, and a disallowed origin gets no CORS header at all", () => {
  const cors = new Cors(base);
  assert.equal(cors.allows("HTTPS://Panel.Example.com"), true);
  assert.deepEqual(cors.preflight("https://evil.example"), [["vary", "Origin"]]);
  assert.deepEqual(cors.actual("https://evil.example"), [["vary", "Origin"]]);
  assert.deepEqual(cors.actual(undefined), [["vary", "Origin"]]);
  assert.equal(cors.allows("https://panel.example.com.evil.example"), false);
  assert.equal(cors.allows("http://panel.example.com"), false);
});

test("an answer to an allowed origin reflects it with Vary: Origin, credentials and expose headers", () => {
  const h = Object.fromEntries(new Cors(base).actual("https://panel.example.com"));
  assert.deepEqual(h, {
    "access-control-allow-origin": "https://panel.example.com",
    "access-control-allow-credentials": "true",
    "access-control-expose-headers": "X-Request-Id",
    vary: "Origin",
  });
});

test('"*" answers "*" (never the origin) and no credentials', () => {
  const cors = new Cors({ ...base, origins: ["*"], credentials: false });
  const h = Object.fromEntries(cors.actual("https://anyone.example"));
  assert.equal(h["access-control-allow-origin"], "*");
  assert.equal(h["access-control-allow-credentials"], undefined);
  assert.equal(Object.fromEntries(cors.preflight("https://x.example"))["access-control-allow-origin"], "*");
});

test("no Access-Control-Allow-Headers line when the list is empty; max-age in whole seconds", () => {
  const h = Object.fromEntries(
    new Cors({ ...base, headers: [], maxAge: 1_500 }).preflight("https://panel.example.com"),
  );
  assert.equal(h["access-control-allow-headers"], undefined);
  assert.equal(h["access-control-max-age"], "1");
});

test("the upstream's own Access-Control-* headers are removed, whatever their case", () => {
  const headers: Record<string, unknown> = {
    "access-control-allow-origin": "*",
    "Access-Control-Allow-Credentials": "true",
    "content-type": "text/plain",
    "access-control": "x",
  };
  stripCorsHeaders(headers);
  assert.deepEqual(Object.keys(headers).sort(), ["access-control", "content-type"]);
});
