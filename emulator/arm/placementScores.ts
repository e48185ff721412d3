// Spot Placement Score: `POST /subscriptions/{sub}/providers/Microsoft.Compute/locations/{location}/placementScores/
// spot/generate` (api-version 2025-06-05), the request and answer shaped as azure-rest-api-specs
// compute/…/DiagnosticRP/stable/2025-06-05/examples/GenerateSpotPlacementScores.json: `desiredLocations`,
// `desiredSizes: [{ sku }]`, `desiredCount`, `availabilityZones` in; the same echoed back with `placementScores:
// [{ sku, region, availabilityZone?, score, isQuotaAvailable }]`. A score is the seed's (`placementScores`,
// ../market.ts), else High; `DataNotFoundOrStale` is a score, as in the example, not an error. Throttling (429)
// comes from a fault rule on this path. Authorized at the subscription as
// Microsoft.Compute/locations/placementScores/generate/action (the action of the built-in Compute Recommendations
// Role), so a role assigned only at a resource group cannot call it.
import { HttpError, jsonBody, sendJson } from "../http";
import type { ArmRoute } from "./router";

export const PLACEMENT_SCORE_ACTION = "Microsoft.Compute/locations/placementScores/generate/action";

/** Azure's limits on one request (azure-compute-docs spot-placement-score.md): 8 regions, 5 sizes. */
const MAX_LOCATIONS = 8;
const MAX_SIZES = 5;

export function placementScoreRoutes(): ArmRoute[] {
  return [
    {
      method: "POST",
      pattern:
        "subscriptions/{subscriptionId}/providers/Microsoft.Compute/locations/{location}/placementScores/spot/generate",
      apiVersions: { resourceType: "locations/placementScores", versions: ["2025-06-05"] },
      action: PLACEMENT_SCORE_ACTION,
      scope: (params) => `/subscriptions/${params.subscriptionId}`,
      handle: (ctx, _params, env) => {
        const body = jsonBody<{
          desiredLocations?: unknown;
          desiredSizes?: unknown;
          desiredCount?: unknown;
          availabilityZones?: unknown;
        }>(ctx);
        const locations = Array.isArray(body.desiredLocations) ? body.desiredLocations.map(String) : [];
        const sizes = Array.isArray(body.desiredSizes)
          ? body.desiredSizes.map((size) => String((size as { sku?: unknown })?.sku ?? ""))
          : [];
        if (locations.length === 0 || locations.length > MAX_LOCATIONS) {
          throw new HttpError(
            400,
            "InvalidParameter",
            `desiredLocations must name 1 to ${MAX_LOCATIONS} regions.`,
          );
        }
        if (sizes.length === 0 || sizes.length > MAX_SIZES || sizes.some((sku) => sku === "")) {
          throw new HttpError(400, "InvalidParameter", `desiredSizes must name 1 to ${MAX_SIZES} sizes.`);
        }
        const zonal = body.availabilityZones === true;
        const placementScores = sizes.flatMap((sku) =>
          locations.flatMap((region) =>
            (zonal ? ["1", "2", "3"] : [undefined]).map((zone) => ({
              sku,
              region,
              ...(zone ? { availabilityZone: zone } : {}),
              score: env.world.market.placementScore(region, sku, zone),
              isQuotaAvailable: true,
            })),
          ),
        );
        sendJson(ctx, 200, {
          desiredLocations: locations,
          desiredSizes: sizes.map((sku) => ({ sku })),
          desiredCount: typeof body.desiredCount === "number" ? body.desiredCount : 1,
          availabilityZones: zonal,
          placementScores,
        });
      },
    },
  ];
}
