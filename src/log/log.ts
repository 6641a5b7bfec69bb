// The gateway's logger: winston, one JSON object a line (time, level, msg, fields) on stdout or a given stream, or
// a readable line per event on a terminal.
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
 * Gathers lines into one write: stdout to a file or pipe is synchronous in Node, and a write per access line cost
 * more than the line itself (docs/benchmarks.md). A line after a quiet spell goes out at the end of its event-loop
 * turn; while lines keep coming, writes are at least `minIntervalMs` apart, so one client sending request after
 * request on one connection (each turn then holds a single line) no longer pays a blocking write per request. At
 * most that interval of lines is at risk in a crash, and `flush()` empties the batch before a clean exit.
 */
export class BatchedWriter extends Writable {
  private pending: string[] = [];
  private pendingBytes = 0;
  private scheduled = false;
  private lastWrite = -Infinity;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly dest: Writable,
    private readonly minIntervalMs = 0,
  ) {
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
      const wait = this.lastWrite + this.minIntervalMs - performance.now();
      if (wait <= 0) setImmediate(() => this.flush());
      else {
        // Unref'd: a line still waiting must not keep a process alive that has nothing else to do; exits flush.
        this.timer = setTimeout(() => this.flush(), wait);
        this.timer.unref();
      }
    }
  }

  flush(): void {
    this.scheduled = false;
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.pending.length === 0) return;
    const text = this.pending.join("");
    this.pending = [];
    this.pendingBytes = 0;
    this.lastWrite = performance.now();
    this.dest.write(text);
  }
}

const MESSAGE = Symbol.for("message");
// Insertion order, not sorted: `time`, `level` and `msg` lead, then the fields as the call site gave them.
const jsonFormat = winston.format.json({ deterministic: false });

export type LogFormat = "json" | "pretty";

/** The record of one line: `time`, `level`, `msg` first, then the fields in the order they were given. */
function ordered(info: Record<string, unknown>, time: string): Record<string, unknown> {
  const out: Record<string, unknown> = { time, level: info.level, msg: info.message };
  for (const k of Object.keys(info)) {
    if (k === "level" || k === "message" || k === "time" || k === "msg") continue;
    out[k] = info[k];
  }
  return out;
}

/**
 * Whether JSON.stringify writes the same bytes as format.json() for this record: flat values only (every access
 * line), and no integer-like keys (which both would move to the front, but safe-stable-stringify's handling of
 * odd values such as bigint differs). format.json() runs safe-stable-stringify, configured anew for every line,
 * with a replacer called for every value; skipping it is the access line's fast path (docs/benchmarks.md).
 */
function isFlat(record: Record<string, unknown>): boolean {
  for (const k in record) {
    const c = k.charCodeAt(0);
    if (c >= 0x30 && c <= 0x39) return false;
    const v = record[k];
    if (v !== null && typeof v === "object") return false;
    if (typeof v === "bigint" || typeof v === "function" || typeof v === "symbol") return false;
  }
  return true;
}

/** The slow path alone: what format.json() writes for a record (the test that both paths agree uses it). */
export function slowJsonLine(record: Record<string, unknown>): string {
  const info = jsonFormat.transform({ ...record } as never, jsonFormat.options) as Record<symbol, unknown>;
  return String(info[MESSAGE]);
}

/** One JSON log line (without the newline) for a record already in line order. */
export function jsonLine(record: Record<string, unknown>): string {
  return isFlat(record) ? JSON.stringify(record) : slowJsonLine(record);
}

const COLORS: Record<string, string> = { error: "31", warn: "33", info: "36", debug: "90" };

