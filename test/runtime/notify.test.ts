// Notifications: every channel type posts to a local receiver in its service's documented format
// (checked by validators written from the services' docs, apart from the renderers); delivery never
// blocks the emitter, retries with backoff, gives up on a 4xx, logs a failing channel once with its
// URL redacted; vm-restart-failing is sent once per escalation step.
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { buildReport, formatReportTable } from "../../runtime/src/cli/report";
import type { NotificationEventName, RestarterEvent } from "../../runtime/src/core/events";
import { notificationEventNames } from "../../runtime/src/core/events";
import { channelTypes } from "../../runtime/src/core/settings";
import { createEventBus } from "../../runtime/src/signals/events";
import { createLogger } from "../../runtime/src/signals/log";
import { escalationStep } from "../../runtime/src/signals/notify/escalation";
import {
  createNotifier,
  type NotificationChannelConfig,
  sendTestNotifications,
} from "../../runtime/src/signals/notify/index";
import { foldHistory } from "../../runtime/src/state/historyFold";
import { deadUrl, type ReceivedRequest, type Receiver, startReceiver } from "../helpers/receiver";

const subscriptionId = "00000000-0000-0000-0000-000000000001";
// Each URL's path stands for the secret a real one carries (a Slack token, an ntfy topic).
const secretPath = "/services/T0SECRET/B0SECRET/xoxsecrettoken";

function memoryLog() {
  const lines: string[] = [];
  return { lines, log: createLogger({ level: "debug", format: "json", write: (line) => lines.push(line) }) };
}

const fast = { maxQueued: 100, timeoutMs: 500, attempts: 3, backoffMs: 20, maxBackoffMs: 200 };

const t0 = Date.parse("2026-11-30T10:00:00Z");

/** The digest `run` offers: `report --since 7d` over two evictions of 2 and 3 minutes. */
function weeklyReport(): RestarterEvent {
  const since = t0 - 7 * 86_400_000;
  const vm = { v: 1 as const, resourceGroup: "personal-network", vm: "backup" };
  const timelines = foldHistory(
    [
      { ...vm, kind: "power", at: since, powerState: "running" },
      { ...vm, kind: "power", at: t0 - 3_600_000, powerState: "deallocated" },
      { ...vm, kind: "cause", at: t0 - 3_600_000, cause: "evicted" },
      { ...vm, kind: "start-requested", at: t0 - 3_600_000, attempt: 1 },
      { ...vm, kind: "power", at: t0 - 3_480_000, powerState: "running", by: "start" },
      { ...vm, kind: "power", at: t0 - 1_800_000, powerState: "deallocated" },
      { ...vm, kind: "cause", at: t0 - 1_800_000, cause: "evicted" },
      { ...vm, kind: "start-requested", at: t0 - 1_800_000, attempt: 1 },
      { ...vm, kind: "power", at: t0 - 1_620_000, powerState: "running", by: "start" },
    ],
    t0,
  );
  const report = buildReport(timelines, since, t0);
  return {
    type: "weekly-report",
    at: t0,
    since,
    evictions: report.totals.evictions,
    ownerStops: report.totals.ownerStops,
    downtimeSeconds: report.totals.downtimeSeconds,
    table: formatReportTable(report),
  };
}
const evicted: RestarterEvent = {
  type: "vm-evicted",
  at: t0,
  resourceGroup: "personal-network",
  vm: "ubuntu-backup-server-spot",
  cause: "evicted",
  occurredAt: t0 - 30_000,
};
const restarted: RestarterEvent = {
  type: "vm-restarted",
  at: t0 + 185_000,
  resourceGroup: "personal-network",
  vm: "ubuntu-backup-server-spot",
  downtimeSeconds: 185,
  attempts: 2,
};
const failing = (downSeconds: number): RestarterEvent => ({
  type: "vm-restart-failing",
  at: t0 + downSeconds * 1000,
  resourceGroup: "personal-network",
  vm: "ubuntu-backup-server-spot",
  code: "AllocationFailed",
  reason: "no Spot capacity",
  downSeconds,
  attempts: 12,
});

// --- Oracles, from each service's documentation -------------------------------------------------

