// Config validation: pure functions, no mocks. Exact messages, because they are the user interface.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  configWarnings,
  parseConfig,
  parseRestartableVm,
  restartScopes,
  validateDays,
  validateFallbackAfterSeconds,
  validateFallbackSizes,
  validateNotifications,
  validateResourceGroupName,
  validateRestartableVms,
  validateRoleMode,
  validateVmName,
} from "../../config";
import { configSchema } from "../../runtime/src/config/configSchema";

const valid = { resourceGroupName: "personal-network" };
const OTHER_SUB = "44444444-4444-4444-8444-444444444444";

describe("parseConfig", () => {
  it("applies the docs/architecture.md defaults", () => {
    assert.deepEqual(parseConfig(valid, "dev"), {
      resourceGroupName: "personal-network",
      restartableVms: [],
      roleMode: "contributor",
      certificateValidityDays: 365,
      certificateRenewalDays: 30,
      principalName: "spot-restarter-dev",
      notifications: [],
      fallbackSizes: {},
      fallbackAfterSeconds: 600,
      allowSimulateEviction: false,
    });
  });

  it("takes every key as Pulumi hands it over (strings, arrays as JSON)", () => {
    assert.deepEqual(
      parseConfig(
        {
          resourceGroupName: "rg",
          restartableVms: '["ubuntu-backup-server-spot","build_box.2"]',
          roleMode: "least-privilege",
          certificateValidityDays: "90",
          certificateRenewalDays: "14",
          principalName: "my restarter",
          fallbackAfterSeconds: "120",
          allowSimulateEviction: "true",
        },
        "prod",
      ),
      {
        resourceGroupName: "rg",
        restartableVms: ["ubuntu-backup-server-spot", "build_box.2"],
        roleMode: "least-privilege",
        certificateValidityDays: 90,
        certificateRenewalDays: 14,
        principalName: "my restarter",
        notifications: [],
        fallbackSizes: {},
        fallbackAfterSeconds: 120,
        allowSimulateEviction: true,
      },
    );
  });

  it("rejects an allowSimulateEviction that is not true or false, naming the key and the fix", () => {
    assert.throws(() => parseConfig({ resourceGroupName: "rg", allowSimulateEviction: "yes" }, "dev"), {
      message:
        'spot-restarter:allowSimulateEviction must be true or false, got "yes". Fix: pulumi config set allowSimulateEviction false',
    });
  });

  it("rejects a missing resourceGroupName", () => {
    assert.throws(() => parseConfig({}, "dev"), {
      message:
        "spot-restarter:resourceGroupName is required: the resource group that holds your Spot VMs. " +
        "Fix: pulumi config set resourceGroupName <group>",
    });
    assert.throws(() => parseConfig({ resourceGroupName: "  " }, "dev"), /resourceGroupName is required/);
  });

  it("rejects validity not greater than renewal", () => {
    const message =
      "spot-restarter:certificateValidityDays (30) must be greater than spot-restarter:certificateRenewalDays (30), " +
      "or every `pulumi up` would re-issue the certificate. " +
      "Fix: pulumi config set certificateValidityDays 365 && pulumi config set certificateRenewalDays 30";
    assert.throws(
      () => parseConfig({ ...valid, certificateValidityDays: "30", certificateRenewalDays: "30" }, "dev"),
      { message },
    );
    assert.throws(
      () => parseConfig({ ...valid, certificateValidityDays: "20" }, "dev"),
      /certificateValidityDays \(20\) must be greater than spot-restarter:certificateRenewalDays \(30\)/,
    );
  });

  it('derives principalName when it is "" (Pulumi.yaml\'s default) or unset', () => {
    assert.equal(parseConfig({ ...valid, principalName: "" }, "home").principalName, "spot-restarter-home");
    assert.equal(
      parseConfig({ ...valid, principalName: undefined }, "home").principalName,
      "spot-restarter-home",
    );
  });

  it("rejects a blank principalName", () => {
    assert.throws(() => parseConfig({ ...valid, principalName: " " }, "dev"), {
      message:
        'spot-restarter:principalName must be a non-blank display name without control characters, got " ". ' +
        'Fix: pulumi config rm principalName (default "spot-restarter-dev")',
    });
  });
});

