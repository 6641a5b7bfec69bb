// The forwarding engine, the only module that imports the proxy library (http-proxy-3): sends one attempt of a
// request to one upstream and reports how it ended, exactly once.
import http from "node:http";
import https from "node:https";
import net from "node:net";
import type { Duplex } from "node:stream";
import tls from "node:tls";
import { createProxyServer } from "http-proxy-3";
import { BodyTooLargeError, type BodyFeed } from "./body.ts";
import { stripResponseHopByHop } from "./headers.ts";
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
  body: BodyFeed;
  connectTimeout: number;
  responseTimeout: number;
  /** The response phase: may change the response's headers before they are written to the client. */
  onHead?: ((status: number, headers: HeaderBag) => void) | undefined;
}

interface Attempt {
  settled: boolean;
  settle(outcome: AttemptOutcome): void;
  proxyReq?: http.ClientRequest;
  connected: boolean;
  connectTimedOut: boolean;
  responseTimedOut: boolean;
  tooLarge: boolean;
  options: AttemptOptions;
  connectTimer?: NodeJS.Timeout;
  responseTimer?: NodeJS.Timeout;
  written: number;
}

const kAttempt = Symbol("gateway.attempt");
type WithAttempt = http.IncomingMessage & { [kAttempt]?: Attempt };

const CONNECT_CODES = new Set([
  "ECONNREFUSED",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EADDRNOTAVAIL",
]);

/**
 * Wraps http-proxy-3 with what it does not do safely by default (dependencies.md §1): keep-alive agents, our own
 * connect and response deadlines (504 vs 502), hop-by-hop stripping on responses, cutting the client when the
 * upstream response breaks off, and one settlement per attempt however many events fire.
 */
export class Forwarder {
  private readonly proxy = createProxyServer({ selfHandleResponse: true, xfwd: false });
  private readonly agents = new Map<object, http.Agent>();

  constructor() {
    this.proxy.on("proxyReq", (proxyReq, req) => this.onProxyReq(proxyReq, req as WithAttempt));
    this.proxy.on("proxyRes", (proxyRes, req, res) => this.onProxyRes(proxyRes, req as WithAttempt, res));
    // Errors reach the per-call callbacks; these listeners only keep a stray event from crashing the process.
    this.proxy.on("error", () => undefined);
    // One `proxyReqWs` listener per pending upgrade.
    this.proxy.setMaxListeners(0);
    this.proxy.on("econnreset", () => undefined);
  }

  /** The keep-alive agent of one upstream (`owner`: the upstream's state object), created on first use. */
  agent(owner: object, url: URL): http.Agent {
    let agent = this.agents.get(owner);
    if (!agent) {
      const Agent = url.protocol === "https:" ? https.Agent : http.Agent;
      // Idle sockets close after 4 s, below Node's default 5 s server keep-alive, to dodge the stale-socket race.
      agent = new Agent({
        keepAlive: true,
        maxSockets: 512,
        maxFreeSockets: 64,
        timeout: 4_000,
        scheduling: "lifo",
      });
      this.agents.set(owner, agent);
    }
    return agent;
  }

  /** Closes an upstream's pooled connections (after it left the config and its requests finished). */
  releaseAgent(owner: object): void {
    this.agents.get(owner)?.destroy();
    this.agents.delete(owner);
  }

  close(): void {
    for (const agent of this.agents.values()) agent.destroy();
    this.agents.clear();
  }

  /** Sends one attempt. Resolves once: on response headers (already relayed), on failure, or on client abort. */
  forward(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    options: AttemptOptions,
  ): Promise<AttemptOutcome> {
    // A client already gone would never fire `close` again: do not start what nobody waits for.
    if (res.destroyed) return Promise.resolve({ kind: "aborted" });
    return new Promise((resolve) => {
      const onClientClose = () => attempt.settle({ kind: "aborted" });
      const attempt: Attempt = {
        settled: false,
        connected: false,
        connectTimedOut: false,
        responseTimedOut: false,
        tooLarge: false,
        options,
        written: 0,
        settle(outcome) {
          if (this.settled) return;
          this.settled = true;
          clearTimeout(this.connectTimer);
          clearTimeout(this.responseTimer);
          res.off("close", onClientClose);
          resolve(outcome);
        },
      };
      (req as WithAttempt)[kAttempt] = attempt;
      res.once("close", onClientClose);
      options.body.stream.once("error", (err) => {
        if (err instanceof BodyTooLargeError) attempt.tooLarge = true;
        attempt.proxyReq?.destroy();
        if (attempt.settled && !res.headersSent) res.destroy();
      });
      this.armResponseTimer(attempt);
      req.url = options.path;
      this.proxy.web(
        req,
        res,
        // toProxy: send our normalized path as it is; otherwise the library re-parses it with the WHATWG URL
        // parser, which resolves dot segments again and re-encodes characters.
        { target: options.target, agent: options.agent, buffer: options.body.stream, toProxy: true },
        (err: Error) => {
          attempt.settle({ kind: "failed", error: classify(err, attempt) });
        },
      );
    });
  }

