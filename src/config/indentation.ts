// Explains a YAML indentation mistake in gateway.yaml: the line that is off, and the key path of its parent, read
// from the block structure of the lines above (the parser's own message points elsewhere and garbles the path).

export interface IndentIssue {
  /** 1-based line and column of the first character of the offending line. */
  line: number;
  col: number;
  path: (string | number)[];
  message: string;
}

interface Level {
  indent: number;
  /** A map key, or the index of a `- ` entry. */
  segment: string | number;
  /** The key's value is on its own line (a scalar): nothing may be nested under it. */
  scalar?: string;
  /** How many `- ` entries a key's sequence has had so far. */
  entries: number;
  /** Which line the level started on, and its text, for the message. */
  lineNo: number;
  name: string;
}

const KEY = /^("(?:[^"\\]|\\.)*"|'(?:[^']|'')*'|[^\s#'"{[\]},&*!|>%@`-][^#]*?|-[^\s#]*?)\s*:(?:\s+(.*))?$/;

/**
 * Walks the block-style lines of `text` and returns the first line whose indentation does not fit: a key nested
 * under a key that already has a value on its line (`interval: 5s` then a deeper `timeout: 2s`), or a line that
 * lines up with no enclosing level. Undefined when the structure looks sound, or when it uses forms this reader
 * does not follow (multi-line quoted or flow values), so the parser's message is kept then.
 */
export function findIndentIssue(text: string): IndentIssue | undefined {
  const lines = text.split(/\r?\n/);
  const stack: Level[] = [];
  // Lines deeper than this indent belong to a block scalar (`|`, `>`) and are skipped.
  let blockScalarAbove = -1;
  const pathOf = (levels: Level[]) => levels.map((l) => l.segment);

  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!;
    const trimmed = raw.trimStart();
    const indent = raw.length - trimmed.length;
    if (blockScalarAbove >= 0) {
      if (trimmed === "" || indent > blockScalarAbove) continue;
      blockScalarAbove = -1;
    }
    if (trimmed === "" || trimmed.startsWith("#")) continue;
    if (/^(---|\.\.\.)(\s|$)/.test(trimmed) || trimmed.startsWith("%")) {
      if (i === 0 || trimmed.startsWith("---")) stack.length = 0;
      continue;
    }
    if (raw.startsWith("\t")) return undefined;

    // Leave the levels this line is not inside of.
    const popped: Level[] = [];
    while (stack.length > 0 && stack.at(-1)!.indent > indent) popped.push(stack.pop()!);
    const isEntry = trimmed === "-" || trimmed.startsWith("- ");
    let top = stack.at(-1);
    if (top && top.indent < indent && popped.length > 0) {
      // Deeper than the enclosing level, shallower than the lines of its block just above: matches nothing.
      // The level the line most likely meant to line up with: the nearest column (the outer one on a tie).
      let k = popped.length - 1;
      for (let j = k - 1; j >= 0; j--) {
        if (Math.abs(popped[j]!.indent - indent) < Math.abs(popped[k]!.indent - indent)) k = j;
      }
      const sibling = popped[k]!;
      const inner = popped[k - 1];
      const keys =
        typeof sibling.segment === "number" && inner?.lineNo === sibling.lineNo
          ? ` (its keys at column ${inner.indent + 1})`
          : "";
      return {
        line: i + 1,
        col: indent + 1,
        path: pathOf(stack),
        message:
          `bad indentation: ${describeLine(trimmed)} starts at column ${indent + 1}, but ${sibling.name} on ` +
          `line ${sibling.lineNo} starts at column ${sibling.indent + 1}${keys}; the lines of one block must line up`,
      };
    }
    // Same column: a sibling replaces the level, except that a `- ` entry may sit at its key's own column
    // (`upstreams:` with `- url:` right below it).
    while (top && top.indent === indent) {
      if (isEntry && typeof top.segment === "string" && top.scalar === undefined) break;
      stack.pop();
      top = stack.at(-1);
    }
    if (top && indent > top.indent && top.scalar !== undefined) {
      // A plain value may go on over more lines; a key there is what YAML cannot take.
      if (isEntry || !KEY.test(trimmed)) continue;
      const message =
        typeof top.segment === "number"
          ? `bad indentation: ${describeLine(trimmed)} is indented under the list entry "- ${top.scalar}" ` +
            `(line ${top.lineNo}), which is a plain value and cannot hold keys`
          : `bad indentation: ${describeLine(trimmed)} is indented under ${top.name} (line ${top.lineNo}), ` +
            `which already has a value (${top.scalar}); indent it like ${top.name} to make it a sibling`;
      return { line: i + 1, col: indent + 1, path: pathOf(stack), message };
    }

    // Push what this line opens: `- ` entries (maybe with a key on the same line), then a key.
    let rest = trimmed;
    let col = indent;
    while (rest === "-" || rest.startsWith("- ")) {
      const owner = stack.at(-1);
      const index = owner ? owner.entries++ : 0;
      const after = rest.slice(1);
      stack.push({ indent: col, segment: index, entries: 0, lineNo: i + 1, name: `entry ${index}` });
      col += 1 + (after.length - after.trimStart().length);
      rest = after.trimStart();
    }
    if (rest !== "" && col !== indent && !KEY.test(rest)) {
      // `- value`: nothing may be nested under it either.
      stack.at(-1)!.scalar = short(stripComment(rest).trim());
    }
    if (rest === "") continue;
    const m = KEY.exec(rest);
    if (!m) {
      if (/^["']/.test(rest) && !closedQuote(rest)) return undefined;
      continue;
    }
    const key = unquote(m[1]!);
    const value = stripComment(m[2] ?? "").trim();
    const level: Level = { indent: col, segment: key, entries: 0, lineNo: i + 1, name: `"${key}:"` };
    const bare = value.replace(/^((&|!)\S*\s*)+/, "");
    if (/^[|>]/.test(bare)) {
      blockScalarAbove = col;
    } else if (/^[[{]/.test(bare)) {
      // A flow collection that goes on over several lines is beyond this reader.
      if (!balanced(bare)) return undefined;
      level.scalar = bare;
    } else if (/^["']/.test(bare) && !closedQuote(bare)) {
      return undefined;
    } else if (bare !== "") {
      level.scalar = short(bare);
    }
    stack.push(level);
  }
  return undefined;
}

function short(value: string): string {
  return value.length > 30 ? `${value.slice(0, 27)}...` : value;
}

function describeLine(trimmed: string): string {
  const m = KEY.exec(trimmed);
  if (m) return `"${unquote(m[1]!)}:"`;
  return trimmed.startsWith("-") ? "this list entry" : "this line";
}

function unquote(key: string): string {
  if (key.startsWith('"') && key.endsWith('"')) return key.slice(1, -1);
  if (key.startsWith("'") && key.endsWith("'")) return key.slice(1, -1).replaceAll("''", "'");
  return key.trim();
}

function stripComment(value: string): string {
  if (/^["']/.test(value)) return value;
  const hash = value.search(/\s#/);
  return hash < 0 ? value : value.slice(0, hash);
}

function closedQuote(value: string): boolean {
  const q = value[0]!;
  return value.length > 1 && value.slice(1).includes(q);
}

function balanced(value: string): boolean {
  let depth = 0;
  let quote = "";
  for (const c of value) {
    if (quote) {
      if (c === quote) quote = "";
    } else if (c === '"' || c === "'") quote = c;
    else if (c === "[" || c === "{") depth++;
    else if (c === "]" || c === "}") depth--;
  }
  return depth <= 0;
}
