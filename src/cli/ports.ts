// The `gateway ports ...` command group: the registry API from the command line, and `ports run`, which holds a
// lease for any program.
import { Command, InvalidArgumentError } from "commander";
import {
  formatAllocation,
  formatAllocations,
  formatStats,
  formatTypes,
  parsePort,
  resolveTarget,
} from "./ports-format.ts";
import { runWithPort } from "./ports-run.ts";
import { RegistryClient, RegistryError, type AllocateRequest } from "./registry-client.ts";

interface Common {
  json?: boolean;
  url?: string;
  key?: string;
}

interface AllocateOpts extends Common {
  preferredPort?: number;
  required?: boolean;
  claim?: boolean;
  host?: string;
  healthPath?: string;
  weight?: number;
}

function portArg(text: string): number {
  try {
    return parsePort(text);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

function weightArg(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`"${text}" is not a positive integer`);
  return n;
}

function client(opts: Common, timeoutMs?: number): RegistryClient {
  return new RegistryClient({ ...resolveTarget(opts, process.env), timeoutMs });
}

function out(text: string): void {
  process.stdout.write(text);
}

/** Runs one command's request; a refusal or no answer is its message on stderr and exit code 1. */
async function act(work: () => Promise<void>): Promise<void> {
  try {
    await work();
  } catch (err) {
    if (err instanceof RegistryError)
      process.stderr.write(`error: ${err.message} (${err.code}, ${err.status})\n`);
    else process.stderr.write(`error: ${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}

function allocateRequest(name: string, type: string, o: AllocateOpts): AllocateRequest {
  const req: AllocateRequest = { service_name: name, service_type: type };
  if (o.preferredPort !== undefined) req.preferred_port = o.preferredPort;
  if (o.required) req.required = true;
  if (o.claim) req.claim = true;
  if (o.host !== undefined) req.host = o.host;
  if (o.healthPath !== undefined) req.health_path = o.healthPath;
  if (o.weight !== undefined) req.weight = o.weight;
  return req;
}

/** Adds the options every `ports` command takes. */
function common(cmd: Command): Command {
  return cmd
    .option("--json", "print the registry's JSON answer")
    .option("--url <url>", "the gateway's base URL (default: $GATEWAY_URL, then http://127.0.0.1:8002)")
    .option("--key <key>", "registry key (default: $GATEWAY_REGISTRY_KEY, then $GATEWAY_ADMIN_KEY)");
}

/** Registers `ports` and its subcommands on the program. */
export function registerPortsCommands(program: Command): void {
  const ports = program
    .command("ports")
    .description("the service registry: allocate ports, keep leases, list the directory, run a service");

  common(ports.command("allocate"))
    .description("ask the registry for a port; prints the allocation (id, host, port)")
    .argument("<name>", "service name")
    .argument("<type>", "service type (a range of registry.types)")
    .option("--preferred-port <n>", "the port to get when it is free", portArg)
    .option("--required", "fail (409) rather than take another port than --preferred-port")
    .option("--claim", "the service already listens on the port: skip the bind check")
    .option("--host <host>", "the host the service listens on (default: the address the gateway sees)")
    .option("--health-path <path>", "health-check path (default: the discovering pool's)")
    .option("--weight <n>", "weight in the pools that discover it", weightArg)
    .action((name: string, type: string, o: AllocateOpts) =>
      act(async () => {
        const answer = await client(o).allocate(allocateRequest(name, type, o));
        out(o.json ? `${JSON.stringify(answer)}\n` : formatAllocation(answer.allocation));
      }),
    );

  common(ports.command("heartbeat"))
    .description("renew an allocation's lease")
    .argument("<id>", "allocation id")
    .action((id: string, o: Common) =>
      act(async () => {
        const answer = await client(o).heartbeat(id);
        out(o.json ? `${JSON.stringify(answer)}\n` : formatAllocation(answer.allocation));
      }),
    );

  common(ports.command("release"))
    .description("end an allocation: its port is free at once")
    .argument("<id>", "allocation id")
    .action((id: string, o: Common) =>
      act(async () => {
        const answer = await client(o).release(id);
        out(o.json ? `${JSON.stringify(answer)}\n` : formatAllocation(answer.allocation));
      }),
    );

  common(ports.command("list"))
    .description("the directory: name, type, host, port, status, health, last heartbeat")
    .option("--name <name>", "only this service")
    .option("--type <type>", "only this type")
    .option("--host <host>", "only this host")
    .option("--status <status>", "only active or expired ones")
    .action((o: Common & { name?: string; type?: string; host?: string; status?: string }) =>
      act(async () => {
        const answer = await client(o).list({ name: o.name, type: o.type, host: o.host, status: o.status });
        out(o.json ? `${JSON.stringify(answer)}\n` : formatAllocations(answer.allocations, Date.now()));
      }),
    );

  common(ports.command("service"))
    .description("one service's instances")
    .argument("<name>", "service name")
    .action((name: string, o: Common) =>
      act(async () => {
        const answer = await client(o).service(name);
        out(o.json ? `${JSON.stringify(answer)}\n` : formatAllocations(answer.instances, Date.now()));
      }),
    );

  common(ports.command("port"))
    .description("who holds a port (on every host)")
    .argument("<n>", "port", portArg)
    .action((port: number, o: Common) =>
      act(async () => {
        const answer = await client(o).list({ port });
        out(o.json ? `${JSON.stringify(answer)}\n` : formatAllocations(answer.allocations, Date.now()));
      }),
    );

  common(ports.command("type"))
    .description("all allocations of one type")
    .argument("<type>", "service type")
    .action((type: string, o: Common) =>
      act(async () => {
        const answer = await client(o).list({ type });
        out(o.json ? `${JSON.stringify(answer)}\n` : formatAllocations(answer.allocations, Date.now()));
      }),
    );

  common(ports.command("stats"))
    .description("totals and per-type utilization")
    .action((o: Common) =>
      act(async () => {
        const answer = await client(o).stats();
        out(o.json ? `${JSON.stringify(answer)}\n` : formatStats(answer));
      }),
    );

  common(ports.command("types"))
    .description("the configured ranges and how full they are")
    .action((o: Common) =>
      act(async () => {
        const answer = await client(o).types();
        out(o.json ? `${JSON.stringify(answer)}\n` : formatTypes(answer.types));
      }),
    );

  common(ports.command("cleanup"))
    .description("remove expired allocations now")
    .action((o: Common) =>
      act(async () => {
        const answer = await client(o).cleanup();
        out(o.json ? `${JSON.stringify(answer)}\n` : `removed ${answer.removed} expired allocation(s)\n`);
      }),
    );

  common(ports.command("run"))
    .description(
      "allocate a port, run COMMAND with PORT set, heartbeat while it runs, release when it exits; " +
        "exits with its code (128 + signal number when a signal ended it)",
    )
    .usage("[options] <name> <type> -- <command> [args...]")
    .argument("<name>", "service name")
    .argument("<type>", "service type")
    .argument("<command...>", "the program and its arguments (after --)")
    .option("--preferred-port <n>", "the port to get when it is free", portArg)
    .option("--required", "fail rather than take another port than --preferred-port")
    .option("--host <host>", "the host the service listens on (default: the address the gateway sees)")
    .option("--health-path <path>", "health-check path (default: the discovering pool's)")
    .option("--weight <n>", "weight in the pools that discover it", weightArg)
    .action(async (name: string, type: string, argv: string[], o: AllocateOpts) => {
      let code = 1;
      await act(async () => {
        const request = { ...allocateRequest(name, type, o), pid: process.pid };
        code = await runWithPort({
          client: client(o, 5_000),
          request,
          argv,
          // --json: one JSON object a line, for a log collector (the gateway's own log, when it runs this).
          say: (line) =>
            process.stderr.write(
              o.json
                ? `${JSON.stringify({ time: new Date().toISOString(), msg: line, service: name })}\n`
                : `gateway ports run: ${line}\n`,
            ),
        });
      });
      // Keep-alive sockets of fetch would hold the process a few seconds more; the child is gone, so go now.
      process.exit(code);
    });
}
