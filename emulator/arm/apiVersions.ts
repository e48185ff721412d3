// api-version checks as Resource Manager makes them, before the resource provider sees a request.
// - A value that is not a version at all is refused by ARM itself: 400 InvalidApiVersionParameter,
//   "The api-version '…' is invalid. The supported versions are '…'." (as reported in
//   Azure/azure-sdk-for-python#975 and ansible-collections/azure#1739).
// - A well-formed version the provider does not register for the resource type: 400
//   NoRegisteredProviderFound, "No registered resource provider found for location '…' and API version
//   '…' for type '…'. The supported api-versions are '…'. The supported locations are '…'." (as reported
//   in Azure/azure-cli#28496 and MicrosoftDocs/azure-docs#62621).
import { HttpError } from "../http";

const VERSION = /^\d{4}-\d{2}-\d{2}(-(preview|privatepreview|alpha|beta))?$/;

/**
 * The stable api-versions of Microsoft.Compute/virtualMachines: the folders of
 * Azure/azure-rest-api-specs specification/compute/resource-manager/Microsoft.Compute/Compute/stable.
 * 2026-04-01 is what @azure/arm-compute 25 sends; 2022-11-01 is the Azure CLI 2.45 (Debian) profile.
 */
export const COMPUTE_API_VERSIONS: readonly string[] = [
  "2015-06-15",
  "2016-03-30",
  "2016-04-30-preview",
  "2017-03-30",
  "2017-12-01",
  "2018-04-01",
  "2018-06-01",
  "2018-10-01",
  "2019-03-01",
  "2019-07-01",
  "2019-12-01",
  "2020-06-01",
  "2020-12-01",
  "2021-03-01",
  "2021-04-01",
  "2021-07-01",
  "2021-11-01",
  "2022-03-01",
  "2022-08-01",
  "2022-11-01",
  "2023-03-01",
  "2023-07-01",
  "2023-09-01",
  "2024-03-01",
  "2024-07-01",
  "2024-11-01",
  "2025-04-01",
  "2025-11-01",
  "2026-04-01",
];

/** Which versions a route's resource type registers; routes without one only get the format check. */
export interface ApiVersionPolicy {
  /** The type as ARM names it in the error, e.g. `virtualMachines` or `locations/operations`. */
  readonly resourceType: string;
  readonly versions: readonly string[];
}

export const computeVersions = (resourceType: string): ApiVersionPolicy => ({
  resourceType,
  versions: COMPUTE_API_VERSIONS,
});

export function checkApiVersion(
  apiVersion: string,
  policy: ApiVersionPolicy | undefined,
  location: string,
  locations: readonly string[],
): void {
  if (!VERSION.test(apiVersion)) {
    throw new HttpError(
      400,
      "InvalidApiVersionParameter",
      `The api-version '${apiVersion}' is invalid. The supported versions are '${(policy?.versions ?? COMPUTE_API_VERSIONS).join(",")}'.`,
    );
  }
  if (!policy) return;
  if (policy.versions.some((v) => v.toLowerCase() === apiVersion.toLowerCase())) return;
  throw new HttpError(
    400,
    "NoRegisteredProviderFound",
    `No registered resource provider found for location '${location}' and API version '${apiVersion}' for type '${policy.resourceType}'. The supported api-versions are '${policy.versions.join(", ")}'. The supported locations are '${locations.join(", ")}'.`,
  );
}
