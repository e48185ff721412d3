// The soak's judge (soak/judge.ts) over hand-written VM histories: each eviction answered by exactly
// one successful start, nothing else started.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { VmHistoryEntry } from "../../emulator/state";
import { judgeStarts } from "../../soak/judge";

const at = (second: number) => new Date(Date.UTC(2026, 10, 30, 12, 0, second)).toISOString();
const h = (...entries: Array<[number, VmHistoryEntry["event"]]>): VmHistoryEntry[] =>
  entries.map(([second, event]) => ({ at: at(second), event }));
const judge = (
  history: VmHistoryEntry[],
  options: { restartable?: boolean; initiallyEvicted?: boolean } = {},
) =>
  judgeStarts(
    [{ name: "vm", history, initiallyEvicted: options.initiallyEvicted ?? false }],
    new Set(options.restartable === false ? [] : ["vm"]),
  );

describe("soak judge", () => {
  it("an eviction answered by one successful start: one restart, its latency, nothing wrong", () => {
    const j = judge(h([0, "evicted"], [2, "start-accepted"], [5, "start-succeeded"]));
    assert.deepEqual(j, { evictions: 1, restarts: 1, wrongStarts: [], missed: [], latenciesMs: [5_000] });
  });

  it("failed attempts then success still count one restart", () => {
    const j = judge(
      h(
        [0, "evicted"],
        [1, "start-accepted"],
        [2, "start-failed"],
        [60, "start-accepted"],
        [62, "start-succeeded"],
      ),
    );
    assert.equal(j.restarts, 1);
    assert.deepEqual(j.wrongStarts, []);
  });

  it("a second start while one is in flight is wrong", () => {
    const j = judge(h([0, "evicted"], [1, "start-accepted"], [2, "start-accepted"], [3, "start-succeeded"]));
    assert.equal(j.wrongStarts.length, 1);
    assert.match(j.wrongStarts[0] ?? "", /in flight/);
  });

  it("a start of a VM that was not evicted is wrong", () => {
    const j = judge(h([1, "start-accepted"], [1, "start-succeeded"]));
    assert.match(j.wrongStarts[0] ?? "", /not evicted/);
    assert.equal(j.restarts, 0);
  });

  it("a start after the owner deallocated the VM is wrong, and the owner's stop is no missed restart", () => {
    const left = judge(h([0, "deallocated-by-owner"]));
    assert.deepEqual([left.wrongStarts, left.missed], [[], []]);
    const started = judge(h([0, "deallocated-by-owner"], [30, "start-accepted"]));
    assert.match(started.wrongStarts[0] ?? "", /owner/);
  });

  it("an eviction never answered is missed; one waiting from the start of the run counts too", () => {
    assert.deepEqual(judge(h([0, "evicted"], [1, "start-accepted"], [2, "start-failed"])).missed, ["vm"]);
    const waiting = judge(h([3, "start-accepted"], [5, "start-succeeded"]), { initiallyEvicted: true });
    assert.deepEqual(
      [waiting.evictions, waiting.restarts, waiting.missed, waiting.latenciesMs],
      [1, 1, [], []],
    );
  });

  it("a VM that must never be started has no start at all", () => {
    const j = judge(h([0, "evicted"], [1, "start-accepted"], [2, "start-succeeded"]), { restartable: false });
    assert.equal(j.wrongStarts.length, 1);
    assert.equal(j.restarts, 0);
  });
});
