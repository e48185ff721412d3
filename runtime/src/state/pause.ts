// The owner's word: `spot-restarter pause --vm NAME [--for 2h]` and `resume --vm NAME`. A pause is a
// line in a small file of its own in the state directory (`pauses.json`), not in state.json: `run`
// holds the lock and owns state.json, while pause/resume must work beside it. The loop reads the file
// every cycle; each write is atomic (state.ts's writeStateDirFile: temp file + fsync + rename), so the
// loop sees the old or the new file.
//
// The same trust rules as state.json (fsSafe.ts, checkPrivateDirectory): pauses from a directory another
// user may write are not obeyed (issue 25, item 3: a planted pause would keep an evicted VM down), and
// root writes this file for the directory's owner (the cron layout's state directory is the service
// user's: `sudo spot-restarter pause` must work there too, issue 23, item 2).
import { join } from "node:path";
import { z } from "zod";
import { controlCharactersIn, parseJsonQuietly } from "../core/text";
import { checkPrivateDirectory } from "./fsSafe";
import { readStateDirFile, writeStateDirFile } from "./state";

export const pauseFileName = "pauses.json";

const pauseSchema = z.object({
  resourceGroup: z.string().optional(),
  name: z.string(),
  /** ms since epoch; absent = until resumed. */
  until: z.number().finite().optional(),
  at: z.number().finite(),
});
export type Pause = z.output<typeof pauseSchema>;
const fileSchema = z.object({ version: z.literal(1), pauses: z.array(pauseSchema) });

/** `2h`, `30m`, `90s`, `1d`, `1h30m` → milliseconds; undefined when it is not a duration. */
export function parseDuration(text: string): number | undefined {
  const match = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/i.exec(text.trim());
  if (!match || text.trim() === "") return undefined;
  const [, d = "0", h = "0", m = "0", s = "0"] = match;
  const ms = ((Number(d) * 24 + Number(h)) * 60 + Number(m)) * 60_000 + Number(s) * 1000;
  return ms > 0 ? ms : undefined;
}

/** The pause in force for a VM now, if any (a pause without a resource group matches the name in any). */
export function pauseFor(
  pauses: readonly Pause[],
  resourceGroup: string,
  name: string,
  now: number,
): Pause | undefined {
  return pauses.find(
    (pause) =>
      pause.name.toLowerCase() === name.toLowerCase() &&
      (pause.resourceGroup === undefined ||
        pause.resourceGroup.toLowerCase() === resourceGroup.toLowerCase()) &&
      (pause.until === undefined || pause.until > now),
  );
}

/**
 * The pauses in force or not; [] when there is no file. Throws (the loop then warns and obeys none) when
 * the directory fails the state directory's trust rules or the file is not a pauses file.
 */
export async function readPauses(stateDir: string): Promise<Pause[]> {
  const path = join(stateDir, pauseFileName);
  const untrusted = await checkPrivateDirectory(stateDir, "read");
  if (untrusted) throw new Error(`${untrusted}; ignoring its ${pauseFileName}`);
  let text: string;
  try {
    text = await readStateDirFile(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw error;
  }
  // Never V8's message (it quotes the file around the error), nor a name with a control character.
  const json = parseJsonQuietly(text, path);
  const planted = controlCharactersIn(json)[0];
  if (planted) {
    throw new Error(`${path} does not hold spot-restarter pauses (${planted.where}: a control character)`);
  }
  const parsed = fileSchema.safeParse(json);
  if (!parsed.success) throw new Error(`${path} does not hold spot-restarter pauses`);
  return parsed.data.pauses;
}

function writePauses(stateDir: string, pauses: readonly Pause[]): Promise<void> {
  return writeStateDirFile(stateDir, pauseFileName, `${JSON.stringify({ version: 1, pauses }, null, 2)}\n`, {
    forDirectoryOwner: true,
  });
}

/**
 * Adds (or replaces) the pause of a VM; expired pauses are dropped on the way. Returns the pause in
 * force that it replaced, if any (the command says so: a second pause is no silent change).
 */
export async function addPause(stateDir: string, pause: Pause, now: number): Promise<Pause | undefined> {
  const current = await readPauses(stateDir);
  const live = (p: Pause) => p.until === undefined || p.until > now;
  const replaced = current.find((p) => live(p) && samePause(p, pause));
  await writePauses(stateDir, [...current.filter((p) => live(p) && !samePause(p, pause)), pause]);
  return replaced;
}

/** Removes every pause of the VM; returns how many there were. */
export async function removePause(
  stateDir: string,
  name: string,
  resourceGroup: string | undefined,
): Promise<number> {
  const pauses = await readPauses(stateDir);
  const kept = pauses.filter(
    (p) =>
      p.name.toLowerCase() !== name.toLowerCase() ||
      (resourceGroup !== undefined &&
        p.resourceGroup !== undefined &&
        p.resourceGroup.toLowerCase() !== resourceGroup.toLowerCase()),
  );
  if (kept.length !== pauses.length) await writePauses(stateDir, kept);
  return pauses.length - kept.length;
}

function samePause(a: Pause, b: Pause): boolean {
  return (
    a.name.toLowerCase() === b.name.toLowerCase() &&
    (a.resourceGroup ?? "").toLowerCase() === (b.resourceGroup ?? "").toLowerCase()
  );
}