describe("validateResourceGroupName", () => {
  it("accepts Azure's characters", () => {
    for (const name of ["rg", "Personal_Network(prod).1", "ä-gruppe", "x".repeat(90)]) {
      assert.equal(validateResourceGroupName(name), name);
    }
  });
  it("rejects names Azure rejects", () => {
    for (const name of ["ends.", "has space", "slash/", "x".repeat(91)]) {
      assert.throws(() => validateResourceGroupName(name), {
        message:
          `spot-restarter:resourceGroupName "${name}" is not a valid resource group name: use 1-90 letters, digits, ` +
          "'_', '(', ')', '-' or '.', not ending in '.'. Fix: pulumi config set resourceGroupName <group>",
      });
    }
  });
});

describe("validateVmName", () => {
  it("accepts 1-64 letters, digits, '-', '_', '.' starting alphanumeric", () => {
    for (const name of ["a", "9", "ubuntu-backup-server-spot", "build_box.2", "vm_", "a".repeat(64)]) {
      assert.equal(validateVmName(name, 0), name);
    }
  });

  it("rejects names that break Azure's rules, naming the entry and the fix", () => {
    for (const name of [
      "",
      "-vm",
      "_vm",
      ".vm",
      "vm-",
      "vm.",
      "my vm",
      "vm/1",
      "vm@x",
      "ü",
      "a".repeat(65),
    ]) {
      assert.throws(() => validateVmName(name, 3), {
        message:
          `spot-restarter:restartableVms[3] "${name}" is not a valid Azure VM name: use 1-64 letters, digits, ` +
          "'-', '_' or '.', starting with a letter or digit and not ending with '.' or '-'. " +
          "Fix: pulumi config set --path 'restartableVms[3]' <vm-name>",
      });
    }
  });

  it("rejects non-strings", () => {
    assert.throws(() => validateVmName(42, 1), {
      message:
        "spot-restarter:restartableVms[1] must be a VM name (a string), got 42. " +
        "Fix: pulumi config set --path 'restartableVms[1]' <vm-name>",
    });
  });

  it("agrees with the rule on arbitrary strings (property)", () => {
    const rule = (s: string) =>
      s.length >= 1 &&
      s.length <= 64 &&
      /^[A-Za-z0-9_.-]*$/.test(s) &&
      /^[A-Za-z0-9]/.test(s) &&
      !s.endsWith(".") &&
      !s.endsWith("-");
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom(..."aZ09-_. /é".split("")), maxLength: 70 }), (s) => {
        let accepted = true;
        try {
          validateVmName(s, 0);
        } catch {
          accepted = false;
        }
        return accepted === rule(s);
      }),
    );
  });
});

