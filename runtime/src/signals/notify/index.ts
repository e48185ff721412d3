// The notification sink: filters events (channel subscriptions, escalation steps), renders each for
// its channel type and hands it to that channel's delivery queue. Subscribed to the event bus once;
// nothing in the loop calls a channel directly.
import { type EventSink, isNotificationEvent, type NotificationEventName } from "../../core/events";
import type { ChannelType } from "../../core/settings";
import type { Logger } from "../log";
import { channelFormats } from "./channels";
import {
  ChannelQueue,
  channelLabel,
  type DeliveryOptions,
  type DeliveryStats,
  defaultDeliveryOptions,
  post,
} from "./delivery";
import { createEscalationFilter } from "./escalation";
import { createRepeatGate } from "./gate";
import { type NotificationMessage, testMessage, toNotificationMessage } from "./message";

export { type ChannelType, channelTypes } from "../../core/settings";
export { redactUrl } from "../../core/text";
export { channelFormats } from "./channels";
export { restartFailingEscalationSeconds } from "./escalation";

export interface NotificationChannelConfig {
  readonly type: ChannelType;
  readonly url: string;
  /** Absent: every notification event. */
  readonly events?: readonly NotificationEventName[];
}

export interface NotifierOptions {
  readonly subscriptionId: string;
  readonly log: Logger;
  readonly delivery?: DeliveryOptions;
  /** Log what would be sent, send nothing (`once --dry-run`, the demo). */
  readonly dryRun?: boolean;
  /** Where the repeat gate remembers account-wide alarms across `once` runs (absent: memory only). */
  readonly stateDir?: string;
  /** Every message as it is queued (the demo prints them). */
  readonly onMessage?: (channel: string, message: NotificationMessage) => void;
}

export interface Notifier {
  readonly sink: EventSink;
  /** Waits until every queue is empty, at most `timeoutMs` (`once` before it exits, `run` on stop). */
  flush(timeoutMs: number): Promise<void>;
  /** Abandons what is still queued. */
  close(): void;
  stats(): Array<{ channel: string } & DeliveryStats>;
}

export function createNotifier(
  channels: readonly NotificationChannelConfig[],
  options: NotifierOptions,
): Notifier {
  const escalation = createEscalationFilter();
  const repeatGate = createRepeatGate(options.dryRun ? undefined : options.stateDir);
  const queues = channels.map((channel, index) => ({
    channel,
    label: channelLabel(index, channel.type, channel.url),
    queue: new ChannelQueue(
      channelLabel(index, channel.type, channel.url),
      channel.url,
      options.log,
      options.delivery ?? defaultDeliveryOptions,
    ),
  }));
  const sink: EventSink = (event) => {
    // The filter also sees vm-restarted/vm-evicted to reset a VM's steps, whoever subscribes.
    if (!escalation(event) || !isNotificationEvent(event)) return;
    if (channels.length === 0 || !repeatGate(event)) return;
    const message = toNotificationMessage(event, options.subscriptionId);
    for (const { channel, label, queue } of queues) {
      // No `events`: every event but the weekly digest, which a channel asks for by name.
      if (channel.events ? !channel.events.includes(event.type) : event.type === "weekly-report") continue;
      options.onMessage?.(label, message);
      if (options.dryRun) {
        options.log.info(
          "notification-dry-run",
          { channel: label, notification: event.type },
          `would send: ${message.message}`,
        );
        continue;
      }
      queue.enqueue(channelFormats[channel.type].render(message));
    }
  };
  return {
    sink,
    async flush(timeoutMs) {
      await Promise.all(queues.map(({ queue }) => queue.drain(timeoutMs)));
    },
    close() {
      for (const { queue } of queues) queue.close();
    },
    stats: () => queues.map(({ label, queue }) => ({ channel: label, ...queue.stats })),
  };
}

export interface TestResult {
  readonly channel: string;
  readonly ok: boolean;
  /** `HTTP 200`, or why not (never the URL). */
  readonly detail: string;
}

/** `notify-test`: one test message to each channel, at once, one attempt each; never throws. */
export async function sendTestNotifications(
  channels: readonly NotificationChannelConfig[],
  context: { subscriptionId: string; resourceGroups: readonly string[]; timeoutMs?: number; now?: Date },
  signal?: AbortSignal,
): Promise<TestResult[]> {
  const message = testMessage(context.subscriptionId, context.resourceGroups, context.now ?? new Date());
  return Promise.all(
    channels.map(async (channel, index) => {
      const result = await post(
        channel.url,
        channelFormats[channel.type].render(message),
        context.timeoutMs ?? defaultDeliveryOptions.timeoutMs,
        signal,
      );
      return {
        channel: channelLabel(index, channel.type, channel.url),
        ok: result.ok,
        detail: result.ok ? `HTTP ${result.status}` : result.reason,
      };
    }),
  );
}
