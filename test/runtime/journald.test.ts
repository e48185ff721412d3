// Issue 23, item 6: logs fit journald. When stderr is the journal (systemd sets JOURNAL_STREAM to the
// "<device>:<inode>" of the stream it connected, systemd.exec(5)), each line starts with its syslog
// priority, which journald reads and strips (SyslogLevelPrefix=, on by default), so
// `journalctl -u spot-restarter -p warning` filters. The journal is stood in for by a file whose device
// and inode JOURNAL_STREAM names: the runtime's own check (fstat of fd 2) decides, as under systemd.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { closeSync, fstatSync, openSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { createLogger, SYSLOG_PRIORITY, stderrIsJournal } from "../../runtime/src/signals/log";
import { buildRuntimeBundle } from "../../support/bundle";
import { spotVm, startWorld, type World } from "./harness";

let bundle: string;
let w: World;
before(async () => {
  bundle = await buildRuntimeBundle();
  w = await startWorld(
    [spotVm("ubuntu-backup-server-spot"), spotVm("no-such-size", { powerState: "running" })],
    {
      dirPrefix: "journald",
    },
  );
});
after(() => w?.emulator.stop());

/** Runs `once` with stderr into a file; JOURNAL_STREAM names that file, or another stream. */
function onceWithStderrFile(journalStream: (file: { dev: number; ino: number }) => string): Promise<string> {
  const path = join(w.dir, `stderr-${Math.random().toString(16).slice(2)}`);
  const fd = openSync(path, "w", 0o600);
  const { dev, ino } = fstatSync(fd);
  const child = spawn(process.execPath, [bundle, "once", "--config", w.configPath], {
    env: {
      ...process.env,
      NODE_EXTRA_CA_CERTS: w.emulator.caCertFile,
      JOURNAL_STREAM: journalStream({ dev, ino }),
    },
    stdio: ["ignore", "ignore", fd],
    timeout: 60_000,
  });
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => {
      closeSync(fd);
      const text = readFileSync(path, "utf8");
      if (code !== 0) reject(new Error(`once exited ${code}: ${text}`));
      else resolve(text);
    });
  });
}

describe("issue 23 item 6: syslog priority prefixes when stderr is the journal", () => {
  test("stderr is the journal: every line starts with <3>, <4>, <6> or <7>, by its level", async () => {
    const text = await onceWithStderrFile(({ dev, ino }) => `${dev}:${ino}`);
    const lines = text.split("\n").filter((line) => line !== "");
    assert.ok(lines.length > 0, "once logged something (the VM it started)");
    for (const line of lines) assert.match(line, /^<[3467]>(ERROR|WARN |INFO |DEBUG) /, line);
    for (const line of lines) {
      const [, priority, level] = /^<(\d)>(\w+)/.exec(line) ?? [];
      const expected = { ERROR: 3, WARN: 4, INFO: 6, DEBUG: 7 }[level ?? ""];
      assert.equal(Number(priority), expected, line);
    }
    assert.ok(lines.some((line) => line.startsWith("<6>INFO ")));
  });

  test("JOURNAL_STREAM inherited but stderr redirected elsewhere: no prefixes", async () => {
    const text = await onceWithStderrFile(({ dev, ino }) => `${dev}:${ino + 1}`);
    assert.ok(text.length > 0);
    assert.doesNotMatch(text, /^</m);
  });

  test("the rule itself, and the JSON format carries the prefix before the object", () => {
    assert.equal(
      stderrIsJournal({ JOURNAL_STREAM: "8:123" }, () => ({ dev: 8, ino: 123 })),
      true,
    );
    assert.equal(
      stderrIsJournal({ JOURNAL_STREAM: "8:123" }, () => ({ dev: 8, ino: 124 })),
      false,
    );
    assert.equal(
      stderrIsJournal({}, () => ({ dev: 8, ino: 123 })),
      false,
    );
    const lines: string[] = [];
    const log = createLogger({
      level: "debug",
      format: "json",
      syslogPrefix: true,
      write: (l) => lines.push(l),
    });
    log.warn("e", {}, "m");
    log.debug("e", {}, "m");
    assert.equal(lines[0]?.slice(0, 3), `<${SYSLOG_PRIORITY.warn}>`);
    assert.equal(JSON.parse(lines[0]?.slice(3) ?? "").level, "warn");
    assert.equal(lines[1]?.slice(0, 3), "<7>");
  });
});
