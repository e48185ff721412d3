// What the installer trusts before it writes, runs or schedules anything as root (issue 17, items 1
// and 2; README "What the installer trusts and refuses"). Each check returns the problem as a sentence
// that names the path and the fix, or undefined.
import { constants, promises as fs } from "node:fs";
import { dirname, join } from "node:path";
import { fixHint, ownedAndNotWritable, PathTrustError, walkComponents } from "../state/fsSafe";

/**
 * The Node.js that the wrapper, the unit and the cron line run as root (the .cjs bundle's install):
 * the binary and every directory on the way to it, through every symlink, must be owned by root and
 * writable by nobody else. Otherwise whoever may write one of them (an nvm tree, /opt/<user>, a
 * checkout's node_modules) replaces the binary and runs code as root every minute, or reads the key.
 * The single executable (installed root-owned into /usr/local/bin) runs no separate Node and needs no
 * such check.
 */
export async function checkTrustedNode(nodePath: string): Promise<string | undefined> {
  try {
    const missing = await walkComponents(nodePath, ownedAndNotWritable([0]));
    if (missing) return `Node.js at ${nodePath} does not exist (${missing} is missing)`;
    return undefined;
  } catch (error) {
    if (!(error instanceof PathTrustError)) throw error;
    return `Node.js at ${nodePath} is not safe to run as root: ${error.path} ${error.why}, so that user could replace the Node.js that root runs. Install Node.js system-wide, root-owned (your distribution's nodejs package, or NodeSource, in /usr/bin), and run the installer with it (\`sudo /usr/bin/node spot-restarter.cjs install …\`), or fix the path: ${fixHint(error.path, "root", nodePath)}`;
  }
}

function runningUid(): number {
  return process.getuid?.() ?? 0;
}

/**
 * Checks the tree install writes into (or uninstall removes from) before touching it: --root itself
 * and every directory on the way to it must belong to the running user or root and be writable by
 * nobody else (a sticky /tmp above it is fine), and below it every existing directory on the way to
 * each target must be a real directory (no symlink: writes and deletes must not land elsewhere), owned
 * by the running user, writable by nobody else. The targets themselves are checked by their writer
 * (a regular file or directory is replaced; a symlink is removed, never followed).
 * `allowedSymlinks`: target paths that may be a symlink (systemd's DynamicUser= state directory).
 */
export async function checkInstallTree(
  root: string,
  targets: readonly string[],
  uid = runningUid(),
): Promise<string | undefined> {
  const owners = [...new Set([uid, 0])];
  try {
    const missing = await walkComponents(root, ownedAndNotWritable(owners, { allowSticky: true }));
    if (missing) return undefined; // a fresh root: everything below is created by us
  } catch (error) {
    if (!(error instanceof PathTrustError)) throw error;
    return `the install root ${root} is not safe: ${error.path} ${error.why}, so another user could swap what is written there (and what root then runs); use a directory only root can write, or fix it: ${fixHint(error.path, "root", `the install root ${root}`)}`;
  }
  const rule = ownedAndNotWritable([uid]);
  const seen = new Set<string>();
  for (const target of targets) {
    const parts = target.split("/").filter(Boolean).slice(0, -1);
    let current = root;
    for (const part of parts) {
      current = join(current, part);
      if (seen.has(current)) continue;
      seen.add(current);
      let stat: Awaited<ReturnType<typeof fs.lstat>>;
      try {
        stat = await fs.lstat(current);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === "ENOENT") break;
        throw error;
      }
      const shown = root === "/" ? current : `${current} (under --root ${root})`;
      if (stat.isSymbolicLink()) {
        return `${shown} is a symbolic link: install and uninstall never write or delete through one (it could lead anywhere); replace it with a real directory`;
      }
      if (!stat.isDirectory()) return `${shown} is not a directory: move it away and re-run`;
      const problem = rule({ path: current, stat });
      if (problem) {
        return `${shown} ${problem}, so another user could swap what install writes there; fix it: ${fixHint(current, "root", target)}`;
      }
    }
  }
  return undefined;
}

/** What --root was when the tree was checked: missing (install creates it), or this directory. */
export type RootSnapshot = { fresh: true } | { fresh: false; dev: number; ino: number };

export async function snapshotRoot(root: string): Promise<RootSnapshot> {
  try {
    const stat = await fs.lstat(root);
    return { fresh: false, dev: stat.dev, ino: stat.ino };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return { fresh: true };
    throw error;
  }
}

/**
 * Right before the first write (issue 25, item 2): a root that was missing when checked is created here
 * and must not exist by now (another user who made it first, racing the check, would own the tree); one
 * that existed must still be that very directory (device and inode), a real directory, the running
 * user's or root's, and writable by nobody else. Returns the problem, or undefined.
 */
export async function claimRoot(
  root: string,
  snapshot: RootSnapshot,
  uid = runningUid(),
): Promise<string | undefined> {
  if (root === "/") return undefined;
  if (snapshot.fresh) {
    try {
      await fs.mkdir(root, { mode: 0o755 });
      return undefined;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "EEXIST") {
        return `the install root ${root} did not exist when install checked it, but does now: someone else created it meanwhile and could own what install writes there; remove it (or pick a directory only root can write) and run install again`;
      }
      if (code === "ENOENT") {
        return `the install root ${root} cannot be created: ${dirname(root)} does not exist; create it first`;
      }
      throw error;
    }
  }
  const stat = await fs.lstat(root).catch(() => undefined);
  if (!stat || stat.dev !== snapshot.dev || stat.ino !== snapshot.ino) {
    return `the install root ${root} was replaced after install checked it (${stat ? "another directory or link is there now" : "it is gone"}): run install again, into a directory only root can write`;
  }
  if (!stat.isDirectory()) return `the install root ${root} is not a directory`;
  const problem = ownedAndNotWritable([...new Set([uid, 0])])({ path: root, stat });
  return problem
    ? `the install root ${root} ${problem} since install checked it: run install again, into a directory only root can write`
    : undefined;
}

/**
 * A private copy of the bundle for the verification run: root runs what it just read and checked,
 * never a file in the target tree (which someone else might swap between the write and the run).
 * 0500, or 0555 when the run switches to the scheduler's user (the program is no secret; the copy stays
 * root's, in root's directory, so nobody can swap it).
 */
export async function writePrivateCopy(
  directory: string,
  name: string,
  content: Buffer,
  mode = 0o500,
): Promise<string> {
  const path = join(directory, name);
  const handle = await fs.open(
    path,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
    mode,
  );
  try {
    // open()'s mode passes through the umask (0555 would be 0500 under umask 077): not a secret, so set it.
    await handle.chmod(mode);
    await handle.writeFile(content);
  } finally {
    await handle.close();
  }
  return path;
}
