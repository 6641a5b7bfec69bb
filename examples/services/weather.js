// Sample weather service (pool weather): a made-up forecast for the city in the path, e.g. /api/weather/paris.
import { options, serve } from "./lib.js";

const { port, name, host } = options({ port: 8200, name: "weather-1" });

/** A stable fake temperature per city, so repeated calls agree. */
function temperature(city) {
  let h = 0;
  for (const ch of city) h = (h * 31 + ch.charCodeAt(0)) % 1000;
  return Math.round((h / 1000) * 35 - 5);
}

serve({
  service: "weather",
  port,
  name,
  host,
  handle: (_req, url) => {
    const city = decodeURIComponent(url.pathname.slice(1)) || "nowhere";
    const t = temperature(city);
    return { city, temperatureC: t, sky: ["clear", "cloudy", "rain"][((t % 3) + 3) % 3] };
  },
});
