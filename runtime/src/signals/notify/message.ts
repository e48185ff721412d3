// What every channel renders: one event as a titled, graded message with its facts. The channel
// modules (webhook.ts, ntfy.ts, slack.ts, discord.ts, teams.ts) only translate this into their
// service's format, so an event reads the same everywhere.

import type { NotificationEventName, RestarterEvent } from "../../core/events";
import { describeEvent } from "../events";

export type Severity = "info" | "warning" | "critical";

/** The `event` of a message: one of the notification events, or `test` (`notify-test`). */
export type MessageEventName = NotificationEventName | "test";

export interface NotificationMessage {
  readonly event: MessageEventName;
  readonly title: string;
  /** One sentence (describeEvent's). */
  readonly message: string;
  readonly severity: Severity;
  readonly subscriptionId: string;
  readonly resourceGroup?: string;
  readonly vm?: string;
  /** RFC 3339. */
  readonly at: string;
  /** The event's own fields (times as RFC 3339), for the webhook body and the facts of a card. */
  readonly details: Readonly<Record<string, string | number | boolean>>;
}

const severities: Record<MessageEventName, Severity> = {
  "vm-evicted": "warning",
  "vm-restarted": "info",
  "vm-restart-failing": "critical",
  "vm-fallback-size": "warning",
  "vm-left-alone": "info",
  "auth-failing": "critical",
  "permission-missing": "critical",
  "certificate-expiring": "warning",
  "resource-group-missing": "critical",
  "weekly-report": "info",
  test: "info",
};

const titles: Record<MessageEventName, (vm: string | undefined, event?: RestarterEvent) => string> = {
  "vm-evicted": (vm, event) =>
    event?.type === "vm-evicted" && event.cause === "unknown"
      ? `${vm} deallocated for no known reason: starting it`
      : event?.type === "vm-evicted" && event.cause === "deallocated"
        ? `${vm} deallocated: starting it`
        : `${vm} was evicted`,
  "vm-restarted": (vm) => `${vm} is running again`,
  "vm-restart-failing": (vm) => `${vm} is still down`,
  "vm-fallback-size": (vm) => `${vm} resized to start`,
  "vm-left-alone": (vm) => `${vm} left deallocated`,
  "auth-failing": () => "cannot sign in to Azure",
  "permission-missing": () => "a permission is missing",
  "certificate-expiring": () => "certificate expires soon",
  "resource-group-missing": (_vm, event) =>
    `resource group ${event?.type === "resource-group-missing" ? event.resourceGroup : ""} not found`,
  "weekly-report": () => "the week's evictions",
  test: () => "test notification",
};

/** Fields of an event that hold a time in milliseconds since the epoch. */
const timeFields = new Set(["at", "occurredAt", "nextAttemptAt", "until", "expiresAt", "since"]);

export function toNotificationMessage(
  event: RestarterEvent & { type: NotificationEventName },
  subscriptionId: string,
): NotificationMessage {
  const { type, at, ...rest } = event as RestarterEvent & Record<string, unknown>;
  const vm = typeof rest.vm === "string" ? rest.vm : undefined;
  const resourceGroup = typeof rest.resourceGroup === "string" ? rest.resourceGroup : undefined;
  const details: Record<string, string | number | boolean> = {};
  for (const [key, value] of Object.entries(rest)) {
    if (key === "vm" || key === "resourceGroup" || value === undefined) continue;
    if (timeFields.has(key) && typeof value === "number") details[key] = new Date(value).toISOString();
    else if (typeof value === "string" || typeof value === "number" || typeof value === "boolean")
      details[key] = value;
  }
  return {
    event: type as NotificationEventName,
    title: `spot-restarter: ${titles[type as NotificationEventName](vm, event)}`,
    message: describeEvent(event),
    severity: severities[type as NotificationEventName],
    subscriptionId,
    ...(resourceGroup ? { resourceGroup } : {}),
    ...(vm ? { vm } : {}),
    at: new Date(at).toISOString(),
    details,
  };
}

/** The message `notify-test` sends to every channel. */
export function testMessage(
  subscriptionId: string,
  resourceGroups: readonly string[],
  at: Date,
): NotificationMessage {
  return {
    event: "test",
    title: `spot-restarter: ${titles.test(undefined)}`,
    message: `This is a test from spot-restarter, watching ${resourceGroups.join(", ")}: this channel works.`,
    severity: "info",
    subscriptionId,
    at: at.toISOString(),
    details: {},
  };
}

/** An HTTP request a channel sends (always a POST). */
export interface ChannelRequest {
  readonly headers: Record<string, string>;
  readonly body: string;
}

/** A channel type: one module each, listed once in channels.ts. */
export interface ChannelFormat {
  render(message: NotificationMessage): ChannelRequest;
}

/** The facts worth showing beside the sentence, in order, as label/value pairs. */
export function messageFacts(message: NotificationMessage): Array<[string, string]> {
  const facts: Array<[string, string]> = [];
  if (message.vm) facts.push(["VM", message.vm]);
  if (message.resourceGroup) facts.push(["Resource group", message.resourceGroup]);
  facts.push(["Subscription", message.subscriptionId]);
  facts.push(["At", message.at]);
  return facts;
}