describe("validateRestartableVms", () => {
  it("defaults to an empty list", () => {
    assert.deepEqual(validateRestartableVms(undefined), []);
    assert.deepEqual(validateRestartableVms("[]"), []);
  });

  it("rejects duplicates, case-insensitively like Azure", () => {
    assert.throws(() => validateRestartableVms('["vm1","vm2","VM1"]'), {
      message:
        'spot-restarter:restartableVms lists "VM1" twice (entries 0 and 2 name the same VM; Azure VM and resource ' +
        "group names are case-insensitive). Fix: pulumi config rm --path 'restartableVms[2]'",
    });
  });

  it("takes name, group/name and a full VM id (issue 28), each as written", () => {
    const entries = [
      "ubuntu-backup-server-spot",
      "build-rg/build-box-spot",
      `/subscriptions/${OTHER_SUB}/resourceGroups/Lab/providers/Microsoft.Compute/virtualMachines/lab-1`,
    ];
    assert.deepEqual(validateRestartableVms(JSON.stringify(entries), "personal-network"), entries);
    assert.deepEqual(
      entries.map((entry, index) => parseRestartableVm(entry, index, "personal-network")),
      [
        { entry: entries[0], resourceGroup: "personal-network", name: "ubuntu-backup-server-spot" },
        { entry: entries[1], resourceGroup: "build-rg", name: "build-box-spot" },
        { entry: entries[2], subscriptionId: OTHER_SUB, resourceGroup: "Lab", name: "lab-1" },
      ],
    );
  });

  it("refuses one VM written twice in two forms or cases (name vs own-group/name, group case, id case)", () => {
    const twice = (list: string[]) => () => validateRestartableVms(JSON.stringify(list), "personal-network");
    assert.throws(twice(["vm1", "Personal-Network/VM1"]), {
      message:
        'spot-restarter:restartableVms lists "Personal-Network/VM1" twice (entries 0 and 1 name the same VM; ' +
        "Azure VM and resource group names are case-insensitive). Fix: pulumi config rm --path 'restartableVms[1]'",
    });
    assert.throws(twice(["build-rg/box", "BUILD-RG/Box"]), /entries 0 and 1 name the same VM/);
    const id = `/subscriptions/${OTHER_SUB}/resourceGroups/lab/providers/Microsoft.Compute/virtualMachines/lab-1`;
    assert.throws(
      twice([id, id.toUpperCase().replace("/SUBSCRIPTIONS/", "/subscriptions/")]),
      /entries 0 and 1/,
    );
    // The same name in two groups is two VMs.
    assert.deepEqual(validateRestartableVms('["box","build-rg/box"]', "personal-network"), [
      "box",
      "build-rg/box",
    ]);
  });

  it("names the entry and the fix for a malformed group/name or id", () => {
    assert.throws(() => validateRestartableVms('["ok","a/b/c"]', "rg"), {
      message:
        'spot-restarter:restartableVms[1] "a/b/c" is not <resource-group>/<vm-name>: expected a VM name (in ' +
        "resourceGroupName), <resource-group>/<vm-name>, or a full VM id " +
        "(/subscriptions/<id>/resourceGroups/<group>/providers/Microsoft.Compute/virtualMachines/<name>). " +
        "Fix: pulumi config set --path 'restartableVms[1]' build-rg/build-box-spot",
    });
    assert.throws(() => validateRestartableVms('["rg./vm"]', "rg"), /restartableVms\[0\] "rg\.\/vm" is not/);
    assert.throws(
      () =>
        validateRestartableVms(
          '["/subscriptions/x/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/v"]',
          "rg",
        ),
      {
        message:
          'spot-restarter:restartableVms[0] "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/v" ' +
          "is not a VM resource id: expected /subscriptions/<subscription-id>/resourceGroups/<group>/providers/" +
          "Microsoft.Compute/virtualMachines/<name> (as `az vm show -g <group> -n <name> --query id -o tsv` prints it). " +
          "Fix: pulumi config set --path 'restartableVms[0]' <vm-id>",
      },
    );
  });
});

describe("restartScopes", () => {
  it("is resourceGroupName first, then each other group holding a listed VM once, in list order", () => {
    const restartableVms = [
      "a",
      "build-rg/b",
      "Build-RG/c",
      "personal-network/d",
      `/subscriptions/${OTHER_SUB}/resourceGroups/build-rg/providers/Microsoft.Compute/virtualMachines/e`,
    ];
    assert.deepEqual(restartScopes({ resourceGroupName: "personal-network", restartableVms }), [
      { resourceGroup: "personal-network" },
      { resourceGroup: "build-rg" },
      { subscriptionId: OTHER_SUB, resourceGroup: "build-rg" },
    ]);
    assert.deepEqual(restartScopes({ resourceGroupName: "personal-network", restartableVms: [] }), [
      { resourceGroup: "personal-network" },
    ]);
  });

  it("rejects a value that is not a list", () => {
    const fix =
      "Fix: pulumi config rm restartableVms && pulumi config set --path 'restartableVms[0]' <vm-name>";
    assert.throws(() => validateRestartableVms("vm1"), {
      message: `spot-restarter:restartableVms must be a list of VM names, got "vm1". ${fix}`,
    });
    assert.throws(() => validateRestartableVms('{"a":1}'), {
      message: `spot-restarter:restartableVms must be a list of VM names, got {"a":1}. ${fix}`,
    });
  });

  it("rejects an invalid entry by its index", () => {
    assert.throws(() => validateRestartableVms('["ok","bad-"]'), /restartableVms\[1\] "bad-" is not a valid/);
  });
});

