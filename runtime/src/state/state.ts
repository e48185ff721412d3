// The state file: one JSON document in stateDir holding, per VM, what the loop remembers between
// cycles (and between cron runs). Written atomically (temp file + fsync + rename) so a crash or
// SIGKILL leaves either the old or the new file, never half of one. A missing or corrupt file is
// reported and rebuilt from the next observation: never fatal.
import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { mkdir, open, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import type { Clock } from "../core/clock";
import { messageChain } from "../core/errors";
import type { EventSink } from "../core/events";
import { controlCharactersIn, jsonErrorPosition, printablePath } from "../core/text";
import type { RestarterState } from "../core/vm";
import { checkPrivateDirectory } from "./fsSafe";

export const stateFileName = "state.json";

const timestamp = z.number().finite().optional();
const recordSchema = z.object({
  resourceGroup: z.string(),
  name: z.string(),
  powerState: z.string().optional(),
  evictedSince: timestamp,
  lastEvictionSeenAt: timestamp,
  startAttempts: z.number().int().min(0),
  backoffUntil: timestamp,
  lastStartAt: timestamp,
  lastStartedAt: timestamp,
  lastResult: z.object({ outcome: z.string(), code: z.string().optional(), at: z.number() }).optional(),
  lastRanAt: timestamp,
  cause: z
    .object({
      kind: z.enum(["evicted", "owner"]),
      at: z.number(),
      source: z.enum(["resource-health", "activity-log", "start-preempted"]),
      by: z.string().optional(),
      knownAfterMs: z.number().nonnegative().optional(),
    })
    .optional(),
  leftAloneLogged: z.string().optional(),
  capacityFailingSince: timestamp,
  size: z
    .object({
      originalSize: z.string(),
      size: z.string(),
      phase: z.enum(["resizing", "resized"]),
      at: z.number(),
      outage: timestamp,
    })
    .optional(),
});
const stateSchema = z.object({
  version: z.literal(1),
  vms: z.record(z.string(), recordSchema),
  throttledUntil: timestamp,
});

export interface LoadedState {
  readonly state: RestarterState;
  /** Set when the file was missing or unreadable and the state starts empty. */
  readonly problem?: { kind: "missing" | "corrupt"; detail: string };
}

export interface StateStore {
  readonly path: string;
  load(): Promise<LoadedState>;
  save(state: RestarterState): Promise<void>;
}

export function emptyState(): RestarterState {
  return { vms: {} };
}

export function createFileStateStore(stateDir: string): StateStore {
  const path = join(stateDir, stateFileName);
  return {
    path,
    async load() {
      // State another user could have planted is not state: start empty (issue 17, item 3).
      const untrusted = await checkPrivateDirectory(stateDir, "read");
      if (untrusted) return { state: emptyState(), problem: { kind: "corrupt", detail: untrusted } };
      let text: string;
      try {
        text = await readStateDirFile(path);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === "ENOENT") {
          return { state: emptyState(), problem: { kind: "missing", detail: `${path} does not exist yet` } };
        }
        if (code === "ELOOP") {
          return { state: emptyState(), problem: { kind: "corrupt", detail: `${path} is a symbolic link` } };
        }
        throw error;
      }
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch (error) {
        // Only where: V8's message quotes the text around the error, and the file is not ours to show.
        return {
          state: emptyState(),
          problem: { kind: "corrupt", detail: `${path} is not valid JSON${jsonErrorPosition(error, text)}` },
        };
      }
      // Nothing this program writes holds a control character; a key or value that does was planted or
      // damaged, and would reach the terminal through `status` and the log (issue 25, item 4).
      const planted = controlCharactersIn(json)[0];
      if (planted) {
        return {
          state: emptyState(),
          problem: {
            kind: "corrupt",
            detail: `${path} does not hold spot-restarter state (${planted.where}: a ${planted.in} holds a control character)`,
          },
        };
      }
      const parsed = stateSchema.safeParse(json);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        return {
          state: emptyState(),
          problem: {
            kind: "corrupt",
            detail: `${path} does not hold spot-restarter state (${issue ? printablePath(issue.path as (string | number)[]) || "top level" : "top level"}: ${issue?.message})`,
          },
        };
      }
      const { version: _, ...state } = parsed.data;
      return { state: state as RestarterState };
    },
    async save(state) {
      await writeStateDirFile(
        stateDir,
        stateFileName,
        `${JSON.stringify({ version: 1, ...state }, null, 2)}\n`,
      );
    },
  };
}

/**
 * Reads a file of the state directory, never through a symlink (O_NOFOLLOW: a state file that is a
 * symlink to /etc/shadow, say, is not read; the error's code is ELOOP).
 */
