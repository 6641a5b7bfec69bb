// Router lookup benchmark: ns/op of match() with 10 vs 10,000 routes, to show lookup cost ignores route count.
import { performance } from "node:perf_hooks";
import type { RouteConfig } from "../src/config/types.ts";
import { Router } from "../src/router/router.ts";

const N = 1_000_000;
const PATHS = 256;

// A fixed-seed PRNG (mulberry32) so every run measures the same routes and paths.
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS = [
  "api",
  "v1",
  "v2",
  "users",
  "orders",
  "pdf",
  "render",
  "weather",
  "shop",
  "cart",
  "items",
  "img",
];

function segment(rand: () => number): string {
  return WORDS[Math.floor(rand() * WORDS.length)]! + Math.floor(rand() * 1000).toString(36);
}

function buildRoutes(count: number, rand: () => number): RouteConfig[] {
  const prefixes = new Set<string>();
  while (prefixes.size < count - 1) {
    const depth = 1 + Math.floor(rand() * 4);
    let p = "";
    for (let d = 0; d < depth; d++) p += "/" + segment(rand);
    if (rand() < 0.5) p += "/";
    prefixes.add(p);
  }
  const routes = [...prefixes].map((prefix, i) => ({
    id: prefix,
    prefix,
    pool: `pool${i}`,
    stripPrefix: i % 3 === 0,
  }));
  routes.push({ id: "/", prefix: "/", pool: "main", stripPrefix: false });
  return routes;
}

/** Same shape for both routers: 3/4 below a configured prefix (1-3 extra segments), 1/4 falling through to `/`. */
function buildPaths(routes: RouteConfig[], rand: () => number): string[] {
  const paths: string[] = [];
  for (let i = 0; i < PATHS; i++) {
    const extra = 1 + Math.floor(rand() * 3);
    let tail = "";
    for (let d = 0; d < extra; d++) tail += "/" + segment(rand);
    if (i % 4 === 3) {
      paths.push("/unrouted" + tail);
    } else {
      const prefix = routes[Math.floor(rand() * (routes.length - 1))]!.prefix;
      paths.push((prefix.endsWith("/") ? prefix.slice(0, -1) : prefix) + tail);
    }
  }
  return paths;
}

function run(router: Router, paths: string[], iterations: number): { ns: number; hits: number } {
  let hits = 0;
  const mask = PATHS - 1;
  const t0 = performance.now();
  for (let i = 0; i < iterations; i++) {
    const m = router.match(undefined, paths[i & mask]!);
    // Using the result keeps the JIT from dropping the call.
    if (m !== undefined) hits += m.upstreamPath.length;
  }
  return { ns: ((performance.now() - t0) * 1e6) / iterations, hits };
}

function setup(count: number): { router: Router; paths: string[] } {
  const rand = prng(count);
  const routes = buildRoutes(count, rand);
  return { router: new Router(routes), paths: buildPaths(routes, rand) };
}

const small = setup(10);
const large = setup(10_000);

// Warm up both so neither measurement pays for compilation; alternate rounds and keep the best of each.
run(small.router, small.paths, N);
run(large.router, large.paths, N);
let bestSmall = Infinity;
let bestLarge = Infinity;
let sink = 0;
for (let round = 0; round < 5; round++) {
  const s = run(small.router, small.paths, N);
  const l = run(large.router, large.paths, N);
  bestSmall = Math.min(bestSmall, s.ns);
  bestLarge = Math.min(bestLarge, l.ns);
  sink += s.hits + l.hits;
}

console.log(`router match, N=${N.toLocaleString("en")} calls over ${PATHS} paths (best of 5 rounds)`);
console.log(`     10 routes: ${bestSmall.toFixed(1)} ns/op`);
console.log(` 10,000 routes: ${bestLarge.toFixed(1)} ns/op`);
console.log(`ratio 10k/10: ${(bestLarge / bestSmall).toFixed(2)}${sink === 0 ? " (no matches?)" : ""}`);
