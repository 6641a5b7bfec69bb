// Sample PDF service (pool pdf_services): four instances, each answering with its variant (`--name`).
import { options, serve } from "./lib.js";

const { port, name, host } = options({ port: 8100, name: "a" });

serve({
  service: "pdf",
  port,
  name,
  host,
  handle: (_req, url) => ({
    variant: name,
    document: url.pathname.replace(/^\/api\/pdf\/?/, "") || null,
    pages: 3,
    renderedBy: `pdf-renderer-${name}`,
  }),
});
