// `gateway check --print`: the effective config (every default filled in, durations in ms, sizes in bytes) as
// JSON, with secrets redacted, like `nginx -T` or `caddy adapt`.
import type { GatewayConfig } from "../config/types.ts";

const SECRET_NAME = /key|secret|password|passwd|token|credential/i;
export const REDACTED = "<redacted>";

/** A copy of `value` with every secret-named string field, and the password of any URL, replaced. */
export function redact(value: unknown, name = ""): unknown {
  if (typeof value === "string") {
    if (value !== "" && SECRET_NAME.test(name)) return REDACTED;
    // redis://user:password@host: keep the user and the host, drop the password.
    return value.replace(/^([a-z][a-z0-9+.-]*:\/\/[^/:@\s]*):[^@/\s]+@/i, `$1:${REDACTED}@`);
  }
  if (Array.isArray(value)) return value.map((v) => redact(v, name));
  if (value instanceof Date) return value.toISOString();
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = redact(v, k);
    return out;
  }
  return value;
}

/** The text `check --print` writes: the resolved config as JSON (2-space indent), secrets redacted. */
export function printableConfig(config: GatewayConfig): string {
  const { source, ...rest } = config;
  // The named policies are a Map in memory; JSON shows them as the object gateway.yaml wrote.
  const shown = {
    source: { path: source.path, sha256: source.hash },
    ...rest,
    policies: Object.fromEntries(config.policies),
  };
  return `${JSON.stringify(redact(shown), null, 2)}\n`;
}
