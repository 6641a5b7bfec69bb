// Fake upstreams for tests: real HTTP servers on 127.0.0.1 port 0 that replay scripted status sequences,
// record what they received, and can be killed and revived on the same port.
import http from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { once } from "node:events";

export interface Received {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export interface FakeUpstreamOptions {
  name?: string;
  /** Status codes /health answers in turn; the last one repeats. Default [200]. */
  health?: number[];
  /** Status codes other paths answer in turn; the last one repeats. Default [200]. */
  statuses?: number[];
  /** Takes over every non-health request when set. */
  handler?: http.RequestListener;
}

export class FakeUpstream {
  readonly name: string;
  readonly received: Received[] = [];
  healthChecks = 0;
  private server: http.Server;
  private readonly sockets = new Set<Socket>();
  private health: number[];
  private statuses: number[];
  port = 0;

  constructor(private readonly options: FakeUpstreamOptions = {}) {
    this.name = options.name ?? "upstream";
    this.health = [...(options.health ?? [200])];
    this.statuses = [...(options.statuses ?? [200])];
    this.server = this.createServer();
  }

  private createServer(): http.Server {
    const server = http.createServer((req, res) => {
      if (req.url === "/health") {
        this.healthChecks++;
        const status = this.health.length > 1 ? this.health.shift()! : this.health[0]!;
        res.writeHead(status).end();
        return;
      }
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        this.received.push({
          method: req.method ?? "",
          url: req.url ?? "",
          headers: req.headers,
          body: Buffer.concat(chunks).toString(),
        });
        if (this.options.handler) {
          this.options.handler(req, res);
          return;
        }
        const status = this.statuses.length > 1 ? this.statuses.shift()! : this.statuses[0]!;
        res.writeHead(status, { "content-type": "application/json" });
        res.end(JSON.stringify({ name: this.name, method: req.method, url: req.url }));
      });
    });
    server.on("connection", (s: Socket) => {
      this.sockets.add(s);
      s.once("close", () => this.sockets.delete(s));
    });
    return server;
  }

  static async start(options: FakeUpstreamOptions = {}): Promise<FakeUpstream> {
    const u = new FakeUpstream(options);
    await u.listen(0);
    return u;
  }

  private async listen(port: number): Promise<void> {
    this.server.listen(port, "127.0.0.1");
    await once(this.server, "listening");
    this.port = (this.server.address() as AddressInfo).port;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Requests received on non-health paths. */
  get hits(): number {
    return this.received.length;
  }

  setHealth(statuses: number[]): void {
    this.health = [...statuses];
  }

  setStatuses(statuses: number[]): void {
    this.statuses = [...statuses];
  }

  /** Dies like a crashed process: stops listening and resets every open connection. */
  async kill(): Promise<void> {
    const closed = new Promise<void>((r) => this.server.close(() => r()));
    for (const s of this.sockets) s.destroy();
    await closed;
  }

  /** Comes back on the same port. */
  async revive(): Promise<void> {
    this.server = this.createServer();
    await this.listen(this.port);
  }

  async close(): Promise<void> {
    await this.kill().catch(() => undefined);
  }
}
