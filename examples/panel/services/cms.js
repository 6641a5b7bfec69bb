// The panel's CMS service: pages, answered with who asked.
import { options, serve } from "../../services/lib.js";

const { port, name, host } = options({ port: 5003, name: "cms" });
serve({
  service: "cms",
  port,
  name,
  host,
  handle: (req) => ({ subject: req.headers["x-auth-subject"] ?? null, pages: ["home", "about", "faq"] }),
});
