// Header lists built in one pass from rawHeaders, both ways: what goes up, what comes back, spelling and order kept.
import assert from "node:assert/strict";
import type { IncomingMessage } from "node:http";
import { test } from "node:test";
import {
  clientResponseHeaders,
  headerBagOf,
  upstreamRequestHeaders,
  type UpstreamRequestHead,
} from "../../src/proxy/headers.ts";

function request(method: string, rawHeaders: string[]): IncomingMessage {
  // Only what the builder reads: the method, the raw list and the peer's address.
  return { method, rawHeaders, socket: { remoteAddress: "10.0.0.9" } } as unknown as IncomingMessage;
}

const head: UpstreamRequestHead = {
  requestId: "rid-1",
  subject: undefined,
  dropped: undefined,
  keptLength: undefined,
};

function pairs(list: string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i < list.length; i += 2) out.push([list[i]!, list[i + 1]!]);
  return out;
}

test("upstream headers: hop-by-hop and Connection-listed out, client spelling and duplicates kept, X-Forwarded-* set", () => {
  const req = request("GET", [
    "Host",
    "example.test",
    "Accept",
    "*/*",
    "Connection",
    "keep-alive, X-Private, TE",
    "X-Private",
    "secret",
    "Keep-Alive",
    "timeout=5",
    "Proxy-Authorization",
    "Basic x",
    "TE",
    "trailers, deflate",
    "Upgrade",
    "h2c",
    "Expect",
    "100-continue",
    "Cookie",
    "a=1",
    "Cookie",
    "b=2",
    "X-Forwarded-For",
    "1.1.1.1",
    "x-forwarded-for",
    "2.2.2.2",
    "X-Forwarded-Proto",
    "https",
    "X-Forwarded-Host",
    "evil",
    "X-Request-Id",
    "client-id",
    "X-Auth-Subject",
    "mallory",
  ]);
  assert.deepEqual(pairs(upstreamRequestHeaders(req, head)), [
    ["Host", "example.test"],
    ["Accept", "*/*"],
    ["Cookie", "a=1"],
    ["Cookie", "b=2"],
    ["te", "trailers"],
    ["x-forwarded-for", "1.1.1.1, 2.2.2.2, 10.0.0.9"],
    ["x-forwarded-proto", "http"],
    ["x-forwarded-host", "example.test"],
    ["x-request-id", "rid-1"],
  ]);
});

test("upstream headers: a kept body's length replaces the client's framing; policies drop and set names", () => {
  const req = request("POST", [
    "host",
    "h",
    "Transfer-Encoding",
    "chunked",
    "X-API-Key",
    "k",
    "Authorization",
    "Bearer k",
  ]);
  const list = upstreamRequestHeaders(req, {
    requestId: "r",
    subject: "alice",
    dropped: ["x-api-key", "authorization"],
    keptLength: 11,
  });
  assert.deepEqual(pairs(list), [
    ["host", "h"],
    ["content-length", "11"],
    ["x-forwarded-for", "10.0.0.9"],
    ["x-forwarded-proto", "http"],
    ["x-forwarded-host", "h"],
    ["x-request-id", "r"],
    ["x-auth-subject", "alice"],
  ]);
  // A streamed body keeps the client's framing as sent.
  const streamed = upstreamRequestHeaders(request("PUT", ["Host", "h", "Content-Length", "900000"]), head);
  assert.deepEqual(pairs(streamed).slice(0, 2), [
    ["Host", "h"],
    ["Content-Length", "900000"],
  ]);
  // A bodyless DELETE says so rather than going up without framing.
  assert.deepEqual(pairs(upstreamRequestHeaders(request("DELETE", ["Host", "h"]), head))[1], [
    "content-length",
    "0",
  ]);
});

test("response headers: hop-by-hop, Connection-listed and Transfer-Encoding out; the request id added once", () => {
  const raw = [
    "Content-Type",
    "text/plain",
    "Connection",
    "keep-alive, X-Hop",
    "X-Hop",
    "1",
    "Keep-Alive",
    "timeout=5",
    "Transfer-Encoding",
    "chunked",
    "Proxy-Authenticate",
    "Basic",
    "Set-Cookie",
    "a=1",
    "Set-Cookie",
    "b=2",
  ];
  const list = clientResponseHeaders(raw, "rid");
  assert.deepEqual(pairs(list), [
    ["Content-Type", "text/plain"],
    ["Set-Cookie", "a=1"],
    ["Set-Cookie", "b=2"],
    ["x-request-id", "rid"],
  ]);
  // The upstream's own id is relayed as it is, not doubled.
  assert.deepEqual(pairs(clientResponseHeaders(["X-Request-Id", "up"], "rid")), [["X-Request-Id", "up"]]);
  // The response phase sees lowercase names, repeated ones (and every Set-Cookie) as arrays.
  assert.deepEqual(headerBagOf(list), {
    "content-type": "text/plain",
    "set-cookie": ["a=1", "b=2"],
    "x-request-id": "rid",
  });
});
