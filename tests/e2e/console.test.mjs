// End-to-end: the web console served by the real server, in two headless Chromium pages.
// Two pages subscribe; a REST publish reaches both; a page publishes and the other receives; the server restarts
// on the same port and both pages reconnect, resubscribe and receive again. A screenshot of the console is kept
// in tests/artifacts/console.png. Everything runs on 127.0.0.1.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  serverBinary,
  startServer,
  restartServer,
  mintToken,
  restPublish,
  consoleDir,
  launchBrowser,
  artifactPath,
  until,
} from "./helpers.mjs";

const skip = serverBinary() ? false : "server binary not built (build/broadcaster); set BROADCASTER_BIN";
// presence on, so that the pages show who else is subscribed
const serverArgs = (dir) => ["--dev", "--console", "--console-dir", dir, "--presence"];

describe("web console in Chromium", { skip, timeout: 240000 }, () => {
  let server;
  let files;
  let browser;
  let pageA; // dev mode: token from the server
  let pageB; // a pasted token

  const consoleUrl = (query = "") => `${server.http}/console/${query}`;
  const rows = (page, event) => page.locator(`#messages tr[data-event="${event}"]`);
  const waitState = (page, state) => page.waitForSelector(`#state[data-state="${state}"]`);
  const waitSubscribed = (page, channel) => page.waitForSelector(`#subs li[data-channel="${channel}"][data-state="subscribed"]`);
  const eventLog = (page) => page.locator("#events").innerText();

  before(async () => {
    files = consoleDir();
    server = await startServer({ args: serverArgs(files.dir) });
    browser = await launchBrowser();
  });

  after(async () => {
    if (browser) await browser.close();
    if (server) await server.stop();
    if (files) files.cleanup();
  });

  it("serves the console, which detects dev mode and connects with a dev token", async () => {
    const res = await fetch(`${server.http}/console`, { redirect: "manual" });
    assert.ok([301, 302, 307, 308].includes(res.status), `GET {BASE}/console redirects (got ${res.status})`);
    pageA = await browser.page();
    await pageA.goto(consoleUrl());
    await waitState(pageA, "connected");
    assert.equal(await pageA.locator("#mode").getAttribute("data-mode"), "dev");
    assert.match(await pageA.locator("#token").inputValue(), /^[\w-]+\.[\w-]+\.[\w-]+$/, "the dev token is shown");
  });

  it("connects a second page with a pasted token", async () => {
    pageB = await browser.page();
    await pageB.goto(consoleUrl("?connect=0"));
    await pageB.waitForSelector("body[data-ready=true]");
    assert.equal(await pageB.locator("#state").getAttribute("data-state"), "disconnected");
    await pageB.uncheck("#use-dev-token");
    await pageB.fill("#token", mintToken({ sub: "page-b", channels: ["news", "chat:lobby"], scope: ["subscribe", "publish"], extra: { info: { name: "Page B" } } }));
    await pageB.click("#connect-btn");
    await waitState(pageB, "connected");
  });

  it("refuses a bad pasted token and says why", async () => {
    const page = await browser.page();
    await page.goto(consoleUrl("?connect=0"));
    await page.waitForSelector("body[data-ready=true]");
    await page.uncheck("#use-dev-token");
    await page.fill("#token", mintToken({ secret: "not-the-secret" }));
    await page.click("#connect-btn");
    await until(page, () => /Unauthenticated/.test(document.getElementById("events").innerText));
    assert.equal(await page.locator("#state").getAttribute("data-state"), "disconnected");
    await page.close();
  });

  it("both pages subscribe and a REST publish reaches both", async () => {
    for (const page of [pageA, pageB]) {
      await page.fill("#sub-channel", "news");
      await page.click("#subscribe-btn");
      await waitSubscribed(page, "news");
    }
    const r = await restPublish(server, "news", "rest-1", { from: "rest", n: 1 });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    for (const page of [pageA, pageB]) {
      const row = rows(page, "rest-1");
      await row.waitFor();
      assert.equal(await row.getAttribute("data-seq"), "1");
      assert.equal(await row.getAttribute("data-channel"), "news");
      assert.match(await row.locator("td.payload").innerText(), /"from":"rest"/);
      assert.match(await row.locator("td").nth(4).innerText(), /^-?\d+ ms$/, "latency is shown");
    }
  });

  it("a page publishes and the other page receives it", async () => {
    await pageA.fill("#pub-channel", "news");
    await pageA.fill("#pub-event", "from-a");
    await pageA.fill("#pub-payload", '{"hello": "page b", "n": 2}');
    await pageA.click("#publish-btn");
    await pageA.waitForSelector("#pub-result.ok");
    const row = rows(pageB, "from-a");
    await row.waitFor();
    assert.equal(await row.getAttribute("data-seq"), "2");
    assert.match(await row.locator("td.payload").innerText(), /"hello":"page b"/);
    await rows(pageA, "from-a").waitFor(); // the publisher's own subscription gets it too

    // and the other way round, on a second channel
    for (const page of [pageA, pageB]) {
      await page.fill("#sub-channel", "chat:lobby");
      await page.click("#subscribe-btn");
      await waitSubscribed(page, "chat:lobby");
    }
    await pageB.fill("#pub-channel", "chat:lobby");
    await pageB.fill("#pub-event", "from-b");
    await pageB.fill("#pub-payload", "plain text");
    await pageB.click("#publish-btn");
    const back = rows(pageA, "from-b");
    await back.waitFor();
    assert.equal(await back.getAttribute("data-channel"), "chat:lobby");
    assert.match(await back.locator("td.payload").innerText(), /"plain text"/);
  });

  it("each page lists the channel's members live: presence on subscribe, then join and leave", async () => {
    const members = (page, channel) => page.locator(`#subs li[data-channel="${channel}"] .members`);
    const member = (page, channel, user) => page.locator(`#subs li[data-channel="${channel}"] .member[data-user="${user}"]`);
    // both pages are subscribed to news: each sees the other (dev tokens are for the user "console") and itself
    for (const page of [pageA, pageB]) {
      await page.waitForSelector('#subs li[data-channel="news"] .members[data-mode="live"][data-count="2"]');
      await member(page, "news", "console").waitFor();
      await member(page, "news", "page-b").waitFor();
    }
    assert.match(await member(pageA, "news", "page-b").innerText(), /"name":"Page B"/, "the info claim is shown");
    assert.match(await members(pageA, "news").innerText(), /2 members, 2 users/);

    // page B leaves: page A's list follows without a reload
    await pageB.locator('#subs li[data-channel="news"] button', { hasText: /^unsubscribe$/ }).click();
    await pageA.waitForSelector('#subs li[data-channel="news"] .members[data-count="1"]');
    assert.equal(await member(pageA, "news", "page-b").count(), 0);
    assert.equal(await members(pageB, "news").count(), 0, "an unsubscribed channel lists no members");
    await until(pageA, () => document.getElementById("events").innerText.includes("page-b left news"));

    // and comes back
    await pageB.locator('#subs li[data-channel="news"] button', { hasText: /^subscribe$/ }).click();
    await waitSubscribed(pageB, "news");
    await pageA.waitForSelector('#subs li[data-channel="news"] .members[data-count="2"]');
    await member(pageA, "news", "page-b").waitFor();
    await until(pageA, () => document.getElementById("events").innerText.includes("page-b joined news"));
    await pageB.waitForSelector('#subs li[data-channel="news"] .members[data-mode="live"][data-count="2"]');
  });

  it("after a server restart on the same port both pages reconnect, resubscribe and receive again", async () => {
    const before = await Promise.all([pageA, pageB].map((p) => p.locator("#events li").count()));
    server = await restartServer(server, { args: serverArgs(files.dir) });
    for (const [i, page] of [pageA, pageB].entries()) {
      await until(
        page,
        (n) => {
          const items = [...document.querySelectorAll("#events li")].slice(0, document.querySelectorAll("#events li").length - n);
          return items.some((li) => li.textContent.includes("reconnected"));
        },
        before[i],
        30000,
      );
      await waitState(page, "connected");
      await until(page, () => document.getElementById("events").innerText.includes("resubscribed to news"), undefined, 15000);
      await waitSubscribed(page, "news");
      await waitSubscribed(page, "chat:lobby");
    }
    const r = await restPublish(server, "news", "rest-2", { from: "rest", n: 3 });
    assert.equal(r.status, 200);
    for (const page of [pageA, pageB]) {
      const row = rows(page, "rest-2");
      await row.waitFor();
      assert.equal(await row.getAttribute("data-seq"), "1", "seq restarts at 1 on the new subscription");
      assert.doesNotMatch(await eventLog(page), /gap on/, "a restart is not reported as a gap");
    }
    // publishing from a page works again too
    await pageB.fill("#pub-channel", "news");
    await pageB.fill("#pub-event", "after-restart");
    await pageB.fill("#pub-payload", "{}");
    await pageB.click("#publish-btn");
    await rows(pageA, "after-restart").waitFor();
  });

  it("shows the server's counters and a chart; screenshot kept as tests/artifacts/console.png", async () => {
    // a little traffic so the chart has something to show
    for (let i = 0; i < 10; i++) await restPublish(server, "news", "tick", { i });
    // counters are polled every second: wait for a poll that sees both pages and both channels
    await until(
      pageA,
      () => Number(document.getElementById("stat-connections").textContent) >= 2 && Number(document.getElementById("stat-channels").textContent) >= 2,
      undefined,
      10000,
    ).catch(async () => {
      const shown = await pageA.locator(".stats").innerText();
      assert.fail(`server counters on the console: ${shown.replace(/\s+/g, " ")}`);
    });
    await until(pageA, () => document.getElementById("stat-rate").textContent !== "n/a", undefined, 10000);
    await rows(pageA, "tick").first().waitFor();
    await pageA.waitForTimeout(1500);
    // the parser behind those numbers: label sets are summed, comments and junk skipped, absent names stay absent
    const parsed = await pageA.evaluate(() => {
      const m = window.broadcasterConsole.parseMetrics(
        "# HELP broadcaster_connections open\n# TYPE broadcaster_connections gauge\nbroadcaster_connections 3\n" +
          'broadcaster_deliveries_total{shard="0"} 5\nbroadcaster_deliveries_total{shard="1"} 7 1700000000\nbad line\nx NaN\n',
      );
      return Object.fromEntries(m);
    });
    assert.deepEqual(parsed, { broadcaster_connections: 3, broadcaster_deliveries_total: 12 });
    const path = artifactPath("console.png");
    await pageA.screenshot({ path, fullPage: true });
    assert.deepEqual(browser.errors, [], "no uncaught errors in the pages");
  });
});

