// Issue 23, item 1: every installed schedule runs, and install proves it. The installed cron line and the
// unit's ExecStart= are read back from the files install wrote and run here as the scheduler runs them:
// cron's line through /bin/sh -c as its user with only the cron file's environment; the unit's command as
// an unprivileged uid without a passwd entry (DynamicUser=) with the credentials copied into a private
// directory (LoadCredential=, $CREDENTIALS_DIRECTORY). The installed tree is bind-mounted at the paths the
// files name, in a private mount namespace (unshare -m), so both run verbatim. Against the emulator: the
// evicted tagged VM is started, the one its owner stopped is left alone. Needs root (runuser, setpriv).
import "reflect-metadata";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { chmodSync, chownSync, existsSync, promises as fs, mkdirSync, rmdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { startTestEmulator, type TestEmulator } from "../../emulator/testing";
import { defaultRunCommand } from "../../runtime/src/install/host";
import { install } from "../../runtime/src/install/index";
import { buildRuntimeBundle } from "../../support/bundle";
import { runProcess, spawnProcess } from "../../support/process";
import { resourceGroup, spotVm, stackOutputs } from "../../support/world";
import { skipUnlessTool } from "../helpers/tools";
import {
  ensureServiceUser,
  installOptions,
  recordingHost,
  removeTempDirs,
  runBundle,
  tempDir,
  writeStackOutputs,
} from "./fixtures";

// util-linux (runuser, setpriv, unshare, mount) and passwd (useradd): promised by .ci/run like unshare.
const tools = ["runuser", "setpriv", "unshare", "useradd", "mount"];
const missing = tools.filter((tool) => spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0);
const skip =
  process.getuid?.() !== 0
    ? "needs root (runs the jobs as their users, in a private mount namespace)"
    : skipUnlessTool(missing.length === 0, `util-linux and passwd (missing: ${missing.join(", ")})`);

/** A uid in systemd's DynamicUser= range (61184–65519, systemd.exec(5)) with no passwd entry, as there. */
const DYNAMIC_UID = 61_999;
const DEADLINE_MS = 60_000;

let bundle: string;
const emulators: TestEmulator[] = [];
/** Mount points made on this host for the namespace's bind mounts (removed afterwards if made here). */
const madeMountPoints: string[] = [];

before(async () => {
  if (skip) return;
  bundle = await buildRuntimeBundle();
  ensureServiceUser();
  for (const path of ["/etc/spot-restarter-cron", "/var/lib/spot-restarter"]) {
    if (!existsSync(path)) {
      mkdirSync(path, { mode: 0o755 });
      madeMountPoints.push(path);
    }
  }
});

after(async () => {
  await Promise.all(emulators.map((t) => t.emulator.stop()));
  for (const path of madeMountPoints) rmdirSync(path);
  removeTempDirs();
});

/** A fresh emulator: one evicted and one owner-stopped tagged Spot VM; the stack outputs that reach it. */
async function world() {
  const t = await startTestEmulator({
    virtualMachines: [spotVm("evicted"), spotVm("owner-stopped", { deallocatedBy: "owner" })],
  });
  emulators.push(t);
  const outputs = stackOutputs(
    {
      tenantId: t.emulator.tenantId,
      subscriptionId: t.emulator.subscriptionId,
      clientId: t.principal.clientId,
      certificatePem: t.principal.pem,
      certificateExpiresOn: new Date(new X509Certificate(t.principal.certificatePem).validTo),
      restartableVms: ["evicted", "owner-stopped"],
    },
    { cloud: { authorityHost: t.emulator.authorityHost, armEndpoint: t.emulator.armEndpoint } },
  );
  // The service user must be able to enter the tree, as it can enter / on a real host.
  const root = tempDir("root");
  chmodSync(root, 0o755);
  return { t, outputs, root };
}

async function installWithBundle(root: string, outputs: unknown, t: TestEmulator, scheduler: string) {
  const result = await runBundle(
    bundle,
    [
      "install",
      "--stack-outputs",
      "-",
      "--root",
      root,
      "--scheduler",
      scheduler,
      "--extra-ca-certs",
      t.emulator.caCertFile,
      "--verify-wait-seconds",
      "0",
    ],
    { stdin: JSON.stringify(outputs) },
  );
  return result;
}

/**
 * A shell script that bind-mounts the installed tree where its files say it lives, then `exec`s the
 * rest of its arguments (in the private mount namespace unshare made, so this host sees none of it).
 */
function namespaceScript(binds: Array<[from: string, to: string]>): string {
  return ["set -e", ...binds.map(([from, to]) => `mount --bind '${from}' '${to}'`), 'exec "$@"'].join("\n");
}

async function startsOf(t: TestEmulator, name: string) {
  const vm = await t.control.vm(resourceGroup, name);
  return { powerState: vm?.powerState, startRequests: vm?.startRequests };
}

describe("issue 23 item 1: the installed schedules run as their scheduler runs them", { skip }, () => {
  test("the cron line, run as its user with the cron file's environment, starts the evicted VM and leaves the owner's stop alone", async () => {
    const { t, outputs, root } = await world();
    const installed = await installWithBundle(root, outputs, t, "cron");
    assert.equal(installed.code, 0, `${installed.stdout}\n${installed.stderr}`);
    assert.match(installed.stdout, /verify: .* as user spot-restarter \(uid \d+\)/);
    assert.match(installed.stdout, /ok: doctor passed/);

    // Read the job back as cron does (crontab(5)): variable lines, then "m h dom mon dow user command".
    const cronFile = await fs.readFile(join(root, "etc/cron.d/spot-restarter"), "utf8");
    const lines = cronFile.split("\n").filter((line) => line.trim() !== "" && !line.startsWith("#"));
    const variables = lines.filter((line) => /^[A-Za-z_][A-Za-z0-9_]*=/.test(line));
    const jobs = lines.filter((line) => !variables.includes(line));
    assert.equal(jobs.length, 1, cronFile);
    const job = /^(?:\S+\s+){5}(\S+)\s+(.*)$/.exec(jobs[0] ?? "");
    const [, user = "", command = ""] = job ?? [];
    assert.equal(user, "spot-restarter");
    const shell = variables.find((line) => line.startsWith("SHELL="))?.slice(6) ?? "/bin/sh";

    // cron's `logger` stand-in: what the job writes to syslog lands in a file this test reads.
    const logDir = tempDir("syslog");
    chmodSync(logDir, 0o755);
    const logFile = join(logDir, "syslog");
    await fs.writeFile(logFile, "", { mode: 0o666 });
    chmodSync(logFile, 0o666);
    const logger = join(logDir, "logger");
    await fs.writeFile(logger, `#!/bin/sh\ncat >> ${logFile}\n`, { mode: 0o755 });

    // Asynchronously: the emulator answers from this very process.
    const ran = await runProcess(
      "unshare",
      [
        "-m",
        "--propagation",
        "private",
        "sh",
        "-c",
        namespaceScript([
          [join(root, "usr/local"), "/usr/local"],
          [join(root, "etc/spot-restarter-cron"), "/etc/spot-restarter-cron"],
          [join(root, "var/lib/spot-restarter"), "/var/lib/spot-restarter"],
          [logger, "/usr/bin/logger"],
        ]),
        "sh",
        // cron: setgid/initgroups/setuid to the line's user, an environment of HOME, LOGNAME and the
        // file's variables only, then $SHELL -c "<command>".
        "runuser",
        "-u",
        user,
        "--",
        "env",
        "-i",
        "HOME=/nonexistent",
        `LOGNAME=${user}`,
        ...variables,
        shell,
        "-c",
        command,
      ],
      { timeoutMs: DEADLINE_MS },
    );
    const syslog = await fs.readFile(logFile, "utf8");
    assert.equal(ran.code, 0, `${ran.stderr}\n${syslog}`);
    assert.doesNotMatch(syslog, /readable by group or others|ERROR/, syslog);
    // `once` waits for the starts it issued: the evicted VM runs, the owner's stop is left alone.
    assert.deepEqual(await startsOf(t, "evicted"), { powerState: "running", startRequests: 1 }, syslog);
    assert.deepEqual(await startsOf(t, "owner-stopped"), { powerState: "deallocated", startRequests: 0 });
  });

  test("the unit's ExecStart=, with its credentials as LoadCredential= hands them, does the same", async () => {
    const { t, outputs, root } = await world();
    const installed = await installWithBundle(root, outputs, t, "systemd");
    assert.equal(installed.code, 0, `${installed.stdout}\n${installed.stderr}`);
    assert.match(installed.stdout, /verify: .* as an unprivileged user/);
    assert.match(installed.stdout, /ok: doctor passed/);

    const unit = await fs.readFile(join(root, "etc/systemd/system/spot-restarter.service"), "utf8");
    const settings = (key: string) =>
      unit
        .split("\n")
        .filter((line) => line.startsWith(`${key}=`))
        .map((line) => line.slice(key.length + 1));
    assert.match(unit, /^DynamicUser=yes$/m);
    assert.deepEqual(settings("StateDirectory"), ["spot-restarter"]);
    // systemd.exec(5) "Credentials": each file copied into a private directory owned by the service's
    // user, read-only; %d is that directory.
    const credentials = join(tempDir("credentials"), "spot-restarter.service");
    mkdirSync(credentials, { mode: 0o700 });
    for (const setting of settings("LoadCredential")) {
      const [name = "", path = ""] = setting.split(/:(.*)/);
      const copy = join(credentials, name);
      await fs.writeFile(copy, await fs.readFile(join(root, path)), { mode: 0o400 });
      chownSync(copy, DYNAMIC_UID, DYNAMIC_UID);
    }
    chownSync(credentials, DYNAMIC_UID, DYNAMIC_UID);
    chmodSync(credentials, 0o500);
    chmodSync(join(credentials, ".."), 0o755);
    // StateDirectory=: /var/lib/spot-restarter, the dynamic user's.
    const stateDir = join(root, "var/lib/spot-restarter");
    chownSync(stateDir, DYNAMIC_UID, DYNAMIC_UID);
    const expand = (text: string) => text.replaceAll("%d", credentials);
    const [exec = ""] = settings("ExecStart");
    const environment = settings("Environment").map(expand);

    const service = spawnProcess(
      "unshare",
      [
        "-m",
        "--propagation",
        "private",
        "sh",
        "-c",
        namespaceScript([
          [join(root, "usr/local"), "/usr/local"],
          [stateDir, "/var/lib/spot-restarter"],
        ]),
        "sh",
        "setpriv",
        `--reuid=${DYNAMIC_UID}`,
        `--regid=${DYNAMIC_UID}`,
        "--clear-groups",
        "--",
        "env",
        "-i",
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin",
        `CREDENTIALS_DIRECTORY=${credentials}`,
        "STATE_DIRECTORY=/var/lib/spot-restarter",
        ...environment,
        ...expand(exec).split(/\s+/),
      ],
      { timeoutMs: DEADLINE_MS * 2 },
    );
    try {
      const deadline = Date.now() + DEADLINE_MS;
      while ((await startsOf(t, "evicted")).powerState !== "running") {
        assert.equal(service.child.exitCode, null, `the service ended: ${service.stderr()}`);
        assert.ok(Date.now() < deadline, `the evicted VM was not started: ${service.stderr()}`);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    } finally {
      const ended = await service.stop("SIGTERM", 20_000);
      assert.equal(ended.code, 0, `run ends cleanly on SIGTERM: ${ended.stderr}`);
    }
    assert.deepEqual(await startsOf(t, "evicted"), { powerState: "running", startRequests: 1 });
    assert.deepEqual(await startsOf(t, "owner-stopped"), { powerState: "deallocated", startRequests: 0 });
  });

  test("a cron copy of the key the job cannot use (mode 0640) fails the install, never 'ok'", async () => {
    const { t, outputs, root } = await world();
    const key = join(root, "etc/spot-restarter-cron/sp.pem");
    const host = recordingHost({
      bundlePath: bundle,
      nodePath: process.execPath,
      nodeVersion: process.versions.node,
      // The break: the copy's mode changes after install wrote it, before the verification runs it.
      runCommand: async (command, args, options) => {
        if (args.includes("doctor")) chmodSync(key, 0o640);
        return defaultRunCommand(command, args, options);
      },
    });
    const code = await install(
      installOptions(root, await writeStackOutputs(outputs), {
        scheduler: "cron",
        verify: true,
        verifyWaitSeconds: 0,
        extraCaCerts: t.emulator.caCertFile,
      }),
      host,
    );
    assert.equal(code, 1, host.stdoutText());
    assert.match(
      host.stderrText(),
      /verification failed: .*etc\/spot-restarter-cron\/sp\.pem holds a private key but is readable by group or others \(mode 0640\)/,
    );
    assert.doesNotMatch(host.stdoutText(), /ok: /);
  });
});
