// The environment variables the commands read, as the lines their --help texts end with.

const VARS: Record<string, string> = {
  GATEWAY_CONFIG: "config file when none is given (default ./gateway.yaml)",
  GATEWAY_LOG_LEVEL: "error | warn | info (default) | debug",
  GATEWAY_LOG_FORMAT: "json | pretty (default: pretty on a terminal, json otherwise)",
  GATEWAY_ADMIN_KEY: "admin API key: the gateway's when the file sets none; the client commands send it",
  GATEWAY_REGISTRY_KEY: "the registry API's key (ports commands send it before GATEWAY_ADMIN_KEY)",
  GATEWAY_URL: `the admin base URL the client commands use (default http://127.0.0.1:8002)`,
};

/** "Environment:" and one line per variable, for `addHelpText("after", ...)`. */
export function envHelp(names: string[] = Object.keys(VARS)): string {
  const width = Math.max(...names.map((n) => n.length));
  return `\nEnvironment:\n${names.map((n) => `  ${n.padEnd(width)}  ${VARS[n] ?? ""}`).join("\n")}\n`;
}
