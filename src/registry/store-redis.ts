// The redis registry store, shared by every gateway on one Redis and keyPrefix (the only ioredis import).
// Writes are Lua scripts (redis-scripts.ts); reads come from a local snapshot kept by rev-numbered PUBLISH events,
// with a resync on a rev gap, on every reconnect and on a rev poll. Redis is never on the request path.
import { EventEmitter } from "node:events";
import { Redis, type RedisOptions } from "ioredis";
import type { RedisConfig } from "../config/types.ts";
import { hostKey, rangeChain, type PortRange, type TypeTable } from "./allocate.ts";
import { newAllocationId } from "./store-memory.ts";
import { ALLOCATE, HEARTBEAT, REAP, RELEASE } from "./redis-scripts.ts";
import {
  StoreUnavailableError,
  type AllocateInput,
  type AllocateResult,
  type AllocationRecord,
  type ReapResult,
  type RegistryStore,
  type StoreEvents,
} from "./store.ts";

// Pub/sub loses whatever is sent while a subscriber is away; the poll bounds how long that can go unnoticed.
const REV_POLL_MS = 1_000;
const REAP_LIMIT = 100;

type Reply = [number, string] | ["err", string] | ["host", string] | ["kept"] | null;

interface Scripts {
  gwAllocate(...args: (string | number)[]): Promise<Reply>;
  gwHeartbeat(...args: (string | number)[]): Promise<Reply>;
  gwRelease(...args: (string | number)[]): Promise<Reply>;
  gwReap(...args: (string | number)[]): Promise<[number, string[], string[]]>;
}

interface StoreEvent {
  rev: number;
  op: "allocate" | "heartbeat" | "release" | "remove" | "expire";
  rec?: string;
  recs?: string[];
  id?: string;
}

/** `unix:///path` is a socket path; redis:// and rediss:// go to ioredis as they are. */
function connect(url: string, options: RedisOptions): Redis {
  if (url.startsWith("unix://")) return new Redis({ ...options, path: new URL(url).pathname });
  return new Redis(url, options);
}

function unavailable(err: unknown): Error {
  // A script's own error (a bug, not an outage) stays what it is.
  if (err instanceof Error && err.name === "ReplyError" && !/LOADING|BUSY|MASTERDOWN/.test(err.message))
    return err;
  const e = err as NodeJS.ErrnoException;
  return new StoreUnavailableError(e.code ?? e.message);
}

/**
 * A client for other users of the top-level `redis` (rate limits): no offline queue and short timeouts, so a
 * command while Redis is down fails at once and the caller falls back instead of waiting.
 */
export function redisClient(config: RedisConfig): Redis {
  const client = connect(config.url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: 500,
    connectTimeout: 2_000,
    retryStrategy: (times) => Math.min(50 * times, 1_000),
  });
  // Without an `error` listener an unreachable Redis would crash the process; its users see failed commands.
  client.on("error", () => {});
  return client;
}

export class RedisStore extends EventEmitter<StoreEvents> implements RegistryStore {
  readonly kind = "redis";
  private readonly client: Redis;
  private readonly sub: Redis;
  private readonly scripts: Scripts;
  private readonly records = new Map<string, AllocationRecord>();
  private rev = 0;
  /** Whether this gateway ever saw the store hold data: an empty store after that means Redis lost it. */
  private sawData = false;
  private up = false;
  private downReported = false;
  private syncing: Promise<void> | undefined;
  /** While a resync reads the store: what happened meanwhile, by rev (see readAll). */
  private sinceRead: { rev: number; event: boolean; apply: () => void }[] | undefined;
  private resyncAgain = false;
  private poll: NodeJS.Timeout | undefined;
  private closed = false;
  private ranges: PortRange[] = [];
  private readonly key: (name: string) => string;
  private readonly channel: string;

