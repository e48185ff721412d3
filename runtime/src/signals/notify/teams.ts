// `teams`: a Teams Workflows webhook ("When a Teams webhook request is received", the replacement
// for the retired Office 365 connectors) takes a message with one Adaptive Card attachment; the
// Workflows app supports Adaptive Cards only, not the connectors' MessageCard.
// Source: https://learn.microsoft.com/en-us/microsoftteams/platform/webhooks-and-connectors/how-to/connectors-using
// ("Send Adaptive Cards using an incoming webhook": type "message", attachments[].contentType
// "application/vnd.microsoft.card.adaptive", contentUrl null, content an AdaptiveCard) and
// https://adaptivecards.io/explorer/ (TextBlock, FactSet; `color` Good | Warning | Attention).
import { type ChannelFormat, messageFacts, type Severity } from "./message";

const color: Record<Severity, string> = { info: "Good", warning: "Warning", critical: "Attention" };

export const teams: ChannelFormat = {
  render(message) {
    const body = {
      type: "message",
      attachments: [
        {
          contentType: "application/vnd.microsoft.card.adaptive",
          contentUrl: null,
          content: {
            $schema: "http://adaptivecards.io/schemas/adaptive-card.json",
            type: "AdaptiveCard",
            version: "1.2",
            body: [
              {
                type: "TextBlock",
                text: message.title,
                weight: "Bolder",
                size: "Medium",
                color: color[message.severity],
                wrap: true,
              },
              { type: "TextBlock", text: message.message, wrap: true },
              {
                type: "FactSet",
                facts: messageFacts(message).map(([title, value]) => ({ title, value })),
              },
            ],
          },
        },
      ],
    };
    return { headers: { "content-type": "application/json" }, body: JSON.stringify(body) };
  },
};
