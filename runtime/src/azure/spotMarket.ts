// What Azure publishes about a size's Spot market, per region: the eviction-rate band over the trailing 28 days and
// the latest Spot price, both from Resource Graph's `SpotResources` table (azure-compute-docs
// articles/virtual-machines/spot-vms.md, "Azure Resource Graph": types
// `microsoft.compute/skuspotevictionrate/location` with `properties.evictionRate`, and
// `microsoft.compute/skuspotpricehistory/ostype/location` with `properties.spotPrices[0].priceUSD`, newest first).
// One query per refresh covers every size and region of the tagged VMs (and their fallback sizes); the answer is
// kept in the state directory for an hour (`spot-market.json`), so `status`, `doctor` and the loop's metrics
// cost Resource Graph one query an hour, not one per call.
import { join } from "node:path";
import { ResourceGraphClient } from "@azure/arm-resourcegraph";
import type { TokenCredential } from "@azure/core-auth";
import type { RuntimeConfig } from "../config/config";
import { readStateDirFile, writeStateDirFile } from "../state/state";
import { type ArmClientOptions, armClientOptions } from "./azure";
import { queryAllPages, type ResourceGraphQueryClient } from "./resourceGraph";

/** Azure's eviction-rate bands, lowest first (the `evictionRate` strings of SpotResources). */
export const EVICTION_BANDS = ["0-5", "5-10", "10-15", "15-20", "20+"] as const;
/** Bands this high or higher make `doctor` suggest sizes with lower rates. */
export const HIGH_EVICTION_BAND = "15-20";
/** How long a reading is reused: the data moves over days (28-day rates), an hour is plenty. */
export const SPOT_MARKET_MAX_AGE_MS = 3_600_000;
export const spotMarketFileName = "spot-market.json";

/** A band's rank (0 = lowest), or undefined for a string Azure does not use. */
export function bandRank(band: string | undefined): number | undefined {
  if (band === undefined) return undefined;
  const rank = (EVICTION_BANDS as readonly string[]).indexOf(band.trim().replace(/%$/, ""));
  return rank === -1 ? undefined : rank;
}

/** One size in one region. */
export interface SpotMarketEntry {
  readonly location: string;
  readonly skuName: string;
  readonly evictionRate?: string;
  /** Latest Spot price per OS type (`Linux`, `Windows`), USD per hour. */
  readonly spotPriceUsd: Readonly<Record<string, number>>;
}

export interface SpotMarketReading {
  readonly fetchedAt: number;
  /** The (location, size) pairs the query asked for, lower-cased `location|size`. */
  readonly asked: readonly string[];
  readonly entries: readonly SpotMarketEntry[];
  /** Resource Graph said some rows were cut off. */
  readonly truncated: boolean;
}

export interface MarketNeed {
  readonly location: string;
  readonly skuName: string;
}

const pairKey = (location: string, skuName: string) => `${location.toLowerCase()}|${skuName.toLowerCase()}`;
const quote = (value: string) => `'${value.toLowerCase().replace(/['\\]/g, "")}'`;

/** The one query: both row types for the sizes and regions asked, with the columns the sample queries read. */
export function spotMarketQuery(needs: readonly MarketNeed[]): string {
  const sizes = [...new Set(needs.map((need) => quote(need.skuName)))].join(", ");
  const locations = [...new Set(needs.map((need) => quote(need.location)))].join(", ");
  return [
    "SpotResources",
    "| where type =~ 'microsoft.compute/skuspotevictionrate/location' or type =~ 'microsoft.compute/skuspotpricehistory/ostype/location'",
    `| where sku.name in~ (${sizes}) and location in~ (${locations})`,
    "| project type, skuName = tostring(sku.name), location, osType = tostring(properties.osType), evictionRate = tostring(properties.evictionRate), spotPriceUSD = todouble(properties.spotPrices[0].priceUSD)",
  ].join("\n");
}

/** The rows of `spotMarketQuery` as entries; rows of other shapes are skipped. */
export function parseSpotMarketRows(rows: readonly Record<string, unknown>[]): SpotMarketEntry[] {
  const entries = new Map<
    string,
    { location: string; skuName: string; evictionRate?: string; spotPriceUsd: Record<string, number> }
  >();
  for (const row of rows) {
    if (typeof row.skuName !== "string" || typeof row.location !== "string" || typeof row.type !== "string")
      continue;
    const k = pairKey(row.location, row.skuName);
    const entry = entries.get(k) ?? {
      location: row.location.toLowerCase(),
      skuName: row.skuName,
      spotPriceUsd: {},
    };
    const type = row.type.toLowerCase();
    if (type === "microsoft.compute/skuspotevictionrate/location" && typeof row.evictionRate === "string") {
      if (row.evictionRate !== "") entry.evictionRate = row.evictionRate;
    } else if (type === "microsoft.compute/skuspotpricehistory/ostype/location") {
      const price = typeof row.spotPriceUSD === "number" ? row.spotPriceUSD : Number(row.spotPriceUSD);
      if (typeof row.osType === "string" && row.osType !== "" && Number.isFinite(price)) {
        entry.spotPriceUsd[osTypeName(row.osType)] = price;
      }
    }
    entries.set(k, entry);
  }
  return [...entries.values()];
}

