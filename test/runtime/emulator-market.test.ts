// Azure's market data per tagged VM (issue 27 items 1 and 4): `status --json` shows each VM's eviction-rate band
// and Spot price from Resource Graph's SpotResources table, as the emulator serves it from its seed keys
// `spotEvictionRates` and `spotPrices` (docs/architecture.md third-round contracts). The rows' columns are the
// ones Microsoft's sample queries read (azure-compute-docs articles/virtual-machines/spot-vms.md, "Azure
// Resource Graph": sku.name, location, properties.osType, properties.evictionRate,
// properties.spotPrices[0].priceUSD). One query an hour: the reading is cached in the state directory.
import assert from "node:assert/strict";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { spotMarketFileName } from "../../runtime/src/azure/spotMarket";
import { type Row, spotVm, startRow } from "../faults/harness";

interface StatusJson {
  vms: Array<{ name: string; evictionRate: string | null; spotPriceUsdPerHour: number | null }>;
}

const graphQueries = async (row: Row) =>
  (await row.control.requests()).filter(
    (r) => r.method === "POST" && /\/providers\/Microsoft\.ResourceGraph\/resources$/i.test(r.path),
  );

describe("status: eviction rate and Spot price per tagged VM (Resource Graph SpotResources)", () => {
  let row: Row;
  before(async () => {
    row = await startRow(
      [
        spotVm("backup", { vmSize: "Standard_B2s", location: "eastus" }),
        spotVm("windows-box", { vmSize: "Standard_B2s", location: "eastus", osType: "Windows" }),
      ],
      {
        config: { restartWhen: "deallocated" },
        seed: {
          spotEvictionRates: [{ location: "eastus", skuName: "Standard_B2s", evictionRate: "10-15" }],
          spotPrices: [
            { location: "eastus", skuName: "Standard_B2s", osType: "Linux", priceUsd: 0.00912 },
            { location: "eastus", skuName: "Standard_B2s", osType: "Windows", priceUsd: 0.01474 },
          ],
        },
      },
    );
  });
  after(() => row.close());

  it("shows the seeded band and the price for the VM's OS, from one query, then from the cache", async () => {
    const first = await row.cli(["status", "--config", row.configPath, "--json"]);
    assert.equal(first.code, 0, first.stderr);
    const vms = (JSON.parse(first.stdout) as StatusJson).vms;
    const backup = vms.find((vm) => vm.name === "backup");
    const windows = vms.find((vm) => vm.name === "windows-box");
    assert.equal(backup?.evictionRate, "10-15");
    assert.equal(backup?.spotPriceUsdPerHour, 0.00912);
    assert.equal(windows?.evictionRate, "10-15");
    assert.equal(windows?.spotPriceUsdPerHour, 0.01474);
    assert.equal((await graphQueries(row)).length, 1, "one query for every VM");
    // Kept for an hour, 0600 like every file of the state directory.
    assert.equal(statSync(join(row.stateDir, spotMarketFileName)).mode & 0o777, 0o600);

    const second = await row.cli(["status", "--config", row.configPath, "--wide"]);
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, /EVICTION RATE\s+SPOT \$\/H/);
    assert.match(second.stdout, /personal-network\/backup .* 10-15%\s+0\.00912/);
    assert.equal((await graphQueries(row)).length, 1, "the second status read the cache");
  });
});

describe("metrics: eviction-rate band and Spot price per tagged VM", () => {
  let row: Row;
  before(async () => {
    row = await startRow([spotVm("backup", { powerState: "running" })], {
      config: { restartWhen: "deallocated" },
      seed: {
        spotEvictionRates: [{ location: "eastus", skuName: "Standard_B2s", evictionRate: "15-20" }],
        spotPrices: [{ location: "eastus", skuName: "Standard_B2s", osType: "Linux", priceUsd: 0.0095 }],
      },
    });
  });
  after(() => row.close());

  it("`once` writes them to the textfile (the band's lower bound as a ratio)", async () => {
    const textfile = join(row.dir, "spot-restarter.prom");
    const configPath = join(row.dir, "with-metrics.json");
    writeFileSync(configPath, JSON.stringify({ ...row.configFile, metrics: { textfile } }));
    const result = await row.cli(["once", "--config", configPath]);
    assert.equal(result.code, 0, result.stderr);
    const text = readFileSync(textfile, "utf8");
    assert.match(
      text,
      /^spot_restarter_spot_eviction_rate_lower_ratio\{resource_group="personal-network",vm="backup"\} 0\.15$/m,
    );
    assert.match(
      text,
      /^spot_restarter_spot_price_usd_per_hour\{resource_group="personal-network",vm="backup"\} 0\.0095$/m,
    );
  });
});

describe("doctor: a size in a high eviction-rate band", () => {
  let row: Row;
  before(async () => {
    row = await startRow([spotVm("builder", { vmSize: "Standard_D2s_v5", location: "eastus" })], {
      config: { restartWhen: "deallocated" },
      seed: {
        spotEvictionRates: [
          { location: "eastus", skuName: "Standard_D2s_v5", evictionRate: "15-20" },
          { location: "eastus", skuName: "Standard_B2ts_v2", evictionRate: "5-10" },
        ],
      },
    });
  });
  after(() => row.close());

  it("warns, naming sizes with lower bands it can be resized to (same side of the temp-disk line), lowest first", async () => {
    const result = await row.cli(["doctor", "--config", row.configPath]);
    const line = result.stdout
      .split("\n")
      .find((l) => l.includes("eviction rate of personal-network/builder"));
    assert.ok(line, result.stdout);
    assert.match(
      line,
      /^warn eviction rate of personal-network\/builder: Standard_D2s_v5 in eastus: eviction rate 15-20; sizes with lower rates that the VM can be resized to: Standard_[\w]+ \(0-5, \$[\d.]+\/h\)/,
    );
    const named = [...line.matchAll(/(Standard_\w+) \((\S+?),/g)].map((m) => ({ size: m[1], band: m[2] }));
    assert.equal(named.length, 5);
    // Standard_D2s_v5 has no temp disk: no size with one (a "d" size, B1s…B4ms) is offered.
    for (const { size } of named)
      assert.doesNotMatch(size ?? "", /^Standard_(D|E)\d+a?ds_|^Standard_B\d+m?s$|^Standard_F\d+s_v2$/);
    // Standard_B2ts_v2 (the cheapest such size) is seeded 5-10: after every 0-5 size.
    assert.ok(named.every(({ band }) => band === "0-5"));
    // Warnings do not fail doctor.
    assert.doesNotMatch(result.stdout, /^FAIL eviction rate/m);
  });
});

describe("status when Resource Graph cannot answer", () => {
  let row: Row;
  before(async () => {
    row = await startRow([spotVm("backup")], {
      config: { restartWhen: "deallocated" },
      seed: {
        faults: [
          {
            method: "POST",
            pathPattern: "Microsoft\\.ResourceGraph/resources",
            status: 500,
            errorCode: "InternalServerError",
          },
        ],
      },
    });
  });
  after(() => row.close());

  it("leaves the figures out (null) with a warning, and still succeeds", async () => {
    const result = await row.cli(["status", "--config", row.configPath, "--json"]);
    assert.equal(result.code, 0, result.stderr);
    const backup = (JSON.parse(result.stdout) as StatusJson).vms.find((vm) => vm.name === "backup");
    assert.equal(backup?.evictionRate, null);
    assert.equal(backup?.spotPriceUsdPerHour, null);
    assert.match(result.stderr, /eviction rates and Spot prices left out/);
  });
});
