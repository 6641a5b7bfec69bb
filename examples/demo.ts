// `npm run demo`: runs the gateway on the bundled gateway.yaml (which starts every sample service), prints what to
// try once all upstreams are healthy, and shows the gateway's log events in short form (`--raw` for the JSON lines).
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

interface StatusUpstream {
  id: string;
  health: string;
  managed: { pid: number | null } | null;
}
interface Status {
  pools: { name: string; upstreams: StatusUpstream[] }[];
}
type Line = Record<string, unknown> & { msg?: string };

const root = fileURLToPath(new URL("..", import.meta.url));
const raw = process.argv.includes("--raw");
const key = process.env.GATEWAY_ADMIN_KEY ?? "";
const adminHeaders: Record<string, string> = key ? { "x-api-key": key } : {};
const keyFlag = key ? ' -H "X-API-Key: $GATEWAY_ADMIN_KEY"' : "";

// From source through tsx, like the demo itself, so it always runs the code in this checkout.
const gateway = spawn(process.execPath, ["--import", "tsx", "src/cli.ts", "start", "-c", "gateway.yaml"], {
  cwd: root,
  stdio: ["ignore", "pipe", "inherit"],
});

let base = "";
let guidePrinted = false;

const str = (v: unknown): string => (typeof v === "string" ? v : JSON.stringify(v));

/** One short line per interesting event; null for the ones left out (sample services' routine output). */
function short(l: Line): string | null {
  const f = (k: string) => str(l[k]);
  const t = new Date().toTimeString().slice(0, 8);
  switch (l.msg) {
    case "request":
      return `${t}  ${f("method")} ${f("path")} -> ${f("status")}  ${f("pool")}/${f("upstream")}  ${f("durationMs")} ms`;
    case "managed_output":
      return l.stream === "stderr" ? `${t}  [${f("pool")}/${f("upstream")}] ${f("line")}` : null;
    case "managed_start":
      return `${t}  started ${f("pool")}/${f("upstream")}: pid ${f("pid")}  (${f("command")})`;
    case "managed_exit":
      return `${t}  exited ${f("pool")}/${f("upstream")}: code ${f("code")} signal ${f("signal")}${
        l.reason === "stopped"
          ? " (stopped)"
          : l.restarting
            ? `, restarting in ${f("restartInMs")} ms`
            : `, not restarting (${f("reason")})`
      }`;
    case "health_change":
      return `${t}  health ${f("pool")}/${f("upstream")}: ${f("from")} -> ${f("to")} (${f("reason")})`;
    case "failover":
      return `${t}  FAILOVER ${f("pool")}: ${f("from")} -> ${f("to")} (${f("reason")})`;
    case "breaker_change":
      return `${t}  breaker ${f("pool")}/${f("upstream")}: ${f("from")} -> ${f("to")}`;
    case "config_reload":
      return `${t}  config reloaded (${f("trigger")}): ${f("changes")}`;
    case "config_error":
      return `${t}  config rejected (${f("trigger")}):\n    ${(Array.isArray(l.errors) ? l.errors.map(str) : []).join("\n    ")}`;
    case "gateway_started":
    case "ready":
    case "signal":
    case "shutdown_started":
    case "shutdown_complete":
      return `${t}  ${l.msg} ${JSON.stringify(Object.fromEntries(Object.entries(l).filter(([k]) => !["level", "time", "msg"].includes(k))))}`;
    default:
      return l.level === "error" || l.level === "warn" ? `${t}  ${JSON.stringify(l)}` : null;
  }
}

createInterface({ input: gateway.stdout }).on("line", (text) => {
  let l: Line;
  try {
    l = JSON.parse(text) as Line;
  } catch {
    process.stdout.write(`${text}\n`);
    return;
  }
  if (raw) process.stdout.write(`${text}\n`);
  else {
    const s = short(l);
    if (s !== null) process.stdout.write(`${s}\n`);
  }
  if (l.msg === "gateway_started" && typeof l.listen === "string") {
    base = `http://127.0.0.1:${l.listen.split(":").at(-1) ?? "8002"}`;
    void waitAllHealthy();
  }
});

