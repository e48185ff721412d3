// Tags API at scope: PUT replaces, PATCH Merge/Replace/Delete, DELETE clears; names case-insensitive.
import assert from "node:assert/strict";
import { after, before, beforeEach, describe, it } from "node:test";
import fc from "fast-check";
import { patchTags } from "../../emulator/arm/tags";
import { startTestEmulator, type TestEmulator } from "../../emulator/testing";
import { armFetch, rgPath, vmPath } from "./helpers";

const BACKUP = "ubuntu-backup-server-spot";
const API = "2021-04-01";
type TagsBody = { id: string; name: string; properties: { tags: Record<string, string> } };

describe("emulator: tag patch semantics (pure)", () => {
  const current = { AttemptRestartAfterEviction: "true", role: "backup" };
  it("merges, overwriting a name regardless of case", () => {
    assert.deepEqual(patchTags(current, "Merge", { ROLE: "b2", owner: "me" }), {
      AttemptRestartAfterEviction: "true",
      role: "b2",
      owner: "me",
    });
  });
  it("replaces the whole set", () => {
    assert.deepEqual(patchTags(current, "Replace", { a: "1" }), { a: "1" });
  });
  it("deletes name/value pairs only when the value matches, or by name with an empty value", () => {
    assert.deepEqual(patchTags(current, "Delete", { attemptrestartaftereviction: "false" }), current);
    assert.deepEqual(patchTags(current, "Delete", { AttemptRestartAfterEviction: "true" }), {
      role: "backup",
    });
    assert.deepEqual(patchTags(current, "Delete", { role: "" }), { AttemptRestartAfterEviction: "true" });
  });
  it("Delete of our tags after a Merge of them restores the original set (pulumi up, then destroy)", () => {
    const tagSet = fc.dictionary(fc.string({ minLength: 1, maxLength: 8 }), fc.string({ maxLength: 8 }), {
      maxKeys: 10,
    });
    fc.assert(
      fc.property(tagSet, tagSet, (theirs, ours) => {
        const ourNames = new Set(Object.keys(ours).map((name) => name.toLowerCase()));
        const untouched = Object.fromEntries(
          Object.entries(theirs).filter(([name]) => !ourNames.has(name.toLowerCase())),
        );
        const oursWithValues = Object.fromEntries(
          Object.entries(ours).map(([name, value]) => [name, value || "v"]),
        );
        const merged = patchTags(untouched, "Merge", oursWithValues);
        assert.deepEqual(patchTags(merged, "Delete", oursWithValues), untouched);
      }),
    );
  });
  it("refuses an unknown operation", () => {
    assert.throws(() => patchTags(current, "Upsert", {}), /InvalidTagPatchOperation|not valid/);
  });
});

describe("emulator: Tags API at scope over HTTPS", () => {
  let t: TestEmulator;
  let tagsUrl: string;
  before(async () => {
    t = await startTestEmulator();
    tagsUrl = `${vmPath(t, BACKUP)}/providers/Microsoft.Resources/tags/default`;
  });
  beforeEach(() => t.control.setVm(t.resourceGroup, BACKUP, { tags: { role: "backup", owner: "ops" } }));
  after(() => t.emulator.stop());

  it("GETs the VM's tags in the tags-resource shape", async () => {
    const response = await armFetch<TagsBody>(t, "GET", tagsUrl, undefined, API);
    assert.equal(response.status, 200);
    assert.equal(response.body.id, tagsUrl);
    assert.equal(response.body.name, "default");
    assert.deepEqual(response.body.properties.tags, { role: "backup", owner: "ops" });
  });

  it("PATCH Merge adds ours and keeps the existing tags (what Pulumi's TagAtScope does on create)", async () => {
    const merged = await armFetch<TagsBody>(
      t,
      "PATCH",
      tagsUrl,
      { operation: "Merge", properties: { tags: { AttemptRestartAfterEviction: "true" } } },
      API,
    );
    assert.deepEqual(merged.body.properties.tags, {
      role: "backup",
      owner: "ops",
      AttemptRestartAfterEviction: "true",
    });
    assert.deepEqual(
      (await t.control.vm(t.resourceGroup, BACKUP))?.tags,
      merged.body.properties.tags,
      "the VM itself carries them",
    );
  });

  it("PATCH Delete removes only matching pairs (what Pulumi's TagAtScope does on delete)", async () => {
    const deleted = await armFetch<TagsBody>(
      t,
      "PATCH",
      tagsUrl,
      { operation: "Delete", properties: { tags: { role: "backup", owner: "someone-else" } } },
      API,
    );
    assert.deepEqual(deleted.body.properties.tags, { owner: "ops" });
  });

  it("PATCH Replace and PUT replace the whole set; DELETE clears it", async () => {
    const replaced = await armFetch<TagsBody>(
      t,
      "PATCH",
      tagsUrl,
      { operation: "Replace", properties: { tags: { a: "1" } } },
      API,
    );
    assert.deepEqual(replaced.body.properties.tags, { a: "1" });
    const put = await armFetch<TagsBody>(t, "PUT", tagsUrl, { properties: { tags: { b: "2" } } }, API);
    assert.deepEqual(put.body.properties.tags, { b: "2" });
    assert.equal((await armFetch(t, "DELETE", tagsUrl, undefined, API)).status, 200);
    assert.deepEqual((await armFetch<TagsBody>(t, "GET", tagsUrl, undefined, API)).body.properties.tags, {});
  });

  it("works at resource-group scope and answers 404 for an unknown resource", async () => {
    const groupTags = `${rgPath(t)}/providers/Microsoft.Resources/tags/default`;
    await armFetch(t, "PATCH", groupTags, { operation: "Merge", properties: { tags: { env: "home" } } }, API);
    assert.deepEqual((await armFetch<TagsBody>(t, "GET", groupTags, undefined, API)).body.properties.tags, {
      env: "home",
    });
    const missing = await armFetch<{ error: { code: string } }>(
      t,
      "GET",
      `${vmPath(t, "nope")}/providers/Microsoft.Resources/tags/default`,
      undefined,
      API,
    );
    assert.equal(missing.status, 404);
  });

  it("refuses a body without properties.tags and a bad operation", async () => {
    assert.equal((await armFetch(t, "PUT", tagsUrl, { tags: {} }, API)).status, 400);
    const bad = await armFetch<{ error: { code: string } }>(
      t,
      "PATCH",
      tagsUrl,
      { operation: "Upsert", properties: { tags: {} } },
      API,
    );
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, "InvalidTagPatchOperation");
  });
});