// ntfy, https://docs.ntfy.sh/publish/: POST the message as the body; "Title"/"X-Title",
// "Priority"/"X-Priority" (1-5 or min, low, default, high, max/urgent), "Tags"/"X-Tags" comma-separated.
function checkNtfy(request: ReceivedRequest, expectedMessage: string): void {
  assert.ok(["POST", "PUT"].includes(request.method));
  assert.equal(request.body, expectedMessage);
  const title = request.headers.title ?? request.headers["x-title"];
  assert.ok(typeof title === "string" && title.length > 0, "a Title header");
  const priority = String(request.headers.priority ?? request.headers["x-priority"]);
  assert.match(priority, /^(?:[1-5]|min|low|default|high|max|urgent)$/);
  const tags = String(request.headers.tags ?? request.headers["x-tags"]);
  assert.ok(
    tags.split(",").every((tag) => /^[\w+-]+$/.test(tag)),
    `tags ${tags}`,
  );
}

// Slack incoming webhooks, https://api.slack.com/messaging/webhooks: JSON with "text" (required as
// the notification fallback when blocks are given); Block Kit section text objects {type: mrkdwn |
// plain_text, text <= 3000}; context elements <= 10; mrkdwn escapes &, <, > (api.slack.com/reference/surfaces/formatting).
function checkSlack(request: ReceivedRequest): Record<string, unknown> {
  assert.equal(request.method, "POST");
  assert.match(String(request.headers["content-type"]), /^application\/json/);
  const body = JSON.parse(request.body) as { text: string; blocks?: Array<Record<string, unknown>> };
  assert.equal(typeof body.text, "string");
  assert.ok(body.text.length > 0);
  const textObjects: Array<{ type: string; text: string }> = [];
  for (const block of body.blocks ?? []) {
    assert.ok(["section", "context", "header", "divider"].includes(String(block.type)));
    if (block.type === "section") textObjects.push(block.text as { type: string; text: string });
    if (block.type === "context") {
      const elements = block.elements as Array<{ type: string; text: string }>;
      assert.ok(elements.length >= 1 && elements.length <= 10);
      textObjects.push(...elements);
    }
  }
  for (const object of [...textObjects, { type: "mrkdwn", text: body.text }]) {
    assert.ok(["mrkdwn", "plain_text"].includes(object.type));
    assert.ok(object.text.length <= 3000);
    if (object.type === "mrkdwn") assert.doesNotMatch(object.text.replace(/&(amp|lt|gt);/g, ""), /[<>&]/);
  }
  return body;
}

// Discord Execute Webhook, https://discord.com/developers/docs/resources/webhook#execute-webhook:
// "content" or "embeds" required; <= 10 embeds; embed limits (resources/message#embed-object-embed-limits):
// title 256, description 4096, fields 25 (name 256, value 1024), total 6000; timestamp ISO 8601; color integer.
function checkDiscord(request: ReceivedRequest): Record<string, unknown> {
  assert.equal(request.method, "POST");
  assert.match(String(request.headers["content-type"]), /^application\/json/);
  const body = JSON.parse(request.body) as { content?: string; embeds?: Array<Record<string, unknown>> };
  assert.ok(body.content !== undefined || (body.embeds?.length ?? 0) > 0, "content or embeds");
  if (body.content !== undefined) assert.ok(body.content.length <= 2000);
  assert.ok((body.embeds?.length ?? 0) <= 10);
  for (const embed of body.embeds ?? []) {
    const title = String(embed.title ?? "");
    const description = String(embed.description ?? "");
    const fields = (embed.fields ?? []) as Array<{ name: string; value: string }>;
    assert.ok(title.length <= 256 && description.length <= 4096 && fields.length <= 25);
    for (const field of fields) assert.ok(field.name.length <= 256 && field.value.length <= 1024);
    const total =
      title.length + description.length + fields.reduce((n, f) => n + f.name.length + f.value.length, 0);
    assert.ok(total <= 6000);
    if (embed.timestamp !== undefined) assert.ok(!Number.isNaN(Date.parse(String(embed.timestamp))));
    if (embed.color !== undefined)
      assert.ok(Number.isInteger(embed.color) && (embed.color as number) <= 0xffffff);
  }
  return body;
}

