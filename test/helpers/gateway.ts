// Starts a real gateway for a test from inline YAML, with its log lines captured and searchable.
import http from "node:http";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { createLogger } from "../../src/log/log.ts";
import { Gateway, type GatewayOptions } from "../../src/server/gateway.ts";

export type LogLine = Record<string, unknown> & { msg: string; level: string };

/** Collects the gateway's JSON log lines; `waitFor` resolves on the first line matching, past or future. */
export class LogCapture extends Writable {
  readonly lines: LogLine[] = [];
  private waiters: { pred: (l: LogLine) => boolean; resolve: (l: LogLine) => void }[] = [];

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    for (const text of chunk.toString().split("\n")) {
      if (!text.trim()) continue;
      const line = JSON.parse(text) as LogLine;
      this.lines.push(line);
      this.waiters = this.waiters.filter((w) => {
        if (!w.pred(line)) return true;
        w.resolve(line);
        return false;
      });
    }
    cb();
  }

  events(msg: string): LogLine[] {
    return this.lines.filter((l) => l.msg === msg);
  }

  /**
   * Resolves on the first line named `msg` matching `pred`. It fails after `timeoutMs` naming what it waited for and
   * the last lines seen, so a line that never comes shows up as a clear failure instead of the whole file timing out.
   */
  waitFor(msg: string, pred: (l: LogLine) => boolean = () => true, timeoutMs = 60_000): Promise<LogLine> {
    const found = this.lines.find((l) => l.msg === msg && pred(l));
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const waiter = {
        pred: (l: LogLine) => l.msg === msg && pred(l),
        resolve: (l: LogLine) => {
          clearTimeout(timer);
          resolve(l);
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        const tail = this.lines.slice(-15).map((l) => JSON.stringify(l));
        reject(
          new Error(
            `no "${msg}" log line matched within ${timeoutMs} ms; the last lines:\n${tail.join("\n")}`,
          ),
        );
      }, timeoutMs);
      timer.unref();
      this.waiters.push(waiter);
    });
  }
}

export interface TestGateway {
  gw: Gateway;
  url: string;
  logs: LogCapture;
  configPath: string;
  /** Rewrites the config file (for reload tests). */
  writeConfig(yaml: string): Promise<void>;
  stop(): Promise<void>;
}

/** Writes `yaml` to a temp file and starts a gateway on it; waits for the first health round unless told not to. */
export async function startGateway(
  yaml: string,
  options: {
    env?: Record<string, string | undefined>;
    waitReady?: boolean;
    watch?: boolean;
    policies?: GatewayOptions["policies"];
  } = {},
): Promise<TestGateway> {
  const dir = await mkdtemp(join(tmpdir(), "gateway-test-"));
  const configPath = join(dir, "gateway.yaml");
  await writeFile(configPath, yaml);
  const logs = new LogCapture();
  const gw = await Gateway.start({
    configPath,
    env: options.env ?? {},
    log: createLogger({ level: "debug", stream: logs }),
    defaultMetrics: false,
    watch: options.watch ?? false,
    ...(options.policies ? { policies: options.policies } : {}),
  });
  if (options.waitReady !== false) await logs.waitFor("ready");
  return {
    gw,
    url: gw.url,
    logs,
    configPath,
    writeConfig: (text) => writeFile(configPath, text),
    stop: () => gw.stop(),
  };
}

/** A config with one pool `app` of the given upstreams and a `/` route; health checks every 60 s (tests run rounds). */
export function poolConfig(
  upstreams: { url: string; weight?: number; backup?: boolean }[],
  extra = "",
): string {
  const list = upstreams
    .map(
      (u) =>
        `      - { url: ${u.url}${u.weight ? `, weight: ${u.weight}` : ""}${u.backup ? ", backup: true" : ""} }`,
    )
    .join("\n");
  return appConfig(list, extra);
}

/** The test config around one pool `app` whose upstream list is given as YAML lines, with a `/` route. */
export function appConfig(upstreamLines: string, extra = ""): string {
  return `listen: 127.0.0.1:0
shutdownGrace: 2s
defaults:
  healthCheck: { interval: 60s, timeout: 1s, healthyThreshold: 1, unhealthyThreshold: 1 }
  timeouts: { connect: 1s, response: 5s }
${extra}
pools:
  app:
    upstreams:
${upstreamLines}
routes:
  - { prefix: /, pool: app }
`;
}

export interface SimpleResponse {
  status: number;
  headers: Headers;
  text: string;
  // The caller names the shape it expects of the JSON body; nothing checks it at run time.
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters
  json<T = Record<string, unknown>>(): T;
}

export async function get(url: string, init: RequestInit = {}): Promise<SimpleResponse> {
  const res = await fetch(url, init);
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: () => JSON.parse(text) as never };
}

/** node:http request (fetch cannot set Host or keep exact headers); resolves with the whole body. */
export function request(
  url: string,
  options: {
    method?: string;
    headers?: Record<string, string>;
    body?: string | Buffer;
    agent?: http.Agent | false;
    /** Fails the request when its socket is idle this long (no limit by default). */
    timeoutMs?: number;
  } = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      { method: options.method ?? "GET", headers: options.headers, agent: options.agent ?? false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString(),
          }),
        );
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    if (options.timeoutMs !== undefined) {
      const ms = options.timeoutMs;
      req.setTimeout(ms, () => req.destroy(new Error(`no answer within ${ms} ms`)));
    }
    req.end(options.body);
  });
}
