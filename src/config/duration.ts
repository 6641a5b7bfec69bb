// Parses the duration and size values of gateway.yaml ("250ms", "5s", "1m", "10mb") with well-kept libraries.
import ms from "ms";
import bytes from "bytes";

/** Durations are a number with a unit (ms, s, m, h) or an integer of milliseconds. */
export const DURATION_PATTERN = "^\\d+(\\.\\d+)?(ms|s|m|h)$";
const durationRe = new RegExp(DURATION_PATTERN);

/** Returns milliseconds, or undefined when the text is not a duration we accept. */
export function parseDuration(text: string): number | undefined {
  if (!durationRe.test(text)) return undefined;
  const value = ms(text as ms.StringValue);
  return Number.isFinite(value) ? Math.round(value) : undefined;
}

/** Sizes are an integer of bytes or a number with a unit (b, kb, mb, gb; 1kb = 1024 bytes). */
export const SIZE_PATTERN = "^\\d+(\\.\\d+)?\\s*(b|kb|mb|gb)$";
const sizeRe = new RegExp(SIZE_PATTERN, "i");

export function parseSize(text: string): number | undefined {
  if (!sizeRe.test(text)) return undefined;
  const value = bytes.parse(text);
  return value === null || !Number.isFinite(value) ? undefined : Math.floor(value);
}
