// Test helper for a real redis-server: one per test file, on a unix socket (no TCP listener at all), persistence
// off, killed by PID. A missing redis-server fails the test: CI installs it, and tests never skip.
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface TestRedis {
  /** The unix socket path. */
  socket: string;
  /** `unix://PATH`: the form of `redis.url` the gateway accepts for a unix socket. */
  url: string;
  /** Sends one inline command (RESP reply returned as text), e.g. `cmd("SCRIPT", "FLUSH")`. */
  cmd(...args: string[]): Promise<string>;
  /** Kills the server (SIGKILL) and waits for its exit. */
  kill(): Promise<void>;
  /** Starts it again on the same socket, empty (persistence is off). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

function encode(args: string[]): string {
  return `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join("")}`;
}

async function command(socket: string, args: string[]): Promise<string> {
  const conn = net.connect(socket);
  conn.setTimeout(2000, () => conn.destroy(new Error("redis command timed out")));
  await once(conn, "connect");
  conn.write(encode(args));
  const [chunk] = (await once(conn, "data")) as [Buffer];
  conn.destroy();
  return chunk.toString();
}

async function waitForPing(socket: string, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`redis-server exited with code ${child.exitCode}`);
    try {
      if ((await command(socket, ["PING"])).startsWith("+PONG")) return;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) throw new Error("redis-server did not answer PING within 10 s");
    await new Promise((r) => setTimeout(r, 20));
  }
}

function launch(dir: string, socket: string): ChildProcess {
  const child = spawn(
    "redis-server",
    [
      "--port",
      "0",
      "--unixsocket",
      socket,
      "--unixsocketperm",
      "700",
      "--save",
      "",
      "--appendonly",
      "no",
      "--dir",
      dir,
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  child.on("error", () => {
    // ENOENT surfaces through waitForPing's exitCode check / the spawn error below.
  });
  return child;
}

/** Starts a redis-server for one test file. Throws (never skips) when redis-server is not installed. */
export async function startRedis(): Promise<TestRedis> {
  const dir = await mkdtemp(join(tmpdir(), "gw-redis-"));
  const socket = join(dir, "redis.sock");
  let child = launch(dir, socket);
  const spawnFailed = new Promise<never>((_, reject) =>
    child.once("error", (err) => reject(new Error(`cannot start redis-server: ${err.message}`))),
  );
  await Promise.race([waitForPing(socket, child), spawnFailed]);
  const reap = () => child.kill("SIGKILL");
  process.once("exit", reap);
  const kill = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, "exit");
    child.kill("SIGKILL");
    await exited;
  };
  return {
    socket,
    url: `unix://${socket}`,
    cmd: (...args) => command(socket, args),
    kill,
    async restart() {
      await kill();
      child = launch(dir, socket);
      await waitForPing(socket, child);
    },
    async stop() {
      await kill();
      process.removeListener("exit", reap);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
