// `webhook`: our own JSON, for a receiver the owner writes (docs/architecture.md "Notification event names":
// at least event, vm, resourceGroup, subscriptionId, at, message). The event's other fields follow
// flat, times as RFC 3339, so a receiver needs no second lookup.
import type { ChannelFormat } from "./message";

export const webhook: ChannelFormat = {
  render(message) {
    const body = {
      ...message.details,
      event: message.event,
      ...(message.vm ? { vm: message.vm } : {}),
      ...(message.resourceGroup ? { resourceGroup: message.resourceGroup } : {}),
      subscriptionId: message.subscriptionId,
      at: message.at,
      message: message.message,
      title: message.title,
      severity: message.severity,
    };
    return { headers: { "content-type": "application/json" }, body: JSON.stringify(body) };
  },
};
