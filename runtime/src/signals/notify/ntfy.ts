// `ntfy`: the URL is the topic (`https://ntfy.sh/<topic>` or a self-hosted server); the body is the
// plain-text message and the Title, Priority (1 min .. 5 max/urgent) and Tags (comma-separated; an
// emoji short code shows as that emoji) headers shape the notification.
// Source: https://docs.ntfy.sh/publish/ ("Message title", "Message priority", "Tags & emojis").
import type { ChannelFormat, Severity } from "./message";

const priority: Record<Severity, string> = { info: "3", warning: "4", critical: "5" };
const tag: Record<Severity, string> = {
  info: "white_check_mark",
  warning: "warning",
  critical: "rotating_light",
};

export const ntfy: ChannelFormat = {
  render(message) {
    return {
      headers: {
        "content-type": "text/plain; charset=utf-8",
        // Header values must be Latin-1: VM and event names are ASCII, the title is built from them.
        Title: asciiOnly(message.title),
        Priority: message.event === "vm-left-alone" ? "2" : priority[message.severity],
        Tags: [
          message.event === "vm-restarted" ? "white_check_mark" : tag[message.severity],
          "spot-restarter",
          message.event,
        ].join(","),
      },
      body: message.message,
    };
  },
};

function asciiOnly(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, "?");
}
