// The supervisor's end of the one guard process: starts it when the first managed process needs it, sends it
// start and stop requests, and routes its reports to the process each is about.
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { isGuardReport, type GuardReport, type GuardRequest, type GuardStart } from "./protocol.ts";

/** How to start the guard: `node [execArgv] guard.js`. */
export interface GuardCommand {
  execPath: string;
  args: string[];
}

/** What one managed process hears from the guard. */
export interface GuardHandlers {
  started(pid: number): void;
  output(stream: "stdout" | "stderr", line: string): void;
  exit(report: Extract<GuardReport, { type: "exit" }>): void;
}

export class GuardLink {
  private guard: ChildProcess | undefined;
  private nextId = 1;
  private readonly handlers = new Map<number, GuardHandlers & { pid?: number }>();

  constructor(private readonly command: GuardCommand) {}

  /** Whether the guard process runs now (tests count guards). */
  get running(): boolean {
    return this.guard !== undefined;
  }

  /** Asks the guard to run a process; returns the id that stop() and kill() take. */
  launch(spec: Omit<GuardStart, "type" | "id">, handlers: GuardHandlers): number {
    const id = this.nextId++;
    this.handlers.set(id, handlers);
    this.send({ type: "start", id, ...spec });
    return id;
  }

  /** SIGTERM to the process's group, SIGKILL after its stopGrace; its exit is reported as usual. */
  stop(id: number): void {
    this.send({ type: "stop", id });
  }

  /** SIGKILL to the process's group now, from here as well (should the guard itself hang). */
  kill(id: number): void {
    const pid = this.handlers.get(id)?.pid;
    if (pid !== undefined) killGroup(pid);
    this.send({ type: "kill", id });
  }

  /** Lets the guard go once its processes are gone (they have been stopped); resolves when it has exited. */
  async close(): Promise<void> {
    const g = this.guard;
    if (!g || g.exitCode !== null || g.signalCode !== null) return;
    const exited = once(g, "exit");
    if (g.connected) g.disconnect();
    await exited;
  }

  private send(msg: GuardRequest): void {
    const g = (this.guard ??= this.spawnGuard());
    g.send(msg, (err) => {
      // The guard died before it could read it: its exit reports every process as ended.
      if (err) g.kill("SIGKILL");
    });
  }

  private spawnGuard(): ChildProcess {
    const g = spawn(this.command.execPath, this.command.args, {
      stdio: ["ignore", "ignore", "inherit", "ipc"],
      // Its own process group, so a signal sent to the gateway's group (Ctrl-C in a terminal, `kill -- -PGID`)
      // does not stop upstreams while the gateway is still draining requests: the gateway stops them after.
      detached: true,
    });
    g.on("message", (m: unknown) => {
      if (!isGuardReport(m)) return;
      const h = this.handlers.get(m.id);
      if (!h) return;
      if (m.type === "started") {
        h.pid = m.pid;
        h.started(m.pid);
      } else if (m.type === "output") h.output(m.stream, m.line);
      else {
        this.handlers.delete(m.id);
        h.exit(m);
      }
    });
    g.on("error", () => undefined);
    g.once("exit", (code, signal) => {
      if (this.guard === g) this.guard = undefined;
      // A guard that died (killed by hand) may have left process groups behind; its processes are over for us.
      const orphans = [...this.handlers.entries()];
      this.handlers.clear();
      for (const [id, h] of orphans) {
        if (h.pid !== undefined) killGroup(h.pid);
        h.exit({
          type: "exit",
          id,
          code: null,
          signal: null,
          error: `the guard process ended (code ${code}, signal ${signal})`,
        });
      }
    });
    return g;
  }
}

function killGroup(pid: number): void {
  try {
    process.kill(-pid, "SIGKILL");
  } catch {
    // ESRCH: nothing left.
  }
}