export async function readStateDirFile(path: string): Promise<string> {
  const handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    return await handle.readFile("utf8");
  } finally {
    await handle.close();
  }
}

/**
 * Writes a file of the state directory (state.json, pauses.json) atomically, 0600 from creation: the
 * directory is created 0700 if missing and refused (code EUNTRUSTEDSTATEDIR) when another user could
 * write it; the text goes to a temporary file with a random name, created exclusively and never through
 * a symlink (nothing planted is written to), fsynced, then renamed over the file, so a reader or a
 * crash sees the old file or the new one, never half of one. The temporary file never outlives a failure.
 */
export async function writeStateDirFile(
  stateDir: string,
  name: string,
  text: string,
  options: { forDirectoryOwner?: boolean } = {},
): Promise<void> {
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  if (options.forDirectoryOwner && process.getuid?.() === 0) {
    // Root writing for the service (`sudo spot-restarter pause` in the cron layout, whose state directory
    // is the service user's): the directory must pass the same rules as for reading state (one owner,
    // writable by nobody else), and the file is handed to that owner before it appears, so the service
    // can read it (0600) and root never trusts a directory another user may write.
    const untrusted = await checkPrivateDirectory(stateDir, "read");
    if (untrusted) throw Object.assign(new Error(untrusted), { code: "EUNTRUSTEDSTATEDIR" });
    const owner = await stat(stateDir);
    await writeFileAtomically(join(stateDir, name), text, 0o600, { uid: owner.uid, gid: owner.gid });
    return;
  }
  const untrusted = await checkPrivateDirectory(stateDir, "write");
  if (untrusted) throw Object.assign(new Error(untrusted), { code: "EUNTRUSTEDSTATEDIR" });
  await writeFileAtomically(join(stateDir, name), text, 0o600);
}

/**
 * Replaces `path` with `text` atomically, the file having `mode` from creation: a temporary file with a
 * random name beside it, created exclusively and never through a symlink, fsynced, then renamed over
 * `path`; it never outlives a failure. (The state directory's files, and the metrics textfile.)
 */
export async function writeFileAtomically(
  path: string,
  text: string,
  mode: number,
  owner?: { uid: number; gid: number },
): Promise<void> {
  const temp = `${path}.${randomBytes(8).toString("hex")}.tmp`;
  const handle = await open(
    temp,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
    mode,
  );
  try {
    try {
      // On the open handle, never by name: the file is the one created above, whatever the name holds now.
      if (owner) await handle.chown(owner.uid, owner.gid);
      await handle.writeFile(text);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}

/** An in-memory store for tests and dry runs. */
export function createMemoryStateStore(
  initial: RestarterState = emptyState(),
): StateStore & { current: RestarterState } {
  const store = {
    path: "(memory)",
    current: structuredClone(initial),
    async load() {
      return { state: structuredClone(store.current) };
    },
    async save(state: RestarterState) {
      store.current = structuredClone(state);
    },
  };
  return store;
}

/**
 * Saves through a store, one save at a time, each writing the state as it is when its turn comes. An
 * unchanged state is not written again (an idle cycle changes nothing: no disk wear per interval). A
 * failing store is reported once per kind of failure, and when it works again; never thrown:
 * restarting VMs goes on from memory.
 */
export class StateSaver {
  private saving: Promise<void> = Promise.resolve();
  private lastSaved: string | undefined;
  private trouble: string | undefined;

  constructor(
    private readonly store: StateStore,
    private readonly emit: EventSink,
    private readonly clock: Pick<Clock, "now">,
  ) {}

  /** False while the state file cannot be written. */
  get saved(): boolean {
    return this.trouble === undefined;
  }

  /** Resolves when every save asked for so far has ended. */
  settled(): Promise<void> {
    return this.saving;
  }

  save(state: RestarterState): Promise<void> {
    const { store } = this;
    this.saving = this.saving
      .catch(() => {})
      .then(async () => {
        const snapshot = JSON.stringify(state);
        if (snapshot === this.lastSaved) return;
        await store.save(state);
        this.lastSaved = snapshot;
        if (this.trouble !== undefined) {
          this.trouble = undefined;
          this.emit({ type: "state-saved", at: this.clock.now(), path: store.path });
        }
      })
      .catch((error) => {
        const code = (error as NodeJS.ErrnoException).code;
        const trouble = code ?? messageChain(error);
        if (trouble === this.trouble) return;
        this.trouble = trouble;
        const message = messageChain(error);
        this.emit({ type: "state-save-failed", at: this.clock.now(), path: store.path, code, message });
      });
    return this.saving;
  }
}
