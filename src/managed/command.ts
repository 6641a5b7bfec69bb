// Turns a `run.command` string into argv the way a shell would split it (quotes, escapes, $VARS), without a shell.
import { parse } from "shell-quote";

export class CommandError extends Error {
  override name = "CommandError";
}

/**
 * Splits `command` into argv with shell-quote (quotes, backslashes, `$VAR`/`${VAR}` from `env`, `#` comments), so
 * no shell sits between the gateway and the process: signals reach the process itself. Pipes, redirections, `&&`
 * and the like need a shell, so they are refused with a hint instead of being passed on as literal arguments.
 */
export function parseCommand(command: string, env: Readonly<Record<string, string | undefined>>): string[] {
  const argv: string[] = [];
  for (const entry of parse(command, env)) {
    if (typeof entry === "string") argv.push(entry);
    else if ("comment" in entry) break;
    // Without a shell there is no globbing: `*.js` reaches the program as written, as it would in exec form.
    else if (entry.op === "glob") argv.push(entry.pattern);
    else
      throw new CommandError(
        `the shell operator "${entry.op}" needs a shell: write command: sh -c '...' (or move it into a script)`,
      );
  }
  if (argv.length === 0 || argv[0] === "") throw new CommandError("command names no program");
  return argv;
}
