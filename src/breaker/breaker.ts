// One opossum circuit breaker per upstream; the only module that imports opossum.
import { EventEmitter } from "node:events";
import CircuitBreaker from "opossum";
import type { BreakerSettings } from "../config/types.ts";

export type BreakerState = "closed" | "open" | "half_open";
export type Verdict = "success" | "failure" | "ignore";

/** Thrown by `run` when the breaker refused the call: nothing was sent upstream. */
export class BreakerOpenError extends Error {
  readonly code = "GW_BREAKER_OPEN";
  constructor() {
    super("circuit breaker is open");
  }
}

class Counted extends Error {}
class Ignored extends Error {}

/** An attempt the breaker admitted; `settle` takes it back with the verdict. */
export type Admission = object;
const CLOSED_TICKET: Admission = Object.freeze({});
const NO_ARGS: unknown[] = [];

/** A half-open breaker's one trial: opossum's `fire` waits on this promise until the attempt is judged. */
class TrialTicket {
  resolve!: () => void;
  reject!: (err: Error) => void;
  readonly promise = new Promise<void>((resolve, reject) => {
    this.resolve = resolve;
    this.reject = reject;
  });
}

// One bucket-rotation timer per window size for all breakers instead of two intervals per breaker
// (dependencies.md §3: shared rotateBucketController, snapshots off).
const BUCKETS = 10;
const rotators = new Map<number, { emitter: EventEmitter; timer: NodeJS.Timeout; refs: number }>();

function acquireRotator(bucketMs: number): EventEmitter {
  let r = rotators.get(bucketMs);
  if (!r) {
    const emitter = new EventEmitter();
    emitter.setMaxListeners(0);
    const timer = setInterval(() => emitter.emit("rotate"), bucketMs);
    timer.unref();
    r = { emitter, timer, refs: 0 };
    rotators.set(bucketMs, r);
  }
  r.refs++;
  return r.emitter;
}

function releaseRotator(bucketMs: number): void {
  const r = rotators.get(bucketMs);
  if (!r || --r.refs > 0) return;
  clearInterval(r.timer);
  rotators.delete(bucketMs);
}

export interface BreakerChange {
  from: BreakerState;
  to: BreakerState;
  reason: string;
}

/**
 * A circuit breaker guarding one upstream. `run` wraps one attempt; the caller's `judge` says whether its
 * result counts as a failure (connect error, reset, timeout, a listed 5xx), a success, or neither (client abort).
 * Emits `change` (BreakerChange) on every state transition.
 */
export class UpstreamBreaker extends EventEmitter<{ change: [BreakerChange] }> {
  readonly settings: BreakerSettings;
  private readonly cb: CircuitBreaker<[() => Promise<unknown>]>;
  private readonly bucketMs: number;
  private current: BreakerState = "closed";
  private openReason = "";

  constructor(settings: BreakerSettings) {
    super();
    this.settings = settings;
    this.bucketMs = Math.max(10, Math.floor(settings.rollingWindow / BUCKETS));
    this.cb = new CircuitBreaker((attempt: () => Promise<unknown>) => attempt(), {
      // The proxy runs its own connect and response deadlines; an opossum timeout would abort nothing.
      timeout: false,
      errorThresholdPercentage: settings.errorThresholdPercentage,
      volumeThreshold: settings.volumeThreshold,
      resetTimeout: settings.resetTimeout,
      rollingCountTimeout: this.bucketMs * BUCKETS,
      rollingCountBuckets: BUCKETS,
      // With percentiles on, every failure sorts the whole window: ~9 ms of blocked loop (dependencies.md §3).
      rollingPercentilesEnabled: false,
      enableSnapshots: false,
      rotateBucketController: acquireRotator(this.bucketMs),
      errorFilter: (err: unknown) => err instanceof Ignored,
    });
    this.cb.on("open", () => {
      const s = this.cb.stats;
      const windowS = Math.round((this.bucketMs * BUCKETS) / 1000);
      this.openReason =
        this.current === "half_open"
          ? "breaker open: trial request failed"
          : `breaker open: ${s.failures}/${s.fires} failed in ${windowS}s`;
      this.transition("open", this.openReason);
    });
    this.cb.on("halfOpen", () =>
      this.transition("half_open", "reset timeout elapsed, one trial request allowed"),
    );
    this.cb.on("close", () => this.transition("closed", "trial request succeeded"));
  }

