// Azure's answers as plain data, parsed beside the client that receives them (azure.ts): an instance
// view's statuses, and the facts of an Azure error that the loop classifies (loop/decisions.ts).

/**
 * Reads the power state from an instance view's statuses: the `PowerState/` entry wherever it
 * sits (it is usually second, after `ProvisioningState/`, but that order is not a contract).
 */
export function powerStateFromStatuses(
  statuses: ReadonlyArray<{ code?: string }> | undefined,
): string | undefined {
  const status = statuses?.find((s) => s.code?.toLowerCase().startsWith("powerstate/"));
  return status?.code?.slice("PowerState/".length).toLowerCase();
}

/** What the runtime reads from one VM's instance view. */
export interface InstanceState {
  /** `PowerState/<state>`, lower-cased; undefined when absent. */
  readonly powerState: string | undefined;
  /** `ProvisioningState/<state>[/<errorCode>]`: the state, lower-cased, without the error code. */
  readonly provisioningState: string | undefined;
  /**
   * `HibernationState/Hibernated`: a hibernated VM is `PowerState/deallocated` with this third status
   * (https://learn.microsoft.com/azure/virtual-machines/hibernate-resume, "View state of hibernated VM";
   * the portal shows "Hibernated (deallocated)"). Only a person (or their automation) hibernates a VM.
   */
  readonly hibernated: boolean;
}

/** Reads power state, provisioning state and hibernation from an instance view's statuses, wherever each sits. */
export function instanceStateFromStatuses(
  statuses: ReadonlyArray<{ code?: string }> | undefined,
): InstanceState {
  const provisioning = statuses?.find((s) => s.code?.toLowerCase().startsWith("provisioningstate/"));
  return {
    powerState: powerStateFromStatuses(statuses),
    provisioningState: provisioning?.code?.split("/")[1]?.toLowerCase() || undefined,
    hibernated: statuses?.some((s) => s.code?.toLowerCase() === "hibernationstate/hibernated") ?? false,
  };
}

/** The facts classification needs, read off whatever the SDK threw (see `describeAzureError`). */
export interface AzureErrorFacts {
  readonly statusCode?: number;
  readonly code?: string;
  readonly message: string;
  readonly retryAfterMs?: number;
  /** Inner error codes (e.g. `details[].code`), where `TooManyRequests` marks throttling. */
  readonly detailCodes?: readonly string[];
  /** Set when the error is the failed end of a long-running operation (no HTTP status). */
  readonly operationFailed?: boolean;
  /** Set when our own time bound ended the wait. */
  readonly timedOut?: boolean;
  /** Set when ARM had accepted the start and the error came while following it (a status poll). */
  readonly afterAccepted?: boolean;
}
