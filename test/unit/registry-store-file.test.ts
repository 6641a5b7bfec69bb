// The file store without a gateway: an atomic snapshot (no temp file left), restored with each lease's remaining ttl.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FileStore } from "../../src/registry/store-file.ts";
import { expiresAt } from "../../src/registry/lease.ts";

const types = new Map([["web", { range: { first: 100, last: 109 } }]]);

test("file store: the snapshot is renamed into place and restored with the ttl each lease had left", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "gw-file-store-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, "registry.json");
  let now = 1_000_000;
  const a = new FileStore(path, () => now);
  await a.start();
  const r = await a.allocate({
    record: {
      serviceName: "s",
      serviceType: "web",
      host: "10.0.0.1",
      weight: 2,
      pid: 7,
      metadata: { k: "v" },
      ttl: 10_000,
    },
    request: { type: "web" },
    types,
    exclude: [],
  });
  assert.ok(r.ok);
  now += 4_000; // 6 s of the lease left
  await a.flush();
  await a.close();
  assert.deepEqual(await readdir(dir), ["registry.json"], "no temp file left behind");
  const snap = JSON.parse(await readFile(path, "utf8")) as { version: number; allocations: unknown[] };
  assert.equal(snap.version, 1);
  assert.equal(snap.allocations.length, 1);

  now += 60_000; // the gateway was down for a minute
  const b = new FileStore(path, () => now);
  await b.start();
  const back = b.snapshot().get(r.record.id)!;
  assert.equal(back.port, r.record.port);
  assert.equal(back.weight, 2);
  assert.deepEqual(back.metadata, { k: "v" });
  assert.equal(expiresAt(back) - now, 6_000, "the lease resumes with the 6 s it had left");
  // Its port stays taken.
  const c = await b.allocate({
    record: {
      serviceName: "t",
      serviceType: "web",
      host: "10.0.0.1",
      weight: 1,
      pid: null,
      metadata: {},
      ttl: 10_000,
    },
    request: { type: "web", preferred: r.record.port, required: true },
    types,
    exclude: [],
  });
  assert.deepEqual(c, { ok: false, error: "port_unavailable" });
  await b.close();
});

test("file store: no file yet is an empty registry", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "gw-file-store-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const s = new FileStore(join(dir, "none.json"));
  await s.start();
  assert.equal(s.snapshot().size, 0);
  await s.close();
});
