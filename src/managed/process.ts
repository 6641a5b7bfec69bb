// One managed upstream process: run through the guard, output forwarded to the log, restarted with exponential
// backoff per its policy, stopped (SIGTERM to its process group, SIGKILL after the grace), and never started while
// another process holds its port.
import type { RestartPolicy } from "../config/types.ts";
import type { Logger } from "../log/log.ts";
import type { GuardLink } from "./guard-link.ts";
import type { GuardReport } from "./protocol.ts";

export type { GuardCommand } from "./guard-link.ts";

export interface Backoff {
  /** The first restart's delay (ms); each further failure in a row doubles it. */
  initial: number;
  max: number;
  /** A process that stayed up this long (ms) was healthy: its next restart starts from `initial` again. */
  resetAfter: number;
}

export const DEFAULT_BACKOFF: Backoff = { initial: 1_000, max: 30_000, resetAfter: 30_000 };

/** Everything needed to run one upstream's process; two specs with equal `run` fields run the same thing. */
export interface ProcessSpec {
  pool: string;
  upstream: string;
  /** Set for a top-level `processes:` entry (pool "" and upstream = this name then): its logs say `process`. */
  process?: string;
  /** Where the upstream's url says the process listens: checked free before every start. */
  listen?: { host: string; port: number };
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
  /** Why it is not serving, when the process is the reason: its port taken, or a crash loop. Else null. */
  reason: string | null;
}

export interface ProcessDeps {
  log: Logger;
  guard: GuardLink;
  backoff: Backoff;
  /** Whether something already accepts connections on host:port (another process holding the port). */
  portTaken(host: string, port: number): Promise<boolean>;
  /** The process blocks its upstream (reason), or no longer does (null): the gateway marks the upstream out. */
  onBlocked(reason: string | null): void;
  /** Called each time the process is started again after an exit (the restarts metric). */
  onRestart(pool: string, upstream: string): void;
}

type State =
  "waiting" | "checking" | "blocked" | "starting" | "running" | "backoff" | "exited" | "stopping" | "stopped";

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
  /** The guard's id for the current run, while one is under way. */
  private runId: number | undefined;
  private pid: number | null = null;
  private blockedBy: string | null = null;
  /** Re-checks of a taken port in a row: they back off like restarts. */
  private blockedChecks = 0;
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

  /** Why the process is not started: its port is held by another process. Null otherwise. */
  get blocked(): string | null {
    if (this.state === "blocked") return this.blockedBy;
    // Until the check has answered, whatever listens there is not known to be ours.
    if (this.state === "checking")
      return this.blockedBy ?? `checking that port ${this.spec.listen?.port} is free`;
    return null;
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
      reason: this.reason(),
    };
  }

  private reason(): string | null {
    if (this.state === "blocked" || (this.state === "checking" && this.blockedBy)) return this.blockedBy;
    if (this.state === "backoff" && this.lastExit) {
      const how =
        this.lastExit.code !== null
          ? `exited with code ${this.lastExit.code}`
          : this.lastExit.signal
            ? `killed by ${this.lastExit.signal}`
            : "could not start";
      return `restarting: ${how}, ${this.failures} time${this.failures === 1 ? "" : "s"} in a row`;
    }
    if (this.state === "exited" && this.lastExit)
      return `exited (code ${this.lastExit.code ?? "-"}, signal ${this.lastExit.signal ?? "-"}); restart: ${this.spec.restart}`;
    return null;
  }

  /** SIGTERM to the process group, SIGKILL after stopGrace; resolves once the process is gone. */
  stop(): Promise<void> {
    clearTimeout(this.restartTimer);
    if (this.stopped) return this.stopped;
    if (this.runId === undefined) {
      this.state = "stopped";
      this.unblock();
      this.stopped = Promise.resolve();
      return this.stopped;
    }
    this.state = "stopping";
    this.stopped = new Promise<void>((resolve) => (this.resolveStopped = resolve));
    // The guard does the SIGTERM-then-SIGKILL itself (it must also do so when the gateway dies). Should the guard
    // hang, the whole group is killed from here a little after its own deadline.
    const id = this.runId;
    this.deps.guard.stop(id);
    this.killTimer = setTimeout(() => this.deps.guard.kill(id), this.spec.stopGrace + 2_000);
    return this.stopped;
  }

  /** Checks the port, then runs the process; a port held by another process blocks the start instead. */
  private launch(): void {
    const at = this.spec.listen;
    if (!at) return this.spawn();
    this.state = "checking";
    void this.deps.portTaken(at.host, at.port).then((taken) => {
      if (this.state !== "checking") return;
      if (!taken) {
        this.unblock();
        return this.spawn();
      }
      const reason = `port ${at.port} on ${at.host} is already in use by another process; not started`;
      // One error per episode: the re-checks below stay quiet until the port is free.
      if (this.blockedBy === null)
        this.deps.log.error("managed_port_taken", {
          ...logTags(this.spec),
          host: at.host,
          port: at.port,
          command: this.spec.command,
          error: reason,
        });
      this.blockedBy = reason;
      this.deps.onBlocked(reason);
      this.state = "blocked";
      const delay = backoffDelay(this.blockedChecks++, this.deps.backoff);
      this.restartTimer = setTimeout(() => {
        if (this.state === "blocked") this.launch();
      }, delay);
    });
  }

  private unblock(): void {
    if (this.blockedBy === null) return;
    this.blockedBy = null;
    this.blockedChecks = 0;
    this.deps.onBlocked(null);
  }

  private spawn(): void {
    const { log } = this.deps;
    const tags = () => logTags(this.spec);
    this.state = "starting";
    this.pid = null;
    this.startedAt = Date.now();
    this.runId = this.deps.guard.launch(
      { argv: this.spec.argv, cwd: this.spec.cwd, env: this.spec.env, stopGrace: this.spec.stopGrace },
      {
        started: (pid) => {
          this.pid = pid;
          if (this.state === "starting") this.state = "running";
          log.info("managed_start", { ...tags(), pid, command: this.spec.command, restarts: this.restarts });
        },
        output: (stream, line) => log.info("managed_output", { ...tags(), stream, line }),
        exit: (report) => this.exited(report),
      },
    );
  }

  private exited(exit: Extract<GuardReport, { type: "exit" }>): void {
    clearTimeout(this.killTimer);
    const pid = this.pid;
    const uptimeMs = Date.now() - this.startedAt;
    this.runId = undefined;
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
