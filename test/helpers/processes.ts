// Test helpers for real processes: run the gateway's CLI as a child with its JSON log captured, find free ports,
// and see which processes are still alive (Linux /proc, so zombies and process groups are told apart).
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { readdirSync, readFileSync } from "node:fs";
import net from "node:net";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { LogCapture } from "./gateway.ts";

export const ROOT = fileURLToPath(new URL("../../", import.meta.url));

export interface CliProcess {
  child: ChildProcess;
  logs: LogCapture;
  /** stderr, whole. */
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Runs a command whose stdout is the gateway's JSON log. `detached` puts it in a process group of its own, so a
 * test can signal the group the way a terminal's Ctrl-C would.
 */
export function spawnLogged(
  argv: string[],
  options: { env?: Record<string, string | undefined>; cwd?: string; detached?: boolean } = {},
): CliProcess {
  const [file, ...args] = argv;
  const child = spawn(file!, args, {
    cwd: options.cwd ?? ROOT,
    env: { ...process.env, GATEWAY_LOG_LEVEL: "debug", ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
    detached: options.detached ?? false,
  });
  const logs = new LogCapture();
  // A pipe may split a line across chunks; LogCapture wants whole lines.
  createInterface({ input: child.stdout }).on("line", (line) => {
    if (line.startsWith("{")) logs.write(`${line}\n`);
  });
  let err = "";
  child.stderr.on("data", (c: Buffer) => (err += c.toString()));
  // Should a test time out (its finally blocks then never run), the test process's exit still takes the child, or
  // its whole group, down; its guards then stop whatever it started.
  const reap = () => {
    try {
      if (child.pid !== undefined) process.kill(options.detached ? -child.pid : child.pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  };
  process.once("exit", reap);
  const exited = once(child, "exit").then(([code, signal]) => ({
    code: code as number | null,
    signal: signal as NodeJS.Signals | null,
  }));
  // A group may outlive its leader (npm gone, the gateway it ran still there), so only a lone child is let off.
  if (!options.detached) void exited.then(() => process.removeListener("exit", reap));
  return { child, logs, stderr: () => err, exited };
}

/** `gateway ARGS` from the TypeScript sources (through tsx), so tests never run a stale build. */
export function spawnCli(args: string[], options: Parameters<typeof spawnLogged>[1] = {}): CliProcess {
  return spawnLogged([process.execPath, "--import", "tsx", `${ROOT}src/cli.ts`, ...args], options);
}

/** A port that was free a moment ago (the usual small race; tests use it for upstreams the gateway starts). */
export async function freePort(): Promise<number> {
  const s = net.createServer();
  s.listen(0, "127.0.0.1");
  await once(s, "listening");
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** Whether `port` on 127.0.0.1 can be bound now. */
export async function portFree(port: number): Promise<boolean> {
  const s = net.createServer();
  try {
    s.listen(port, "127.0.0.1");
    await once(s, "listening");
    return true;
  } catch {
    return false;
  } finally {
    if (s.listening) await new Promise((r) => s.close(r));
  }
}

interface ProcInfo {
  pid: number;
  ppid: number;
  pgid: number;
  state: string;
}

function procInfo(pid: number): ProcInfo | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses, so split after its last ")".
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return { pid, state: fields[0]!, ppid: Number(fields[1]), pgid: Number(fields[2]) };
}

function allProcs(): ProcInfo[] {
  return readdirSync("/proc")
    .filter((n) => /^\d+$/.test(n))
    .flatMap((n) => procInfo(Number(n)) ?? []);
}

/** Alive and not a zombie. */
export function isRunning(pid: number): boolean {
  const p = procInfo(pid);
  return p !== undefined && p.state !== "Z";
}

/** Live members of process group `pgid`. */
export function groupMembers(pgid: number): number[] {
  return allProcs()
    .filter((p) => p.pgid === pgid && p.state !== "Z")
    .map((p) => p.pid);
}

/** Live children of `ppid`. */
export function childrenOf(ppid: number): number[] {
  return allProcs()
    .filter((p) => p.ppid === ppid && p.state !== "Z")
    .map((p) => p.pid);
}

export function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ");
  } catch {
    return "";
  }
}

/**
 * Waits until none of `pids` runs. Polls: the exit of a process that is not our child raises no event here.
 * Returns those still running at the deadline.
 */
export async function waitGone(pids: number[], timeoutMs = 15_000): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = pids.filter(isRunning);
    if (left.length === 0 || Date.now() > deadline) return left;
    await new Promise((r) => setTimeout(r, 50));
  }
}