async function status(): Promise<Status | undefined> {
  try {
    const res = await fetch(`${base}/admin/status`, { headers: adminHeaders });
    return res.ok ? ((await res.json()) as Status) : undefined;
  } catch {
    return undefined;
  }
}

// The services take a moment to boot and need two passing checks (5 s apart) to count as healthy.
async function waitAllHealthy(): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!guidePrinted && Date.now() < deadline && gateway.exitCode === null) {
    const s = await status();
    const ups = s?.pools.flatMap((p) => p.upstreams) ?? [];
    if (s && ups.length > 0 && ups.every((u) => u.health === "healthy")) return printGuide(s);
    await new Promise((r) => setTimeout(r, 500));
  }
  if (!guidePrinted && gateway.exitCode === null) {
    process.stdout.write("\nSome upstreams are still not healthy; see the log above.\n");
    const s = await status();
    if (s) printGuide(s);
  }
}

/** Commands with their comments lined up. */
function block(rows: [string, string][]): string {
  const width = Math.max(...rows.map(([cmd]) => cmd.length)) + 2;
  return rows.map(([cmd, note]) => `  ${note ? `${cmd.padEnd(width)}# ${note}` : cmd}`).join("\n");
}

function printGuide(s: Status): void {
  guidePrinted = true;
  const main = s.pools.find((p) => p.name === "main_app");
  const pid = main?.upstreams.find((u) => u.id === "127.0.0.1:8000")?.managed?.pid ?? "PID";
  const b = base.replace("http://", "");
  process.stdout.write(`
================================================================================
The gateway is up on ${base}, with the 10 sample services of gateway.yaml behind it.

Try:
${block([
  [`curl -s ${b}/hello`, 'main_app: "instance":"primary"'],
  [`curl -s ${b}/api/pdf/report`, "pdf_services: variant a (weight 2), b, c in turn"],
  [`curl -s ${b}/api/weather/paris`, "stripPrefix: the service sees /paris"],
  [`curl -s "${b}/api/chart/sales?points=3"`, ""],
  [`curl -s ${b}/api/files/report.pdf`, ""],
  [`curl -s "${b}/api/analysis/?values=3,1,4,1,5"`, ""],
  [`curl -s --path-as-is ${b}/../etc/passwd`, "the gateway's own 400 error body"],
  [`curl -s${keyFlag} ${b}/admin/status`, "JSON status: pids, restarts, health"],
  [`open ${base}/admin/`, "the dashboard"],
  ["npx gateway status", "the same as a table"],
])}

Failover: the main app's primary runs as pid ${pid}.
${block([
  [`kill ${pid}`, "it exits 0, and restart: on-failure leaves it down"],
  [`curl -s ${b}/hello`, 'still 200: the retry went to "instance":"backup"'],
  ["", 'the refused connection takes it out at once: "FAILOVER main_app: primary -> backup" below'],
  [
    `curl -s${keyFlag} -X POST ${b}/admin/reload`,
    "a reload starts it again; 2 passing checks bring traffic back",
  ],
  ["kill -9 <pid>", "a crash instead: restarted after 1 s (backoff doubles up to 30 s)"],
])}

Edit gateway.yaml (weights, routes) and save: the gateway reloads it by itself.
Ctrl-C stops the gateway and every sample service.
================================================================================
`);
}

// Ctrl-C in a terminal reaches the gateway too (same process group) and it drains by itself; a second signal
// would force it, so the demo only passes on a SIGTERM meant for it alone.
process.on("SIGINT", () => undefined);
process.on("SIGTERM", () => gateway.kill("SIGTERM"));
gateway.on("exit", (code, signal) => {
  process.exitCode = code ?? (signal ? 1 : 0);
});
