// The container image without a Docker engine: the Dockerfile passes a linter and has the promised shape, and the
// exact command the image runs (ENTRYPOINT + CMD, and its HEALTHCHECK) works outside a container.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { validate } from "dockerfile-utils";
import { get, poolConfig } from "../helpers/gateway.ts";
import { ROOT, freePort, spawnLogged } from "../helpers/processes.ts";
import { FakeUpstream } from "../helpers/upstream.ts";

const dockerfile = readFileSync(`${ROOT}Dockerfile`, "utf8");

interface Instruction {
  name: string;
  args: string;
  stage: number;
}

/** Instructions with continuation lines joined, numbered by build stage (0 = the first FROM). */
function instructions(text: string): Instruction[] {
  const out: Instruction[] = [];
  let stage = -1;
  const logical = text
    .split("\n")
    .filter((l) => !/^\s*#/.test(l))
    .join("\n")
    .replace(/\\\n/g, " ")
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean);
  for (const line of logical) {
    const [, name = "", args = ""] = /^(\S+)\s*(.*)$/.exec(line) ?? [];
    if (name.toUpperCase() === "FROM") stage++;
    out.push({ name: name.toUpperCase(), args, stage });
  }
  return out;
}

const all = instructions(dockerfile);
const lastStage = Math.max(...all.map((i) => i.stage));
const final = all.filter((i) => i.stage === lastStage);
const one = (list: Instruction[], name: string) => {
  const found = list.filter((i) => i.name === name);
  assert.equal(found.length, 1, `one ${name}`);
  return found[0]!.args;
};
const execForm = (args: string): string[] => {
  const parsed = JSON.parse(args) as unknown;
  assert.ok(Array.isArray(parsed) && parsed.every((a) => typeof a === "string"), `exec form: ${args}`);
  return parsed;
};

void test("the Dockerfile passes dockerfile-utils' linter", () => {
  const problems = validate(dockerfile).map(
    (d) => `line ${d.range.start.line + 1}: ${typeof d.message === "string" ? d.message : d.message.value}`,
  );
  assert.deepEqual(problems, []);
});

void test("the Dockerfile: multi-stage on an official Node LTS image, prod deps only, non-root, exec form", () => {
  const image = /^NODE_IMAGE=(node:(\d+)-[a-z]+-slim)$/.exec(
    one(
      all.filter((i) => i.stage === -1),
      "ARG",
    ),
  );
  assert.ok(image, "an official node image, slim variant");
  assert.equal(Number(image[2]) % 2, 0, "an even major: an LTS line");
  assert.ok(Number(image[2]) >= 20);
  assert.equal(lastStage, 1, "two stages");
  const build = all.filter((i) => i.stage === 0);
  assert.ok(build.some((i) => i.name === "RUN" && /\bnpm ci\b/.test(i.args)));
  assert.ok(build.some((i) => i.name === "RUN" && /npm run build/.test(i.args)));
  assert.ok(final.some((i) => i.name === "RUN" && /npm ci --omit=dev --ignore-scripts/.test(i.args)));
  assert.ok(final.some((i) => i.name === "COPY" && /--from=build \/app\/dist/.test(i.args)));
  assert.equal(one(final, "USER"), "node");
  assert.match(one(final, "ENV"), /GATEWAY_CONFIG=\/etc\/gateway\/gateway\.yaml/);
  const health = one(final, "HEALTHCHECK");
  const healthCmd = execForm(/CMD\s+(\[.*\])$/.exec(health)![1]!);
  assert.equal(healthCmd[0], "node", "no curl in slim images");
  assert.deepEqual(execForm(one(final, "ENTRYPOINT")), ["node", "/app/bin/gateway.js"]);
  assert.deepEqual(execForm(one(final, "CMD")), ["start"]);
});

void test(".dockerignore lets in exactly what the image copies from the context", () => {
  const rules = readFileSync(`${ROOT}.dockerignore`, "utf8")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"));
  assert.equal(rules[0], "*", "everything is out unless let in");
  const allowed = rules.filter((r) => r.startsWith("!")).map((r) => r.slice(1).replace(/\/$/, ""));
  const copied = all
    .filter((i) => i.name === "COPY" && !i.args.startsWith("--from"))
    .flatMap((i) => i.args.split(/\s+/).slice(0, -1))
    .map((p) => p.replace(/^\.\//, "").replace(/\/$/, ""));
  for (const path of copied) assert.ok(allowed.includes(path), `${path} is copied but ignored`);
  assert.ok(!allowed.some((p) => p === "node_modules" || p === "dist" || p.startsWith(".git")));
});

void test(
  "the image's start command and health check work outside a container; SIGTERM exits 0",
  { timeout: 60_000 },
  async (t) => {
    if (!existsSync(`${ROOT}dist/cli.js`)) {
      // In CI `npm ci` has built dist/: a missing build is a failure there, never a skip.
      assert.ok(!process.env.CI, "dist/cli.js is missing: npm ci (prepare) should have built it");
      t.skip("no build: run `npm run build` (npm ci does it) before this test");
      return;
    }
    // The image's command with /app (its WORKDIR) mapped to this checkout.
    const argv = [...execForm(one(final, "ENTRYPOINT")), ...execForm(one(final, "CMD"))].map((a) =>
      a.replace(/^\/app\//, ROOT),
    );
    const upstream = await FakeUpstream.start({ name: "up" });
    const dir = await mkdtemp(join(tmpdir(), "gateway-image-"));
    const config = join(dir, "gateway.yaml");
    await writeFile(config, poolConfig([{ url: upstream.url }]));
    const gw = spawnLogged(argv, { cwd: dir, env: { GATEWAY_CONFIG: config, NODE_ENV: "production" } });
    try {
      const started = await gw.logs.waitFor("gateway_started");
      assert.equal(started.config, config);
      const base = `http://127.0.0.1:${String(started.listen).split(":").at(-1)}`;
      assert.equal((await get(`${base}/healthz`)).status, 200);
      await gw.logs.waitFor("ready");
      assert.equal((await get(`${base}/anything`)).json().name, "up");

      const healthCmd = execForm(/CMD\s+(\[.*\])$/.exec(one(final, "HEALTHCHECK"))![1]!);
      const runCheck = async (url: string) => {
        const [file, ...args] = healthCmd;
        const p = spawn(file === "node" ? process.execPath : file!, args, {
          env: { ...process.env, GATEWAY_HEALTHCHECK_URL: url },
          stdio: "ignore",
        });
        const [code] = (await once(p, "exit")) as [number | null];
        return code;
      };
      assert.equal(await runCheck(`${base}/healthz`), 0, "healthy gateway");
      assert.equal(await runCheck(`http://127.0.0.1:${await freePort()}/healthz`), 1, "nothing listening");

      gw.child.kill("SIGTERM");
      assert.deepEqual(await gw.exited, { code: 0, signal: null });
      assert.ok(gw.logs.events("shutdown_complete").length === 1);
    } finally {
      gw.child.kill("SIGKILL");
      await upstream.close();
    }
  },
);
