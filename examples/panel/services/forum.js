// The panel's forum service (two instances behind a sticky pool): each keeps per-user drafts in its own memory,
// which is why the gateway must keep a user on one instance.
import { options, serve } from "../../services/lib.js";

const { port, name, host } = options({ port: 5002, name: "forum-a" });
const drafts = new Map();
serve({
  service: "forum",
  port,
  name,
  host,
  handle: (req) => {
    const user = String(req.headers["x-auth-subject"] ?? "anonymous");
    const n = (drafts.get(user) ?? 0) + (req.method === "POST" ? 1 : 0);
    drafts.set(user, n);
    return { subject: user, draftsOnThisInstance: n };
  },
});
