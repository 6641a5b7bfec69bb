// The `gateway` command line (commander): start (the default), check and status.
import { Command } from "commander";
import { registerPortsCommands } from "./cli/ports.ts";
import { startPrimary } from "./cluster/primary.ts";
import {
  ConfigError,
  formatIssue,
  loadConfigFile,
  loadConfigFileWithWarnings,
  summarize,
} from "./config/load.ts";
import { createLogger } from "./log/log.ts";
import { Gateway } from "./server/gateway.ts";
import { formatStatusTable } from "./server/status-table.ts";
import type { StatusReport } from "./server/status.ts";

function configPath(given: string | undefined): string {
  return given ?? process.env.GATEWAY_CONFIG ?? "gateway.yaml";
}

async function start(file: string | undefined, opts: { config?: string }): Promise<void> {
  // Handlers go in before the (slow) start, so a signal that arrives meanwhile is not the default: for SIGHUP,
  // that would kill the process. What arrives early is done once the gateway runs.
  let gateway: Gateway | undefined;
  let early: "reload" | NodeJS.Signals | undefined;
  let firstSignalAt = 0;
  const stop = (signal: NodeJS.Signals) => {
    if (!gateway) return void (early = signal);
    const gw = gateway;
    // Ctrl-C on `npm start` delivers SIGINT twice (the terminal's to the group, then npm's forward): only a
    // second signal that comes later is an operator asking to skip the drain.
    if (firstSignalAt && Date.now() - firstSignalAt < 1_000) return;
    if (firstSignalAt) {
      gw.log.warn("shutdown_forced", { signal });
      gw.log.flush();
      process.exit(1);
    }
    firstSignalAt = Date.now();
    gw.log.info("signal", { signal });
    void gw.stop().then(() => {
      gw.log.flush();
      process.exit(0);
    });
  };
  const reload = () => {
    if (!gateway) return void (early ??= "reload");
    void gateway.reload("signal");
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGHUP", reload);
  try {
    const path = configPath(opts.config ?? file);
    // Read first: `workers` decides the process model. With 1 (the default) it is the single process as ever.
    const config = await loadConfigFile(path, process.env);
    gateway =
      config.workers > 1
        ? await startPrimary({ configPath: path, config, log: createLogger(), watch: true })
        : await Gateway.start({ configPath: path, config, watch: true });
  } catch (err) {
    if (err instanceof ConfigError) {
      for (const issue of err.issues) process.stderr.write(`${formatIssue(issue)}\n`);
      process.exit(1);
    }
    throw err;
  }
  if (early === "reload") reload();
  else if (early) stop(early);
}

async function check(file: string | undefined, opts: { config?: string }): Promise<void> {
  try {
    const { config, warnings } = await loadConfigFileWithWarnings(
      configPath(opts.config ?? file),
      process.env,
    );
    // Warnings go to stderr and do not fail the check: the file is valid, but maybe not what was meant.
    for (const w of warnings) process.stderr.write(`${formatIssue(w)}\n`);
    process.stdout.write(`${summarize(config)}\n`);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    for (const issue of err.issues) process.stdout.write(`${formatIssue(issue)}\n`);
    process.exitCode = 1;
  }
}

async function status(opts: { url: string; json?: boolean; key?: string }): Promise<void> {
  const headers: Record<string, string> = {};
  if (opts.key) headers["x-api-key"] = opts.key;
  const url = `${opts.url.replace(/\/+$/, "")}/admin/status`;
  let res: Response;
  try {
    res = await fetch(url, { headers });
  } catch (err) {
    process.stderr.write(`cannot reach ${url}: ${(err as Error).message}\n`);
    process.exitCode = 1;
    return;
  }
  const text = await res.text();
  if (!res.ok) {
    process.stderr.write(`${url} answered ${res.status}: ${text}\n`);
    process.exitCode = 1;
    return;
  }
  process.stdout.write(opts.json ? `${text}\n` : formatStatusTable(JSON.parse(text) as StatusReport));
}

const program = new Command()
  .name("gateway")
  .description("Reverse-proxy API gateway with built-in failover.")
  .showHelpAfterError();

program
  .command("start", { isDefault: true })
  .description("run the gateway")
  .argument("[file]", "config file, the same as -c")
  .option("-c, --config <file>", "config file (default: $GATEWAY_CONFIG, then ./gateway.yaml)")
  .action(start);

program
  .command("check")
  .description("validate a config file and print a summary or every error")
  .argument("[file]", "config file, the same as -c")
  .option("-c, --config <file>", "config file (default: $GATEWAY_CONFIG, then ./gateway.yaml)")
  .action(check);

program
  .command("status")
  .description("show a running gateway's pools, upstreams, health and breakers")
  .option("--url <url>", "the gateway's admin base URL", "http://127.0.0.1:8002")
  .option("--json", "print the raw JSON")
  .option("--key <key>", "admin API key (default: $GATEWAY_ADMIN_KEY)", process.env.GATEWAY_ADMIN_KEY)
  .action(status);

registerPortsCommands(program);

await program.parseAsync(process.argv);
