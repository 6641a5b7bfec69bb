// Sample main application (pool main_app): two instances, `--name primary` and `--name backup`.
import { options, serve } from "./lib.js";

const { port, name, host } = options({ port: 8000, name: "primary" });

serve({
  service: "main_app",
  port,
  name,
  host,
  handle: (req, url) => ({
    message: `Hello from the main app's ${name} instance`,
    query: Object.fromEntries(url.searchParams),
    requestId: req.headers["x-request-id"] ?? null,
  }),
});