  constructor(config: RedisConfig) {
    super();
    const base = `${config.keyPrefix}:{reg}:`;
    this.key = (name) => base + name;
    this.channel = base + "events";
    const options: RedisOptions = {
      lazyConnect: true,
      // No offline queue: a command while disconnected fails at once (503) instead of hanging (node-redis#2205).
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      // Generous: a reply that sits in the socket while the event loop is busy must not count as an outage (the
      // timer phase runs before the poll phase reads it). A dead Redis is seen sooner, by the connection closing.
      commandTimeout: 5_000,
      connectTimeout: 2_000,
      retryStrategy: (times) => Math.min(50 * times, 1_000),
      autoResubscribe: false,
      protocol: 2,
    };
    // Commands issued in one loop turn (a burst of allocations) go out in one write: a write(2) per script call
    // cost more gateway CPU than the rest of an allocation. The subscriber only subscribes.
    this.client = connect(config.url, { ...options, enableAutoPipelining: true });
    this.sub = connect(config.url, options);
    for (const [name, lua] of [
      ["gwAllocate", ALLOCATE],
      ["gwHeartbeat", HEARTBEAT],
      ["gwRelease", RELEASE],
      ["gwReap", REAP],
    ] as const) {
      // No fixed key count: the caller passes it first. ioredis sends EVALSHA and falls back to EVAL on NOSCRIPT
      // (after a Redis restart or SCRIPT FLUSH).
      this.client.defineCommand(name, { lua });
    }
    this.scripts = this.client as unknown as Scripts;
    // Without an `error` listener an unreachable Redis would crash the process; the reason goes to `down`.
    this.client.on("error", () => {});
    this.sub.on("error", () => {});
    this.client.on("ready", () => void this.onReady());
    this.client.on("close", () => this.onDown("connection closed"));
    this.sub.on("ready", () => {
      // Subscribed first, then read: an event between the two is either in the snapshot or applied after it.
      this.sub
        .subscribe(this.channel)
        .then(() => this.resync())
        .catch(() => {});
    });
    this.sub.on("message", (_channel: string, message: string) => this.onEvent(message));
  }

  get isUp(): boolean {
    return this.up;
  }

  setTypes(types: TypeTable): void {
    this.ranges = [...types.values()].map((t) => t.range);
  }

  async start(): Promise<void> {
    this.poll = setInterval(() => void this.pollRev(), REV_POLL_MS);
    this.poll.unref();
    try {
      await Promise.all([this.client.connect(), this.sub.connect()]);
      await this.resync();
    } catch (err) {
      // Down at boot: the gateway starts with an empty registry and resyncs once Redis answers.
      this.onDown((err as NodeJS.ErrnoException).code ?? (err as Error).message);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.poll) clearInterval(this.poll);
    this.client.disconnect();
    this.sub.disconnect();
    await this.syncing?.catch(() => {});
  }

  snapshot(): ReadonlyMap<string, AllocationRecord> {
    return this.records;
  }

  syncNow(): Promise<void> {
    return this.resync();
  }

  // ---- connection state ----

  private async onReady(): Promise<void> {
    try {
      await this.resync();
    } catch {
      return;
    }
    if (this.up) return;
    this.up = true;
    if (this.downReported) {
      this.downReported = false;
      this.emit("up");
    }
  }

  /** Reported once per outage; at boot too, when Redis cannot be reached from the start. */
  private onDown(reason: string): void {
    if (this.closed) return;
    this.up = false;
    if (this.downReported) return;
    this.downReported = true;
    this.emit("down", reason);
  }

  private async pollRev(): Promise<void> {
    if (this.closed || this.client.status !== "ready") return;
    try {
      const before = this.rev;
      const remote = Number((await this.client.get(this.key("rev"))) ?? 0);
      // Below what this gateway had already seen: Redis lost its data (flushed, or restarted between two polls).
      if (remote < before) return await this.resync();
      // The events up to `remote` were published before GET answered, but they travel on the other connection and
      // may not have been read yet (and events read meanwhile may have taken this.rev past `remote`): during a
      // burst the poll nearly always saw a difference and re-read the whole store each second. A PING on the
      // subscriber answers after those events, so a gap still there then is a lost event.
      if (this.rev >= remote) return;
      if (this.sub.status === "ready") {
        await this.sub.ping();
        if (this.rev >= remote) return;
      }
      await this.resync();
    } catch {
      // The connection events report the outage.
    }
  }

  // ---- the local snapshot ----

  private onEvent(message: string): void {
    let ev: StoreEvent;
    try {
      ev = JSON.parse(message) as StoreEvent;
    } catch {
      return;
    }
    if (this.sinceRead) {
      // A resync is reading the store: this event may be newer than what it reads; it is replayed on top.
      this.sinceRead.push({ rev: ev.rev, event: true, apply: () => this.applyEvent(ev) });
      return;
    }
    if (ev.rev <= this.rev) return;
    if (ev.rev !== this.rev + 1) {
      this.resync().catch(() => {});
      return;
    }
    const ids = this.applyEvent(ev);
    this.rev = ev.rev;
    this.emit("change", ids);
  }