function prettyValue(v: unknown): string {
  if (typeof v === "string") return v === "" || /[\s="]/.test(v) ? JSON.stringify(v) : v;
  if (typeof v === "bigint") return v.toString();
  if (v !== null && typeof v === "object") {
    try {
      return JSON.stringify(v, (_k, x: unknown) => (typeof x === "bigint" ? x.toString() : x));
    } catch {
      return "[circular]";
    }
  }
  return String(v);
}

/** One line for a terminal: `12:04:05.123 INFO  msg key=value ...`, the level in colour when `color`. */
export function prettyLine(record: Record<string, unknown>, color: boolean): string {
  const time = typeof record.time === "string" ? record.time.slice(11, 23) : "";
  const level = String(record.level);
  const tag = level.toUpperCase().padEnd(5);
  const fields = Object.keys(record)
    .filter((k) => k !== "time" && k !== "level" && k !== "msg" && record[k] !== undefined)
    .map((k) => `${k}=${prettyValue(record[k])}`);
  const head = color ? `\x1b[${COLORS[level] ?? "0"}m${tag}\x1b[0m` : tag;
  return [time, head, String(record.msg), ...fields].join(" ");
}

// One light format: `format.timestamp()` and printf cost more per line (dependencies.md §5), and the access line
// is written once per request.
const contractShape = winston.format((info, options: unknown) => {
  const opts = options as { pretty?: boolean; color?: boolean };
  const record = ordered(info, new Date().toISOString());
  const out: Record<string | symbol, unknown> = info;
  out[MESSAGE] = opts.pretty ? prettyLine(record, opts.color === true) : jsonLine(record);
  return info;
});

export function parseLogLevel(value: string | undefined): LogLevel {
  return value === "error" || value === "warn" || value === "debug" ? value : "info";
}

/** `json` or `pretty`; anything else (unset) is undefined: the default then depends on the output. */
export function parseLogFormat(value: string | undefined): LogFormat | undefined {
  return value === "json" || value === "pretty" ? value : undefined;
}

export function createLogger(
  options: {
    level?: LogLevel;
    stream?: Writable;
    format?: LogFormat;
    /**
     * Least time between two writes while lines keep coming (BatchedWriter). By default 5 ms on stdout, whose
     * writes block on a syscall; 0 on a stream in the process (a test's capture), which gets every turn's lines.
     */
    batchMs?: number;
    /** Fields added after each line's own, on the lines the level lets through (a cluster worker's id). */
    tag?: LogFields;
  } = {},
): Logger {
  const dest = options.stream ?? process.stdout;
  const tty = (dest as Partial<NodeJS.WriteStream>).isTTY === true;
  // Pretty for a person at a terminal; JSON (the contract's format) for anything that collects logs.
  const format =
    options.format ?? parseLogFormat(process.env.GATEWAY_LOG_FORMAT) ?? (tty ? "pretty" : "json");
  if (dest === process.stdout) {
    // A closed pipe (e.g. `gateway | head`) must not crash the process with an unhandled EPIPE.
    process.stdout.on("error", () => undefined);
  }
  const stream = new BatchedWriter(dest, options.batchMs ?? (dest === process.stdout ? 5 : 0));
  const w = winston.createLogger({
    level: options.level ?? parseLogLevel(process.env.GATEWAY_LOG_LEVEL),
    format: contractShape({ pretty: format === "pretty", color: tty && !process.env.NO_COLOR }),
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
  const direct = format === "json";
  // Lines written in the same millisecond share one ISO string: under load most access lines do.
  let isoMs = -1;
  let iso = "";
  const timeNow = (): string => {
    const ms = Date.now();
    if (ms !== isoMs) {
      isoMs = ms;
      iso = new Date(ms).toISOString();
    }
    return iso;
  };
  const write = (level: LogLevel) => {
    const levelPart = `","level":"${level}","msg":`;
    const enabled = w.isLevelEnabled(level);
    const tag = options.tag;
    return (msg: string, own?: LogFields) => {
      // winston would build and format the line before its transport dropped it for its level. The level is
      // fixed for the logger's life, so `enabled` holds.
      if (!enabled) return;
      const fields = tag ? { ...own, ...tag } : own;
      // JSON lines go straight into the batch, without winston's stream pipeline (a Transform per line, ~6 µs on
      // every access line): the same record in the same order, so the same bytes. A record jsonLine would send
      // down its slow path, or a field named like one of the line's own keys, still goes through winston.
      if (
        direct &&
        fields &&
        fields.level === undefined &&
        fields.msg === undefined &&
        fields.time === undefined &&
        fields.message === undefined
      ) {
        // The same bytes as JSON.stringify({ time, level, msg, ...fields }), without building that record.
        if (isFlat(fields)) {
          const rest = JSON.stringify(fields);
          const tail = rest.length > 2 ? `,${rest.slice(1)}` : "}";
          return stream.add(`{"time":"${timeNow()}${levelPart}${JSON.stringify(msg)}${tail}${EOL}`);
        }
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
