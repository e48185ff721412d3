// Fault rules: make matching requests fail, stall or drop, or make a VM's start end in a capacity
// error. Matching is on method, a regular expression over the path, and the VM the path names.
import type { ActiveFault } from "./state";

export interface FaultRequest {
  method: string;
  path: string;
  /** The VM the path is about, if any. */
  vm?: string;
  /** That VM's size now, if known (rules with `vmSize` hold only while it matches). */
  vmSize?: string;
}

/** The size of the VM an ARM path names (`…/resourceGroups/{rg}/…/virtualMachines/{name}`), if it exists. */
export function vmSizeInPath(
  path: string,
  lookup: (resourceGroup: string, name: string) => { vmSize: string } | undefined,
): string | undefined {
  const match = /\/resourceGroups\/([^/?]+)\/providers\/Microsoft\.Compute\/virtualMachines\/([^/?]+)/i.exec(
    path,
  );
  if (!match?.[1] || !match[2]) return undefined;
  return lookup(decodeURIComponent(match[1]), decodeURIComponent(match[2]))?.vmSize;
}

/** The VM named by an ARM path (`…/virtualMachines/{name}[/…]`), lower case. */
export function vmNameInPath(path: string): string | undefined {
  const match = /\/virtualMachines\/([^/?]+)/i.exec(path);
  return match?.[1] ? decodeURIComponent(match[1]) : undefined;
}

export function faultMatches(fault: ActiveFault, request: FaultRequest): boolean {
  const { rule } = fault;
  if (fault.remaining !== undefined && fault.remaining <= 0) return false;
  if (fault.until !== undefined && Date.now() >= fault.until) return false;
  if (rule.method !== undefined && rule.method.toUpperCase() !== request.method.toUpperCase()) return false;
  if (rule.pathPattern !== undefined && !new RegExp(rule.pathPattern, "i").test(request.path)) return false;
  if (rule.vm !== undefined && rule.vm.toLowerCase() !== request.vm?.toLowerCase()) return false;
  if (rule.vmSize !== undefined && rule.vmSize.toLowerCase() !== request.vmSize?.toLowerCase()) return false;
  return true;
}

/** Takes one use of a rule; a rule whose `times` are used up is dropped. */
export function consumeFault(faults: ActiveFault[], fault: ActiveFault): ActiveFault[] {
  if (fault.remaining === undefined) return faults;
  fault.remaining -= 1;
  return fault.remaining > 0 ? faults : faults.filter((candidate) => candidate !== fault);
}

/** The first rule with a request-level effect (status, delay, dropped connection) that matches. */
export function findRequestFault(faults: ActiveFault[], request: FaultRequest): ActiveFault | undefined {
  return faults.find(
    (fault) =>
      (fault.rule.status !== undefined ||
        fault.rule.delayMs !== undefined ||
        fault.rule.dropConnection === true) &&
      faultMatches(fault, request),
  );
}

/** The first `startFailsWith` rule that matches a start request. */
export function findStartFault(faults: ActiveFault[], request: FaultRequest): ActiveFault | undefined {
  return faults.find((fault) => fault.rule.startFailsWith !== undefined && faultMatches(fault, request));
}

export function defaultErrorCode(status: number): string {
  if (status === 429) return "OperationNotAllowed";
  if (status === 500) return "InternalServerError";
  if (status === 502) return "BadGateway";
  if (status === 503) return "ServiceUnavailable";
  if (status === 504) return "GatewayTimeout";
  if (status === 404) return "NotFound";
  if (status === 409) return "Conflict";
  return "BadRequest";
}
