// The YAML tag rule of gateway.yaml: only the core schema's tags, so `!env X` is an error, not the text "X".
import { isNode, visit, type Document } from "yaml";
import { keyPath } from "./interpolate.ts";

const CORE = ["str", "int", "float", "bool", "null", "map", "seq"];
const CORE_TAGS = new Set(CORE.map((t) => `tag:yaml.org,2002:${t}`));
const ALLOWED = CORE.map((t) => `!!${t}`).join(", ");

export interface TagIssue {
  offset: number;
  path: (string | number)[];
  message: string;
}

/**
 * Every tag outside the core schema, and every core tag its value does not fit (`!!int abc`). The document must
 * have been parsed with `resolveKnownTags: false`, so YAML 1.1 tags (`!!binary`, `!!timestamp`, `!!set`) are not
 * quietly honoured either. Issues point at the tag itself.
 */
export function tagIssues(doc: Document, text: string): TagIssue[] {
  // The parser warns once per tag it could not resolve, at the tag's own position.
  const unresolved = doc.warnings.filter((w) => w.code === "TAG_RESOLVE_FAILED").map((w) => w.pos[0]);
  const issues: TagIssue[] = [];
  visit(doc, {
    Node(_key, node, ancestors) {
      const tag = node.tag;
      const start = node.range?.[0] ?? 0;
      if (tag === undefined || tag === "!") return;
      const at = unresolved.filter((p) => p <= start).at(-1);
      if (CORE_TAGS.has(tag) && (at === undefined || !isNode(node) || !taggedHere(text, at, start))) return;
      const shown = tag.startsWith("tag:yaml.org,2002:") ? `!!${tag.slice(18)}` : tag;
      const message = CORE_TAGS.has(tag)
        ? `the value does not fit its tag ${shown}`
        : `unknown YAML tag ${shown}: only the core schema's tags are allowed (${ALLOWED})` +
          (shown === "!env" ? '; for an environment variable write "${NAME}"' : "");
      issues.push({ offset: at ?? start, path: keyPath(ancestors, node), message });
    },
  });
  return issues;
}

/** Whether the tag token at `tagAt` belongs to the node starting at `nodeAt` (only blanks and anchors between). */
function taggedHere(text: string, tagAt: number, nodeAt: number): boolean {
  return /^!\S*(\s+&\S+)?\s*$/.test(text.slice(tagAt, nodeAt));
}
