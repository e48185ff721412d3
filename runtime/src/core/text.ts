// Text that reaches an admin's terminal or a log from outside (stack outputs, the config file): one
// schema for the installer and the runtime, so install never writes what the runtime refuses, and no
// control character (an ESC sequence, \r, \n, a bidi override) is ever printed raw (issue 17, item 5).
import { z } from "zod";

/**
 * C0 controls, DEL, C1 controls (U+0080-U+009F: 8-bit CSI and friends), and the Unicode bidi
 * embeddings/overrides/isolates that reorder what a terminal shows (U+202A-U+202E, U+2066-U+2069).
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point.
export const CONTROL_CHARACTER = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/u;

export function hasControlCharacter(value: string): boolean {
  return CONTROL_CHARACTER.test(value);
}

/**
 * Escapes every control character as \uXXXX (JSON.stringify leaves DEL, C1 and bidi characters raw). The
 * one function for text leaving for a terminal or a log from outside input: the logger, the installer's
 * relay of the verification's output, messages quoting a value (issue 25, item 4).
 */
export function escapeControlCharacters(text: string): string {
  return text.replace(
    new RegExp(CONTROL_CHARACTER.source, "gu"),
    (character) => `\\u${character.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/** A value for a message: JSON-quoted, every control character escaped, cut short after `limit`. */
export function quoteForMessage(value: string, limit = 80): string {
  return escapeControlCharacters(
    value.length <= limit
      ? JSON.stringify(value)
      : `${JSON.stringify(value.slice(0, limit)).slice(0, -1)}…" (${value.length} characters)`,
  );
}

const tagText = (what: string, max: number, min: number) =>
  z
    .string({ error: `expected ${what} (a string)` })
    .min(min, { error: `expected ${what} (a non-empty string)` })
    .max(max, { error: `expected ${what} of at most ${max} characters` })
    .refine((value) => !hasControlCharacter(value), { error: `expected ${what} without control characters` });

/**
 * The restart tag. Azure's limits: a tag name of at most 512 characters, a value of at most 256
 * (https://learn.microsoft.com/azure/azure-resource-manager/management/tag-resources#limitations).
 */
export const tagSchema = z.object(
  {
    name: tagText("the tag name", 512, 1).meta({
      description: "name of the restart tag (matched case-insensitively)",
    }),
    value: tagText("the tag value", 256, 0).meta({
      description: "value of the restart tag (matched case-insensitively)",
    }),
  },
  { error: 'expected an object like {"name": "AttemptRestartAfterEviction", "value": "true"}' },
);

/** Where a control character sits in parsed JSON: a string value, or an object key (issue 25, item 4). */
export interface ControlCharacterAt {
  path: (string | number)[];
  /** The path printable: each step's control characters escaped. */
  where: string;
  in: "key" | "value";
}

/** A JSON path for a message: steps joined with ".", every control character escaped. */
export function printablePath(path: readonly (string | number)[]): string {
  return escapeControlCharacters(path.map(String).join("."));
}

/**
 * Every string value and every object key in a parsed JSON value that holds a control character, with
 * its path, except under top-level `skip` keys (a PEM, whose lines end in newlines). For refusing control
 * characters anywhere in input printed to a terminal or a log: keys reach them too (a `fallbackSizes`
 * key, a state file's VM key).
 */
export function controlCharactersIn(
  value: unknown,
  skip: ReadonlySet<string> = new Set(),
  path: (string | number)[] = [],
): ControlCharacterAt[] {
  const at = (where: (string | number)[], kind: "key" | "value"): ControlCharacterAt => ({
    path: where,
    where: printablePath(where),
    in: kind,
  });
  if (typeof value === "string") return hasControlCharacter(value) ? [at(path, "value")] : [];
  if (Array.isArray(value))
    return value.flatMap((item, index) => controlCharactersIn(item, skip, [...path, index]));
  if (value && typeof value === "object") {
    return Object.entries(value).flatMap(([key, item]) => {
      if (skip.has(key) && path.length === 0) return [];
      if (hasControlCharacter(key)) return [at([...path, key], "key")];
      return controlCharactersIn(item, skip, [...path, key]);
    });
  }
  return [];
}

/**
 * Parses JSON without ever echoing it: V8's SyntaxError quotes the text around the error (control
 * characters, or key material if a PEM was passed by mistake), so the error says only where.
 */
export function parseJsonQuietly(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new Error(`${what} is not valid JSON${jsonErrorPosition(error, text)}`);
  }
}

/** Line and column of a JSON syntax error, without the snippet V8 quotes (it may be key material). */
export function jsonErrorPosition(error: unknown, text: string): string {
  const message = error instanceof Error ? error.message : "";
  const lineColumn = /line (\d+) column (\d+)/.exec(message);
  if (lineColumn) return ` at line ${lineColumn[1]}, column ${lineColumn[2]}`;
  const position = /position (\d+)/.exec(message);
  if (position) {
    const before = text.slice(0, Number(position[1])).split("\n");
    return ` at line ${before.length}, column ${(before.at(-1)?.length ?? 0) + 1}`;
  }
  return /end of JSON input/i.test(message) ? " (it ends too early)" : "";
}

// Notification URLs carry their secret in the path or query (a Slack/Discord/Teams token, an ntfy
// topic): only the scheme and host may ever be shown, in a log, an error, --print-config or a
// --dry-run listing.

/** `https://hooks.slack.com/…` for any URL; `(invalid URL)` when it does not parse. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.protocol}//${parsed.host}/…`;
  } catch {
    return "(invalid URL)";
  }
}