// Teams Workflows, learn.microsoft.com/microsoftteams/platform/webhooks-and-connectors/how-to/connectors-using
// ("Send Adaptive Cards using an incoming webhook"): {type: "message", attachments: [{contentType:
// "application/vnd.microsoft.card.adaptive", contentUrl: null, content: {type: "AdaptiveCard", version, body}}]};
// Workflows take Adaptive Cards only (no MessageCard). Elements per adaptivecards.io/explorer.
function checkTeams(request: ReceivedRequest): Array<Record<string, unknown>> {
  assert.equal(request.method, "POST");
  assert.match(String(request.headers["content-type"]), /^application\/json/);
  const body = JSON.parse(request.body) as {
    type: string;
    attachments: Array<{ contentType: string; contentUrl: unknown; content: Record<string, unknown> }>;
  };
  assert.equal(body.type, "message");
  assert.equal(body.attachments.length, 1);
  const [attachment] = body.attachments;
  assert.equal(attachment.contentType, "application/vnd.microsoft.card.adaptive");
  assert.equal(attachment.contentUrl, null);
  assert.equal(attachment.content.type, "AdaptiveCard");
  assert.match(String(attachment.content.version), /^1\.[0-5]$/);
  const elements = attachment.content.body as Array<Record<string, unknown>>;
  for (const element of elements) {
    if (element.type === "TextBlock") assert.equal(typeof element.text, "string");
    else if (element.type === "FactSet") {
      for (const fact of element.facts as Array<Record<string, unknown>>) {
        assert.equal(typeof fact.title, "string");
        assert.equal(typeof fact.value, "string");
      }
    } else assert.fail(`unexpected element ${String(element.type)}`);
  }
  return elements;
}

// Ours, docs/architecture.md "Notification event names": at least event, vm, resourceGroup, subscriptionId, at, message.
function checkWebhook(request: ReceivedRequest): Record<string, unknown> {
  assert.equal(request.method, "POST");
  assert.match(String(request.headers["content-type"]), /^application\/json/);
  const body = JSON.parse(request.body) as Record<string, unknown>;
  for (const key of ["event", "subscriptionId", "at", "message"])
    assert.equal(typeof body[key], "string", key);
  assert.ok(notificationEventNames.includes(body.event as NotificationEventName) || body.event === "test");
  assert.equal(new Date(String(body.at)).toISOString(), body.at);
  return body;
}

// -------------------------------------------------------------------------------------------------

const receivers: Receiver[] = [];
after(async () => {
  await Promise.all(receivers.map((r) => r.close()));
});
async function receiver(behaviour = {}) {
  const r = await startReceiver(behaviour);
  receivers.push(r);
  return r;
}

