// Watches gateway.yaml for changes and asks for a reload when its content really changed (debounced, by hash).
import { createHash } from "node:crypto";
import { watch, type FSWatcher } from "node:fs";
import { readFile } from "node:fs/promises";
import { basename, dirname, resolve as resolvePath } from "node:path";
import type { Logger } from "../log/log.ts";

export interface ConfigWatcherOptions {
  /** The config file; its directory is what gets watched. */
  path: string;
  /** sha256 (hex) of the running config: a file with this content needs no reload. */
  runningHash(): string;
  /** Called when the file's content differs from both the running config and the last content acted on. */
  onChange(): void;
  /** Called when the file is back to the running config's content after a different (broken) one was seen. */
  onInSync?(): void;
  log: Logger;
  /** Quiet time after the last event before the file is read (editors write in several steps). Default 200 ms. */
  debounceMs?: number;
  /**
   * The file is also read this often whatever the events say (default 15 s): inotify misses changes on some mounts
   * (network and overlay filesystems), and a ConfigMap's `..data` swap has been reported as a plain write
   * (configmap-reload#190). The hash check makes an unchanged read cost one small file read.
   */
  pollMs?: number;
}

/**
 * Watches the file's directory rather than the file: editors that save by writing a temp file and renaming it over
 * the original (vim, many IDEs) replace the inode, and a watch on the old inode would go silent after the first save.
 */
export class ConfigWatcher {
  private readonly watcher: FSWatcher;
  private readonly name: string;
  private readonly path: string;
  private timer: NodeJS.Timeout | undefined;
  private readonly poll: NodeJS.Timeout;
  private checking = false;
  private again = false;
  private closed = false;
  /** The content last acted on, so repeated events for a file that stays broken do not log the same errors. */
  private lastSeen: string | undefined;

  constructor(private readonly options: ConfigWatcherOptions) {
    this.path = resolvePath(options.path);
    this.name = basename(this.path);
    this.watcher = watch(dirname(this.path), { persistent: false }, (_event, file) => {
      if (this.relevant(file)) this.schedule();
    });
    this.watcher.on("error", (err) => {
      // The directory went away or became unreadable: SIGHUP and POST /admin/reload still work.
      options.log.warn("config_watch_error", { file: this.path, error: err.message });
    });
    this.poll = setInterval(() => void this.check(), options.pollMs ?? 15_000);
    this.poll.unref();
  }

  // Kubernetes swaps a mounted ConfigMap by renaming its `..data` symlink, so the file itself never shows up in an
  // event; some platforms give no file name at all. The hash check below makes these extra reads harmless.
  private relevant(file: string | Buffer | null): boolean {
    if (file === null) return true;
    const name = file.toString();
    return name === this.name || name.startsWith("..");
  }

  private schedule(): void {
    if (this.closed) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.check(), this.options.debounceMs ?? 200);
    this.timer.unref();
  }

  private async check(): Promise<void> {
    this.timer = undefined;
    if (this.checking) {
      // An event during a check: look again once it is done, so the last write is never missed.
      this.again = true;
      return;
    }
    this.checking = true;
    try {
      let hash: string;
      try {
        hash = createHash("sha256")
          .update(await readFile(this.path))
          .digest("hex");
      } catch {
        // Mid-rename or deleted: the next event (the new file appearing) triggers another look.
        return;
      }
      if (this.closed) return;
      if (hash === this.options.runningHash() && this.lastSeen !== undefined && this.lastSeen !== hash) {
        // A broken edit undone (or a good one whose reload has not been asked for): what runs is what the file says.
        this.lastSeen = hash;
        this.options.log.info("config_in_sync", {
          file: this.path,
          hash,
          detail: "the file is back in sync with the running config",
        });
        this.options.onInSync?.();
        return;
      }
      if (hash === this.lastSeen || hash === this.options.runningHash()) {
        this.options.log.debug("config_unchanged", { file: this.path, hash });
        return;
      }
      this.lastSeen = hash;
      this.options.onChange();
    } finally {
      this.checking = false;
      if (this.again) {
        this.again = false;
        this.schedule();
      }
    }
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    clearInterval(this.poll);
    this.watcher.close();
  }
}
