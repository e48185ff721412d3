// Selection and classification (the retry schedule: schedule.test.ts): named cases plus properties over random populations.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { describeAzureError } from "../../runtime/src/azure/azure";
import {
  type AzureErrorFacts,
  instanceStateFromStatuses,
  powerStateFromStatuses,
} from "../../runtime/src/azure/payloads";
import { type ObservedVm, type RestarterState, vmKey } from "../../runtime/src/core/vm";
import {
  capacityCodes,
  classifyStartOutcome,
  selectRestartCandidates,
} from "../../runtime/src/loop/decisions";

const tag = { name: "AttemptRestartAfterEviction", value: "true" };
const now = Date.parse("2026-11-26T10:00:00Z");

function vm(overrides: Partial<ObservedVm> = {}): ObservedVm {
  return {
    resourceGroup: "personal-network",
    name: "backup",
    priority: "Spot",
    evictionPolicy: "Deallocate",
    maxPrice: -1,
    tags: { AttemptRestartAfterEviction: "true" },
    powerState: "deallocated",
    ...overrides,
  };
}

const empty: RestarterState = { vms: {} };

function decide(v: ObservedVm, state = empty, inFlight = new Set<string>()) {
  const [decision] = selectRestartCandidates([v], state, now, tag, inFlight);
  assert.ok(decision);
  return decision.action === "start" ? "start" : decision.reason;
}

describe("selectRestartCandidates: named cases", () => {
  it("starts a deallocated, tagged Spot VM with eviction policy Deallocate", () => {
    assert.equal(decide(vm()), "start");
  });
  it("never starts a stopped (powered off but allocated) VM", () => {
    assert.equal(decide(vm({ powerState: "stopped" })), "stopped");
  });
  for (const state of ["deallocating", "starting", "running", "stopping"] as const) {
    it(`never starts a ${state} VM`, () => assert.equal(decide(vm({ powerState: state })), state));
  }
  it("never starts a VM whose power state is unknown", () => {
    assert.equal(decide(vm({ powerState: undefined })), "power-state-unknown");
  });
  it("never starts a Regular (non-Spot) VM", () => {
    assert.equal(decide(vm({ priority: "Regular" })), "not-spot");
    assert.equal(decide(vm({ priority: undefined })), "not-spot");
  });
  it("never starts an untagged VM", () => assert.equal(decide(vm({ tags: {} })), "untagged"));
  it("never starts a VM whose tag is not true", () => {
    assert.equal(decide(vm({ tags: { AttemptRestartAfterEviction: "false" } })), "untagged");
    assert.equal(decide(vm({ tags: { AttemptRestartAfterEviction: "yes" } })), "untagged");
  });
  it("matches the tag name and the value true case-insensitively, as Azure does", () => {
    assert.equal(decide(vm({ tags: { attemptrestartafterEVICTION: "TRUE" } })), "start");
  });
  it("never starts a Spot VM with eviction policy Delete", () => {
    assert.equal(decide(vm({ evictionPolicy: "Delete" })), "eviction-policy-delete");
    // A Spot VM sent without the field has Azure's default, Deallocate ("Deallocate (default) or
    // Delete": azure-compute-docs spot-vms.md, "Eviction policy"; issue 24 item 1).
    assert.equal(decide(vm({ evictionPolicy: undefined })), "start");
    // SpotPlus (api-version 2026-04-01) is a Spot VM too.
    assert.equal(decide(vm({ priority: "SpotPlus" })), "start");
  });
  it("does not start a VM in backoff, and starts it once backoff has passed", () => {
    const key = vmKey("personal-network", "backup");
    const record = { resourceGroup: "personal-network", name: "backup", startAttempts: 2 };
    assert.equal(decide(vm(), { vms: { [key]: { ...record, backoffUntil: now + 1 } } }), "in-backoff");
    assert.equal(decide(vm(), { vms: { [key]: { ...record, backoffUntil: now } } }), "start");
  });
  it("with a retry lead, takes a VM due within the lead (its request waits for the due time) and no other", () => {
    const key = vmKey("personal-network", "backup");
    const record = { resourceGroup: "personal-network", name: "backup", startAttempts: 2 };
    const at = (backoffUntil: number) =>
      selectRestartCandidates(
        [vm()],
        { vms: { [key]: { ...record, backoffUntil } } },
        now,
        tag,
        new Set(),
        500,
      )
        .map((d) => (d.action === "start" ? "start" : d.reason))
        .join();
    assert.equal(at(now + 500), "start");
    assert.equal(at(now + 501), "in-backoff");
  });
  it("does not start a VM whose start is already in flight", () => {
    assert.equal(decide(vm(), empty, new Set([vmKey("Personal-Network", "BACKUP")])), "start-in-flight");
  });
});