describe("notifications: each channel type in its service's format", () => {
  it("posts an eviction to every channel type, each body as its service documents it", async () => {
    const r = await receiver();
    const channels = channelTypes.map((type) => ({ type, url: `${r.origin}/${type}${secretPath}` }));
    const { log } = memoryLog();
    const notifier = createNotifier(channels, { subscriptionId, log, delivery: fast });
    notifier.sink(evicted);
    await notifier.flush(5_000);
    const byType = new Map(r.requests.map((req) => [req.path.split("/")[1], req]));
    assert.deepEqual([...byType.keys()].sort(), [...channelTypes].sort());

    const message =
      "Azure evicted Spot VM ubuntu-backup-server-spot at 2026-11-30T09:59:30.000Z; starting it";
    checkNtfy(byType.get("ntfy") as ReceivedRequest, message);
    assert.match(String(byType.get("ntfy")?.headers.title), /ubuntu-backup-server-spot/);

    const slack = checkSlack(byType.get("slack") as ReceivedRequest);
    assert.match(String(slack.text), /ubuntu-backup-server-spot/);

    const discord = checkDiscord(byType.get("discord") as ReceivedRequest);
    const embed = (discord.embeds as Array<Record<string, unknown>>)[0];
    assert.equal(embed.description, message);
    assert.equal(embed.timestamp, "2026-11-30T10:00:00.000Z");

    const card = checkTeams(byType.get("teams") as ReceivedRequest);
    assert.ok(card.some((e) => e.text === message));

    const body = checkWebhook(byType.get("webhook") as ReceivedRequest);
    assert.equal(body.event, "vm-evicted");
    assert.equal(body.vm, "ubuntu-backup-server-spot");
    assert.equal(body.resourceGroup, "personal-network");
    assert.equal(body.subscriptionId, subscriptionId);
    assert.equal(body.at, "2026-11-30T10:00:00.000Z");
    assert.equal(body.occurredAt, "2026-11-30T09:59:30.000Z");
    assert.equal(body.message, message);
  });

  it("a restart carries its downtime; a channel's events list filters what it gets", async () => {
    const r = await receiver();
    const { log } = memoryLog();
    const notifier = createNotifier(
      [
        { type: "webhook", url: `${r.origin}/all` },
        { type: "webhook", url: `${r.origin}/restarts`, events: ["vm-restarted"] },
      ],
      { subscriptionId, log, delivery: fast },
    );
    notifier.sink(evicted);
    notifier.sink(restarted);
    // Not notification events: metrics and the log only.
    notifier.sink({ type: "cycle-finished", at: t0, durationSeconds: 1 });
    await notifier.flush(5_000);
    const events = (path: string) =>
      r.requests.filter((q) => q.path === path).map((q) => (JSON.parse(q.body) as { event: string }).event);
    assert.deepEqual(events("/all"), ["vm-evicted", "vm-restarted"]);
    assert.deepEqual(events("/restarts"), ["vm-restarted"]);
    const body = JSON.parse(r.requests.find((q) => q.path === "/restarts")?.body ?? "{}");
    assert.equal(body.downtimeSeconds, 185);
    assert.match(body.message, /running again after 3 min down/);
  });

  it("Slack text escapes &, < and > (a message cannot inject a link or mention)", async () => {
    const r = await receiver();
    const notifier = createNotifier([{ type: "slack", url: `${r.origin}/s` }], {
      subscriptionId,
      log: memoryLog().log,
      delivery: fast,
    });
    notifier.sink({ type: "auth-failing", at: t0, message: "token endpoint said <!channel> & <http://x|y>" });
    await notifier.flush(5_000);
    const body = checkSlack(r.requests[0]);
    assert.match(String(body.text), /&lt;!channel&gt; &amp; &lt;http/);
  });

  it("every notification event renders for every channel type within the formats' limits", async () => {
    const r = await receiver();
    const notifier = createNotifier(
      // Every event by name: the weekly digest goes only to a channel that lists it.
      channelTypes.map((type) => ({ type, url: `${r.origin}/${type}`, events: [...notificationEventNames] })),
      { subscriptionId, log: memoryLog().log, delivery: fast },
    );
    const samples: RestarterEvent[] = [
      weeklyReport(),
      evicted,
      restarted,
      failing(15 * 60),
      {
        type: "vm-fallback-size",
        at: t0,
        resourceGroup: "rg",
        vm: "v",
        fromSize: "Standard_D4s_v5",
        toSize: "Standard_D4as_v5",
      },
      {
        type: "vm-left-alone",
        at: t0,
        resourceGroup: "rg",
        vm: "v",
        reason: "owner-deallocated",
        by: "alice@contoso.com",
      },
      { type: "auth-failing", at: t0, code: "AADSTS700027", message: "certificate not registered" },
      {
        type: "permission-missing",
        at: t0,
        action: "Microsoft.Compute/virtualMachines/start/action",
        message: "missing start",
      },
      { type: "certificate-expiring", at: t0, expiresAt: t0 + 5 * 86_400_000, daysLeft: 5 },
      {
        type: "resource-group-missing",
        at: t0,
        resourceGroup: "rg-typo",
        code: "ResourceGroupNotFound",
        message: "Resource group 'rg-typo' could not be found.",
      },
    ];
    assert.deepEqual(samples.map((e) => e.type).sort(), [...notificationEventNames].sort());
    for (const event of samples) notifier.sink(event);
    await notifier.flush(5_000);
    assert.equal(r.requests.length, samples.length * channelTypes.length);
    for (const request of r.requests) {
      const type = request.path.slice(1);
      if (type === "slack") checkSlack(request);
      else if (type === "discord") checkDiscord(request);
      else if (type === "teams") checkTeams(request);
      else if (type === "webhook") checkWebhook(request);
      else checkNtfy(request, request.body);
    }
  });
});

describe("notifications: the weekly digest", () => {
  it("goes only to a channel that lists weekly-report, once a week, with the report's table", async () => {
    const r = await receiver();
    const notifier = createNotifier(
      [
        { type: "webhook", url: `${r.origin}/all` },
        { type: "webhook", url: `${r.origin}/weekly`, events: ["weekly-report"] },
      ],
      { subscriptionId, log: memoryLog().log, delivery: fast },
    );
    notifier.sink(weeklyReport());
    // A day later (run offers it daily, or restarted): the repeat gate holds it back until the week is over.
    notifier.sink({ ...weeklyReport(), at: t0 + 86_400_000 });
    notifier.sink({ ...weeklyReport(), at: t0 + 7 * 86_400_000 });
    await notifier.flush(5_000);
    assert.deepEqual(
      r.requests.map((request) => request.path),
      ["/weekly", "/weekly"],
    );
    const body = JSON.parse(r.requests[0]?.body ?? "{}");
    assert.equal(body.event, "weekly-report");
    assert.match(body.message, /^the last 7 days: 2 evictions, 5 min down after evictions, 0 owner stops\n/);
    assert.match(body.message, /^personal-network\/backup +2 +0 +5 min /m);
  });
});

