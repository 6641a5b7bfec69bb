// The reload watcher follows a Kubernetes ConfigMap mounted as a directory: `..data` swapped atomically.
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rename, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { createLogger } from "../../src/log/log.ts";
import { Gateway } from "../../src/server/gateway.ts";
import { ConfigWatcher } from "../../src/server/watch.ts";
import { LogCapture, get, poolConfig } from "../helpers/gateway.ts";
import { FakeUpstream } from "../helpers/upstream.ts";

/**
 * What the kubelet's atomic writer does on an update: the new files go into a fresh timestamped directory, a
 * temporary symlink points at it and is renamed over `..data`, then the old directory is removed. The file the
 * gateway reads (`gateway.yaml -> ..data/gateway.yaml`) never changes itself.
 */
async function publish(dir: string, version: string, text: string, previous?: string): Promise<void> {
  const data = join(dir, `..2026_${version}`);
  await mkdir(data);
  await writeFile(join(data, "gateway.yaml"), text);
  await symlink(`..2026_${version}`, join(dir, "..data_tmp"));
  await rename(join(dir, "..data_tmp"), join(dir, "..data"));
  if (previous) await rm(join(dir, `..2026_${previous}`), { recursive: true });
}

test("a ConfigMap-style ..data symlink swap reloads the config, again and again", async (t) => {
  const a = await FakeUpstream.start({ name: "a" });
  const b = await FakeUpstream.start({ name: "b" });
  t.after(async () => {
    await a.close();
    await b.close();
  });
  const dir = await mkdtemp(join(tmpdir(), "gateway-configmap-"));
  await publish(dir, "01", poolConfig([{ url: a.url }]));
  await symlink("..data/gateway.yaml", join(dir, "gateway.yaml"));

  const logs = new LogCapture();
  const gw = await Gateway.start({
    configPath: join(dir, "gateway.yaml"),
    env: {},
    log: createLogger({ level: "debug", stream: logs }),
    defaultMetrics: false,
    watch: true,
  });
  t.after(() => gw.stop());
  await logs.waitFor("ready");
  assert.equal((await get(`${gw.url}/x`)).json().name, "a");

  await publish(dir, "02", poolConfig([{ url: b.url }]), "01");
  const first = await logs.waitFor("config_reload", (l) => l.trigger === "watch");
  assert.equal(first.hash, gw.config.source.hash);
  assert.equal((await get(`${gw.url}/x`)).json().name, "b");

  await publish(dir, "03", poolConfig([{ url: a.url }]), "02");
  await logs.waitFor("config_reload", (l) => l.trigger === "watch" && l.hash !== first.hash);
  assert.equal((await get(`${gw.url}/x`)).json().name, "a");
  assert.equal(logs.events("config_reload").length, 2, "one reload per swap");
});

test("the poll fallback notices a change that no file event reported in time", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "gateway-poll-"));
  const path = join(dir, "gateway.yaml");
  await writeFile(path, "one");
  let changes = 0;
  let changed!: () => void;
  const seen = new Promise<void>((r) => (changed = r));
  const watcher = new ConfigWatcher({
    path,
    runningHash: () => "none yet",
    onChange: () => {
      changes++;
      changed();
    },
    log: createLogger({ stream: new LogCapture() }),
    // Events would be acted on only after a minute: whatever notices the change first is the poll.
    debounceMs: 60_000,
    pollMs: 50,
  });
  t.after(() => watcher.close());
  // The watcher's timers are unref'd (they must not hold a gateway open); this keeps the test's loop alive.
  const alive = setTimeout(() => undefined, 30_000);
  await seen;
  clearTimeout(alive);
  assert.equal(changes, 1);
});
