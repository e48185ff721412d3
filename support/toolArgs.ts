// The command lines of `npm run demo`, `npm run bench` and `npm run soak`: node:util parseArgs plus
// `--help` (usage on stdout, exit 0) and a bad flag reported in one line with the usage (exit 2), never
// node's ERR_PARSE_ARGS stack trace.
import { type ParseArgsConfig, parseArgs } from "node:util";

type Options = NonNullable<ParseArgsConfig["options"]>;

/** Parses `argv` for `tool`; exits on `--help` (0) or a flag it does not know or that lacks its value (2). */
export function parseToolArgs<const O extends Options>(
  tool: string,
  usage: string,
  options: O,
  argv: string[] = process.argv.slice(2),
) {
  const help = argv.some((arg) => arg === "--help" || arg === "-h");
  if (help) {
    process.stdout.write(usage);
    process.exit(0);
  }
  try {
    return parseArgs({ args: argv, options }).values;
  } catch (error) {
    const code = (error as { code?: string }).code ?? "";
    if (!code.startsWith("ERR_PARSE_ARGS")) throw error;
    process.stderr.write(`${tool}: ${(error as Error).message}\n\n${usage}`);
    process.exit(2);
  }
}
