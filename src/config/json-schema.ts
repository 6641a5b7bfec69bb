// Publishes the zod config schema as gateway.schema.json (draft-07), so editors check and complete gateway.yaml.
import { z } from "zod";
import { configSchema } from "./schema.ts";

type JsonSchema = Record<string, unknown>;

const ENV_REF = { $ref: "#/definitions/envReference" };

/** What `${NAME}` and `${NAME:-default}` look like: the loader substitutes them, so any typed value may be one. */
const ENV_REFERENCE: JsonSchema = {
  type: "string",
  pattern: "\\$\\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\\}",
  description:
    "an environment variable reference, ${NAME} or ${NAME:-default}, replaced when the file is loaded",
};

// Formats draft-07 defines; zod also writes its own (e.g. "starts_with", already covered by `pattern`), which
// validators either ignore or complain about.
const DRAFT7_FORMATS = new Set([
  "date-time",
  "date",
  "time",
  "email",
  "idn-email",
  "hostname",
  "idn-hostname",
  "ipv4",
  "ipv6",
  "uri",
  "uri-reference",
  "iri",
  "iri-reference",
  "uri-template",
  "json-pointer",
  "relative-json-pointer",
  "regex",
]);

export function buildJsonSchema(): object {
  const generated = z.toJSONSchema(configSchema, {
    io: "input",
    target: "draft-07",
    // Refinements (url protocol, cross-references) have no JSON Schema form; the loader still enforces them.
    unrepresentable: "any",
    override: ({ jsonSchema }) => {
      if (typeof jsonSchema.format === "string" && !DRAFT7_FORMATS.has(jsonSchema.format))
        delete jsonSchema.format;
    },
  }) as JsonSchema;
  const { $schema, ...rest } = generated;
  return {
    $schema,
    $id: "urn:failover-gateway:gateway.schema.json",
    title: "failover-gateway configuration (gateway.yaml)",
    description:
      "Durations are strings with a unit (250ms, 5s, 1m) or integers of milliseconds. Unknown keys are errors.",
    ...allowEnvReferences(rest),
    definitions: { envReference: ENV_REFERENCE },
  };
}

/** Lets every scalar value also be a `${...}` reference, as the loader resolves them before validating. */
function allowEnvReferences(schema: JsonSchema): JsonSchema {
  const out: JsonSchema = { ...schema };
  if (isSchema(schema.properties)) {
    out.properties = Object.fromEntries(
      Object.entries(schema.properties).map(([key, value]) => [key, leafOrNested(value)]),
    );
  }
  if (isSchema(schema.additionalProperties))
    out.additionalProperties = leafOrNested(schema.additionalProperties);
  if (isSchema(schema.items)) out.items = leafOrNested(schema.items);
  return out;
}

function leafOrNested(value: unknown): unknown {
  if (!isSchema(value)) return value;
  if (value.type === "object" || value.type === "array") return allowEnvReferences(value);
  if (Array.isArray(value.anyOf)) {
    const branches = (value.anyOf as unknown[]).map((b) => (isCollection(b) ? allowEnvReferences(b) : b));
    return { ...value, anyOf: branches.some(isCollection) ? branches : [...branches, ENV_REF] };
  }
  // A free-form string already accepts a reference.
  const types: unknown[] = Array.isArray(value.type) ? value.type : [value.type];
  if (types.includes("string") && value.pattern === undefined && value.enum === undefined) return value;
  return { anyOf: [value, ENV_REF] };
}

function isCollection(value: unknown): value is JsonSchema {
  return isSchema(value) && (value.type === "object" || value.type === "array");
}

function isSchema(value: unknown): value is JsonSchema {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