describe("validateRoleMode", () => {
  it("accepts the two modes and defaults to contributor", () => {
    assert.equal(validateRoleMode(undefined), "contributor");
    assert.equal(validateRoleMode("contributor"), "contributor");
    assert.equal(validateRoleMode("least-privilege"), "least-privilege");
  });
  it("rejects anything else", () => {
    assert.throws(() => validateRoleMode("owner"), {
      message:
        'spot-restarter:roleMode "owner" is not a role mode: use "contributor" or "least-privilege". ' +
        "Fix: pulumi config set roleMode least-privilege",
    });
    assert.throws(() => validateRoleMode("Contributor"), /"Contributor" is not a role mode/);
  });
});

describe("validateDays", () => {
  it("parses whole numbers in range", () => {
    assert.equal(validateDays("certificateValidityDays", "365", 365, 2, 3650), 365);
    assert.equal(validateDays("certificateValidityDays", undefined, 365, 2, 3650), 365);
  });
  it("rejects numbers out of range, fractions and text", () => {
    for (const raw of ["0", "1", "3651", "-5", "36.5", "1e3", "abc", "0x10"]) {
      assert.throws(() => validateDays("certificateValidityDays", raw, 365, 2, 3650), {
        message:
          `spot-restarter:certificateValidityDays must be a whole number of days from 2 to 3650, got ${JSON.stringify(raw)}. ` +
          "Fix: pulumi config set certificateValidityDays 365",
      });
    }
  });
  it("is what parseConfig uses for both numbers", () => {
    assert.throws(() => parseConfig({ ...valid, certificateRenewalDays: "0" }, "dev"), {
      message:
        'spot-restarter:certificateRenewalDays must be a whole number of days from 1 to 3649, got "0". ' +
        "Fix: pulumi config set certificateRenewalDays 30",
    });
    assert.throws(
      () => parseConfig({ ...valid, certificateValidityDays: "99999" }, "dev"),
      /certificateValidityDays must be a whole number of days from 2 to 3650, got "99999"/,
    );
  });
});

describe("validateNotifications", () => {
  const secret = "https://hooks.slack.com/services/T0SECRET/B0SECRET/xoxsecret";
  it("unset is no channel; a list passes through as the runtime config's objects", () => {
    assert.deepEqual(validateNotifications(undefined), []);
    assert.deepEqual(
      validateNotifications(
        JSON.stringify([
          { type: "slack", url: secret },
          { type: "webhook", url: "http://10.0.0.5/hook", events: ["vm-evicted"] },
        ]),
      ),
      [
        { type: "slack", url: secret },
        { type: "webhook", url: "http://10.0.0.5/hook", events: ["vm-evicted"] },
      ],
    );
  });
  it("names the entry and the fix, and never shows a URL", () => {
    const cases: Array<[unknown, RegExp]> = [
      [
        [{ type: "email", url: secret }],
        /^spot-restarter:notifications\[0\]\.type must be one of webhook, ntfy, slack, discord, teams, got "email"\. Fix: pulumi config set --path 'notifications\[0\]\.type' ntfy$/,
      ],
      [
        [{ type: "slack", url: secret.replace("https", "ftp") }],
        /^spot-restarter:notifications\[0\]\.url must be an https:\/\/ \(or http:\/\/\) URL \(value not shown: it is a secret\)\. Fix: pulumi config set --secret --path 'notifications\[0\]\.url' <url>$/,
      ],
      [
        [
          { type: "slack", url: secret },
          { type: "ntfy", url: `x${secret}` },
        ],
        /notifications\[1\]\.url must be/,
      ],
      [
        [{ type: "slack", url: secret, events: ["vm-exploded"] }],
        /notifications\[0\]\.events must be a non-empty list of vm-evicted, /,
      ],
      [{ type: "slack", url: secret }, /must be a list of channels, got an object/],
    ];
    for (const [value, expected] of cases) {
      assert.throws(
        () => validateNotifications(JSON.stringify(value)),
        (error: Error) => {
          assert.match(error.message, expected);
          assert.ok(!error.message.includes("SECRET"), error.message);
          return true;
        },
      );
    }
    assert.throws(
      () => validateNotifications(`[{"url": "${secret}"`),
      (error: Error) => !error.message.includes("SECRET"),
    );
  });
});