describe("powerStateFromStatuses", () => {
  it("finds the PowerState entry wherever it sits", () => {
    assert.equal(
      powerStateFromStatuses([{ code: "PowerState/deallocated" }, { code: "ProvisioningState/succeeded" }]),
      "deallocated",
    );
    assert.equal(
      powerStateFromStatuses([{ code: "ProvisioningState/succeeded" }, { code: "PowerState/running" }]),
      "running",
    );
    assert.equal(powerStateFromStatuses([{ code: "ProvisioningState/updating" }]), undefined);
    assert.equal(powerStateFromStatuses(undefined), undefined);
  });
});

describe("instanceStateFromStatuses", () => {
  it("reads a hibernated VM as Azure shows it: deallocated plus HibernationState/Hibernated", () => {
    // The instance view's statuses from "Hibernating virtual machines", "View state of hibernated VM"
    // (https://learn.microsoft.com/azure/virtual-machines/hibernate-resume), REST API tab.
    const statuses = [
      {
        code: "ProvisioningState/succeeded",
        level: "Info",
        displayStatus: "Provisioning succeeded",
        time: "2019-10-14T21:30:12.8051917+00:00",
      },
      { code: "PowerState/deallocated", level: "Info", displayStatus: "VM deallocated" },
      { code: "HibernationState/Hibernated", level: "Info", displayStatus: "VM hibernated" },
    ];
    assert.deepEqual(instanceStateFromStatuses(statuses), {
      powerState: "deallocated",
      provisioningState: "succeeded",
      hibernated: true,
    });
  });

  it("reads the provisioning state without its error code", () => {
    // `ProvisioningState/<state>[/<errorCode>]` (https://learn.microsoft.com/azure/virtual-machines/states-billing).
    const updating = [
      { code: "ProvisioningState/updating", level: "Info", displayStatus: "Updating" },
      { code: "PowerState/deallocated" },
    ];
    assert.deepEqual(instanceStateFromStatuses(updating), {
      powerState: "deallocated",
      provisioningState: "updating",
      hibernated: false,
    });
    const failed = [
      { code: "ProvisioningState/failed/AllocationFailed" },
      { code: "PowerState/deallocated" },
    ];
    assert.equal(instanceStateFromStatuses(failed).provisioningState, "failed");
    assert.deepEqual(instanceStateFromStatuses(undefined), {
      powerState: undefined,
      provisioningState: undefined,
      hibernated: false,
    });
  });
});

describe("selectRestartCandidates: hibernation and provisioning", () => {
  const decide = (overrides: Partial<ObservedVm>) => {
    const [decision] = selectRestartCandidates([vm(overrides)], { vms: {} }, now, tag);
    return decision?.action === "skip" ? decision.reason : decision?.action;
  };
  it("leaves a hibernated VM and one in a control-plane operation; starts one whose last operation failed", () => {
    assert.equal(decide({ hibernated: true }), "hibernated");
    for (const state of ["creating", "updating", "deleting", "migrating", "Updating"]) {
      assert.equal(decide({ provisioningState: state }), "provisioning-busy", state);
    }
    // A start that found no capacity leaves ProvisioningState/failed/AllocationFailed: trying again is the point.
    assert.equal(decide({ provisioningState: "failed" }), "start");
    assert.equal(decide({ provisioningState: "succeeded" }), "start");
  });
});

const arbitraryVm = fc.record({
  resourceGroup: fc.constantFrom("rg-a", "rg-b"),
  name: fc.stringMatching(/^[a-z][a-z0-9-]{0,10}$/),
  priority: fc.constantFrom("Spot", "Regular", "spot", "SpotPlus", undefined),
  evictionPolicy: fc.constantFrom("Deallocate", "Delete", "deallocate", undefined),
  maxPrice: fc.constantFrom(-1, 0.05, undefined),
  tags: fc.oneof(
    fc.constant({}),
    fc.record({ AttemptRestartAfterEviction: fc.constantFrom("true", "True", "false", "") }),
    fc.record({ attemptrestartafterevictioN: fc.constantFrom("TRUE", "no") }),
    fc.record({ other: fc.constant("true") }),
  ),
  powerState: fc.constantFrom(
    "running",
    "starting",
    "stopped",
    "stopping",
    "deallocating",
    "deallocated",
    undefined,
  ),
}) as fc.Arbitrary<ObservedVm>;

