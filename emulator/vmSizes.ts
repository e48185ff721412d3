// The emulator's VM size catalogue: the common B, D, E and F families (v4 to v6, with and without a local temp
// disk), each entry shaped as VirtualMachines_ListAvailableSizes returns it (VirtualMachineSize, 2026-04-01:
// name, numberOfCores, osDiskSizeInMB, resourceDiskSizeInMB, memoryInMB, maxDataDiskCount; example
// specification/compute/resource-manager/Microsoft.Compute/Compute/stable/2026-04-01/examples/
// virtualMachineExamples/VirtualMachine_ListAvailableVmSizes.json, osDiskSizeInMB 1047552 there too).
//
// vCPUs, memory and temp-disk sizes follow the size pages under learn.microsoft.com/azure/virtual-machines/sizes
// (e.g. Standard_D2ds_v5: 2 vCPUs, 8 GiB, 75 GiB temp disk; Standard_D2s_v5: no temp disk). A size without a
// temp disk reports resourceDiskSizeInMB 0; Azure refuses to resize between the two kinds (resize-vm.md,
// "Limitations"), which is the rule this file's `hasTempDisk` lets the emulator enforce.

export interface VmSize {
  readonly name: string;
  readonly numberOfCores: number;
  readonly osDiskSizeInMB: number;
  readonly resourceDiskSizeInMB: number;
  readonly memoryInMB: number;
  readonly maxDataDiskCount: number;
}

const GiB = 1024;
const OS_DISK_MB = 1_047_552;

/** A family: name for a vCPU count, memory and temp disk per vCPU (GiB; 0 = no temp disk). */
interface Family {
  readonly name: (cores: number) => string;
  readonly memoryPerCore: number;
  readonly tempDiskPerCore: number;
  readonly cores: readonly number[];
}

const standardCores = [2, 4, 8, 16];
const family = (
  pattern: string,
  memoryPerCore: number,
  tempDiskPerCore: number,
  cores: readonly number[] = standardCores,
): Family => ({
  name: (n) => `Standard_${pattern.replace("#", String(n))}`,
  memoryPerCore,
  tempDiskPerCore,
  cores,
});

const FAMILIES: readonly Family[] = [
  // D: 4 GiB per vCPU. v4/v5 "d" sizes 37.5 GiB temp disk per vCPU; v6 "d" sizes NVMe, 55 GiB per vCPU.
  family("D#s_v4", 4, 0),
  family("D#ds_v4", 4, 37.5),
  family("D#s_v5", 4, 0),
  family("D#ds_v5", 4, 37.5),
  family("D#as_v5", 4, 0),
  family("D#ads_v5", 4, 37.5),
  family("D#s_v6", 4, 0),
  family("D#ds_v6", 4, 55),
  family("D#as_v6", 4, 0),
  family("D#ads_v6", 4, 55),
  // E: 8 GiB per vCPU, same temp disks as D.
  family("E#s_v4", 8, 0),
  family("E#ds_v4", 8, 37.5),
  family("E#s_v5", 8, 0),
  family("E#ds_v5", 8, 37.5),
  family("E#as_v5", 8, 0),
  family("E#ads_v5", 8, 37.5),
  family("E#s_v6", 8, 0),
  family("E#ds_v6", 8, 55),
  // F: 2 GiB per vCPU; Fsv2 has an 8 GiB-per-vCPU temp disk, the v6 F sizes none.
  family("F#s_v2", 2, 8),
  family("F#as_v6", 4, 0),
  family("F#als_v6", 2, 0),
];

/** B sizes do not follow a per-vCPU rule: listed one by one (B-series and Bsv2 size pages). */
const BURSTABLE: readonly VmSize[] = [
  size("Standard_B1s", 1, 1, 4),
  size("Standard_B1ms", 1, 2, 4),
  size("Standard_B2s", 2, 4, 8),
  size("Standard_B2ms", 2, 8, 16),
  size("Standard_B4ms", 4, 16, 32),
  size("Standard_B2ts_v2", 2, 1, 0),
  size("Standard_B2ls_v2", 2, 4, 0),
  size("Standard_B2s_v2", 2, 8, 0),
  size("Standard_B4s_v2", 4, 16, 0),
  size("Standard_B2als_v2", 2, 4, 0),
  size("Standard_B2as_v2", 2, 8, 0),
];

function size(name: string, cores: number, memoryGiB: number, tempDiskGiB: number): VmSize {
  return {
    name,
    numberOfCores: cores,
    osDiskSizeInMB: OS_DISK_MB,
    resourceDiskSizeInMB: Math.round(tempDiskGiB * GiB),
    memoryInMB: memoryGiB * GiB,
    maxDataDiskCount: Math.min(64, cores * 2),
  };
}

/** Every size the emulated region offers, in a stable order. */
export const VM_SIZE_CATALOGUE: readonly VmSize[] = [
  ...BURSTABLE,
  ...FAMILIES.flatMap((f) =>
    f.cores.map((n) => size(f.name(n), n, n * f.memoryPerCore, n * f.tempDiskPerCore)),
  ),
];

const byName = new Map(VM_SIZE_CATALOGUE.map((entry) => [entry.name.toLowerCase(), entry]));

/** The catalogue entry for a size name (case-insensitive), if the region offers it. */
export function findVmSize(name: string): VmSize | undefined {
  return byName.get(name.toLowerCase());
}

export function hasTempDisk(entry: VmSize): boolean {
  return entry.resourceDiskSizeInMB > 0;
}
