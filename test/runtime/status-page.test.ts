// The status page (`GET /` on metrics.listen) in a real browser: headless Chromium (Debian's package,
// driven by playwright-core) opens the page `run` serves against the emulator after an eviction and an
// owner's stop, and checks each VM's row and 7-day timeline against the emulator's own VM history; a
// screenshot is saved in the test's temp folder. Then: a VM name holding markup is shown as text, the
// page runs no script and loads nothing, fits a phone's width, and follows the reader's dark setting.
import "reflect-metadata";
import assert from "node:assert/strict";
import { statSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createMetrics, type MetricsServer, serveMetrics } from "../../runtime/src/signals/metrics/index";
import { renderStatusPage } from "../../runtime/src/signals/statusPage";
import { foldHistory } from "../../runtime/src/state/historyFold";
import { launchChromium } from "../../support/browser";
import { buildRuntimeBundle } from "../../support/bundle";
import { skipUnlessChromium } from "../helpers/tools";
import {
  freePort,
  historyLines as historyOf,
  type RunningCli,
  resourceGroup,
  runCli,
  sameEmulatorInstant,
  secondListAfter,
  spawnCli,
  spotVm,
  startWorld,
  type World,
  waitUntil,
} from "./harness";

// What the functions run in the page use of the DOM (the project compiles without the DOM library).
interface DomElement {
  readonly textContent: string | null;
  getAttribute(name: string): string | null;
  querySelector(selector: string): DomElement | null;
  querySelectorAll(selector: string): ArrayLike<DomElement> & Iterable<DomElement>;
}
declare const document: DomElement & {
  readonly body: DomElement;
  readonly documentElement: { scrollWidth: number };
};
declare const window: { readonly innerWidth: number };
declare function getComputedStyle(element: DomElement): { backgroundColor: string };

const intervalSeconds = 1;
const skip = skipUnlessChromium();

interface PageRow {
  vm: string;
  name: string;
  facts: Record<string, string>;
  segments: Array<{ phase: string; from: string; to: string }>;
  figures: Record<string, string>;
}

/** What the browser shows: each VM card's facts, timeline rects and figures, read from the rendered DOM. */
function readRows(): PageRow[] {
  return [...document.querySelectorAll("section.vm")].map((section) => ({
    vm: section.getAttribute("data-vm") ?? "",
    name: section.querySelector(".name")?.textContent ?? "",
    facts: Object.fromEntries(
      [...section.querySelectorAll("[data-field]")].map((el) => [
        el.getAttribute("data-field") ?? "",
        el.querySelector("dd")?.textContent ?? "",
      ]),
    ),
    segments: [...section.querySelectorAll("svg.timeline rect[data-phase]")].map((rect) => ({
      phase: rect.getAttribute("data-phase") ?? "",
      from: rect.getAttribute("data-from") ?? "",
      to: rect.getAttribute("data-to") ?? "",
    })),
    figures: Object.fromEntries(
      [...section.querySelectorAll("[data-figure]")].map((el) => [
        el.getAttribute("data-figure") ?? "",
        el.querySelector("dd")?.textContent ?? "",
      ]),
    ),
  }));
}

