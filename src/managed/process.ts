// One managed upstream process: spawned through a guard, output forwarded to the log, restarted with exponential
// backoff per its policy, and stopped (SIGTERM to its process group, SIGKILL after the grace).
import { spawn, type ChildProcess } from "node:child_process";
import type { RestartPolicy } from "../config/types.ts";
import type { Logger } from "../log/log.ts";
import { forEachLine } from "./lines.ts";
import { isGuardReport, type GuardReport, type GuardSpec } from "./protocol.ts";

export interface Backoff {
  /** The first restart's delay (ms); each further failure in a row doubles it. */
  initial: number;
  max: number;
  /** A process that stayed up this long (ms) was healthy: its next restart starts from `initial` again. */
  resetAfter: number;
}

export const DEFAULT_BACKOFF: Backoff = { initial: 1_000, max: 30_000, resetAfter: 30_000 };

/** How to start a guard: `node [execArgv] guard.js`. */
export interface GuardCommand {
  execPath: string;
  args: string[];
}

/** Everything needed to run one upstream's process; two specs with equal `run` fields run the same thing. */
export interface ProcessSpec {
  pool: string;
  upstream: string;
  /** Set for a top-level `processes:` entry (pool "" and upstream = this name then): its logs say `process`. */
  process?: string;
  /** The command as written in gateway.yaml, for logs. */
  command: string;
  argv: string[];
  cwd: string;
  env: Record<string, string>;
  restart: RestartPolicy;
  stopGrace: number;
}

export interface ManagedStatus {
  /** The process's pid while it runs, else null. */
  pid: number | null;
  restarts: number;
  lastExit: { code: number | null; signal: string | null; time: string } | null;
  running: boolean;
}

export interface ProcessDeps {
  log: Logger;
  guard: GuardCommand;
  backoff: Backoff;
  /** Called each time the process is started again after an exit (the restarts metric). */
  onRestart(pool: string, upstream: string): void;
}

type State = "waiting" | "starting" | "running" | "backoff" | "exited" | "stopping" | "stopped";

/** What the process's log lines are tagged with: its upstream, or the name of a top-level process. */
export function logTags(spec: ProcessSpec): Record<string, string> {
  return spec.process !== undefined
    ? { process: spec.process }
    : { pool: spec.pool, upstream: spec.upstream };
}

/** The delay before restart number `failures + 1` in a row: initial, doubling, capped. */
export function backoffDelay(failures: number, b: Backoff): number {
  return Math.min(b.initial * 2 ** Math.min(failures, 30), b.max);
}

/** Whether `policy` restarts a process that ended this way. A process that could not start counts as failed. */
export function shouldRestart(policy: RestartPolicy, exit: { code: number | null; error?: string }): boolean {
  if (policy === "always") return true;
  if (policy === "never") return false;
  return exit.code !== 0 || exit.error !== undefined;
}

export class ManagedProcess {
  private state: State = "waiting";
  private guard: ChildProcess | undefined;
  private pid: number | null = null;
  private report: Extract<GuardReport, { type: "exit" }> | undefined;
  private startedAt = 0;
  private failures = 0;
  private restarts = 0;
  private lastExit: ManagedStatus["lastExit"] = null;
  private restartTimer: NodeJS.Timeout | undefined;
  private killTimer: NodeJS.Timeout | undefined;
  private stopped: Promise<void> | undefined;
  private resolveStopped: (() => void) | undefined;

  constructor(
    private spec: ProcessSpec,
    private readonly deps: ProcessDeps,
  ) {}

  get pool(): string {
    return this.spec.pool;
  }

  /** The upstream id changed in the config while its url and run stayed: only the log tags change. */
  relabel(upstream: string): void {
    this.spec = { ...this.spec, upstream };
  }

  /** True when it ended and its policy does not restart it: a reload starts it again (see `revive`). */
  get exitedForGood(): boolean {
    return this.state === "exited";
  }

  /** Starts the process once `after` settles (the stop of a process it replaces, which may hold its port). */
  start(after: Promise<unknown> = Promise.resolve()): void {
    void after.then(() => {
      if (this.state === "waiting") this.launch();
    });
  }

  /** Starts again a process that had ended for good (the config still asks for it). */
  revive(): void {
    if (this.state !== "exited") return;
    this.failures = 0;
    this.countRestart();
    this.launch();
  }

  status(): ManagedStatus {
    return {
      pid: this.state === "running" || this.state === "stopping" ? this.pid : null,
      restarts: this.restarts,
      lastExit: this.lastExit,
      running: this.state === "running",
    };
  }

