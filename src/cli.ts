// The `gateway` command line (commander): start (the default) and check here, the client commands in src/cli/.
import { Command, Option } from "commander";
import { existsSync, readFileSync } from "node:fs";
import { unlink, writeFile } from "node:fs/promises";
import { registerAdminCommands } from "./cli/admin.ts";
import { envHelp } from "./cli/help.ts";
import { registerPortsCommands } from "./cli/ports.ts";
import { printableConfig } from "./cli/print-config.ts";
import { startPrimary } from "./cluster/primary.ts";
import {
  ConfigError,
  formatIssue,
  loadConfigFile,
  loadConfigFileWithWarnings,
  summarize,
} from "./config/load.ts";
import { createLogger, parseLogLevel, type LogFormat } from "./log/log.ts";
import { Gateway, ListenError } from "./server/gateway.ts";

function configPath(given: string | undefined): string {
  return given ?? process.env.GATEWAY_CONFIG ?? "gateway.yaml";
}

interface StartOptions {
  config?: string;
  logFormat?: LogFormat;
  pidFile?: string;
}

async function start(file: string | undefined, opts: StartOptions): Promise<void> {
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
  const log = createLogger({
    level: parseLogLevel(process.env.GATEWAY_LOG_LEVEL),
    ...(opts.logFormat ? { format: opts.logFormat } : {}),
  });
  try {
    const path = configPath(opts.config ?? file);
    // Read first: `workers` decides the process model. With 1 (the default) it is the single process as ever.
    const config = await loadConfigFile(path, process.env);
    gateway =
      config.workers > 1
        ? await startPrimary({ configPath: path, config, log, watch: true })
        : await Gateway.start({ configPath: path, config, watch: true, log });
  } catch (err) {
    if (err instanceof ConfigError) {
      for (const issue of err.issues) process.stderr.write(`${formatIssue(issue)}\n`);
      process.exit(1);
    }
    if (err instanceof ListenError) {
      log.flush();
      process.stderr.write(`${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  if (opts.pidFile) await writePidFile(opts.pidFile, gateway);
  if (early === "reload") reload();
  else if (early) stop(early);
}

/** Written once the gateway listens, removed when it exits: what `gateway reload --pid-file` signals. */
async function writePidFile(path: string, gw: Gateway): Promise<void> {
  await writeFile(path, `${process.pid}\n`);
  process.once("exit", () => {
    try {
      // Only our own: a second gateway may have taken the file over since.
      if (readFileSync(path, "utf8").trim() === String(process.pid)) void unlink(path).catch(() => undefined);
    } catch {
      // Already gone.
    }
  });
  gw.log.debug("pid_file", { path, pid: process.pid });
}

async function check(file: string | undefined, opts: { config?: string; print?: boolean }): Promise<void> {
  try {
    const { config, warnings } = await loadConfigFileWithWarnings(
      configPath(opts.config ?? file),
      process.env,
    );
    // Warnings go to stderr and do not fail the check: the file is valid, but maybe not what was meant.
    for (const w of warnings) process.stderr.write(`${formatIssue(w)}\n`);
    process.stdout.write(opts.print ? printableConfig(config) : `${summarize(config)}\n`);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    for (const issue of err.issues) process.stdout.write(`${formatIssue(issue)}\n`);
    process.exitCode = 1;
  }
}

function version(): string {
  // package.json sits one level above both src/cli.ts and dist/cli.js.
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
    version: string;
  };
  return pkg.version;
}

/**
 * `gateway` alone runs start, and so does `gateway FILE`. A bare word that is no command and no file is a mistyped
 * command: start must not be the default then, so commander says "unknown command" with its suggestion.
 */
function startIsDefault(first: string | undefined): boolean {
  if (first === undefined || first.startsWith("-")) return true;
  return !/^[a-z][a-z-]*$/i.test(first) || existsSync(first);
}

const program = new Command()
  .name("gateway")
  .description("Reverse-proxy API gateway with built-in failover.")
  .version(version(), "-v, --version", "print the version")
  .showHelpAfterError()
  .showSuggestionAfterError()
  .addHelpText("after", envHelp());

program
  .command("start", { isDefault: startIsDefault(process.argv[2]) })
  .description("run the gateway (the default command)")
  .argument("[file]", "config file, the same as -c")
  .option("-c, --config <file>", "config file (default: $GATEWAY_CONFIG, then ./gateway.yaml)")
  .addOption(
    new Option(
      "--log-format <format>",
      "json, or pretty for people (default: $GATEWAY_LOG_FORMAT, else pretty on a terminal, json otherwise)",
    ).choices(["json", "pretty"]),
  )
  .option(
    "--pid-file <file>",
    "write the gateway's pid here once it listens (for `gateway reload --pid-file`)",
  )
  .addHelpText(
    "after",
    envHelp(["GATEWAY_CONFIG", "GATEWAY_LOG_LEVEL", "GATEWAY_LOG_FORMAT", "GATEWAY_ADMIN_KEY"]),
  )
  .action(start);

program
  .command("check")
  .description("validate a config file and print a summary or every error")
  .argument("[file]", "config file, the same as -c")
  .option("-c, --config <file>", "config file (default: $GATEWAY_CONFIG, then ./gateway.yaml)")
  .option(
    "--print",
    "print the effective config as JSON: defaults filled in, durations in ms, secrets redacted",
  )
  .addHelpText("after", envHelp(["GATEWAY_CONFIG"]))
  .action(check);

registerAdminCommands(program);

registerPortsCommands(program);

await program.parseAsync(process.argv);
