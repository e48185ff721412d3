// The Retail Prices API as the emulator serves it: `GET /api/retail/prices` (public, no sign-in), the answer shaped
// as learn.microsoft.com/rest/api/cost-management/retail-prices/azure-retail-prices documents it: `{ BillingCurrency,
// CustomerEntityId, CustomerEntityType, Items: [{ currencyCode, tierMinimumUnits, retailPrice, unitPrice,
// armRegionName, location, effectiveStartDate, meterId, meterName, productId, skuId, productName, skuName,
// serviceName, serviceId, serviceFamily, unitOfMeasure, type, isPrimaryMeterRegion, armSkuName }], NextPageLink,
// Count }`. Spot meters carry "Spot" in `meterName` and `skuName` (spot-vms.md, "Pricing"); Windows meters say
// "Windows" in `productName`. `$filter` takes `field eq 'value'` terms joined by `and` (the documented examples'
// form), values compared case-sensitively as API versions from 2023-01-01-preview do. Prices are market.ts's.
import { HttpError, type RequestContext, sendJson } from "./http";
import type { OsType } from "./market";
import type { World } from "./state";
import { VM_SIZE_CATALOGUE } from "./vmSizes";

type Item = Record<string, string | number | boolean>;

function items(world: World): Item[] {
  const out: Item[] = [];
  for (const region of world.locations()) {
    for (const size of VM_SIZE_CATALOGUE) {
      const short = size.name.replace(/^Standard_/, "").replace(/_/g, " ");
      for (const osType of ["Linux", "Windows"] as OsType[]) {
        const payg = world.market.payAsYouGoUsd(region, size.name, osType);
        const spot = world.market.spotPriceUsd(region, size.name, osType);
        const product = `Virtual Machines ${short} Series${osType === "Windows" ? " Windows" : ""}`;
        for (const [skuName, price] of [
          [short, payg],
          [`${short} Spot`, spot],
        ] as const) {
          if (price === undefined) continue;
          out.push({
            currencyCode: "USD",
            tierMinimumUnits: 0,
            retailPrice: price,
            unitPrice: price,
            armRegionName: region.toLowerCase(),
            location: region,
            effectiveStartDate: "2024-01-01T00:00:00Z",
            meterId: `${region}-${size.name}-${osType}-${skuName}`.toLowerCase().replace(/\s+/g, "-"),
            meterName: skuName,
            productId: `EMU-${short.replace(/\s+/g, "")}-${osType}`,
            skuId: `EMU-${short.replace(/\s+/g, "")}-${osType}/${skuName.endsWith("Spot") ? "SPOT" : "PAYG"}`,
            productName: product,
            skuName,
            serviceName: "Virtual Machines",
            serviceId: "DZH313Z7MMC8",
            serviceFamily: "Compute",
            unitOfMeasure: "1 Hour",
            type: "Consumption",
            isPrimaryMeterRegion: true,
            armSkuName: size.name,
          });
        }
      }
    }
  }
  return out;
}

/** `a eq 'x' and b eq 'y'`: the terms; anything else is refused as the API would not understand it either. */
function parseFilter(filter: string | null): Array<[string, string]> {
  if (!filter) return [];
  return filter.split(/\s+and\s+/i).map((term) => {
    const match = /^\s*(\w+)\s+eq\s+'([^']*)'\s*$/i.exec(term);
    if (!match) throw new HttpError(400, "BadRequest", `Invalid OData filter term: ${term}`);
    return [match[1] as string, match[2] as string];
  });
}

const PAGE = 100;

/** Handles `GET /api/retail/prices`; false for any other path. */
export function handleRetailPrices(ctx: RequestContext, world: World): boolean {
  if (ctx.method !== "GET" || ctx.path.toLowerCase() !== "/api/retail/prices") return false;
  const terms = parseFilter(ctx.query.get("$filter"));
  const matching = items(world).filter((item) =>
    // `priceType` is the documented filter name of the items' `type` (Consumption, Reservation, …).
    terms.every(([field, value]) => String(item[field === "priceType" ? "type" : field]) === value),
  );
  const skip = Number(ctx.query.get("$skip") ?? "0") || 0;
  const page = matching.slice(skip, skip + PAGE);
  const next = new URL(`${ctx.origin}/api/retail/prices`);
  for (const [name, value] of ctx.query) if (name !== "$skip") next.searchParams.set(name, value);
  next.searchParams.set("$skip", String(skip + PAGE));
  sendJson(ctx, 200, {
    BillingCurrency: "USD",
    CustomerEntityId: "Default",
    CustomerEntityType: "Retail",
    Items: page,
    NextPageLink: skip + PAGE < matching.length ? next.toString() : null,
    Count: page.length,
  });
  return true;
}