// The oracle, written apart from decisions.ts: Azure compares tag names without regard to case
// (https://learn.microsoft.com/azure/azure-resource-manager/management/tag-resources#limitations) and we
// accept the value `true` in any case; priority and eviction policy are enum strings compared likewise.
const same = (a: string | undefined, b: string) =>
  a !== undefined && a.localeCompare(b, "en", { sensitivity: "accent" }) === 0;
function eligible(v: ObservedVm): boolean {
  const tagged = Object.entries(v.tags).some(
    ([name, value]) => same(name, "AttemptRestartAfterEviction") && same(value, "true"),
  );
  return (
    (same(v.priority, "Spot") || same(v.priority, "SpotPlus")) &&
    // Absent = Azure's default, Deallocate (azure-compute-docs spot-vms.md, "Eviction policy").
    same(v.evictionPolicy ?? "Deallocate", "Deallocate") &&
    tagged &&
    v.powerState === "deallocated"
  );
}

describe("selectRestartCandidates: properties", () => {
  const population = fc.array(arbitraryVm, { maxLength: 60 });
  const backoffs = fc.dictionary(fc.stringMatching(/^rg-[ab]\/[a-z]{1,3}$/), fc.integer({ min: -5, max: 5 }));

  it("starts exactly the eligible VMs that are neither in backoff nor in flight", () => {
    fc.assert(
      fc.property(population, backoffs, fc.array(fc.nat(), { maxLength: 5 }), (vms, offsets, inFlightIdx) => {
        const state: RestarterState = {
          vms: Object.fromEntries(
            Object.entries(offsets).map(([key, offset]) => {
              const [rg = "", name = ""] = key.split("/");
              return [key, { resourceGroup: rg, name, startAttempts: 1, backoffUntil: now + offset * 1000 }];
            }),
          ),
        };
        const inFlight = new Set(
          inFlightIdx.flatMap((i) => {
            const v = vms[i];
            return v ? [vmKey(v.resourceGroup, v.name)] : [];
          }),
        );
        const decisions = selectRestartCandidates(vms, state, now, tag, inFlight);
        assert.equal(decisions.length, vms.length);
        decisions.forEach((d, i) => {
          const v = vms[i];
          assert.ok(v);
          assert.equal(d.vm, v);
          const key = vmKey(v.resourceGroup, v.name);
          const inBackoff = (state.vms[key]?.backoffUntil ?? Number.NEGATIVE_INFINITY) > now;
          const expected = eligible(v) && !inBackoff && !inFlight.has(key);
          assert.equal(d.action === "start", expected, JSON.stringify({ v, inBackoff }));
        });
      }),
    );
  });

  it("never starts anything but a deallocated VM, whatever the state", () => {
    fc.assert(
      fc.property(population, (vms) => {
        for (const d of selectRestartCandidates(vms, empty, now, tag)) {
          if (d.action === "start") assert.equal(d.vm.powerState, "deallocated");
        }
      }),
    );
  });

  it("is monotonic in time: a VM startable now stays startable later", () => {
    fc.assert(
      fc.property(population, backoffs, fc.nat({ max: 10_000 }), (vms, offsets, later) => {
        const state: RestarterState = {
          vms: Object.fromEntries(
            Object.entries(offsets).map(([key, offset]) => {
              const [rg = "", name = ""] = key.split("/");
              return [key, { resourceGroup: rg, name, startAttempts: 1, backoffUntil: now + offset * 1000 }];
            }),
          ),
        };
        const a = selectRestartCandidates(vms, state, now, tag);
        const b = selectRestartCandidates(vms, state, now + later, tag);
        a.forEach((d, i) => {
          if (d.action === "start") assert.equal(b[i]?.action, "start");
        });
      }),
    );
  });
});

