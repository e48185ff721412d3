// The installer, called directly, into temporary roots. Nothing here touches the running system.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { cpSync, existsSync, promises as fs } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { loadConfig } from "../../runtime/src/config/config";
import { install, uninstall } from "../../runtime/src/install/index";
import { skipUnlessTool } from "../helpers/tools";
import {
  allOutput,
  createTestCertificate,
  fakeBundle,
  installOptions,
  recordingHost,
  removeTempDirs,
  stackOutputsFor,
  stdinOf,
  type TestCertificate,
  tempDir,
  walkTree,
  writeStackOutputs,
} from "./fixtures";

const uid = process.getuid?.() ?? 0;
const gid = process.getgid?.() ?? 0;

const EXPECTED_SYSTEMD_TREE: Record<string, { type: string; mode: number }> = {
  "/usr": { type: "directory", mode: 0o755 },
  "/usr/local": { type: "directory", mode: 0o755 },
  "/usr/local/lib": { type: "directory", mode: 0o755 },
  "/usr/local/lib/spot-restarter": { type: "directory", mode: 0o755 },
  "/usr/local/lib/spot-restarter/spot-restarter.cjs": { type: "file", mode: 0o755 },
  "/usr/local/bin": { type: "directory", mode: 0o755 },
  "/usr/local/bin/spot-restarter": { type: "file", mode: 0o755 },
  "/etc": { type: "directory", mode: 0o755 },
  "/etc/spot-restarter": { type: "directory", mode: 0o700 },
  "/etc/spot-restarter/config.json": { type: "file", mode: 0o644 },
  "/etc/spot-restarter/sp.pem": { type: "file", mode: 0o600 },
  "/var": { type: "directory", mode: 0o755 },
  "/var/lib": { type: "directory", mode: 0o755 },
  "/var/lib/spot-restarter": { type: "directory", mode: 0o700 },
  "/etc/systemd": { type: "directory", mode: 0o755 },
  "/etc/systemd/system": { type: "directory", mode: 0o755 },
  "/etc/systemd/system/spot-restarter.service": { type: "file", mode: 0o644 },
};

let certificate: TestCertificate;
let renewedCertificate: TestCertificate;
let outputsFile: string;
let bundlePath: string;

before(async () => {
  [certificate, renewedCertificate] = await Promise.all([createTestCertificate(), createTestCertificate()]);
  outputsFile = await writeStackOutputs(stackOutputsFor(certificate));
  bundlePath = await fakeBundle();
});

after(() => {
  // Every line any installer call printed in this file, successful or not.
  const printed = allOutput.join("");
  for (const keyMaterial of [certificate, renewedCertificate]) {
    for (const line of keyMaterial.keyLines) {
      assert.ok(!printed.includes(line), "a line of the private key appeared in the installer's output");
    }
  }
  assert.ok(
    !printed.includes("PRIVATE KEY-----"),
    "a PEM private key header appeared in the installer's output",
  );
  removeTempDirs();
});

async function installInto(
  root: string,
  extra: Parameters<typeof installOptions>[2] = {},
  file = outputsFile,
) {
  const host = recordingHost({ bundlePath });
  const code = await install(installOptions(root, file, extra), host);
  return { code, host };
}

