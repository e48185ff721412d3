// The emulator's Retail Prices API (issue 27 item 4): public (no token), answers shaped as
// learn.microsoft.com/rest/api/cost-management/retail-prices/azure-retail-prices documents them, with a
// pay-as-you-go and a Spot meter per size, region and OS; the Spot meter is the seed's `spotPrices` price.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startTestEmulator, type TestEmulator } from "../../emulator/testing";

interface Prices {
  BillingCurrency: string;
  CustomerEntityId: string;
  CustomerEntityType: string;
  Items: Array<Record<string, unknown>>;
  NextPageLink: string | null;
  Count: number;
}

describe("emulator: Retail Prices API", () => {
  let t: TestEmulator;
  before(async () => {
    t = await startTestEmulator({
      spotPrices: [{ location: "eastus", skuName: "Standard_B2s", osType: "Linux", priceUsd: 0.00832 }],
    });
  });
  after(() => t.emulator.stop());

  const get = async (query: string) => {
    const response = await fetch(`${t.emulator.armEndpoint}/api/retail/prices?${query}`);
    return { status: response.status, body: (await response.json()) as Prices };
  };

  it("answers a documented $filter, without sign-in, with Linux and Windows, pay-as-you-go and Spot meters", async () => {
    // The documented filter fields (priceType filters the items' `type`).
    const filter = encodeURIComponent(
      "serviceName eq 'Virtual Machines' and armRegionName eq 'eastus' and armSkuName eq 'Standard_B2s' and priceType eq 'Consumption'",
    );
    const { status, body } = await get(`$filter=${filter}`);
    assert.equal(status, 200);
    assert.equal(body.BillingCurrency, "USD");
    assert.equal(body.CustomerEntityType, "Retail");
    assert.equal(body.Count, 4);
    assert.equal(body.NextPageLink, null);
    const spotLinux = body.Items.find(
      (item) => String(item.skuName).endsWith("Spot") && !String(item.productName).includes("Windows"),
    );
    assert.equal(spotLinux?.retailPrice, 0.00832);
    assert.equal(spotLinux?.unitOfMeasure, "1 Hour");
    assert.equal(spotLinux?.armSkuName, "Standard_B2s");
    const payg = body.Items.find(
      (item) => !String(item.skuName).includes("Spot") && !String(item.productName).includes("Windows"),
    );
    assert.ok(Number(payg?.retailPrice) > 0.00832, "pay-as-you-go costs more than Spot");
  });

  it("pages 100 items at a time with NextPageLink", async () => {
    const first = await get(`$filter=${encodeURIComponent("serviceName eq 'Virtual Machines'")}`);
    assert.equal(first.body.Count, 100);
    assert.ok(first.body.NextPageLink);
    const next = await fetch(first.body.NextPageLink as string);
    assert.equal(next.status, 200);
    assert.ok(((await next.json()) as Prices).Items.length > 0);
  });
});
