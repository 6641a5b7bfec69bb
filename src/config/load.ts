// Loads gateway.yaml: parse with positions, interpolate env, validate with zod, report every error as FILE:LINE:COL.
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { resolve as resolvePath } from "node:path";
import {
  LineCounter,
  isAlias,
  isMap,
  isNode,
  isScalar,
  isSeq,
  parseDocument,
  visit,
  type Document,
} from "yaml";
import type { z } from "zod";
import { findIndentIssue } from "./indentation.ts";
import { interpolate, keyName, type Env } from "./interpolate.ts";
import { resolveConfig } from "./resolve.ts";
import { BARE_DURATION, bareDurationCheck, configSchema } from "./schema.ts";
import { tagIssues } from "./tags.ts";
import type { GatewayConfig } from "./types.ts";

export interface ConfigIssue {
  file: string;
  line: number;
  col: number;
  /** Dotted key path such as `pools.main_app.upstreams.1.weight`; empty for the document itself. */
  path: string;
  message: string;
}

export function formatIssue(i: ConfigIssue): string {
  return `${i.file}:${i.line}:${i.col}: ${i.path || "(root)"}: ${i.message}`;
}

export class ConfigError extends Error {
  readonly issues: ConfigIssue[];
  constructor(issues: ConfigIssue[]) {
    super(issues.map(formatIssue).join("\n"));
    this.name = "ConfigError";
    this.issues = issues;
  }
}

export interface LoadedConfig {
  config: GatewayConfig;
  /** What `gateway check` warns about in a valid file; each message starts with `warning: `. */
  warnings: ConfigIssue[];
}

export function loadConfigText(text: string, file: string, env: Env = process.env): GatewayConfig {
  return loadConfigTextWithWarnings(text, file, env).config;
}

export function loadConfigTextWithWarnings(text: string, file: string, env: Env = process.env): LoadedConfig {
  return load(text, file, env, { path: file, hash: sha256(Buffer.from(text, "utf8")), loadedAt: new Date() });
}

export async function loadConfigFile(file: string, env: Env = process.env): Promise<GatewayConfig> {
  return (await loadConfigFileWithWarnings(file, env)).config;
}

export async function loadConfigFileWithWarnings(
  file: string,
  env: Env = process.env,
): Promise<LoadedConfig> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (err) {
    throw new ConfigError([
      { file, line: 1, col: 1, path: "", message: `cannot read the file (${readError(err)})` },
    ]);
  }
  const source = { path: resolvePath(file), hash: sha256(bytes), loadedAt: new Date() };
  return load(bytes.toString("utf8"), file, env, source);
}

/** The one-line summary `gateway check` prints. */
export function summarize(c: GatewayConfig): string {
  const upstreams = c.pools.reduce((n, p) => n + p.upstreams.length, 0);
  return `ok: ${c.pools.length} pools, ${c.routes.length} routes, ${upstreams} upstreams`;
}

type Path = readonly PropertyKey[];
type ZodIssue = z.core.$ZodIssue;

