// Writes the planned tree under a root: compare first, write only what changed, replace atomically.
import { randomBytes } from "node:crypto";
import { constants, promises as fs } from "node:fs";
import { basename, dirname, join, relative, sep } from "node:path";
import { PATHS, type PlannedDirectory, type PlannedEntry, type PlannedFile } from "./layout";

export type Change = "created" | "updated" | "unchanged";

export interface EntryResult {
  entry: PlannedEntry;
  change: Change;
  /** Why an existing entry changed: "content", "mode", "owner". */
  reasons: string[];
  /** The service user's ids, for entries it owns or reads (cron). */
  ids?: ServiceIds;
}

/** The host path of an absolute target path under --root. */
export function underRoot(root: string, path: string): string {
  return root === "/" ? path : join(root, path);
}

/** Temporary files are dot-files beside their target, so a crash leaves them where uninstall looks. */
const TEMP_MARKER = ".spot-restarter-tmp-";

function isMissing(error: unknown): boolean {
  return (error as NodeJS.ErrnoException).code === "ENOENT";
}

async function lstatOrUndefined(path: string) {
  try {
    return await fs.lstat(path);
  } catch (error) {
    if (isMissing(error)) return undefined;
    throw error;
  }
}

/** What applying an entry would change, without changing anything (for --dry-run and for apply). */
export interface ServiceIds {
  uid: number;
  gid: number;
}

/** The uid/gid an entry should have, or undefined when it is root's as created. */
function wantedOwner(entry: PlannedEntry, ids: ServiceIds | undefined) {
  if (!entry.service || !ids) return undefined;
  return entry.service === "owner" ? { uid: ids.uid, gid: ids.gid } : { uid: 0, gid: ids.gid };
}

export async function inspectEntry(
  root: string,
  entry: PlannedEntry,
  ids?: ServiceIds,
): Promise<EntryResult> {
  const path = underRoot(root, entry.path);
  const stat = await lstatOrUndefined(path);
  if (!stat) return { entry, change: "created", reasons: [], ids };
  const reasons: string[] = [];
  if (entry.kind === "directory") {
    // /var/lib/spot-restarter becomes a symlink once systemd has run the DynamicUser= service.
    if (stat.isSymbolicLink() && entry.path === PATHS.stateDir) {
      return { entry, change: "unchanged", reasons };
    }
    if (!stat.isDirectory())
      throw new Error(`${path} exists and is not a directory: move it away and re-run`);
  } else {
    if (!stat.isFile()) throw new Error(`${path} exists and is not a regular file: move it away and re-run`);
    const current = await fs.readFile(path);
    if (!current.equals(entry.content)) reasons.push("content");
  }
  if ((stat.mode & 0o7777) !== entry.mode) reasons.push("mode");
  const owner = wantedOwner(entry, ids);
  if (owner && (stat.uid !== owner.uid || stat.gid !== owner.gid)) reasons.push("owner");
  return { entry, change: reasons.length > 0 ? "updated" : "unchanged", reasons, ids };
}

/**
 * Creates the missing parents of a target below root, one at a time, never following a symlink
 * (`mkdir -p` would: a link below --root would send the write anywhere). Each is created 0755, as the
 * distribution's /etc/cron.d or /usr/local/bin are, then lstat-ed. The installer has checked the
 * existing ones (trust.ts checkInstallTree), so nobody else can change them meanwhile.
 */
