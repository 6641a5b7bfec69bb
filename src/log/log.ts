// The gateway's logger: winston, one JSON object a line (level, time, msg, fields) on stdout or a given stream.
import winston from "winston";
import { EOL } from "node:os";
import { Writable } from "node:stream";

export type LogLevel = "error" | "warn" | "info" | "debug";
export type LogFields = Record<string, unknown>;

/** The narrow logging seam the rest of the gateway uses; tests may pass any implementation. */
export interface Logger {
  error(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  debug(msg: string, fields?: LogFields): void;
  isDebugEnabled(): boolean;
  /** Writes out lines still batched; call before the process exits. */
  flush(): void;
}

/**
 * Gathers the lines written in one event-loop turn into one write: stdout to a file or pipe is synchronous in
 * Node, and a write per access line cost more than the line itself (docs/benchmarks.md). At most one turn of
 * lines is at risk in a crash, and `flush()` empties it before a clean exit.
 */
export class BatchedWriter extends Writable {
  private pending: string[] = [];
  private pendingBytes = 0;
  private scheduled = false;

  constructor(private readonly dest: Writable) {
    super({ decodeStrings: false });
  }

  override _write(chunk: string | Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.add(typeof chunk === "string" ? chunk : chunk.toString());
    cb();
  }

  /** Queues one line; the logger's transport calls this directly, skipping a Writable's per-write machinery. */
  add(text: string): void {
    this.pending.push(text);
    this.pendingBytes += text.length;
    if (this.pendingBytes > 256 * 1024) this.flush();
    else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  flush(): void {
    this.scheduled = false;
    if (this.pending.length === 0) return;
    const text = this.pending.join("");
    this.pending = [];
    this.pendingBytes = 0;
    this.dest.write(text);
  }
}

const MESSAGE = Symbol.for("message");
const jsonFormat = winston.format.json();

// The last record's keys and their sorted order: consecutive lines mostly have the same keys in the same order
// (the access line), and comparing a dozen interned strings is cheaper than sorting them again.
let lastKeys: string[] = [];
let lastSorted: string[] = [];

function sortedKeys(record: Record<string, unknown>): string[] {
  const keys = Object.keys(record);
  if (keys.length === lastKeys.length && keys.every((k, i) => k === lastKeys[i])) return lastSorted;
  lastKeys = keys;
  lastSorted = keys.slice().sort();
  return lastSorted;
}

/**
 * The line format.json() would write, without its per-line cost (docs/benchmarks.md): it runs safe-stable-stringify,
 * configured anew for every line, with a replacer called for every value. A record of flat values (every access
 * line) is written with JSON.stringify in the same sorted key order, so the bytes are the same; anything else
 * (nested objects, arrays, bigint, integer-like keys that JSON.stringify would reorder) returns undefined and goes
 * through format.json() as before.
 */
function flatJson(record: Record<string, unknown>): string | undefined {
  const keys = sortedKeys(record);
  const sorted: Record<string, unknown> = {};
  for (const k of keys) {
    if (k === "message") continue;
    const c = k.charCodeAt(0);
    if (c >= 0x30 && c <= 0x39) return undefined;
    const v = record[k];
    if (v !== null && typeof v === "object") return undefined;
    if (typeof v === "bigint" || typeof v === "function" || typeof v === "symbol") return undefined;
    sorted[k] = v;
  }
  return JSON.stringify(sorted);
}

// One light format: `format.timestamp()` and printf cost more per line (dependencies.md §5), and the access line
// is written once per request.
const contractShape = winston.format((info) => {
  const out: Record<string | symbol, unknown> = info;
  out.time = new Date().toISOString();
  out.msg = info.message;
  // `message` is left out by flatJson; the slow path removes it (a delete would also slow the fast one down).
  const line = flatJson(out);
  if (line !== undefined) {
    out[MESSAGE] = line;
    return info;
  }
  delete out.message;
  return jsonFormat.transform(info, jsonFormat.options);
});

export function parseLogLevel(value: string | undefined): LogLevel {
  return value === "error" || value === "warn" || value === "debug" ? value : "info";
}

export function createLogger(options: { level?: LogLevel; stream?: Writable } = {}): Logger {
  const dest = options.stream ?? process.stdout;
  if (dest === process.stdout) {
    // A closed pipe (e.g. `gateway | head`) must not crash the process with an unhandled EPIPE.
    process.stdout.on("error", () => undefined);
  }
  const stream = new BatchedWriter(dest);
  const w = winston.createLogger({
    level: options.level ?? parseLogLevel(process.env.GATEWAY_LOG_LEVEL),
    format: contractShape(),
    transports: [
      // winston's bundled transport types lag its runtime class; the object is a real Stream transport.
      // eslint-disable-next-line @typescript-eslint/no-unsafe-class-instance-assignment
      new winston.transports.Stream({
        stream,
        // winston-transport's `log` option: the line goes straight to the batch. The class's own log() would also
        // schedule a `logged` event per line (a setImmediate nobody listens to) and pass through a Writable.
        log: (info: Record<symbol, unknown>, next: () => void) => {
          stream.add(`${String(info[MESSAGE])}${EOL}`);
          next();
        },
      }),
    ],
  });
  const write = (level: LogLevel) => {
    const enabled = w.isLevelEnabled(level);
    return (msg: string, fields?: LogFields) => {
      // The line straight into the batch, without winston's stream pipeline (a Transform per logger, ~6 µs on
      // every access line): same record, same sorted keys, same bytes. Anything flatJson cannot write, and a
      // field named like one of the line's own keys, still goes through winston.
      if (
        enabled &&
        fields &&
        fields.level === undefined &&
        fields.msg === undefined &&
        fields.time === undefined &&
        fields.message === undefined
      ) {
        const line = flatJson({ ...fields, level, msg, time: new Date().toISOString() });
        if (line !== undefined) return stream.add(`${line}${EOL}`);
      }
      w.log(level, msg, fields);
    };
  };
  return {
    error: write("error"),
    warn: write("warn"),
    info: write("info"),
    debug: write("debug"),
    isDebugEnabled: () => w.isDebugEnabled(),
    flush: () => stream.flush(),
  };
}
