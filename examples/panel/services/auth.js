// The panel's auth service: POST /api/v2/auth/login checks a demo user and issues a short-lived HS256 JWT; the
// other paths (behind the gateway's JWT check) say who the gateway authenticated.
import { Buffer } from "node:buffer";
import { createHmac } from "node:crypto";
import http from "node:http";
import process from "node:process";
import { options, sendJson } from "../../services/lib.js";

const { port, host } = options({ port: 5001, name: "auth" });
// The same secret the gateway verifies with (gateway.yaml passes it to this process).
const secret = process.env.PANEL_JWT_SECRET ?? "panel-demo-secret-change-me-0123456789";
const USERS = { alice: "wonderland", bob: "builder" };
const b64 = (v) => Buffer.from(JSON.stringify(v)).toString("base64url");

function issue(user) {
  const now = Math.floor(Date.now() / 1000);
  const payload = { sub: user, iss: "panel-auth", aud: "panel", iat: now, exp: now + 15 * 60 };
  const input = `${b64({ alg: "HS256", typ: "JWT" })}.${b64(payload)}`;
  return {
    token: `${input}.${createHmac("sha256", secret).update(input).digest("base64url")}`,
    expiresIn: 900,
  };
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const path = (req.url ?? "/").split("?")[0];
    if (path === "/health") return sendJson(res, 200, { status: "ok", service: "auth" });
    if (path === "/api/v2/auth/login" && req.method === "POST") {
      let body;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString() || "{}");
      } catch {
        return sendJson(res, 400, { error: "bad_request", message: "The body must be JSON." });
      }
      if (typeof body.user !== "string" || USERS[body.user] !== body.password) {
        return sendJson(res, 401, { error: "unauthorized", message: "Unknown user or wrong password." });
      }
      return sendJson(res, 200, issue(body.user));
    }
    sendJson(res, 200, { service: "auth", path, subject: req.headers["x-auth-subject"] ?? null });
  });
});
server.listen(port, host, () => process.stdout.write(`auth listening on http://${host}:${port}\n`));
const stop = () => server.close(() => process.exit(0));
process.once("SIGTERM", stop);
process.once("SIGINT", stop);
