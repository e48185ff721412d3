// Issue 25, item 5 (test/security/README.md): the Resource Graph query of a cycle was built with each id
// in '…' after stripping single quotes, but not backslashes: an id ending in `\` escaped its closing quote
// and the next id ran as query text. Azure names cannot hold either character, so this is defence in
// depth: the query is run by the emulator's engine (Microsoft's own Kusto parser) over annotation rows,
// and a hostile id must select exactly the rows whose id it is, nothing more, and never fail the query.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { type Row, runQuery } from "../../emulator/arm/kusto";
import { annotationsQuery, kqlStringLiteral } from "../../runtime/src/cause/cause";

const vm = (name: string) =>
  `/subscriptions/0b1f6471-1bf0-4dda-aec3-cb9272f09590/resourcegroups/personal-network/providers/microsoft.compute/virtualmachines/${name}`;

/** A Resource Health annotation row as the emulator's healthresources table holds it (resourceGraph.ts). */
const annotation = (targetResourceId: string): Row => ({
  id: `${targetResourceId}/providers/Microsoft.ResourceHealth/resourceAnnotations/current`,
  name: "current",
  type: "microsoft.resourcehealth/resourceannotations",
  properties: {
    targetResourceId,
    annotationName: "VirtualMachinePreempted",
    context: "Platform Initiated",
    occurredTime: "2026-12-08T01:00:00Z",
  },
});

const run = (ids: string[], rows: Row[]) =>
  runQuery(annotationsQuery(ids), { resources: [], healthresources: rows, spotresources: [] }).map((row) =>
    String(row.targetResourceId),
  );

describe("issue 25 item 5: ids go into the KQL query as verbatim literals", () => {
  const others = ["backup", "build-box", "vpn"].map(vm);

  test("a hostile id (backslash, quote, closing parenthesis) selects nothing but itself", () => {
    // Old form: '…/a\', ') or isnotempty(targetResourceId) or tostring(1) in (', …: the first literal
    // swallowed the second's opening quote and the rest became a condition true for every row.
    const hostile = [`${vm("a")}\\`, ") or isnotempty(targetResourceId) or tostring(1) in (", `${vm("b")}\\`];
    assert.deepEqual(run(hostile, others.map(annotation)), [], "no other VM's annotation");
    assert.deepEqual(run([...hostile, others[0] ?? ""], others.map(annotation)), [others[0]]);
  });

  test("an id holding those characters is matched exactly (the literal round-trips)", () => {
    const odd = `${vm("it's")}\\x`;
    assert.deepEqual(run([odd], [annotation(odd), ...others.map(annotation)]), [odd]);
    assert.equal(kqlStringLiteral("a'b\\"), "@'a''b\\'");
  });
});
