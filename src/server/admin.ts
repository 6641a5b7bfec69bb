// The gateway's own endpoints on Express: /healthz, /readyz, /metrics and the key-protected /admin/* API.
import express, { type NextFunction, type Request, type Response } from "express";
import { timingSafeEqual } from "node:crypto";
import type { GatewayMetrics } from "../metrics/metrics.ts";
import { sendError } from "../proxy/errors.ts";
import { requestIdOf } from "../proxy/headers.ts";
import { dashboardHtml } from "./dashboard.ts";
import type { ReloadResult, StatusReport } from "./status.ts";

/** What the admin API needs of the gateway. */
export interface AdminTarget {
  metrics: GatewayMetrics;
  apiKey(): string | undefined;
  readiness(): { ready: boolean; reason?: string; routesWithoutUpstream?: string[] };
  status(): StatusReport;
  reload(trigger: "api"): Promise<ReloadResult>;
  setDrained(pool: string, id: string, drained: boolean): "ok" | "no_pool" | "no_upstream";
}

export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  return address === "::1" || address.startsWith("127.") || address.startsWith("::ffff:127.");
}

function keyMatches(given: string, key: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(key);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The admin auth decision: Bearer or X-API-Key when a key is set; loopback clients only when none is. */
export function authorize(
  remoteAddress: string | undefined,
  key: string | undefined,
  headers: { authorization?: string | undefined; "x-api-key"?: string | string[] | undefined },
): "ok" | "unauthorized" | "forbidden" {
  if (!key) return isLoopback(remoteAddress) ? "ok" : "forbidden";
  const auth = headers.authorization;
  const given = auth?.startsWith("Bearer ") ? auth.slice(7).trim() : headers["x-api-key"];
  return typeof given === "string" && keyMatches(given, key) ? "ok" : "unauthorized";
}

// The status page may also take the key as `?key=`: a browser's address bar cannot send a header, and the page
// passes the key on to its /admin/status polls as X-API-Key.
function adminAuth(target: AdminTarget, keyInQuery = false) {
  return (req: Request, res: Response, next: NextFunction) => {
    const query = keyInQuery && typeof req.query.key === "string" ? req.query.key : undefined;
    const sentHeader = req.headers.authorization !== undefined || req.headers["x-api-key"] !== undefined;
    const headers = query && !sentHeader ? { "x-api-key": query } : req.headers;
    const verdict = authorize(req.socket.remoteAddress, target.apiKey(), headers);
    if (verdict === "ok") return next();
    if (verdict === "unauthorized") res.setHeader("www-authenticate", 'Bearer realm="gateway admin"');
    return sendError(res, verdict, requestIdOf(req));
  };
}

export function createAdminApp(target: AdminTarget): express.Express {
  const app = express();
  app.disable("x-powered-by");
  app.set("etag", false);

  app.get("/healthz", (_req, res) => {
    res.json({ status: "ok" });
  });

  app.get("/readyz", (_req, res) => {
    const r = target.readiness();
    res.status(r.ready ? 200 : 503).json(r);
  });

  app.get("/metrics", async (_req, res) => {
    const registry = target.metrics.registry;
    res.setHeader("content-type", registry.contentType);
    res.end(await target.metrics.text());
  });

  const admin = express.Router();
  admin.get("/", adminAuth(target, true), (_req, res) => {
    res.setHeader("content-type", "text/html; charset=utf-8");
    res.setHeader("cache-control", "no-store");
    res.end(dashboardHtml);
  });
  admin.use(adminAuth(target));
  admin.get("/status", (_req, res) => {
    res.json(target.status());
  });
  admin.post("/reload", async (_req, res) => {
    const result = await target.reload("api");
    res.status(result.ok ? 200 : 400).json(result);
  });
  const drain = (drained: boolean) => (req: Request<{ pool: string; id: string }>, res: Response) => {
    const { pool, id } = req.params;
    const r = target.setDrained(pool, id, drained);
    if (r === "ok") return res.json({ pool, upstream: id, drained });
    return res.status(404).json({
      error: "not_found",
      message: r === "no_pool" ? `No pool named ${pool}.` : `No upstream ${id} in pool ${pool}.`,
      requestId: requestIdOf(req),
    });
  };
  admin.post("/pools/:pool/upstreams/:id/drain", drain(true));
  admin.post("/pools/:pool/upstreams/:id/enable", drain(false));
  app.use("/admin", admin);

  app.use((req: Request, res: Response) => {
    sendError(res, "no_route", requestIdOf(req), {
      message: `No gateway endpoint ${req.method} ${req.path}.`,
    });
  });
  return app;
}

/** Whether a request path belongs to the gateway's own endpoints rather than to the routes. */
export function isGatewayPath(path: string): boolean {
  return (
    path === "/healthz" ||
    path === "/readyz" ||
    path === "/metrics" ||
    path === "/admin" ||
    path.startsWith("/admin/") ||
    path.startsWith("/healthz?") ||
    path.startsWith("/readyz?") ||
    path.startsWith("/metrics?") ||
    path.startsWith("/admin?")
  );
}