  /** Returns the ids the event changed. */
  private applyEvent(ev: StoreEvent): string[] {
    const ids: string[] = [];
    const put = (json: string) => {
      const r = JSON.parse(json) as AllocationRecord;
      this.records.set(r.id, r);
      ids.push(r.id);
    };
    if (ev.rec) put(ev.rec);
    for (const json of ev.recs ?? []) put(json);
    if (ev.id && (ev.op === "release" || ev.op === "remove")) {
      this.records.delete(ev.id);
      ids.push(ev.id);
    }
    this.sawData = true;
    return ids;
  }

  /** Applies the answer of one of our own writes at once, so the writer reads its own write. */
  private ownWrite(rev: number, ids: readonly string[], apply: () => void): void {
    apply();
    this.sinceRead?.push({ rev, event: false, apply });
    if (rev === this.rev + 1) this.rev = rev;
    this.emit("change", ids);
  }

  /** Re-reads the whole store (one at a time; a request while one runs makes it run once more). */
  private resync(): Promise<void> {
    if (this.syncing) {
      this.resyncAgain = true;
      return this.syncing;
    }
    this.syncing = (async () => {
      try {
        do {
          this.resyncAgain = false;
          await this.readAll();
        } while (this.resyncAgain && !this.closed);
      } finally {
        this.syncing = undefined;
      }
    })();
    return this.syncing;
  }

  private async readAll(mayWriteBack = true): Promise<void> {
    if (this.client.status !== "ready") throw new StoreUnavailableError(`redis ${this.client.status}`);
    // Events and own writes from now on may be newer than the snapshot (they can be read before its answer, on
    // the other connection): replaying them on top keeps them, where clearing the map lost them and moved the
    // rev back, so the next event looked like a gap and a burst turned into one resync after another.
    this.sinceRead = [];
    let res;
    try {
      res = await this.client.multi().get(this.key("rev")).hgetall(this.key("alloc")).exec();
    } catch (err) {
      this.sinceRead = undefined;
      throw err;
    }
    const since = this.sinceRead;
    this.sinceRead = undefined;
    if (!res) throw new StoreUnavailableError("transaction aborted");
    const [[e1, revText], [e2, all]] = res as [
      [Error | null, string | null],
      [Error | null, Record<string, string>],
    ];
    if (e1 || e2) throw unavailable(e1 ?? e2);
    const remote = Number(revText ?? 0);
    const entries = Object.values(all);
    if (mayWriteBack && entries.length === 0 && this.records.size > 0 && this.sawData && remote < this.rev) {
      // Redis came back empty (restarted without persistence, or flushed): write back what this gateway knew, so
      // no service loses its port. Other gateways do the same; a record already written back is skipped.
      await this.writeBack([...this.records.values()]);
      return this.readAll(false);
    }
    this.records.clear();
    for (const json of entries) {
      const r = JSON.parse(json) as AllocationRecord;
      this.records.set(r.id, r);
    }
    if (entries.length > 0) this.sawData = true;
    this.rev = remote;
    for (const e of since.filter((x) => x.rev > remote).sort((a, b) => a.rev - b.rev)) {
      e.apply();
      if (e.rev === this.rev + 1) this.rev = e.rev;
      // Events arrive in order and complete, so one that skips a rev means some were lost: read again.
      else if (e.event && e.rev > this.rev) this.resyncAgain = true;
    }
    this.emit("change");
  }

  private async writeBack(records: AllocationRecord[]): Promise<void> {
    for (const r of records) {
      const ranges = this.ranges;
      await this.scripts.gwAllocate(
        ...this.allocKeys(r.host, ranges),
        this.channel,
        "restore",
        JSON.stringify(r),
        "",
        "",
        // The deregistration delay of a restored expired lease is not known here; it gets one ttl more.
        r.ttl,
        ...this.rangeArgs(ranges),
      );
    }
  }

  // ---- writes ----

  private rangeArgs(ranges: PortRange[]): number[] {
    return [ranges.length, ...ranges.flatMap((r) => [r.first, r.last])];
  }

  private allocKeys(host: string, ranges: PortRange[]): (string | number)[] {
    const h = hostKey(host);
    return [
      5 + ranges.length,
      this.key("alloc"),
      this.key("exp"),
      this.key("rm"),
      this.key("rev"),
      this.key(`port:${h}`),
      ...ranges.map((r) => this.key(`bm:${h}:${r.first}-${r.last}`)),
    ];
  }

  private async call<T>(run: () => Promise<T>): Promise<T> {
    if (this.client.status !== "ready") throw new StoreUnavailableError(`redis ${this.client.status}`);
    try {
      return await run();
    } catch (err) {
      throw unavailable(err);
    }
  }

