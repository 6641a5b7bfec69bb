// One attempt of a plain HTTP request to one upstream, on node:http directly: one object driven by the request's
// events (no promise, no timer of its own), settled exactly once with how it ended.
import http from "node:http";
import type { Socket } from "node:net";
import { upstreamRequest } from "../net/upstream-http.ts";
import { BodyTooLargeError, type BodyFeed } from "./body.ts";
import type { DeadlineSweep, Expiring } from "./deadlines.ts";
import { clientResponseHeaders, headerBagOf } from "./headers.ts";
import type { HeaderBag } from "./phases.ts";

export type FailureKind = "connect" | "connect_timeout" | "reset" | "response_timeout" | "body_too_large";

/** Why an attempt got no response. `requestSent` is false when not a byte of the request left the gateway. */
export class UpstreamError extends Error {
  constructor(
    readonly kind: FailureKind,
    readonly code: string,
    message: string,
    readonly requestSent: boolean,
  ) {
    super(message);
  }
}

export type AttemptOutcome =
  { kind: "response"; status: number } | { kind: "failed"; error: UpstreamError } | { kind: "aborted" };

export interface AttemptOptions {
  target: URL;
  agent: http.Agent;
  /** Path and query to request upstream. */
  path: string;
  /** The request's headers for the upstream, a flat [name, value, ...] list built once per request. */
  headers: string[];
  /** A body read whole (sent with the head), or the feed of a streamed one (sent once connected). */
  body: Buffer | BodyFeed;
  connectTimeout: number;
  responseTimeout: number;
  requestId: string;
  /** Whether the owner's `responseHead` (the response phase) sees the head before it is written to the client. */
  withHead?: boolean;
  /**
   * Told exactly once how the attempt ended (never from inside the constructor). An object with a method, not a
   * callback, so the exchange that owns the attempt needs no closure per request.
   */
  owner: AttemptOwner;
}

export interface AttemptOwner {
  attemptOver(outcome: AttemptOutcome): void;
  /** The response phase (when `withHead`): may change the response's headers before they are written. */
  responseHead(status: number, headers: HeaderBag): void;
}

export const CONNECT_CODES = new Set([
  "ECONNREFUSED",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EADDRNOTAVAIL",
]);

/**
 * An attempt, from `http.request` to the response's head relayed (or a failure), then the relay of its body. It
 * reports its outcome through a method of its owner, not a promise, and adds nothing to Node's objects. One shared
 * sweep checks its deadlines: connect and response before the head, then the read-idle cut while the body is
 * relayed (no byte for `responseTimeout`, like nginx's proxy_read_timeout), with no timer of its own; the
 * response's `close` cuts the client when the upstream dies mid-body.
 */
export class HttpAttempt implements Expiring {
  settled = false;
  /** The deadline sweep's index of this attempt (deadlines.ts), -1 while not registered. */
  sweepSlot = -1;
  nextDeadline: number;
  private connectAt = Infinity;
  private responseAt: number;
  private connected = false;
  private connectTimedOut = false;
  private responseTimedOut = false;
  private tooLarge = false;
  private written = 0;
  /** While the body is relayed: the upstream socket's bytesRead at the last sign of progress. */
  private relaying = false;
  private lastRead = 0;
  private lastProgress = 0;
  private readonly proxyReq: http.ClientRequest;
  private proxyRes: http.IncomingMessage | undefined;

  constructor(
    private readonly res: http.ServerResponse,
    method: string,
    private readonly options: AttemptOptions,
    private readonly sweep: DeadlineSweep,
  ) {
    this.responseAt = performance.now() + options.responseTimeout;
    this.nextDeadline = this.responseAt;
    const req = upstreamRequest(options.target, method, options.path, options.headers, options.agent);
    this.proxyReq = req;
    // Closures, not module-level listeners finding the attempt through a symbol on Node's objects: a property
    // added to a socket, request or response gives it a map that Node's own requests (health probes) lack, and the
    // http code optimised for one then deoptimises on the other (docs/benchmarks.md, "Fifth pass").
    req.on("socket", (socket: Socket) => this.gotSocket(socket));
    req.on("response", (proxyRes: http.IncomingMessage) => this.gotResponse(proxyRes));
    req.on("error", (err: Error) => this.failed(err));
    const body = options.body;
    if (Buffer.isBuffer(body)) {
      // A kept body replays anyway: it goes with the head, and nothing leaves before the connection is up.
      if (body.length > 0) req.end(body);
      else req.end();
    } else {
      body.stream.once("error", (err) => this.bodyFailed(err));
      body.stream.pipe(req);
    }
    sweep.add(this);
  }

  /** The client went away: an upstream request still running is pointless, whatever stage it is at. */
  clientClosed(): void {
    if (!this.res.writableFinished) this.proxyReq.destroy();
    this.settle({ kind: "aborted" });
  }

  expire(now: number): void {
    if (this.relaying) return this.relayCheck(now);
    if (this.settled) return this.sweep.delete(this);
    if (this.connectAt <= now) {
      this.connectTimedOut = true;
      this.proxyReq.destroy();
      return;
    }
    if (this.responseAt > now) return;
    // The deadline counts from the end of the request: while a large upload is still moving, it waits.
    const socket = this.proxyReq.socket;
    if (!this.proxyReq.writableFinished && socket && socket.bytesWritten > this.written) {
      this.written = socket.bytesWritten;
      this.responseAt = now + this.options.responseTimeout;
      this.nextDeadline = Math.min(this.connectAt, this.responseAt);
      return;
    }
    this.responseTimedOut = true;
    this.proxyReq.destroy();
  }

  /**
   * The read-idle cut: the body relay made no progress for `responseTimeout`. Progress is looked at every eighth
   * of it, so the cut comes between 1 and 1.125 times the timeout (plus a sweep tick) after the last byte.
   */
  private relayCheck(now: number): void {
    const read = this.proxyRes?.socket?.bytesRead ?? this.lastRead;
    const timeout = this.options.responseTimeout;
    if (read > this.lastRead) {
      this.lastRead = read;
      this.lastProgress = now;
    }
    if (now - this.lastProgress < timeout) {
      this.nextDeadline = now + Math.min(timeout - (now - this.lastProgress), timeout / 8);
      return;
    }
    this.relaying = false;
    this.sweep.delete(this);
    this.proxyRes?.destroy();
  }

  private settle(outcome: AttemptOutcome): void {
    if (this.settled) return;
    this.settled = true;
    if (!this.relaying) this.sweep.delete(this);
    this.options.owner.attemptOver(outcome);
  }

  private bodyFailed(err: Error): void {
    if (err instanceof BodyTooLargeError) this.tooLarge = true;
    this.proxyReq.destroy();
    if (this.settled && !this.res.headersSent) this.res.destroy();
  }

  /** Called with the socket the agent gave (new or reused). */
  private gotSocket(socket: Socket): void {
    if (this.settled) {
      this.proxyReq.destroy();
      return;
    }
    this.written = socket.bytesWritten;
    if (socket.connecting) {
      this.connectAt = performance.now() + this.options.connectTimeout;
      this.nextDeadline = Math.min(this.connectAt, this.responseAt);
      socket.once("connect", () => {
        if (!this.settled) this.begin();
      });
    } else this.begin();
  }

  // Nothing of a streamed body is read from the client before the connection is up, so a refused or timed-out
  // connect can be retried for any method.
  begin(): void {
    this.connected = true;
    this.connectAt = Infinity;
    this.nextDeadline = this.responseAt;
    const body = this.options.body;
    if (!Buffer.isBuffer(body)) body.start();
  }

  private gotResponse(proxyRes: http.IncomingMessage): void {
    const res = this.res;
    if (this.settled || res.destroyed) {
      proxyRes.destroy();
      this.settle({ kind: "aborted" });
      return;
    }
    const status = proxyRes.statusCode ?? 502;
    const list = clientResponseHeaders(proxyRes.rawHeaders, this.options.requestId);
    let headers: string[] | HeaderBag = list;
    if (this.options.withHead) {
      headers = headerBagOf(list);
      this.options.owner.responseHead(status, headers);
    }
    if (proxyRes.statusMessage) res.writeHead(status, proxyRes.statusMessage, headers);
    else res.writeHead(status, headers);
    // The sweep keeps the attempt from here on for the read-idle cut; the socket's own timeout stays the agent's,
    // so handing it back to the pool re-arms no timer.
    this.proxyRes = proxyRes;
    this.relaying = true;
    this.lastRead = proxyRes.socket?.bytesRead ?? 0;
    this.lastProgress = performance.now();
    this.nextDeadline = this.lastProgress + this.options.responseTimeout / 8;
    // `on`, not `once` (a wrapper per call): a response ends and closes once.
    proxyRes.on("end", () => this.responseEnded(false));
    // An upstream that dies mid-body must not leave the client waiting for bytes that never come.
    proxyRes.on("close", () => this.responseEnded(true));
    // The body relay, instead of `proxyRes.pipe(res)`: pipe adds and later removes six listeners and their closures
    // on both streams per response: 15,000 instructions per small request, about 5 % of the CPU in the duel
    // (docs/benchmarks.md, "Sixth pass"). Backpressure as pipe does it: pause on a full client buffer, resume on
    // `drain`. A client that leaves is handled by `clientClosed` (the upstream request is cut).
    proxyRes.on("data", (chunk: Buffer) => {
      if (!res.write(chunk)) {
        proxyRes.pause();
        res.once("drain", () => proxyRes.resume());
      }
    });
    this.settle({ kind: "response", status });
  }

  responseEnded(closed: boolean): void {
    if (!closed) this.res.end();
    if (this.relaying) {
      this.relaying = false;
      this.sweep.delete(this);
    }
    // `readableEnded` (its `end` was emitted: every byte went to the client), not `complete`: a response cut while
    // paused (the read-idle cut, a slow client) may have its whole body parsed but not yet relayed.
    if (closed && !this.proxyRes?.readableEnded) this.res.destroy();
  }

  failed(err: NodeJS.ErrnoException): void {
    if (this.settled) return;
    this.settle({ kind: "failed", error: this.classify(err) });
  }

  private classify(err: NodeJS.ErrnoException): UpstreamError {
    const code = err.code ?? "EPROTO";
    const sent = this.connected;
    if (this.tooLarge)
      return new UpstreamError("body_too_large", "GW_BODY_TOO_LARGE", "request body over maxBodySize", sent);
    if (this.responseTimedOut) {
      const ms = this.options.responseTimeout;
      return new UpstreamError("response_timeout", "ETIMEDOUT", `no response headers within ${ms}ms`, sent);
    }
    if (this.connectTimedOut) {
      const ms = this.options.connectTimeout;
      return new UpstreamError(
        "connect_timeout",
        "ECONNECTTIMEOUT",
        `connect timed out after ${ms}ms`,
        false,
      );
    }
    if (!this.connected || CONNECT_CODES.has(code))
      return new UpstreamError("connect", code, err.message, false);
    return new UpstreamError("reset", code, err.message, sent);
  }
}
