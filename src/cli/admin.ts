// The client commands that talk to a running gateway: status, reload (the admin API or SIGHUP to a pid file),
// drain and enable.
import { readFile } from "node:fs/promises";
import type { Command } from "commander";
import { formatStatusTable } from "../server/status-table.ts";
import type { ReloadResult, StatusReport } from "../server/status.ts";
import { ClientError, adminRequest, answerMessage, type ClientOptions } from "./client.ts";
import { envHelp } from "./help.ts";

interface JsonOption {
  json?: boolean;
}

function fail(message: string): void {
  process.stderr.write(`${message}\n`);
  process.exitCode = 1;
}

/** Runs a client action; a ClientError (nothing answered, a bad URL) is one line on stderr and exit 1. */
function guarded<A extends unknown[]>(action: (...args: A) => Promise<void>) {
  return async (...args: A) => {
    try {
      await action(...args);
    } catch (err) {
      if (!(err instanceof ClientError)) throw err;
      fail(err.message);
    }
  };
}

function clientOptions(cmd: Command): Command {
  return cmd
    .option("--url <url>", "the gateway's admin base URL (default: $GATEWAY_URL, then http://127.0.0.1:8002)")
    .option("--key <key>", "admin API key (default: $GATEWAY_ADMIN_KEY)", process.env.GATEWAY_ADMIN_KEY)
    .addHelpText("after", envHelp(["GATEWAY_URL", "GATEWAY_ADMIN_KEY"]));
}

async function status(opts: ClientOptions & JsonOption): Promise<void> {
  const a = await adminRequest("GET", "/admin/status", opts);
  if (a.status !== 200) return fail(`${a.url} answered ${a.status}: ${answerMessage(a)}`);
  process.stdout.write(opts.json ? `${a.text}\n` : formatStatusTable(JSON.parse(a.text) as StatusReport));
}

async function reload(opts: ClientOptions & JsonOption & { pidFile?: string }): Promise<void> {
  if (opts.pidFile) {
    let pid: number;
    try {
      pid = Number((await readFile(opts.pidFile, "utf8")).trim());
    } catch (err) {
      return fail(`cannot read ${opts.pidFile}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
    if (!Number.isInteger(pid) || pid <= 0) return fail(`${opts.pidFile} holds no pid`);
    try {
      process.kill(pid, "SIGHUP");
    } catch (err) {
      return fail(`cannot signal pid ${pid}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
    // A signal has no answer: the gateway logs config_reload or config_error.
    process.stdout.write(
      `sent SIGHUP to ${pid}; the gateway logs the outcome (config_reload or config_error)\n`,
    );
    return;
  }
  const a = await adminRequest("POST", "/admin/reload", opts);
  if (opts.json) process.stdout.write(`${a.text}\n`);
  if (a.status === 200) {
    const r = JSON.parse(a.text) as Extract<ReloadResult, { ok: true }>;
    if (!opts.json) process.stdout.write(`reloaded: sha256 ${r.hash.slice(0, 12)}\n${changeLines(r)}`);
    return;
  }
  if (opts.json) process.exitCode = 1;
  else
    fail(
      a.status === 400
        ? `reload refused, the running config stays:\n${answerMessage(a)}`
        : `${a.url} answered ${a.status}: ${answerMessage(a)}`,
    );
}

function changeLines(r: Extract<ReloadResult, { ok: true }>): string {
  const lines: string[] = [];
  for (const [what, c] of Object.entries(r.changes)) {
    if (Array.isArray(c)) {
      for (const w of c) lines.push(`  warning: ${String(w)}`);
      continue;
    }
    for (const [kind, names] of Object.entries(c as Record<string, string[]>))
      if (names.length) lines.push(`  ${what} ${kind}: ${names.join(", ")}`);
  }
  return lines.length ? `${lines.join("\n")}\n` : "  nothing changed\n";
}

function drainAction(drained: boolean) {
  return async (pool: string, id: string, opts: ClientOptions & JsonOption) => {
    const path = `/admin/pools/${encodeURIComponent(pool)}/upstreams/${encodeURIComponent(id)}/${drained ? "drain" : "enable"}`;
    const a = await adminRequest("POST", path, opts);
    if (a.status !== 200) return fail(`${a.url} answered ${a.status}: ${answerMessage(a)}`);
    process.stdout.write(opts.json ? `${a.text}\n` : `${drained ? "drained" : "enabled"}: ${pool} ${id}\n`);
  };
}

/** Adds status, reload, drain and enable to the program. */
export function registerAdminCommands(program: Command): void {
  clientOptions(
    program
      .command("status")
      .description("show a running gateway's pools, upstreams, health and breakers")
      .option("--json", "print the raw JSON"),
  ).action(guarded(status));

  clientOptions(
    program
      .command("reload")
      .description("reload a running gateway's config (POST /admin/reload, or SIGHUP with --pid-file)")
      .option("--pid-file <file>", "send SIGHUP to the pid in this file (see start --pid-file) instead")
      .option("--json", "print the raw JSON answer"),
  ).action(guarded(reload));

  clientOptions(
    program
      .command("drain")
      .description("send no new requests to an upstream; requests in flight finish")
      .argument("<pool>", "pool name")
      .argument("<id>", "upstream id (as `gateway status` shows it)")
      .option("--json", "print the raw JSON answer"),
  ).action(guarded(drainAction(true)));

  clientOptions(
    program
      .command("enable")
      .description("undo a drain")
      .argument("<pool>", "pool name")
      .argument("<id>", "upstream id (as `gateway status` shows it)")
      .option("--json", "print the raw JSON answer"),
  ).action(guarded(drainAction(false)));
}
