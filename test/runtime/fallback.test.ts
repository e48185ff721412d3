// Fallback sizes as pure decisions (runtime/src/loop/fallback.ts), with plain objects; and the state file keeping
// what a resize must remember across a crash. The end-to-end run is test/runtime/emulator-fallback.test.ts.
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import fc from "fast-check";
import { chooseFallback, describeSize, planSize, type SizeFacts } from "../../runtime/src/loop/fallback";
import { createFileStateStore } from "../../runtime/src/state/state";

const MIN = 60_000;
const base: SizeFacts = {
  currentSize: "Standard_D2s_v5",
  fallbacks: ["Standard_D2as_v5", "Standard_D2s_v4"],
  size: undefined,
  outage: 1_000,
  capacityFailingSince: 1_000,
  now: 1_000 + 10 * MIN,
  fallbackAfterMs: 10 * MIN,
};

describe("planSize", () => {
  it("keeps the size until capacity has failed for fallbackAfter, then offers the fallbacks in order", () => {
    assert.deepEqual(planSize({ ...base, now: base.now - 1 }), { kind: "keep" });
    assert.deepEqual(planSize({ ...base, capacityFailingSince: undefined }), { kind: "keep" });
    assert.deepEqual(planSize(base), {
      kind: "fallback",
      from: "Standard_D2s_v5",
      candidates: ["Standard_D2as_v5", "Standard_D2s_v4"],
    });
  });

  it("from a fallback without capacity, moves on to the next one; after the last, keeps it", () => {
    const size = {
      originalSize: "Standard_D2s_v5",
      size: "Standard_D2as_v5",
      phase: "resized",
      at: 0,
      outage: 1_000,
    } as const;
    assert.deepEqual(planSize({ ...base, currentSize: "Standard_D2as_v5", size }), {
      kind: "fallback",
      from: "Standard_D2as_v5",
      candidates: ["Standard_D2s_v4"],
    });
    assert.deepEqual(planSize({ ...base, currentSize: "Standard_D2s_v4", size }), { kind: "keep" });
  });

  it("at a later deallocation, restores the original size first, even with fallbacks since removed", () => {
    const size = {
      originalSize: "Standard_D2s_v5",
      size: "Standard_D2as_v5",
      phase: "resized",
      at: 0,
      outage: 1_000,
    } as const;
    const later = {
      ...base,
      currentSize: "Standard_D2as_v5",
      size,
      outage: 5 * MIN,
      capacityFailingSince: undefined,
    };
    assert.deepEqual(planSize(later), { kind: "restore", to: "Standard_D2s_v5", from: "Standard_D2as_v5" });
    assert.deepEqual(planSize({ ...later, fallbacks: [] }), {
      kind: "restore",
      to: "Standard_D2s_v5",
      from: "Standard_D2as_v5",
    });
    // In the same deallocation it stays at the fallback (it is there because its own size had no capacity).
    assert.deepEqual(planSize({ ...later, outage: 1_000 }), { kind: "keep" });
  });

  it("after a crash mid-resize: whatever the VM's size turned out to be, the original is still known", () => {
    const resizing = {
      originalSize: "Standard_D2s_v5",
      size: "Standard_D2as_v5",
      phase: "resizing",
      at: 0,
      outage: 1_000,
    } as const;
    // The PATCH never happened: nothing to restore, the fallback is tried again.
    assert.equal(planSize({ ...base, size: resizing }).kind, "fallback");
    // It did happen, and the VM later ran and was evicted again: back to the original.
    assert.deepEqual(
      planSize({ ...base, currentSize: "Standard_D2as_v5", size: resizing, outage: 9 * MIN }),
      {
        kind: "restore",
        to: "Standard_D2s_v5",
        from: "Standard_D2as_v5",
      },
    );
  });

  it("without fallbacks and nothing remembered, never anything but keep (property)", () => {
    fc.assert(
      fc.property(
        fc.option(fc.string(), { nil: undefined }),
        fc.option(fc.nat(), { nil: undefined }),
        fc.option(fc.nat(), { nil: undefined }),
        fc.nat(),
        fc.nat(),
        (currentSize, outage, capacityFailingSince, now, fallbackAfterMs) =>
          planSize({
            currentSize,
            fallbacks: [],
            size: undefined,
            outage,
            capacityFailingSince,
            now,
            fallbackAfterMs,
          }).kind === "keep",
      ),
    );
  });
});

