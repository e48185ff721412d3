// The ARM side behind a small interface (`VmApi`), so the loop can run against the real SDK
// (and the emulator) or a fake. Per-request retries (429/5xx) stay with the Azure SDK pipeline;
// this file only shapes data and reads errors.
import { ComputeManagementClient, type ComputeManagementClientOptionalParams } from "@azure/arm-compute";
import type { TokenCredential } from "@azure/core-auth";
import type { PipelinePolicy } from "@azure/core-rest-pipeline";
import type { RuntimeConfig } from "../config/config";
import { resourceGroupOfEntry } from "../core/resourceIds";
import type { AvailableSize, ObservedVm } from "../core/vm";
import { tokenScope } from "./credential";
import { type AzureErrorFacts, type InstanceState, instanceStateFromStatuses } from "./payloads";

/** A VM as the resource-group list returns it (no power state: the list has no instance view). */
export type ListedVm = Omit<ObservedVm, "powerState" | "provisioningState" | "hibernated">;

export interface StartHandlers {
  /** Called once ARM accepted the start (202), before its outcome is known. */
  onAccepted?: () => void;
}

export interface VmApi {
  /** All VMs of the group, every page. One "High Cost Get" per page. */
  listVms(resourceGroup: string, signal: AbortSignal): Promise<ListedVm[]>;
  /** One VM's power state, provisioning state and hibernation, from its instance view. One "Low Cost Get". */
  readInstanceState(resourceGroup: string, name: string, signal: AbortSignal): Promise<InstanceState>;
  /** Starts a VM and follows the long-running operation to its end; rejects with the Azure error. */
  startVm(resourceGroup: string, name: string, signal: AbortSignal, handlers?: StartHandlers): Promise<void>;
  simulateEviction(resourceGroup: string, name: string, signal: AbortSignal): Promise<void>;
  /** Fallback sizes: the sizes the VM can be resized to (VirtualMachines_ListAvailableSizes). */
  listAvailableSizes?(resourceGroup: string, name: string, signal: AbortSignal): Promise<AvailableSize[]>;
  /** Fallback sizes: PATCH hardwareProfile.vmSize (the VM must be deallocated), to its end. */
  resizeVm?(resourceGroup: string, name: string, vmSize: string, signal: AbortSignal): Promise<void>;
}

/** The fields of an ARM VM the list mapping reads (the SDK's `VirtualMachine`, or a raw payload). */
export interface ArmVmFields {
  name?: string;
  id?: string;
  priority?: string;
  evictionPolicy?: string;
  billingProfile?: { maxPrice?: number };
  tags?: Record<string, string>;
  hardwareProfile?: { vmSize?: string };
  location?: string;
  storageProfile?: { osDisk?: { osType?: string } };
}

/**
 * One list item as the runtime sees it. Optional members are optional in Azure's answers too:
 * `tags` is absent on an untagged VM, `priority` on a VM created without one (Regular), and a list
 * item may carry only `id` and `location` (2026-04-01 example VirtualMachine_ListAll_MinimumSet_Gen.json),
 * so the name falls back to the last segment of the id. An item with neither cannot be acted on.
 */
export function listedVmFromArm(vm: ArmVmFields, resourceGroup: string): ListedVm | undefined {
  const name = vm.name ?? /\/virtualMachines\/([^/]+)\/?$/i.exec(vm.id ?? "")?.[1];
  if (!name) return undefined;
  return {
    resourceGroup,
    name,
    priority: vm.priority,
    evictionPolicy: vm.evictionPolicy,
    maxPrice: vm.billingProfile?.maxPrice,
    tags: vm.tags ?? {},
    ...(vm.hardwareProfile?.vmSize ? { vmSize: vm.hardwareProfile.vmSize } : {}),
    ...(vm.location ? { location: vm.location } : {}),
    ...(vm.storageProfile?.osDisk?.osType ? { osType: vm.storageProfile.osDisk.osType } : {}),
  };
}

/** ARM requests as they left this process (retries and long-running-operation polls included). */
export interface ArmRequestCounts {
  total: number;
  list: number;
  instanceView: number;
  start: number;
  poll: number;
  other: number;
}

export interface RequestCounter {
  readonly policy: PipelinePolicy;
  snapshot(): ArmRequestCounts;
}

export function createRequestCounter(): RequestCounter {
  const counts: ArmRequestCounts = { total: 0, list: 0, instanceView: 0, start: 0, poll: 0, other: 0 };
  return {
    // perRetry: a request retried by the SDK counts once per attempt, as ARM's throttling does.
    policy: {
      name: "spotRestarterRequestCounter",
      sendRequest(request, next) {
        counts.total++;
        counts[requestKind(request.method, request.url)]++;
        return next(request);
      },
    },
    snapshot: () => ({ ...counts }),
  };
}

