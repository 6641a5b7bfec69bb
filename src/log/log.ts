// The gateway's logger: winston, one JSON object a line (level, time, msg, fields) on stdout or a given stream.
import winston from "winston";
import type { Writable } from "node:stream";

export type LogLevel = "error" | "warn" | "info" | "debug";
export type LogFields = Record<string, unknown>;

/** The narrow logging seam the rest of the gateway uses; tests may pass any implementation. */
export interface Logger {
  error(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  debug(msg: string, fields?: LogFields): void;
  isDebugEnabled(): boolean;
}

// One light format: `format.timestamp()` and printf cost more per line (dependencies.md §5), and the access line
// is written once per request.
const contractShape = winston.format((info) => {
  const out = info as Record<string | symbol, unknown>;
  out.time = new Date().toISOString();
  out.msg = info.message;
  delete out.message;
  return info;
});

export function parseLogLevel(value: string | undefined): LogLevel {
  return value === "error" || value === "warn" || value === "debug" ? value : "info";
}

export function createLogger(options: { level?: LogLevel; stream?: Writable } = {}): Logger {
  const stream = options.stream ?? process.stdout;
  if (stream === process.stdout) {
    // A closed pipe (e.g. `gateway | head`) must not crash the process with an unhandled EPIPE.
    process.stdout.on("error", () => undefined);
  }
  const w = winston.createLogger({
    level: options.level ?? parseLogLevel(process.env.GATEWAY_LOG_LEVEL),
    format: winston.format.combine(contractShape(), winston.format.json()),
    // winston's bundled transport types lag its runtime class; the object is a real Stream transport.
    // eslint-disable-next-line @typescript-eslint/no-unsafe-class-instance-assignment
    transports: [new winston.transports.Stream({ stream })],
  });
  const write = (level: LogLevel) => (msg: string, fields?: LogFields) => {
    w.log(level, msg, fields);
  };
  return {
    error: write("error"),
    warn: write("warn"),
    info: write("info"),
    debug: write("debug"),
    isDebugEnabled: () => w.isDebugEnabled(),
  };
}