  /** SIGTERM to the process group, SIGKILL after stopGrace; resolves once the process and its guard are gone. */
  stop(): Promise<void> {
    clearTimeout(this.restartTimer);
    if (this.stopped) return this.stopped;
    if (!this.guard) {
      this.state = "stopped";
      this.stopped = Promise.resolve();
      return this.stopped;
    }
    this.state = "stopping";
    this.stopped = new Promise<void>((resolve) => (this.resolveStopped = resolve));
    // The guard does the SIGTERM-then-SIGKILL itself (it must also do so when the gateway dies). Should the guard
    // itself hang, the whole group is killed from here a little after its own deadline.
    this.guard.kill("SIGTERM");
    this.killTimer = setTimeout(() => this.killAll(), this.spec.stopGrace + 2_000);
    return this.stopped;
  }

  private killAll(): void {
    if (this.pid !== null) {
      try {
        process.kill(-this.pid, "SIGKILL");
      } catch {
        // ESRCH: already gone.
      }
    }
    this.guard?.kill("SIGKILL");
  }

  private launch(): void {
    const { log, guard: g } = this.deps;
    const tags = () => logTags(this.spec);
    this.state = "starting";
    this.report = undefined;
    this.pid = null;
    this.startedAt = Date.now();
    const guard = spawn(g.execPath, g.args, {
      stdio: ["ignore", "pipe", "pipe", "ipc"],
      // Its own process group, so a signal sent to the gateway's group (Ctrl-C in a terminal, `kill -- -PGID`)
      // does not stop upstreams while the gateway is still draining requests: the gateway stops them after.
      detached: true,
    });
    this.guard = guard;
    for (const stream of ["stdout", "stderr"] as const) {
      forEachLine(guard[stream]!, (line) => log.info("managed_output", { ...tags(), stream, line }));
    }
    guard.on("message", (m: unknown) => {
      if (!isGuardReport(m)) return;
      if (m.type === "exit") {
        this.report = m;
        return;
      }
      this.pid = m.pid;
      if (this.state === "starting") this.state = "running";
      log.info("managed_start", {
        ...tags(),
        pid: m.pid,
        command: this.spec.command,
        restarts: this.restarts,
      });
    });
    guard.on("error", (err) => log.error("managed_error", { ...tags(), error: `guard: ${err.message}` }));
    guard.once("exit", () => {
      // A guard that died without reporting (killed by hand) may have left its process group behind.
      if (!this.report && this.pid !== null) {
        try {
          process.kill(-this.pid, "SIGKILL");
        } catch {
          // ESRCH: nothing left.
        }
      }
    });
    // `close` comes after the last output line, so the log reads in order.
    guard.once("close", (code, signal) => this.exited(code, signal));
    const spec: GuardSpec = {
      type: "spec",
      argv: this.spec.argv,
      cwd: this.spec.cwd,
      env: this.spec.env,
      stopGrace: this.spec.stopGrace,
    };
    guard.send(spec, (err) => {
      // The guard died before it could read it; `close` reports that.
      if (err) guard.kill("SIGKILL");
    });
  }

  private exited(guardCode: number | null, guardSignal: NodeJS.Signals | null): void {
    clearTimeout(this.killTimer);
    const exit = this.report ?? {
      code: guardCode,
      signal: guardSignal,
      error: `the guard process ended without a report (code ${guardCode}, signal ${guardSignal})`,
    };
    const pid = this.pid;
    const uptimeMs = Date.now() - this.startedAt;
    this.guard = undefined;
    this.pid = null;
    this.lastExit = { code: exit.code, signal: exit.signal, time: new Date().toISOString() };
    const fields = {
      ...logTags(this.spec),
      pid,
      code: exit.code,
      signal: exit.signal,
      uptimeMs,
      ...(exit.error !== undefined ? { error: exit.error } : {}),
    };
    if (this.state === "stopping") {
      this.state = "stopped";
      this.deps.log.info("managed_exit", {
        ...fields,
        reason: "stopped",
        restarting: false,
        restartInMs: null,
      });
      this.resolveStopped?.();
      return;
    }
    if (!shouldRestart(this.spec.restart, exit)) {
      this.state = "exited";
      this.deps.log.warn("managed_exit", {
        ...fields,
        reason: `restart: ${this.spec.restart}`,
        restarting: false,
        restartInMs: null,
      });
      return;
    }
    // A process that ran a good while was fine until now: start again from the shortest delay.
    if (uptimeMs >= this.deps.backoff.resetAfter) this.failures = 0;
    const delay = backoffDelay(this.failures, this.deps.backoff);
    this.failures++;
    this.state = "backoff";
    this.deps.log.warn("managed_exit", {
      ...fields,
      reason: `restart: ${this.spec.restart}`,
      restarting: true,
      restartInMs: delay,
    });
    this.restartTimer = setTimeout(() => {
      if (this.state !== "backoff") return;
      this.countRestart();
      this.launch();
    }, delay);
  }

  private countRestart(): void {
    this.restarts++;
    this.deps.onRestart(this.spec.pool, this.spec.upstream);
  }
}
