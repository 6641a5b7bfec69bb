// The file registry store: the memory store plus a JSON snapshot (temp file + rename, at most one write a second),
// restored at boot with each lease's remaining ttl. One gateway only.
import { readFile, rename, writeFile } from "node:fs/promises";
import type { AllocationRecord } from "./store.ts";
import { MemoryStore } from "./store-memory.ts";

const WRITE_EVERY_MS = 1_000;

interface Snapshot {
  version: 1;
  savedAt: number;
  allocations: AllocationRecord[];
}

export class FileStore extends MemoryStore {
  override readonly kind = "file";
  private timer: NodeJS.Timeout | undefined;
  private lastWrite = 0;
  private writing: Promise<void> = Promise.resolve();
  private failing = false;
  private closed = false;

  constructor(
    private readonly path: string,
    now: () => number = Date.now,
  ) {
    super(now);
  }

  /**
   * Restores the snapshot. The time the gateway was down does not count against a lease (its services could not
   * renew it meanwhile): each lease resumes with the ttl it had left when the snapshot was written.
   */
  override async start(): Promise<void> {
    let text: string;
    try {
      text = await readFile(this.path, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
      throw err;
    }
    const snap = JSON.parse(text) as Snapshot;
    const shift = Math.max(0, this.now() - snap.savedAt);
    for (const r of snap.allocations ?? []) this.restore({ ...r, lastHeartbeat: r.lastHeartbeat + shift });
  }

  override async close(): Promise<void> {
    this.closed = true;
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
      this.writing = this.writing.then(() => this.write());
    }
    await this.writing;
  }

  /** Writes now (tests, shutdown); normally writes are coalesced to one a second. */
  async flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.writing = this.writing.then(() => this.write());
    await this.writing;
  }

  protected override changed(ids: readonly string[]): void {
    super.changed(ids);
    if (this.timer || this.closed) return;
    const wait = Math.max(0, this.lastWrite + WRITE_EVERY_MS - this.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.writing = this.writing.then(() => this.write());
    }, wait);
    this.timer.unref();
  }

  private async write(): Promise<void> {
    this.lastWrite = this.now();
    const snap: Snapshot = { version: 1, savedAt: this.now(), allocations: [...this.snapshot().values()] };
    const tmp = `${this.path}.${process.pid}.tmp`;
    try {
      await writeFile(tmp, JSON.stringify(snap, null, 1));
      // rename is atomic on one filesystem: a crash leaves the old snapshot or the new one, never half of one.
      await rename(tmp, this.path);
      if (this.failing) {
        this.failing = false;
        this.emit("up");
      }
    } catch (err) {
      if (!this.failing) {
        this.failing = true;
        this.emit("down", `cannot write ${this.path}: ${(err as Error).message}`);
      }
    }
  }
}
