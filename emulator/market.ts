// Azure's market data as the emulator serves it: Resource Graph's `SpotResources` rows (eviction-rate bands and
// Spot price history per size and region), Spot Placement Scores, and the Retail Prices API's meters.
//
// - SpotResources: types `microsoft.compute/skuspotevictionrate/location` (`properties.evictionRate`, a band
//   over the trailing 28 days) and `microsoft.compute/skuspotpricehistory/ostype/location`
//   (`properties.spotPrices`, newest first, 90 days), with the size in `sku.name` — the columns Microsoft's
//   sample queries read (azure-compute-docs articles/virtual-machines/spot-vms.md, "Azure Resource Graph":
//   `sku.name`, `location`, `properties.osType`, `properties.evictionRate`, `properties.spotPrices[0].priceUSD`).
// - Defaults, where the seed names nothing: every size of the catalogue (vmSizes.ts) in every region the world
//   has, with the emulator's own made-up figures (not Azure's): a pay-as-you-go price of $0.048 per vCPU-hour
//   plus $0.006 per GiB-hour (Windows adds $0.046 per vCPU-hour), Spot at a fifth of it, and the band "0-5".
//   Seeds (`spotEvictionRates`, `spotPrices`, `placementScores`) replace the defaults for what they name.
import type { ResolvedSeed } from "./seed";
import { VM_SIZE_CATALOGUE, type VmSize } from "./vmSizes";

export type OsType = "Linux" | "Windows";

/** Azure's bands, lowest first (the portal's and Resource Graph's `evictionRate` values). */
export const EVICTION_BANDS = ["0-5", "5-10", "10-15", "15-20", "20+"] as const;
export const DEFAULT_EVICTION_BAND = "0-5";
/** Spot's share of the pay-as-you-go price in the emulator's default figures. */
export const DEFAULT_SPOT_SHARE = 0.2;

const key = (...parts: string[]) => parts.map((p) => p.toLowerCase()).join("|");

/** The emulator's pay-as-you-go price for a catalogue size, USD per hour (its own figure, see above). */
export function defaultPayAsYouGoUsd(size: VmSize, osType: OsType): number {
  const cores = size.numberOfCores;
  const memoryGiB = size.memoryInMB / 1024;
  const linux = cores * 0.048 + memoryGiB * 0.006;
  return round5(osType === "Windows" ? linux + cores * 0.046 : linux);
}

function round5(value: number): number {
  return Math.round(value * 100_000) / 100_000;
}

export interface SpotRateEntry {
  readonly location: string;
  readonly skuName: string;
  readonly evictionRate: string;
}
export interface SpotPriceEntry {
  readonly location: string;
  readonly skuName: string;
  readonly osType: OsType;
  readonly priceUsd: number;
}
export interface PlacementScoreEntry {
  readonly location: string;
  readonly skuName: string;
  readonly zone?: string;
  readonly score: string;
}

/** What the seed says about the market, looked up case-insensitively. */
export class Market {
  private readonly rates = new Map<string, SpotRateEntry>();
  private readonly prices = new Map<string, SpotPriceEntry>();
  private readonly scores: PlacementScoreEntry[];

  constructor(
    seed: Pick<ResolvedSeed, "spotEvictionRates" | "spotPrices" | "placementScores">,
    private readonly locations: () => string[],
  ) {
    for (const entry of seed.spotEvictionRates) this.rates.set(key(entry.location, entry.skuName), entry);
    for (const entry of seed.spotPrices) {
      this.prices.set(key(entry.location, entry.skuName, entry.osType), entry);
    }
    this.scores = [...seed.placementScores];
  }

  /** Every (size, region) the market knows: the catalogue in the world's regions, and whatever the seed names. */
  private pairs(): Array<{ location: string; skuName: string }> {
    const out = new Map<string, { location: string; skuName: string }>();
    for (const location of this.locations()) {
      for (const size of VM_SIZE_CATALOGUE)
        out.set(key(location, size.name), { location, skuName: size.name });
    }
    for (const entry of [...this.rates.values(), ...this.prices.values()]) {
      out.set(key(entry.location, entry.skuName), { location: entry.location, skuName: entry.skuName });
    }
    return [...out.values()];
  }

  evictionRate(location: string, skuName: string): string {
    return this.rates.get(key(location, skuName))?.evictionRate ?? DEFAULT_EVICTION_BAND;
  }

