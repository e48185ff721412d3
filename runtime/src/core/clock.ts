// Time behind a small interface, so the loop's waits and timestamps can be driven by a fake in tests.
import { setTimeout as sleepFor } from "node:timers/promises";

export interface Clock {
  now(): number;
  /** Resolves after `ms`, rejects with an AbortError when `signal` aborts first. */
  sleep(ms: number, signal: AbortSignal): Promise<void>;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) => sleepFor(ms, undefined, { signal }),
};