async function ensureParent(root: string, path: string): Promise<void> {
  const below = relative(root, dirname(path));
  if (below.startsWith("..")) throw new Error(`${path} is outside ${root}`);
  // --root itself was created or re-checked by claimRoot (trust.ts) before the first write; a missing
  // one here was never claimed, and is not created blindly (another user could have made it).
  const rootStat = await fs.lstat(root).catch(() => undefined);
  if (!rootStat?.isDirectory())
    throw new Error(`the install root ${root} is not a directory install checked`);
  let current = root;
  for (const part of below.split(sep).filter(Boolean)) {
    current = join(current, part);
    try {
      await fs.mkdir(current, { mode: 0o755 });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    const stat = await fs.lstat(current);
    if (!stat.isDirectory()) {
      throw new Error(
        `${current} is ${stat.isSymbolicLink() ? "a symbolic link" : "not a directory"}: install never writes through it; replace it with a real directory`,
      );
    }
  }
}

async function applyDirectory(
  root: string,
  entry: PlannedDirectory,
  change: Change,
  ids: ServiceIds | undefined,
): Promise<void> {
  const path = underRoot(root, entry.path);
  if (change === "created") {
    await ensureParent(root, path);
    await fs.mkdir(path, { mode: entry.mode });
  }
  // mkdir's mode is filtered by the umask; the directory holds nothing yet, so fixing it is safe.
  const stat = await fs.lstat(path);
  if (!stat.isDirectory()) return;
  const owner = wantedOwner(entry, ids);
  if (owner && (stat.uid !== owner.uid || stat.gid !== owner.gid)) {
    await fs.lchown(path, owner.uid, owner.gid);
    // A state directory root used before (cron as root): hand its files over too, never following links.
    if (entry.service === "owner") {
      for (const name of await fs.readdir(path)) await fs.lchown(join(path, name), owner.uid, owner.gid);
    }
  }
  if ((stat.mode & 0o7777) !== entry.mode) await fs.chmod(path, entry.mode);
}

/**
 * Writes a temp file beside the target and renames it over the target, so a reader sees the old or
 * the new file, never half of one. The file is created with its final mode: a secret file is never
 * readable by anyone else, not even for a moment, and is never chmod-ed.
 */
async function replaceFile(root: string, entry: PlannedFile, ids: ServiceIds | undefined): Promise<void> {
  const path = underRoot(root, entry.path);
  await ensureParent(root, path);
  const temp = join(dirname(path), `${TEMP_MARKER}${basename(path)}-${randomBytes(6).toString("hex")}`);
  const handle = await fs.open(
    temp,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
    entry.mode,
  );
  try {
    // The service group may read it: chown, then the mode, both while the file is still empty.
    const owner = wantedOwner(entry, ids);
    if (owner) await handle.chown(owner.uid, owner.gid);
    // The umask can only take bits away; for public files, and a secret shared with the service group
    // (the cron config copy, still empty here), restore them (0644 under umask 077). A private key
    // (no group or other bit) is never chmod-ed: it has its mode from open(), or the install stops.
    if (!entry.secret || (entry.mode & 0o077) !== 0) await handle.chmod(entry.mode);
    else if (((await handle.stat()).mode & 0o7777) !== entry.mode) {
      throw new Error(
        `${path} was created with mode ${((await handle.stat()).mode & 0o7777).toString(8)}, not ${entry.mode.toString(8)}: the umask takes owner bits away; run install with umask 022 or 077`,
      );
    }
    await handle.writeFile(entry.content);
    await handle.sync();
  } catch (error) {
    await handle.close();
    await fs.rm(temp, { force: true });
    throw error;
  }
  await handle.close();
  try {
    await fs.rename(temp, path);
  } catch (error) {
    await fs.rm(temp, { force: true });
    throw error;
  }
}

/** Applies one entry whose change inspectEntry computed. */
export async function applyEntry(root: string, result: EntryResult): Promise<void> {
  if (result.change === "unchanged") return;
  if (result.entry.kind === "directory") await applyDirectory(root, result.entry, result.change, result.ids);
  else await replaceFile(root, result.entry, result.ids);
}

/** Removes a file or symlink; returns whether there was one. */
export async function removeFile(root: string, path: string): Promise<boolean> {
  const target = underRoot(root, path);
  const stat = await lstatOrUndefined(target);
  if (!stat) return false;
  await fs.rm(target, { force: true });
  return true;
}

/** Removes a directory and everything in it; returns whether there was one. */
export async function removeTree(root: string, path: string): Promise<boolean> {
  const target = underRoot(root, path);
  const stat = await lstatOrUndefined(target);
  if (!stat) return false;
  await fs.rm(target, { recursive: true, force: true });
  return true;
}

/** Removes temp files an interrupted install left in a directory. */
export async function removeLeftoverTempFiles(root: string, directory: string): Promise<string[]> {
  const target = underRoot(root, directory);
  let names: string[];
  try {
    names = await fs.readdir(target);
  } catch (error) {
    if (isMissing(error) || (error as NodeJS.ErrnoException).code === "ENOTDIR") return [];
    throw error;
  }
  const removed: string[] = [];
  for (const name of names.filter((n) => n.startsWith(TEMP_MARKER))) {
    await fs.rm(join(target, name), { force: true });
    removed.push(join(directory, name));
  }
  return removed;
}

/** Removes a directory if it is empty; returns what is left in it otherwise. */
export async function removeDirectoryIfEmpty(
  root: string,
  path: string,
): Promise<string[] | "removed" | "absent"> {
  const target = underRoot(root, path);
  let names: string[];
  try {
    names = await fs.readdir(target);
  } catch (error) {
    if (isMissing(error)) return "absent";
    throw error;
  }
  if (names.length > 0) return names;
  await fs.rmdir(target);
  return "removed";
}

export async function exists(root: string, path: string): Promise<boolean> {
  return (await lstatOrUndefined(underRoot(root, path))) !== undefined;
}