describe("the status page in headless Chromium", { skip }, () => {
  let bundle: string;
  let world: World;
  let port: number;
  let run: RunningCli | undefined;
  before(async () => {
    bundle = await buildRuntimeBundle();
    port = await freePort();
    world = await startWorld(
      [spotVm("backup", { powerState: "running" }), spotVm("builder", { powerState: "running" })],
      { startSeconds: 0.3, config: { intervalSeconds, metrics: { listen: `127.0.0.1:${port}` } } },
    );
  });
  after(async () => {
    await run?.stop();
    await world?.emulator.stop();
  });

  const historyLines = () => historyOf(world);

  it("shows every tagged VM with its state and a timeline that matches the emulator's history", async () => {
    run = spawnCli(bundle, ["run", "--config", world.configPath, "--log-format", "json"], {
      caCertFile: world.emulator.caCertFile,
      timeoutMs: 180_000,
    });
    await run.waitFor(/"event":"metrics-listening"/);
    await waitUntil("both VMs in the history", () =>
      new Set(historyLines().map((r) => r.vm)).size === 2 ? true : undefined,
    );
    await world.control.evict(resourceGroup, "backup");
    await waitUntil("backup started again", () =>
      historyLines().some((r) => r.vm === "backup" && r.by === "start") ? true : undefined,
    );
    await world.control.deallocate(resourceGroup, "builder");
    await waitUntil("the owner's stop of builder", () =>
      historyLines().some((r) => r.vm === "builder" && r.cause === "owner") ? true : undefined,
    );
    // The page shows what the loop saw last: wait for the cycle that saw the owner's stop.
    const origin = `http://127.0.0.1:${port}`;
    await waitUntil("builder deallocated in /status.json", async () => {
      const report = (await (await fetch(`${origin}/status.json`)).json()) as {
        vms: Array<{ name: string; powerState: string | null }>;
      };
      return report.vms.find((vm) => vm.name === "builder")?.powerState === "deallocated" ? true : undefined;
    });
    const browser = await launchChromium({ viewport: { width: 1100, height: 700 } });
    try {
      const page = await browser.context.newPage();
      const requests: string[] = [];
      page.on("request", (request) => requests.push(request.url()));
      const response = await page.goto(`${origin}/`, { timeout: 30_000 });
      assert.equal(response?.status(), 200);
      assert.match(response?.headers()["content-security-policy"] ?? "", /default-src 'none'/);
      const rows = await page.evaluate(readRows);
      const screenshot = join(world.dir, "status-page.png");
      await page.screenshot({ path: screenshot, fullPage: true });
      assert.ok(statSync(screenshot).size > 5_000);
      process.stdout.write(`# status page screenshot: ${screenshot}\n`);
      // Nothing but the page itself was fetched (no external asset, no script, no favicon from elsewhere).
      assert.deepEqual(
        requests.filter((url) => !url.startsWith(`${origin}/`)),
        [],
      );

      assert.deepEqual(rows.map((r) => r.vm).sort(), [`${resourceGroup}/backup`, `${resourceGroup}/builder`]);
      const backup = rows.find((r) => r.name === "backup") as PageRow;
      const builder = rows.find((r) => r.name === "builder") as PageRow;
      assert.equal(backup.facts.power, "running");
      assert.match(backup.facts.cause ?? "", /^evicted, /);
      assert.equal(backup.facts.size, "Standard_B2s");
      assert.equal(builder.facts.power, "deallocated");
      assert.match(builder.facts.cause ?? "", /^owner/);
      assert.equal(backup.figures.evictions, "1");
      assert.equal(builder.figures["owner stops"], "1");
      assert.equal(builder.figures.downtime, "0");

      // The timelines, against the emulator's own record of each VM.
      const emulated = async (name: string) => (await world.control.vm(resourceGroup, name))?.history ?? [];
      const evictedAt = Date.parse((await emulated("backup")).find((e) => e.event === "evicted")?.at ?? "");
      const upAt = Date.parse(
        (await emulated("backup")).find((e) => e.event === "start-succeeded")?.at ?? "",
      );
      assert.deepEqual(
        backup.segments.map((s) => s.phase),
        ["running", "evicted", "running"],
      );
      const evicted = backup.segments[1] as PageRow["segments"][number];
      // Begins at Azure's eviction time (the annotation's); ends when the start is seen Succeeded, at its
      // next poll: never before the emulator's success, and within one loop interval of it (before the
      // cycle after next has listed the group).
      assert.ok(sameEmulatorInstant(Date.parse(evicted.from), evictedAt), `${evicted.from} vs ${evictedAt}`);
      const bound = await waitUntil("two cycles after the restart", () => secondListAfter(world, upAt));
      assert.ok(
        Date.parse(evicted.to) >= upAt && Date.parse(evicted.to) <= bound,
        `${evicted.to} vs ${new Date(upAt).toISOString()} .. ${new Date(bound).toISOString()}`,
      );
      const stoppedAt = Date.parse(
        (await emulated("builder")).find((e) => e.event === "deallocated-by-owner")?.at ?? "",
      );
      assert.deepEqual(
        builder.segments.map((s) => s.phase),
        ["running", "owner"],
      );
      assert.ok(sameEmulatorInstant(Date.parse(builder.segments[1]?.from ?? ""), stoppedAt));

      // /status.json is what `status --json` prints (same rows, same fields).
      const json = (await (await fetch(`${origin}/status.json`)).json()) as {
        vms: Array<Record<string, unknown>>;
      };
      const cli = await runCli(bundle, ["status", "--config", world.configPath, "--json"], {
        caCertFile: world.emulator.caCertFile,
      });
      assert.equal(cli.code, 0, cli.stderr);
      const printed = JSON.parse(cli.stdout) as typeof json;
      assert.deepEqual(Object.keys(json).sort(), Object.keys(printed).sort());
      const essentials = (report: typeof json) =>
        report.vms
          .map((vm) => ({
            name: vm.name,
            powerState: vm.powerState,
            vmSize: vm.vmSize,
            cause: (vm.lastCause as { kind: string } | null)?.kind,
            keys: Object.keys(vm).sort().join(","),
          }))
          .sort((a, b) => String(a.name).localeCompare(String(b.name)));
      assert.deepEqual(essentials(json), essentials(printed));
    } finally {
      await browser.close();
    }
  });
});

