// Resolves ${NAME} and ${NAME:-default} inside the scalars of a parsed gateway.yaml, in place, so positions stay true.
import { isPair, isScalar, isSeq, visit, type Document, type Node, type Pair, type ScalarTag } from "yaml";

export type Env = Readonly<Record<string, string | undefined>>;

export interface InterpolationIssue {
  /** Offset of the scalar in the source. */
  offset: number;
  path: (string | number)[];
  message: string;
}

// `$${` is an escape for a literal `${`; anything else between `${` and `}` must be a variable reference.
const REFERENCE = /\$(\$?)\{([^}]*)\}/g;
const INNER = /^([A-Za-z_][A-Za-z0-9_]*)(?::-([\s\S]*))?$/;

/** Substitutes every reference from `env` and returns what could not be resolved; the document is modified. */
export function interpolate(doc: Document, env: Env): InterpolationIssue[] {
  const issues: InterpolationIssue[] = [];
  visit(doc, {
    Scalar(_key, node, ancestors) {
      if (typeof node.value !== "string" || !node.value.includes("${")) return;
      const problems: string[] = [];
      const text = node.value.replace(REFERENCE, (whole, escape: string, inner: string) => {
        if (escape) return whole.slice(1);
        const ref = INNER.exec(inner);
        if (!ref) {
          problems.push(`invalid variable reference "${whole}"`);
          return whole;
        }
        const [, name = "", fallback] = ref;
        const value = env[name];
        // Like the shell, `:-` also covers a variable that is set but empty.
        if (fallback !== undefined) return value ? value : fallback;
        if (value === undefined) problems.push(`environment variable ${name} is not set`);
        return value ?? "";
      });
      for (const message of problems) {
        issues.push({ offset: node.range?.[0] ?? 0, path: keyPath(ancestors, node), message });
      }
      if (problems.length > 0) return;
      // A plain scalar reads as if the value had been written in the file; quoted or tagged ones stay strings.
      node.value = node.type === "PLAIN" && !node.tag && text !== "" ? retype(doc, text) : text;
    },
  });
  return issues;
}

/** The value YAML itself would give `text` as a plain scalar (number, boolean, null or string). */
function retype(doc: Document, text: string): unknown {
  const tag = doc.schema.tags.find(
    (t): t is ScalarTag => !t.collection && t.default === true && t.test?.test(text) === true,
  );
  if (!tag) return text;
  try {
    const value = tag.resolve(text, () => undefined, {});
    return isScalar(value) ? value.value : value;
  } catch {
    return text;
  }
}

/** The key path (as zod reports it) of a node, from the ancestors `visit()` hands over. */
export function keyPath(ancestors: readonly unknown[], node: Node): (string | number)[] {
  const path: (string | number)[] = [];
  ancestors.forEach((ancestor, i) => {
    const child = ancestors[i + 1] ?? node;
    if (isPair(ancestor)) path.push(keyName(ancestor));
    else if (isSeq(ancestor)) path.push(ancestor.items.indexOf(child));
  });
  return path;
}

export function keyName(pair: Pair): string {
  return isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
}
