// The one interface of a registry store (memory, file, redis) and the allocation record they keep.
import type { EventEmitter } from "node:events";
import type { LeaseStatus } from "./lease.ts";
import type { PortRequest, TypeTable } from "./allocate.ts";

/** One allocation as stored. Times are epoch ms (the store's clock: Redis TIME for redis). */
export interface AllocationRecord {
  id: string;
  serviceName: string;
  serviceType: string;
  host: string;
  port: number;
  weight: number;
  healthPath?: string;
  pid: number | null;
  metadata: Record<string, string>;
  allocatedAt: number;
  lastHeartbeat: number;
  /** The ttl in force at the last heartbeat (the lease). */
  ttl: number;
  status: LeaseStatus;
}

export interface AllocateInput {
  /** Everything but what the store decides (id, port, times, status). */
  record: Omit<AllocationRecord, "id" | "port" | "allocatedAt" | "lastHeartbeat" | "status">;
  request: PortRequest;
  types: TypeTable;
  /** Ports unusable on this host besides the allocated ones: reserved, static upstreams, own listeners, bound. */
  exclude: readonly number[];
}

export type AllocateResult =
  { ok: true; record: AllocationRecord } | { ok: false; error: "port_unavailable" | "range_exhausted" };

export interface ReapResult {
  expired: AllocationRecord[];
  removed: AllocationRecord[];
}

/** A write refused because the store cannot be reached: the API answers 503 store_unavailable. */
export class StoreUnavailableError extends Error {
  constructor(reason: string) {
    super(`registry store unavailable: ${reason}`);
  }
}

export type StoreEvents = {
  /**
   * The snapshot changed (through this gateway or another). `ids` names the allocations that changed (added,
   * renewed, expired or gone), so the registry re-applies only those; without it anything may have changed (a
   * resync), and the registry re-applies the whole snapshot.
   */
  change: [ids?: readonly string[]];
  up: [];
  down: [reason: string];
};

/**
 * Writes are atomic in the store and answer from it; reads (`snapshot`) come from the local copy, which is what
 * pools are built from, so a store outage never empties a pool.
 */
export interface RegistryStore extends EventEmitter<StoreEvents> {
  readonly kind: "memory" | "file" | "redis";
  /** Whether the last contact with the store worked. */
  readonly isUp: boolean;
  start(): Promise<void>;
  close(): Promise<void>;
  snapshot(): ReadonlyMap<string, AllocationRecord>;
  allocate(input: AllocateInput): Promise<AllocateResult>;
  /** Renews the lease with `ttl` (reviving an expired one); undefined when the allocation is not stored. */
  heartbeat(id: string, ttl: number): Promise<AllocationRecord | undefined>;
  /** Removes it at once; undefined when it is not stored. */
  release(id: string): Promise<AllocationRecord | undefined>;
  /** Expires the leases past their ttl and removes those `deregisterAfter` past it. */
  reap(deregisterAfter: number): Promise<ReapResult>;
  /** Removes every expired allocation now. */
  cleanup(): Promise<AllocationRecord[]>;
  /** The configured ranges (redis keeps a bitmap per range and host). */
  setTypes?(types: TypeTable): void;
  /** Re-reads the whole store now (redis); a no-op for in-process stores. */
  syncNow(): Promise<void>;
}
