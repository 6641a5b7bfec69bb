// How the client commands (status, reload, drain, enable) reach a running gateway's admin API, and how they say
// why they could not: the network cause (`ECONNREFUSED 127.0.0.1:8002`), not fetch's bare "fetch failed".

export const DEFAULT_URL = "http://127.0.0.1:8002";

export interface ClientOptions {
  url?: string;
  key?: string;
}

/** A request that got no usable answer; its message is the one line the CLI prints. */
export class ClientError extends Error {
  override name = "ClientError";
}

/** The admin base URL: --url, then $GATEWAY_URL, then the default; refused when it has no http(s) scheme. */
export function baseUrl(given: string | undefined): string {
  const url = (given ?? process.env.GATEWAY_URL ?? DEFAULT_URL).trim();
  if (!/^https?:\/\//i.test(url))
    throw new ClientError(`URL needs http:// or https:// in front (got "${url}"; try http://${url})`);
  try {
    new URL(url);
  } catch {
    throw new ClientError(`not a valid URL: "${url}"`);
  }
  return url.replace(/\/+$/, "");
}

/** The deepest cause of a fetch failure, as `CODE host:port` when the network said so. */
export function networkCause(err: unknown): string {
  let e: unknown = err;
  while (e instanceof Error && e.cause !== undefined) e = e.cause;
  const n = e as Partial<NodeJS.ErrnoException & { address: string; port: number; errors: unknown[] }>;
  // Happy eyeballs (localhost: ::1 and 127.0.0.1) fails with an AggregateError holding one error per address.
  if (Array.isArray(n.errors) && n.errors.length) return n.errors.map(networkCause).join(", ");
  if (n.code && n.address) return `${n.code} ${n.address}${n.port !== undefined ? `:${n.port}` : ""}`;
  if (n.code) return `${n.code}${n.message ? ` (${n.message})` : ""}`;
  return e instanceof Error ? e.message : String(e);
}

export interface AdminAnswer {
  status: number;
  text: string;
  url: string;
}

/** One request to the admin API with the key as X-API-Key; throws ClientError when nothing answered. */
export async function adminRequest(
  method: "GET" | "POST",
  path: string,
  opts: ClientOptions,
): Promise<AdminAnswer> {
  const url = `${baseUrl(opts.url)}${path}`;
  const headers: Record<string, string> = {};
  if (opts.key) headers["x-api-key"] = opts.key;
  let res: Response;
  try {
    res = await fetch(url, { method, headers, signal: AbortSignal.timeout(10_000) });
  } catch (err) {
    const why =
      err instanceof Error && err.name === "TimeoutError" ? "no answer within 10s" : networkCause(err);
    throw new ClientError(`cannot reach ${url}: ${why}`);
  }
  return { status: res.status, text: await res.text(), url };
}

/** The error body's message when the gateway sent the contract's JSON, else the raw text. */
export function answerMessage(a: AdminAnswer): string {
  try {
    const body = JSON.parse(a.text) as { message?: unknown; errors?: unknown };
    if (Array.isArray(body.errors)) return body.errors.map(String).join("\n");
    if (typeof body.message === "string") return body.message;
  } catch {
    // Not JSON: print it as it came.
  }
  return a.text.trim();
}