describe("web console without --dev", { skip, timeout: 120000 }, () => {
  let server;
  let files;
  let browser;

  before(async () => {
    files = consoleDir();
    server = await startServer({ args: ["--console", "--console-dir", files.dir] });
    browser = await launchBrowser();
  });

  after(async () => {
    if (browser) await browser.close();
    if (server) await server.stop();
    if (files) files.cleanup();
  });

  it("has no dev token, asks for one, and connects with a pasted token", async () => {
    const res = await fetch(`${server.http}/console/dev-token`);
    assert.equal(res.status, 404, "no dev tokens outside --dev");
    const page = await browser.page();
    await page.goto(`${server.http}/console/`);
    await page.waitForSelector("body[data-ready=true]");
    assert.equal(await page.locator("#mode").getAttribute("data-mode"), "token");
    assert.equal(await page.locator("#dev-box").isHidden(), true);
    assert.equal(await page.locator("#state").getAttribute("data-state"), "disconnected", "no auto-connect without a token");
    assert.match(await page.locator("#token-note").innerText(), /Paste a token/);
    await page.fill("#token", mintToken({ sub: "ops", channels: ["news"] }));
    await page.click("#connect-btn");
    await waitConnected(page);
    await page.fill("#sub-channel", "news");
    await page.click("#subscribe-btn");
    await page.waitForSelector('#subs li[data-channel="news"][data-state="subscribed"]');
    await restPublish(server, "news", "ops-check", { ok: true });
    await page.locator('#messages tr[data-event="ops-check"]').waitFor();
    // presence is off on this server: the console says so and the subscription works all the same
    await page.waitForSelector('#subs li[data-channel="news"] .members[data-mode="off"]');
    assert.match(await page.locator('#subs li[data-channel="news"] .members').innerText(), /presence is off/);
    assert.equal(await page.locator('#subs li[data-channel="news"]').getAttribute("data-state"), "subscribed");
    assert.deepEqual(browser.errors, []);
  });
});

function waitConnected(page) {
  return page.waitForSelector('#state[data-state="connected"]');
}
