// The benchmark's world: one resource group of N VMs (every tenth a tagged Spot VM), as an emulator
// seed, and the control-API steps the measurements share.
import type { EmulatorSeed, SeedVirtualMachine } from "../emulator/index";
import { CONTRIBUTOR_ROLE_ID, type EmulatorControl, type TestPrincipal } from "../emulator/testing";

export const GROUP = "bench";
export const TAG = { name: "AttemptRestartAfterEviction", value: "true" } as const;
export const TENANT = "72f988bf-0000-4000-8000-0000000be4c4";
export const SUBSCRIPTION = "5f1c3a52-0000-4000-8000-0000000be4c4";
export const LIST_PAGE_SIZE = 50;
export const RETRY_AFTER_SECONDS = 1;

export interface WorldSettings {
  readonly startSeconds: number;
  readonly armLatencyMs: number;
}

export function seedFor(n: number, principals: TestPrincipal[], settings: WorldSettings): EmulatorSeed {
  const { startSeconds, armLatencyMs } = settings;
  const vms: SeedVirtualMachine[] = [];
  for (let i = 0; i < n; i++) {
    const tagged = i % 10 === 0;
    // A realistic mix: VMs reached over a VPN commonly have no public IP, so half of them (every VM at
    // an odd index) have none. The original's `az vm list -d` reads one more resource per public IP; the
    // report also gives its idle figure for a world where every VM has one.
    const publicIp = i % 2 === 0;
    const name = `${tagged ? "spot" : "vm"}-${String(i).padStart(4, "0")}`;
    vms.push(
      tagged
        ? {
            resourceGroup: GROUP,
            name,
            priority: "Spot",
            evictionPolicy: "Deallocate",
            maxPrice: -1,
            powerState: "running",
            tags: { [TAG.name]: TAG.value, role: "worker" },
            publicIp,
          }
        : {
            resourceGroup: GROUP,
            name,
            priority: "Regular",
            powerState: "running",
            tags: { role: "service" },
            publicIp,
          },
    );
  }
  const scope = `/subscriptions/${SUBSCRIPTION}/resourceGroups/${GROUP}`;
  return {
    tenantId: TENANT,
    subscriptionId: SUBSCRIPTION,
    principals: principals.map((p) => ({
      clientId: p.clientId,
      objectId: p.objectId,
      certificatePem: p.certificatePem,
    })),
    roleAssignments: principals.map((p) => ({
      principalId: p.objectId,
      roleDefinitionId: `/subscriptions/${SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/${CONTRIBUTOR_ROLE_ID}`,
      scope,
    })),
    resourceGroups: [{ name: GROUP }],
    virtualMachines: vms,
    // The eviction is explained at once (its Resource Health annotation visible with it): the default
    // restartWhen "evicted" would otherwise hold a start issued within the emulator's 1 s annotation delay.
    timing: {
      startSeconds,
      evictionDelaySeconds: 0,
      retryAfterSeconds: RETRY_AFTER_SECONDS,
      annotationDelaySeconds: 0,
    },
    listPageSize: LIST_PAGE_SIZE,
    faults: armLatencyMs > 0 ? [{ pathPattern: "^/subscriptions/", delayMs: armLatencyMs }] : [],
  };
}

export async function evictTagged(control: EmulatorControl): Promise<number> {
  const tagged = (await control.vms()).filter((vm) => vm.tags[TAG.name] === TAG.value);
  for (const vm of tagged) await control.evict(GROUP, vm.name);
  for (;;) {
    const states = (await control.vms()).filter((vm) => vm.tags[TAG.name] === TAG.value);
    if (states.every((vm) => vm.powerState === "deallocated")) return states.length;
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function allTaggedRunning(control: EmulatorControl): Promise<void> {
  for (const vm of await control.vms()) {
    if (vm.tags[TAG.name] === TAG.value && vm.powerState !== "running") {
      await control.setVm(GROUP, vm.name, { powerState: "running" });
    }
  }
}

/** Requests the emulator logged from this client (token requests excluded: ARM only). */
export async function loggedArmRequests(control: EmulatorControl, clientId: string) {
  return (await control.requests()).filter((r) => r.clientId === clientId && !r.path.includes("/oauth2/"));
}
