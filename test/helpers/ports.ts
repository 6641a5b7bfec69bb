// Helpers for the `gateway ports` tests: the CLI run to its end or followed while it runs (`ports run`), and a
// gateway with the registry on whose pool discovers the test's services.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import type { TestContext } from "node:test";
import type { Allocation } from "../../src/cli/registry-client.ts";
import { get, startGateway, type TestGateway } from "./gateway.ts";
import { ROOT, freePort } from "./processes.ts";

export const CLI = [process.execPath, "--import", "tsx", `${ROOT}src/cli.ts`];
export const PDF = `${ROOT}examples/services/pdf.js`;
export const KEY = "registry-test-key";

/** The env of a CLI run: none of the operator's gateway variables leak in. */
export function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env))
    if (v !== undefined && !k.startsWith("GATEWAY_")) env[k] = v;
  return { ...env, ...extra };
}

/** Runs `gateway ARGS` to its end. */
export async function cli(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(CLI[0]!, [...CLI.slice(1), ...args], { cwd: ROOT, env: cleanEnv(env) });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
  child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
  const [code] = (await once(child, "close")) as [number | null];
  return { code, stdout, stderr };
}

export interface Wrapper {
  child: ChildProcess;
  stderr(): string;
  /** Resolves with the first stdout line (the child's) or stderr line (the wrapper's) that matches. */
  line(re: RegExp): Promise<RegExpMatchArray>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `gateway ports run ARGS` and follows its output. */
export function portsRun(t: TestContext, args: string[], env: Record<string, string> = {}): Wrapper {
  const child = spawn(CLI[0]!, [...CLI.slice(1), "ports", "run", ...args], { cwd: ROOT, env: cleanEnv(env) });
  const lines: string[] = [];
  let err = "";
  const waiters: { re: RegExp; resolve: (m: RegExpMatchArray) => void }[] = [];
  const onLine = (l: string) => {
    lines.push(l);
    for (const w of [...waiters]) {
      const m = l.match(w.re);
      if (m) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(m);
      }
    }
  };
  createInterface({ input: child.stdout }).on("line", onLine);
  createInterface({ input: child.stderr }).on("line", (l) => {
    err += `${l}\n`;
    onLine(l);
  });
  const exited = once(child, "exit").then(([code, signal]) => ({
    code: code as number | null,
    signal: signal as NodeJS.Signals | null,
  }));
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  });
  return {
    child,
    stderr: () => err,
    exited,
    line: (re) => {
      for (const l of lines) {
        const m = l.match(re);
        if (m) return Promise.resolve(m);
      }
      return new Promise((resolve) => waiters.push({ re, resolve }));
    },
  };
}

/** A gateway with the registry on: type `svc` over 20 ports from a free one, pool `svc` discovering it. */
export async function registryGateway(
  t: TestContext,
  registryExtra = "",
  ttl = "3s",
): Promise<{ g: TestGateway; first: number }> {
  // freePort() is an ephemeral port (32768-60999 on Linux), so 20 more fit below 65536.
  const first = await freePort();
  const last = first + 19;
  const g = await startGateway(`listen: 127.0.0.1:0
shutdownGrace: 2s
defaults:
  healthCheck: { interval: 60s, timeout: 1s, healthyThreshold: 1, unhealthyThreshold: 1 }
  timeouts: { connect: 1s, response: 5s }
registry:
  store: memory
  ttl: ${ttl}
  deregisterAfter: 30s
${registryExtra}  types:
    svc: ${first}-${last}
    other: { range: ${last + 1}-${last + 1}, fallback: svc }
pools:
  svc:
    discover: { type: svc }
    upstreams: []
  app:
    upstreams: [{ url: "http://127.0.0.1:9" }]
routes:
  - { prefix: /svc/, pool: svc }
  - { prefix: /, pool: app }
`);
  t.after(() => g.stop());
  return { g, first };
}

export async function allocations(g: TestGateway, query = ""): Promise<Allocation[]> {
  const res = await get(`${g.url}/registry/allocations${query}`, { headers: { "x-api-key": KEY } });
  assert.equal(res.status, 200, res.text);
  return res.json<{ allocations: Allocation[] }>().allocations;
}

/** Runs health rounds until the pool answers from `instance` (a discovered member needs its first pass). */
export async function routedTo(g: TestGateway, instance: string): Promise<Record<string, unknown>> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    await g.gw.runHealthRound();
    const res = await get(`${g.url}/svc/doc`);
    if (res.status === 200 && res.json().instance === instance) return res.json();
    if (Date.now() > deadline) throw new Error(`not routed to ${instance}: ${res.status} ${res.text}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
