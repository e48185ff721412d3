// Issue 23, item 5: doctor covers every feature it enables. The eviction-cause signals (Resource Graph
// annotations, the Activity Log), fallback sizes, notifications and metrics each get a check, run against
// the emulator the way the runtime uses them; a missing right says what degrades; where Resource Graph
// leaves out a row (it never answers 403 for a row the caller may not read), doctor says it cannot tell and
// how to check by hand.
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { after, before, describe, it } from "node:test";
import { LEAST_PRIVILEGE_ACTIONS } from "../../emulator/testing";
import { buildRuntimeBundle } from "../../support/bundle";
import { type Receiver, startReceiver } from "../helpers/receiver";
import { resourceGroup, runCli, spotVm, startWorld, type World } from "./harness";

interface Check {
  name: string;
  status: string;
  detail: string;
  fix?: string;
}

let bundle: string;
before(async () => {
  bundle = await buildRuntimeBundle();
});

async function doctor(world: World, configPath = world.configPath) {
  const result = await runCli(bundle, ["doctor", "--json", "--config", configPath], {
    caCertFile: world.emulator.caCertFile,
  });
  const report = JSON.parse(result.stdout) as { passed: boolean; checks: Check[] };
  return { code: result.code, stdout: result.stdout, checks: report.checks };
}
const named = (checks: Check[], name: string) => {
  const check = checks.find((c) => c.name === name);
  assert.ok(check, `no check "${name}" in ${checks.map((c) => c.name).join(", ")}`);
  return check;
};

const config = {
  notifications: (checks: Check[]) => checks.filter((c) => c.name.startsWith("notifications: ")),
};

describe("doctor: the eviction-cause signals, fallback sizes, notifications and metrics", () => {
  let world: World;
  let receiver: Receiver;
  let busy: Server;
  let busyPort: number;
  before(async () => {
    receiver = await startReceiver();
    busy = createServer();
    await new Promise<void>((resolve) => busy.listen(0, "127.0.0.1", resolve));
    busyPort = (busy.address() as { port: number }).port;
    // The evicted VM has its VirtualMachinePreempted annotation; the running one has none in Resource Graph.
    world = await startWorld([spotVm("evicted"), spotVm("never-evicted", { powerState: "running" })], {
      config: {
        notifications: [
          { type: "webhook", url: `${receiver.origin}/hooks/secret-token-1` },
          { type: "ntfy", url: "http://127.0.0.1:9/secret-token-2" },
        ],
        metrics: { listen: `127.0.0.1:${busyPort}`, textfile: "/nonexistent-dir/spot-restarter.prom" },
      },
    });
  });
  after(async () => {
    await world.emulator.stop();
    await receiver.close();
    busy.close();
  });

  it("Contributor: signals readable; the VM without an annotation row: doctor cannot tell, and says how to check", async () => {
    const { code, stdout, checks } = await doctor(world);
    assert.equal(code, 0, stdout);
    const annotations = named(checks, "eviction cause: Resource Health annotations");
    assert.equal(annotations.status, "warn");
    assert.match(annotations.detail, /no annotation for personal-network\/never-evicted: doctor cannot tell/);
    assert.doesNotMatch(annotations.detail, /personal-network\/evicted\b/);
    assert.match(annotations.detail, /leaves out rows it may not read instead of refusing/);
    assert.match(annotations.fix ?? "", /az graph query -q "healthresources .*never-evicted/);
    assert.equal(named(checks, `eviction cause: Activity Log of ${resourceGroup}`).status, "pass");

    const [good, bad] = config.notifications(checks);
    assert.equal(good?.status, "pass");
    assert.equal(bad?.status, "warn");
    assert.match(bad?.detail ?? "", /events are not delivered to this channel/);
    assert.doesNotMatch(stdout, /secret-token/, "a channel URL's secret is never printed");
    assert.ok(
      receiver.requests.every((r) => r.path === "/"),
      "only the origin is asked, never the secret path",
    );

    const listen = named(checks, `metrics: listen 127.0.0.1:${busyPort}`);
    assert.equal(listen.status, "warn");
    assert.match(listen.detail, /port is in use/);
    assert.equal(named(checks, "metrics: textfile").status, "warn");
  });

  it("fallback sizes: each configured VM's sizes are asked of Azure; one it does not offer is named", async () => {
    const configPath = `${world.dir}/fallbacks.json`;
    writeFileSync(
      configPath,
      JSON.stringify({
        ...world.configFile,
        fallbackSizes: { [`${resourceGroup}/evicted`]: ["Standard_B2ms", "Standard_NoSuch_v9"] },
      }),
    );
    const { checks } = await doctor(world, configPath);
    const fallback = named(checks, `fallback sizes of ${resourceGroup}/evicted`);
    assert.equal(fallback.status, "warn");
    assert.match(fallback.detail, /does not offer Standard_NoSuch_v9 to this VM/);
    assert.doesNotMatch(fallback.detail, /Standard_B2ms/);
  });
});

describe("doctor: a role without the eviction-cause actions says what degrades", () => {
  const worlds: World[] = [];
  after(() => Promise.all(worlds.map((w) => w.emulator.stop())));
  const without = async (action: string) => {
    const world = await startWorld([spotVm("evicted")], {
      role: "least-privilege",
      actions: LEAST_PRIVILEGE_ACTIONS.filter((a) => a !== action),
      config: { unknownCauseAfterSeconds: 600 },
    });
    worlds.push(world);
    return world;
  };

  it("no Activity Log: owner stops are recognised only from Resource Health; unexplained ones start after unknownCauseAfterSeconds", async () => {
    const world = await without("Microsoft.Insights/eventtypes/values/read");
    const { code, stdout, checks } = await doctor(world);
    assert.equal(code, 1, stdout);
    const activity = named(checks, `eviction cause: Activity Log of ${resourceGroup}`);
    assert.equal(activity.status, "fail");
    assert.match(activity.detail, /AuthorizationFailed/);
    assert.match(
      activity.detail,
      /owner stops are recognised only from their Resource Health annotation: .* started after unknownCauseAfterSeconds \(600 s\)/,
    );
    assert.match(
      activity.fix ?? "",
      /grant Microsoft\.Insights\/eventtypes\/values\/read at \/subscriptions\//,
    );
    const permissions = named(checks, `permissions on ${resourceGroup}`);
    assert.match(
      permissions.detail,
      /Until then: owner stops are recognised only from their Resource Health annotation/,
    );
    assert.equal(named(checks, "eviction cause: Resource Health annotations").status, "pass");
  });

  it("no Resource Health read: Resource Graph answers without the row; doctor cannot tell, and the permission check says what degrades", async () => {
    const world = await without("Microsoft.ResourceHealth/availabilityStatuses/read");
    const { code, checks } = await doctor(world);
    assert.equal(code, 1);
    const annotations = named(checks, "eviction cause: Resource Health annotations");
    assert.equal(annotations.status, "warn");
    assert.match(annotations.detail, /no annotation for personal-network\/evicted: doctor cannot tell/);
    assert.match(annotations.detail, /started only after unknownCauseAfterSeconds \(600 s\)/);
    assert.match(
      named(checks, `permissions on ${resourceGroup}`).detail,
      /Microsoft\.ResourceHealth\/availabilityStatuses\/read .*Until then: Azure's evictions are not recognised from Resource Health/,
    );
  });
});