  private armResponseTimer(a: Attempt): void {
    a.responseTimer = setTimeout(() => {
      // The deadline counts from the end of the request: while a large upload is still moving, it waits.
      const socket = a.proxyReq?.socket;
      if (a.proxyReq && !a.proxyReq.writableFinished && socket && socket.bytesWritten > a.written) {
        a.written = socket.bytesWritten;
        this.armResponseTimer(a);
        return;
      }
      a.responseTimedOut = true;
      if (a.proxyReq) a.proxyReq.destroy();
      else a.settle({ kind: "failed", error: classify(new Error("no socket in time"), a) });
    }, a.options.responseTimeout);
  }

  private onProxyReq(proxyReq: http.ClientRequest, req: WithAttempt): void {
    const a = req[kAttempt];
    if (!a || a.settled) {
      proxyReq.destroy();
      return;
    }
    a.proxyReq = proxyReq;
    const socket = proxyReq.socket;
    if (!socket) return;
    a.written = socket.bytesWritten;
    // Nothing of the request leaves before the connection is up, so a refused or timed-out connect can be
    // retried for any method, even with a streamed body.
    const begin = () => {
      clearTimeout(a.connectTimer);
      a.connected = true;
      a.options.body.start();
    };
    if (socket.connecting) {
      a.connectTimer = setTimeout(() => {
        a.connectTimedOut = true;
        proxyReq.destroy();
      }, a.options.connectTimeout);
      socket.once("connect", begin);
    } else begin();
  }

  private onProxyRes(proxyRes: http.IncomingMessage, req: WithAttempt, res: http.ServerResponse): void {
    const a = req[kAttempt];
    if (!a || a.settled || res.destroyed) {
      proxyRes.destroy();
      a?.settle({ kind: "aborted" });
      return;
    }
    const status = proxyRes.statusCode ?? 502;
    stripResponseHopByHop(proxyRes.headers);
    a.options.onHead?.(status, proxyRes.headers);
    if (proxyRes.statusMessage) res.writeHead(status, proxyRes.statusMessage, proxyRes.headers);
    else res.writeHead(status, proxyRes.headers);
    // An upstream that stalls mid-body (no byte for `responseTimeout`, like nginx's proxy_read_timeout) is cut;
    // the agent puts its own idle timeout back when the socket returns to the pool.
    const socket = proxyRes.socket;
    const onIdle = () => proxyRes.destroy();
    socket.setTimeout(a.options.responseTimeout);
    socket.on("timeout", onIdle);
    proxyRes.once("end", () => socket.off("timeout", onIdle));
    // An upstream that dies mid-body must not leave the client waiting for bytes that never come.
    proxyRes.once("close", () => {
      socket.off("timeout", onIdle);
      if (!proxyRes.complete) res.destroy();
    });
    proxyRes.pipe(res);
    a.settle({ kind: "response", status });
  }

  /**
   * Tunnels a WebSocket upgrade. The upstream connection is opened first, by the gateway itself: until it is up
   * nothing of the upgrade has left and the client socket is untouched, so a refused or timed-out connect comes
   * back as a failure the pipeline may retry elsewhere. Once connected, http-proxy-3 runs the upgrade on that
   * socket. Resolves "upgraded" once the upstream switched protocols, the status when it replied with plain HTTP
   * (relayed to the client), or the failure; a failure after the connect has `onFailure` write the error to the
   * client first (synchronously: the proxy library closes the socket right after).
   */
  ws(
    req: http.IncomingMessage,
    socket: Duplex,
    head: Buffer,
    options: WsOptions,
  ): Promise<"upgraded" | number | UpstreamError> {
    return new Promise((resolve) => {
      const { target } = options;
      const secure = target.protocol === "https:" || target.protocol === "wss:";
      const host = target.hostname.startsWith("[") ? target.hostname.slice(1, -1) : target.hostname;
      const port = Number(target.port) || (secure ? 443 : 80);
      const upstream: net.Socket = secure
        ? tls.connect({ host, port, servername: net.isIP(host) ? undefined : host })
        : net.connect({ host, port });
      let connected = false;
      let done = false;
      const finishConnect = (r: UpstreamError) => {
        if (done) return;
        done = true;
        clearTimeout(connectTimer);
        socket.off("close", onClientGone);
        upstream.destroy();
        resolve(r);
      };
      const onClientGone = () =>
        finishConnect(new UpstreamError("connect", "ECLIENTGONE", "client left during the connect", false));
      const connectTimer = setTimeout(() => {
        const ms = options.connectTimeout;
        finishConnect(
          new UpstreamError("connect_timeout", "ECONNECTTIMEOUT", `connect timed out after ${ms}ms`, false),
        );
      }, options.connectTimeout);
      socket.once("close", onClientGone);
      upstream.once("error", (err: NodeJS.ErrnoException) => {
        if (!connected)
          finishConnect(new UpstreamError("connect", err.code ?? "ECONNRESET", err.message, false));
      });
      upstream.once(secure ? "secureConnect" : "connect", () => {
        if (done) return;
        connected = true;
        done = true;
        clearTimeout(connectTimer);
        socket.off("close", onClientGone);
        this.tunnel(req, socket, head, upstream, secure, options).then(resolve, resolve);
      });
    });
  }

