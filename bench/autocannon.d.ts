// Types for the part of autocannon 9's programmatic API the benches use (the package ships no types).
declare module "autocannon" {
  export interface Options {
    url: string;
    connections?: number;
    /** Stop after this many requests instead of after a duration. */
    amount?: number;
    pipelining?: number;
    timeout?: number;
    workers?: number;
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

  /** Without a callback it returns a promise of the aggregated result. */
  function autocannon(options: Options): Promise<Result>;
  export default autocannon;
}
