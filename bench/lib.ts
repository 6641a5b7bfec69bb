// Shared bench plumbing: forking bench/child.ts processes, asking them for CPU time, and never leaving one behind.
import { fork, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export type FromChild =
  | { type: "standby" }
  | { type: "ready"; port: number }
  | { type: "cpu"; micros: number }
  | { type: "error"; message: string };

function isFromChild(msg: unknown): msg is FromChild {
  return typeof msg === "object" && msg !== null && "type" in msg && typeof msg.type === "string";
}

const CHILD = join(import.meta.dirname, "child.ts");
const live = new Set<ChildProcess>();
const tempDirs: string[] = [];

export interface Child {
  readonly proc: ChildProcess;
  readonly port: number;
  readonly url: string;
  /** CPU time (user + system) the process has used so far, in microseconds. */
  cpu(): Promise<number>;
  /** Asks it to close its servers and exit; SIGKILLs it if it has not within 3 s. */
  stop(): Promise<void>;
  /** Dies at once, like a crash. */
  kill(): Promise<void>;
}

/** Resolves with the child's next `standby` or `ready` message; rejects if it reports an error or exits first. */
function nextState(proc: ChildProcess, mode: string): Promise<FromChild> {
  return new Promise((resolve, reject) => {
    const onMessage = (msg: unknown) => {
      if (!isFromChild(msg) || msg.type === "cpu") return;
      done();
      if (msg.type === "error") reject(new Error(`${mode} child failed: ${msg.message}`));
      else resolve(msg);
    };
    const onExit = (code: number | null) => {
      done();
      reject(new Error(`${mode} child exited (${String(code)}) before it was ready`));
    };
    const done = () => {
      proc.off("message", onMessage);
      proc.off("exit", onExit);
    };
    proc.on("message", onMessage);
    proc.once("exit", onExit);
  });
}

function forkChild(
  mode: string,
  args: string[],
  stdout?: number,
): { proc: ChildProcess; exited: Promise<void> } {
  const proc = fork(CHILD, [mode, ...args], {
    execArgv: ["--import", "tsx"],
    stdio: ["ignore", stdout ?? "ignore", "inherit", "ipc"],
  });
  live.add(proc);
  const exited = new Promise<void>((r) => proc.once("exit", () => r()));
  void exited.then(() => live.delete(proc));
  return { proc, exited };
}

function handle(proc: ChildProcess, exited: Promise<void>, mode: string, port: number): Child {
  const kill = async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
    await exited;
  };
  return {
    proc,
    port,
    url: `http://127.0.0.1:${port}`,
    cpu: () =>
      new Promise<number>((resolve, reject) => {
        const onMessage = (msg: unknown) => {
          if (!isFromChild(msg) || msg.type !== "cpu") return;
          proc.off("message", onMessage);
          resolve(msg.micros);
        };
        proc.on("message", onMessage);
        if (!proc.send({ type: "cpu" })) reject(new Error(`${mode} child: IPC closed`));
      }),
    stop: async () => {
      if (proc.connected) proc.send({ type: "stop" });
      const timer = setTimeout(() => void kill(), 3_000);
      await exited;
      clearTimeout(timer);
    },
    kill,
  };
}

/** Forks a child in `mode` and resolves once it listens. `stdout`: a file descriptor for its stdout, or ignored. */
export async function startChild(mode: string, args: string[], stdout?: number): Promise<Child> {
  const { proc, exited } = forkChild(mode, args, stdout);
  const msg = await nextState(proc, mode);
  if (msg.type !== "ready") throw new Error(`${mode} child: unexpected ${msg.type}`);
  return handle(proc, exited, mode, msg.port);
}

/**
 * Forks an upstream child that loads everything but listens only when the returned function is called, so a
 * "restart" takes milliseconds instead of a process start (a second or more on a loaded machine).
 */
export async function standbyUpstream(name: string, port: number): Promise<() => Promise<Child>> {
  const { proc, exited } = forkChild("upstream", [name, String(port), "standby"]);
  const msg = await nextState(proc, "upstream");
  if (msg.type !== "standby") throw new Error(`upstream child: unexpected ${msg.type}`);
  return async () => {
    proc.send({ type: "listen" });
    const ready = await nextState(proc, "upstream");
    if (ready.type !== "ready") throw new Error(`upstream child: unexpected ${ready.type}`);
    return handle(proc, exited, "upstream", ready.port);
  };
}

/** A temp directory that is removed when the bench exits. */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

/**
 * Makes the bench exit by itself however it ends: children SIGKILLed and temp dirs removed (unless kept, to read
 * the logs) on exit, on Ctrl-C, and after `maxMs` at the latest (a hung round must not hang CI).
 */
export function installCleanup(maxMs: number, keepTempDirs = false): void {
  const cleanup = () => {
    for (const p of live) p.kill("SIGKILL");
    if (keepTempDirs) console.log(`kept: ${tempDirs.join(" ")}`);
    else for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
  };
  process.on("exit", cleanup);
  for (const sig of ["SIGINT", "SIGTERM"] as const) process.on(sig, () => process.exit(130));
  const timer = setTimeout(() => {
    console.error(`bench: gave up after ${maxMs / 1000} s`);
    process.exit(2);
  }, maxMs);
  timer.unref();
}

/** Registers a non-Node process (nginx) so it is killed with the rest. */
export function track(proc: ChildProcess): void {
  live.add(proc);
  proc.once("exit", () => live.delete(proc));
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A port free on 127.0.0.1 right now (the gateway run from dist/ needs its port in its config). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

// Linux's clock ticks per second for /proc/PID/stat (USER_HZ), 100 on every common build.
const TICK_MICROS = 10_000;

/** CPU time (user + system) of any process by PID, in microseconds, from /proc (Linux). */
export function procCpu(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name, which may hold spaces: ") S ppid ..." has utime and stime at 12 and 13.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * TICK_MICROS;
}

/**
 * Runs the gateway as production does, `node dist/cli.js start -c CONFIG` (compiled, not through tsx), with its
 * stdout (the access log) on `stdout`; resolves once /readyz answers 200 (the first health round is done).
 */
export async function startDistGateway(
  configPath: string,
  port: number,
  level: string,
  stdout: number,
): Promise<Child> {
  const root = join(import.meta.dirname, "..");
  const proc = spawn(process.execPath, [join(root, "dist/cli.js"), "start", "-c", configPath], {
    cwd: root,
    env: { ...process.env, GATEWAY_LOG_LEVEL: level, GATEWAY_LOG_FORMAT: "json" },
    stdio: ["ignore", stdout, "inherit"],
  });
  track(proc);
  const exited = new Promise<void>((r) => proc.once("exit", () => r()));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (proc.exitCode !== null)
      throw new Error("gateway (dist) exited before it was ready; did you `npm run build`?");
    const ok = await fetch(`${url}/readyz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    if (Date.now() > deadline) throw new Error("gateway (dist) not ready within 30 s");
    await sleep(50);
  }
  const kill = async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
    await exited;
  };
  return {
    proc,
    port,
    url,
    cpu: () => Promise.resolve(procCpu(proc.pid!)),
    stop: async () => {
      proc.kill("SIGTERM");
      const timer = setTimeout(() => void kill(), 3_000);
      await exited;
      clearTimeout(timer);
    },
    kill,
  };
}