  private tunnel(
    req: http.IncomingMessage,
    socket: Duplex,
    head: Buffer,
    connection: net.Socket,
    secure: boolean,
    options: WsOptions,
  ): Promise<"upgraded" | number | UpstreamError> {
    return new Promise((resolve) => {
      let done = false;
      let timedOut = false;
      let pending: http.ClientRequest | undefined;
      const finish = (r: "upgraded" | number | UpstreamError) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.proxy.off("proxyReqWs", onProxyReq);
        resolve(r);
      };
      const timer = setTimeout(() => {
        timedOut = true;
        if (pending) pending.destroy();
        else connection.destroy();
      }, options.timeout);
      const onProxyReq = (proxyReq: http.ClientRequest, r: http.IncomingMessage) => {
        if (r !== req) return;
        pending = proxyReq;
        // Registered before the library's own listeners: the response phase sees the head before it is written.
        proxyReq.once("upgrade", (proxyRes: http.IncomingMessage) => {
          options.onHead?.(101, proxyRes.headers);
          finish("upgraded");
        });
        // A refused upgrade: http-proxy relays the answer but leaves the upstream socket open (node-http-proxy #783).
        proxyReq.once("response", (proxyRes: http.IncomingMessage) => {
          const status = proxyRes.statusCode ?? 502;
          options.onHead?.(status, proxyRes.headers);
          proxyRes.once("end", () => connection.destroy());
          finish(status);
        });
      };
      this.proxy.on("proxyReqWs", onProxyReq);
      req.url = options.path;
      const agent = oneSocketAgent(connection, secure);
      this.proxy.ws(req, socket, head, { target: options.target, agent, toProxy: true }, (err: Error) => {
        connection.destroy();
        if (done) return;
        const code = (err as NodeJS.ErrnoException).code ?? "EPROTO";
        const error = timedOut
          ? new UpstreamError("response_timeout", "ETIMEDOUT", "upgrade not answered in time", true)
          : new UpstreamError("reset", code, err.message, true);
        options.onFailure(error);
        finish(error);
      });
    });
  }
}

export interface WsOptions {
  target: URL;
  path: string;
  connectTimeout: number;
  /** How long the upstream may take to answer the upgrade once connected. */
  timeout: number;
  /** The response phase, on the upstream's answer (101 or a refusal) before it is relayed. */
  onHead?: ((status: number, headers: HeaderBag) => void) | undefined;
  onFailure: (err: UpstreamError) => void;
}

/** An agent that hands out one already connected socket: the upgrade request goes on the gateway's connection. */
function oneSocketAgent(connection: net.Socket, secure: boolean): http.Agent {
  const agent = secure ? new https.Agent({ keepAlive: false }) : new http.Agent({ keepAlive: false });
  (agent as unknown as { createConnection: () => net.Socket }).createConnection = () => connection;
  return agent;
}

function classify(err: Error, a: Attempt): UpstreamError {
  const code = (err as NodeJS.ErrnoException).code ?? "EPROTO";
  const sent = a.connected;
  if (a.tooLarge)
    return new UpstreamError("body_too_large", "GW_BODY_TOO_LARGE", "request body over maxBodySize", sent);
  if (a.responseTimedOut) {
    const ms = a.options.responseTimeout;
    return new UpstreamError("response_timeout", "ETIMEDOUT", `no response headers within ${ms}ms`, sent);
  }
  if (a.connectTimedOut) {
    return new UpstreamError(
      "connect_timeout",
      "ECONNECTTIMEOUT",
      `connect timed out after ${a.options.connectTimeout}ms`,
      false,
    );
  }
  if (!a.connected || CONNECT_CODES.has(code)) return new UpstreamError("connect", code, err.message, false);
  return new UpstreamError("reset", code, err.message, sent);
}
