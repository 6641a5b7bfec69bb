// Types for the part of autocannon 9's programmatic API the benches use (the package ships no types).
declare module "autocannon" {
  import type { EventEmitter } from "node:events";

  export interface Options {
    url: string;
    connections?: number;
    /** Stop after this many requests instead of after a duration. */
    amount?: number;
    pipelining?: number;
    timeout?: number;
    workers?: number;
    headers?: Record<string, string>;
    /** Per-request hooks; `setupRequest` may return the request with other headers (a fresh token each time). */
    requests?: {
      setupRequest?: (req: { headers?: Record<string, string> }) => { headers?: Record<string, string> };
    }[];
  }

  export interface Histogram {
    average: number;
    mean: number;
    stddev: number;
    min: number;
    max: number;
    p50: number;
    p90: number;
    p99: number;
    totalCount?: number;
  }

  export interface Result {
    /** Seconds, rounded to 10 ms. */
    duration: number;
    errors: number;
    timeouts: number;
    non2xx: number;
    resets: number;
    "2xx": number;
    latency: Histogram & { totalCount: number };
    requests: Histogram & { total: number; sent: number };
  }

  /**
   * Without a callback it returns an emitter that is also a promise of the aggregated result. It emits
   * `response` per answer; the promise itself settles only on the next 1 s sample tick after the last one.
   */
  export interface Instance extends EventEmitter, PromiseLike<Result> {}

  function autocannon(options: Options): Instance;
  export default autocannon;
}