function load(text: string, file: string, env: Env, source: GatewayConfig["source"]): LoadedConfig {
  const lineCounter = new LineCounter();
  // resolveKnownTags off: a YAML 1.1 tag such as !!binary or !!timestamp is then unknown, as the contract wants.
  const doc = parseDocument(text, {
    lineCounter,
    uniqueKeys: true,
    prettyErrors: true,
    resolveKnownTags: false,
  });
  const issue = (offset: number, path: Path, message: string): ConfigIssue => {
    const { line, col } = lineCounter.linePos(offset);
    return { file, line, col, path: path.map(String).join("."), message };
  };

  // Validating a half-parsed document would only add noise, so syntax errors stop here.
  if (doc.errors.length > 0) {
    const issues = doc.errors.map((e) => {
      const at = issue(e.pos[0], pathAt(doc, e.pos[0]), syntaxMessage(e.code, e.message, doc, e.pos[0]));
      const lineText = text.split("\n")[at.line - 1] ?? "";
      // In `{ }` and `[ ]` the braces of an unquoted ${VAR} are YAML syntax, which is a puzzling error to get.
      const flowWithVar = lineText.includes("${") && /[[{]/.test(lineText.replaceAll("${", ""));
      if (e.code !== "DUPLICATE_KEY" && flowWithVar)
        at.message += '; inside { } or [ ], write "${VAR}" in quotes';
      return at;
    });
    // The parser's recovery after a real syntax error mostly reports its own confusion, so only the first of
    // those is kept; duplicate keys do not derail it and are all reported.
    const firstSyntax = doc.errors.findIndex((e) => e.code !== "DUPLICATE_KEY");
    const first = issues[firstSyntax];
    // An indentation mistake confuses the parser into a message about the line above and a garbled key path;
    // the line-structure reader names the offending line and its parent instead.
    if (first && INDENT_CODES.has(doc.errors[firstSyntax]!.code)) {
      const found = findIndentIssue(text);
      if (found && Math.abs(found.line - first.line) <= 1) {
        Object.assign(first, {
          line: found.line,
          col: found.col,
          path: found.path.join("."),
          message: found.message,
        });
      }
    }
    throw configError(issues.filter((_, n) => n === firstSyntax || doc.errors[n]?.code === "DUPLICATE_KEY"));
  }
  if (doc.contents === null)
    throw configError([issue(0, [], "the file is empty; pools and routes are required")]);

  const envIssues = interpolate(doc, env);
  const issues = envIssues.map((e) => issue(e.offset, e.path, e.message));
  const aliasIssues = unresolvedAliases(doc).map((e) => issue(e.offset, e.path, e.message));
  // A tag the gateway does not honour leaves a value that means something else: validating it adds only noise.
  const tagged = tagIssues(doc, text).map((e) => issue(e.offset, e.path, e.message));
  if (aliasIssues.length > 0 || tagged.length > 0) throw configError([...issues, ...aliasIssues, ...tagged]);

  let data: unknown;
  try {
    data = doc.toJS();
  } catch (err) {
    throw configError([...issues, issue(0, [], err instanceof Error ? err.message : String(err))]);
  }

  const parsed = configSchema.safeParse(data, { error: () => DEFAULT_MESSAGE });
  if (parsed.success && issues.length === 0) {
    const config = resolveConfig(parsed.data, source, env);
    const warnings = bareDurations(data).map((path): ConfigIssue => {
      const value = String(valueAt(data, path));
      return issue(
        locate(doc, path).offset,
        path,
        `warning: a bare ${value} means ${value} milliseconds; did you mean ${value}s? (write ${value}ms to keep it)`,
      );
    });
    return { config, warnings: warnings.sort((a, b) => a.line - b.line || a.col - b.col) };
  }

  // An unresolved variable already explains whatever zod says about that value.
  const explained = (path: Path) => envIssues.some((e) => startsWith(path, e.path));
  // One mistake, one error: `listen: 80o2` fails both the format and the port range, but only the first is news.
  const reported = new Set<string>();
  for (const zi of parsed.error?.issues ?? []) {
    const key = zi.path.map(String).join(".");
    if (zi.code !== "unrecognized_keys" && reported.has(key)) continue;
    reported.add(key);
    if (zi.code === "unrecognized_keys") {
      for (const key of zi.keys) {
        const path = [...zi.path, key];
        if (!explained(path))
          issues.push(issue(locate(doc, path, true).offset, path, `unknown key "${key}"`));
      }
    } else if (!explained(zi.path)) {
      const at = locate(doc, zi.path, zi.code === "invalid_key");
      issues.push(issue(at.offset, zi.path, describe(zi, zi.path, !at.found)));
    }
  }
  throw configError(issues);
}

/** Key paths of the bare integers from 1 to 999 in duration fields, found by a second parse that flags them. */
function bareDurations(data: unknown): Path[] {
  bareDurationCheck.on = true;
  let result;
  try {
    result = configSchema.safeParse(data);
  } finally {
    bareDurationCheck.on = false;
  }
  const found: Path[] = [];
  const collect = (list: readonly ZodIssue[], base: Path) => {
    for (const zi of list) {
      const path = [...base, ...zi.path];
      if (zi.message === BARE_DURATION) found.push(path);
      else if (zi.code === "invalid_union") for (const branch of zi.errors) collect(branch, path);
    }
  };
  collect(result.error?.issues ?? [], []);
  return found;
}

function valueAt(data: unknown, path: Path): unknown {
  return path.reduce<unknown>(
    (v, key) => (typeof v === "object" && v !== null ? (v as never)[key] : undefined),
    data,
  );
}

const INDENT_CODES = new Set([
  "BAD_INDENT",
  "BLOCK_AS_IMPLICIT_KEY",
  "MULTILINE_IMPLICIT_KEY",
  "MISSING_CHAR",
]);

/** Marks messages zod would write generically, so they can be phrased with the key's name instead. */
const DEFAULT_MESSAGE = "\u0000default";

function describe(zi: ZodIssue, path: Path, missing: boolean): string {
  const name = keyLabel(path);
  if (zi.code === "invalid_type" && missing) return `${name} is required`;
  if (zi.message !== DEFAULT_MESSAGE) return zi.message;
  switch (zi.code) {
    case "invalid_type":
      return `${name} must be ${kind(zi.expected)}`;
    case "too_small":
      return tooSmall(name, zi.origin, Number(zi.minimum), zi.inclusive !== false);
    case "too_big":
      return tooBig(name, zi.origin, Number(zi.maximum), zi.inclusive !== false);
    case "invalid_value":
      return `${name} must be one of ${zi.values.map(String).join(", ")}`;
    case "invalid_format":
      if (zi.format === "starts_with" && "prefix" in zi)
        return `${name} must start with "${String(zi.prefix)}"`;
      return zi.format === "regex" ? `${name} has an invalid format` : `${name} must be a valid ${zi.format}`;
    case "not_multiple_of":
      return `${name} must be a multiple of ${zi.divisor}`;
    case "invalid_key": {
      const inner = zi.issues.find((i) => i.message !== DEFAULT_MESSAGE);
      return inner ? inner.message : `invalid key "${String(path.at(-1))}"`;
    }
    case "invalid_union":
      return describeUnion(zi.errors, path, name);
    default:
      return `${name} is invalid`;
  }
}

/** A union without a message of its own: explain the branch the value's type matched, else list the types. */
function describeUnion(branches: ZodIssue[][], path: Path, name: string): string {
  const matched = branches.find((b) => b.some((i) => i.code !== "invalid_type"));
  const inner = matched?.find((i) => i.code !== "invalid_type");
  if (inner) return describe(inner, [...path, ...inner.path], false);
  const kinds = branches.flat().flatMap((i) => (i.code === "invalid_type" ? [kind(i.expected)] : []));
  return kinds.length > 0 ? `${name} must be ${[...new Set(kinds)].join(" or ")}` : `${name} is invalid`;
}

function tooSmall(name: string, origin: string, min: number, inclusive: boolean): string {
  if (origin === "number" || origin === "int" || origin === "bigint") {
    if (inclusive) return `${name} must be at least ${min}`;
    return min === 0 ? `${name} must be positive` : `${name} must be greater than ${min}`;
  }
  if ((origin === "string" || origin === "array") && min <= 1) return `${name} must not be empty`;
  if (origin === "string") return `${name} must be at least ${min} characters long`;
  return `${name} must have at least ${min} entries`;
}

function tooBig(name: string, origin: string, max: number, inclusive: boolean): string {
  if (origin === "number" || origin === "int" || origin === "bigint") {
    return inclusive ? `${name} must be at most ${max}` : `${name} must be less than ${max}`;
  }
  if (origin === "string") return `${name} must be at most ${max} characters long`;
  return `${name} must have at most ${max} entries`;
}

const KINDS: Record<string, string> = {
  object: "a map",
  record: "a map",
  map: "a map",
  array: "a list",
  tuple: "a list",
  string: "a string",
  number: "a number",
  int: "an integer",
  boolean: "true or false",
  null: "empty",
};

function kind(expected: string): string {
  return KINDS[expected] ?? expected;
}

/** How a message names the value: its key, or its place in a list. */
function keyLabel(path: Path): string {
  const last = path.at(-1);
  if (last === undefined) return "the config";
  if (typeof last !== "number") return String(last);
  const parent = path.at(-2);
  return parent === undefined ? `entry ${last}` : `each entry of ${String(parent)}`;
}

interface Located {
  offset: number;
  /** False when the path ends at a missing key; `offset` is then that of the nearest existing parent. */
  found: boolean;
}

/** Source offset of the value at `path` (or of its key, with `atKey`), walking up while nodes are missing. */
function locate(doc: Document, path: Path, atKey = false): Located {
  let node: unknown = doc.contents;
  let offset = rangeStart(node) ?? 0;
  for (const [i, segment] of path.entries()) {
    const parent = isAlias(node) ? node.resolve(doc) : node;
    if (isMap(parent)) {
      const pair = parent.items.find((p) => keyName(p) === String(segment));
      if (!pair) return { offset, found: false };
      const keyOffset = rangeStart(pair.key);
      const last = i === path.length - 1;
      node = pair.value;
      offset =
        (last && atKey ? keyOffset : emptyValue(node) ? keyOffset : rangeStart(node)) ?? keyOffset ?? offset;
    } else if (isSeq(parent) && typeof segment === "number" && segment < parent.items.length) {
      node = parent.items[segment];
      offset = rangeStart(node) ?? offset;
    } else {
      return { offset, found: false };
    }
  }
  return { offset, found: true };
}

/** `key:` with nothing after it: its value node sits after the colon, so point at the key instead. */
function emptyValue(node: unknown): boolean {
  return node === null || (isScalar(node) && node.value === null && !node.source);
}

function rangeStart(node: unknown): number | undefined {
  return isNode(node) ? (node.range?.[0] ?? undefined) : undefined;
}

/** The key path of the innermost node at `offset`, so a syntax error names where it is. */
function pathAt(doc: Document, offset: number): PropertyKey[] {
  const path: PropertyKey[] = [];
  let node: unknown = doc.contents;
  for (;;) {
    if (isMap(node)) {
      const pair = node.items.find((p) => contains(p.key, offset) || contains(p.value, offset));
      if (!pair || !isScalar(pair.key)) return path;
      path.push(keyName(pair));
      if (contains(pair.key, offset)) return path;
      node = pair.value;
    } else if (isSeq(node)) {
      const index = node.items.findIndex((item) => contains(item, offset));
      if (index < 0) return path;
      path.push(index);
      node = node.items[index];
    } else {
      return path;
    }
  }
}

function contains(node: unknown, offset: number): boolean {
  if (!isNode(node) || !node.range) return false;
  return node.range[0] <= offset && offset < Math.max(node.range[2], node.range[0] + 1);
}

function syntaxMessage(code: string, message: string, doc: Document, offset: number): string {
  if (code === "DUPLICATE_KEY") return `duplicate key "${String(pathAt(doc, offset).at(-1) ?? "")}"`;
  // prettyErrors appends " at line L, column C:" and a source excerpt; the position is reported separately.
  const first = (message.split("\n")[0] ?? message).replace(/ at line \d+, column \d+:?$/, "");
  return first.charAt(0).toLowerCase() + first.slice(1);
}

function unresolvedAliases(doc: Document): { offset: number; path: PropertyKey[]; message: string }[] {
  const found: { offset: number; path: PropertyKey[]; message: string }[] = [];
  visit(doc, {
    Alias(_key, node) {
      if (node.resolve(doc) === undefined) {
        const offset = node.range?.[0] ?? 0;
        found.push({ offset, path: pathAt(doc, offset), message: `unknown alias *${node.source}` });
      }
    },
  });
  return found;
}

function startsWith(path: Path, prefix: Path): boolean {
  return prefix.length <= path.length && prefix.every((segment, i) => String(segment) === String(path[i]));
}

/** Issues in file order, each once. */
function configError(issues: ConfigIssue[]): ConfigError {
  const seen = new Set<string>();
  return new ConfigError(
    issues
      .filter((i) => !seen.has(formatIssue(i)) && seen.add(formatIssue(i)))
      .sort((a, b) => a.line - b.line || a.col - b.col),
  );
}

function sha256(bytes: Buffer): string {
  return createHash("sha256").update(bytes).digest("hex");
}

function readError(err: unknown): string {
  const code = err instanceof Error && "code" in err ? String(err.code) : "";
  if (code === "ENOENT") return "no such file";
  if (code === "EACCES" || code === "EPERM") return "permission denied";
  if (code === "EISDIR") return "it is a directory";
  return err instanceof Error ? err.message : String(err);
}