/** `linux` -> `Linux`, as the VM's `storageProfile.osDisk.osType` spells it. */
export function osTypeName(osType: string): string {
  return osType.toLowerCase() === "windows" ? "Windows" : "Linux";
}

/** The entry for a size in a region, case-insensitively. */
export function findMarketEntry(
  reading: SpotMarketReading | undefined,
  location: string | undefined,
  skuName: string | undefined,
): SpotMarketEntry | undefined {
  if (!reading || !location || !skuName) return undefined;
  const k = pairKey(location, skuName);
  return reading.entries.find((entry) => pairKey(entry.location, entry.skuName) === k);
}

/** The figures `status --json` shows for a VM: the band and its OS's Spot price, null when unknown. */
export function marketFigures(
  reading: SpotMarketReading | undefined,
  vm: { readonly location?: string; readonly vmSize?: string | null; readonly osType?: string },
): { evictionRate: string | null; spotPriceUsdPerHour: number | null } {
  const entry = findMarketEntry(reading, vm.location, vm.vmSize ?? undefined);
  return {
    evictionRate: entry?.evictionRate ?? null,
    spotPriceUsdPerHour: entry?.spotPriceUsd[osTypeName(vm.osType ?? "Linux")] ?? null,
  };
}

/** Whether a reading answers for these needs and is young enough. */
export function readingCovers(
  reading: SpotMarketReading | undefined,
  needs: readonly MarketNeed[],
  now: number,
): boolean {
  if (!reading || now - reading.fetchedAt > SPOT_MARKET_MAX_AGE_MS || reading.fetchedAt > now) return false;
  const asked = new Set(reading.asked);
  return needs.every((need) => asked.has(pairKey(need.location, need.skuName)));
}

export interface SpotMarketSource {
  /** The market for these sizes and regions: the cached reading when it covers them and is fresh, else one query. */
  read(needs: readonly MarketNeed[], signal: AbortSignal): Promise<SpotMarketReading | undefined>;
}

/**
 * Reads through the state directory's cache. A failed query leaves the figures out (undefined) and says why
 * through `onError`, never failing the command that asked; a stale cached reading is still better than none
 * then, and is returned.
 */
export function createSpotMarketSource(options: {
  readonly client: ResourceGraphQueryClient;
  readonly subscriptionIds: readonly string[];
  readonly stateDir?: string;
  readonly now?: () => number;
  readonly onError?: (error: unknown) => void;
}): SpotMarketSource {
  const now = options.now ?? Date.now;
  let memory: SpotMarketReading | undefined;
  return {
    async read(needs, signal) {
      const wanted = dedupe(needs);
      if (wanted.length === 0) return undefined;
      memory ??= options.stateDir ? await loadCachedReading(options.stateDir) : undefined;
      const cached = memory;
      if (readingCovers(cached, wanted, now())) return cached;
      try {
        const result = await queryAllPages(
          options.client,
          { query: spotMarketQuery(wanted), subscriptions: options.subscriptionIds },
          signal,
        );
        const reading: SpotMarketReading = {
          fetchedAt: now(),
          asked: wanted.map((need) => pairKey(need.location, need.skuName)),
          entries: parseSpotMarketRows(result.rows),
          truncated: result.truncated,
        };
        memory = reading;
        if (options.stateDir) {
          await writeStateDirFile(options.stateDir, spotMarketFileName, `${JSON.stringify(reading)}\n`).catch(
            (error: unknown) => options.onError?.(error),
          );
        }
        return reading;
      } catch (error) {
        if (signal.aborted) throw error;
        options.onError?.(error);
        return cached;
      }
    },
  };
}

function dedupe(needs: readonly MarketNeed[]): MarketNeed[] {
  const out = new Map<string, MarketNeed>();
  for (const need of needs)
    if (need.location && need.skuName) out.set(pairKey(need.location, need.skuName), need);
  return [...out.values()];
}

/** The cached reading, or undefined when there is none or it is not one. */
export async function loadCachedReading(stateDir: string): Promise<SpotMarketReading | undefined> {
  try {
    const parsed = JSON.parse(
      await readStateDirFile(join(stateDir, spotMarketFileName)),
    ) as SpotMarketReading;
    return typeof parsed.fetchedAt === "number" &&
      Array.isArray(parsed.entries) &&
      Array.isArray(parsed.asked)
      ? parsed
      : undefined;
  } catch {
    return undefined;
  }
}

/** The source over Resource Graph with the runtime's ARM client options, cached in the config's state directory. */
export function createArmSpotMarketSource(
  config: RuntimeConfig,
  credential: TokenCredential,
  options: ArmClientOptions & { onError?: (error: unknown) => void } = {},
): SpotMarketSource {
  return createSpotMarketSource({
    client: new ResourceGraphClient(credential, armClientOptions(config, options)),
    subscriptionIds: [config.subscriptionId],
    stateDir: config.stateDir,
    ...(options.onError ? { onError: options.onError } : {}),
  });
}
