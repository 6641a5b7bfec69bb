// The managed upstreams of the running config: starts a process for every upstream with `run:`, stops the ones that
// left the config, restarts the ones whose `run:` changed, and stops them all when the gateway stops.
import net from "node:net";
import { dirname, extname, resolve as resolvePath } from "node:path";
import { fileURLToPath } from "node:url";
import { isDeepStrictEqual } from "node:util";
import type { GatewayConfig, RunConfig } from "../config/types.ts";
import type { Logger } from "../log/log.ts";
import type { GatewayMetrics } from "../metrics/metrics.ts";
import { entryKey } from "../runtime/runtime.ts";
import { CommandError, parseCommand } from "./command.ts";
import { GuardLink } from "./guard-link.ts";
import {
  DEFAULT_BACKOFF,
  ManagedProcess,
  type Backoff,
  type GuardCommand,
  type ManagedStatus,
  type ProcessSpec,
} from "./process.ts";

export type { ManagedStatus } from "./process.ts";

export interface SupervisorOptions {
  log: Logger;
  metrics: Pick<GatewayMetrics, "managedRestarts">;
  backoff?: Partial<Backoff>;
  /** A managed upstream's process blocks it (reason: its port is held by another process), or no longer (null). */
  onBlocked?(key: string, reason: string | null): void;
  /** The gateway's own admin base URL, handed to every process as GATEWAY_URL (what `gateway ports` reads). */
  gatewayUrl?: () => string;
}

/** What one upstream's `run:` (or a top-level `processes:` entry) asks for, resolved against the config file. */
interface Wanted {
  key: string;
  pool: string;
  upstream: string;
  /** The upstream's url; a top-level process has none (nor a port the gateway knows). */
  url?: string;
  process?: string;
  run: RunConfig;
  configDir: string;
}

interface Entry {
  proc: ManagedProcess;
  wanted: Wanted;
}

/**
 * How to start a guard. Built, it is `dist/managed/guard.js`; from source (tsx: tests, `npm run demo`), it is
 * `guard.ts`, which Node 20 can only load through tsx, resolved here by absolute URL since the guard's own
 * working directory may have no node_modules.
 */
export function guardCommand(): GuardCommand {
  const ext = extname(fileURLToPath(import.meta.url));
  const guard = fileURLToPath(new URL(`./guard${ext}`, import.meta.url));
  const loader = ext === ".ts" ? ["--import", import.meta.resolve("tsx")] : [];
  return { execPath: process.execPath, args: [...loader, guard] };
}

/** The port a process must listen on for its upstream url: the explicit one, else the scheme's default. */
export function portOf(url: string): string {
  const u = new URL(url);
  return u.port || (u.protocol === "https:" ? "443" : "80");
}

export class Supervisor {
  private readonly entries = new Map<string, Entry>();
  /** Stops still under way (removed or replaced processes), which stopAll also waits for. */
  private readonly stopping = new Set<Promise<void>>();
  private readonly backoff: Backoff;
  private guard: GuardLink | undefined;
  private closed = false;

  constructor(private readonly options: SupervisorOptions) {
    this.backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
  }

  /** How many managed processes the running config has. */
  get size(): number {
    return this.entries.size;
  }

  /**
   * Brings the processes in line with `config`. Resolves once every removed or replaced process has stopped and
   * every new one has been launched; a replacement starts only after the process it replaces (or any other being
   * stopped on the same port) has gone, so it can bind the port.
   */
  async sync(config: GatewayConfig): Promise<void> {
    if (this.closed) return;
    const wanted = this.wanted(config);
    const stops: Promise<void>[] = [];
    const stopsByPort = new Map<string, Promise<void>[]>();
    for (const [key, entry] of this.entries) {
      const w = wanted.get(key);
      if (w && isDeepStrictEqual(w.run, entry.wanted.run) && w.configDir === entry.wanted.configDir) {
        if (w.upstream !== entry.wanted.upstream) entry.proc.relabel(w.upstream);
        entry.wanted = w;
        // The config still asks for it: a process that had ended for good runs again (a reload reconciles).
        entry.proc.revive();
        continue;
      }
      this.entries.delete(key);
      const stop = this.track(entry.proc.stop());
      stops.push(stop);
      if (entry.wanted.url === undefined) continue;
      const port = portOf(entry.wanted.url);
      stopsByPort.set(port, [...(stopsByPort.get(port) ?? []), stop]);
    }
    for (const [key, w] of wanted) {
      if (this.entries.has(key)) continue;
      const spec = this.processSpec(w);
      if (!spec) continue;
      const proc = new ManagedProcess(spec, {
        log: this.options.log,
        guard: (this.guard ??= new GuardLink(guardCommand())),
        backoff: this.backoff,
        portTaken: (host, port) => accepts(host, port),
        onBlocked: (reason) => this.options.onBlocked?.(key, reason),
        onRestart: (pool, upstream) => this.options.metrics.managedRestarts.inc({ pool, upstream }),
      });
      this.entries.set(key, { proc, wanted: w });
      proc.start(Promise.all((w.url !== undefined && stopsByPort.get(portOf(w.url))) || []));
    }
    await Promise.all(stops);
  }

  /**
   * Resolves once every managed upstream's port accepts connections, or after `timeoutMs`. The gateway waits
   * for this before its first health round at boot; otherwise that round finds the processes still starting,
   * marks them all down, and `npm start` answers 503 until two more checks have passed.
   */
  async whenListening(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const urls = [...this.entries.values()].flatMap((e) => (e.wanted.url ? [new URL(e.wanted.url)] : []));
    await Promise.all(
      urls.map(async (u) => {
        // Polling is the only way to learn that another process has bound its port.
        while (Date.now() < deadline && !this.closed) {
          if (await accepts(u.hostname.replace(/^\[(.*)\]$/, "$1"), Number(portOf(u.href)))) return;
          await new Promise((r) => setTimeout(r, 50));
        }
      }),
    );
  }

  /** The managed process of the upstream with this runtime key (`entryKey(pool, url)`), or null. */
  status(key: string): ManagedStatus | null {
    return this.entries.get(key)?.proc.status() ?? null;
  }

  /** Why the process of this upstream keeps it out (its port taken by another process), or undefined. */
  blocked(key: string): string | undefined {
    return this.entries.get(key)?.proc.blocked ?? undefined;
  }

  /** Whether the guard process runs (one for all managed processes). */
  get guardRunning(): boolean {
    return this.guard?.running ?? false;
  }

  /** Stops every process (in parallel), then the guard, and refuses further syncs: the gateway is shutting down. */
  async stopAll(): Promise<void> {
    this.closed = true;
    const all = [...this.entries.values()].map((e) => e.proc.stop());
    this.entries.clear();
    await Promise.all([...all, ...this.stopping]);
    await this.guard?.close();
  }

  private track(p: Promise<void>): Promise<void> {
    this.stopping.add(p);
    void p.finally(() => this.stopping.delete(p));
    return p;
  }

  private wanted(config: GatewayConfig): Map<string, Wanted> {
    const configDir = dirname(config.source.path);
    const out = new Map<string, Wanted>();
    for (const pool of config.pools) {
      for (const u of pool.upstreams) {
        if (!u.run) continue;
        const key = entryKey(pool.name, u.url);
        out.set(key, { key, pool: pool.name, upstream: u.id, url: u.url, run: u.run, configDir });
      }
    }
    for (const p of config.processes ?? []) {
      // No pool name holds a NUL, so these keys never meet an upstream's entryKey.
      const key = `\u0000process\u0000${p.name}`;
      out.set(key, { key, pool: "", upstream: p.name, process: p.name, run: p.run, configDir });
    }
    return out;
  }

  private processSpec(w: Wanted): ProcessSpec | undefined {
    // The upstream's port comes first so `run.env` can still override it; the gateway's own environment is the
    // base, as for any child process (PATH, HOME, ...).
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
    const gatewayUrl = this.options.gatewayUrl?.();
    if (gatewayUrl) env.GATEWAY_URL = gatewayUrl;
    if (w.url !== undefined) env.PORT = portOf(w.url);
    Object.assign(env, w.run.env);
    let argv: string[];
    try {
      argv = parseCommand(w.run.command, env);
    } catch (err) {
      if (!(err instanceof CommandError)) throw err;
      this.options.log.error("managed_error", {
        ...(w.process !== undefined ? { process: w.process } : { pool: w.pool, upstream: w.upstream }),
        command: w.run.command,
        error: err.message,
      });
      return undefined;
    }
    return {
      pool: w.pool,
      upstream: w.upstream,
      ...(w.process !== undefined ? { process: w.process } : {}),
      ...(w.url !== undefined ? { listen: listenOf(w.url) } : {}),
      command: w.run.command,
      argv,
      cwd: resolvePath(w.configDir, w.run.cwd),
      env,
      restart: w.run.restart,
      stopGrace: w.run.stopGrace,
    };
  }
}

/** Where a process serving `url` listens, as a connect target (brackets off an IPv6 host). */
function listenOf(url: string): { host: string; port: number } {
  const u = new URL(url);
  return { host: u.hostname.replace(/^\[(.*)\]$/, "$1"), port: Number(portOf(url)) };
}

function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
    socket.setTimeout(500, () => done(false));
  });
}
