// The guard between the gateway and one managed process: runs it in a process group of its own and kills that
// whole group when told to stop or when the gateway is gone (its IPC channel closes, which happens even on SIGKILL).
//
// Started by the supervisor as `node guard.js` with an IPC channel; never run by hand. The managed process writes
// straight into the guard's stdout/stderr pipes, which the gateway reads, so the guard copies no bytes.
import { spawn, type ChildProcess } from "node:child_process";
import { isGuardSpec, type GuardReport, type GuardSpec } from "./protocol.ts";

let child: ChildProcess | undefined;
let spec: GuardSpec | undefined;
let stopping = false;
let finished = false;
let killTimer: NodeJS.Timeout | undefined;

function report(msg: GuardReport, then: () => void = () => undefined): void {
  // After the gateway has gone there is nobody to tell.
  if (!process.send || !process.connected) return then();
  process.send(msg, undefined, {}, () => then());
}

/** Signals the child's whole process group: whatever the process started goes with it. */
function killGroup(signal: NodeJS.Signals): void {
  const pid = child?.pid;
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // ESRCH: the group is already empty.
  }
}

function finish(code: number | null, signal: string | null, error?: string): void {
  if (finished) return;
  finished = true;
  clearTimeout(killTimer);
  // The group's leader is gone; anything it left behind in its group would hold the port and the output pipes.
  killGroup("SIGKILL");
  report({ type: "exit", code, signal, ...(error !== undefined ? { error } : {}) }, () => process.exit(0));
}

function stop(): void {
  if (stopping) return;
  stopping = true;
  // Nothing started yet: nothing to stop. A failed spawn or an exit already under way is reported by finish().
  if (!child) process.exit(0);
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  killGroup("SIGTERM");
  killTimer = setTimeout(() => killGroup("SIGKILL"), spec?.stopGrace ?? 5_000);
}

function start(s: GuardSpec): void {
  spec = s;
  const [file, ...args] = s.argv;
  const c = spawn(file!, args, {
    cwd: s.cwd,
    env: s.env,
    stdio: ["ignore", "inherit", "inherit"],
    // A new process group (and session) led by the child, so one kill(-pid) reaches everything it starts.
    detached: true,
  });
  child = c;
  c.once("spawn", () => report({ type: "started", pid: c.pid! }));
  c.once("error", (err) => finish(null, null, err.message));
  c.once("exit", (code, signal) => finish(code, signal));
}

// The guard's own signals mean "stop the process" (the supervisor sends SIGTERM); it leaves once the process has.
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
process.on("SIGHUP", stop);
process.on("disconnect", stop);
process.once("message", (m: unknown) => {
  if (isGuardSpec(m) && !stopping) start(m);
  else if (!stopping) process.exit(2);
});
if (!process.send) {
  process.stderr.write("guard: must be started by the gateway's supervisor (no IPC channel)\n");
  process.exit(2);
}
