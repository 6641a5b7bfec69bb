// Sample analysis service (pool analysis): summary statistics of the numbers given as ?values=1,2,3.
import { options, serve } from "./lib.js";

const { port, name, host } = options({ port: 8203, name: "analysis-1" });

serve({
  service: "analysis",
  port,
  name,
  host,
  handle: (_req, url) => {
    const values = (url.searchParams.get("values") ?? "1,2,3,4")
      .split(",")
      .map(Number)
      .filter((n) => Number.isFinite(n));
    const sum = values.reduce((a, b) => a + b, 0);
    return {
      count: values.length,
      sum,
      mean: values.length ? sum / values.length : null,
      min: values.length ? Math.min(...values) : null,
      max: values.length ? Math.max(...values) : null,
    };
  },
});