export function requestKind(method: string, url: string): Exclude<keyof ArmRequestCounts, "total"> {
  const path = new URL(url).pathname.toLowerCase();
  if (method === "POST" && path.endsWith("/start")) return "start";
  if (method === "GET" && path.endsWith("/instanceview")) return "instanceView";
  if (
    method === "GET" &&
    /\/resourcegroups\/[^/]+\/providers\/microsoft\.compute\/virtualmachines$/.test(path)
  ) {
    return "list";
  }
  if (method === "GET" && /operations|asyncoperations|operationresults|operationstatuses/.test(path))
    return "poll";
  return "other";
}

/**
 * Bounds every ARM request (each attempt): the SDK sets no timeout, so a request that is accepted but
 * never answered (a stalled proxy, a half-open connection) would hold the loop forever, restarting
 * nothing (BUG-11 in test/RELIABILITY.md). A timed-out attempt fails as ETIMEDOUT, which the SDK's
 * retry policy retries on a new connection.
 */
export function requestTimeoutPolicy(timeoutMs: number): PipelinePolicy {
  return {
    name: "spotRestarterRequestTimeout",
    async sendRequest(request, next) {
      // Our own timer rather than `request.timeout`: the SDK's HTTP client leaves that timer running
      // when the request fails, which holds a SIGTERM-ed process open for the whole timeout.
      // A listener on the caller's signal, removed afterwards, not AbortSignal.any: the loop's signal
      // lives for months, and every AbortSignal.any composed with it stayed reachable from it (the
      // soak's RSS grew 3 MB a minute).
      const timeout = new AbortController();
      const timer = setTimeout(() => timeout.abort(), timeoutMs);
      const outer = request.abortSignal;
      const forward = () => timeout.abort();
      if (outer?.aborted) timeout.abort();
      outer?.addEventListener("abort", forward);
      request.abortSignal = timeout.signal;
      try {
        return await next(request);
      } catch (error) {
        if (timeout.signal.aborted && !outer?.aborted) {
          // Shaped as the pipeline's RestError (matched by name and code) so that its retry policy retries it.
          throw Object.assign(
            new Error(
              `no answer from Azure Resource Manager within ${timeoutMs / 1000} s (${request.method} ${new URL(request.url).pathname})`,
              { cause: error },
            ),
            { name: "RestError", code: "ETIMEDOUT", request },
          );
        }
        throw error;
      } finally {
        clearTimeout(timer);
        outer?.removeEventListener("abort", forward);
        request.abortSignal = outer;
      }
    },
  };
}

export interface ArmClientOptions {
  counter?: RequestCounter;
  /** More per-attempt policies (the metrics' request counter). */
  policies?: readonly PipelinePolicy[];
  /** Poll interval of a start when ARM sends no Retry-After (the SDK honours Retry-After). */
  pollIntervalMs?: number;
}

/**
 * The pipeline every ARM client of the runtime shares: the endpoint and token scope of the config's cloud,
 * the SDK's retries (armMaxRetries), our per-attempt timeout, the request counter and the caller's policies
 * (budgets, metrics), each per attempt.
 */
export function armClientOptions(
  config: RuntimeConfig,
  options: { counter?: RequestCounter; policies?: readonly PipelinePolicy[] } = {},
) {
  return {
    endpoint: config.cloud.armEndpoint,
    credentials: { scopes: [tokenScope(config)] },
    retryOptions: { maxRetries: config.armMaxRetries },
    additionalPolicies: [
      { policy: requestTimeoutPolicy(config.armRequestTimeoutSeconds * 1000), position: "perRetry" as const },
      ...(options.counter ? [{ policy: options.counter.policy, position: "perRetry" as const }] : []),
      ...(options.policies ?? []).map((policy) => ({ policy, position: "perRetry" as const })),
    ],
    userAgentOptions: { userAgentPrefix: "spot-restarter" },
  };
}