  async allocate(input: AllocateInput): Promise<AllocateResult> {
    const ranges = rangeChain(input.types, input.request.type).map((t) => input.types.get(t)!.range);
    const record = { ...input.record, id: newAllocationId() };
    const reply = await this.call(() =>
      this.scripts.gwAllocate(
        ...this.allocKeys(input.record.host, ranges),
        this.channel,
        "new",
        JSON.stringify(record),
        input.request.preferred ?? "",
        input.request.required ? "1" : "",
        input.record.ttl,
        ...this.rangeArgs(ranges),
        ...input.exclude,
      ),
    );
    if (!reply) throw new Error("allocate script answered nothing");
    if (reply[0] === "err") {
      const code = reply[1] === "port_unavailable" ? "port_unavailable" : "range_exhausted";
      return { ok: false, error: code };
    }
    const [rev, json] = reply as [number, string];
    const r = JSON.parse(json) as AllocationRecord;
    this.ownWrite(rev, [r.id], () => this.records.set(r.id, r));
    return { ok: true, record: r };
  }

  async heartbeat(id: string, ttl: number): Promise<AllocationRecord | undefined> {
    const reply = await this.call(() =>
      this.scripts.gwHeartbeat(
        4,
        this.key("alloc"),
        this.key("exp"),
        this.key("rm"),
        this.key("rev"),
        this.channel,
        id,
        ttl,
      ),
    );
    if (!reply) {
      this.ownWrite(-1, [id], () => this.records.delete(id));
      return undefined;
    }
    const [rev, json] = reply as [number, string];
    const r = JSON.parse(json) as AllocationRecord;
    this.ownWrite(rev, [r.id], () => this.records.set(r.id, r));
    return r;
  }

  /** RELEASE needs the keys of the record's host; the snapshot knows it, and the script checks it. */
  private async remove(
    id: string,
    mode: "release" | "reap" | "cleanup",
  ): Promise<AllocationRecord | undefined> {
    let host = this.records.get(id)?.host;
    if (host === undefined) {
      const json = await this.call(() => this.client.hget(this.key("alloc"), id));
      if (!json) return undefined;
      host = (JSON.parse(json) as AllocationRecord).host;
    }
    for (let attempt = 0; attempt < 3; attempt++) {
      const ranges = this.ranges;
      const h: string = host;
      const reply = await this.call(() =>
        this.scripts.gwRelease(
          ...this.allocKeys(h, ranges),
          this.channel,
          id,
          h,
          mode,
          ...this.rangeArgs(ranges),
        ),
      );
      if (!reply) {
        this.ownWrite(-1, [id], () => this.records.delete(id));
        return undefined;
      }
      if (reply[0] === "kept") return undefined;
      if (reply[0] === "host") {
        host = (JSON.parse(reply[1]) as AllocationRecord).host;
        continue;
      }
      const [rev, json] = reply as [number, string];
      const r = JSON.parse(json) as AllocationRecord;
      this.ownWrite(rev, [id], () => this.records.delete(id));
      return r;
    }
    return undefined;
  }

  release(id: string): Promise<AllocationRecord | undefined> {
    return this.remove(id, "release");
  }

  async reap(deregisterAfter: number): Promise<ReapResult> {
    const [rev, expired, due] = await this.call(() =>
      this.scripts.gwReap(
        4,
        this.key("alloc"),
        this.key("exp"),
        this.key("rm"),
        this.key("rev"),
        this.channel,
        deregisterAfter,
        REAP_LIMIT,
      ),
    );
    const out: ReapResult = { expired: expired.map((j) => JSON.parse(j) as AllocationRecord), removed: [] };
    if (out.expired.length)
      this.ownWrite(
        rev,
        out.expired.map((r) => r.id),
        () => out.expired.forEach((r) => this.records.set(r.id, r)),
      );
    for (const json of due) {
      const r = await this.remove((JSON.parse(json) as AllocationRecord).id, "reap");
      if (r) out.removed.push(r);
    }
    return out;
  }

  async cleanup(): Promise<AllocationRecord[]> {
    await this.call(() => this.resync());
    const removed: AllocationRecord[] = [];
    const now = Date.now();
    for (const r of [...this.records.values()]) {
      // The script decides on Redis's clock; this only picks the candidates.
      if (r.status !== "expired" && now < r.lastHeartbeat + r.ttl - 1_000) continue;
      const out = await this.remove(r.id, "cleanup");
      if (out) removed.push(out);
    }
    return removed;
  }
}
