// The panel's admin service: only ever reached with a verified token (the gateway checks it), never a spoofed subject.
import { options, serve } from "../../services/lib.js";

const { port, name, host } = options({ port: 5004, name: "admin" });
serve({
  service: "admin",
  port,
  name,
  host,
  handle: (req) => ({ subject: req.headers["x-auth-subject"] ?? null, users: 2, role: "admin" }),
});
