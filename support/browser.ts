// Headless Chromium for what looks at a page as a person would (the status page's test, the docs'
// screenshot): Debian's `chromium` package (.ci/run installs it), driven by playwright-core; no browser is
// downloaded. Each launch gets a fresh profile in its own temp folder and nothing that reaches beyond this
// machine (no QUIC, no background networking, no component updates, no sync).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BrowserContext, chromium } from "playwright-core";

export const chromiumPath = "/usr/bin/chromium";

export const chromiumArgs = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
] as const;

export interface Browser {
  readonly context: BrowserContext;
  /** The fresh profile folder (--user-data-dir). */
  readonly profile: string;
  close(): Promise<void>;
}

/** Launches Chromium with a fresh profile; `options` are the page's (viewport, colour scheme). */
export async function launchChromium(
  options: { viewport?: { width: number; height: number }; colorScheme?: "light" | "dark" } = {},
): Promise<Browser> {
  const profile = mkdtempSync(join(tmpdir(), "spot-restarter-chromium-"));
  // playwright-core passes the profile as --user-data-dir itself (it refuses that flag in `args`).
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    args: [...chromiumArgs],
    timeout: 60_000,
    ...(options.viewport ? { viewport: options.viewport } : {}),
    ...(options.colorScheme ? { colorScheme: options.colorScheme } : {}),
  });
  return {
    context,
    profile,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