describe("chooseFallback", () => {
  // VirtualMachineSize entries as listAvailableSizes returns them (resourceDiskSizeInMB 0: no temp disk).
  const offered = [
    { name: "Standard_D2s_v5", resourceDiskSizeInMB: 0 },
    { name: "Standard_D2ds_v5", resourceDiskSizeInMB: 76_800 },
    { name: "Standard_D2as_v5", resourceDiskSizeInMB: 0 },
    { name: "Standard_B2s", resourceDiskSizeInMB: 8_192 },
  ];

  it("takes the first candidate offered and on the same side of the temp-disk line, saying why others were passed", () => {
    assert.deepEqual(
      chooseFallback("Standard_D2s_v5", ["Standard_E2s_v5", "Standard_D2ds_v5", "standard_d2as_v5"], offered),
      {
        chosen: "Standard_D2as_v5",
        skipped: [
          { size: "Standard_E2s_v5", why: "not-offered" },
          { size: "Standard_D2ds_v5", why: "temp-disk" },
        ],
      },
    );
    assert.equal(
      chooseFallback("Standard_B2s", ["Standard_D2as_v5", "Standard_D2ds_v5"], offered).chosen,
      "Standard_D2ds_v5",
    );
  });

  it("chooses nothing when nothing fits; leaves the temp-disk rule to Azure when the current size is not listed", () => {
    assert.equal(chooseFallback("Standard_D2s_v5", ["Standard_D2ds_v5"], offered).chosen, undefined);
    assert.equal(chooseFallback("Standard_X1", ["Standard_D2ds_v5"], offered).chosen, "Standard_D2ds_v5");
  });
});

describe("the state file keeps what a resize must remember", () => {
  it("round-trips the original size and how long capacity has failed", async () => {
    const store = createFileStateStore(
      join(mkdtempSync(join(tmpdir(), "spot-restarter-fallback-")), "state"),
    );
    const record = {
      resourceGroup: "personal-network",
      name: "build-box-spot",
      startAttempts: 3,
      evictedSince: 1_000,
      capacityFailingSince: 2_000,
      size: {
        originalSize: "Standard_D2s_v5",
        size: "Standard_D2as_v5",
        phase: "resizing" as const,
        at: 3_000,
        outage: 1_000,
      },
    };
    await store.save({ vms: { "personal-network/build-box-spot": record } });
    const loaded = await store.load();
    assert.equal(loaded.problem, undefined);
    assert.deepEqual(loaded.state.vms["personal-network/build-box-spot"], record);
  });
});

describe("describeSize (what status shows)", () => {
  const resized = {
    originalSize: "Standard_D2s_v5",
    size: "Standard_D2as_v5",
    phase: "resized",
    at: 1,
    outage: 1,
  } as const;

  it("a VM never resized: its listed size, no original", () => {
    assert.deepEqual(describeSize("Standard_D2s_v5", undefined), {
      vmSize: "Standard_D2s_v5",
      originalVmSize: null,
    });
    assert.deepEqual(describeSize(undefined, undefined), { vmSize: null, originalVmSize: null });
  });

  it("in a fallback size (running or waiting): the listed size and its own size from state", () => {
    assert.deepEqual(describeSize("Standard_D2as_v5", resized), {
      vmSize: "Standard_D2as_v5",
      originalVmSize: "Standard_D2s_v5",
    });
  });

  it("back at its own size (ARM may change the case), or a resize not yet confirmed: no original", () => {
    assert.deepEqual(describeSize("standard_d2s_v5", resized), {
      vmSize: "standard_d2s_v5",
      originalVmSize: null,
    });
    assert.deepEqual(describeSize("Standard_D2s_v5", { ...resized, phase: "resizing" }), {
      vmSize: "Standard_D2s_v5",
      originalVmSize: null,
    });
  });

  it("the list unread: the size state says Azure confirmed, else unknown", () => {
    assert.deepEqual(describeSize(undefined, resized), {
      vmSize: "Standard_D2as_v5",
      originalVmSize: "Standard_D2s_v5",
    });
    assert.deepEqual(describeSize(undefined, { ...resized, phase: "resizing" }), {
      vmSize: null,
      originalVmSize: null,
    });
  });
});
