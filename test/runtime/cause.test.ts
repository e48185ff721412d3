// The eviction-cause decision: named cases from the issue, then properties against an oracle written
// from the rules in README.md ("Evicted, or stopped by its owner?"), not from runtime/src/cause/cause.ts.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  type ActivityRecord,
  annotationsQuery,
  type CauseEvidence,
  type CauseInput,
  decideOnDeallocation,
  evidenceFromAnnotation,
  ownerEvidenceFromActivity,
} from "../../runtime/src/cause/cause";

const T = Date.parse("2026-11-30T12:00:00Z");
const MIN = 60_000;
const base: CauseInput = {
  restartWhen: "evicted",
  unknownCauseAfterMs: 10 * MIN,
  now: T,
  deallocatedSince: T - MIN,
  lastRanAt: T - 5 * MIN,
  evidence: [],
};
const evicted = (at: number): CauseEvidence => ({ kind: "evicted", at, source: "resource-health" });
const owner = (at: number, source: CauseEvidence["source"] = "resource-health"): CauseEvidence => ({
  kind: "owner",
  at,
  source,
});

describe("runtime: why a VM is deallocated (decision)", () => {
  it("starts a VM Azure evicted after it last ran", () => {
    const decision = decideOnDeallocation({ ...base, evidence: [evicted(T - 2 * MIN)] });
    assert.equal(decision.action, "start");
    assert.equal(decision.action === "start" && decision.cause, "evicted");
  });

  it("leaves alone a VM its owner deallocated (annotation, Activity Log, or our start preempted)", () => {
    for (const source of ["resource-health", "activity-log", "start-preempted"] as const) {
      const decision = decideOnDeallocation({ ...base, evidence: [owner(T - 2 * MIN, source)] });
      assert.deepEqual(decision, {
        action: "leave-alone",
        reason: "owner-deallocated",
        evidence: owner(T - 2 * MIN, source),
      });
    }
  });

  // The documented tie rule (cause.ts latestEvidence; README "Evicted, or stopped by its owner?"): at equal
  // times the owner's word wins, whichever signal was read first.
  it("an eviction and an owner's stop at the same time: the owner's word wins, in either order", () => {
    for (const evidence of [
      [evicted(T - 2 * MIN), owner(T - 2 * MIN, "activity-log")],
      [owner(T - 2 * MIN, "activity-log"), evicted(T - 2 * MIN)],
    ]) {
      assert.deepEqual(decideOnDeallocation({ ...base, evidence }), {
        action: "leave-alone",
        reason: "owner-deallocated",
        evidence: owner(T - 2 * MIN, "activity-log"),
      });
    }
    // One millisecond later, the eviction is the latest word.
    const later = decideOnDeallocation({ ...base, evidence: [owner(T - 2 * MIN), evicted(T - 2 * MIN + 1)] });
    assert.equal(later.action === "start" && later.cause, "evicted");
  });

  it("ignores an eviction older than the VM's last run (a stale annotation): waits, then starts with a warning", () => {
    const stale = { ...base, evidence: [evicted(T - 20 * MIN)] };
    assert.deepEqual(decideOnDeallocation(stale), {
      action: "wait",
      cause: "unknown",
      until: base.deallocatedSince + 10 * MIN,
    });
    const later = decideOnDeallocation({ ...stale, now: base.deallocatedSince + 10 * MIN });
    assert.equal(later.action === "start" && later.cause, "unknown");
  });

  it("the latest signal wins: owner stop after an eviction leaves it; eviction after an owner start starts it", () => {
    const ownerLast = decideOnDeallocation({ ...base, evidence: [evicted(T - 3 * MIN), owner(T - 2 * MIN)] });
    assert.equal(ownerLast.action, "leave-alone");
    const evictionLast = decideOnDeallocation({
      ...base,
      evidence: [owner(T - 3 * MIN), evicted(T - 2 * MIN)],
    });
    assert.equal(evictionLast.action, "start");
  });

  it("restartWhen deallocated starts any deallocation; pause and hibernation are left alone in both modes", () => {
    const any = decideOnDeallocation({ ...base, restartWhen: "deallocated", evidence: [owner(T - MIN)] });
    assert.equal(any.action === "start" && any.cause, "deallocated");
    for (const restartWhen of ["evicted", "deallocated"] as const) {
      assert.deepEqual(
        decideOnDeallocation({ ...base, restartWhen, hibernated: true, evidence: [evicted(T - MIN)] }),
        {
          action: "leave-alone",
          reason: "hibernated",
        },
      );
      assert.deepEqual(decideOnDeallocation({ ...base, restartWhen, pause: { until: T + MIN } }), {
        action: "leave-alone",
        reason: "paused",
        until: T + MIN,
      });
      assert.deepEqual(decideOnDeallocation({ ...base, restartWhen, pause: {} }), {
        action: "leave-alone",
        reason: "paused",
      });
    }
    // An expired pause no longer holds.
    assert.equal(
      decideOnDeallocation({ ...base, pause: { until: T - 1 }, evidence: [evicted(T - MIN)] }).action,
      "start",
    );
  });

  it("reads annotations and Activity Log entries as evidence, never our own principal's", () => {
    assert.deepEqual(
      evidenceFromAnnotation({
        targetResourceId: "/x",
        annotationName: "VirtualMachinePreempted",
        context: "Platform Initiated",
        occurredAt: T,
      }),
      evicted(T),
    );
    assert.equal(
      evidenceFromAnnotation({
        targetResourceId: "/x",
        annotationName: "LiveMigrationSucceeded",
        occurredAt: T,
      }),
      undefined,
    );
    const id = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm";
    const records: ActivityRecord[] = [
      {
        resourceId: id.toUpperCase(),
        operationName: "Microsoft.Compute/virtualMachines/deallocate/action",
        status: "Succeeded",
        caller: "alice@contoso.com",
        at: T,
      },
      {
        resourceId: id,
        operationName: "Microsoft.Compute/virtualMachines/deallocate/action",
        status: "Failed",
        caller: "bob@contoso.com",
        at: T,
      },
      {
        resourceId: id,
        operationName: "Microsoft.Compute/virtualMachines/start/action",
        status: "Succeeded",
        caller: "carol@contoso.com",
        at: T,
      },
      {
        resourceId: id,
        operationName: "Microsoft.Compute/virtualMachines/deallocate/action",
        status: "Succeeded",
        caller: "our-app-id",
        at: T,
      },
      {
        resourceId: `${id}2`,
        operationName: "Microsoft.Compute/virtualMachines/deallocate/action",
        status: "Succeeded",
        caller: "dave@contoso.com",
        at: T,
      },
    ];
    assert.deepEqual(ownerEvidenceFromActivity(records, id, { clientId: "our-app-id" }), [
      { kind: "owner", at: T, source: "activity-log", by: "alice@contoso.com" },
    ]);
  });

  it("builds one query for every candidate, ids lower-cased", () => {
    const query = annotationsQuery([
      "/subscriptions/S/resourceGroups/RG/providers/Microsoft.Compute/virtualMachines/A",
      "/x/B",
    ]);
    assert.match(query, /^healthresources\n/);
    assert.match(
      query,
      /in \(@'\/subscriptions\/s\/resourcegroups\/rg\/providers\/microsoft\.compute\/virtualmachines\/a', @'\/x\/b'\)/,
    );
  });

  // ---- properties ---------------------------------------------------------------------------------

  /** The rules as README.md states them, evaluated the long way round. */
  function oracle(input: CauseInput): string {
    const pauseActive =
      input.pause !== undefined && !(input.pause.until !== undefined && input.pause.until <= input.now);
    if (pauseActive) return "leave:paused";
    if (input.hibernated) return "leave:hibernated";
    if (input.restartWhen === "deallocated") return "start:deallocated";
    // "after it last ran": an eviction counts when it happened after the last run; an owner's stop also
    // within 30 s before it (the instance view may still have said running).
    const evictions = input.evidence
      .filter((e) => e.kind === "evicted" && (input.lastRanAt === undefined || e.at > input.lastRanAt))
      .map((e) => e.at);
    const stops = input.evidence
      .filter((e) => e.kind === "owner" && (input.lastRanAt === undefined || e.at > input.lastRanAt - 30_000))
      .map((e) => e.at);
    const lastEviction = evictions.length ? Math.max(...evictions) : -Infinity;
    const lastStop = stops.length ? Math.max(...stops) : -Infinity;
    if (stops.length && lastStop >= lastEviction) return "leave:owner-deallocated";
    if (evictions.length) return "start:evicted";
    return input.now - input.deallocatedSince >= input.unknownCauseAfterMs ? "start:unknown" : "wait:unknown";
  }

  const summary = (d: ReturnType<typeof decideOnDeallocation>) =>
    d.action === "leave-alone" ? `leave:${d.reason}` : `${d.action}:${d.cause}`;

  const evidenceArb = fc.record({
    kind: fc.constantFrom("evicted" as const, "owner" as const),
    at: fc.integer({ min: T - 60 * MIN, max: T }),
    source: fc.constantFrom("resource-health" as const, "activity-log" as const, "start-preempted" as const),
  });
  const inputArb: fc.Arbitrary<CauseInput> = fc.record(
    {
      restartWhen: fc.constantFrom("evicted" as const, "deallocated" as const),
      unknownCauseAfterMs: fc.integer({ min: 0, max: 30 * MIN }),
      now: fc.constant(T),
      deallocatedSince: fc.integer({ min: T - 60 * MIN, max: T }),
      lastRanAt: fc.option(fc.integer({ min: T - 90 * MIN, max: T }), { nil: undefined }),
      evidence: fc.array(evidenceArb, { maxLength: 5 }),
      hibernated: fc.boolean(),
      pause: fc.option(
        fc.record({ until: fc.option(fc.integer({ min: T - MIN, max: T + MIN }), { nil: undefined }) }),
        {
          nil: undefined,
        },
      ),
    },
    { requiredKeys: ["restartWhen", "unknownCauseAfterMs", "now", "deallocatedSince", "evidence"] },
  );

  it("agrees with the oracle on random histories", () => {
    fc.assert(
      fc.property(inputArb, (input) => {
        assert.equal(summary(decideOnDeallocation(input)), oracle(input));
      }),
      { numRuns: 2000 },
    );
  });

  it("never starts a VM whose owner's stop is the latest current signal (restartWhen evicted)", () => {
    fc.assert(
      fc.property(inputArb, fc.integer({ min: 0, max: 10 * MIN }), (input, after) => {
        const stopAt = Math.max(input.lastRanAt ?? 0, ...input.evidence.map((e) => e.at)) + 1 + after;
        const decision = decideOnDeallocation({
          ...input,
          restartWhen: "evicted",
          now: Math.max(input.now, stopAt),
          evidence: [...input.evidence, owner(stopAt)],
        });
        assert.notEqual(decision.action, "start");
      }),
    );
  });

  it("never waits past unknownCauseAfterMs: a VM nothing explains is started by then", () => {
    fc.assert(
      fc.property(inputArb, (input) => {
        const decision = decideOnDeallocation({
          ...input,
          restartWhen: "evicted",
          pause: undefined,
          hibernated: false,
          evidence: [],
        });
        if (input.now - input.deallocatedSince >= input.unknownCauseAfterMs)
          assert.equal(decision.action, "start");
        else
          assert.equal(
            decision.action === "wait" && decision.until,
            input.deallocatedSince + input.unknownCauseAfterMs,
          );
      }),
    );
  });
});
