// One line per state change, metadata first, then the message. Text lines for journald by
// default, JSON lines with --log-format json. Logs go to stderr so that stdout carries only
// command output (`status`, `once --json`). Nothing here knows about secrets: callers never
// pass one (tokens, keys and assertions never leave @azure/identity).

import { fstatSync } from "node:fs";
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
  /**
   * Start each line with its syslog priority (`<3>` error, `<4>` warning, `<6>` info, `<7>` debug), which
   * journald reads and strips (systemd.exec(5) SyslogLevelPrefix=, on by default), so
   * `journalctl -u spot-restarter -p warning` filters. Default: when stderr is the journal (stderrIsJournal).
   */
  syslogPrefix?: boolean;
}

/** sd-daemon(3) priorities, as journald reads them from a `<N>` line prefix (syslog(3) levels). */
export const SYSLOG_PRIORITY: Record<LogLevel, number> = { error: 3, warn: 4, info: 6, debug: 7 };

/**
 * Whether stderr is connected to the journal: systemd sets JOURNAL_STREAM to "<device>:<inode>" of the
 * stream it connected (systemd.exec(5) "$JOURNAL_STREAM"); a process whose stderr was redirected since
 * (a pipe, a file, a terminal) has another one, so the variable alone, inherited, is not proof.
 */
export function stderrIsJournal(
  env: NodeJS.ProcessEnv = process.env,
  stat: () => { dev: number; ino: number } = () => fstatSync(2),
): boolean {
  const stream = env.JOURNAL_STREAM;
  if (!stream) return false;
  try {
    const { dev, ino } = stat();
    return stream === `${dev}:${ino}`;
  } catch {
    return false;
  }
}

export function createLogger(
  options: LoggerOptions,
): Logger & { setOptions(o: Partial<LoggerOptions>): void } {
  let { level, format } = options;
  const sink = options.write ?? ((line: string) => process.stderr.write(`${line}\n`));
  // Meta and messages carry outside text (VM names, Azure's error messages, a config key): no control
  // character reaches the terminal or the journal raw (issue 25, item 4). In a JSON line a raw one can
  // only sit inside a string, where \uXXXX is its valid escape.
  const prefix = options.syslogPrefix ?? stderrIsJournal();
  const now = options.now ?? (() => new Date());
  const emit = (lvl: LogLevel) => (event: string, meta: LogMeta, message: string) => {
    if (rank[lvl] < rank[level]) return;
    const write = (line: string) =>
      sink(`${prefix ? `<${SYSLOG_PRIORITY[lvl]}>` : ""}${escapeControlCharacters(line)}`);
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
