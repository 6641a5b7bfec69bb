// `gateway ports run`: holds a registry lease for a child process: allocate, run it with PORT, heartbeat while it
// runs, forward signals, release when it exits, and exit with its code.
import { spawn, type ChildProcess } from "node:child_process";
import { exitCodeFor, heartbeatDelay } from "./ports-format.ts";
import {
  RegistryError,
  RegistryUnreachable,
  type AllocateRequest,
  type Allocation,
  type RegistryClient,
} from "./registry-client.ts";

export interface RunOptions {
  client: RegistryClient;
  request: AllocateRequest;
  argv: string[];
  /** Diagnostics (stderr): the child owns stdout. */
  say(line: string): void;
  /** How long the first allocation keeps trying while the registry cannot answer (starting, or Redis down). */
  startupWaitMs?: number;
  /** How long a release on the way out may take before the wrapper exits anyway. */
  releaseTimeoutMs?: number;
}

const FORWARDED = ["SIGTERM", "SIGINT", "SIGHUP"] as const;

/** Whether an allocate/heartbeat failure may pass by waiting: no answer, or the store (Redis) is down. */
export function transient(err: unknown): boolean {
  return err instanceof RegistryUnreachable || (err instanceof RegistryError && err.status >= 500);
}

/**
 * What a wrapper whose allocation is gone (a heartbeat answered 404) asks for: the same port, which its child
 * still listens on, so `required` (never another port) and `claim` (the bind probe would find the child).
 */
export function reclaimRequest(
  original: AllocateRequest,
  lost: Pick<Allocation, "host" | "port">,
): AllocateRequest {
  return { ...original, host: lost.host, preferred_port: lost.port, required: true, claim: true };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Runs the whole lifecycle; resolves with the exit code the wrapper should exit with. */
export async function runWithPort(o: RunOptions): Promise<number> {
  const { client, say } = o;
  // Set once spawned; the signal handler, installed earlier, reads it.
  let child: ChildProcess | undefined = undefined;
  let stopSignal: NodeJS.Signals | undefined;
  let allocation: Allocation | undefined;
  let released = false;
  let timer: NodeJS.Timeout | undefined;
  let exited = false;

  const release = async () => {
    if (!allocation || released) return;
    released = true;
    clearTimeout(timer);
    try {
      await client.release(allocation.allocation_id);
      say(`released ${allocation.host}:${allocation.port}`);
    } catch (err) {
      // 404: already removed (expired long ago). Otherwise the lease simply runs out.
      if (!(err instanceof RegistryError && err.status === 404))
        say(`release failed (${(err as Error).message}); the lease will expire`);
    }
  };

  // Installed before anything else: a signal while allocating must not kill the wrapper and strand the lease.
  const onSignal = (signal: NodeJS.Signals) => {
    stopSignal ??= signal;
    if (!child) return;
    // The registry first, so the gateway stops sending new requests before the child stops listening; bounded,
    // so a registry that is down does not delay the stop.
    void Promise.race([release(), sleep(o.releaseTimeoutMs ?? 2_000)]).then(() => {
      if (!exited) child?.kill(signal);
    });
  };
  for (const s of FORWARDED) process.on(s, onSignal);
  const cleanup = () => {
    clearTimeout(timer);
    for (const s of FORWARDED) process.removeListener(s, onSignal);
  };

  try {
    allocation = await allocate(o, () => stopSignal !== undefined);
  } catch (err) {
    cleanup();
    throw err;
  }
  if (!allocation) {
    cleanup();
    return exitCodeFor(null, stopSignal ?? "SIGTERM");
  }
  if (stopSignal) {
    await release();
    cleanup();
    return exitCodeFor(null, stopSignal);
  }
  const a = allocation;
  say(
    `${a.service_name} (${a.service_type}) holds ${a.host}:${a.port} (allocation ${a.allocation_id}, ttl ` +
      `${a.ttl_ms}ms); starting ${o.argv.join(" ")}`,
  );

  const [file, ...args] = o.argv;
  const c = spawn(file!, args, { stdio: "inherit", env: { ...process.env, PORT: String(a.port) } });
  child = c;
  const ended = new Promise<number>((resolve) => {
    c.once("error", (err: NodeJS.ErrnoException) => {
      exited = true;
      say(`cannot start ${file}: ${err.message}`);
      resolve(err.code === "ENOENT" ? 127 : 126);
    });
    c.once("exit", (code, signal) => {
      exited = true;
      resolve(exitCodeFor(code, signal));
    });
  });

  const beat = async () => {
    if (released || exited || !allocation) return;
    let next = heartbeatDelay(allocation.ttl_ms);
    try {
      allocation = (await client.heartbeat(allocation.allocation_id)).allocation;
      next = heartbeatDelay(allocation.ttl_ms);
    } catch (err) {
      if (released || exited) return;
      if (err instanceof RegistryError && err.status === 404) {
        next = await reclaim();
      } else {
        // A registry that is down must not take the service down with it: keep running, keep trying.
        next = Math.min(next, 1_000);
        say(`heartbeat failed (${(err as Error).message}); retrying in ${next}ms`);
      }
    }
    if (!released && !exited) timer = setTimeout(() => void beat(), next);
  };

  const reclaim = async (): Promise<number> => {
    const lost = allocation!;
    say(`allocation ${lost.allocation_id} is gone (404); allocating ${lost.host}:${lost.port} again`);
    try {
      const again = (await client.allocate(reclaimRequest(o.request, lost))).allocation;
      if (released || exited) {
        // Stopped meanwhile: this new lease is nobody's.
        allocation = again;
        released = false;
        await release();
        return 0;
      }
      allocation = again;
      say(`holds ${again.host}:${again.port} again (allocation ${again.allocation_id})`);
      return heartbeatDelay(again.ttl_ms);
    } catch (err) {
      say(`allocating ${lost.host}:${lost.port} again failed (${(err as Error).message}); retrying`);
      return Math.min(heartbeatDelay(lost.ttl_ms), 1_000);
    }
  };

  timer = setTimeout(() => void beat(), heartbeatDelay(a.ttl_ms));
  const code = await ended;
  clearTimeout(timer);
  await release();
  cleanup();
  return code;
}

/** The first allocation, retried while the registry cannot answer; undefined when a signal came meanwhile. */
async function allocate(o: RunOptions, stopped: () => boolean): Promise<Allocation | undefined> {
  const deadline = Date.now() + (o.startupWaitMs ?? 30_000);
  let wait = 250;
  for (;;) {
    try {
      return (await o.client.allocate(o.request)).allocation;
    } catch (err) {
      if (!transient(err) || Date.now() + wait > deadline) throw err;
      o.say(`allocation failed (${(err as Error).message}); retrying in ${wait}ms`);
    }
    await sleep(wait);
    if (stopped()) return undefined;
    wait = Math.min(wait * 2, 2_000);
  }
}
