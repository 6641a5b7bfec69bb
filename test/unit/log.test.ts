// The log line formats: JSON key order (time, level, msg, then the fields), the flat fast path writing the same
// bytes as format.json(), and the pretty terminal line; lines below the level cost nothing.
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { test } from "node:test";
import { createLogger, jsonLine, prettyLine, slowJsonLine } from "../../src/log/log.ts";
import { LogCapture } from "../helpers/gateway.ts";

/** A stream that keeps each write's text, as a logger's destination. */
function textSink(): { sink: Writable; text: string[] } {
  const text: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _e, cb) {
      text.push(chunk.toString());
      cb();
    },
  });
  return { sink, text };
}

/** Fields whose one value counts its reads: a line the level drops must not read them. */
function countedFields(): { fields: { readonly status: number }; reads: () => number } {
  let n = 0;
  const fields = {
    get status() {
      n++;
      return 200;
    },
  };
  return { fields, reads: () => n };
}

void test("JSON lines lead with time, level, msg, then the fields in the order given", async () => {
  const logs = new LogCapture();
  const log = createLogger({ level: "debug", stream: logs, format: "json" });
  log.info("request", { method: "GET", path: "/x", status: 200, durationMs: 1.5, route: "r0" });
  log.warn("failover", { pool: "app", nested: { a: 1 }, list: [1, 2] });
  log.flush();
  await logs.waitFor("failover");
  assert.deepEqual(Object.keys(logs.lines[0]!), [
    "time",
    "level",
    "msg",
    "method",
    "path",
    "status",
    "durationMs",
    "route",
  ]);
  assert.deepEqual(Object.keys(logs.lines[1]!), ["time", "level", "msg", "pool", "nested", "list"]);
  assert.match(String(logs.lines[0]!.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
});

void test("the flat fast path and format.json() write the same bytes", () => {
  const records: Record<string, unknown>[] = [
    { time: "2026-01-01T00:00:00.000Z", level: "info", msg: "request", method: "GET", status: 200, ms: 0.5 },
    { time: "t", level: "warn", msg: 'quote " and \\ and \n and é', a: null, b: true, c: undefined, d: NaN },
    { time: "t", level: "info", msg: "m", inf: Infinity, neg: -0, big: 1e21, empty: "" },
  ];
  for (const r of records) assert.equal(jsonLine(r), slowJsonLine(r), JSON.stringify(r));
  // Not flat: the slow path, still in line order.
  const nested = { time: "t", level: "info", msg: "m", z: { y: 1, x: 2 }, a: 1n };
  assert.equal(jsonLine(nested), '{"time":"t","level":"info","msg":"m","z":{"y":1,"x":2},"a":"1"}');
});

void test("pretty lines: clock time, level, msg, key=value (quoted when needed)", () => {
  const line = prettyLine(
    {
      time: "2026-01-01T12:04:05.123Z",
      level: "warn",
      msg: "health_change",
      pool: "app",
      reason: "3 failed checks: ECONNREFUSED",
      errors: ["a", "b"],
      gone: undefined,
    },
    false,
  );
  assert.equal(
    line,
    '12:04:05.123 WARN  health_change pool=app reason="3 failed checks: ECONNREFUSED" errors=["a","b"]',
  );
  assert.ok(prettyLine({ time: "t", level: "error", msg: "x" }, true).includes("\u001b[31mERROR\u001b[0m"));
});

void test("the format comes from the option, then GATEWAY_LOG_FORMAT, then whether the output is a terminal", async () => {
  const logs = new LogCapture();
  const saved = process.env.GATEWAY_LOG_FORMAT;
  process.env.GATEWAY_LOG_FORMAT = "pretty";
  try {
    const { sink, text } = textSink();
    const pretty = createLogger({ stream: sink });
    pretty.info("hello", { a: 1 });
    pretty.flush();
    assert.match(text.join(""), / INFO {2}hello a=1\n$/);
    const json = createLogger({ stream: logs, format: "json" });
    json.info("hello");
    json.flush();
    assert.equal((await logs.waitFor("hello")).level, "info");
  } finally {
    if (saved === undefined) delete process.env.GATEWAY_LOG_FORMAT;
    else process.env.GATEWAY_LOG_FORMAT = saved;
  }
});

void test("a line below the level is neither formatted nor written", () => {
  const { sink, text } = textSink();
  const log = createLogger({ stream: sink, format: "json", level: "warn" });
  const { fields, reads } = countedFields();
  log.info("request", fields);
  log.debug("request", fields);
  log.warn("kept", { a: 1 });
  log.flush();
  assert.equal(reads(), 0);
  assert.equal(text.length, 1);
  assert.match(text[0]!, /"msg":"kept"/);
});

void test("a tag goes after each line's own fields, and only on lines the level lets through", () => {
  const { sink, text } = textSink();
  const log = createLogger({ stream: sink, format: "json", level: "warn", tag: { worker: 2 } });
  const { fields, reads } = countedFields();
  log.info("request", fields);
  log.warn("kept", { a: 1 });
  log.flush();
  assert.equal(reads(), 0);
  assert.equal(text.length, 1);
  assert.deepEqual(Object.keys(JSON.parse(text[0]!) as object), ["time", "level", "msg", "a", "worker"]);
});
