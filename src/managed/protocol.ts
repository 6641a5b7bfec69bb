// The messages between the supervisor and the one guard process over the guard's IPC channel (JSON), typed once
// for both sides. Every message names the managed process it is about by a number the supervisor chose.

/** Run a process (in a process group of its own). */
export interface GuardStart {
  type: "start";
  id: number;
  argv: string[];
  cwd: string;
  env: Record<string, string>;
  /** On "stop", or when the gateway is gone: SIGTERM, then SIGKILL after this many ms. */
  stopGrace: number;
}

/** Stop one process: SIGTERM to its group, SIGKILL after its stopGrace. "kill" is SIGKILL at once. */
export interface GuardStop {
  type: "stop" | "kill";
  id: number;
}

export type GuardRequest = GuardStart | GuardStop;

/** What the guard reports of a process: it started, a line of its output, or it ended (why it could not start). */
export type GuardReport =
  | { type: "started"; id: number; pid: number }
  | { type: "output"; id: number; stream: "stdout" | "stderr"; line: string }
  | { type: "exit"; id: number; code: number | null; signal: string | null; error?: string };

function isRecord(m: unknown): m is Record<string, unknown> {
  return typeof m === "object" && m !== null;
}

export function isGuardRequest(m: unknown): m is GuardRequest {
  if (!isRecord(m) || typeof m.id !== "number") return false;
  if (m.type === "stop" || m.type === "kill") return true;
  return (
    m.type === "start" &&
    Array.isArray(m.argv) &&
    m.argv.length > 0 &&
    m.argv.every((a) => typeof a === "string") &&
    typeof m.cwd === "string" &&
    isRecord(m.env) &&
    typeof m.stopGrace === "number"
  );
}

export function isGuardReport(m: unknown): m is GuardReport {
  if (!isRecord(m) || typeof m.id !== "number") return false;
  if (m.type === "started") return typeof m.pid === "number";
  if (m.type === "output")
    return (m.stream === "stdout" || m.stream === "stderr") && typeof m.line === "string";
  return (
    m.type === "exit" &&
    (m.code === null || typeof m.code === "number") &&
    (m.signal === null || typeof m.signal === "string")
  );
}
