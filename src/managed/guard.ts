// The one guard between the gateway and all its managed processes: runs each in a process group of its own,
// forwards their output lines, and kills those groups when told to or when the gateway is gone (its IPC channel
// closes, which happens even on SIGKILL). One guard for all (~40 MiB) instead of one per process.
//
// Started by the supervisor as `node guard.js` with an IPC channel; never run by hand.
import { spawn, type ChildProcess } from "node:child_process";
import { forEachLine } from "./lines.ts";
import { isGuardRequest, type GuardReport, type GuardStart } from "./protocol.ts";

interface Child {
  proc: ChildProcess;
  spec: GuardStart;
  stopping: boolean;
  finished: boolean;
  killTimer?: NodeJS.Timeout;
}

const children = new Map<number, Child>();
/** The gateway is gone (or asked us to leave): stop everything, then exit. */
let leaving = false;

/** Reports not yet handed to the channel: the guard leaves only once its last words are out. */
let sending = 0;

function report(msg: GuardReport): void {
  // After the gateway has gone there is nobody to tell.
  if (!process.send || !process.connected) return;
  sending++;
  process.send(msg, undefined, {}, () => {
    sending--;
    exitIfDone();
  });
}

/** Signals the child's whole process group: whatever the process started goes with it. */
function killGroup(c: Child, signal: NodeJS.Signals): void {
  const pid = c.proc.pid;
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // ESRCH: the group is already empty.
  }
}

function exitIfDone(): void {
  if (leaving && children.size === 0 && (sending === 0 || !process.connected)) process.exit(0);
}

function finish(c: Child, code: number | null, signal: string | null, error?: string): void {
  if (c.finished) return;
  c.finished = true;
  clearTimeout(c.killTimer);
  children.delete(c.spec.id);
  report({ type: "exit", id: c.spec.id, code, signal, ...(error !== undefined ? { error } : {}) });
  exitIfDone();
}

function stop(c: Child): void {
  if (c.stopping) return;
  c.stopping = true;
  const p = c.proc;
  // Not started, or its exit already under way: finish() reports it.
  if (p.pid === undefined || p.exitCode !== null || p.signalCode !== null) return;
  killGroup(c, "SIGTERM");
  c.killTimer = setTimeout(() => killGroup(c, "SIGKILL"), c.spec.stopGrace);
}

function start(spec: GuardStart): void {
  const [file, ...args] = spec.argv;
  const proc = spawn(file!, args, {
    cwd: spec.cwd,
    env: spec.env,
    stdio: ["ignore", "pipe", "pipe"],
    // A new process group (and session) led by the child, so one kill(-pid) reaches everything it starts.
    detached: true,
  });
  const c: Child = { proc, spec, stopping: false, finished: false };
  children.set(spec.id, c);
  for (const stream of ["stdout", "stderr"] as const)
    forEachLine(proc[stream], (line) => report({ type: "output", id: spec.id, stream, line }));
  proc.once("spawn", () => report({ type: "started", id: spec.id, pid: proc.pid! }));
  proc.once("error", (err) => finish(c, null, null, err.message));
  proc.once("exit", (code, signal) => {
    // The group's leader is gone; anything it left behind in its group would hold the port and the pipes.
    killGroup(c, "SIGKILL");
    // `close` comes after the last output line, so the log reads in order; a descendant that left the group
    // may hold the pipes open, so it is not waited for long.
    const late = setTimeout(() => {
      proc.stdout?.destroy();
      proc.stderr?.destroy();
      finish(c, code, signal);
    }, 2_000);
    proc.once("close", () => {
      clearTimeout(late);
      finish(c, code, signal);
    });
  });
}

function leave(): void {
  leaving = true;
  for (const c of children.values()) stop(c);
  exitIfDone();
}

process.on("message", (m: unknown) => {
  if (!isGuardRequest(m)) return;
  if (m.type === "start") {
    if (!leaving && !children.has(m.id)) start(m);
    return;
  }
  const c = children.get(m.id);
  if (!c) return;
  if (m.type === "stop") stop(c);
  else killGroup(c, "SIGKILL");
});
// The guard runs in its own process group, so these come only from someone meaning the guard: stop everything.
process.on("SIGTERM", leave);
process.on("SIGINT", leave);
process.on("SIGHUP", leave);
process.on("disconnect", leave);
if (!process.send) {
  process.stderr.write("guard: must be started by the gateway's supervisor (no IPC channel)\n");
  process.exit(2);
}
