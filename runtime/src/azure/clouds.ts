// Which Resource Manager a Microsoft authority's token may go to (issue 17, item 4). The runtime sends
// its ARM access token to whatever `cloud.armEndpoint` says; with a real Microsoft authority that token
// opens the subscription, so a typo or a hostile `cloud` object in the stack outputs must not ship it to
// another host. A private authority (the emulator, a test double) is not Microsoft's and is left alone.
//
// Sources:
// - Authority hosts and their aliases: @azure/msal-common `src/authority/AuthorityMetadata.ts`
//   (rawMetdataJSON: login.microsoftonline.com = login.windows.net = login.microsoft.com = sts.windows.net;
//   login.partner.microsoftonline.cn = login.chinacloudapi.cn; login.microsoftonline.us =
//   login.usgovcloudapi.net; login-us.microsoftonline.com; login.microsoftonline.de;
//   login.sovcloud-identity.fr / .de / .sg) and @azure/identity `AzureAuthorityHosts`.
// - Resource Manager per cloud: Azure CLI `azure/cli/core/cloud.py` (AZURE_PUBLIC_CLOUD
//   management.azure.com, AZURE_CHINA_CLOUD management.chinacloudapi.cn, AZURE_US_GOV_CLOUD
//   management.usgovcloudapi.net, AZURE_GERMAN_CLOUD management.microsoftazure.de).
// The sovereign authorities with no published Resource Manager in those sources (login-us, the
// sovcloud-identity ones) are still Microsoft's: there, any armEndpoint needs an explicit `audience`.

export interface MicrosoftCloud {
  name: string;
  authorityHosts: readonly string[];
  /** The Resource Manager host; regional endpoints (`<region>.<host>`) are the same service. */
  armHost: string | undefined;
}

export const MICROSOFT_CLOUDS: readonly MicrosoftCloud[] = [
  {
    name: "Azure public cloud",
    authorityHosts: [
      "login.microsoftonline.com",
      "login.windows.net",
      "login.microsoft.com",
      "sts.windows.net",
    ],
    armHost: "management.azure.com",
  },
  {
    name: "Azure China (21Vianet)",
    authorityHosts: ["login.chinacloudapi.cn", "login.partner.microsoftonline.cn"],
    armHost: "management.chinacloudapi.cn",
  },
  {
    name: "Azure US Government",
    authorityHosts: ["login.microsoftonline.us", "login.usgovcloudapi.net"],
    armHost: "management.usgovcloudapi.net",
  },
  {
    name: "Azure Germany",
    authorityHosts: ["login.microsoftonline.de"],
    armHost: "management.microsoftazure.de",
  },
  {
    name: "Azure US Government (login-us)",
    authorityHosts: ["login-us.microsoftonline.com"],
    armHost: undefined,
  },
  {
    name: "Microsoft sovereign cloud (France)",
    authorityHosts: ["login.sovcloud-identity.fr"],
    armHost: undefined,
  },
  {
    name: "Microsoft sovereign cloud (Germany)",
    authorityHosts: ["login.sovcloud-identity.de"],
    armHost: undefined,
  },
  {
    name: "Microsoft sovereign cloud (Singapore)",
    authorityHosts: ["login.sovcloud-identity.sg"],
    armHost: undefined,
  },
];

function hostOf(url: string): string | undefined {
  try {
    return new URL(url).hostname.toLowerCase().replace(/\.$/, "");
  } catch {
    return undefined;
  }
}

/** The Microsoft cloud an authority URL belongs to, if it is one. */
export function microsoftCloudOf(authorityHost: string): MicrosoftCloud | undefined {
  const host = hostOf(authorityHost);
  return MICROSOFT_CLOUDS.find((cloud) => cloud.authorityHosts.includes(host ?? ""));
}

/**
 * With a Microsoft authority, armEndpoint must be that cloud's Resource Manager (https, default port)
 * unless `audience` is given explicitly. Returns the problem (naming both values, quoted), or undefined.
 */
export function cloudEndpointsProblem(cloud: {
  authorityHost: string;
  armEndpoint: string;
  audience?: string | undefined;
}): string | undefined {
  const microsoft = microsoftCloudOf(cloud.authorityHost);
  if (!microsoft || cloud.audience !== undefined) return undefined;
  const arm = (() => {
    try {
      return new URL(cloud.armEndpoint);
    } catch {
      return undefined;
    }
  })();
  const host = arm?.hostname.toLowerCase().replace(/\.$/, "");
  const isArm =
    arm !== undefined &&
    microsoft.armHost !== undefined &&
    arm.protocol === "https:" &&
    arm.port === "" &&
    arm.username === "" &&
    arm.password === "" &&
    (host === microsoft.armHost || host?.endsWith(`.${microsoft.armHost}`) === true);
  if (isArm) return undefined;
  const expected = microsoft.armHost
    ? `https://${microsoft.armHost}`
    : "its Resource Manager, with an explicit audience";
  return `armEndpoint ${JSON.stringify(cloud.armEndpoint)} is not the Resource Manager of ${microsoft.name} (authorityHost ${JSON.stringify(cloud.authorityHost)}): the runtime would send that cloud's access token there. Use ${expected}, or set cloud.audience explicitly if this endpoint really is meant to receive such a token`;
}
