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
  /**
   * Microsoft's domains under which this cloud's authorities live (issue 25, item 1): a host equal to one,
   * or below one, is this cloud's, so an alias missing from `authorityHosts` (another msal alias, a
   * tenant-specific host, a new sovereign name) is still recognised as Microsoft's and its token guarded.
   * From the same sources: each alias above sits under one of these.
   */
  authoritySuffixes: readonly string[];
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
    authoritySuffixes: ["microsoftonline.com", "windows.net", "microsoft.com"],
    armHost: "management.azure.com",
  },
  {
    name: "Azure China (21Vianet)",
    authorityHosts: ["login.chinacloudapi.cn", "login.partner.microsoftonline.cn"],
    authoritySuffixes: ["chinacloudapi.cn", "microsoftonline.cn"],
    armHost: "management.chinacloudapi.cn",
  },
  {
    name: "Azure US Government",
    authorityHosts: ["login.microsoftonline.us", "login.usgovcloudapi.net"],
    authoritySuffixes: ["microsoftonline.us", "usgovcloudapi.net"],
    armHost: "management.usgovcloudapi.net",
  },
  {
    name: "Azure Germany",
    authorityHosts: ["login.microsoftonline.de"],
    authoritySuffixes: ["microsoftonline.de", "microsoftazure.de"],
    armHost: "management.microsoftazure.de",
  },
  {
    name: "Azure US Government (login-us)",
    authorityHosts: ["login-us.microsoftonline.com"],
    // Under microsoftonline.com: only its exact host is this cloud (the suffix is the public cloud's).
    authoritySuffixes: [],
    armHost: undefined,
  },
  {
    name: "Microsoft sovereign cloud (France)",
    authorityHosts: ["login.sovcloud-identity.fr"],
    authoritySuffixes: ["sovcloud-identity.fr"],
    armHost: undefined,
  },
  {
    name: "Microsoft sovereign cloud (Germany)",
    authorityHosts: ["login.sovcloud-identity.de"],
    authoritySuffixes: ["sovcloud-identity.de"],
    armHost: undefined,
  },
  {
    name: "Microsoft sovereign cloud (Singapore)",
    authorityHosts: ["login.sovcloud-identity.sg"],
    authoritySuffixes: ["sovcloud-identity.sg"],
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

/** The Microsoft cloud an authority URL belongs to, if it is one: by exact host, else by domain suffix. */
export function microsoftCloudOf(authorityHost: string): MicrosoftCloud | undefined {
  const host = hostOf(authorityHost);
  if (host === undefined) return undefined;
  return (
    MICROSOFT_CLOUDS.find((cloud) => cloud.authorityHosts.includes(host)) ??
    MICROSOFT_CLOUDS.find((cloud) =>
      cloud.authoritySuffixes.some((suffix) => host === suffix || host.endsWith(`.${suffix}`)),
    )
  );
}

/**
 * With a Microsoft authority, armEndpoint must be that cloud's Resource Manager (https, default port),
 * whatever the audience (issue 25, item 1: an `audience` switched the guard off, so a hostile `cloud`
 * object with one shipped a real ARM token anywhere). Only a Microsoft cloud with no published Resource
 * Manager (login-us, the sovcloud-identity ones) takes another endpoint, and only with an explicit
 * audience the operator trusts: `audienceTrusted` false (an audience from the stack outputs) never
 * counts. Returns the problem (naming the values, quoted), or undefined.
 */
export function cloudEndpointsProblem(
  cloud: {
    authorityHost: string;
    armEndpoint: string;
    audience?: string | undefined;
  },
  options: { audienceTrusted: boolean } = { audienceTrusted: true },
): string | undefined {
  const microsoft = microsoftCloudOf(cloud.authorityHost);
  if (!microsoft) return undefined;
  if (cloud.audience !== undefined && !options.audienceTrusted) {
    return `cloud.audience ${JSON.stringify(cloud.audience)} comes from the stack outputs, which are not trusted to choose where ${microsoft.name}'s token goes (authorityHost ${JSON.stringify(cloud.authorityHost)}): remove it, and pass --audience URL on the command line if this cloud really needs one`;
  }
  if (microsoft.armHost === undefined && cloud.audience !== undefined) return undefined;
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
  if (microsoft.armHost) {
    return `armEndpoint ${JSON.stringify(cloud.armEndpoint)} is not the Resource Manager of ${microsoft.name} (authorityHost ${JSON.stringify(cloud.authorityHost)}): the runtime would send that cloud's access token there, whatever the audience. Use https://${microsoft.armHost} (or a regional <region>.${microsoft.armHost})`;
  }
  return `armEndpoint ${JSON.stringify(cloud.armEndpoint)} is not a Resource Manager this program knows for ${microsoft.name} (authorityHost ${JSON.stringify(cloud.authorityHost)}): the runtime would send that cloud's access token there. Set cloud.audience explicitly (--audience URL) if this endpoint really is that cloud's Resource Manager`;
}