describe("classifyStartOutcome", () => {
  const facts = (f: Partial<AzureErrorFacts>): AzureErrorFacts => ({ message: "m", ...f });
  it("success is started", () => assert.equal(classifyStartOutcome(undefined).kind, "started"));
  for (const code of capacityCodes) {
    it(`${code} is a capacity failure (backoff)`, () => {
      assert.equal(classifyStartOutcome(facts({ code, operationFailed: true })).kind, "capacity");
      assert.equal(classifyStartOutcome(facts({ code, statusCode: 409 })).kind, "capacity");
    });
  }
  it("SpotPriceGreaterThanProvidedMaxPrice is a price failure, reported distinctly", () => {
    assert.equal(classifyStartOutcome(facts({ code: "SpotPriceGreaterThanProvidedMaxPrice" })).kind, "price");
  });
  it("429 is throttling and carries Retry-After", () => {
    const outcome = classifyStartOutcome(
      facts({ statusCode: 429, code: "TooManyRequests", retryAfterMs: 5000 }),
    );
    assert.deepEqual(outcome.kind === "throttled" && outcome.retryAfterMs, 5000);
  });
  it("OperationNotAllowed with TooManyRequests details is throttling; without, a quota failure", () => {
    assert.equal(
      classifyStartOutcome(
        facts({ statusCode: 409, code: "OperationNotAllowed", detailCodes: ["TooManyRequests"] }),
      ).kind,
      "throttled",
    );
    assert.equal(classifyStartOutcome(facts({ statusCode: 409, code: "OperationNotAllowed" })).kind, "quota");
  });
  it("OperationNotAllowed saying the VM's state forbids the start is a conflict, not a quota refusal", () => {
    // The message Compute sends for a start during a deallocation (as the emulator does, emulator/arm/compute.ts).
    const message =
      "Operation 'start' is not allowed on VM 'backup' since the VM is deallocating. Retry after the current operation completes.";
    assert.equal(
      classifyStartOutcome(facts({ statusCode: 409, code: "OperationNotAllowed", message })).kind,
      "conflict",
    );
  });
  it("404 means the VM is gone", () => {
    assert.equal(classifyStartOutcome(facts({ statusCode: 404, code: "ResourceNotFound" })).kind, "gone");
  });
  it("409 means another operation: retry next cycle", () => {
    // Code and message as Compute sends them when a newer operation on the VM wins (a failed LRO,
    // reported in Azure/azure-sdk-for-python#5167 and osbuild/osbuild-composer#1447).
    assert.equal(
      classifyStartOutcome(
        facts({
          code: "OperationPreempted",
          message: "Operation execution has been preempted by a more recent operation.",
          operationFailed: true,
        }),
      ).kind,
      "conflict",
    );
    // A plain 409 with ARM's generic code.
    assert.equal(classifyStartOutcome(facts({ statusCode: 409, code: "Conflict" })).kind, "conflict");
  });
  it("403 is fatal and names the missing permission (from the message, or by operation)", () => {
    const named = classifyStartOutcome(
      facts({
        statusCode: 403,
        code: "AuthorizationFailed",
        message:
          "The client 'x' with object id 'y' does not have authorization to perform action 'Microsoft.Compute/virtualMachines/start/action' over scope '/s'",
      }),
    );
    assert.equal(
      named.kind === "forbidden" && named.permission,
      "Microsoft.Compute/virtualMachines/start/action",
    );
    const byOperation = classifyStartOutcome(facts({ statusCode: 403 }), "instanceView");
    assert.equal(
      byOperation.kind === "forbidden" && byOperation.permission,
      "Microsoft.Compute/virtualMachines/instanceView/read",
    );
  });
  it("401 is fatal (token refused)", () => {
    assert.equal(
      classifyStartOutcome(facts({ statusCode: 401, code: "InvalidAuthenticationToken" })).kind,
      "unauthorized",
    );
  });
  it("anything else backs off rather than tight-looping", () => {
    assert.equal(
      classifyStartOutcome(facts({ statusCode: 500, code: "InternalServerError" })).kind,
      "failed",
    );
  });
});

describe("describeAzureError", () => {
  it("reads the code out of a failed long-running operation", () => {
    const facts = describeAzureError(
      new Error(
        "The long-running operation has failed. AllocationFailed. Allocation failed. Try again later.",
      ),
    );
    assert.equal(facts.code, "AllocationFailed");
    assert.equal(facts.operationFailed, true);
  });
  it("reads status, code, Retry-After and details off a RestError-shaped error", () => {
    const error = Object.assign(new Error("slow down"), {
      name: "RestError",
      statusCode: 429,
      code: "OperationNotAllowed",
      details: { error: { code: "OperationNotAllowed", details: [{ code: "TooManyRequests" }] } },
      response: { headers: { get: (n: string) => (n === "retry-after" ? "7" : undefined) } },
    });
    const facts = describeAzureError(error);
    assert.equal(facts.statusCode, 429);
    assert.equal(facts.retryAfterMs, 7000);
    assert.ok(facts.detailCodes?.includes("TooManyRequests"));
    assert.equal(classifyStartOutcome(facts).kind, "throttled");
  });
});
