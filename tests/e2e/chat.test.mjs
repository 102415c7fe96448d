// End-to-end: the example chat app (examples/chat) served from the console directory of a --dev server;
// two Chromium pages chat with each other through the SDK.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { cpSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { serverBinary, startServer, consoleDir, launchBrowser, artifactPath, until, REPO } from "./helpers.mjs";

const skip = serverBinary() ? false : "server binary not built (build/broadcaster); set BROADCASTER_BIN";

describe("example chat in Chromium", { skip, timeout: 120000 }, () => {
  let server;
  let files;
  let browser;

  before(async () => {
    files = consoleDir();
    const chatDir = join(files.dir, "chat");
    mkdirSync(chatDir, { recursive: true });
    cpSync(join(REPO, "examples/chat/index.html"), join(chatDir, "index.html"));
    cpSync(join(REPO, "examples/chat/chat.js"), join(chatDir, "chat.js"));
    cpSync(join(files.dir, "broadcaster.js"), join(chatDir, "broadcaster.js"));
    server = await startServer({ args: ["--dev", "--console-dir", files.dir] });
    browser = await launchBrowser();
  });

  after(async () => {
    if (browser) await browser.close();
    if (server) await server.stop();
    if (files) files.cleanup();
  });

  it("two users exchange messages in a room", async () => {
    const alice = await browser.page();
    const bob = await browser.page();
    for (const [page, name] of [
      [alice, "alice"],
      [bob, "bob"],
    ]) {
      await page.goto(`${server.http}/console/chat/index.html?room=chat:e2e&name=${name}`);
      await until(page, () => document.getElementById("status").textContent === "connected");
      await until(page, (n) => document.getElementById("log").innerText.includes(`joined chat:e2e as ${n}`), name);
    }
    await alice.fill("#text", "hi bob");
    await alice.press("#text", "Enter");
    await until(bob, () => document.getElementById("log").innerText.includes("alice: hi bob"));
    await bob.fill("#text", "hello alice");
    await bob.click("button");
    await until(alice, () => document.getElementById("log").innerText.includes("bob: hello alice"));
    const log = await alice.locator("#log").innerText();
    assert.ok(log.indexOf("alice: hi bob") < log.indexOf("bob: hello alice"), log);
    await alice.screenshot({ path: artifactPath("chat.png") });
    assert.deepEqual(browser.errors, []);
  });
});
