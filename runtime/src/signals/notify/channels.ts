// Every notification channel type, listed once. Adding one = its module + one line here; the config
// schema, notify-test and the docs' list read the type names from this object.
import { discord } from "./discord";
import type { ChannelFormat } from "./message";
import { ntfy } from "./ntfy";
import { slack } from "./slack";
import { teams } from "./teams";
import { webhook } from "./webhook";

export const channelFormats = { webhook, ntfy, slack, discord, teams } as const satisfies Record<
  string,
  ChannelFormat
>;

export type ChannelType = keyof typeof channelFormats;
export const channelTypes = Object.keys(channelFormats) as [ChannelType, ...ChannelType[]];
