// Sample chart service (pool chart): returns a tiny data series for the chart named in the path.
import { options, serve } from "./lib.js";

const { port, name, host } = options({ port: 8201, name: "chart-1" });

serve({
  service: "chart",
  port,
  name,
  host,
  handle: (_req, url) => {
    const points = Math.min(Number(url.searchParams.get("points") ?? 5) || 5, 100);
    return {
      chart: url.pathname.slice(1) || "default",
      series: Array.from({ length: points }, (_, i) => ({ x: i, y: (i * 7) % 10 })),
    };
  },
});
