// The whole chain on the emulator with the real bundle: `run` with a webhook channel and a metrics
// listener sees an eviction, posts vm-evicted then vm-restarted (with its downtime) to a local
// receiver, and /metrics counts the eviction and the restart; `once` writes the textfile. No
// notification URL reaches any output.
import "reflect-metadata";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { buildRuntimeBundle } from "../../support/bundle";
import { type Receiver, startReceiver } from "../helpers/receiver";
import { freePort, resourceGroup, runCli, spawnCli, spotVm, startWorld, type World } from "./harness";

const secretPath = "/hook/SECRET-webhook-token";

function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

let bundle: string;
let receiver: Receiver;
before(async () => {
  bundle = await buildRuntimeBundle();
  receiver = await startReceiver();
});
after(() => receiver.close());

describe("run: notifications and metrics for an eviction", () => {
  let world: World;
  let port: number;
  before(async () => {
    port = await freePort();
    world = await startWorld([spotVm("backup", { powerState: "running" })], {
      startSeconds: 1,
      config: {
        notifications: [{ type: "webhook", url: `${receiver.origin}${secretPath}` }],
        metrics: { listen: `127.0.0.1:${port}` },
      },
    });
  });
  after(() => world.emulator.stop());

  it("posts vm-evicted then vm-restarted with the downtime, and /metrics counts both", async () => {
    const running = spawnCli(bundle, ["run", "--config", world.configPath, "--log-format", "json"], {
      caCertFile: world.emulator.caCertFile,
    });
    try {
      await running.waitFor(/"event":"metrics-listening"/);
      await running.waitFor(/"event":"run-started"/);
      const before = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      assert.equal(
        sample(before, `spot_restarter_vm_up{resource_group="${resourceGroup}",vm="backup"}`) ?? 1,
        1,
      );

      const evictedAt = Date.now();
      await world.control.evict(resourceGroup, "backup");
      const [first, second] = await receiver.waitFor(2, 60_000);
      const bodies = [first, second].map((r) => JSON.parse(r.body) as Record<string, unknown>);
      assert.deepEqual(
        bodies.map((b) => b.event),
        ["vm-evicted", "vm-restarted"],
      );
      for (const [request, body] of [first, second].map((r, i) => [r, bodies[i]] as const)) {
        assert.equal(request.path, secretPath);
        assert.equal(body.vm, "backup");
        assert.equal(body.resourceGroup, resourceGroup);
        assert.equal(body.subscriptionId, world.emulator.subscriptionId);
        assert.equal(typeof body.message, "string");
        assert.ok(Date.parse(String(body.at)) >= evictedAt - 1_000);
      }
      const downtime = Number(bodies[1].downtimeSeconds);
      assert.ok(downtime >= 1 && downtime < 60, `downtime ${downtime} s (a start takes 1 s)`);
      assert.match(String(bodies[1].message), /running again after \d+ s down/);

      // The restart is counted once the cycle that saw it has run.
      const deadline = Date.now() + 15_000;
      let text = "";
      for (;;) {
        text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
        const counted = sample(
          text,
          `spot_restarter_restarts_total{resource_group="${resourceGroup}",vm="backup",result="succeeded"}`,
        );
        const lastCycleMs = (sample(text, "spot_restarter_last_cycle_timestamp_seconds") ?? 0) * 1000;
        if ((counted === 1 && lastCycleMs >= second.at) || Date.now() > deadline) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      const labels = `resource_group="${resourceGroup}",vm="backup"`;
      assert.equal(sample(text, `spot_restarter_evictions_total{${labels}}`), 1, text);
      assert.equal(sample(text, `spot_restarter_restarts_total{${labels},result="succeeded"}`), 1, text);
      assert.equal(sample(text, `spot_restarter_vm_up{${labels}}`), 1);
      assert.equal(sample(text, `spot_restarter_arm_requests_total{operation="start",code="202"}`), 1, text);
      assert.ok((sample(text, `spot_restarter_arm_requests_total{operation="list",code="200"}`) ?? 0) >= 2);
      assert.ok((sample(text, "spot_restarter_cycle_duration_seconds_count") ?? 0) >= 1, text);
      assert.ok((sample(text, "spot_restarter_last_cycle_timestamp_seconds") ?? 0) * 1000 > evictedAt);
      assert.ok(
        (sample(text, "spot_restarter_certificate_expiry_timestamp_seconds") ?? 0) * 1000 > Date.now(),
      );
    } finally {
      running.child.kill("SIGTERM");
    }
    const result = await running.done;
    assert.equal(result.code, 0, result.stderr);
    assert.ok(!`${result.stdout}${result.stderr}`.includes("SECRET"), "no notification URL in any output");
  });
});

describe("run: an owner's deallocation is never announced as an eviction", () => {
  let world: World;
  let ownReceiver: Receiver;
  before(async () => {
    ownReceiver = await startReceiver();
    world = await startWorld(
      [spotVm("worker", { powerState: "running" }), spotVm("backup", { powerState: "running" })],
      {
        startSeconds: 1,
        config: { notifications: [{ type: "webhook", url: `${ownReceiver.origin}${secretPath}` }] },
      },
    );
  });
  after(async () => {
    await world.emulator.stop();
    await ownReceiver.close();
  });

  it("the owner's stop: one vm-left-alone, no vm-evicted; the eviction beside it: vm-evicted then vm-restarted", async () => {
    const running = spawnCli(bundle, ["run", "--config", world.configPath, "--log-format", "json"], {
      caCertFile: world.emulator.caCertFile,
    });
    const received = () =>
      ownReceiver.requests.map((r) => {
        const body = JSON.parse(r.body) as Record<string, unknown>;
        return { event: String(body.event), vm: String(body.vm), body };
      });
    try {
      await running.waitFor(/"event":"run-started"/);
      // Both seen running first (cycles are 1 s apart), so each deallocation is seen live.
      await new Promise((r) => setTimeout(r, 2_000));
      await world.control.deallocate(resourceGroup, "worker", "alice@contoso.com");
      await world.control.evict(resourceGroup, "backup");
      const deadline = Date.now() + 60_000;
      while (Date.now() < deadline) {
        const got = received();
        if (got.some((m) => m.event === "vm-restarted") && got.some((m) => m.event === "vm-left-alone"))
          break;
        await new Promise((r) => setTimeout(r, 200));
      }
      // A few more cycles (1 s apart): nothing more may arrive for the worker.
      await new Promise((r) => setTimeout(r, 4_000));
    } finally {
      running.child.kill("SIGTERM");
    }
    const result = await running.done;
    assert.equal(result.code, 0, result.stderr);
    const got = received();
    const worker = got.filter((m) => m.vm === "worker");
    assert.deepEqual(
      worker.map((m) => m.event),
      ["vm-left-alone"],
      "the owner's stop: left alone, told once, never called an eviction",
    );
    assert.equal(worker[0]?.body.reason, "owner-deallocated");
    assert.match(String(worker[0]?.body.message), /deallocated by its owner/);
    assert.deepEqual(
      got.filter((m) => m.vm === "backup").map((m) => m.event),
      ["vm-evicted", "vm-restarted"],
    );
    assert.equal(got.find((m) => m.event === "vm-evicted")?.body.cause, "evicted");
    assert.equal((await world.control.vm(resourceGroup, "worker"))?.startRequests, 0);
    assert.ok(!`${result.stdout}${result.stderr}`.includes("SECRET"), "no notification URL in any output");
  });
});

describe("once: the textfile for cron", () => {
  let world: World;
  before(async () => {
    world = await startWorld([spotVm("box", { powerState: "running" })], {
      config: { metrics: { textfile: "metrics/spot-restarter.prom" } },
    });
    const { mkdirSync } = await import("node:fs");
    mkdirSync(join(world.dir, "metrics"));
  });
  after(() => world.emulator.stop());

  it("writes the textfile after each once; counters go on across runs", async () => {
    const path = join(world.dir, "metrics", "spot-restarter.prom");
    const once = () =>
      runCli(bundle, ["once", "--config", world.configPath], { caCertFile: world.emulator.caCertFile });
    assert.equal((await once()).code, 0);
    const first = readFileSync(path, "utf8");
    assert.equal(sample(first, `spot_restarter_vm_up{resource_group="${resourceGroup}",vm="box"}`), 1);
    const listsBefore = sample(first, `spot_restarter_arm_requests_total{operation="list",code="200"}`) ?? 0;
    assert.ok(listsBefore >= 1);
    assert.equal((await once()).code, 0);
    const second = readFileSync(path, "utf8");
    assert.equal(
      sample(second, `spot_restarter_arm_requests_total{operation="list",code="200"}`),
      listsBefore * 2,
    );
  });
});

describe("once under cron: account-wide alarms", () => {
  let world: World;
  let hook: Receiver;
  before(async () => {
    hook = await startReceiver();
    world = await startWorld([spotVm("box", { powerState: "running" })], {
      config: {
        notifications: [{ type: "webhook", url: `${hook.origin}${secretPath}`, events: ["auth-failing"] }],
      },
    });
    // A client id Entra ID does not know: every once fails to sign in (exit 3).
    world.writeConfig({ clientId: "0b9f2c47-0000-4000-8000-00000000dead" });
  });
  after(async () => {
    await world.emulator.stop();
    await hook.close();
  });

  it("a failed sign-in notifies auth-failing once, not once a minute", async () => {
    const once = () =>
      runCli(bundle, ["once", "--config", world.configPath], { caCertFile: world.emulator.caCertFile });
    const first = await once();
    assert.equal(first.code, 3, first.stderr);
    // Said once, by the error handler: the notification's event is not logged a second time.
    assert.equal(first.stderr.match(/cannot authenticate/g)?.length, 1, first.stderr);
    const [message] = await hook.waitFor(1, 10_000);
    const body = JSON.parse(message.body) as Record<string, unknown>;
    assert.equal(body.event, "auth-failing");
    assert.equal(body.subscriptionId, world.emulator.subscriptionId);
    assert.match(String(body.message), /cannot authenticate to Entra ID/);
    const second = await once();
    assert.equal(second.code, 3);
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(hook.requests.length, 1, "the repeat gate in the state directory holds across processes");
    assert.ok(!`${first.stderr}${second.stderr}`.includes("SECRET"));
  });
});
