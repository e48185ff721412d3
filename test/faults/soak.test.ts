// A 12-second soak as a smoke test of soak/soak.ts (the 10-minute run is `npm run soak`, not part of
// npm test): random evictions and faults, then every restartable VM back, no wrong start, no leak.
import assert from "node:assert/strict";
import { it } from "node:test";
import { soak } from "../../soak/soak";
import { figure } from "./harness";

it("soak smoke: 12 s of random evictions, owner stops and faults, no wrong or missed start", async () => {
  const result = await soak(
    {
      minutes: 0.2,
      vms: 8,
      intervalSeconds: 1,
      seed: 7,
      json: false,
      rssGrowthPercent: 100,
      chaosPauseMs: [300, 900],
    },
    () => {},
  );
  assert.equal(result.wrongStarts, 0, result.wrongStartDetails.join("; "));
  assert.equal(result.missedRestarts, 0, result.missed.join(", "));
  assert.equal(result.secretLeak, null);
  assert.equal(result.exitCode, 0);
  assert.ok(result.evictions >= 3, `the chaos evicted ${result.evictions} VMs`);
  // Owner stops are in the mix (soak/judge.ts counts any start of one as wrong, asserted above).
  assert.ok(result.ownerDeallocations >= 1, `the owner deallocated ${result.ownerDeallocations} VMs`);
  // Counted from the emulator's VM history (soak/judge.ts): no duplicate start (that is a wrong start),
  // no unanswered eviction (missed), so each eviction got exactly one successful start, or shared one
  // with an eviction that came while it waited.
  assert.ok(
    result.restarts >= 1 && result.restarts <= result.evictions,
    `${result.restarts} restarts for ${result.evictions} evictions`,
  );
  figure(
    "soak-smoke",
    `${result.evictions} evictions, ${result.ownerDeallocations} owner stops, ${result.restarts} restarts, 0 wrong, 0 missed, ${result.armRequestsPerCycle} ARM requests per cycle`,
  );
});

it("soak smoke with slow signals: Azure says why 3 s late (longer than two cycles), still no wrong or missed start", async () => {
  const result = await soak(
    {
      minutes: 0.2,
      vms: 8,
      intervalSeconds: 1,
      seed: 11,
      json: false,
      rssGrowthPercent: 100,
      chaosPauseMs: [300, 900],
      signalDelaySeconds: 3,
    },
    () => {},
  );
  assert.equal(result.wrongStarts, 0, result.wrongStartDetails.join("; "));
  assert.equal(result.missedRestarts, 0, result.missed.join(", "));
  assert.ok(result.ownerDeallocations >= 1, `the owner deallocated ${result.ownerDeallocations} VMs`);
  assert.ok(result.evictions >= 1, `the chaos evicted ${result.evictions} VMs`);
  figure(
    "soak-slow-signals",
    `12 s, signals 3 s late: ${result.evictions} evictions, ${result.ownerDeallocations} owner stops, 0 wrong, 0 missed`,
  );
});
