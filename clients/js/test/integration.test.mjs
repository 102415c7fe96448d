// Integration tests of the compiled SDK against the real server binary (build/broadcaster or $BROADCASTER_BIN),
// over Node's built-in WebSocket, on 127.0.0.1 only. Skipped (with a note) when the binary is not built.
import { test, before, after, afterEach } from "node:test";
import net from "node:net";
import assert from "node:assert/strict";
import { Broadcaster, BroadcasterError } from "../dist/broadcaster.js";
import { serverBinary, startServer, restartServer, mintToken, restPublish } from "./harness.mjs";

const bin = serverBinary();
const skip = !bin ? "server binary not built (build/broadcaster); set BROADCASTER_BIN to run" : false;
const RFC3339_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

let server;
const clients = [];

before(async () => {
  if (!skip) server = await startServer();
});
after(async () => {
  for (const c of clients.splice(0)) c.disconnect();
  if (server) await server.stop();
});
afterEach(() => {
  for (const c of clients.splice(0)) c.disconnect();
});

function client(tokenOpts = {}, opts = {}, url = server.ws) {
  const c = new Broadcaster(url, {
    getToken: () => mintToken(tokenOpts),
    minReconnectDelay: 50,
    maxReconnectDelay: 500,
    requestTimeout: 5000,
    ...opts,
  });
  clients.push(c);
  return c;
}

/** Collects a subscription's messages; `until(n)` waits for n of them. */
function collect(sub) {
  const msgs = [];
  const waiters = [];
  sub.on("message", (m) => {
    msgs.push(m);
    for (const w of [...waiters]) if (msgs.length >= w.n) w.resolve(msgs);
  });
  msgs.until = (n, timeout = 5000) =>
    msgs.length >= n
      ? Promise.resolve(msgs)
      : new Promise((resolve, reject) => {
          const w = { n, resolve };
          waiters.push(w);
          setTimeout(() => reject(new Error(`got ${msgs.length} of ${n} messages on ${sub.channel}`)), timeout);
        });
  return msgs;
}

test("a REST publish reaches subscribed clients with seq 1 and the same payload, id and createTime", { skip }, async () => {
  const a = client({ sub: "a", channels: ["news"] });
  const b = client({ sub: "b", channels: ["news"] });
  await Promise.all([a.connect(), b.connect()]);
  const sa = a.subscribe("news");
  const sb = b.subscribe("news");
  await Promise.all([sa.ready(5000), sb.ready(5000)]);
  assert.equal(typeof sa.subscriptionId, "string", "subscriptionId is a string");
  assert.ok(sa.subscriptionId !== "" && sa.subscriptionId !== sb.subscriptionId, "subscription ids are unique");
  const ma = collect(sa);
  const mb = collect(sb);
  const payload = { text: "héllo", n: 1.5, list: [1, "two", null, true], nested: { big: 12345678901234 } };
  const r = await restPublish(server, "news", "hello", payload);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.match(r.body.createTime, RFC3339_MS);
  await ma.until(1);
  await mb.until(1);
  for (const m of [ma[0], mb[0]]) {
    assert.equal(m.channel, "news");
    assert.equal(m.event, "hello");
    assert.equal(m.seq, 1);
    assert.deepEqual(m.payload, payload);
    assert.deepEqual(m.id, r.body.id);
    assert.equal(m.createTime, r.body.createTime);
    assert.ok(m.latency !== null && m.latency > -1000 && m.latency < 5000, `latency ${m.latency}`);
  }
});

test("a client publishes over the WebSocket; another client and the publisher itself receive it in order", { skip }, async () => {
  const pub = client({ sub: "pub", channels: ["chat:lobby"] });
  const rcv = client({ sub: "rcv", channels: ["chat:lobby"], scope: ["subscribe"] });
  await Promise.all([pub.connect(), rcv.connect()]);
  const own = collect(pub.subscribe("chat:lobby"));
  const other = collect(rcv.subscribe("chat:lobby"));
  await Promise.all([pub.getSubscription("chat:lobby").ready(5000), rcv.getSubscription("chat:lobby").ready(5000)]);
  const gaps = [];
  rcv.on("gap", (g) => gaps.push(g));
  const N = 25;
  const results = await Promise.all(Array.from({ length: N }, (_, i) => pub.publish("chat:lobby", "msg", { i })));
  assert.equal(new Set(results.map((r) => JSON.stringify(r.id))).size, N, "message ids are unique");
  await other.until(N);
  await own.until(N);
  assert.deepEqual(other.map((m) => m.payload.i), [...Array(N).keys()], "publish order is kept");
  assert.deepEqual(other.map((m) => m.seq), Array.from({ length: N }, (_, i) => i + 1));
  assert.deepEqual(own.map((m) => m.id), results.map((r) => r.id));
  assert.deepEqual(gaps, []);
});