describe("validateFallbackSizes", () => {
  const vms = ["build-box-spot", "db.primary"];

  it("unset is none; an object of VM -> sizes passes, keyed by the restartableVms spelling", () => {
    assert.deepEqual(validateFallbackSizes(undefined, vms), {});
    assert.deepEqual(validateFallbackSizes("", vms), {});
    // As `pulumi config set --path 'fallbackSizes.Build-Box-Spot[0]' Standard_D2as_v5` leaves it (JSON text).
    assert.deepEqual(
      validateFallbackSizes(
        '{"Build-Box-Spot":["Standard_D2as_v5","Standard_E4-2ds_v5","Standard_B2s"]}',
        vms,
      ),
      { "build-box-spot": ["Standard_D2as_v5", "Standard_E4-2ds_v5", "Standard_B2s"] },
    );
  });

  it("refuses a VM that is not in restartableVms, naming the field and both fixes", () => {
    assert.throws(() => validateFallbackSizes('{"web":["Standard_D2as_v5"]}', vms), {
      message:
        'spot-restarter:fallbackSizes.web: "web" is not in spot-restarter:restartableVms; only VMs the runtime restarts are resized. ' +
        "Fix: pulumi config set --path 'restartableVms[2]' web, or pulumi config rm --path 'fallbackSizes.web'",
    });
  });

  it("refuses anything but a non-empty list of distinct size names, naming the entry", () => {
    assert.throws(() => validateFallbackSizes('["Standard_D2as_v5"]', vms), {
      message:
        'spot-restarter:fallbackSizes must be an object from VM name to a list of VM sizes, got ["Standard_D2as_v5"]. ' +
        "Fix: pulumi config rm fallbackSizes && pulumi config set --path 'fallbackSizes.<vm-name>[0]' Standard_D2as_v5",
    });
    assert.throws(() => validateFallbackSizes('{"build-box-spot":[]}', vms), {
      message:
        "spot-restarter:fallbackSizes.build-box-spot must be a non-empty list of VM sizes, got []. " +
        "Fix: pulumi config set --path 'fallbackSizes.build-box-spot[0]' Standard_D2as_v5",
    });
    assert.throws(() => validateFallbackSizes('{"db.primary":["Standard_D2as_v5","D4s v5"]}', vms), {
      message:
        'spot-restarter:fallbackSizes.db.primary[1] "D4s v5" is not an Azure VM size name: expected one like ' +
        "Standard_D2as_v5 (as `az vm list-sizes` prints it). Fix: pulumi config set --path 'fallbackSizes[\"db.primary\"][1]' Standard_D2as_v5",
    });
    assert.throws(() => validateFallbackSizes('{"build-box-spot":["Standard_B2s","Standard_B2S"]}', vms), {
      message:
        "spot-restarter:fallbackSizes.build-box-spot lists Standard_B2S twice. Fix: pulumi config rm --path 'fallbackSizes.build-box-spot[1]'",
    });
    assert.throws(
      () => validateFallbackSizes("{nope", vms),
      /Error: spot-restarter:fallbackSizes must be an object/,
    );
  });

  it("parseConfig checks it against restartableVms", () => {
    assert.throws(
      () => parseConfig({ ...valid, fallbackSizes: '{"build-box-spot":["Standard_D2as_v5"]}' }, "dev"),
      /is not in spot-restarter:restartableVms/,
    );
    assert.deepEqual(
      parseConfig(
        {
          ...valid,
          restartableVms: '["build-box-spot"]',
          fallbackSizes: '{"build-box-spot":["Standard_D2as_v5"]}',
        },
        "dev",
      ).fallbackSizes,
      { "build-box-spot": ["Standard_D2as_v5"] },
    );
  });
});