  private transition(to: BreakerState, reason: string): void {
    if (to === this.current) return;
    const from = this.current;
    this.current = to;
    this.emit("change", { from, to, reason });
  }

  state(): BreakerState {
    return this.current;
  }

  /** False while open, and while half-open once the single trial request is under way. */
  allowsRequest(): boolean {
    return this.cb.closed || (this.cb.halfOpen && this.cb.pendingClose);
  }

  /** Why the breaker keeps the upstream out, or "" when it does not. */
  reason(): string {
    return this.current === "open" ? this.openReason : "";
  }

  /**
   * Admits one attempt, callback style (the HTTP path): undefined when the breaker refuses it (open, or half-open
   * with its trial already under way), else a ticket to hand back to `settle` with the attempt's verdict.
   *
   * While closed, the attempt runs outside opossum's `fire` (a promise chain of about six promises per call) and
   * `settle` reports it by the same two events `fire` would emit, which are what opossum's rolling window counts;
   * a failure still goes through a real `fire`, so opossum itself decides whether the breaker opens. A half-open
   * trial always runs through `fire`, whose pending-close flag is what lets only one trial through.
   */
  admit(): Admission | undefined {
    if (this.cb.closed) return CLOSED_TICKET;
    if (!this.cb.halfOpen || !this.cb.pendingClose) return undefined;
    const trial = new TrialTicket();
    this.cb.fire(() => trial.promise).catch(() => undefined);
    return trial;
  }

  /** Reports how an admitted attempt ended. */
  settle(ticket: Admission, verdict: Verdict): void {
    if (ticket instanceof TrialTicket) {
      // A trial that proved nothing (the client left) keeps the upstream out: only a real success closes it.
      if (verdict === "success") ticket.resolve();
      else ticket.reject(new Counted());
      return;
    }
    if (verdict === "failure") {
      this.cb.fire(() => Promise.reject(new Counted())).catch(() => undefined);
      return;
    }
    // What `fire` emits for a success (an ignored outcome counts as one, as opossum's errorFilter does).
    this.cb.emit("fire", NO_ARGS);
    this.cb.emit("success", undefined, 0);
  }

  /** Runs one attempt through the breaker. Resolves with the attempt's result whatever the verdict. */
  run<T>(attempt: () => Promise<T>, judge: (result: T) => Verdict): Promise<T> {
    let result: { value: T } | undefined;
    const trial = this.cb.halfOpen;
    // Plain promise chains rather than two async functions: one fewer promise and await per attempt, on the path
    // of every proxied request.
    const judged = () =>
      attempt().then((value) => {
        result = { value };
        const verdict = judge(value);
        // opossum has no neutral outcome: an ignored result counts as a success, which would close a half-open
        // breaker on a trial the client abandoned. A trial that proved nothing keeps the upstream out instead.
        if (verdict === "failure" || (verdict === "ignore" && trial)) throw new Counted();
        if (verdict === "ignore") throw new Ignored();
        return value;
      });
    return this.cb.fire(judged).then(
      () => result!.value,
      (err: unknown) => {
        if (result) return result.value;
        if (CircuitBreaker.isOurError(err as Error)) throw new BreakerOpenError();
        throw err;
      },
    );
  }

  /** Releases the shared rotation listener and the reset timer; call when the upstream leaves the config. */
  shutdown(): void {
    if (this.cb.isShutdown) return;
    this.cb.shutdown();
    releaseRotator(this.bucketMs);
    this.removeAllListeners();
  }
}
