// Unit tests of the managed-upstream pieces that need no process: command splitting, backoff, restart policy,
// line splitting and the port a process is given.
import assert from "node:assert/strict";
import { once } from "node:events";
import { PassThrough } from "node:stream";
import { test } from "node:test";
import { CommandError, parseCommand } from "../../src/managed/command.ts";
import { MAX_LINE, forEachLine } from "../../src/managed/lines.ts";
import { DEFAULT_BACKOFF, backoffDelay, shouldRestart } from "../../src/managed/process.ts";
import { portOf } from "../../src/managed/supervisor.ts";

void test("commands split like a shell would: quotes, escapes, $VARS from the process's env, comments", () => {
  const env = { PORT: "8000", NAME: "a b" };
  assert.deepEqual(parseCommand("node app.js --port $PORT", env), ["node", "app.js", "--port", "8000"]);
  assert.deepEqual(parseCommand(`node "my app.js" --name '$NAME' x\\ y`, env), [
    "node",
    "my app.js",
    "--name",
    "$NAME",
    "x y",
  ]);
  assert.deepEqual(parseCommand('node app.js --name "$NAME"', env), ["node", "app.js", "--name", "a b"]);
  assert.deepEqual(parseCommand("node app.js --x ${MISSING} # comment", env), ["node", "app.js", "--x", ""]);
  assert.deepEqual(parseCommand(`sh -c "sleep 1 & exec node app.js"`, env), [
    "sh",
    "-c",
    "sleep 1 & exec node app.js",
  ]);
  // No shell, so no globbing: the pattern reaches the program as written.
  assert.deepEqual(parseCommand("ls *.js", env), ["ls", "*.js"]);
});

void test("shell operators and empty commands are refused with a hint", () => {
  for (const cmd of ["node a.js | tee log", "node a.js > out", "a && b", "a; b", "node a.js &"]) {
    assert.throws(
      () => parseCommand(cmd, {}),
      (err: unknown) => {
        assert.ok(err instanceof CommandError);
        assert.match(err.message, /needs a shell: write command: sh -c/);
        return true;
      },
    );
  }
  assert.throws(() => parseCommand("   ", {}), /names no program/);
  assert.throws(() => parseCommand("$NOTHING", {}), /names no program/);
});

void test("backoff starts at 1 s, doubles, and stops at 30 s", () => {
  const delays = Array.from({ length: 8 }, (_, i) => backoffDelay(i, DEFAULT_BACKOFF));
  assert.deepEqual(delays, [1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000]);
  assert.equal(backoffDelay(1_000, DEFAULT_BACKOFF), 30_000);
  assert.equal(DEFAULT_BACKOFF.resetAfter, 30_000);
});

void test("restart policies: always, on-failure (non-zero, signal, or could not start), never", () => {
  assert.equal(shouldRestart("always", { code: 0 }), true);
  assert.equal(shouldRestart("always", { code: null }), true);
  assert.equal(shouldRestart("on-failure", { code: 0 }), false);
  assert.equal(shouldRestart("on-failure", { code: 1 }), true);
  assert.equal(shouldRestart("on-failure", { code: null }), true);
  assert.equal(shouldRestart("on-failure", { code: null, error: "spawn nope ENOENT" }), true);
  assert.equal(shouldRestart("never", { code: 1 }), false);
});

void test("output is split into lines across chunk boundaries, CRLF trimmed, long lines cut, rest flushed", async () => {
  const stream = new PassThrough();
  const lines: string[] = [];
  forEachLine(stream, (l) => lines.push(l));
  stream.write("one\ntw");
  stream.write("o\r\nthr");
  // A multi-byte character split between chunks stays whole.
  const euro = Buffer.from("€");
  stream.write(Buffer.concat([Buffer.from("ee "), euro.subarray(0, 1)]));
  stream.write(Buffer.concat([euro.subarray(1), Buffer.from("\n")]));
  stream.write("x".repeat(MAX_LINE + 5));
  stream.end("\nlast");
  await once(stream, "end");
  assert.deepEqual(lines.slice(0, 3), ["one", "two", "three €"]);
  assert.equal(lines[3], "x".repeat(MAX_LINE));
  assert.equal(lines[4], "xxxxx");
  assert.equal(lines[5], "last");
  assert.equal(lines.length, 6);
});

void test("a managed process gets the upstream url's port, or the scheme's default", () => {
  assert.equal(portOf("http://127.0.0.1:8000"), "8000");
  assert.equal(portOf("http://127.0.0.1"), "80");
  assert.equal(portOf("https://example.test/base"), "443");
});