test("protocol errors arrive as typed errors", { skip }, async () => {
  const c = client({ sub: "limited", channels: ["news"], scope: ["subscribe"] });
  await c.connect();
  const denied = c.subscribe("secret");
  await assert.rejects(denied.ready(5000), (e) => e instanceof BroadcasterError && e.code === "PermissionDenied");
  await assert.rejects(c.publish("news", "x", 1), (e) => e.code === "PermissionDenied", "no publish scope");
  await assert.rejects(c.publish("bad channel!", "x", 1), (e) => ["InvalidArgument", "PermissionDenied"].includes(e.code));
  const bad = c.subscribe("a::b");
  await assert.rejects(bad.ready(5000), (e) => e.code === "InvalidArgument" || e.code === "PermissionDenied");
  await assert.rejects(c.request("noSuchMethod", {}), (e) => e.code === "NotFound");
  const hb = await c.heartbeat();
  assert.match(hb.timestamp, RFC3339_MS);
  assert.equal(c.state, "connected", "errors do not close the connection");
});

test("a token with a bad signature is refused: connect() rejects with Unauthenticated and no reconnect", { skip }, async () => {
  const c = client({ secret: "wrong-secret" });
  await assert.rejects(c.connect(), (e) => e.code === "Unauthenticated");
  assert.equal(c.state, "disconnected");
});

test("refreshing the token on a live connection keeps it and drops channels the new token lacks", { skip }, async () => {
  let channels = ["news", "chat:lobby"];
  const c = client({}, { getToken: () => mintToken({ sub: "refresher", channels }) });
  await c.connect();
  const news = c.subscribe("news");
  const chat = c.subscribe("chat:lobby");
  await Promise.all([news.ready(5000), chat.ready(5000)]);
  const mn = collect(news);
  const mc = collect(chat);
  channels = ["news"];
  await c.refreshToken();
  assert.equal(chat.state, "unsubscribed");
  assert.equal(news.state, "subscribed");
  await restPublish(server, "chat:lobby", "after-refresh", 1);
  await restPublish(server, "news", "after-refresh", 2);
  await mn.until(1);
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(mc.length, 0, "the dropped channel is not delivered");
  // a different sub is refused and leaves the connection as it was
  c.on("error", () => {});
  const stranger = mintToken({ sub: "someone-else" });
  await assert.rejects(c.request("auth", { token: stranger }), (e) => e.code === "FailedPrecondition");
  assert.equal(c.state, "connected");
});

test("unsubscribe stops delivery", { skip }, async () => {
  const c = client({ channels: ["news"] });
  await c.connect();
  const s = c.subscribe("news");
  await s.ready(5000);
  const got = collect(s);
  await restPublish(server, "news", "one", 1);
  await got.until(1);
  await s.unsubscribe();
  await restPublish(server, "news", "two", 2);
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(got.length, 1);
});

/** A TCP proxy on 127.0.0.1 whose current connections can be frozen: bytes stop flowing, nothing is closed. */
async function startProxy(targetPort) {
  const pairs = new Set();
  const srv = net.createServer((c) => {
    const u = net.connect(targetPort, "127.0.0.1");
    const pair = { c, u, frozen: false };
    pairs.add(pair);
    c.on("data", (d) => pair.frozen || u.write(d));
    u.on("data", (d) => pair.frozen || c.write(d));
    const end = () => {
      c.destroy();
      u.destroy();
      pairs.delete(pair);
    };
    for (const s of [c, u]) {
      s.on("error", end);
      s.on("close", end);
    }
  });
  await new Promise((r) => srv.listen(0, "127.0.0.1", r));
  return {
    port: srv.address().port,
    freeze: () => pairs.forEach((p) => (p.frozen = true)),
    close: () => {
      pairs.forEach((p) => (p.c.destroy(), p.u.destroy()));
      srv.close();
    },
  };
}

