// The emulator's Spot Placement Score endpoint (issue 27 item 4): request and answer as azure-rest-api-specs
// compute/…/DiagnosticRP/stable/2025-06-05/examples/GenerateSpotPlacementScores.json shows them; scores from the
// seed's `placementScores` (High otherwise), DataNotFoundOrStale as a score; 429 from a fault rule; authorized at
// the subscription as Microsoft.Compute/locations/placementScores/generate/action.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { PLACEMENT_SCORE_ACTION } from "../../emulator/arm/placementScores";
import { startTestEmulator, type TestEmulator } from "../../emulator/testing";
import { armFetch } from "./helpers";

interface Scores {
  placementScores: Array<{
    sku: string;
    region: string;
    availabilityZone?: string;
    score: string;
    isQuotaAvailable: boolean;
  }>;
  desiredSizes: Array<{ sku: string }>;
}

const path = (t: TestEmulator) =>
  `/subscriptions/${t.emulator.subscriptionId}/providers/Microsoft.Compute/locations/eastus/placementScores/spot/generate`;
// The example's request body, with this test's sizes.
const request = (skus: string[], availabilityZones = false) => ({
  desiredLocations: ["eastus"],
  desiredSizes: skus.map((sku) => ({ sku })),
  desiredCount: 1,
  availabilityZones,
});

describe("emulator: Spot Placement Score", () => {
  let t: TestEmulator;
  before(async () => {
    t = await startTestEmulator({
      placementScores: [
        { location: "eastus", skuName: "Standard_D2s_v5", score: "Low" },
        { location: "eastus", skuName: "Standard_D2as_v5", score: "Medium" },
        { location: "eastus", skuName: "Standard_D4s_v5", zone: "2", score: "DataNotFoundOrStale" },
      ],
    });
  });
  after(() => t.emulator.stop());

  it("answers a role at the resource group only (Contributor there) with 403 naming the action", async () => {
    const answer = await armFetch<{ error: { code: string; message: string } }>(
      t,
      "POST",
      path(t),
      request(["Standard_D2s_v5"]),
      "2025-06-05",
    );
    assert.equal(answer.status, 403);
    assert.equal(answer.body.error.code, "AuthorizationFailed");
    assert.ok(answer.body.error.message.includes(PLACEMENT_SCORE_ACTION));
  });
});

describe("emulator: Spot Placement Score with the action at the subscription", () => {
  let t: TestEmulator;
  before(async () => {
    t = await startTestEmulator({
      placementScores: [
        { location: "eastus", skuName: "Standard_D2s_v5", score: "Low" },
        { location: "eastus", skuName: "Standard_D2as_v5", score: "Medium" },
        { location: "eastus", skuName: "Standard_D4s_v5", zone: "2", score: "DataNotFoundOrStale" },
      ],
    });
    // Contributor on the whole subscription: the action is checked there.
    await t.control.addRoleAssignment({
      principalId: t.principal.objectId,
      principalType: "ServicePrincipal",
      roleDefinitionId: `/subscriptions/${t.emulator.subscriptionId}/providers/Microsoft.Authorization/roleDefinitions/b24988ac-6180-42a0-ab88-20f7382dd24c`,
      scope: `/subscriptions/${t.emulator.subscriptionId}`,
    });
  });
  after(() => t.emulator.stop());

  it("scores each size as seeded (High otherwise), regional and per zone", async () => {
    const regional = await armFetch<Scores>(
      t,
      "POST",
      path(t),
      request(["Standard_D2s_v5", "Standard_D2as_v5", "Standard_D8as_v5"]),
      "2025-06-05",
    );
    assert.equal(regional.status, 200);
    assert.deepEqual(
      regional.body.placementScores.map((s) => [s.sku, s.region, s.score, s.isQuotaAvailable]),
      [
        ["Standard_D2s_v5", "eastus", "Low", true],
        ["Standard_D2as_v5", "eastus", "Medium", true],
        ["Standard_D8as_v5", "eastus", "High", true],
      ],
    );
    const zonal = await armFetch<Scores>(
      t,
      "POST",
      path(t),
      request(["Standard_D4s_v5"], true),
      "2025-06-05",
    );
    assert.deepEqual(
      zonal.body.placementScores.map((s) => [s.availabilityZone, s.score]),
      [
        ["1", "High"],
        ["2", "DataNotFoundOrStale"],
        ["3", "High"],
      ],
    );
  });

  it("refuses more than 5 sizes", async () => {
    const answer = await armFetch<{ error: { code: string } }>(
      t,
      "POST",
      path(t),
      request(["A", "B", "C", "D", "E", "F"]),
      "2025-06-05",
    );
    assert.equal(answer.status, 400);
  });

  it("answers 429 with Retry-After under a fault rule", async () => {
    await t.control.addFaults({
      method: "POST",
      pathPattern: "placementScores/spot/generate",
      status: 429,
      retryAfterSeconds: 7,
      errorCode: "TooManyRequests",
      times: 1,
    });
    const answer = await armFetch<{ error: { code: string } }>(
      t,
      "POST",
      path(t),
      request(["Standard_D2s_v5"]),
      "2025-06-05",
    );
    assert.equal(answer.status, 429);
    assert.equal(answer.headers.get("retry-after"), "7");
  });
});
