// The registry's HTTP API (/registry/*) on plain node:http: auth, zod validation naming the field, and answers.
import { timingSafeEqual } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { z } from "zod";
import { sendError, type GatewayErrorCode } from "../proxy/errors.ts";
import { requestIdOf } from "../proxy/headers.ts";
import { RegistryError, type Registry } from "../registry/registry.ts";
import { isLoopback } from "./admin.ts";

/**
 * Runs before auth on every registry request: edge policies (`registry.policies`: CORS, rate limits) plug in
 * here. Returns true when it answered the request itself (a preflight, a 429); it may also just set headers.
 */
export type RegistryRequestHook = (
  req: IncomingMessage,
  res: ServerResponse,
  requestId: string,
) => boolean | Promise<boolean>;

export interface RegistryApiDeps {
  registry(): Registry | undefined;
  registryKey(): string | undefined;
  adminKey(): string | undefined;
  hook?(): RegistryRequestHook | undefined;
}

const MAX_BODY = 64 * 1024;

export const SERVICE_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;

// Host names and IPv4/IPv6 literals; nothing that could smuggle a path or a port into the member's url.
const HOST =
  /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|[0-9a-fA-F:.]*:[0-9a-fA-F:.]*)$/;

export const allocateBody = z
  .object({
    service_name: z
      .string({ error: "must be a string" })
      .regex(SERVICE_NAME, "must match ^[a-z0-9][a-z0-9._-]{0,62}$"),
    service_type: z.string({ error: "must be a string" }).min(1, "must not be empty"),
    preferred_port: z
      .number({ error: "must be a number" })
      .int("must be an integer")
      .min(1, "must be 1-65535")
      .max(65535, "must be 1-65535")
      .optional(),
    required: z.boolean({ error: "must be true or false" }).optional(),
    claim: z.boolean({ error: "must be true or false" }).optional(),
    host: z
      .string({ error: "must be a string" })
      .max(253)
      .regex(HOST, "must be an IP address or a host name")
      .optional(),
    health_path: z
      .string({ error: "must be a string" })
      .startsWith("/", "must start with /")
      .max(1024)
      .optional(),
    weight: z
      .number({ error: "must be a number" })
      .int("must be an integer")
      .min(1, "must be at least 1")
      .max(1000, "must be at most 1000")
      .optional(),
    pid: z
      .number({ error: "must be a number" })
      .int("must be an integer")
      .nonnegative("must be 0 or more")
      .optional(),
    metadata: z
      .record(z.string(), z.string({ error: "values must be strings" }).max(1024), {
        error: "must be an object",
      })
      .refine((m) => Object.keys(m).length <= 32, "may hold at most 32 keys")
      .optional(),
  })
  .strict();

const listQuery = z
  .object({
    name: z.string().optional(),
    type: z.string().optional(),
    port: z
      .string()
      .regex(/^\d{1,5}$/, "must be a port number")
      .transform(Number)
      .optional(),
    host: z.string().optional(),
    status: z.enum(["active", "expired"], { error: "must be active or expired" }).optional(),
  })
  .strict();

/** The first zod issue as "field: message": the contract's 400 names the field. */
export function describeIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return "invalid body";
  if (issue.code === "unrecognized_keys") return `${issue.keys[0]}: unknown field`;
  const field = issue.path.join(".") || "body";
  if (issue.code === "invalid_type" && issue.input === undefined) return `${field}: is required`;
  return `${field}: ${issue.message}`;
}

export function isRegistryPath(path: string): boolean {
  return path === "/registry" || path.startsWith("/registry/") || path.startsWith("/registry?");
}

function keyMatches(given: string, key: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(key);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The registry key or the admin key, each when set; with neither set, loopback clients only. */
export function authorizeRegistry(
  remoteAddress: string | undefined,
  keys: (string | undefined)[],
  headers: IncomingMessage["headers"],
): "ok" | "unauthorized" | "forbidden" {
  const set = keys.filter((k): k is string => !!k);
  if (set.length === 0) return isLoopback(remoteAddress) ? "ok" : "forbidden";
  const auth = headers.authorization;
  const given = auth?.startsWith("Bearer ") ? auth.slice(7).trim() : headers["x-api-key"];
  if (typeof given !== "string") return "unauthorized";
  return set.some((k) => keyMatches(given, k)) ? "ok" : "unauthorized";
}

class BadRequest extends Error {}

function readJson(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new BadRequest(`body: larger than ${MAX_BODY} bytes`));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => {
      const text = Buffer.concat(chunks).toString("utf8");
      if (!text.trim()) return resolve({});
      try {
        resolve(JSON.parse(text));
      } catch {
        reject(new BadRequest("body: not valid JSON"));
      }
    });
    req.on("error", reject);
  });
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
    "cache-control": "no-store",
  });
  res.end(text);
}