describe("install into a temporary root", () => {
  test("writes the whole tree with the right types, modes and owners", async () => {
    const root = tempDir("root");
    const { code, host } = await installInto(root);
    assert.equal(code, 0, host.stderrText());
    const tree = await walkTree(root);
    assert.deepEqual(
      [...tree.keys()].sort(),
      Object.keys(EXPECTED_SYSTEMD_TREE).sort(),
      "install wrote exactly the expected paths",
    );
    for (const [path, expected] of Object.entries(EXPECTED_SYSTEMD_TREE)) {
      const entry = tree.get(path);
      assert.equal(entry?.type, expected.type, path);
      assert.equal(entry?.mode.toString(8), expected.mode.toString(8), `mode of ${path}`);
      assert.equal(entry?.uid, uid, `owner of ${path}`);
      assert.equal(entry?.gid, gid, `group of ${path}`);
    }
    assert.deepEqual(
      await fs.readFile(join(root, "usr/local/lib/spot-restarter/spot-restarter.cjs")),
      await fs.readFile(bundlePath),
    );
    assert.equal(await fs.readFile(join(root, "etc/spot-restarter/sp.pem"), "utf8"), certificate.pem);
    const wrapper = await fs.readFile(join(root, "usr/local/bin/spot-restarter"), "utf8");
    assert.match(wrapper, /^#!\/bin\/sh\n/);
    assert.match(
      wrapper,
      /\nexec \/usr\/bin\/node \/usr\/local\/lib\/spot-restarter\/spot-restarter\.cjs "\$@"\n/,
    );
  });

  test("config.json is the runtime config format, and the runtime's loader accepts it", async () => {
    const root = tempDir("root");
    assert.equal((await installInto(root)).code, 0);
    const configPath = join(root, "etc/spot-restarter/config.json");
    assert.deepEqual(JSON.parse(await fs.readFile(configPath, "utf8")), {
      tenantId: "72f988bf-86f1-41af-91ab-2d7cd011db47",
      clientId: "3c2a8d9e-5f41-4b7a-9c6d-1e2f3a4b5c6d",
      subscriptionId: "0b1f6471-1bf0-4dda-aec3-cb9272f09590",
      certificatePath: "sp.pem",
      resourceGroups: ["personal-network"],
      tag: { name: "AttemptRestartAfterEviction", value: "true" },
      intervalSeconds: 30,
      stateDir: "/var/lib/spot-restarter",
    });
    const loaded = await loadConfig(configPath);
    assert.deepEqual(loaded.warnings, []);
    // The key is found beside config.json: in /etc/spot-restarter, in %d, or under --root.
    assert.equal(loaded.config.certificatePath, join(root, "etc/spot-restarter/sp.pem"));
    assert.equal(loaded.config.cloud.armEndpoint, "https://management.azure.com");
  });

  test("fallback sizes reach config.json keyed <resourceGroup>/<vm>, with fallbackAfterSeconds; none, none written", async () => {
    const root = tempDir("root");
    const file = await writeStackOutputs(
      stackOutputsFor(certificate, {
        restartableVms: ["ubuntu-backup-server-spot", "build-box-spot"],
        fallbackSizes: { "build-box-spot": ["Standard_D2as_v5", "Standard_D2s_v5"] },
        fallbackAfterSeconds: 300,
      }),
    );
    assert.equal((await installInto(root, {}, file)).code, 0);
    const configPath = join(root, "etc/spot-restarter/config.json");
    const written = JSON.parse(await fs.readFile(configPath, "utf8"));
    assert.deepEqual(written.fallbackSizes, {
      "personal-network/build-box-spot": ["Standard_D2as_v5", "Standard_D2s_v5"],
    });
    assert.equal(written.fallbackAfterSeconds, 300);
    const loaded = await loadConfig(configPath);
    assert.deepEqual(loaded.warnings, []);
    assert.deepEqual(loaded.config.fallbackSizes, written.fallbackSizes);
    assert.equal(loaded.config.fallbackAfterSeconds, 300);

    // A stack deployed before spot-restarter:fallbackAfterSeconds existed has fallbackSizes only: the default.
    const olderRoot = tempDir("root");
    const older = await writeStackOutputs(
      stackOutputsFor(certificate, {
        restartableVms: ["build-box-spot"],
        fallbackSizes: { "build-box-spot": ["Standard_D2as_v5"] },
      }),
    );
    assert.equal((await installInto(olderRoot, {}, older)).code, 0);
    const olderConfig = JSON.parse(
      await fs.readFile(join(olderRoot, "etc/spot-restarter/config.json"), "utf8"),
    );
    assert.equal(olderConfig.fallbackAfterSeconds, 600);

    // An empty object (the program's output without fallbacks) writes neither field.
    const plainRoot = tempDir("root");
    const plain = await writeStackOutputs(
      stackOutputsFor(certificate, { fallbackSizes: {}, fallbackAfterSeconds: 300 }),
    );
    assert.equal((await installInto(plainRoot, {}, plain)).code, 0);
    const plainConfig = JSON.parse(
      await fs.readFile(join(plainRoot, "etc/spot-restarter/config.json"), "utf8"),
    );
    assert.equal(plainConfig.fallbackSizes, undefined);
    assert.equal(plainConfig.fallbackAfterSeconds, undefined);
  });

  test("a cloud in the stack outputs (sovereign cloud, emulator) reaches config.json; the option overrides it", async () => {
    const cloud = { authorityHost: "https://127.0.0.1:8443", armEndpoint: "https://127.0.0.1:8443" };
    const file = await writeStackOutputs(stackOutputsFor(certificate, { cloud }));
    const root = tempDir("root");
    assert.equal((await installInto(root, {}, file)).code, 0);
    const config = JSON.parse(await fs.readFile(join(root, "etc/spot-restarter/config.json"), "utf8"));
    assert.deepEqual(config.cloud, cloud);

    const override = {
      authorityHost: "https://login.microsoftonline.us",
      armEndpoint: "https://management.usgovcloudapi.net",
      audience: "https://management.usgovcloudapi.net",
    };
    assert.equal((await installInto(root, { cloud: override }, file)).code, 0);
    const overridden = JSON.parse(await fs.readFile(join(root, "etc/spot-restarter/config.json"), "utf8"));
    assert.deepEqual(overridden.cloud, override);
  });

  test("reads the stack outputs from standard input with -", async () => {
    const root = tempDir("root");
    const host = recordingHost({ bundlePath, stdin: stdinOf(JSON.stringify(stackOutputsFor(certificate))) });
    assert.equal(await install(installOptions(root, "-"), host), 0, host.stderrText());
    assert.match(host.stdoutText(), /stack outputs from standard input are complete/);
    assert.equal(await fs.readFile(join(root, "etc/spot-restarter/sp.pem"), "utf8"), certificate.pem);
  });

  test("modes do not depend on the umask (the key is 0600 from creation, public files stay 0644)", async () => {
    for (const umask of [0o000, 0o077]) {
      const previous = process.umask(umask);
      try {
        const root = tempDir("root");
        assert.equal((await installInto(root)).code, 0);
        const tree = await walkTree(root);
        for (const path of [
          "/etc/spot-restarter/sp.pem",
          "/etc/spot-restarter/config.json",
          "/usr/local/bin/spot-restarter",
        ]) {
          assert.equal(
            tree.get(path)?.mode.toString(8),
            EXPECTED_SYSTEMD_TREE[path]?.mode.toString(8),
            `${path} under umask ${umask.toString(8)}`,
          );
        }
        assert.equal(tree.get("/etc/spot-restarter")?.mode.toString(8), "700");
      } finally {
        process.umask(previous);
      }
    }
  });

  test("the unit file is hardened and hands config and key over with LoadCredential=", async () => {
    const root = tempDir("root");
    assert.equal((await installInto(root)).code, 0);
    const unit = await fs.readFile(join(root, "etc/systemd/system/spot-restarter.service"), "utf8");
    for (const line of [
      "Type=simple",
      "ExecStart=/usr/local/bin/spot-restarter run --config %d/config.json",
      "LoadCredential=config.json:/etc/spot-restarter/config.json",
      "LoadCredential=sp.pem:/etc/spot-restarter/sp.pem",
      "Restart=on-failure",
      "DynamicUser=yes",
      "StateDirectory=spot-restarter",
      "NoNewPrivileges=yes",
      "ProtectSystem=strict",
      "ProtectHome=yes",
      "PrivateTmp=yes",
      "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
      "SystemCallFilter=@system-service",
      "CapabilityBoundingSet=",
      "WantedBy=multi-user.target",
    ]) {
      assert.ok(unit.split("\n").includes(line), `unit has ${line}`);
    }
    // Writable: the state directory only (StateDirectory=), nothing else.
    assert.doesNotMatch(unit, /^ReadWritePaths=/m);
    assert.doesNotMatch(unit, /^MemoryDenyWriteExecute=yes/m, "V8 needs W+X memory");
  });

  test("the unit file passes systemd-analyze verify", {
    skip: skipUnlessTool(spawnSync("systemd-analyze", ["--version"]).status === 0, "apt-get install systemd"),
  }, async () => {
    const root = tempDir("root");
    assert.equal((await installInto(root)).code, 0);
    // verify --root resolves the unit's dependencies (sysinit.target, …) inside the root, so give it
    // the distribution's units; ExecStart's /usr/local/bin/spot-restarter is the installed wrapper.
    cpSync("/usr/lib/systemd/system", join(root, "usr/lib/systemd/system"), { recursive: true });
    const result = spawnSync(
      "systemd-analyze",
      ["verify", "--man=no", `--root=${root}`, "/etc/systemd/system/spot-restarter.service"],
      { encoding: "utf8" },
    );
    assert.equal(result.status, 0, result.stderr);
    assert.equal(result.stderr.trim(), "", "systemd-analyze verify has no complaints");
  });

  test("--scheduler cron writes a well-formed /etc/cron.d file instead of the unit", async () => {
    const root = tempDir("root");
    const { code, host } = await installInto(root, { scheduler: "cron" });
    assert.equal(code, 0, host.stderrText());
    const tree = await walkTree(root);
    assert.ok(!tree.has("/etc/systemd/system/spot-restarter.service"));
    assert.equal(tree.get("/etc/cron.d/spot-restarter")?.mode.toString(8), "644");
    const lines = (await fs.readFile(join(root, "etc/cron.d/spot-restarter"), "utf8"))
      .split("\n")
      .filter((line) => line.trim() !== "" && !line.startsWith("#"));
    const jobs = lines.filter((line) => !/^[A-Z_]+=/.test(line));
    const variables = lines.filter((line) => /^[A-Z_]+=/.test(line));
    assert.ok(variables.some((line) => line.startsWith("PATH=") && line.includes("/usr/bin")));
    assert.equal(jobs.length, 1);
    const fields = (jobs[0] ?? "").split(/\s+/);
    assert.deepEqual(fields.slice(0, 5), ["*", "*", "*", "*", "*"], "every minute");
    // Never root: the dedicated system user (issue 17, item 8).
    assert.equal(fields[5], "spot-restarter", "system crontab user field");
    assert.equal(
      fields.slice(6).join(" "),
      "/usr/local/bin/spot-restarter once --config /etc/spot-restarter-cron/config.json 2>&1 | logger -t spot-restarter",
    );
    // cron ignores files with dots in /etc/cron.d; the name must not have any.
    assert.doesNotMatch("spot-restarter", /\./);
    // Switching back to systemd removes the cron job.
    assert.equal((await installInto(root)).code, 0);
    assert.ok(!existsSync(join(root, "etc/cron.d/spot-restarter")));
    assert.ok(existsSync(join(root, "etc/systemd/system/spot-restarter.service")));
  });

  test("extra CA certificates are carried over to the service and the cron job", async () => {
    const caFile = join(tempDir("ca"), "ca.pem");
    await fs.writeFile(caFile, certificate.certificatePem);
    const root = tempDir("root");
    const host = recordingHost({ bundlePath });
    assert.equal(
      await install(installOptions(root, outputsFile, { extraCaCerts: caFile }), host),
      0,
      host.stderrText(),
    );
    assert.equal(
      await fs.readFile(join(root, "etc/spot-restarter/extra-ca.pem"), "utf8"),
      certificate.certificatePem,
    );
    const unit = await fs.readFile(join(root, "etc/systemd/system/spot-restarter.service"), "utf8");
    assert.match(unit, /^LoadCredential=extra-ca\.pem:\/etc\/spot-restarter\/extra-ca\.pem$/m);
    assert.match(unit, /^Environment=NODE_EXTRA_CA_CERTS=%d\/extra-ca\.pem$/m);
    assert.equal((await installInto(root, { scheduler: "cron", extraCaCerts: caFile })).code, 0);
    const cron = await fs.readFile(join(root, "etc/cron.d/spot-restarter"), "utf8");
    assert.match(cron, /^NODE_EXTRA_CA_CERTS=\/etc\/spot-restarter-cron\/extra-ca\.pem$/m);
    // Without one, a later install removes the copy.
    assert.equal((await installInto(root, { scheduler: "cron" })).code, 0);
    assert.ok(!existsSync(join(root, "etc/spot-restarter/extra-ca.pem")));
  });
});

describe("install again", () => {
  test("rewrites nothing that did not change (mtimes and inodes unchanged) and keeps state", async () => {
    const root = tempDir("root");
    assert.equal((await installInto(root)).code, 0);
    await fs.writeFile(join(root, "var/lib/spot-restarter/state.json"), "{}");
    const before = await walkTree(root);
    await new Promise((resolve) => setTimeout(resolve, 20));
    const { code, host } = await installInto(root);
    assert.equal(code, 0, host.stderrText());
    assert.deepEqual(await walkTree(root), before);
    assert.match(host.stdoutText(), /nothing changed/);
    for (const path of [
      "/etc/spot-restarter/sp.pem",
      "/etc/spot-restarter/config.json",
      "/etc/systemd/system/spot-restarter.service",
    ]) {
      assert.match(host.stdoutText(), new RegExp(`unchanged\\s+${path}`));
    }
  });

  test("a renewed certificate replaces the PEM atomically (new inode, still 0600); nothing else changes", async () => {
    const root = tempDir("root");
    assert.equal((await installInto(root)).code, 0);
    const before = await walkTree(root);
    const renewed = await writeStackOutputs(stackOutputsFor(renewedCertificate));
    const { code, host } = await installInto(root, {}, renewed);
    assert.equal(code, 0, host.stderrText());
    const afterTree = await walkTree(root);
    assert.equal(await fs.readFile(join(root, "etc/spot-restarter/sp.pem"), "utf8"), renewedCertificate.pem);
    const pem = afterTree.get("/etc/spot-restarter/sp.pem");
    assert.equal(pem?.mode.toString(8), "600");
    assert.notEqual(
      pem?.ino,
      before.get("/etc/spot-restarter/sp.pem")?.ino,
      "renamed into place, not rewritten",
    );
    for (const [path, entry] of before) {
      if (path === "/etc/spot-restarter/sp.pem" || entry.type === "directory") continue;
      assert.deepEqual(afterTree.get(path), entry, `${path} untouched`);
    }
    assert.match(
      host.stdoutText(),
      /updated\s+\/etc\/spot-restarter\/sp\.pem \(0600, .*contents not shown, changed: content\)/,
    );
    assert.equal([...afterTree.keys()].filter((p) => p.includes("tmp")).length, 0, "no temp files left");
  });

  test("repairs loosened modes: a 0644 key is replaced by a 0600 one, the config dir goes back to 0700", async () => {
    const root = tempDir("root");
    assert.equal((await installInto(root)).code, 0);
    await fs.chmod(join(root, "etc/spot-restarter/sp.pem"), 0o644);
    await fs.chmod(join(root, "etc/spot-restarter"), 0o755);
    const { code, host } = await installInto(root);
    assert.equal(code, 0, host.stderrText());
    const tree = await walkTree(root);
    assert.equal(tree.get("/etc/spot-restarter/sp.pem")?.mode.toString(8), "600");
    assert.equal(tree.get("/etc/spot-restarter")?.mode.toString(8), "700");
    assert.match(host.stdoutText(), /updated\s+\/etc\/spot-restarter\/sp\.pem .*changed: mode/);
  });

  test("an upgraded bundle is replaced", async () => {
    const root = tempDir("root");
    assert.equal((await installInto(root)).code, 0);
    const newer = await fakeBundle("#!/usr/bin/env node\nconsole.log('v2');\n");
    const host = recordingHost({ bundlePath: newer });
    assert.equal(await install(installOptions(root, outputsFile), host), 0);
    assert.equal(
      await fs.readFile(join(root, "usr/local/lib/spot-restarter/spot-restarter.cjs"), "utf8"),
      "#!/usr/bin/env node\nconsole.log('v2');\n",
    );
    assert.match(host.stdoutText(), /updated\s+\/usr\/local\/lib\/spot-restarter\/spot-restarter\.cjs/);
  });
});

describe("--dry-run", () => {
  test("writes nothing and lists every file with its mode, never the key", async () => {
    const root = tempDir("root");
    const host = recordingHost({ bundlePath });
    assert.equal(await install(installOptions(root, outputsFile, { dryRun: true, verify: true }), host), 0);
    assert.deepEqual([...(await walkTree(root)).keys()], []);
    const out = host.stdoutText();
    for (const [path, expected] of Object.entries(EXPECTED_SYSTEMD_TREE)) {
      if (!path.includes("spot-restarter")) continue; // standard parents are not listed
      assert.match(out, new RegExp(`would create\\s+${path} \\(0${expected.mode.toString(8)}`), path);
    }
    assert.match(
      out,
      /\/etc\/spot-restarter\/sp\.pem \(0600, service principal certificate and private key, contents not shown\)/,
    );
    assert.match(out, /would run .*spot-restarter\.cjs doctor --config .*config\.json'? --json/);
    assert.equal(host.commands.length, 0, "no command ran");
    for (const line of certificate.keyLines) assert.ok(!out.includes(line));
  });

  test("on the real host it prints the systemctl commands it would run", async () => {
    const root = tempDir("root");
    const host = recordingHost({ bundlePath, manageServices: true });
    assert.equal(await install(installOptions(root, outputsFile, { dryRun: true }), host), 0);
    assert.match(host.stdoutText(), /would run\s+systemctl daemon-reload/);
    assert.match(host.stdoutText(), /would run\s+systemctl enable --now spot-restarter\.service/);
    assert.equal(host.commands.length, 0);
    assert.deepEqual([...(await walkTree(root)).keys()], []);
  });

  test("uninstall --dry-run removes nothing", async () => {
    const root = tempDir("root");
    assert.equal((await installInto(root)).code, 0);
    const before = await walkTree(root);
    const host = recordingHost();
    assert.equal(await uninstall({ root, keepState: false, dryRun: true }, host), 0);
    assert.deepEqual(await walkTree(root), before);
    assert.match(host.stdoutText(), /would remove\s+\/etc\/spot-restarter\/sp\.pem/);
  });
});

describe("uninstall", () => {
  test("leaves nothing install wrote, the key included", async () => {
    for (const scheduler of ["systemd", "cron"] as const) {
      const root = tempDir("root");
      assert.equal((await installInto(root, { scheduler })).code, 0);
      await fs.writeFile(join(root, "var/lib/spot-restarter/state.json"), "{}");
      // A temp copy of the key left by an install that was killed mid-write.
      await fs.writeFile(join(root, "etc/spot-restarter/.spot-restarter-tmp-sp.pem-abc"), "x", {
        mode: 0o600,
      });
      const host = recordingHost();
      assert.equal(await uninstall({ root, keepState: false, dryRun: false }, host), 0, host.stderrText());
      const files = [...(await walkTree(root))].filter(([, entry]) => entry.type !== "directory");
      assert.deepEqual(files, [], `no file left (${scheduler})`);
      const directories = [...(await walkTree(root)).keys()].filter((path) =>
        path.includes("spot-restarter"),
      );
      assert.deepEqual(directories, [], `no spot-restarter directory left (${scheduler})`);
      assert.match(host.stdoutText(), /removed\s+\/etc\/spot-restarter\/sp\.pem/);
    }
  });

  test("--keep-state keeps /var/lib/spot-restarter", async () => {
    const root = tempDir("root");
    assert.equal((await installInto(root)).code, 0);
    await fs.writeFile(join(root, "var/lib/spot-restarter/state.json"), "{}");
    assert.equal(await uninstall({ root, keepState: true, dryRun: false }, recordingHost()), 0);
    const left = [...(await walkTree(root))]
      .filter(([, entry]) => entry.type !== "directory")
      .map(([p]) => p);
    assert.deepEqual(left, ["/var/lib/spot-restarter/state.json"]);
  });

  test("with nothing installed it says so and succeeds", async () => {
    const host = recordingHost();
    assert.equal(await uninstall({ root: tempDir("root"), keepState: false, dryRun: false }, host), 0);
    assert.match(host.stdoutText(), /nothing to remove/);
  });
});

describe("services on the real host (systemctl faked)", () => {
  test("first install: daemon-reload, enable --now; upgrade: try-restart too; unchanged: no restart", async () => {
    const root = tempDir("root");
    const run = async (file = outputsFile) => {
      const host = recordingHost({ bundlePath, manageServices: true });
      assert.equal(await install(installOptions(root, file), host), 0, host.stderrText());
      return host.commands.map((c) => [c.command, ...c.args].join(" "));
    };
    assert.deepEqual(await run(), [
      "systemctl daemon-reload",
      "systemctl enable --now spot-restarter.service",
    ]);
    assert.deepEqual(await run(), [
      "systemctl daemon-reload",
      "systemctl enable --now spot-restarter.service",
    ]);
    assert.deepEqual(await run(await writeStackOutputs(stackOutputsFor(renewedCertificate))), [
      "systemctl daemon-reload",
      "systemctl try-restart spot-restarter.service",
      "systemctl enable --now spot-restarter.service",
    ]);
  });

  test("switching to cron disables the service first; uninstall disables and reloads", async () => {
    const root = tempDir("root");
    assert.equal((await installInto(root)).code, 0);
    const host = recordingHost({ bundlePath, manageServices: true });
    assert.equal(await install(installOptions(root, outputsFile, { scheduler: "cron" }), host), 0);
    assert.deepEqual(
      host.commands.map((c) => [c.command, ...c.args].join(" ")),
      [
        // The cron job's user (this fake host answers getent with nothing: a --root tree keeps root's files).
        "getent passwd spot-restarter",
        "systemctl disable --now spot-restarter.service",
        "systemctl daemon-reload",
      ],
    );
    assert.equal((await installInto(root)).code, 0);
    const uninstallHost = recordingHost({ manageServices: true });
    assert.equal(await uninstall({ root, keepState: false, dryRun: false }, uninstallHost), 0);
    assert.deepEqual(
      uninstallHost.commands.map((c) => [c.command, ...c.args].join(" ")),
      [
        "systemctl disable --now spot-restarter.service",
        "systemctl daemon-reload",
        "systemctl reset-failed spot-restarter.service",
      ],
    );
  });

  test("a failing systemctl fails the install with a hint", async () => {
    const root = tempDir("root");
    const host = recordingHost({
      bundlePath,
      manageServices: true,
      results: () => ({ code: 1, stdout: "", stderr: "System has not been booted with systemd\n" }),
    });
    assert.equal(await install(installOptions(root, outputsFile), host), 1);
    assert.match(host.stderrText(), /systemctl daemon-reload` failed .*--scheduler cron/);
  });

  test("the systemd scheduler on a host without systemd is refused before writing", async () => {
    const root = tempDir("root");
    const host = recordingHost({ bundlePath, manageServices: true, systemdRunning: false });
    assert.equal(await install(installOptions(root, outputsFile), host), 1);
    assert.match(host.stderrText(), /systemd is not running on this host .*--scheduler cron/);
    assert.deepEqual([...(await walkTree(root)).keys()], []);
  });

  test("installing into / needs root", async () => {
    // A stack outputs file that does not exist: even if the check regressed, nothing would be written to /.
    const host = recordingHost({ bundlePath, isRoot: false });
    assert.equal(await install(installOptions("/", "/nonexistent/outputs.json"), host), 1);
    assert.match(host.stderrText(), /needs root: run it with sudo/);
  });
});

// What `doctor --json` prints (runtime/src/cli/doctor.ts): the installer reads nothing else.
const doctorReport = (checks: Array<{ name: string; status: string; detail: string; fix?: string }>) => ({
  code: checks.some((check) => check.status === "fail") ? 1 : 0,
  stdout: `${JSON.stringify({ passed: !checks.some((check) => check.status === "fail"), checks })}\n`,
  stderr: "",
});
const healthyChecks = [
  { name: "token", status: "pass", detail: "signed in" },
  { name: "resource group personal-network", status: "pass", detail: "exists" },
  { name: "permissions on personal-network", status: "pass", detail: "has all 5 actions" },
  {
    name: "VM personal-network/ubuntu-backup-server-spot",
    status: "pass",
    detail: "Spot, eviction policy Deallocate",
  },
];

describe("verification (doctor through the installed bundle)", () => {
  test("runs the installed bundle's doctor with the new config before enabling, and reports what it found", async () => {
    const root = tempDir("root");
    const host = recordingHost({
      bundlePath,
      manageServices: true,
      results: (command) =>
        command === "/usr/bin/node" ? doctorReport(healthyChecks) : { code: 0, stdout: "", stderr: "" },
    });
    assert.equal(
      await install(installOptions(root, outputsFile, { verify: true }), host),
      0,
      host.stderrText(),
    );
    const [verify, ...systemctl] = host.commands;
    assert.equal(verify?.command, "/usr/bin/node");
    // A private copy of the bundle (never the file in the target tree: issue 17, item 2).
    const [privateBundle, ...rest] = verify?.args ?? [];
    assert.match(privateBundle ?? "", /\/spot-restarter-verify-[^/]+\/spot-restarter\.cjs$/);
    assert.ok(!(privateBundle ?? "").startsWith(root), "not run from the target tree");
    // The unit's command: its config is the credential LoadCredential= hands over (%d = $CREDENTIALS_DIRECTORY).
    const credentials = verify?.env?.CREDENTIALS_DIRECTORY ?? "";
    assert.match(credentials, /\/spot-restarter-verify-[^/]+\/credentials$/);
    assert.deepEqual(rest, ["doctor", "--config", join(credentials, "config.json"), "--json"]);
    assert.ok(!existsSync(credentials), "the credentials copy is removed");
    // A throwaway state dir (the service's is locked while it runs), removed afterwards.
    const stateDir = verify?.env?.SPOT_RESTARTER_STATE_DIR ?? "";
    assert.match(stateDir, /spot-restarter-verify-/);
    assert.ok(!existsSync(stateDir), "the verification's state dir is removed");
    assert.ok(!existsSync(privateBundle ?? ""), "the private copy is removed");
    assert.deepEqual(
      systemctl.map((c) => c.args.join(" ")),
      ["daemon-reload", "enable --now spot-restarter.service"],
    );
    assert.match(host.stdoutText(), /\| ok {3}VM personal-network\/ubuntu-backup-server-spot/);
    assert.match(host.stdoutText(), /ok: doctor passed: .* 1 tagged Spot VM\(s\) restartable/);
  });

  test("a failed check stops before enabling, with doctor's finding, its fix and --no-verify; never 'ok'", async () => {
    const root = tempDir("root");
    const host = recordingHost({
      bundlePath,
      manageServices: true,
      results: () =>
        doctorReport([
          { name: "token", status: "pass", detail: "signed in" },
          {
            name: "resource group personal-network",
            status: "fail",
            detail:
              "does not exist in subscription 0b1f6471-1bf0-4dda-aec3-cb9272f09590 (ResourceGroupNotFound)",
            fix: 'check "resourceGroups" in the config',
          },
        ]),
    });
    assert.equal(await install(installOptions(root, outputsFile, { verify: true }), host), 1);
    assert.equal(
      host.commands.length,
      1,
      "systemctl never ran, and no waiting: waiting cannot create a group",
    );
    assert.match(
      host.stderrText(),
      /verification failed: resource group personal-network: does not exist .*--no-verify/,
    );
    assert.match(host.stdoutText(), /\| FAIL resource group personal-network: does not exist/);
    assert.match(host.stdoutText(), /fix: check "resourceGroups"/);
    assert.doesNotMatch(host.stdoutText(), /ok: /);
  });

  test("output that is not doctor's report (an old or broken bundle) fails, showing it", async () => {
    const root = tempDir("root");
    const host = recordingHost({
      bundlePath,
      manageServices: true,
      results: () => ({ code: 2, stdout: "", stderr: "unknown command doctor\n" }),
    });
    assert.equal(await install(installOptions(root, outputsFile, { verify: true }), host), 1);
    assert.match(host.stdoutText(), /unknown command doctor/);
    assert.match(host.stderrText(), /doctor did not run \(exit code 2/);
  });

  test("waits, with a progress line saying for what, while a new principal and role assignment replicate", async () => {
    const root = tempDir("root");
    let runs = 0;
    const host = recordingHost({
      bundlePath,
      manageServices: true,
      results: (command) => {
        if (command !== "/usr/bin/node") return { code: 0, stdout: "", stderr: "" };
        runs += 1;
        if (runs === 1) {
          // Entra ID's answer right after `pulumi up` (AADSTS700016: application not found in the directory).
          return doctorReport([
            {
              name: "token",
              status: "fail",
              detail:
                'cannot authenticate: application "3c2a8d9e-5f41-4b7a-9c6d-1e2f3a4b5c6d" was not found in the tenant (AADSTS700016); check clientId in the config',
            },
            { name: "resource group personal-network", status: "skip", detail: "needs a token" },
          ]);
        }
        if (runs === 2) {
          return doctorReport([
            { name: "token", status: "pass", detail: "signed in" },
            { name: "resource group personal-network", status: "pass", detail: "exists" },
            {
              name: "permissions on personal-network",
              status: "fail",
              detail:
                "missing Microsoft.Compute/virtualMachines/read (restart: list the resource group's VMs)",
            },
          ]);
        }
        return doctorReport(healthyChecks);
      },
    });
    assert.equal(
      await install(installOptions(root, outputsFile, { verify: true, verifyWaitSeconds: 10 }), host),
      0,
      host.stderrText(),
    );
    assert.equal(runs, 3);
    const out = host.stdoutText();
    assert.match(
      out,
      /waiting for Entra ID to know the new service principal \(AADSTS700016\): \d+ s of at most 10 s \(attempt 1\)/,
    );
    assert.match(
      out,
      /waiting for Azure Resource Manager to apply the new role assignment \(permissions on personal-network\): \d+ s of at most 10 s \(attempt 2\)/,
    );
    assert.match(out, /ok: doctor passed/);
  });

  test("the wait is bounded: still missing afterwards fails, saying how long it waited", async () => {
    const root = tempDir("root");
    const host = recordingHost({
      bundlePath,
      manageServices: true,
      results: () =>
        doctorReport([
          {
            name: "permissions on personal-network",
            status: "fail",
            detail:
              "missing Microsoft.Compute/locations/operations/read (restart: follow a start's operation to its outcome)",
            fix: "grant them",
          },
        ]),
    });
    const started = Date.now();
    assert.equal(
      await install(installOptions(root, outputsFile, { verify: true, verifyWaitSeconds: 2 }), host),
      1,
    );
    assert.ok(Date.now() - started < 10_000, "bounded");
    assert.match(
      host.stderrText(),
      /verification failed: permissions on personal-network: missing Microsoft\.Compute\/locations\/operations\/read .*\(still so after waiting \d+ s\)/,
    );
  });
});

describe("checks of the host", () => {
  test("Node.js older than 22 is refused before anything is written", async () => {
    const root = tempDir("root");
    const host = recordingHost({ bundlePath, nodeVersion: "20.20.2" });
    assert.equal(await install(installOptions(root, outputsFile), host), 1);
    assert.match(
      host.stderrText(),
      /Node\.js 20\.20\.2 is too old: spot-restarter needs Node\.js 22 or newer/,
    );
    assert.deepEqual([...(await walkTree(root)).keys()], []);
  });

  test("install refuses to copy something that is not the bundle", async () => {
    const root = tempDir("root");
    const host = recordingHost({ bundlePath: join(process.cwd(), "runtime/src/cli.ts") });
    assert.equal(await install(installOptions(root, outputsFile), host), 1);
    assert.match(host.stderrText(), /npm run bundle/);
    assert.deepEqual([...(await walkTree(root)).keys()], []);
  });

  test("a Node.js in a home directory is flagged for the hardened service", async () => {
    const root = tempDir("root");
    const host = recordingHost({ bundlePath, nodePath: "/root/.nvm/versions/node/v24.0.0/bin/node" });
    assert.equal(await install(installOptions(root, outputsFile), host), 0);
    assert.match(host.stderrText(), /ProtectHome=yes.*--scheduler cron/);
  });
});

test("systemd-analyze security rates the unit well", {
  skip: spawnSync("systemd-analyze", ["--version"]).status !== 0 && "systemd-analyze not installed",
}, async () => {
  const root = tempDir("root");
  assert.equal((await installInto(root)).code, 0);
  cpSync("/usr/lib/systemd/system", join(root, "usr/lib/systemd/system"), { recursive: true });
  const output = execFileSync(
    "systemd-analyze",
    [
      "security",
      "--offline=yes",
      `--root=${root}`,
      "--no-pager",
      "/etc/systemd/system/spot-restarter.service",
    ],
    { encoding: "utf8" },
  );
  const exposure = Number(/Overall exposure level for .*: (\d+(?:\.\d+)?)/.exec(output)?.[1]);
  assert.ok(exposure <= 2, `exposure ${exposure} (systemd's scale: 0 best, 10 worst)\n${output}`);
});