export function createArmVmApi(
  config: RuntimeConfig,
  credential: TokenCredential,
  options: ArmClientOptions = {},
): VmApi {
  const clientOptions: ComputeManagementClientOptionalParams = armClientOptions(config, options);
  // One Compute client per subscription: a `resourceGroups` entry may be a group id in another subscription
  // of the tenant (issue 28); the VM's resource group stays the entry itself, so state and logs keep it whole.
  const clients = new Map<string, ComputeManagementClient>();
  const at = (entry: string) => {
    const { subscriptionId, resourceGroup } = resourceGroupOfEntry(entry, config.subscriptionId);
    let client = clients.get(subscriptionId);
    if (!client) {
      client = new ComputeManagementClient(credential, subscriptionId, clientOptions);
      clients.set(subscriptionId, client);
    }
    return { vms: client.virtualMachines, group: resourceGroup };
  };
  return {
    async listVms(resourceGroup, signal) {
      const out: ListedVm[] = [];
      const { vms, group } = at(resourceGroup);
      for await (const vm of vms.list(group, { abortSignal: signal })) {
        const listed = listedVmFromArm(vm, resourceGroup);
        if (listed) out.push(listed);
      }
      return out;
    },
    async readInstanceState(resourceGroup, name, signal) {
      const { vms, group } = at(resourceGroup);
      const view = await vms.instanceView(group, name, { abortSignal: signal });
      return instanceStateFromStatuses(view.statuses);
    },
    async startVm(resourceGroup, name, signal, handlers = {}) {
      const { vms, group } = at(resourceGroup);
      const poller = vms.start(group, name, {
        abortSignal: signal,
        updateIntervalInMs: options.pollIntervalMs ?? 2_000,
      });
      await poller.submitted();
      handlers.onAccepted?.();
      try {
        await poller.pollUntilDone({ abortSignal: signal });
      } catch (error) {
        // Whatever fails from here on failed after ARM accepted the start (describeAzureError reads it).
        if (error instanceof Error) Object.assign(error, { [AFTER_ACCEPTED]: true });
        throw error;
      }
    },
    async simulateEviction(resourceGroup, name, signal) {
      const { vms, group } = at(resourceGroup);
      await vms.simulateEviction(group, name, { abortSignal: signal });
    },
    async listAvailableSizes(resourceGroup, name, signal) {
      const out: AvailableSize[] = [];
      const { vms, group } = at(resourceGroup);
      for await (const size of vms.listAvailableSizes(group, name, { abortSignal: signal })) {
        out.push({ name: size.name, resourceDiskSizeInMB: size.resourceDiskSizeInMB });
      }
      return out;
    },
    async resizeVm(resourceGroup, name, vmSize, signal) {
      // VirtualMachines_Update (PATCH) with only the size: nothing else of the VM is sent, so nothing else changes.
      const { vms, group } = at(resourceGroup);
      await vms.beginUpdateAndWait(
        group,
        name,
        { hardwareProfile: { vmSize } },
        { abortSignal: signal, updateIntervalInMs: options.pollIntervalMs ?? 2_000 },
      );
    },
  };
}

/**
 * Reads what classification needs off whatever the SDK threw: a RestError (HTTP status, ARM error
 * code, Retry-After, details) or the plain Error core-lro throws when a long-running operation ends
 * `Failed` ("The long-running operation has failed. <code>. <message>").
 */
export function describeAzureError(error: unknown): AzureErrorFacts {
  if (!(error instanceof Error)) return { message: String(error) };
  const afterAccepted = (error as Error & { [AFTER_ACCEPTED]?: boolean })[AFTER_ACCEPTED] === true;
  return afterAccepted ? { ...describeSdkError(error), afterAccepted } : describeSdkError(error);
}

/** Marks an error thrown while following a start ARM had accepted. */
const AFTER_ACCEPTED = Symbol("spot-restarter.afterAccepted");

function describeSdkError(error: Error): AzureErrorFacts {
  const rest = error as Error & {
    statusCode?: number;
    code?: string;
    details?: unknown;
    response?: { headers?: { get(name: string): string | undefined } };
  };
  const lro = /^The long-running operation has failed\. ([A-Za-z0-9_.]+)\. ?([\s\S]*)$/.exec(error.message);
  if (lro?.[1]) {
    return { code: lro[1], message: lro[2] || error.message, operationFailed: true };
  }
  return {
    statusCode: typeof rest.statusCode === "number" ? rest.statusCode : undefined,
    code: typeof rest.code === "string" ? rest.code : undefined,
    message: error.message,
    retryAfterMs: parseRetryAfter(rest.response?.headers?.get("retry-after")),
    detailCodes: detailCodes(rest.details),
  };
}

export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

function detailCodes(details: unknown): string[] {
  const codes: string[] = [];
  const visit = (value: unknown, depth: number) => {
    if (!value || typeof value !== "object" || depth > 4) return;
    if (Array.isArray(value)) {
      for (const item of value) visit(item, depth + 1);
      return;
    }
    const record = value as Record<string, unknown>;
    if (typeof record.code === "string") codes.push(record.code);
    visit(record.error, depth + 1);
    visit(record.details, depth + 1);
  };
  visit(details, 0);
  return codes;
}
