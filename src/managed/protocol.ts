// The messages between the supervisor and a guard over the guard's IPC channel (JSON), typed once for both sides.

/** What the supervisor sends the guard once, right after spawning it: the process to run. */
export interface GuardSpec {
  type: "spec";
  argv: string[];
  cwd: string;
  env: Record<string, string>;
  /** SIGTERM, then SIGKILL after this many ms, when the guard is told to stop or loses the gateway. */
  stopGrace: number;
}

/** What the guard reports: the process started, or it ended (with the reason it could not start, if so). */
export type GuardReport =
  | { type: "started"; pid: number }
  | { type: "exit"; code: number | null; signal: string | null; error?: string };

export function isGuardSpec(m: unknown): m is GuardSpec {
  if (typeof m !== "object" || m === null) return false;
  const o = m as Record<string, unknown>;
  return (
    o.type === "spec" &&
    Array.isArray(o.argv) &&
    o.argv.length > 0 &&
    o.argv.every((a) => typeof a === "string") &&
    typeof o.cwd === "string" &&
    typeof o.env === "object" &&
    o.env !== null &&
    typeof o.stopGrace === "number"
  );
}

export function isGuardReport(m: unknown): m is GuardReport {
  if (typeof m !== "object" || m === null) return false;
  const o = m as Record<string, unknown>;
  if (o.type === "started") return typeof o.pid === "number";
  return (
    o.type === "exit" &&
    (o.code === null || typeof o.code === "number") &&
    (o.signal === null || typeof o.signal === "string")
  );
}