test("a connection that silently stops carrying data is detected by heartbeats and replaced", { skip }, async () => {
  const proxy = await startProxy(server.port);
  try {
    const proxied = `ws://127.0.0.1:${proxy.port}/broadcaster/websocket`;
    const c = client({ channels: ["news"] }, { heartbeatInterval: 300, heartbeatTimeout: 500 }, proxied);
    await c.connect();
    const s = c.subscribe("news");
    await s.ready(5000);
    const got = collect(s);
    await new Promise((r) => setTimeout(r, 700)); // idle: heartbeats keep it alive
    assert.equal(c.state, "connected");
    await restPublish(server, "news", "before", 1);
    await got.until(1);

    const dropped = new Promise((r) => c.once("connecting", r));
    const resubscribed = new Promise((r) => s.once("subscribed", r));
    proxy.freeze();
    const ev = await dropped;
    assert.equal(ev.code, 4000);
    assert.match(ev.reason, /heartbeat/);
    assert.equal((await resubscribed).resubscribed, true);
    await restPublish(server, "news", "after", 2);
    await got.until(2);
    assert.equal(got[1].event, "after");
    assert.equal(got[1].seq, 1);
  } finally {
    proxy.close();
  }
});

test("the client refreshes a short-lived token before it expires and the connection outlives it", { skip }, async () => {
  const strict = await startServer({ args: ["--jwt-leeway", "0"] });
  try {
    let issued = 0;
    const c = new Broadcaster(strict.ws, {
      getToken: () => (issued++, mintToken({ sub: "short", channels: ["news"], ttl: 3 })),
      requestTimeout: 5000,
      minReconnectDelay: 50,
    });
    clients.push(c);
    const refreshed = [];
    const reconnects = [];
    c.on("refreshed", (e) => refreshed.push(e));
    await c.connect();
    c.on("connecting", (e) => reconnects.push(e));
    const s = c.subscribe("news");
    await s.ready(5000);
    const got = collect(s);
    await new Promise((r) => setTimeout(r, 5000)); // well past the first token's exp
    assert.ok(refreshed.length >= 2, `refreshed ${refreshed.length} times`);
    assert.deepEqual(reconnects, [], "no reconnect: the server never closed the connection");
    assert.equal(c.state, "connected");
    await restPublish(strict, "news", "still-here", 1);
    await got.until(1);
    assert.equal(got[0].seq, 1, "the same subscription lives on");
    assert.ok(issued >= 3);
  } finally {
    await strict.stop();
  }
});

test("a static token that expires: the server closes with 4001 and the client stops with Unauthenticated", { skip }, async () => {
  const strict = await startServer({ args: ["--jwt-leeway", "0"] });
  try {
    const c = new Broadcaster(strict.ws, { token: mintToken({ sub: "static", ttl: 2 }), minReconnectDelay: 50 });
    clients.push(c);
    const closes = [];
    await c.connect();
    c.on("connecting", (e) => closes.push(e.code));
    const ev = await new Promise((resolve, reject) => {
      c.once("disconnected", resolve);
      setTimeout(() => reject(new Error("not closed after the token expired")), 8000);
    });
    assert.deepEqual(closes.slice(0, 1), [4001], "closed with 4001 token expired");
    assert.equal(ev.error?.code, "Unauthenticated", "the same expired token is refused on reconnect");
  } finally {
    await strict.stop();
  }
});

// Last: it restarts the shared server on the same port.
test("after the server restarts on the same port the client reconnects, resubscribes and seq restarts at 1", { skip }, async () => {
  const c = client({ channels: ["news"] });
  await c.connect();
  const s = c.subscribe("news");
  await s.ready(5000);
  const got = collect(s);
  await restPublish(server, "news", "before", 1);
  await restPublish(server, "news", "before", 2);
  await got.until(2);
  assert.equal(got[1].seq, 2);

  const events = [];
  c.on("connecting", (e) => events.push(["connecting", e.code]));
  c.on("connected", (e) => events.push(["connected", e.reconnected]));
  const resubscribed = new Promise((r) => s.once("subscribed", r));
  server = await restartServer(server);
  const ev = await Promise.race([resubscribed, new Promise((_, j) => setTimeout(() => j(new Error("no resubscription")), 15000))]);
  assert.equal(ev.resubscribed, true);
  assert.equal(events[0][0], "connecting");
  assert.deepEqual(events[events.length - 1], ["connected", true]);

  await restPublish(server, "news", "after", 3);
  await got.until(3);
  assert.equal(got[2].event, "after");
  assert.equal(got[2].seq, 1, "a new subscription starts at seq 1");
});
