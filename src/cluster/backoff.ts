// When to re-fork a dead worker: 1 s doubling to 30 s, reset by a stable run, and a cap on a crash loop.

export interface BackoffSettings {
  initialMs: number;
  maxMs: number;
  /** A worker that ran this long before dying was not crash-looping: the next restart starts from `initialMs`. */
  stableMs: number;
  /** Consecutive short-lived runs after which the slot is given up (the other workers keep serving). */
  maxCrashes: number;
}

// The same curve as managed upstreams (contract: 1 s doubling to 30 s). Ten quick crashes span about 3 minutes.
export const WORKER_BACKOFF: BackoffSettings = {
  initialMs: 1_000,
  maxMs: 30_000,
  stableMs: 30_000,
  maxCrashes: 10,
};

export class RestartBackoff {
  private crashes = 0;

  constructor(private readonly settings: BackoffSettings = WORKER_BACKOFF) {}

  /** After an exit, the delay before the next fork, or undefined once the crash-loop cap is reached. */
  next(livedMs: number): number | undefined {
    const s = this.settings;
    if (livedMs >= s.stableMs) this.crashes = 0;
    if (this.crashes >= s.maxCrashes) return undefined;
    const delay = Math.min(s.initialMs * 2 ** this.crashes, s.maxMs);
    this.crashes++;
    return delay;
  }
}
