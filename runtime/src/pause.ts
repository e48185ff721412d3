// The owner's word: `spot-restarter pause --vm NAME [--for 2h]` and `resume --vm NAME`. A pause is a
// line in a small file of its own in the state directory (`pauses.json`), not in state.json: `run`
// holds the lock and owns state.json, while pause/resume must work beside it. The loop reads the file
// every cycle; each write is atomic (temp file + rename), so the loop sees the old or the new file.
import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { mkdir, open, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { checkPrivateDirectory } from "./fsSafe";

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

export async function readPauses(stateDir: string): Promise<Pause[]> {
  const path = join(stateDir, pauseFileName);
  let text: string;
  try {
    const handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      text = await handle.readFile("utf8");
    } finally {
      await handle.close();
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw error;
  }
  const parsed = fileSchema.safeParse(JSON.parse(text));
  if (!parsed.success) throw new Error(`${path} does not hold spot-restarter pauses`);
  return parsed.data.pauses;
}

async function writePauses(stateDir: string, pauses: readonly Pause[]): Promise<void> {
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  const untrusted = await checkPrivateDirectory(stateDir, "write");
  if (untrusted) throw new Error(untrusted);
  const path = join(stateDir, pauseFileName);
  const temp = `${path}.${randomBytes(8).toString("hex")}.tmp`;
  const handle = await open(
    temp,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
    0o600,
  );
  try {
    await handle.writeFile(`${JSON.stringify({ version: 1, pauses }, null, 2)}\n`);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}

/** Adds (or replaces) the pause of a VM; expired pauses are dropped on the way. */
export async function addPause(stateDir: string, pause: Pause, now: number): Promise<void> {
  const kept = (await readPauses(stateDir)).filter(
    (p) => (p.until === undefined || p.until > now) && !samePause(p, pause),
  );
  await writePauses(stateDir, [...kept, pause]);
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
