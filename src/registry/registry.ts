// The service registry: allocations and leases in a store, applied to pool membership, health-checked, reaped.
// The HTTP shell around it is server/registry-api.ts; this module answers its operations.
import type { GatewayConfig, PoolConfig, RegistryConfig } from "../config/types.ts";
import { HealthChecker } from "../health/checker.ts";
import type { Logger } from "../log/log.ts";
import type { GatewayMetrics, RegistryMetricsSnapshot } from "../metrics/metrics.ts";
import type { HealthState } from "../pool/upstream.ts";
import { capacity, formatRange, hostKey, rangeChain, type TypeSpec, type TypeTable } from "./allocate.ts";
import { expiresAt, reapInterval, ReapGuard, type GuardDecision } from "./lease.ts";
import { isLocalHost, portBound, sameHost } from "./probe.ts";
import { StoreUnavailableError, type AllocationRecord, type RegistryStore } from "./store.ts";
import { FileStore } from "./store-file.ts";
import { MemoryStore } from "./store-memory.ts";
import { RedisStore } from "./store-redis.ts";

/** A registry allocation as a member of one pool (the runtime's DiscoveredMember). */
export interface MemberSpec {
  id: string;
  url: string;
  weight: number;
  healthPath?: string;
  allocationId: string;
}

/** Where membership goes: the runtime in force (the gateway hands over the current one on each call). */
export interface MembershipSink {
  syncDiscovered(pool: string, members: readonly MemberSpec[]): void;
  /** A discovered member's health as its pool's checker sees it; undefined when it is not a member. */
  memberHealth(pool: string, id: string): HealthState | undefined;
}

export interface RegistryDeps {
  log: Logger;
  metrics: GatewayMetrics;
  sink: () => MembershipSink | undefined;
  /** The gateway's own listeners (actual ports), never allocated on their hosts. */
  listeners: () => { host: string; port: number }[];
  /** Tests: another store or clock. */
  store?: RegistryStore;
  now?: () => number;
}

/** The validated body of POST /registry/allocations. */
export interface AllocateRequest {
  service_name: string;
  service_type: string;
  preferred_port?: number | undefined;
  required?: boolean | undefined;
  claim?: boolean | undefined;
  host?: string | undefined;
  health_path?: string | undefined;
  weight?: number | undefined;
  pid?: number | undefined;
  metadata?: Record<string, string> | undefined;
}

export interface AllocationView {
  allocation_id: string;
  service_name: string;
  service_type: string;
  host: string;
  port: number;
  url: string;
  status: "active" | "expired" | "released";
  health: HealthState;
  pools: string[];
  weight: number;
  allocated_at: string;
  last_heartbeat: string;
  expires_at: string;
  ttl_ms: number;
  pid: number | null;
  metadata: Record<string, string>;
}

export type RegistryErrorCode =
  "bad_request" | "not_found" | "port_unavailable" | "range_exhausted" | "store_unavailable";

