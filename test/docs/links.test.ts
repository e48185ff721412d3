// Every link in the repository's Markdown resolves inside the repository (file and, for a Markdown target,
// heading anchor), and no file cites a document that is not in it: the design notes once lived outside the
// repository as DESIGN.md, and READMEs and comments pointed at it; they now point at docs/architecture.md.
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, it } from "node:test";

const ROOT = resolve(__dirname, "../..");
const SKIP = new Set(["node_modules", ".git", "dist"]);

function filesUnder(dir: string, keep: (name: string) => boolean): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (SKIP.has(entry.name)) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...filesUnder(path, keep));
    else if (keep(entry.name)) out.push(path);
  }
  return out;
}

/** Markdown with fenced code blocks and inline code removed: links are only in the prose. */
function prose(markdown: string): string {
  return markdown.replace(/^```[\s\S]*?^```/gm, "").replace(/`[^`\n]*`/g, "");
}

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, duplicates numbered. */
function anchorsOf(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const anchors = new Set<string>();
  for (const [, heading] of markdown.replace(/^```[\s\S]*?^```/gm, "").matchAll(/^#{1,6}\s+(.+?)\s*#*$/gm)) {
    const slug = (heading as string)
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, "")
      .replace(/\s/g, "-");
    const n = seen.get(slug) ?? 0;
    seen.set(slug, n + 1);
    anchors.add(n === 0 ? slug : `${slug}-${n}`);
  }
  return anchors;
}

const markdownFiles = filesUnder(ROOT, (name) => name.endsWith(".md"));

describe("documentation links", () => {
  it("finds the READMEs and docs/architecture.md", () => {
    const names = markdownFiles.map((f) => relative(ROOT, f));
    for (const expected of ["README.md", "docs/architecture.md", "runtime/README.md", "emulator/README.md"]) {
      assert.ok(names.includes(expected), expected);
    }
  });

  it("every relative link in every Markdown file resolves inside the repository", () => {
    const broken: string[] = [];
    for (const file of markdownFiles) {
      const text = readFileSync(file, "utf8");
      for (const [, target] of prose(text).matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
        if (/^[a-z][a-z0-9+.-]*:/i.test(target as string)) continue; // https:, mailto:
        const [path, anchor] = (target as string).split("#") as [string, string | undefined];
        const resolved = path === "" ? file : resolve(dirname(file), decodeURIComponent(path));
        const where = `${relative(ROOT, file)}: (${target})`;
        if (!resolved.startsWith(`${ROOT}/`) && resolved !== ROOT) {
          broken.push(`${where} leaves the repository`);
        } else if (!existsSync(resolved)) {
          broken.push(`${where} does not exist`);
        } else if (anchor && resolved.endsWith(".md") && statSync(resolved).isFile()) {
          if (!anchorsOf(readFileSync(resolved, "utf8")).has(anchor))
            broken.push(`${where}: no heading #${anchor}`);
        }
      }
    }
    assert.deepEqual(broken, []);
  });

  it("nothing cites DESIGN.md, which is not in the repository (docs/architecture.md is)", () => {
    const citing = filesUnder(
      ROOT,
      (name) => /\.(ts|mts|mjs|js|md|ya?ml|json)$/.test(name) && name !== "package-lock.json",
    )
      .filter((file) => file !== __filename)
      .filter((file) => /\bDESIGN\.md\b/.test(readFileSync(file, "utf8")))
      .map((file) => relative(ROOT, file));
    assert.deepEqual(citing, []);
  });

  it("every docs/… path named in a comment or README exists", () => {
    const missing: string[] = [];
    for (const file of filesUnder(ROOT, (name) => /\.(ts|mts|mjs|md)$/.test(name))) {
      for (const [path] of readFileSync(file, "utf8").matchAll(/\bdocs\/[\w.-]+\.md\b/g)) {
        if (!existsSync(join(ROOT, path))) missing.push(`${relative(ROOT, file)}: ${path}`);
      }
    }
    assert.deepEqual(missing, []);
  });
});
