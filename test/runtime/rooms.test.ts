// The rooms of runtime/src and the direction of their imports (runtime/src/README.md): a room imports
// only itself and the rooms below it, no module imports itself back through others, every room says in
// a README what lives there, and no room grows past what a newcomer can scan.
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, it } from "node:test";
import * as ts from "typescript";

const src = resolve(__dirname, "../../runtime/src");

/** Top to bottom, as runtime/src/README.md lists them. `cli.ts` (the entry point) sits above them all. */
const rooms = ["cli", "install", "loop", "cause", "signals", "azure", "config", "state", "core"] as const;

function modules(dir = src): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return modules(path);
    return name.endsWith(".ts") ? [path] : [];
  });
}

/** `cli.ts` for the entry point, else the first folder under runtime/src. */
function roomOf(path: string): string {
  const parts = relative(src, path).split("/");
  return parts.length === 1 ? "cli.ts" : (parts[0] as string);
}

function rank(room: string): number {
  if (room === "cli.ts") return rooms.length;
  const index = (rooms as readonly string[]).indexOf(room);
  assert.notEqual(
    index,
    -1,
    `runtime/src/${room}/ is no known room: add it to runtime/src/README.md and this test`,
  );
  return rooms.length - 1 - index;
}

/** Every relative import (static, type-only, re-export, dynamic), resolved to a module path. */
function importsOf(path: string): string[] {
  const { importedFiles } = ts.preProcessFile(readFileSync(path, "utf8"), true, true);
  return importedFiles
    .map((file) => file.fileName)
    .filter((name) => name.startsWith("."))
    .map((name) => {
      const base = resolve(dirname(path), name).replace(/\.(ts|js)$/, "");
      const candidates = [`${base}.ts`, join(base, "index.ts")];
      const found = candidates.find((candidate) => existsSync(candidate));
      assert.ok(found, `${relative(src, path)} imports ${name}, which is no module`);
      return found;
    });
}

const graph = new Map(modules().map((path) => [path, importsOf(path)]));

describe("runtime/src rooms", () => {
  it("every import goes to the same room or a lower one", () => {
    const upward: string[] = [];
    for (const [from, imports] of graph) {
      for (const to of imports) {
        if (rank(roomOf(to)) > rank(roomOf(from)))
          upward.push(`${relative(src, from)} -> ${relative(src, to)}`);
      }
    }
    assert.deepEqual(
      upward,
      [],
      "a lower room imports a higher one: move the shared fact down (core/ is the lowest)",
    );
  });

  it("no module imports itself back through others (no cycle)", () => {
    const cycles: string[] = [];
    const state = new Map<string, "open" | "done">();
    const stack: string[] = [];
    const visit = (path: string): void => {
      state.set(path, "open");
      stack.push(path);
      for (const next of graph.get(path) ?? []) {
        if (state.get(next) === "open") {
          cycles.push(
            [...stack.slice(stack.indexOf(next)), next].map((module) => relative(src, module)).join(" -> "),
          );
        } else if (!state.has(next)) visit(next);
      }
      stack.pop();
      state.set(path, "done");
    };
    for (const path of graph.keys()) if (!state.has(path)) visit(path);
    assert.deepEqual(cycles, []);
  });

  it("the checker sees what it checks: every room has modules and the graph has imports across rooms", () => {
    const seen = new Set([...graph.keys()].map(roomOf));
    for (const room of rooms) assert.ok(seen.has(room), `no module in runtime/src/${room}/`);
    const across = [...graph].flatMap(([from, imports]) =>
      imports.filter((to) => roomOf(to) !== roomOf(from)),
    );
    assert.ok(across.length > 50, `only ${across.length} imports across rooms found: the parser misses some`);
  });

  it("every folder has a README and at most 12 modules; the top level at most 15 files", () => {
    const folders = (dir: string): string[] =>
      readdirSync(dir)
        .map((name) => join(dir, name))
        .filter((path) => statSync(path).isDirectory())
        .flatMap((path) => [path, ...folders(path)]);
    for (const folder of folders(src)) {
      const name = relative(src, folder);
      assert.ok(existsSync(join(folder, "README.md")), `runtime/src/${name}/ has no README.md`);
      const count = readdirSync(folder).filter((file) => file.endsWith(".ts")).length;
      assert.ok(count <= 12, `runtime/src/${name}/ holds ${count} modules (at most 12: split it by concern)`);
    }
    assert.ok(readdirSync(src).length <= 15, "runtime/src/ holds more than 15 entries");
    const readme = readFileSync(join(src, "README.md"), "utf8");
    for (const room of rooms)
      assert.match(readme, new RegExp(`\`${room}/\``), `runtime/src/README.md omits ${room}/`);
  });
});
