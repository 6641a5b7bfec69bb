// Unit tests for gateway.schema.json: in step with the zod schema, and accepting what the loader accepts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { buildJsonSchema } from "../../src/config/json-schema.ts";

type Schema = Record<string, unknown>;

const FILE = fileURLToPath(new URL("../../gateway.schema.json", import.meta.url));
const schema = buildJsonSchema() as Schema;

void test("gateway.schema.json matches the zod schema", () => {
  const written = readFileSync(FILE, "utf8");
  assert.ok(
    written === `${JSON.stringify(schema, null, 2)}\n`,
    "gateway.schema.json is out of date with src/config/schema.ts: run `npm run schema` and commit the result",
  );
});

void test("it is a draft-07 schema with an id and a title", () => {
  assert.equal(schema.$schema, "http://json-schema.org/draft-07/schema#");
  assert.equal(typeof schema.$id, "string");
  assert.equal(typeof schema.title, "string");
  assert.doesNotMatch(JSON.stringify(schema), /starts_with/, "only draft-07 formats");
});

// A file shaped like the bundled gateway.yaml, as an editor sees it: ${...} not yet substituted.
const bundled = () => ({
  listen: "${GATEWAY_PORT:-8002}",
  shutdownGrace: "10s",
  admin: { apiKey: "${GATEWAY_ADMIN_KEY:-}" },
  defaults: {
    balance: "weighted-round-robin",
    healthCheck: { path: "/health", interval: "5s", timeout: 2000, expectStatus: "200-399" },
    breaker: { errorThresholdPercentage: 50, rollingWindow: "10s", failureStatuses: [502, 503] },
    timeouts: { connect: "2s", response: "1m" },
    retries: 2,
  },
  pools: {
    main_app: {
      upstreams: [
        { url: "http://127.0.0.1:8000", weight: 3 },
        { url: "http://127.0.0.1:8001", backup: true, run: { command: "node app.js", env: { PORT: 8001 } } },
      ],
    },
    weather: { healthCheck: { interval: "250ms" }, upstreams: [{ url: "http://${WEATHER_HOST}:8200" }] },
  },
  routes: [
    { prefix: "/api/weather/", pool: "weather", stripPrefix: true },
    { prefix: "/", pool: "main_app" },
  ],
});

void test("it accepts a gateway.yaml like the bundled one, with durations as strings or integers", () => {
  assert.deepEqual(validate(schema, bundled()), []);
});

void test("it rejects what an editor should flag", () => {
  const cases: [string, (c: ReturnType<typeof bundled>) => void, string][] = [
    ["unknown key", (c) => Object.assign(c, { colour: "blue" }), "/colour: unexpected key"],
    [
      "typo in a nested key",
      (c) => Object.assign(c.defaults.healthCheck, { intervall: "5s" }),
      "/defaults/healthCheck/intervall: unexpected key",
    ],
    ["bad duration", (c) => (c.shutdownGrace = "5 seconds"), "/shutdownGrace: no anyOf branch matches"],
    ["zero weight", (c) => (c.pools.main_app.upstreams[0]!.weight = 0), "/pools/main_app/upstreams/0/weight"],
    // An empty upstream list is valid with `discover` (the loader rejects it without): JSON Schema's editors get
    // the shape of discover instead.
    [
      "bad discover",
      (c) => Object.assign(c.pools.weather, { discover: { kind: "pdf" } }),
      "/pools/weather/discover: no anyOf branch matches",
    ],
    ["missing prefix", (c) => Reflect.deleteProperty(c.routes[0]!, "prefix"), "/routes/0: missing prefix"],
    [
      "bad pool name",
      (c) => Object.assign(c.pools, { "a b": c.pools.weather }),
      "/pools/a b: bad property name",
    ],
  ];
  for (const [name, mutate, expected] of cases) {
    const config = bundled();
    mutate(config);
    const errors = validate(schema, config);
    assert.ok(
      errors.some((e) => e.startsWith(expected)),
      `${name}: expected "${expected}", got ${JSON.stringify(errors)}`,
    );
  }
});

/** Just the draft-07 keywords the generated schema uses; enough to show an editor would agree with the loader. */
function validate(s: Schema, value: unknown, at = ""): string[] {
  const where = at || "/";
  if (typeof s.$ref === "string") {
    const name = s.$ref.replace("#/definitions/", "");
    return validate((schema.definitions as Record<string, Schema>)[name]!, value, at);
  }
  if (Array.isArray(s.anyOf)) {
    const ok = (s.anyOf as Schema[]).some((branch) => validate(branch, value, at).length === 0);
    if (!ok) return [`${where}: no anyOf branch matches`];
  }
  const errors: string[] = [];
  if (s.type !== undefined) {
    const types = Array.isArray(s.type) ? (s.type as string[]) : [s.type as string];
    if (!types.some((t) => hasType(value, t))) return [`${where}: not ${types.join("|")}`];
  }
  if (Array.isArray(s.enum) && !s.enum.includes(value)) errors.push(`${where}: not in enum`);
  if (typeof value === "string" && typeof s.pattern === "string" && !new RegExp(s.pattern, "u").test(value)) {
    errors.push(`${where}: does not match ${s.pattern}`);
  }
  if (typeof value === "string" && typeof s.minLength === "number" && value.length < s.minLength) {
    errors.push(`${where}: too short`);
  }
  if (typeof value === "number") {
    if (typeof s.minimum === "number" && value < s.minimum) errors.push(`${where}: below minimum`);
    if (typeof s.maximum === "number" && value > s.maximum) errors.push(`${where}: above maximum`);
    if (typeof s.exclusiveMinimum === "number" && value <= s.exclusiveMinimum)
      errors.push(`${where}: not above min`);
  }
  if (Array.isArray(value)) {
    if (typeof s.minItems === "number" && value.length < s.minItems) {
      errors.push(`${where}: fewer than ${s.minItems} items`);
    }
    if (isSchema(s.items)) {
      const items = s.items;
      value.forEach((v, i) => errors.push(...validate(items, v, `${at}/${i}`)));
    }
  } else if (typeof value === "object" && value !== null) {
    const props = (s.properties ?? {}) as Record<string, Schema>;
    for (const key of (s.required ?? []) as string[])
      if (!(key in value)) errors.push(`${where}: missing ${key}`);
    for (const [key, v] of Object.entries(value)) {
      const path = `${at}/${key}`;
      if (isSchema(s.propertyNames) && validate(s.propertyNames, key, path).length > 0) {
        errors.push(`${path}: bad property name`);
      }
      const sub = props[key] ?? s.additionalProperties;
      if (sub === false) errors.push(`${path}: unexpected key`);
      else if (isSchema(sub)) errors.push(...validate(sub, v, path));
    }
  }
  return errors;
}

function hasType(value: unknown, type: string): boolean {
  if (type === "integer") return Number.isInteger(value);
  if (type === "array") return Array.isArray(value);
  if (type === "null") return value === null;
  if (type === "object") return typeof value === "object" && value !== null && !Array.isArray(value);
  return typeof value === type;
}

function isSchema(value: unknown): value is Schema {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