/** A refused operation; the API answers it from the error catalog. */
export class RegistryError extends Error {
  constructor(
    readonly code: RegistryErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export interface ConflictView {
  host: string;
  port: number;
  allocations: string[];
  reason: "duplicate" | "unregistered_listener";
}

// A port found bound stays excluded this long, so a burst of allocations does not probe it again each time.
const BOUND_CACHE_MS = 10_000;
const CONFLICT_SCAN_EVERY_MS = 10_000;
const STATIC_EXCLUDED_MS = 5_000;
const PROBE_ROUNDS = 16;

function sameMember(a: MemberSpec, b: MemberSpec): boolean {
  return a.id === b.id && a.url === b.url && a.weight === b.weight && a.healthPath === b.healthPath;
}

function authority(host: string, port: number): string {
  return `${host.includes(":") ? `[${host}]` : host}:${port}`;
}

export function createStore(config: GatewayConfig, now?: () => number): RegistryStore {
  const reg = config.registry!;
  if (reg.store === "file") return new FileStore(reg.file, now);
  if (reg.store === "redis") return new RedisStore(config.redis);
  return new MemoryStore(now);
}

/** The registry's own check of an allocation no pool checks. */
interface CheckerEntry {
  checker: HealthChecker;
  health: HealthState;
  path: string;
  /** The first probe, until it has run. */
  first: NodeJS.Timeout | undefined;
}

export class Registry {
  readonly store: RegistryStore;
  private config: GatewayConfig;
  private reg: RegistryConfig;
  private types: TypeTable = new Map();
  private reserved = new Set<number>();
  private readonly guard: ReapGuard;
  private readonly now: () => number;
  private reapTimer: NodeJS.Timeout | undefined;
  private reaping: Promise<void> | undefined;
  private closed = false;
  /** Writes being handled now: after a stall the reap waits until they are done. */
  private writes = 0;
  private readonly bound = new Map<string, number>();
  /** Reserved and static upstream ports per host key, for the config in force. */
  private staticExcluded: { config: GatewayConfig; at: number; byHost: Map<string, number[]> } | undefined;
  /** Checkers of allocations no pool discovers (the directory still shows their health). */
  private readonly checkers = new Map<string, CheckerEntry>();
  private conflictScan: { at: number; result: Promise<ConflictView[]> } | undefined;

  constructor(
    config: GatewayConfig,
    private readonly deps: RegistryDeps,
  ) {
    this.now = deps.now ?? Date.now;
    this.config = config;
    this.reg = config.registry!;
    this.store = deps.store ?? createStore(config, deps.now);
    this.guard = new ReapGuard(this.reg.ttl, reapInterval(this.reg.ttl), this.now);
    this.setTypes(this.reg);
    deps.metrics.setRegistrySource(() => this.metricsSnapshot());
  }

  private get log(): Logger {
    return this.deps.log;
  }

  async start(): Promise<void> {
    this.store.on("change", (ids) => this.onChange(ids));
    this.store.on("down", (reason) => {
      this.guard.storeDown();
      this.log.error("registry_store_down", { store: this.store.kind, reason });
    });
    this.store.on("up", () => {
      this.guard.storeBack();
      this.log.info("registry_store_up", { store: this.store.kind });
    });
    await this.store.start();
    this.apply();
    this.scheduleReap();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.reapTimer) clearTimeout(this.reapTimer);
    for (const id of [...this.checkers.keys()]) this.unwatch(id);
    await this.reaping;
    await this.store.close();
  }

  /** A reload: types, ttl, reserved ports and pools' discover may change; allocations stay. */
  configure(config: GatewayConfig): string[] {
    const next = config.registry!;
    const warnings: string[] = [];
    if (
      next.store !== this.reg.store ||
      (next.store === "redis" && config.redis.url !== this.config.redis.url)
    )
      warnings.push("registry.store and redis.url take effect at the next start");
    const held = new Set([...this.store.snapshot().values()].map((r) => r.serviceType));
    for (const t of held)
      if (this.types.has(t) && !Object.hasOwn(next.types, t))
        warnings.push(`registry type "${t}" was removed; its allocations stay until released or expired`);
    this.config = config;
    this.reg = next;
    this.setTypes(next);
    this.guard.setTtl(next.ttl, reapInterval(next.ttl));
    this.dirty = "all";
    this.apply();
    return warnings;
  }

  private setTypes(reg: RegistryConfig): void {
    const table = new Map<string, TypeSpec>();
    for (const [name, t] of Object.entries(reg.types))
      table.set(name, { range: t.range, ...(t.fallback ? { fallback: t.fallback } : {}) });
    this.types = table;
    this.reserved = new Set(reg.reserved);
    this.store.setTypes?.(table);
  }

  // ---- membership and health ----

  private discovers(pc: PoolConfig, r: AllocationRecord): boolean {
    const d = pc.discover;
    if (!d) return false;
    return "type" in d ? r.serviceType === d.type : r.serviceName === d.name;
  }

  private poolsOf(r: AllocationRecord): PoolConfig[] {
    return this.config.pools.filter((pc) => this.discovers(pc, r));
  }

  memberId(r: AllocationRecord): string {
    return `${r.serviceName}@${authority(r.host, r.port)}`;
  }

  private applyPending = false;
  private applyWaiters: (() => void)[] = [];
  /** Each discovering pool's members as last handed to the sink, by allocation id. */
  private members = new Map<string, Map<string, MemberSpec>>();
  /**
   * Allocations changed since the last apply, from the store's change events; "all" when anything may have
   * changed (start, a reload, a resync), which re-applies the whole snapshot.
   */
  private dirty: Set<string> | "all" = "all";

  private onChange(ids: readonly string[] | undefined): void {
    if (!ids) this.dirty = "all";
    else if (this.dirty !== "all") for (const id of ids) this.dirty.add(id);
    this.scheduleApply();
  }

  // Changes are applied once per loop turn. A write answered here waits for that apply (`applied`), so a member
  // is in its pool before its allocation is answered, and the writes of one turn share one pool sync.
  private scheduleApply(): void {
    if (this.applyPending) return;
    this.applyPending = true;
    setImmediate(() => {
      if (this.applyPending) this.apply();
    });
  }

  /**
   * Applies the store's changes: discovering pools get its active allocations, the rest get health-checked. Only
   * the allocations changed since the last apply are looked at, and only the pools they changed are synced, so a
   * write costs the same with ten allocations as with ten thousand (a whole-snapshot apply per write made a
   * burst of allocations quadratic).
   */
  apply(): void {
    this.applyPending = false;
    const waiters = this.applyWaiters;
    this.applyWaiters = [];
    try {
      this.applyNow();
    } finally {
      for (const resolve of waiters) resolve();
    }
  }

  /**
   * Resolves once every change so far is applied. A pool sync hands the runtime the pool's whole member list, so
   * one per allocation made a burst into a pool of thousands quadratic again; the writes that finish in one loop
   * turn now share one.
   */
  private applied(): Promise<void> {
    return new Promise((resolve) => {
      this.applyWaiters.push(resolve);
      this.scheduleApply();
    });
  }

  private applyNow(): void {
    if (this.closed) return;
    const dirty = this.dirty;
    this.dirty = new Set();
    const snapshot = this.store.snapshot();
    const sink = this.deps.sink();
    const discovering = this.config.pools.filter((pc) => pc.discover);
    if (dirty === "all") {
      this.members = new Map(discovering.map((pc) => [pc.name, new Map<string, MemberSpec>()]));
      for (const id of [...this.checkers.keys()]) if (!snapshot.has(id)) this.unwatch(id);
      for (const r of snapshot.values()) this.place(r.id, r, discovering);
      // Every pool, changed or not: after a reload the sink is a new runtime.
      for (const pc of discovering) sink?.syncDiscovered(pc.name, [...this.members.get(pc.name)!.values()]);
      return;
    }
    if (dirty.size === 0) return;
    const touched = new Set<string>();
    for (const id of dirty) this.place(id, snapshot.get(id), discovering, touched);
    for (const name of touched) sink?.syncDiscovered(name, [...this.members.get(name)!.values()]);
    // Nowhere to hand membership to yet: the next apply hands over all of it.
    if (!sink && touched.size) this.dirty = "all";
  }

  /**
   * Puts one allocation (undefined: gone) where it belongs: a member of each pool that discovers it while it is
   * active, else watched by the registry's own checker. Names the pools whose membership changed in `touched`.
   */
  private place(
    id: string,
    r: AllocationRecord | undefined,
    discovering: readonly PoolConfig[],
    touched?: Set<string>,
  ): void {
    let inPool = false;
    let lastHealth: HealthState | undefined;
    for (const pc of discovering) {
      const members = this.members.get(pc.name)!;
      const want = r && r.status === "active" && this.discovers(pc, r) ? this.memberSpec(r) : undefined;
      const have = members.get(id);
      if (want) inPool = true;
      if (!want) {
        if (!have) continue;
        // Leaving (expired): the pool still holds it until the sync below, so its last verdict can be read.
        lastHealth ??= this.deps.sink()?.memberHealth(pc.name, have.id);
        members.delete(id);
        touched?.add(pc.name);
      } else if (!have || !sameMember(have, want)) {
        members.set(id, want);
        touched?.add(pc.name);
      }
    }
    // What no pool checks (undiscovered, or expired and so out of its pools) the registry checks itself.
    const own = this.checkers.get(id);
    if (own && (!r || inPool || own.path !== this.checkPath(r))) this.unwatch(id);
    if (r && !inPool && !this.checkers.has(id)) this.watch(r, lastHealth);
  }

  private memberSpec(r: AllocationRecord): MemberSpec {
    return {
      id: this.memberId(r),
      url: `http://${authority(r.host, r.port)}`,
      weight: r.weight,
      ...(r.healthPath ? { healthPath: r.healthPath } : {}),
      allocationId: r.id,
    };
  }

  private checkPath(r: AllocationRecord): string {
    return r.healthPath ?? (this.poolsOf(r)[0]?.healthCheck ?? this.config.defaults.healthCheck).path;
  }

  /** `health`: the verdict of the pool it just left, shown until the registry's own first check. */
  private watch(r: AllocationRecord, health: HealthState = "unknown"): void {
    const base = this.poolsOf(r)[0]?.healthCheck ?? this.config.defaults.healthCheck;
    const settings = { ...base, path: r.healthPath ?? base.path };
    const entry: CheckerEntry = {
      checker: undefined as unknown as HealthChecker,
      health,
      path: settings.path,
      first: undefined,
    };
    entry.checker = new HealthChecker(new URL(`http://${authority(r.host, r.port)}`), settings, {
      setStatus(up) {
        const next: HealthState = up ? "healthy" : "unhealthy";
        const changed = next !== entry.health;
        entry.health = next;
        return changed;
      },
    });
    this.checkers.set(r.id, entry);
    if (!settings.enabled) return;
    // The first probe comes at a random point of the first interval, not at once. At once, a burst of allocations
    // (or a boot restoring thousands) probed them all together, in every gateway: a probe costs more CPU than the
    // rest of an allocation, and a port allocated a moment ago is seldom listened on yet. The directory shows
    // "unknown" until then; pools check their members at once, so traffic is not held back by this.
    entry.first = setTimeout(
      () => {
        entry.first = undefined;
        void entry.checker.runOnce().then(() => entry.checker.start());
      },
      Math.floor(Math.random() * settings.interval),
    );
    entry.first.unref();
  }

  private unwatch(id: string): void {
    const c = this.checkers.get(id);
    if (!c) return;
    if (c.first) clearTimeout(c.first);
    c.checker.stop();
    this.checkers.delete(id);
  }

  /** Every allocation checker's round now: the test hook, as Gateway.runHealthRound is for upstreams. */
  async runHealthRound(): Promise<void> {
    await Promise.all([...this.checkers.values()].map((c) => c.checker.runOnce()));
  }

  private healthOf(r: AllocationRecord): HealthState {
    const own = this.checkers.get(r.id);
    if (own) return own.health;
    const first = this.poolsOf(r)[0];
    if (!first) return "unknown";
    return this.deps.sink()?.memberHealth(first.name, this.memberId(r)) ?? "unknown";
  }

  view(r: AllocationRecord, status?: "released"): AllocationView {
    return {
      allocation_id: r.id,
      service_name: r.serviceName,
      service_type: r.serviceType,
      host: r.host,
      port: r.port,
      url: `http://${authority(r.host, r.port)}`,
      status: status ?? r.status,
      health: status ? "unknown" : this.healthOf(r),
      pools: this.poolsOf(r).map((p) => p.name),
      weight: r.weight,
      allocated_at: new Date(r.allocatedAt).toISOString(),
      last_heartbeat: new Date(r.lastHeartbeat).toISOString(),
      expires_at: new Date(expiresAt(r)).toISOString(),
      ttl_ms: r.ttl,
      pid: r.pid,
      metadata: r.metadata,
    };
  }

  // ---- writes ----

  /** The API calls this as a write request arrives, and `endWrite` when it is answered (see the stall guard). */
  beginWrite(): void {
    this.writes++;
  }

  endWrite(): void {
    this.writes--;
  }

  private async write<T>(op: "allocate" | "heartbeat" | "release", run: () => Promise<T>): Promise<T> {
    try {
      const out = await run();
      this.deps.metrics.registryOps.inc({ op, result: "ok" });
      return out;
    } catch (err) {
      this.deps.metrics.registryOps.inc({ op, result: "error" });
      if (err instanceof StoreUnavailableError) {
        this.log.debug("registry_write_failed", { op, reason: err.message });
        throw new RegistryError(
          "store_unavailable",
          `The registry store (${this.store.kind}) is unreachable.`,
        );
      }
      throw err;
    }
  }

  /** Ports never allocated on `host` besides the allocated ones: reserved, static upstreams, own listeners. */
  private excluded(host: string): number[] {
    const key = hostKey(host);
    const now = this.now();
    // Parsing every static upstream's URL per allocation cost more than the allocation itself with 200 of them;
    // the answer only changes with the config (or, rarely, this machine's addresses: hence the age limit).
    if (this.staticExcluded?.config !== this.config || now - this.staticExcluded.at > STATIC_EXCLUDED_MS)
      this.staticExcluded = { config: this.config, at: now, byHost: new Map() };
    let fixed = this.staticExcluded.byHost.get(key);
    if (!fixed) {
      const set = new Set(this.reserved);
      for (const pc of this.config.pools) {
        for (const u of pc.upstreams) {
          const url = new URL(u.url);
          const port = Number(url.port || (url.protocol === "https:" ? 443 : 80));
          if (sameHost(url.hostname, host)) set.add(port);
        }
      }
      fixed = [...set];
      this.staticExcluded.byHost.set(key, fixed);
    }
    const out = [...fixed];
    // Listeners are read each time: a port-0 listener only has its port once it listens.
    const local = isLocalHost(host);
    for (const l of this.deps.listeners()) {
      const wildcard = l.host === "0.0.0.0" || l.host === "::" || l.host === "";
      if ((wildcard && local) || sameHost(l.host, host)) out.push(l.port);
    }
    for (const [k, until] of this.bound) {
      if (until < now) this.bound.delete(k);
      else if (k.startsWith(`${key} `)) out.push(Number(k.slice(k.indexOf(" ") + 1)));
    }
    return out;
  }

  /** A write the API refused before it reached the store (a body that failed validation). */
  refused(op: "allocate" | "heartbeat" | "release"): void {
    this.deps.metrics.registryOps.inc({ op, result: "error" });
  }

  async allocate(req: AllocateRequest, remoteAddress: string | undefined): Promise<AllocationView> {
    if (!this.types.has(req.service_type)) {
      this.refused("allocate");
      throw new RegistryError("bad_request", `service_type: unknown type "${req.service_type}"`);
    }
    const host = req.host ?? hostKey(remoteAddress ?? "127.0.0.1");
    const probe = !req.claim && isLocalHost(host);
    const record = {
      serviceName: req.service_name,
      serviceType: req.service_type,
      host,
      weight: req.weight ?? 1,
      ...(req.health_path ? { healthPath: req.health_path } : {}),
      pid: req.pid ?? null,
      metadata: req.metadata ?? {},
      ttl: this.reg.ttl,
    };
    const request = {
      type: req.service_type,
      ...(req.preferred_port !== undefined ? { preferred: req.preferred_port } : {}),
      ...(req.required ? { required: true } : {}),
    };
    // Only excluded ports the store could pick matter: the redis store passes each one to its script.
    const ranges = rangeChain(this.types, req.service_type).map((t) => this.types.get(t)!.range);
    const matters = (p: number) =>
      p === req.preferred_port || ranges.some((g) => p >= g.first && p <= g.last);
    const exclude = this.excluded(host).filter(matters);
    const r = await this.write("allocate", async () => {
      for (let round = 0; round < PROBE_ROUNDS; round++) {
        const res = await this.store.allocate({ record, request, types: this.types, exclude });
        if (!res.ok) {
          const message =
            res.error === "port_unavailable"
              ? `Port ${req.preferred_port} is taken on ${host}.`
              : `No free port for type ${req.service_type} on ${host}.`;
          throw new RegistryError(res.error, message);
        }
        // Advisory: a port some process already listens on is skipped (the probe cannot see the future).
        if (!probe || !(await portBound(res.record.port))) return res.record;
        this.bound.set(`${hostKey(host)} ${res.record.port}`, this.now() + BOUND_CACHE_MS);
        exclude.push(res.record.port);
        await this.store.release(res.record.id);
      }
      throw new RegistryError("range_exhausted", `No free port for type ${req.service_type} on ${host}.`);
    });
    await this.applied();
    this.log.info("registry_allocate", {
      id: r.id,
      service: r.serviceName,
      type: r.serviceType,
      host: r.host,
      port: r.port,
      store: this.store.kind,
    });
    return this.view(r);
  }

  async heartbeat(id: string): Promise<AllocationView> {
    const r = await this.write("heartbeat", async () => {
      const out = await this.store.heartbeat(id, this.reg.ttl);
      if (!out) throw new RegistryError("not_found", `No allocation ${id}: allocate again.`);
      return out;
    });
    if (r.status === "active" && this.applyPending) this.apply();
    return this.view(r);
  }

  async release(id: string): Promise<AllocationView> {
    const r = await this.write("release", async () => {
      const out = await this.store.release(id);
      if (!out) throw new RegistryError("not_found", `No allocation ${id}.`);
      return out;
    });
    await this.applied();
    this.log.info("registry_release", {
      id: r.id,
      service: r.serviceName,
      type: r.serviceType,
      host: r.host,
      port: r.port,
    });
    return this.view(r, "released");
  }

  async cleanup(): Promise<number> {
    let removed: AllocationRecord[];
    try {
      removed = await this.store.cleanup();
    } catch (err) {
      this.deps.metrics.registryOps.inc({ op: "remove", result: "error" });
      if (err instanceof StoreUnavailableError)
        throw new RegistryError(
          "store_unavailable",
          `The registry store (${this.store.kind}) is unreachable.`,
        );
      throw err;
    }
    this.apply();
    for (const r of removed) this.logRemoved(r, "cleanup");
    return removed.length;
  }

  private logRemoved(r: AllocationRecord, reason: "deregistered" | "cleanup"): void {
    this.deps.metrics.registryOps.inc({ op: "remove", result: "ok" });
    this.log.info("registry_remove", {
      id: r.id,
      service: r.serviceName,
      type: r.serviceType,
      host: r.host,
      port: r.port,
      reason,
    });
  }

  // ---- reaping ----

  private scheduleReap(): void {
    if (this.closed) return;
    this.reapTimer = setTimeout(() => {
      this.reapTimer = undefined;
      this.reaping = this.reapTick()
        .catch((err: unknown) => this.log.error("registry_reap_failed", { error: String(err) }))
        .finally(() => this.scheduleReap());
    }, reapInterval(this.reg.ttl));
    this.reapTimer.unref();
  }

  private async reapTick(): Promise<void> {
    const decision = this.guard.tick();
    if (decision.reap) return this.reapNow();
    if (decision.reason === "stall") {
      this.logHeld(decision);
      await this.readQueued();
      this.guard.queueRead();
      await this.reapNow();
      this.log.debug("registry_reap_resumed", { stallMs: decision.stallMs });
      return;
    }
    if (decision.reason === "store_back") this.logHeld(decision);
  }

  private heldLogged = 0;
  private logHeld(d: Exclude<GuardDecision, { reap: true }>): void {
    if (d.reason === "store_back") {
      // Once per outage, not once per tick of the grace.
      if (this.heldLogged === d.untilMs) return;
      this.heldLogged = d.untilMs;
      this.log.warn("registry_reap_held", {
        reason: "the store is back; leases get one ttl to be renewed",
        until: new Date(d.untilMs).toISOString(),
      });
    } else if (d.reason === "stall") {
      this.log.warn("registry_reap_held", {
        reason: "event loop stalled; waiting for the heartbeats queued meanwhile",
        stallMs: d.stallMs,
      });
    }
  }

  /**
   * After a stall, heartbeats that arrived meanwhile sit in socket buffers. Turns of the loop let the poll
   * phase read them (the HTTP parser then calls the API, which counts them as writes); then the reap waits for
   * those writes to finish, for at most one ttl.
   */
  private async readQueued(): Promise<void> {
    const turn = () => new Promise<void>((r) => setImmediate(r));
    // A new connection is accepted in one poll phase and read in the next: three turns cover both.
    for (let i = 0; i < 3; i++) await turn();
    const deadline = this.now() + this.reg.ttl;
    while (this.writes > 0 && this.now() < deadline && !this.closed) {
      await new Promise<void>((r) => setTimeout(r, 5).unref());
    }
  }

  /**
   * One reap now (also the test hook), unless the store is down: nothing expires while it is unreachable.
   * Leases past their ttl expire (drained from pools), those deregisterAfter past it are removed.
   */
  async reapNow(): Promise<void> {
    if (!this.store.isUp) return;
    let result;
    try {
      result = await this.store.reap(this.reg.deregisterAfter);
    } catch (err) {
      if (err instanceof StoreUnavailableError) return;
      throw err;
    }
    for (const r of result.expired) {
      this.deps.metrics.registryOps.inc({ op: "expire", result: "ok" });
      this.log.warn("registry_expire", {
        id: r.id,
        service: r.serviceName,
        type: r.serviceType,
        host: r.host,
        port: r.port,
        lastHeartbeat: new Date(r.lastHeartbeat).toISOString(),
      });
    }
    for (const r of result.removed) this.logRemoved(r, "deregistered");
    if (result.expired.length || result.removed.length) this.apply();
  }

  /** Re-reads the store now (redis): the test hook instead of waiting for the rev poll. */
  syncNow(): Promise<void> {
    return this.store.syncNow();
  }

  // ---- reads ----

  list(filter: {
    name?: string;
    type?: string;
    port?: number;
    host?: string;
    status?: string;
  }): AllocationView[] {
    return [...this.store.snapshot().values()]
      .filter(
        (r) =>
          (filter.name === undefined || r.serviceName === filter.name) &&
          (filter.type === undefined || r.serviceType === filter.type) &&
          (filter.port === undefined || r.port === filter.port) &&
          (filter.host === undefined || hostKey(r.host) === hostKey(filter.host)) &&
          (filter.status === undefined || r.status === filter.status),
      )
      .sort((a, b) => a.serviceName.localeCompare(b.serviceName) || a.port - b.port)
      .map((r) => this.view(r));
  }

  services(): Record<string, AllocationView[]> {
    const out: Record<string, AllocationView[]> = {};
    for (const v of this.list({})) (out[v.service_name] ??= []).push(v);
    return out;
  }

  typesView(): Record<
    string,
    { range: string; fallback: string | null; capacity: number; allocated: number; free: number }
  > {
    const records = [...this.store.snapshot().values()];
    const out: ReturnType<Registry["typesView"]> = {};
    for (const [name, t] of this.types) {
      const cap = capacity(t.range, this.reserved);
      const allocated = records.filter((r) => r.port >= t.range.first && r.port <= t.range.last).length;
      out[name] = {
        range: formatRange(t.range),
        fallback: t.fallback ?? null,
        capacity: cap,
        allocated,
        free: Math.max(0, cap - allocated),
      };
    }
    return out;
  }

  stats(): {
    total: number;
    active: number;
    expired: number;
    by_type: Record<
      string,
      { active: number; expired: number; capacity: number; utilization: number | null }
    >;
  } {
    const records = [...this.store.snapshot().values()];
    const byType: ReturnType<Registry["stats"]>["by_type"] = {};
    for (const [name, t] of this.types)
      byType[name] = { active: 0, expired: 0, capacity: capacity(t.range, this.reserved), utilization: 0 };
    for (const r of records) {
      const b = (byType[r.serviceType] ??= { active: 0, expired: 0, capacity: 0, utilization: 0 });
      b[r.status]++;
    }
    for (const b of Object.values(byType))
      b.utilization = b.capacity ? Math.round(((b.active + b.expired) / b.capacity) * 10_000) / 10_000 : null;
    const active = records.filter((r) => r.status === "active").length;
    return { total: records.length, active, expired: records.length - active, by_type: byType };
  }

  /** Two allocations on one host:port, and (scanned at most every 10 s) unregistered listeners in the ranges here. */
  async conflicts(): Promise<ConflictView[]> {
    const records = [...this.store.snapshot().values()];
    const held = new Map<string, AllocationRecord[]>();
    for (const r of records) {
      const key = `${hostKey(r.host)} ${r.port}`;
      held.set(key, [...(held.get(key) ?? []), r]);
    }
    const out: ConflictView[] = [];
    for (const list of held.values()) {
      if (list.length > 1)
        out.push({
          host: list[0]!.host,
          port: list[0]!.port,
          allocations: list.map((r) => r.id),
          reason: "duplicate",
        });
    }
    const now = this.now();
    if (!this.conflictScan || now - this.conflictScan.at >= CONFLICT_SCAN_EVERY_MS)
      this.conflictScan = { at: now, result: this.scanListeners(records) };
    return [...out, ...(await this.conflictScan.result)];
  }

  private async scanListeners(records: AllocationRecord[]): Promise<ConflictView[]> {
    const mine = new Set(records.filter((r) => isLocalHost(r.host)).map((r) => r.port));
    for (const p of this.excluded("127.0.0.1")) if (!this.reserved.has(p)) mine.add(p);
    const ports: number[] = [];
    for (const t of this.types.values())
      for (let p = t.range.first; p <= t.range.last; p++)
        if (!mine.has(p) && !this.reserved.has(p)) ports.push(p);
    const found: ConflictView[] = [];
    // A few at a time: each probe is a socket.
    for (let i = 0; i < ports.length; i += 64) {
      const slice = ports.slice(i, i + 64);
      const bound = await Promise.all(slice.map((p) => portBound(p)));
      slice.forEach((p, j) => {
        if (bound[j])
          found.push({ host: "127.0.0.1", port: p, allocations: [], reason: "unregistered_listener" });
      });
    }
    return found;
  }

  private metricsSnapshot(): RegistryMetricsSnapshot {
    const s = this.stats();
    return {
      storeUp: this.store.isUp,
      types: Object.entries(s.by_type).map(([type, b]) => ({
        type,
        active: b.active,
        expired: b.expired,
        capacity: b.capacity,
      })),
    };
  }
}
