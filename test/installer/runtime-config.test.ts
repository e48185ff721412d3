// What install writes for the runtime and what the runtime reads, held together: the config file
// (every field one the runtime knows), the state directory, and the variable verification overrides it with.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { overridesFromEnv, parseConfig } from "../../runtime/src/config/config";
import { PATHS, renderRuntimeConfig, STATE_DIR_ENV } from "../../runtime/src/install/layout";
import type { StackOutputs } from "../../runtime/src/install/stackOutputs";

const outputs: StackOutputs = {
  tenantId: "72f988bf-86f1-41af-91ab-2d7cd011db47",
  subscriptionId: "0b1f6471-1bf0-4dda-aec3-cb9272f09590",
  clientId: "3c2a8d9e-5f41-4b7a-9c6d-1e2f3a4b5c6d",
  resourceGroupName: "personal-network",
  restartTag: { name: "AttemptRestartAfterEviction", value: "true" },
  restartableVms: ["backup"],
  certificatePem: "(not read by renderRuntimeConfig)",
  certificateExpiresOn: "2027-01-01T00:00:00Z",
  notifications: [{ type: "ntfy", url: "https://ntfy.sh/some-topic", events: ["vm-evicted"] }],
  fallbackSizes: { backup: ["Standard_B2ms"] },
  fallbackAfterSeconds: 90,
};
const configPath = "/etc/spot-restarter/config.json";

describe("the runtime config install writes", () => {
  test("every field, with notifications, fallbacks and a cloud, is one the runtime knows (no warning)", () => {
    const written = JSON.parse(
      renderRuntimeConfig(outputs, {
        authorityHost: "https://login.microsoftonline.us",
        armEndpoint: "https://management.usgovcloudapi.net",
        audience: "https://management.usgovcloudapi.net",
      }),
    );
    const loaded = parseConfig(written, configPath);
    assert.deepEqual(loaded.warnings, []);
    assert.equal(loaded.config.certificatePath, "/etc/spot-restarter/sp.pem");
    assert.deepEqual(loaded.config.fallbackSizes, { "personal-network/backup": ["Standard_B2ms"] });
    assert.equal(loaded.config.fallbackAfterSeconds, 90);
  });

  test("resourceGroups comes from the stack's one list of scopes (names in its subscription); an older stack has resourceGroupName alone", () => {
    const sub = outputs.subscriptionId;
    const written = JSON.parse(
      renderRuntimeConfig(
        {
          ...outputs,
          resourceGroups: [
            `/subscriptions/${sub}/resourceGroups/personal-network`,
            `/subscriptions/${sub.toUpperCase()}/resourceGroups/build-rg`,
          ],
          restartableVms: ["backup", "build-rg/box"],
          fallbackSizes: { "build-rg/box": ["Standard_D2as_v5"] },
        },
        undefined,
      ),
    );
    assert.deepEqual(written.resourceGroups, ["personal-network", "build-rg"]);
    const loaded = parseConfig(written, configPath);
    assert.deepEqual(loaded.config.resourceGroups, ["personal-network", "build-rg"]);
    assert.deepEqual(loaded.config.fallbackSizes, { "build-rg/box": ["Standard_D2as_v5"] });
    const { resourceGroups: _, ...older } = outputs;
    assert.deepEqual(JSON.parse(renderRuntimeConfig(older, undefined)).resourceGroups, ["personal-network"]);
  });

  test("a group of another subscription is written as its id, and a VM there keyed by it in fallbackSizes", () => {
    const other = "44444444-4444-4444-8444-444444444444";
    const lab = `/subscriptions/${other}/resourceGroups/lab`;
    const written = JSON.parse(
      renderRuntimeConfig(
        {
          ...outputs,
          resourceGroups: [`/subscriptions/${outputs.subscriptionId}/resourceGroups/personal-network`, lab],
          restartableVms: ["backup", `${lab}/providers/Microsoft.Compute/virtualMachines/lab-1`],
          fallbackSizes: {
            [`${lab}/providers/Microsoft.Compute/virtualMachines/lab-1`]: ["Standard_D2as_v5"],
          },
        },
        undefined,
      ),
    );
    assert.deepEqual(written.resourceGroups, ["personal-network", lab]);
    const loaded = parseConfig(written, configPath);
    assert.deepEqual(loaded.warnings, []);
    assert.deepEqual(loaded.config.resourceGroups, ["personal-network", lab]);
    assert.deepEqual(loaded.config.fallbackSizes, { [`${lab}/lab-1`]: ["Standard_D2as_v5"] });
  });

  test("fallbackAfterSeconds comes from the stack; an older stack without it gets the runtime's default", () => {
    const runtimeDefault = parseConfig(
      { ...JSON.parse(renderRuntimeConfig(outputs, undefined)), fallbackAfterSeconds: undefined },
      configPath,
    ).config.fallbackAfterSeconds;
    const { fallbackAfterSeconds: _, ...older } = outputs;
    const written = JSON.parse(renderRuntimeConfig(older, undefined));
    assert.equal(written.fallbackAfterSeconds, runtimeDefault);
    assert.equal(runtimeDefault, 600);
    // 0 (resize at the first capacity failure) is a value, not "unset".
    const zero = JSON.parse(renderRuntimeConfig({ ...outputs, fallbackAfterSeconds: 0 }, undefined));
    assert.equal(parseConfig(zero, configPath).config.fallbackAfterSeconds, 0);
  });

  test("without fallback sizes, fallbackAfterSeconds (always in the stack) is not written: it would mean nothing", () => {
    const written = JSON.parse(renderRuntimeConfig({ ...outputs, fallbackSizes: {} }, undefined));
    assert.equal(written.fallbackSizes, undefined);
    assert.equal(written.fallbackAfterSeconds, undefined);
  });

  test("names the state directory install prepares, which is also the runtime's default", () => {
    const loaded = parseConfig(JSON.parse(renderRuntimeConfig(outputs, undefined)), configPath);
    assert.equal(loaded.config.stateDir, PATHS.stateDir);
    const { stateDir: _, ...withoutStateDir } = JSON.parse(renderRuntimeConfig(outputs, undefined));
    assert.equal(parseConfig(withoutStateDir, configPath).config.stateDir, PATHS.stateDir);
  });

  test("the variable verification sets to use a throwaway state directory is the one the runtime reads", () => {
    const written = JSON.parse(renderRuntimeConfig(outputs, undefined));
    const loaded = parseConfig(
      written,
      configPath,
      overridesFromEnv({ [STATE_DIR_ENV]: "/tmp/spot-restarter-verify-x/state" }),
    );
    assert.equal(loaded.config.stateDir, "/tmp/spot-restarter-verify-x/state");
  });
});
