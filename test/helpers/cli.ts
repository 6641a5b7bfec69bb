// Runs the gateway's CLI to completion from the sources (as spawnCli does), for the CLI tests.
import { execFile } from "node:child_process";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT, type CliProcess } from "./processes.ts";

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** `gateway ARGS` to completion, from the sources (as spawnCli), with the gateway's env variables cleared. */
export function runCli(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const clean = { ...process.env };
  for (const k of Object.keys(clean)) if (k.startsWith("GATEWAY_")) delete clean[k];
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ["--import", "tsx", `${ROOT}src/cli.ts`, ...args],
      { cwd: ROOT, env: { ...clean, ...env }, timeout: 60_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

export async function configFile(yaml: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "gateway-cli-"));
  const path = join(dir, "gateway.yaml");
  await writeFile(path, yaml);
  return path;
}

export async function stopCli(cli: CliProcess): Promise<void> {
  if (cli.child.exitCode === null && cli.child.signalCode === null) cli.child.kill("SIGTERM");
  await cli.exited;
}
