// A cluster worker: serves the shared main port with the config, health and drain its primary sends over IPC.
import { Writable } from "node:stream";
import type { GatewayConfig } from "../config/types.ts";
import { createLogger, parseLogLevel, type Logger } from "../log/log.ts";
import { Gateway, type ClusterRole } from "../server/gateway.ts";
import {
  isPrimaryMessage,
  message,
  type PoolMembers,
  type PrimaryMessage,
  type UpstreamState,
  type WorkerMessage,
} from "./messages.ts";
import { applyMembers, applyStates, poolViews } from "./state.ts";

function send(m: WorkerMessage): Promise<void> {
  return new Promise((resolve) => {
    // The channel may already be gone (the primary died): nothing is left to tell.
    if (!process.connected) return resolve();
    process.send!(m, undefined, undefined, () => resolve());
  });
}

/**
 * The worker's log goes through the primary, a batch of whole lines per message (the logger batches per event-loop
 * turn): the primary writes each batch in one write, so lines of different processes never interleave, whatever
 * stdout is (a pipe interleaves writes above 4 KiB).
 */
function ipcLogger(worker: number): Logger {
  const toPrimary = new Writable({
    decodeStrings: false,
    write(chunk: string | Buffer, _enc, cb) {
      void send(message<WorkerMessage>({ type: "gw:log", text: chunk.toString() }));
      cb();
    },
  });
  // Each batch is an IPC message (a syscall), so batches are spaced as stdout's are.
  return createLogger({
    level: parseLogLevel(process.env.GATEWAY_LOG_LEVEL),
    stream: toPrimary,
    batchMs: 5,
    tag: { worker },
  });
}

export function runWorker(): void {
  const id = Number(process.env.GATEWAY_WORKER_ID ?? 0);
  const log = ipcLogger(id);
  let states: UpstreamState[] | undefined;
  let members: PoolMembers[] = [];
  let stateSeq = -1;
  let configSeq = -1;
  let config: GatewayConfig | undefined;
  let gw: Gateway | undefined;
  let starting = false;
  let stopping = false;
  let viewQueued = false;

  /** Sends this worker's view unless it is the one sent last. */
  let lastView = "";
  const sendView = () => {
    if (!gw) return;
    const pools = poolViews(gw.runtime);
    const text = JSON.stringify(pools);
    if (text === lastView) return;
    lastView = text;
    void send(message<WorkerMessage>({ type: "gw:view", pools }));
  };
  // In-flight and request counts change with every request: reported once a second when they moved, not per change.
  const trafficTimer = setInterval(() => {
    if (!viewQueued) sendView();
  }, 1_000);
  trafficTimer.unref();
  const reportView = () => {
    if (viewQueued || !gw) return;
    viewQueued = true;
    // Coalesced: one health change can switch several pools and breakers in one turn.
    setImmediate(() => {
      viewQueued = false;
      sendView();
    });
  };
  const role: ClusterRole = {
    kind: "worker",
    prepare: (rt) => {
      applyMembers(rt, members);
      if (states) applyStates(rt, states);
    },
    refused: (entry, reason) =>
      void send(message<WorkerMessage>({ type: "gw:refused", key: entry.key, reason })),
    viewChanged: reportView,
  };

  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    clearInterval(trafficTimer);
    await gw?.stop();
    log.flush();
    await send(message<WorkerMessage>({ type: "gw:bye" }));
    process.exit(code);
  };

  // Serving starts only with both a config and the primary's first health verdicts.
  const maybeStart = async () => {
    if (gw || starting || !config || !states || stopping) return;
    starting = true;
    const first = config;
    const started = await Gateway.start({ configPath: first.source.path, config: first, log, cluster: role });
    // What arrived while it started up: a newer config, newer verdicts.
    if (config !== first) void started.swapIn(config, "cluster");
    applyMembers(started.runtime, members);
    applyStates(started.runtime, states);
    gw = started;
    const port = Number(new URL(started.url).port);
    await send(message<WorkerMessage>({ type: "gw:listening", port }));
    await send(message<WorkerMessage>({ type: "gw:applied", seq: stateSeq }));
    reportView();
  };

  const onMessage = async (m: PrimaryMessage) => {
    switch (m.type) {
      case "gw:config":
        if (m.seq <= configSeq) return;
        configSeq = m.seq;
        config = m.config;
        if (gw) {
          void gw.swapIn(m.config, "cluster");
          reportView();
        } else await maybeStart();
        return;
      case "gw:state":
        if (m.seq <= stateSeq) return;
        stateSeq = m.seq;
        states = m.upstreams;
        members = m.members;
        if (gw) {
          applyMembers(gw.runtime, m.members);
          applyStates(gw.runtime, m.upstreams);
          log.debug("cluster_state", { seq: m.seq });
          await send(message<WorkerMessage>({ type: "gw:applied", seq: m.seq }));
        } else await maybeStart();
        return;
      case "gw:metrics-request": {
        const metrics = gw ? await gw.metrics.registry.getMetricsAsJSON() : [];
        await send(message<WorkerMessage>({ type: "gw:metrics", id: m.id, metrics }));
        return;
      }
      case "gw:stop":
        await stop(0);
        return;
    }
  };

  process.on("message", (m: unknown) => {
    if (isPrimaryMessage(m)) void onMessage(m);
  });
  // The primary coordinates shutdown (its drainDelay first), so the signals a terminal's Ctrl-C or a process
  // manager send to the whole group are left to it. Without a primary there is nobody to wait for.
  process.on("SIGINT", () => undefined);
  process.on("SIGTERM", () => undefined);
  process.on("disconnect", () => void stop(0));
  void send(message<WorkerMessage>({ type: "gw:hello" }));
}