describe("validateFallbackAfterSeconds", () => {
  it("unset is the runtime's default; whole seconds from 0 to 86400 pass as numbers", () => {
    assert.equal(validateFallbackAfterSeconds(undefined), 600);
    assert.equal(validateFallbackAfterSeconds(""), 600);
    assert.equal(validateFallbackAfterSeconds("0"), 0);
    assert.equal(validateFallbackAfterSeconds("86400"), 86_400);
    assert.equal(validateFallbackAfterSeconds(" 90 "), 90);
  });

  it("refuses anything else, naming the key, the range and the fix", () => {
    for (const raw of ["-1", "86401", "1.5", "10m", "1e3", "true"]) {
      assert.throws(() => validateFallbackAfterSeconds(raw), {
        message:
          `spot-restarter:fallbackAfterSeconds must be a whole number of seconds from 0 to 86400, got ${JSON.stringify(raw)}. ` +
          "Fix: pulumi config set fallbackAfterSeconds 600",
      });
    }
    assert.throws(
      () => parseConfig({ ...valid, fallbackAfterSeconds: "ten minutes" }, "dev"),
      /^Error: spot-restarter:fallbackAfterSeconds must be a whole number of seconds/,
    );
  });

  it("accepts exactly what the runtime config's fallbackAfterSeconds accepts (the installer copies it)", () => {
    const runtimeDefault = configSchema.shape.fallbackAfterSeconds.parse(undefined);
    assert.equal(validateFallbackAfterSeconds(undefined), runtimeDefault);
    fc.assert(
      fc.property(fc.integer({ min: -1_000, max: 200_000 }), (seconds) => {
        const runtime = configSchema.shape.fallbackAfterSeconds.safeParse(seconds).success;
        let program: boolean;
        try {
          program = validateFallbackAfterSeconds(String(seconds)) === seconds;
        } catch {
          program = false;
        }
        return runtime === program;
      }),
      { examples: [[-1], [0], [86_400], [86_401]] },
    );
  });
});

describe("configWarnings", () => {
  it("fallbackAfterSeconds set without any fallbackSizes does nothing, and says so with the fix", () => {
    const config = parseConfig({ ...valid, fallbackAfterSeconds: "120" }, "dev");
    assert.deepEqual(configWarnings(config), [
      "spot-restarter:fallbackAfterSeconds is 120, but no VM has spot-restarter:fallbackSizes, so nothing is ever " +
        "resized and it has no effect. Fix: pulumi config set --path 'fallbackSizes.<vm-name>[0]' Standard_D2as_v5, " +
        "or pulumi config rm fallbackAfterSeconds",
    ]);
  });

  it("no warning for the default (the CLI always hands it over) or with fallback sizes", () => {
    assert.deepEqual(configWarnings(parseConfig(valid, "dev")), []);
    assert.deepEqual(configWarnings(parseConfig({ ...valid, fallbackAfterSeconds: "600" }, "dev")), []);
    const withFallbacks = parseConfig(
      {
        ...valid,
        restartableVms: '["build-box-spot"]',
        fallbackSizes: '{"build-box-spot":["Standard_D2as_v5"]}',
        fallbackAfterSeconds: "120",
      },
      "dev",
    );
    assert.deepEqual(configWarnings(withFallbacks), []);
  });
});
