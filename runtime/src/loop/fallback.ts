// Fallback sizes (opt-in, runtime config `fallbackSizes`): what size a deallocated VM should have before its
// next start, as pure functions over plain data. restarter.ts asks `planSize` before each start and performs
// the answer (list sizes, PATCH hardwareProfile.vmSize, record it in state); tests use plain objects.

import type { AvailableSize, SizeRecord } from "../core/vm";

/** The facts `planSize` needs about one VM before a start. */
export interface SizeFacts {
  /** The VM's size as ARM reports it now (`hardwareProfile.vmSize`); undefined when unknown. */
  readonly currentSize: string | undefined;
  /** Configured fallbacks for this VM, in order (empty: the feature is off for it). */
  readonly fallbacks: readonly string[];
  /** What we did before (state), if anything. */
  readonly size: SizeRecord | undefined;
  /** When this deallocation was first seen (the record's `evictedSince`). */
  readonly outage: number | undefined;
  /** Since when starts of this VM have failed for capacity without a success in between. */
  readonly capacityFailingSince: number | undefined;
  readonly now: number;
  readonly fallbackAfterMs: number;
}

/** What to do about the size before this start. */
export type SizePlan =
  | { readonly kind: "keep" }
  /** Back to the VM's own size: it was resized during an earlier deallocation. */
  | { readonly kind: "restore"; readonly to: string; readonly from: string }
  /** Its size has had no capacity for long enough: pick from `candidates`, in order, what Azure offers. */
  | { readonly kind: "fallback"; readonly from: string; readonly candidates: readonly string[] };

const same = (a: string | undefined, b: string | undefined) =>
  a !== undefined && b !== undefined && a.toLowerCase() === b.toLowerCase();

/**
 * Decides the size before a start:
 * - never anything without configured fallbacks, except finishing a restore we began (state remembers it);
 * - a VM resized during an earlier deallocation goes back to its original size first (issue 11: "at its next
 *   eviction it tries its original size first again");
 * - after `fallbackAfterMs` of capacity failures, the next configured size after the current one (the first one
 *   when the VM has its own size), so a fallback without capacity either leads to the next one in turn.
 */
export function planSize(facts: SizeFacts): SizePlan {
  const { currentSize, fallbacks, size, outage } = facts;
  if (currentSize === undefined) return { kind: "keep" };
  const original = size?.originalSize ?? currentSize;
  if (size && !same(currentSize, original) && (outage === undefined || size.outage !== outage)) {
    return { kind: "restore", to: original, from: currentSize };
  }
  if (fallbacks.length === 0) return { kind: "keep" };
  const failingSince = facts.capacityFailingSince;
  if (failingSince === undefined || facts.now - failingSince < facts.fallbackAfterMs) return { kind: "keep" };
  const position = fallbacks.findIndex((candidate) => same(candidate, currentSize));
  const candidates = fallbacks
    .slice(position + 1)
    .filter((candidate) => !same(candidate, original) && !same(candidate, currentSize));
  if (candidates.length === 0) return { kind: "keep" };
  return { kind: "fallback", from: currentSize, candidates };
}

/**
 * What `status` shows of a VM's size: the size it has now (`hardwareProfile.vmSize` as listed; when the list could
 * not be read, the size state says we resized it to, but only once Azure confirmed it: `resized`), and, while it
 * runs or waits in a size other than the one state remembers as its own, that own size. A VM never resized, or
 * back at its own size, shows none.
 */
export function describeSize(
  listedSize: string | undefined,
  size: SizeRecord | undefined,
): { readonly vmSize: string | null; readonly originalVmSize: string | null } {
  const vmSize = listedSize ?? (size?.phase === "resized" ? size.size : undefined);
  if (vmSize === undefined) return { vmSize: null, originalVmSize: null };
  const inFallback = size !== undefined && !same(vmSize, size.originalSize);
  return { vmSize, originalVmSize: inFallback ? size.originalSize : null };
}

/** True when the size has a local temp (resource) disk; undefined when the listing does not say. */
export function hasTempDisk(size: AvailableSize | undefined): boolean | undefined {
  if (size?.resourceDiskSizeInMB === undefined) return undefined;
  return size.resourceDiskSizeInMB > 0;
}

/**
 * The first candidate that `listAvailableSizes` offers and that Azure lets the VM resize to from its current
 * size: "You can't resize a VM size that has a local temp disk to a VM size with no local temp disk and vice
 * versa. The only combinations allowed for resizing are: VM (with local temp disk) -> VM (with local temp disk);
 * and VM (with no local temp disk) -> VM (with no local temp disk)."
 * (learn.microsoft.com/azure/virtual-machines/sizes/resize-vm, "Limitations"; the same rule in
 * learn.microsoft.com/azure/virtual-machines/azure-vms-no-temp-disk, "Can I resize a VM size that has a local
 * temp disk to a VM size with no local temp disk?"). Azure refuses such a PATCH with 409 OperationNotAllowed
 * "Unable to resize the VM '…' since changing from resource disk to non-resource disk VM size and vice-versa is
 * not allowed" (Azure/SAP-on-Azure-Scripts-and-Utilities#130). When the listing does not include the current
 * size, its temp disk is unknown and the rule is left to Azure.
 * Returns the chosen size and why each earlier candidate was passed over.
 */
export function chooseFallback(
  currentSize: string,
  candidates: readonly string[],
  available: readonly AvailableSize[],
): { chosen?: string; skipped: { size: string; why: "not-offered" | "temp-disk" }[] } {
  const byName = new Map(available.flatMap((size) => (size.name ? [[size.name.toLowerCase(), size]] : [])));
  const currentDisk = hasTempDisk(byName.get(currentSize.toLowerCase()));
  const skipped: { size: string; why: "not-offered" | "temp-disk" }[] = [];
  for (const candidate of candidates) {
    const offered = byName.get(candidate.toLowerCase());
    if (!offered?.name) {
      skipped.push({ size: candidate, why: "not-offered" });
      continue;
    }
    const candidateDisk = hasTempDisk(offered);
    if (currentDisk !== undefined && candidateDisk !== undefined && candidateDisk !== currentDisk) {
      skipped.push({ size: candidate, why: "temp-disk" });
      continue;
    }
    return { chosen: offered.name, skipped };
  }
  return { skipped };
}