describe("notifications: delivery never delays the emitter", () => {
  it("a receiver that is down: emit returns at once, the failure is logged once, URL redacted", async () => {
    const url = await deadUrl(secretPath);
    const { lines, log } = memoryLog();
    const notifier = createNotifier([{ type: "slack", url }], { subscriptionId, log, delivery: fast });
    const bus = createEventBus();
    bus.subscribe(notifier.sink);
    // Judged by order, not by a stopwatch: when emit returns, no delivery has been tried to its end.
    for (let i = 0; i < 5; i++) bus.emit(evicted);
    assert.deepEqual(
      notifier.stats().map(({ delivered, failed }) => ({ delivered, failed })),
      [{ delivered: 0, failed: 0 }],
      "emit must not wait for delivery",
    );
    await notifier.flush(10_000);
    assert.deepEqual(
      notifier.stats().map(({ delivered, failed }) => ({ delivered, failed })),
      [{ delivered: 0, failed: 5 }],
    );
    const failures = lines.filter((line) => line.includes("notification-failed"));
    assert.equal(failures.length, 1, lines.join("\n"));
    assert.match(failures[0], /ECONNREFUSED/);
    assert.match(failures[0], /notifications\[0\] \(slack, http:\/\/127\.0\.0\.1:\d+\/…\)/);
    assert.ok(!lines.join("\n").includes("SECRET"), "no URL path in the log");
  });

  it("a slow receiver: each post times out and is retried with backoff, then given up", async () => {
    const r = await receiver({ delayMs: 2_000 });
    const { lines, log } = memoryLog();
    const notifier = createNotifier([{ type: "webhook", url: `${r.origin}${secretPath}` }], {
      subscriptionId,
      log,
      delivery: { ...fast, timeoutMs: 200 },
    });
    // The sink hands the message over and returns: nothing to await, and the receiver has not even
    // been asked yet when it does.
    assert.equal(notifier.sink(evicted), undefined);
    assert.equal(r.requests.length, 0, "the sink returned before the post reached the receiver");
    await notifier.flush(10_000);
    assert.equal(r.requests.length, 3, "three attempts");
    const gaps = r.requests.slice(1).map((q, i) => q.at - r.requests[i].at);
    assert.ok(
      gaps.every((gap) => gap >= 200),
      `each attempt waits out the timeout and a backoff: ${gaps}`,
    );
    assert.match(lines.find((l) => l.includes("notification-failed")) ?? "", /no answer within 0.2 s/);
  });

  it("a 500 is retried until it passes, and the channel's recovery is logged", async () => {
    const r = await receiver({ status: (index: number) => (index < 2 ? 503 : 200) });
    const { lines, log } = memoryLog();
    const notifier = createNotifier([{ type: "webhook", url: `${r.origin}/h` }], {
      subscriptionId,
      log,
      delivery: fast,
    });
    notifier.sink(evicted);
    await notifier.flush(5_000);
    assert.equal(r.requests.length, 3);
    assert.deepEqual(notifier.stats()[0].delivered, 1);
    assert.ok(!lines.some((l) => l.includes("notification-failed")), "a retried success is no failure");
  });

  it("a 404 (a deleted webhook) is not retried; a later success logs the recovery", async () => {
    const r = await receiver({ status: (index: number) => (index === 0 ? 404 : 200) });
    const { lines, log } = memoryLog();
    const notifier = createNotifier([{ type: "discord", url: `${r.origin}${secretPath}` }], {
      subscriptionId,
      log,
      delivery: fast,
    });
    notifier.sink(evicted);
    await notifier.flush(5_000);
    assert.equal(r.requests.length, 1);
    assert.match(lines.find((l) => l.includes("notification-failed")) ?? "", /HTTP 404/);
    notifier.sink(restarted);
    await notifier.flush(5_000);
    assert.ok(lines.some((l) => l.includes("notification-recovered")));
  });

  it("the queue is bounded: beyond maxQueued the oldest are dropped and counted", async () => {
    const r = await receiver({ delayMs: 300 });
    const { lines, log } = memoryLog();
    const notifier = createNotifier([{ type: "webhook", url: `${r.origin}/h` }], {
      subscriptionId,
      log,
      delivery: { ...fast, maxQueued: 3, timeoutMs: 2_000 },
    });
    for (let i = 0; i < 10; i++) notifier.sink({ ...restarted, downtimeSeconds: i });
    await notifier.flush(10_000);
    const { delivered, dropped } = notifier.stats()[0];
    assert.equal(delivered + dropped, 10);
    assert.equal(delivered, 4, "the one in flight and the last three");
    const sent = r.requests.map((q) => (JSON.parse(q.body) as { downtimeSeconds: number }).downtimeSeconds);
    assert.deepEqual(sent, [0, 7, 8, 9]);
    assert.equal(lines.filter((l) => l.includes("notification-dropped")).length, 1);
  });
});

