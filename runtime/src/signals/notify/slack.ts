// `slack`: an incoming webhook (https://hooks.slack.com/services/…) takes JSON with `text` (the
// notification and fallback text) and optional Block Kit `blocks`; text uses mrkdwn, where &, <
// and > must be escaped as &amp; &lt; &gt;.
// Sources: https://api.slack.com/messaging/webhooks ,
// https://api.slack.com/reference/surfaces/formatting#escaping
import { type ChannelFormat, messageFacts } from "./message";

export function escapeMrkdwn(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");
}

export const slack: ChannelFormat = {
  render(message) {
    const text = `*${escapeMrkdwn(message.title)}*\n${escapeMrkdwn(message.message)}`;
    const body = {
      text,
      blocks: [
        { type: "section", text: { type: "mrkdwn", text } },
        {
          type: "context",
          elements: [
            {
              type: "mrkdwn",
              text: messageFacts(message)
                .map(([label, value]) => `${label}: ${escapeMrkdwn(value)}`)
                .join(" | "),
            },
          ],
        },
      ],
    };
    return { headers: { "content-type": "application/json" }, body: JSON.stringify(body) };
  },
};
