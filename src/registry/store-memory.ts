// The in-process registry store (the default): one gateway's allocations in maps, leases on an injected clock.
import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import { choosePort, hostKey } from "./allocate.ts";
import { reapVerdict, renew, statusAt } from "./lease.ts";
import type {
  AllocateInput,
  AllocateResult,
  AllocationRecord,
  ReapResult,
  RegistryStore,
  StoreEvents,
} from "./store.ts";

/** Opaque and unguessable: a registrant that knows an id may renew or end it. */
export function newAllocationId(): string {
  return randomBytes(12).toString("base64url");
}

export class MemoryStore extends EventEmitter<StoreEvents> implements RegistryStore {
  readonly kind: "memory" | "file" = "memory";
  readonly isUp = true;
  protected readonly records = new Map<string, AllocationRecord>();
  /** hostKey → port → id */
  private readonly ports = new Map<string, Map<number, string>>();

  constructor(protected readonly now: () => number = Date.now) {
    super();
  }

  start(): Promise<void> {
    return Promise.resolve();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  syncNow(): Promise<void> {
    return Promise.resolve();
  }

  snapshot(): ReadonlyMap<string, AllocationRecord> {
    return this.records;
  }

  /** Puts a record back as it was (file restore). Returns false when its host:port is already held. */
  protected restore(r: AllocationRecord): boolean {
    const held = this.hostPorts(r.host);
    if (held.has(r.port)) return false;
    held.set(r.port, r.id);
    this.records.set(r.id, r);
    return true;
  }

  private hostPorts(host: string): Map<number, string> {
    const key = hostKey(host);
    let m = this.ports.get(key);
    if (!m) this.ports.set(key, (m = new Map<number, string>()));
    return m;
  }

  allocate(input: AllocateInput): Promise<AllocateResult> {
    return Promise.resolve(this.allocateNow(input));
  }

  protected allocateNow(input: AllocateInput): AllocateResult {
    const held = this.hostPorts(input.record.host);
    const exclude = new Set(input.exclude);
    const choice = choosePort(input.request, input.types, (p) => held.has(p) || exclude.has(p));
    if (!choice.ok)
      return { ok: false, error: choice.error === "unknown_type" ? "range_exhausted" : choice.error };
    const now = this.now();
    const record: AllocationRecord = {
      ...input.record,
      id: newAllocationId(),
      port: choice.port,
      allocatedAt: now,
      ...renew(now, input.record.ttl),
      status: "active",
    };
    held.set(record.port, record.id);
    this.records.set(record.id, record);
    this.changed([record.id]);
    return { ok: true, record };
  }

  heartbeat(id: string, ttl: number): Promise<AllocationRecord | undefined> {
    return Promise.resolve(this.heartbeatNow(id, ttl));
  }

  protected heartbeatNow(id: string, ttl: number): AllocationRecord | undefined {
    const r = this.records.get(id);
    if (!r) return undefined;
    const next: AllocationRecord = { ...r, ...renew(this.now(), ttl), status: "active" };
    this.records.set(id, next);
    this.changed([id]);
    return next;
  }

  release(id: string): Promise<AllocationRecord | undefined> {
    return Promise.resolve(this.releaseNow(id));
  }

  protected releaseNow(id: string): AllocationRecord | undefined {
    const r = this.records.get(id);
    if (!r) return undefined;
    this.drop(r);
    this.changed([id]);
    return r;
  }

  reap(deregisterAfter: number): Promise<ReapResult> {
    return Promise.resolve(this.reapNow(deregisterAfter));
  }

  protected reapNow(deregisterAfter: number): ReapResult {
    const now = this.now();
    const out: ReapResult = { expired: [], removed: [] };
    for (const r of [...this.records.values()]) {
      const verdict = reapVerdict(r, r.status, now, deregisterAfter);
      if (verdict === "remove") {
        this.drop(r);
        out.removed.push(r);
      } else if (verdict === "expire") {
        const next: AllocationRecord = { ...r, status: "expired" };
        this.records.set(r.id, next);
        out.expired.push(next);
      }
    }
    if (out.expired.length || out.removed.length)
      this.changed([...out.expired, ...out.removed].map((r) => r.id));
    return out;
  }

  cleanup(): Promise<AllocationRecord[]> {
    return Promise.resolve(this.cleanupNow());
  }

  protected cleanupNow(): AllocationRecord[] {
    const now = this.now();
    const removed = [...this.records.values()].filter(
      (r) => r.status === "expired" || statusAt(r, now) === "expired",
    );
    for (const r of removed) this.drop(r);
    if (removed.length) this.changed(removed.map((r) => r.id));
    return removed;
  }

  private drop(r: AllocationRecord): void {
    this.records.delete(r.id);
    const held = this.hostPorts(r.host);
    if (held.get(r.port) === r.id) held.delete(r.port);
  }

  protected changed(ids: readonly string[]): void {
    this.emit("change", ids);
  }
}
