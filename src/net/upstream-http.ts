// How the gateway makes HTTP requests to upstreams, proxied requests and health probes alike: one agent class and
// one request shape, so Node's http client code sees a single kind of agent and request (docs/benchmarks.md,
// "Fifth pass": a probe of another shape every few seconds made every proxied request about 8 µs dearer).
import http from "node:http";
import https from "node:https";
import type net from "node:net";

/** Idle pooled sockets close after this, below Node's default 5 s server keep-alive: the stale-socket race. */
const IDLE_MS = 4_000;
// What Node's agent keeps below a server's announced `Keep-Alive: timeout=N`.
const HINT_MARGIN_MS = 1_000;

type PooledSocket = net.Socket & { _httpMessage?: { res?: http.IncomingMessage } | null };

/** The last `Keep-Alive` value seen and the idle time it gives: upstreams repeat the same one on every answer. */
let lastHint = "";
let lastHintIdle = IDLE_MS;

/** The idle time a response's `Keep-Alive: timeout=N` allows (0: do not keep the socket), else IDLE_MS. */
function hintedIdle(res: http.IncomingMessage | undefined): number {
  // rawHeaders, not `headers`: that getter builds the whole header object, which nothing else on this path needs.
  const raw = res?.rawHeaders;
  if (!raw) return IDLE_MS;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length !== 10 || name.toLowerCase() !== "keep-alive") continue;
    const hint = raw[i + 1]!;
    if (hint !== lastHint) {
      const seconds = /^timeout=(\d+)/.exec(hint)?.[1];
      lastHintIdle =
        seconds === undefined
          ? IDLE_MS
          : Math.max(0, Math.min(IDLE_MS, Number(seconds) * 1_000 - HINT_MARGIN_MS));
      lastHint = hint;
    }
    return lastHintIdle;
  }
  return IDLE_MS;
}

/**
 * The idle timeout of a pooled socket, set when the socket goes back to the pool. Node's `timeout` agent option
 * would do the same, but it also makes every request on the socket add and remove a `timeout` listener of its own
 * (`listenSocketTimeout`), which the gateway does not need: the deadline sweep times requests. The agent's own
 * `timeout` listener still destroys a socket that idles in the free list. Mirrors Node's keepSocketAlive,
 * including a shorter `Keep-Alive: timeout=N` announced by the upstream.
 */
function keepAlive(socket: PooledSocket): boolean {
  // Node's agent default keepAliveMsecs.
  socket.setKeepAlive(true, 1_000);
  socket.unref();
  const idle = hintedIdle(socket._httpMessage?.res);
  if (idle === 0) return false;
  if (socket.timeout !== idle) socket.setTimeout(idle);
  return true;
}

class IdleClosingAgent extends http.Agent {
  override keepSocketAlive(socket: net.Socket): boolean {
    return keepAlive(socket);
  }
}

class IdleClosingHttpsAgent extends https.Agent {
  override keepSocketAlive(socket: net.Socket): boolean {
    return keepAlive(socket);
  }
}

/**
 * An agent for one upstream: keep-alive for proxied requests (dependencies.md §1: without one, every request
 * opens a connection), or a connection per request for health probes, which check that new connections work.
 */
export function upstreamAgent(url: URL, pooled: boolean): http.Agent {
  const secure = url.protocol === "https:";
  if (pooled) {
    const options = { keepAlive: true, maxSockets: 512, maxFreeSockets: 64, scheduling: "lifo" } as const;
    return secure ? new IdleClosingHttpsAgent(options) : new IdleClosingAgent(options);
  }
  // Unbounded sockets without keep-alive is what makes Node send `Connection: close` on a probe; no TLS session
  // cache, so each probe's handshake checks the certificate the upstream has now, as a new connection would.
  const options = { keepAlive: false, maxSockets: Infinity };
  return secure
    ? new IdleClosingHttpsAgent({ ...options, maxCachedSessions: 0 })
    : new IdleClosingAgent(options);
}

/**
 * Opens a request to an upstream. `headers` is a flat [name, value, ...] list sent as given: Node adds no Host
 * to a list, so it must hold one.
 */
export function upstreamRequest(
  target: URL,
  method: string,
  path: string,
  headers: string[],
  agent: http.Agent,
): http.ClientRequest {
  const request = target.protocol === "https:" ? https.request : http.request;
  return request({
    protocol: target.protocol,
    hostname: target.hostname.startsWith("[") ? target.hostname.slice(1, -1) : target.hostname,
    port: target.port,
    method,
    path,
    headers,
    agent,
  });
}