  /** The Spot price: the seed's, else a fifth of the catalogue's pay-as-you-go; undefined for an unknown size. */
  spotPriceUsd(location: string, skuName: string, osType: OsType): number | undefined {
    const seeded = this.prices.get(key(location, skuName, osType));
    if (seeded) return seeded.priceUsd;
    const size = VM_SIZE_CATALOGUE.find((s) => s.name.toLowerCase() === skuName.toLowerCase());
    return size ? round5(defaultPayAsYouGoUsd(size, osType) * DEFAULT_SPOT_SHARE) : undefined;
  }

  /** Pay-as-you-go: the catalogue's figure, or five times a seeded Spot price for a size outside it. */
  payAsYouGoUsd(location: string, skuName: string, osType: OsType): number | undefined {
    const size = VM_SIZE_CATALOGUE.find((s) => s.name.toLowerCase() === skuName.toLowerCase());
    if (size) return defaultPayAsYouGoUsd(size, osType);
    const seeded = this.prices.get(key(location, skuName, osType));
    return seeded ? round5(seeded.priceUsd / DEFAULT_SPOT_SHARE) : undefined;
  }

  /** A seeded placement score for the size in the region (and zone, when asked per zone); High by default. */
  placementScore(location: string, skuName: string, zone?: string): string {
    const matches = this.scores.filter(
      (entry) =>
        entry.location.toLowerCase() === location.toLowerCase() &&
        entry.skuName.toLowerCase() === skuName.toLowerCase(),
    );
    const exact = matches.find((entry) => (entry.zone ?? undefined) === zone);
    return (exact ?? matches.find((entry) => entry.zone === undefined))?.score ?? "High";
  }

  /** Whether the seed names this (location, size) for placement scores, or it is in the catalogue. */
  knowsSize(skuName: string): boolean {
    return (
      VM_SIZE_CATALOGUE.some((s) => s.name.toLowerCase() === skuName.toLowerCase()) ||
      this.scores.some((entry) => entry.skuName.toLowerCase() === skuName.toLowerCase()) ||
      [...this.rates.values(), ...this.prices.values()].some(
        (entry) => entry.skuName.toLowerCase() === skuName.toLowerCase(),
      )
    );
  }

  /** Resource Graph's SpotResources rows (see the top of this file), for every pair the market knows. */
  spotResourceRows(subscriptionId: string, tenantId: string, now: number): Record<string, unknown>[] {
    const rows: Record<string, unknown>[] = [];
    const day = 24 * 3_600_000;
    const effective = (daysAgo: number) =>
      new Date(Math.floor(now / day) * day - daysAgo * day).toISOString().replace(".000Z", "Z");
    for (const { location, skuName } of this.pairs()) {
      const base = {
        tenantId,
        kind: "",
        location: location.toLowerCase(),
        resourceGroup: "",
        subscriptionId,
        managedBy: "",
        plan: null,
        tags: null,
        identity: null,
        zones: null,
        extendedLocation: null,
      };
      rows.push({
        ...base,
        id: `/subscriptions/${subscriptionId}/providers/Microsoft.Compute/skuSpotEvictionRate/${skuName}/location/${location.toLowerCase()}`,
        name: skuName,
        type: "microsoft.compute/skuspotevictionrate/location",
        sku: { name: skuName.toLowerCase() },
        properties: {
          skuName,
          location: location.toLowerCase(),
          evictionRate: this.evictionRate(location, skuName),
        },
      });
      for (const osType of ["Linux", "Windows"] as const) {
        const price = this.spotPriceUsd(location, skuName, osType);
        if (price === undefined) continue;
        rows.push({
          ...base,
          id: `/subscriptions/${subscriptionId}/providers/Microsoft.Compute/skuSpotPriceHistory/${skuName}/osType/${osType}/location/${location.toLowerCase()}`,
          name: skuName,
          type: "microsoft.compute/skuspotpricehistory/ostype/location",
          sku: { name: skuName.toLowerCase() },
          properties: {
            skuName,
            osType,
            location: location.toLowerCase(),
            // Newest first, as the sample query's `spotPrices[0]` ("latestSpotPriceUSD") relies on.
            spotPrices: [
              { effectiveDate: effective(0), priceUSD: price },
              { effectiveDate: effective(30), priceUSD: price },
            ],
          },
        });
      }
    }
    return rows;
  }
}
