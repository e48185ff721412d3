// Who may change a path: the checks that keep another local user from swapping a file that root (or
// the service) later runs or trusts. A path is only as safe as every directory on the way to it: whoever
// can write a directory can replace what is in it, so each component is lstat-ed and symlinks are
// followed by hand, hop by hop, checking the link and where it leads.
import type { Stats } from "node:fs";
import { lstat, readlink, stat } from "node:fs/promises";
import { homedir } from "node:os";
import { join, resolve } from "node:path";

/** S_ISVTX: in a sticky directory (/tmp) only an entry's owner may rename or delete it. */
const STICKY = 0o1000;
const GROUP_OR_OTHER_WRITE = 0o022;

export interface Component {
  path: string;
  stat: Stats;
}

/** A rule over one component; returns why it is not acceptable, or undefined. */
export type ComponentRule = (component: Component) => string | undefined;

/**
 * Visits "/" and every component of `path` with lstat, following each symlink by hand (so the link,
 * the directory holding it and where it points are all visited). Stops at the first missing component
 * (returns its path) or the first rule failure (throws PathTrustError). Returns undefined when all exist.
 */
export async function walkComponents(path: string, rule: ComponentRule): Promise<string | undefined> {
  const check = (component: Component) => {
    const problem = rule(component);
    if (problem) throw new PathTrustError(component.path, problem);
  };
  check({ path: "/", stat: await lstat("/") });
  let current = "/";
  let pending = path.split("/").filter((part) => part !== "" && part !== ".");
  let hops = 0;
  while (pending.length > 0) {
    const name = pending.shift() as string;
    if (name === "..") {
      current = join(current, "..");
      continue;
    }
    const next = join(current, name);
    let stat: Stats;
    try {
      stat = await lstat(next);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return next;
      throw error;
    }
    check({ path: next, stat });
    if (stat.isSymbolicLink()) {
      hops += 1;
      if (hops > 40) throw new PathTrustError(next, "too many levels of symbolic links");
      const target = await readlink(next);
      if (target.startsWith("/")) current = "/";
      pending = [...target.split("/").filter((part) => part !== "" && part !== "."), ...pending];
      continue;
    }
    current = next;
  }
  return undefined;
}

export class PathTrustError extends Error {
  constructor(
    readonly path: string,
    readonly why: string,
  ) {
    super(`${path} ${why}`);
    this.name = "PathTrustError";
  }
}

function ownerName(uid: number): string {
  return uid === 0 ? "root" : `uid ${uid}`;
}

/**
 * Owned by one of `owners` and not writable by group or others (a symlink's own mode means nothing:
 * only its owner and its directory count). `allowSticky`: a world-writable sticky directory such as
 * /tmp is accepted on the way, since nobody else may rename what root created in it.
 */
export function ownedAndNotWritable(owners: readonly number[], options: { allowSticky?: boolean } = {}) {
  return ({ stat }: Component): string | undefined => {
    if (!owners.includes(stat.uid)) {
      return `is owned by ${ownerName(stat.uid)}, not ${owners.map(ownerName).join(" or ")}`;
    }
    if (stat.isSymbolicLink()) return undefined;
    if ((stat.mode & GROUP_OR_OTHER_WRITE) !== 0) {
      if (options.allowSticky && stat.isDirectory() && (stat.mode & STICKY) !== 0) return undefined;
      return `is writable by ${(stat.mode & 0o002) !== 0 ? "others" : "its group"} (mode 0${(stat.mode & 0o7777).toString(8)})`;
    }
    return undefined;
  };
}

/**
 * Directories the system or other people rely on (issue 23, item 6): `/`, the temporary directories,
 * the system's trees, a home directory. Changing their owner or mode to make one program's path safe
 * breaks everything else there, so a hint never suggests it.
 */
const SYSTEM_DIRECTORIES = new Set([
  "/",
  "/tmp",
  "/var/tmp",
  "/dev/shm",
  "/run",
  "/usr",
  "/usr/local",
  "/usr/bin",
  "/usr/sbin",
  "/usr/lib",
  "/usr/share",
  "/usr/local/bin",
  "/usr/local/lib",
  "/usr/local/sbin",
  "/bin",
  "/sbin",
  "/lib",
  "/lib64",
  "/etc",
  "/opt",
  "/srv",
  "/var",
  "/var/lib",
  "/home",
  "/root",
  "/mnt",
  "/media",
]);

export function sharedOrSystemDirectory(path: string, home = homedir()): boolean {
  const normal = resolve(path);
  return (
    SYSTEM_DIRECTORIES.has(normal) ||
    /^\/(home|Users|var\/home)\/[^/]+$/.test(normal) ||
    (home !== "" && normal === resolve(home))
  );
}

/**
 * The fix for a directory another user could write: `chown OWNER DIR && chmod go-w DIR`, unless DIR is a
 * shared or system directory; then what to move out of it instead (`move`: the file or tree concerned).
 */
export function fixHint(path: string, owner = "root", move?: string): string {
  if (sharedOrSystemDirectory(path)) {
    return `move ${move ?? `what is in ${path}`} to a directory only ${owner} can write (never chown or chmod ${path}: a shared or system directory)`;
  }
  return `\`chown ${owner} ${path} && chmod go-w ${path}\``;
}

/**
 * Checks the directory a process keeps its own state in: writable by nobody but its owner, and owned by
 * the running user (or root), or another user could plant or swap the files the process trusts. Root
 * may read a directory any single user owns (`sudo spot-restarter status` reads the service's), but
 * writes only into its own. Returns the problem as a sentence naming the directory and the fix.
 */
export async function checkPrivateDirectory(
  directory: string,
  access: "read" | "write",
  uid: number | undefined = process.getuid?.(),
): Promise<string | undefined> {
  if (uid === undefined) return undefined; // not POSIX
  let info: Stats;
  try {
    info = await stat(directory);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
  const owners = uid === 0 && access === "read" ? [info.uid] : [...new Set([uid, 0])];
  const problem = ownedAndNotWritable(owners)({ path: directory, stat: info });
  if (!problem) return undefined;
  const who = uid === 0 ? "root" : `uid ${uid}`;
  return `the state directory ${directory} ${problem}: another user could plant or swap the state there; make it ${who}'s alone (${fixHint(directory, uid === 0 ? "root" : String(uid), "the state (stateDir)")}), or set another stateDir`;
}