describe("the status page's text", { skip }, () => {
  let server: MetricsServer;
  const hostile = `<script>alert("x")</script><img src=x onerror="alert(1)">`;
  const now = Date.parse("2026-12-08T12:00:00Z");
  before(async () => {
    const port = await freePort();
    const vm = {
      resourceGroup: "rg-<b>bold</b>",
      name: hostile,
      powerState: "deallocated",
      lastCause: { kind: "evicted", at: new Date(now - 3_600_000).toISOString(), by: "<i>someone</i>" },
      pausedUntil: null,
      vmSize: "Standard_B2s",
      originalVmSize: null,
      backoffUntil: null,
      lastResult: "failed (AllocationFailed)",
    };
    const timelines = foldHistory(
      [
        {
          v: 1,
          kind: "power",
          at: now - 2 * 86_400_000,
          resourceGroup: vm.resourceGroup,
          vm: hostile,
          powerState: "running",
        },
        {
          v: 1,
          kind: "power",
          at: now - 3_600_000,
          resourceGroup: vm.resourceGroup,
          vm: hostile,
          powerState: "deallocated",
        },
        {
          v: 1,
          kind: "cause",
          at: now - 3_600_000,
          resourceGroup: vm.resourceGroup,
          vm: hostile,
          cause: "evicted",
        },
      ],
      now,
    );
    const log = { warn: () => {}, info: () => {}, error: () => {}, debug: () => {} } as never;
    server = await serveMetrics(createMetrics(), `127.0.0.1:${port}`, log, {
      statusJson: async () => ({ vms: [vm] }),
      html: async () => renderStatusPage({ generatedAt: now, vms: [vm], timelines }),
    });
  });
  after(() => server?.close());

  it("shows a VM name with <script> as text, and runs nothing", async () => {
    const browser = await launchChromium({ viewport: { width: 390, height: 844 } });
    try {
      const page = await browser.context.newPage();
      const dialogs: string[] = [];
      page.on("dialog", (dialog) => {
        dialogs.push(dialog.message());
        void dialog.dismiss();
      });
      await page.goto(`http://${server.address}/`, { timeout: 30_000 });
      const seen = await page.evaluate(() => ({
        name: document.querySelector("section.vm .name")?.textContent,
        rg: document.querySelector("section.vm .rg")?.textContent,
        cause: document.querySelector('[data-field="cause"] dd')?.textContent,
        scripts: document.querySelectorAll("script").length,
        images: document.querySelectorAll("img, b, i").length,
        label: document.querySelector("svg.timeline")?.getAttribute("aria-label"),
        // Readable on a phone: nothing wider than the screen.
        overflow: document.documentElement.scrollWidth - window.innerWidth,
      }));
      assert.equal(seen.name, hostile);
      assert.equal(seen.rg, "rg-<b>bold</b>");
      assert.match(seen.cause ?? "", /^evicted by <i>someone<\/i>, /);
      assert.equal(seen.scripts, 0);
      assert.equal(seen.images, 0);
      assert.equal(seen.label, `rg-<b>bold</b>/${hostile}: the last 7 days`);
      assert.ok(seen.overflow <= 0, `the page is ${seen.overflow} px wider than a phone`);
      assert.deepEqual(dialogs, []);
      await page.screenshot({ path: join(browser.profile, "..", "status-page-phone.png") });
    } finally {
      await browser.close();
    }
  });

  it("follows the reader's dark setting", async () => {
    const background = async (colorScheme: "light" | "dark") => {
      const browser = await launchChromium({ colorScheme });
      try {
        const page = await browser.context.newPage();
        await page.goto(`http://${server.address}/`, { timeout: 30_000 });
        return await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
      } finally {
        await browser.close();
      }
    };
    const light = await background("light");
    const dark = await background("dark");
    assert.notEqual(light, dark);
    const luminance = (rgb: string) =>
      (rgb.match(/\d+/g) ?? []).slice(0, 3).reduce((sum, c) => sum + Number(c), 0);
    assert.ok(luminance(dark) < luminance(light), `${dark} is not darker than ${light}`);
  });
});
