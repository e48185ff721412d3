// Every notification channel type's format. Adding one = its module, its name in core/settings.ts
// (`channelTypes`, which the config schema, notify-test and the docs' list read) and one line here.
import type { ChannelType } from "../../core/settings";
import { discord } from "./discord";
import type { ChannelFormat } from "./message";
import { ntfy } from "./ntfy";
import { slack } from "./slack";
import { teams } from "./teams";
import { webhook } from "./webhook";

export const channelFormats = { webhook, ntfy, slack, discord, teams } as const satisfies Record<
  ChannelType,
  ChannelFormat
>;
