// The state file: one JSON document in stateDir holding, per VM, what the loop remembers between
// cycles (and between cron runs). Written atomically (temp file + fsync + rename) so a crash or
// SIGKILL leaves either the old or the new file, never half of one. A missing or corrupt file is
// reported and rebuilt from the next observation: never fatal.
import { mkdir, open, readFile, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import type { RestarterState } from "./decisions";

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
      let text: string;
      try {
        text = await readFile(path, "utf8");
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === "ENOENT") {
          return { state: emptyState(), problem: { kind: "missing", detail: `${path} does not exist yet` } };
        }
        throw error;
      }
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch (error) {
        return {
          state: emptyState(),
          problem: { kind: "corrupt", detail: `${path} is not valid JSON (${(error as Error).message})` },
        };
      }
      const parsed = stateSchema.safeParse(json);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        return {
          state: emptyState(),
          problem: {
            kind: "corrupt",
            detail: `${path} does not hold spot-restarter state (${issue?.path.join(".") || "top level"}: ${issue?.message})`,
          },
        };
      }
      const { version: _, ...state } = parsed.data;
      return { state: state as RestarterState };
    },
    async save(state) {
      await mkdir(stateDir, { recursive: true, mode: 0o700 });
      const temp = `${path}.${process.pid}.tmp`;
      const handle = await open(temp, "w", 0o600);
      try {
        await handle.writeFile(`${JSON.stringify({ version: 1, ...state }, null, 2)}\n`);
        await handle.sync();
      } catch (error) {
        await handle.close();
        await rm(temp, { force: true });
        throw error;
      }
      await handle.close();
      await rename(temp, path);
    },
  };
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
