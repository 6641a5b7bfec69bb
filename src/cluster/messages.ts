// The IPC protocol between the cluster primary and its workers: one type per message, each stamped with a version.
import type { GatewayConfig } from "../config/types.ts";
import type { BreakerStateName, HealthState } from "../pool/upstream.ts";
import type { DiscoveredMember } from "../runtime/runtime.ts";

/** Bumped on any incompatible change; a process drops messages of another version (never half-understands them). */
export const PROTOCOL = 1;

/** The primary's verdict on one upstream, keyed as runtimes key entries (pool + url). */
export interface UpstreamState {
  key: string;
  health: HealthState;
  reason: string;
  drained: boolean;
}

/** What a worker reports of its own view: the tier each pool is on and each upstream's breaker, here. */
export interface PoolView {
  name: string;
  tier: -1 | 0 | 1;
  breakers: { id: string; state: BreakerStateName }[];
  /** Each upstream's requests in flight here and attempts sent from here (the status page's columns). */
  traffic?: { id: string; inFlight: number; requests: number }[];
}

// primary → worker

/** A config to serve (the first one, or a reload). `seq` orders it with state messages. */
export interface ConfigMessage {
  type: "gw:config";
  v: typeof PROTOCOL;
  seq: number;
  config: GatewayConfig;
}

/** The registry's members of one pool, as the primary's runtime has them. */
export interface PoolMembers {
  pool: string;
  members: DiscoveredMember[];
}

/**
 * Pool membership (registry members), then health and drain of every upstream: the whole picture each time, so a
 * lost or stale message cannot skew a worker.
 */
export interface StateMessage {
  type: "gw:state";
  v: typeof PROTOCOL;
  seq: number;
  members: PoolMembers[];
  upstreams: UpstreamState[];
}

/** Drain and exit (the primary's own drainDelay is already over). */
export interface StopMessage {
  type: "gw:stop";
  v: typeof PROTOCOL;
}

/** Asks for the worker's metrics, for one scrape of the primary's /metrics. */
export interface MetricsRequest {
  type: "gw:metrics-request";
  v: typeof PROTOCOL;
  id: number;
}

// worker → primary

/**
 * The worker listens for messages now: the primary sends the config only then (a message that arrives before the
 * worker's listener is registered is lost).
 */
export interface HelloMessage {
  type: "gw:hello";
  v: typeof PROTOCOL;
}

/** The worker listens on the shared port and serves. */
export interface ListeningMessage {
  type: "gw:listening";
  v: typeof PROTOCOL;
  port: number;
}

/** A state message applied: the primary measures propagation with it, tests wait for it. */
export interface AppliedMessage {
  type: "gw:applied";
  v: typeof PROTOCOL;
  seq: number;
}

/** Whole log lines, written by the primary: lines of different processes never interleave. */
export interface LogMessage {
  type: "gw:log";
  v: typeof PROTOCOL;
  text: string;
}

/** A proxied request found the upstream refusing connections: the primary marks it down and probes at once. */
export interface RefusedMessage {
  type: "gw:refused";
  v: typeof PROTOCOL;
  key: string;
  reason: string;
}

/** The worker's tiers and breakers changed (or it just started): for /admin/status and the state gauges. */
export interface ViewMessage {
  type: "gw:view";
  v: typeof PROTOCOL;
  pools: PoolView[];
}

/** The answer to a MetricsRequest: prom-client's JSON form of the worker's registry. */
export interface MetricsReply {
  type: "gw:metrics";
  v: typeof PROTOCOL;
  id: number;
  metrics: unknown[];
}

/** The last message before a worker exits: everything it sent before has reached the channel. */
export interface ByeMessage {
  type: "gw:bye";
  v: typeof PROTOCOL;
}

export type PrimaryMessage = ConfigMessage | StateMessage | StopMessage | MetricsRequest;
export type WorkerMessage =
  | HelloMessage
  | ListeningMessage
  | AppliedMessage
  | LogMessage
  | RefusedMessage
  | ViewMessage
  | MetricsReply
  | ByeMessage;

type Body<M> = M extends unknown ? Omit<M, "v"> : never;

/** Stamps a message with the protocol version. */
export function message<M extends PrimaryMessage | WorkerMessage>(body: Body<M>): M {
  return { ...body, v: PROTOCOL } as M;
}

const PRIMARY_TYPES = new Set(["gw:config", "gw:state", "gw:stop", "gw:metrics-request"]);
const WORKER_TYPES = new Set([
  "gw:hello",
  "gw:listening",
  "gw:applied",
  "gw:log",
  "gw:refused",
  "gw:view",
  "gw:metrics",
  "gw:bye",
]);

function stamped(m: unknown, types: Set<string>): boolean {
  if (typeof m !== "object" || m === null) return false;
  const { type, v } = m as { type?: unknown; v?: unknown };
  return typeof type === "string" && types.has(type) && v === PROTOCOL;
}

export function isPrimaryMessage(m: unknown): m is PrimaryMessage {
  return stamped(m, PRIMARY_TYPES);
}

export function isWorkerMessage(m: unknown): m is WorkerMessage {
  return stamped(m, WORKER_TYPES);
}
