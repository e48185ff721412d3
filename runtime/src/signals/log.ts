// One line per state change, metadata first, then the message. Text lines for journald by
// default, JSON lines with --log-format json. Logs go to stderr so that stdout carries only
// command output (`status`, `once --json`). Nothing here knows about secrets: callers never
// pass one (tokens, keys and assertions never leave @azure/identity).

import { escapeControlCharacters } from "../core/text";

export type LogLevel = "debug" | "info" | "warn" | "error";
export type LogFormat = "text" | "json";
export type LogMeta = Record<string, string | number | boolean | null | undefined>;

const rank: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(event: string, meta: LogMeta, message: string): void;
  info(event: string, meta: LogMeta, message: string): void;
  warn(event: string, meta: LogMeta, message: string): void;
  error(event: string, meta: LogMeta, message: string): void;
}

export interface LoggerOptions {
  level: LogLevel;
  format: LogFormat;
  write?: (line: string) => void;
  now?: () => Date;
}

export function createLogger(
  options: LoggerOptions,
): Logger & { setOptions(o: Partial<LoggerOptions>): void } {
  let { level, format } = options;
  const sink = options.write ?? ((line: string) => process.stderr.write(`${line}\n`));
  // Meta and messages carry outside text (VM names, Azure's error messages, a config key): no control
  // character reaches the terminal or the journal raw (issue 25, item 4). In a JSON line a raw one can
  // only sit inside a string, where \uXXXX is its valid escape.
  const write = (line: string) => sink(escapeControlCharacters(line));
  const now = options.now ?? (() => new Date());
  const emit = (lvl: LogLevel) => (event: string, meta: LogMeta, message: string) => {
    if (rank[lvl] < rank[level]) return;
    const fields = Object.entries(meta).filter(([, v]) => v !== undefined);
    if (format === "json") {
      write(
        JSON.stringify({
          time: now().toISOString(),
          level: lvl,
          event,
          ...Object.fromEntries(fields),
          msg: message,
        }),
      );
    } else {
      const pairs = fields.map(([k, v]) => `${k}=${formatValue(v)}`).join(" ");
      write(`${lvl.toUpperCase().padEnd(5)} ${event}${pairs ? ` ${pairs}` : ""}: ${message}`);
    }
  };
  return {
    debug: emit("debug"),
    info: emit("info"),
    warn: emit("warn"),
    error: emit("error"),
    setOptions(o) {
      level = o.level ?? level;
      format = o.format ?? format;
    },
  };
}

function formatValue(value: string | number | boolean | null | undefined): string {
  const text = String(value);
  return /^[\w./:@+-]*$/.test(text) && text !== "" ? text : JSON.stringify(text);
}

/** A logger that drops everything (tests, library use). */
export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };
