// Splits a byte stream (a managed process's stdout or stderr) into text lines, with a cap on line length.
import { StringDecoder } from "node:string_decoder";
import type { Readable } from "node:stream";

/** Longer lines are cut into pieces of this many characters, so one endless line cannot grow memory without bound. */
export const MAX_LINE = 16 * 1024;

/** Calls `onLine` for every line of `stream` (without its `\n` or `\r\n`), and for the unterminated rest at the end. */
export function forEachLine(stream: Readable, onLine: (line: string) => void): void {
  const decoder = new StringDecoder("utf8");
  let rest = "";
  const emit = (line: string) => onLine(line.endsWith("\r") ? line.slice(0, -1) : line);
  stream.on("data", (chunk: Buffer) => {
    rest += decoder.write(chunk);
    let nl: number;
    while ((nl = rest.indexOf("\n")) >= 0) {
      emit(rest.slice(0, nl));
      rest = rest.slice(nl + 1);
    }
    while (rest.length > MAX_LINE) {
      emit(rest.slice(0, MAX_LINE));
      rest = rest.slice(MAX_LINE);
    }
  });
  stream.on("end", () => {
    rest += decoder.end();
    if (rest.length > 0) emit(rest);
    rest = "";
  });
  // The pipe breaks only when the process is gone; its exit is reported on its own.
  stream.on("error", () => undefined);
}