export function createRegistryApi(
  deps: RegistryApiDeps,
): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const requestId = requestIdOf(req);
    res.setHeader("x-request-id", requestId);
    const fail = (code: GatewayErrorCode, message?: string, headers?: Record<string, string>) =>
      sendError(res, code, requestId, { ...(message ? { message } : {}), ...(headers ? { headers } : {}) });
    void handle(deps, req, res, requestId, fail).catch((err: unknown) => {
      if (err instanceof BadRequest) return fail("bad_request", err.message);
      if (err instanceof RegistryError) {
        return fail(
          err.code,
          err.message,
          err.code === "store_unavailable" ? { "retry-after": "1" } : undefined,
        );
      }
      fail("bad_gateway", `Registry error: ${err instanceof Error ? err.message : String(err)}`);
    });
  };
}

async function handle(
  deps: RegistryApiDeps,
  req: IncomingMessage,
  res: ServerResponse,
  requestId: string,
  fail: (code: GatewayErrorCode, message?: string, headers?: Record<string, string>) => void,
): Promise<void> {
  const hook = deps.hook?.();
  if (hook && (await hook(req, res, requestId))) return;
  const registry = deps.registry();
  const url = new URL(req.url ?? "/", "http://registry");
  if (!registry) return fail("no_route", "The registry is not configured.");
  const verdict = authorizeRegistry(
    req.socket.remoteAddress,
    [deps.registryKey(), deps.adminKey()],
    req.headers,
  );
  if (verdict !== "ok") {
    const message =
      verdict === "unauthorized"
        ? "This endpoint needs the registry or admin API key."
        : "No registry or admin API key is set, so the registry answers loopback clients only.";
    return fail(
      verdict,
      message,
      verdict === "unauthorized" ? { "www-authenticate": 'Bearer realm="gateway registry"' } : undefined,
    );
  }
  const parts = url.pathname.split("/").filter(Boolean).map(decodeURIComponent);
  const method = req.method ?? "GET";
  const write = method === "POST" || method === "DELETE";
  if (write) registry.beginWrite();
  try {
    await route(registry, req, res, parts, method, url, fail);
  } finally {
    if (write) registry.endWrite();
  }
}

async function route(
  registry: Registry,
  req: IncomingMessage,
  res: ServerResponse,
  parts: string[],
  method: string,
  url: URL,
  fail: (code: GatewayErrorCode, message?: string) => void,
): Promise<void> {
  const [, what, id, action] = parts;
  if (what === "allocations") {
    if (parts.length === 2 && method === "POST") {
      const body = allocateBody.safeParse(await readJson(req));
      if (!body.success) {
        registry.refused("allocate");
        return fail("bad_request", describeIssue(body.error));
      }
      const allocation = await registry.allocate(body.data, req.socket.remoteAddress);
      return send(res, 201, { allocation });
    }
    if (parts.length === 2 && method === "GET") {
      const q = listQuery.safeParse(Object.fromEntries(url.searchParams));
      if (!q.success) return fail("bad_request", describeIssue(q.error));
      const filter = Object.fromEntries(
        Object.entries(q.data).filter(([, v]) => v !== undefined && v !== ""),
      );
      return send(res, 200, { allocations: registry.list(filter) });
    }
    if (parts.length === 4 && action === "heartbeat" && method === "POST") {
      return send(res, 200, { allocation: await registry.heartbeat(id!) });
    }
    if (parts.length === 3 && method === "DELETE") {
      return send(res, 200, { allocation: await registry.release(id!) });
    }
  }
  if (what === "services" && method === "GET") {
    if (parts.length === 2) return send(res, 200, { services: registry.services() });
    if (parts.length === 3) {
      const instances = registry.list({ name: id! });
      if (instances.length === 0) return fail("not_found", `No service named ${id}.`);
      return send(res, 200, { service_name: id, instances });
    }
  }
  if (parts.length === 2 && method === "GET") {
    if (what === "types") return send(res, 200, { types: registry.typesView() });
    if (what === "stats") return send(res, 200, registry.stats());
    if (what === "conflicts") return send(res, 200, { conflicts: await registry.conflicts() });
  }
  if (parts.length === 2 && what === "cleanup" && method === "POST") {
    return send(res, 200, { removed: await registry.cleanup() });
  }
  fail("no_route", `No registry endpoint ${method} ${url.pathname}.`);
}
