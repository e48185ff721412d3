// What the scheduler will run, read back from the file install writes for it (the cron line, or the unit's
// ExecStart=): its user, environment, command and arguments, and the credentials systemd hands over. The
// verification runs exactly this (issue 23, item 1), so a layout the scheduler cannot run never says "ok".
import { PATHS } from "./layout";

export interface ScheduledRun {
  scheduler: "cron" | "systemd";
  /** The user the job runs as: a named user (cron), or systemd's DynamicUser= (a transient uid). */
  user: { kind: "named"; name: string } | { kind: "dynamic" };
  /** The environment the scheduler gives the command (cron's variable lines; the unit's Environment=). */
  env: Record<string, string>;
  /** The program the scheduler starts, and its arguments (the shell's redirections and pipes left out). */
  command: string;
  args: string[];
  /** LoadCredential=<name>:<path>: what systemd copies into $CREDENTIALS_DIRECTORY (%d). */
  credentials: { name: string; path: string }[];
}

/** Shell words of a command line: plain words and '…' quoting (what layout.ts's shellQuote writes). */
function shellWords(text: string): string[] {
  const words: string[] = [];
  const pattern = /(?:'[^']*'|"[^"]*"|[^\s'"])+/g;
  for (const match of text.matchAll(pattern)) {
    words.push(match[0].replace(/'([^']*)'|"([^"]*)"/g, (_, single, double) => single ?? double));
  }
  return words;
}

/** Where a shell command's own program and arguments end: at a redirection, pipe or list operator. */
const SHELL_OPERATOR = /^(?:\d*[<>]|\||&&|;|&$)/;

/**
 * A cron.d file (crontab(5), the system crontab format: five time fields, then the user, then a command
 * that cron hands to $SHELL -c). Variable lines set the environment; everything else is refused, so a
 * file this parser cannot read fails the verification rather than passing it.
 */
export function parseCronFile(text: string): ScheduledRun {
  const env: Record<string, string> = {};
  const jobs: ScheduledRun[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const variable = /^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line);
    if (variable?.[1] && variable[2] !== undefined) {
      // crontab(5): a value may be quoted to keep blanks; the quotes are not part of it.
      env[variable[1]] = variable[2].replace(/^(['"])(.*)\1$/, "$2");
      continue;
    }
    const fields = line.split(/\s+/);
    if (fields.length < 7) throw new Error(`the cron file has a line this check cannot read: ${line}`);
    const [user = "", ...commandWords] = fields.slice(5);
    const words = shellWords(commandWords.join(" "));
    const end = words.findIndex((word) => SHELL_OPERATOR.test(word));
    const [command = "", ...args] = end === -1 ? words : words.slice(0, end);
    jobs.push({
      scheduler: "cron",
      user: { kind: "named", name: user },
      env: {},
      command,
      args,
      credentials: [],
    });
  }
  if (jobs.length !== 1) throw new Error(`the cron file holds ${jobs.length} jobs, not one`);
  const [job] = jobs as [ScheduledRun];
  // Variables apply to the lines after them; install writes them all first.
  return { ...job, env };
}

/** A unit file's [Service] section: ExecStart=, Environment=, LoadCredential=, User=/DynamicUser=. */
export function parseSystemdUnit(text: string): ScheduledRun {
  let section = "";
  const env: Record<string, string> = {};
  const credentials: ScheduledRun["credentials"] = [];
  let exec: string[] | undefined;
  let user: ScheduledRun["user"] | undefined;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header?.[1]) {
      section = header[1];
      continue;
    }
    if (section !== "Service") continue;
    const [key = "", ...rest] = line.split("=");
    const value = rest.join("=");
    if (key === "ExecStart") exec = shellWords(value);
    else if (key === "Environment") {
      for (const assignment of shellWords(value)) {
        const at = assignment.indexOf("=");
        if (at > 0) env[assignment.slice(0, at)] = assignment.slice(at + 1);
      }
    } else if (key === "LoadCredential") {
      const at = value.indexOf(":");
      credentials.push({ name: value.slice(0, at), path: value.slice(at + 1) });
    } else if (key === "DynamicUser" && value === "yes") user = { kind: "dynamic" };
    else if (key === "User") user = { kind: "named", name: value };
  }
  const [command, ...args] = exec ?? [];
  if (!command) throw new Error("the unit has no ExecStart=");
  return {
    scheduler: "systemd",
    // Without User= or DynamicUser= systemd runs a system service as root.
    user: user ?? { kind: "named", name: "root" },
    env,
    command,
    args,
    credentials,
  };
}

/**
 * A target-host path as this host sees it under --root: every path install writes (PATHS) and anything
 * below one of its directories; other words pass unchanged.
 */
export function mapTargetPath(word: string, underRoot: (path: string) => string): string {
  const known = Object.values(PATHS) as string[];
  return known.some((path) => word === path || word.startsWith(`${path}/`)) ? underRoot(word) : word;
}
