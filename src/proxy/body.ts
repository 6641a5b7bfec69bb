// The request body of one proxied request: kept in memory when small (so it can be replayed on a retry),
// streamed otherwise, and never read from the client before an upstream connection is up.
import { PassThrough } from "node:stream";
import type { IncomingMessage } from "node:http";

/** Bodies up to this size are kept for replay (contract: 64 KiB). */
export const REPLAY_LIMIT = 64 * 1024;

export class BodyTooLargeError extends Error {
  readonly code = "GW_BODY_TOO_LARGE";
}

/** One attempt's view of a streamed body: a stream to pipe upstream, filled once `start()` is called. */
export interface BodyFeed {
  stream: PassThrough;
  start(): void;
}

export class RequestBody {
  /** Whether every attempt can be given the whole body again. */
  readonly replayable: boolean;
  private readonly kept: Buffer[];
  private started = false;
  private whole: Buffer | undefined;
  private constructor(
    private readonly req: IncomingMessage,
    kept: Buffer[],
    complete: boolean,
    private readonly maxBodySize: number,
    /** Whether the client declared a body (Content-Length or Transfer-Encoding). */
    private readonly declared: boolean,
  ) {
    this.kept = kept;
    this.replayable = complete;
  }

  /** The length of a declared body read whole (it replaces the client's framing upstream), else undefined. */
  get keptLength(): number | undefined {
    if (!this.declared || !this.replayable) return undefined;
    return this.body().length;
  }

  /** A body read whole, as one buffer (empty for none): sent with the request's head, on every attempt. */
  body(): Buffer {
    this.whole ??= this.kept.length === 1 ? this.kept[0]! : Buffer.concat(this.kept);
    return this.whole;
  }

  /**
   * Reads up to REPLAY_LIMIT bytes of the client's body. A body that ends within it is kept (its length becomes
   * Content-Length); a longer one will stream, starting with what was read. Rejects with BodyTooLargeError when
   * Content-Length (or what was read) passes `maxBodySize` (0: no limit).
   */
  static async read(req: IncomingMessage, maxBodySize: number): Promise<RequestBody> {
    if (!RequestBody.has(req)) return RequestBody.none(req, maxBodySize);
    const declared = req.headers["content-length"];
    if (maxBodySize > 0 && declared !== undefined && Number(declared) > maxBodySize)
      throw new BodyTooLargeError();
    const kept: Buffer[] = [];
    let size = 0;
    const complete = await new Promise<boolean>((resolve, reject) => {
      const cleanup = () => {
        req.off("data", onData);
        req.off("end", onEnd);
        req.off("error", onError);
        req.off("close", onClose);
      };
      const onData = (chunk: Buffer) => {
        kept.push(chunk);
        size += chunk.length;
        if (maxBodySize > 0 && size > maxBodySize) {
          cleanup();
          reject(new BodyTooLargeError());
        } else if (size > REPLAY_LIMIT) {
          cleanup();
          req.pause();
          resolve(false);
        }
      };
      const onEnd = () => {
        cleanup();
        resolve(true);
      };
      const onError = (err: Error) => {
        cleanup();
        reject(err);
      };
      const onClose = () => {
        cleanup();
        reject(new Error("client closed the request before its body was read"));
      };
      req.on("data", onData);
      req.on("end", onEnd);
      req.on("error", onError);
      req.on("close", onClose);
    });
    return new RequestBody(req, kept, complete, maxBodySize, true);
  }

  /** Whether the request declares a body (a non-zero Content-Length, or Transfer-Encoding). */
  static has(req: IncomingMessage): boolean {
    const declared = req.headers["content-length"];
    return declared !== undefined ? declared !== "0" : req.headers["transfer-encoding"] !== undefined;
  }

  /** The body of a request without one, at once: the handler skips a promise and an await for most GETs. */
  static none(req: IncomingMessage, maxBodySize: number): RequestBody {
    return new RequestBody(req, [], true, maxBodySize, false);
  }

  /** Whether a new attempt can still be given the body: always when kept, else only before any was sent. */
  canReopen(): boolean {
    return this.replayable || !this.started;
  }

  /** Whether any of a streamed body has gone upstream. */
  get sent(): boolean {
    return this.started;
  }

  /** The feed of a streamed body (not `replayable`): its first attempt gets it, later ones an error. */
  open(): BodyFeed {
    const stream = new PassThrough();
    return {
      stream,
      start: () => {
        if (this.started) {
          stream.destroy(new Error("request body already sent"));
          return;
        }
        this.started = true;
        let size = 0;
        for (const chunk of this.kept) {
          size += chunk.length;
          stream.write(chunk);
        }
        this.kept.length = 0;
        if (this.maxBodySize > 0) this.limit(stream, size);
        this.req.pipe(stream);
      },
    };
  }

  // Counts streamed bytes against maxBodySize, for bodies sent without Content-Length; the feed's stream then
  // fails with BodyTooLargeError, which the forwarder turns into a 413 (or a cut connection once answering).
  private limit(stream: PassThrough, already: number): void {
    let size = already;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > this.maxBodySize) {
        this.req.off("data", onData);
        this.req.unpipe(stream);
        stream.destroy(new BodyTooLargeError());
      }
    };
    this.req.on("data", onData);
  }
}
