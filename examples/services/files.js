// Sample file service (pool files): lists a fixed fake directory, or describes the file named in the path.
import { options, serve } from "./lib.js";

const { port, name, host } = options({ port: 8202, name: "files-1" });

const FILES = [
  { name: "report.pdf", bytes: 182_113 },
  { name: "logo.png", bytes: 8_271 },
  { name: "data.csv", bytes: 44_902 },
];

serve({
  service: "files",
  port,
  name,
  host,
  handle: (_req, url) => {
    const wanted = decodeURIComponent(url.pathname.slice(1));
    if (!wanted) return { files: FILES };
    const file = FILES.find((f) => f.name === wanted);
    return file ? { file } : { status: 404, body: { error: "not_found", file: wanted } };
  },
});
