// `discord`: Execute Webhook (https://discord.com/api/webhooks/<id>/<token>) takes JSON with
// `content` and/or `embeds` (title <= 256, description <= 4096 characters, `timestamp` ISO 8601,
// `color` an integer, `fields` of {name, value, inline}); `allowed_mentions: {parse: []}` keeps a
// message from pinging anyone.
// Source: https://discord.com/developers/docs/resources/webhook#execute-webhook and
// https://discord.com/developers/docs/resources/message#embed-object-embed-limits
import { type ChannelFormat, messageFacts, type Severity } from "./message";

const color: Record<Severity, number> = { info: 0x2e7d32, warning: 0xf9a825, critical: 0xc62828 };

export const discord: ChannelFormat = {
  render(message) {
    const body = {
      username: "spot-restarter",
      allowed_mentions: { parse: [] },
      embeds: [
        {
          title: message.title.slice(0, 256),
          description: message.message.slice(0, 4096),
          timestamp: message.at,
          color: color[message.severity],
          fields: messageFacts(message)
            .filter(([label]) => label !== "At")
            .map(([name, value]) => ({ name, value: value.slice(0, 1024), inline: true })),
        },
      ],
    };
    return { headers: { "content-type": "application/json" }, body: JSON.stringify(body) };
  },
};