describe("notifications: no flood", () => {
  it("escalation steps: 15 min, 1 h, 6 h, then daily", () => {
    assert.equal(escalationStep(14 * 60), -1);
    assert.equal(escalationStep(15 * 60), 0);
    assert.equal(escalationStep(59 * 60), 0);
    assert.equal(escalationStep(3600), 1);
    assert.equal(escalationStep(6 * 3600), 2);
    assert.equal(escalationStep(29 * 3600), 2);
    assert.equal(escalationStep(30 * 3600), 3);
    assert.equal(escalationStep(54 * 3600), 4);
  });

  it("one vm-restart-failing per step, whatever the emitter sends; a restart resets the steps", async () => {
    const r = await receiver();
    const notifier = createNotifier([{ type: "webhook", url: `${r.origin}/h` }], {
      subscriptionId,
      log: memoryLog().log,
      delivery: fast,
    });
    // An attempt a minute for 7 hours.
    for (let minute = 1; minute <= 7 * 60; minute++) notifier.sink(failing(minute * 60));
    notifier.sink(restarted);
    notifier.sink(failing(20 * 60));
    await notifier.flush(5_000);
    const sent = r.requests.map((q) => JSON.parse(q.body) as { event: string; downSeconds?: number });
    assert.deepEqual(
      sent.map((b) => `${b.event}:${b.downSeconds ?? ""}`),
      [
        "vm-restart-failing:900",
        "vm-restart-failing:3600",
        "vm-restart-failing:21600",
        "vm-restarted:",
        "vm-restart-failing:1200",
      ],
    );
  });
});

describe("notify-test and dry run", () => {
  it("sends one test message per channel and reports each, never with the URL", async () => {
    const ok = await receiver();
    const broken = await receiver({ status: 403 });
    const channels: NotificationChannelConfig[] = [
      ...channelTypes.map((type) => ({ type, url: `${ok.origin}/${type}${secretPath}` })),
      { type: "slack", url: `${broken.origin}${secretPath}` },
      { type: "ntfy", url: await deadUrl(secretPath) },
    ];
    const results = await sendTestNotifications(channels, {
      subscriptionId,
      resourceGroups: ["personal-network"],
      timeoutMs: 2_000,
    });
    assert.equal(ok.requests.length, channelTypes.length);
    assert.deepEqual(
      results.map((x) => [x.ok, x.detail]),
      [...channelTypes.map(() => [true, "HTTP 200"]), [false, "HTTP 403"], [false, "ECONNREFUSED"]],
    );
    assert.ok(!JSON.stringify(results).includes("SECRET"));
    const webhookBody = checkWebhook(
      ok.requests.find((q) => q.path.startsWith("/webhook")) as ReceivedRequest,
    );
    assert.equal(webhookBody.event, "test");
  });

  it("a dry run sends nothing and logs what it would send", async () => {
    const r = await receiver();
    const { lines, log } = memoryLog();
    const seen: string[] = [];
    const notifier = createNotifier([{ type: "teams", url: `${r.origin}${secretPath}` }], {
      subscriptionId,
      log,
      dryRun: true,
      onMessage: (channel, message) => seen.push(`${channel}: ${message.event}`),
    });
    notifier.sink(evicted);
    await notifier.flush(1_000);
    assert.equal(r.requests.length, 0);
    assert.equal(seen.length, 1);
    assert.match(lines.join("\n"), /notification-dry-run.*would send: Azure evicted/);
    assert.ok(!lines.join("\n").includes("SECRET"));
  });
});
