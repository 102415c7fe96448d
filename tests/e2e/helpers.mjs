// Shared helpers for the browser end-to-end tests: the server harness from the SDK's tests, the assembled
// console directory, and a headless Debian Chromium driven by playwright-core.
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

export * from "../../clients/js/test/harness.mjs";

const here = dirname(fileURLToPath(import.meta.url));
export const REPO = resolve(here, "../..");
export const ARTIFACTS = join(REPO, "tests", "artifacts");
export const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";

export const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--no-first-run",
  "--disable-quic",
  "--disable-sync",
  "--disable-default-apps",
  "--disable-extensions",
];

/**
 * The console's files: $BROADCASTER_CONSOLE_DIR (run.sh assembles it), or assembled now into a temp dir.
 * Returns { dir, cleanup }.
 */
export function consoleDir() {
  if (process.env.BROADCASTER_CONSOLE_DIR) return { dir: process.env.BROADCASTER_CONSOLE_DIR, cleanup() {} };
  const tmp = mkdtempSync(join(tmpdir(), "bc-console-"));
  const dir = join(tmp, "console");
  execFileSync("bash", [join(REPO, "clients/js/scripts/assemble-console.sh"), dir], { stdio: ["ignore", "ignore", "inherit"] });
  return { dir, cleanup: () => rmSync(tmp, { recursive: true, force: true }) };
}

/** Launches headless Chromium with a fresh profile; every page's console errors are collected. */
export async function launchBrowser() {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} not found: apt-get install -y chromium (tests/e2e/run.sh does it)`);
  }
  const profile = mkdtempSync(join(tmpdir(), "bc-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1280, height: 1000 },
    timeout: 60000,
  });
  const errors = [];
  return {
    context,
    errors,
    async page() {
      const page = await context.newPage();
      page.setDefaultTimeout(15000);
      page.on("pageerror", (e) => errors.push(`pageerror: ${e.message}`));
      return page;
    },
    async close() {
      await context.close().catch(() => {});
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

export function artifactPath(name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  return join(ARTIFACTS, name);
}

/** Waits until `fn` (run in the page) returns truthy. */
export function until(page, fn, arg, timeout = 15000) {
  return page.waitForFunction(fn, arg, { timeout, polling: 50 });
}
