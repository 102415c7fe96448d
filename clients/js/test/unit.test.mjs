// Unit tests of the compiled SDK (dist/broadcaster.js) against the in-process fake server.
import { test, afterEach } from "node:test";
import net from "node:net";
import assert from "node:assert/strict";
import { Broadcaster, BroadcasterError, backoffDelay, decodeJwtClaims } from "../dist/broadcaster.js";
import { FakeServer, jwt, sleep, waitFor, nextEvent } from "./fake-server.mjs";

const FAST = { minReconnectDelay: 10, maxReconnectDelay: 40, heartbeatInterval: 0, requestTimeout: 500 };
const future = (s) => Math.floor(Date.now() / 1000) + s;

// every client a test makes is stopped afterwards, so a failing test cannot leave timers running
const clients = [];
afterEach(() => {
  for (const c of clients.splice(0)) c.disconnect();
});
function track(c) {
  clients.push(c);
  return c;
}

function setup(opts = {}, serverOpts = {}) {
  const server = new FakeServer(serverOpts);
  let n = 0;
  const tokens = [];
  const client = track(new Broadcaster("ws://fake/broadcaster/websocket", {
    ...FAST,
    WebSocket: server.WebSocket,
    getToken: (req) => {
      const t = jwt({ sub: "u", n: ++n, exp: future(3600), authorizedChannels: ["news", "chat:1"], scope: ["subscribe", "publish"] });
      tokens.push({ t, req });
      return t;
    },
    ...opts,
  }));
  return { server, client, tokens };
}

test("connect authenticates with a token from getToken and reports state changes", async () => {
  const { server, client, tokens } = setup();
  const states = [];
  client.on("state", (e) => states.push(`${e.previous}->${e.state}`));
  assert.equal(client.state, "disconnected");
  await client.connect();
  assert.equal(client.state, "connected");
  assert.deepEqual(states, ["disconnected->connecting", "connecting->connected"]);
  const auth = server.sent("auth");
  assert.equal(auth.length, 1);
  assert.equal(auth[0].params.token, tokens[0].t);
  assert.equal(tokens[0].req.reason, "connect");
  assert.equal(typeof auth[0].id, "number");
  assert.notEqual(auth[0].id, 0);
  await client.connect(); // already connected: resolves at once
  client.disconnect();
  assert.equal(client.state, "disconnected");
});

test("subscribe before connect is sent after auth; messages are delivered with seq and latency", async () => {
  const { server, client } = setup();
  const sub = client.subscribe("news");
  assert.equal(sub.state, "subscribing");
  assert.equal(client.subscribe("news"), sub, "subscribe() returns the existing subscription");
  const subscribed = nextEvent(sub, "subscribed");
  await client.connect();
  const ev = await subscribed;
  assert.equal(ev.resubscribed, false);
  assert.equal(ev.subscriptionId, "s1");
  assert.equal(sub.state, "subscribed");
  const order = server.received.map((r) => r.msg.method);
  assert.deepEqual(order, ["auth", "subscribe"]);

  const got = [];
  const all = [];
  sub.on("message", (m) => got.push(m));
  client.on("message", (m) => all.push(m));
  server.last.broadcast("news", 1, { a: 1 });
  server.last.broadcast("other", 1, "not ours");
  assert.equal(got.length, 1);
  assert.equal(all.length, 1);
  assert.deepEqual(got[0].payload, { a: 1 });
  assert.equal(got[0].seq, 1);
  assert.equal(got[0].channel, "news");
  assert.equal(typeof got[0].latency, "number");
  assert.ok(got[0].latency >= 0 && got[0].latency < 1000);
  assert.equal(sub.lastSeq, 1);
  client.disconnect();
});

test("a seq gap is reported on the subscription and on the client", async () => {
  const { server, client } = setup();
  const sub = client.subscribe("news");
  await client.connect();
  await sub.ready(1000);
  const gaps = [];
  const clientGaps = [];
  const seqs = [];
  sub.on("gap", (g) => gaps.push(g));
  client.on("gap", (g) => clientGaps.push(g));
  sub.on("message", (m) => seqs.push(m.seq));
  for (const s of [1, 2, 5, 6, 9]) server.last.broadcast("news", s);
  assert.deepEqual(seqs, [1, 2, 5, 6, 9]);
  assert.deepEqual(gaps, [
    { channel: "news", reason: "seq", expected: 3, got: 5, missed: 2 },
    { channel: "news", reason: "seq", expected: 7, got: 9, missed: 2 },
  ]);
  assert.deepEqual(clientGaps, gaps);
  client.disconnect();
});

test("publish resolves with the server result; error replies reject with a typed error", async () => {
  const { server, client } = setup();
  await client.connect();
  const r = await client.publish("news", "hello", { x: [1, 2] });
  assert.equal(r.id, "m1");
  const sent = server.sent("publish")[0];
  assert.deepEqual(sent.params, { channel: "news", event: "hello", payload: { x: [1, 2] } });

  await client.publish("news", "nothing");
  assert.equal(server.sent("publish")[1].params.payload, null, "an omitted payload is sent as null");

  server.handlers.publish = () => ({ error: { code: "PermissionDenied", message: "no publish scope" } });
  await assert.rejects(client.publish("news", "x", 1), (e) => {
    assert.ok(e instanceof BroadcasterError);
    assert.equal(e.code, "PermissionDenied");
    assert.match(e.message, /no publish scope/);
    return true;
  });
  client.disconnect();
});

test("a request without a reply times out with code Timeout", async () => {
  const { server, client } = setup({ requestTimeout: 60 });
  await client.connect();
  server.handlers.publish = () => undefined;
  const t0 = Date.now();
  await assert.rejects(client.publish("news", "x", 1), (e) => e.code === "Timeout");
  assert.ok(Date.now() - t0 < 1000);
  assert.equal(client.state, "connected", "a request timeout alone does not drop the connection");
  client.disconnect();
});

test("requests made while connecting wait for the connection", async () => {
  const { server, client } = setup();
  const p = client.publish("news", "early", 1); // before connect()
  await assert.rejects(p, (e) => e.code === "Disconnected", "not connecting at all: rejects at once");
  client.connect();
  const q = client.publish("news", "while-connecting", 2);
  assert.equal(client.state, "connecting");
  const r = await q;
  assert.equal(r.id, "m1");
  assert.deepEqual(server.received.map((x) => x.msg.method), ["auth", "publish"]);
  client.disconnect();
});

test("after the connection drops it reconnects, re-authenticates with a fresh token and resubscribes; seq restarts at 1", async () => {
  const { server, client, tokens } = setup();
  const sub = client.subscribe("news");
  const other = client.subscribe("chat:1");
  await client.connect();
  await sub.ready(1000);
  await other.ready(1000);
  server.last.broadcast("news", 1);
  server.last.broadcast("news", 2);

  const connecting = nextEvent(client, "connecting");
  const resub = nextEvent(sub, "subscribed");
  const reconnected = nextEvent(client, "connected");
  const first = server.last;
  server.handlers.publish = () => undefined; // make sure it is still in flight when the server goes
  const pending = client.publish("news", "in-flight", 1).catch((e) => e);
  await waitFor(() => server.sent("publish", first).length === 1, 1000, "publish sent");
  first.serverClose(1001, "going away");
  const c = await connecting;
  assert.deepEqual(c, { code: 1001, reason: "going away" });
  assert.equal(client.state, "connecting");
  assert.equal(sub.state, "subscribing");
  const err = await pending;
  assert.ok(err instanceof BroadcasterError);
  assert.equal(err.code, "ConnectionClosed");

  assert.deepEqual(await reconnected, { reconnected: true });
  const ev = await resub;
  assert.equal(ev.resubscribed, true);
  assert.notEqual(server.last, first);
  assert.equal(tokens.length, 2);
  assert.equal(tokens[1].req.reason, "reconnect");
  assert.equal(server.sent("auth", server.last)[0].params.token, tokens[1].t);
  await other.ready(1000);
  assert.deepEqual(server.sent("subscribe", server.last).map((m) => m.params.channel).sort(), ["chat:1", "news"]);

  const gaps = [];
  sub.on("gap", (g) => gaps.push(g));
  server.last.broadcast("news", 1);
  server.last.broadcast("news", 2);
  assert.deepEqual(gaps, [], "seq restarting at 1 after a resubscription is not a gap");
  assert.equal(sub.lastSeq, 2);
  client.disconnect();
});

test("reconnect retries with growing delays while the server is down", async () => {
  const { server, client } = setup({ minReconnectDelay: 20, maxReconnectDelay: 80, random: () => 0.999 });
  await client.connect();
  server.refuse = true;
  const times = [];
  server.last.serverClose(1006, "");
  const start = Date.now();
  await waitFor(() => server.sockets.length >= 5, 3000, "4 reconnect attempts");
  times.push(Date.now() - start);
  // delays ≈ 20, 40, 80, 80 (random → 1 picks the top of each jitter range)
  assert.ok(times[0] >= 200, `4 attempts took ${times[0]} ms, expected >= ~220`);
  server.refuse = false;
  await waitFor(() => client.state === "connected", 2000, "reconnect");
  client.disconnect();
});

test("backoffDelay grows exponentially, is capped and jittered into [base/2, base]", () => {
  const lo = () => 0;
  const hi = () => 0.9999999;
  assert.equal(backoffDelay(0, 500, 20000, lo), 250);
  assert.equal(backoffDelay(0, 500, 20000, hi), 500);
  assert.equal(backoffDelay(3, 500, 20000, lo), 2000);
  assert.equal(backoffDelay(3, 500, 20000, hi), 4000);
  assert.equal(backoffDelay(10, 500, 20000, hi), 20000);
  assert.equal(backoffDelay(1000, 500, 20000, lo), 10000);
  for (let i = 0; i < 50; i++) {
    const d = backoffDelay(2, 500, 20000);
    assert.ok(d >= 1000 && d <= 2000, `jittered delay ${d}`);
  }
});

test("an authentication failure stops the client and rejects connect()", async () => {
  const { server, client } = setup();
  server.handlers.auth = () => ({ error: { code: "Unauthenticated", message: "bad signature" } });
  const disconnected = nextEvent(client, "disconnected");
  await assert.rejects(client.connect(), (e) => e instanceof BroadcasterError && e.code === "Unauthenticated");
  const ev = await disconnected;
  assert.equal(ev.error.code, "Unauthenticated");
  assert.equal(client.state, "disconnected");
  await sleep(100);
  assert.equal(server.sockets.length, 1, "no reconnect after a refused token");
});

test("getToken failures are retried; an Unauthenticated error from getToken stops", async () => {
  let calls = 0;
  const server = new FakeServer();
  const client = track(new Broadcaster("ws://fake", {
    ...FAST,
    WebSocket: server.WebSocket,
    getToken: () => {
      calls++;
      if (calls < 3) throw new Error("token service down");
      return jwt({ sub: "u", exp: future(600) });
    },
  }));
  const errors = [];
  client.on("error", (e) => errors.push(e.type));
  await client.connect();
  assert.equal(calls, 3);
  assert.deepEqual(errors, ["token", "token"]);
  client.disconnect();

  const c2 = track(new Broadcaster("ws://fake", {
    ...FAST,
    WebSocket: server.WebSocket,
    getToken: () => {
      throw new BroadcasterError("Unauthenticated", "logged out");
    },
  }));
  await assert.rejects(c2.connect(), (e) => e.code === "Unauthenticated");
  assert.equal(c2.state, "disconnected");
});

test("the token is refreshed before exp by re-sending auth on the same connection", async () => {
  const server = new FakeServer();
  let n = 0;
  const client = track(new Broadcaster("ws://fake", {
    ...FAST,
    WebSocket: server.WebSocket,
    refreshMargin: 60000, // capped at half the remaining life: 2 s token → refresh after ~1 s
    getToken: () => jwt({ sub: "u", n: ++n, exp: Date.now() / 1000 + 2, authorizedChannels: ["news"], scope: ["subscribe"] }),
  }));
  await client.connect();
  const refreshed = nextEvent(client, "refreshed", 4000);
  const ev = await refreshed;
  assert.equal(typeof ev.exp, "number");
  assert.equal(server.sockets.length, 1, "refresh does not reconnect");
  const auths = server.sent("auth");
  assert.equal(auths.length, 2);
  assert.notEqual(auths[0].params.token, auths[1].params.token);
  assert.equal(decodeJwtClaims(auths[1].params.token).n, 2);
  client.disconnect();
});

test("a refresh whose token no longer lists a channel drops that subscription locally", async () => {
  const server = new FakeServer();
  let channels = ["news", "chat:1"];
  const client = track(new Broadcaster("ws://fake", {
    ...FAST,
    WebSocket: server.WebSocket,
    getToken: () => jwt({ sub: "u", exp: future(3600), authorizedChannels: channels, scope: ["subscribe"] }),
  }));
  const news = client.subscribe("news");
  const chat = client.subscribe("chat:1");
  await client.connect();
  await Promise.all([news.ready(1000), chat.ready(1000)]);
  channels = ["news"];
  const unsub = nextEvent(chat, "unsubscribed");
  await client.refreshToken();
  const ev = await unsub;
  assert.equal(ev.reason, "unauthorized");
  assert.equal(ev.error.code, "PermissionDenied");
  assert.equal(chat.state, "unsubscribed");
  assert.equal(news.state, "subscribed");
  client.disconnect();
});

test("close code 4001 (token expired) leads to a reconnect with a new token", async () => {
  const { server, client, tokens } = setup();
  await client.connect();
  const again = nextEvent(client, "connected");
  server.last.serverClose(4001, "token expired");
  await again;
  assert.equal(tokens.length, 2);
  client.disconnect();
});

test("an idle connection sends heartbeats; an unanswered heartbeat drops and reconnects", async () => {
  const { server, client } = setup({ heartbeatInterval: 40, heartbeatTimeout: 60 });
  await client.connect();
  await waitFor(() => server.sent("heartbeat").length >= 2, 2000, "two heartbeats");
  const hb = server.sent("heartbeat")[0];
  assert.equal(hb.params, undefined, "heartbeat has no params");
  assert.equal(client.state, "connected");

  const first = server.last;
  first.dead = true; // the network silently drops everything
  const connecting = nextEvent(client, "connecting", 2000);
  const ev = await connecting;
  assert.equal(ev.code, 4000);
  assert.match(ev.reason, /heartbeat/);
  await waitFor(() => client.state === "connected" && server.last !== first, 2000, "reconnect");
  client.disconnect();
});

test("traffic from the server postpones heartbeats", async () => {
  const { server, client } = setup({ heartbeatInterval: 250, heartbeatTimeout: 500 });
  const sub = client.subscribe("news");
  await client.connect();
  await sub.ready(1000);
  const stop = Date.now() + 700;
  let seq = 0;
  while (Date.now() < stop) {
    server.last.broadcast("news", ++seq);
    await sleep(20);
  }
  assert.equal(server.sent("heartbeat").length, 0);
  client.disconnect();
});

test("unsubscribe sends unsubscribe and stops delivery; broadcasts still in flight are ignored", async () => {
  const { server, client } = setup();
  const sub = client.subscribe("news");
  await client.connect();
  await sub.ready(1000);
  const got = [];
  sub.on("message", (m) => got.push(m.seq));
  server.last.broadcast("news", 1);
  const unsubscribed = nextEvent(sub, "unsubscribed");
  const p = sub.unsubscribe();
  assert.equal(sub.state, "unsubscribed");
  server.last.broadcast("news", 2); // sent by the server before it processed the unsubscribe
  await p;
  assert.deepEqual(await unsubscribed, { channel: "news", reason: "client", error: undefined });
  assert.deepEqual(server.sent("unsubscribe")[0].params, { channel: "news" });
  assert.deepEqual(got, [1]);

  // subscribing again starts a fresh subscription whose seq starts at 1 without a gap
  const gaps = [];
  sub.on("gap", (g) => gaps.push(g));
  client.subscribe("news");
  await sub.ready(1000);
  server.last.broadcast("news", 1);
  assert.deepEqual(got, [1, 1]);
  assert.deepEqual(gaps, []);
  client.disconnect();
});

test("a refused subscription ends with an error event; others are unaffected", async () => {
  const { server, client } = setup();
  server.handlers.subscribe = (msg) =>
    msg.params.channel === "secret"
      ? { error: { code: "PermissionDenied", message: "channel not authorized" } }
      : { result: { subscriptionId: "ok", timestamp: new Date().toISOString() } };
  await client.connect();
  const bad = client.subscribe("secret");
  const good = client.subscribe("news");
  const errors = [];
  bad.on("error", (e) => errors.push(e.code));
  await assert.rejects(bad.ready(1000), (e) => e.code === "PermissionDenied");
  await good.ready(1000);
  assert.equal(bad.state, "unsubscribed");
  assert.deepEqual(errors, ["PermissionDenied"]);
  client.disconnect();
});

test("subscriptionId is a string; a number from an older server becomes its decimal text", async () => {
  const { server, client } = setup();
  server.handlers.subscribe = (msg) => ({
    result: { subscriptionId: msg.params.channel === "old" ? 72057594037927937 : "sub-7", timestamp: "t" },
  });
  await client.connect();
  const a = client.subscribe("news");
  const b = client.subscribe("old");
  await Promise.all([a.ready(1000), b.ready(1000)]);
  assert.equal(a.subscriptionId, "sub-7");
  assert.equal(typeof b.subscriptionId, "string");
  assert.equal(b.subscriptionId, String(72057594037927937));
  client.disconnect();
});

test("a transient subscribe error is retried", async () => {
  const { server, client } = setup();
  let n = 0;
  server.handlers.subscribe = () =>
    ++n < 3 ? { error: { code: "Unavailable", message: "broker down" } } : { result: { subscriptionId: "x", timestamp: "t" } };
  await client.connect();
  const sub = client.subscribe("news");
  await sub.ready(2000);
  assert.equal(n, 3);
  client.disconnect();
});

test("disconnect() rejects pending requests and stops reconnecting; connect() starts again", async () => {
  const { server, client } = setup();
  await client.connect();
  server.handlers.publish = () => undefined;
  const p = client.publish("news", "x", 1);
  const ev = nextEvent(client, "disconnected");
  client.disconnect();
  await assert.rejects(p, (e) => e.code === "Disconnected");
  assert.equal((await ev).code, 1000);
  assert.equal(server.last.closedBy, "client");
  await sleep(60);
  assert.equal(server.sockets.length, 1);
  await client.connect();
  assert.equal(server.sockets.length, 2);
  client.disconnect();
});

test("a connect() nobody awaits does not cause an unhandled rejection when disconnect() ends it", async () => {
  const { server, client } = setup();
  server.refuse = true;
  const unhandled = [];
  const onUnhandled = (e) => unhandled.push(e);
  process.on("unhandledRejection", onUnhandled);
  client.connect(); // fire and forget
  await sleep(30);
  client.disconnect();
  await sleep(30);
  process.off("unhandledRejection", onUnhandled);
  assert.deepEqual(unhandled, []);
  assert.equal(client.state, "disconnected");
});

test("with reconnect: false a dropped connection ends in disconnected", async () => {
  const { server, client } = setup({ reconnect: false });
  await client.connect();
  const ev = nextEvent(client, "disconnected");
  server.last.serverClose(1011, "internal");
  assert.equal((await ev).code, 1011);
  assert.equal(client.state, "disconnected");
});

test("server error notifications and junk frames surface as error events and do not break the client", async () => {
  const { server, client } = setup();
  await client.connect();
  const errors = [];
  client.on("error", (e) => errors.push([e.type, e.error.code]));
  server.last.push({ error: { code: "InvalidArgument", message: "bad notification" } });
  server.last.push("not json{");
  server.last.push({ method: "somethingNew", params: {} });
  server.last.push({ requestId: 999999, result: {} }); // late reply: ignored
  assert.deepEqual(errors, [
    ["server", "InvalidArgument"],
    ["protocol", "BadResponse"],
  ]);
  assert.equal((await client.heartbeat()).timestamp.endsWith("Z"), true);
  client.disconnect();
});

test("a listener that throws does not break delivery to other listeners", async () => {
  const { server, client } = setup();
  const sub = client.subscribe("news");
  await client.connect();
  await sub.ready(1000);
  const got = [];
  const uncaught = [];
  const saved = globalThis.reportError;
  globalThis.reportError = (e) => uncaught.push(e.message); // what browsers have; Node falls back to a throw

  sub.on("message", () => {
    throw new Error("listener bug");
  });
  sub.on("message", (m) => got.push(m.seq));
  server.last.broadcast("news", 1);
  await sleep(20);
  if (saved) globalThis.reportError = saved;
  else delete globalThis.reportError;
  assert.deepEqual(got, [1]);
  assert.deepEqual(uncaught, ["listener bug"]);
  client.disconnect();
});

test("a connect attempt that never completes times out and retries", async () => {
  const { server, client } = setup({ connectTimeout: 50 });
  server.handlers.auth = (msg, ws) => (server.sockets.length === 1 ? undefined : { result: { success: true } });
  await client.connect();
  assert.equal(server.sockets.length, 2);
  assert.equal(server.sockets[0].closedBy, "client");
  client.disconnect();
});

test("decodeJwtClaims reads the payload and rejects junk", () => {
  const t = jwt({ sub: "ü", exp: 123, authorizedChannels: ["a"] });
  assert.deepEqual(decodeJwtClaims(t), { sub: "ü", exp: 123, authorizedChannels: ["a"] });
  assert.equal(decodeJwtClaims("a.b"), null);
  assert.equal(decodeJwtClaims("a.!!!.c"), null);
  assert.equal(decodeJwtClaims(`x.${Buffer.from("[1]").toString("base64url")}.y`), null);
});

test("without a WebSocket implementation connect() rejects clearly", async () => {
  const client = new Broadcaster("ws://x", { WebSocket: undefined, token: "t" });
  if (typeof globalThis.WebSocket !== "undefined") return; // Node >= 22 / --experimental-websocket has one
  await assert.rejects(client.connect(), /WebSocket/);
});

// ----- channel positions, recovery and history (PROTOCOL.md "(ext) Channel positions, history and recovery") -----

const POS = { positions: true };

/** Records a subscription's messages and events in order; `until(n)` awaits n messages. */
function record(emitter) {
  const log = [];
  const msgs = [];
  const waiters = [];
  emitter.on("message", (m) => {
    msgs.push(m);
    log.push(`message ${m.offset}/${m.seq}`);
    for (const w of [...waiters]) if (msgs.length >= w.n) w.resolve(msgs);
  });
  emitter.on("subscribed", (e) => log.push(`subscribed ${e.recovered}`));
  emitter.on("gap", (g) => log.push(`gap ${g.reason}`));
  msgs.log = log;
  msgs.until = (n, timeout = 2000) =>
    msgs.length >= n
      ? Promise.resolve(msgs)
      : new Promise((resolve, reject) => {
          waiters.push({ n, resolve });
          setTimeout(() => reject(new Error(`got ${msgs.length} of ${n} messages`)), timeout);
        });
  return msgs;
}

/** Connects and subscribes to `channel`; resolves with the subscription once subscribed. */
async function connectedAndSubscribed(client, channel = "news") {
  const sub = client.subscribe(channel);
  await client.connect();
  await sub.ready(1000);
  return sub;
}

test("broadcasts carry offset and epoch; the subscription tracks its position from the result and every message", async () => {
  const { server, client } = setup({}, POS);
  server.publish("news"); // offset 1, before anyone subscribes
  const sub = client.subscribe("news");
  const subscribed = nextEvent(sub, "subscribed");
  await client.connect();
  const ev = await subscribed;
  assert.equal(ev.recovered, undefined, "no since sent on a first subscribe");
  assert.equal(ev.since, null);
  assert.deepEqual(ev.position, { epoch: "e1", offset: 1 });
  assert.equal(server.sent("subscribe")[0].params.since, undefined);
  assert.deepEqual(sub.position, { epoch: "e1", offset: 1 });
  assert.equal(sub.recovered, undefined);

  const got = record(sub);
  server.publish("news", "a", 1);
  server.publish("news", "b", 2);
  await got.until(2);
  assert.deepEqual(got.map((m) => [m.seq, m.offset, m.epoch]), [[1, 2, "e1"], [2, 3, "e1"]]);
  assert.deepEqual(sub.position, { epoch: "e1", offset: 3 });
  sub.position.offset = 99; // a copy
  assert.equal(sub.position.offset, 3);
});

test("after a reconnect the resubscribe sends since; the missed messages are replayed (seq 1, 2, …), then live ones", async () => {
  const { server, client } = setup({}, POS);
  const sub = await connectedAndSubscribed(client);
  const got = record(sub);
  const clientGaps = [];
  client.on("gap", (g) => clientGaps.push(g));
  server.publish("news", "live", 1);
  server.publish("news", "live", 2);
  await got.until(2);
  const resubscribed = nextEvent(client, "subscribed");
  server.last.serverClose(1006, "");
  for (let i = 3; i <= 5; i++) server.publish("news", "missed", i); // nobody is connected
  const ev = await resubscribed;
  assert.equal(ev.resubscribed, true);
  assert.equal(ev.recovered, true);
  assert.deepEqual(ev.since, { epoch: "e1", offset: 2 });
  assert.deepEqual(ev.position, { epoch: "e1", offset: 5 });
  assert.deepEqual(server.sent("subscribe", server.last)[0].params, { channel: "news", since: { epoch: "e1", offset: 2 } });
  assert.equal(sub.recovered, true);
  // the replay came in the same read as the result; it is delivered after the subscribed event
  await got.until(5);
  server.publish("news", "live", 6);
  await got.until(6);
  assert.deepEqual(got.log, ["message 1/1", "message 2/2", "subscribed true", "message 3/1", "message 4/2", "message 5/3", "message 6/4"]);
  assert.deepEqual(got.map((m) => m.payload), [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(clientGaps, []);
  assert.deepEqual(sub.position, { epoch: "e1", offset: 6 });
});

test("a connection lost during a replay resumes from the last replayed message, not from the result's offset", async () => {
  const { server, client } = setup({}, POS);
  const sub = await connectedAndSubscribed(client);
  const got = record(sub);
  server.last.serverClose(1006, "");
  for (let i = 1; i <= 4; i++) server.publish("news", "missed", i);
  // the next connection dies right after the result and the first replayed message
  const orig = server.subscribeNow.bind(server);
  server.subscribeNow = (msg, ws) => {
    const r = orig(msg, ws);
    server.subscribeNow = orig;
    return { ...r, after: () => (ws.deliver(server.channel("news").pubs[0]), ws.serverClose(1006, "")) };
  };
  await got.until(4);
  const since = server.sent("subscribe").map((m) => m.params.since);
  assert.deepEqual(since, [undefined, { epoch: "e1", offset: 0 }, { epoch: "e1", offset: 1 }]);
  assert.deepEqual(got.map((m) => m.offset), [1, 2, 3, 4]);
});

test("a resubscribe that cannot recover reports recovered: false and a gap with reason recovery", async () => {
  const { server, client } = setup({}, { ...POS, historySize: 2 });
  const sub = await connectedAndSubscribed(client);
  const got = record(sub);
  const clientGaps = [];
  client.on("gap", (g) => clientGaps.push(g));
  server.publish("news", "live", 1);
  await got.until(1);
  const gap = nextEvent(sub, "gap");
  server.last.serverClose(1006, "");
  for (let i = 2; i <= 6; i++) server.publish("news", "missed", i); // history keeps only 5 and 6
  const g = await gap;
  assert.deepEqual(g, {
    channel: "news",
    reason: "recovery",
    expected: 2,
    got: 7,
    missed: 5,
    since: { epoch: "e1", offset: 1 },
    position: { epoch: "e1", offset: 6 },
  });
  assert.deepEqual(clientGaps, [g]);
  assert.equal(sub.recovered, false);
  assert.deepEqual(sub.position, { epoch: "e1", offset: 6 }, "tracking goes on from the channel's position");
  server.publish("news", "live", 7);
  await got.until(2);
  assert.deepEqual(got.log, ["message 1/1", "subscribed false", "gap recovery", "message 7/1"]);

  // the channel's history is lost: a new epoch, the number of lost messages is unknown
  const gap2 = nextEvent(sub, "gap");
  server.last.serverClose(1006, "");
  server.newEpoch("news", "e2");
  server.publish("news", "new-epoch", 8);
  const g2 = await gap2;
  assert.equal(g2.reason, "recovery");
  assert.equal(g2.missed, null);
  assert.deepEqual(g2.since, { epoch: "e1", offset: 7 });
  assert.deepEqual(g2.position, { epoch: "e2", offset: 1 });
  assert.deepEqual(sub.position, { epoch: "e2", offset: 1 });
});

test("recovered: false with nothing published meanwhile is not a gap", async () => {
  const { server, client } = setup({}, { ...POS, historySize: 0 });
  const sub = await connectedAndSubscribed(client);
  server.publish("news"); // not kept: history is off
  await waitFor(() => sub.lastSeq === 1, 1000, "message");
  const gaps = [];
  sub.on("gap", (g) => gaps.push(g));
  server.handlers.subscribe = (msg, ws) => {
    const r = server.subscribeNow(msg, ws);
    r.result.recovered = false; // history off: the server cannot tell that nothing was missed
    return r;
  };
  const ev = nextEvent(sub, "subscribed");
  server.last.serverClose(1006, "");
  assert.equal((await ev).recovered, false);
  assert.deepEqual(gaps, []);
});

test("a server without positions: no since is sent, recovered stays undefined, offset and epoch are null", async () => {
  const { server, client } = setup();
  const sub = await connectedAndSubscribed(client);
  server.last.broadcast("news", 1);
  assert.equal(sub.position, null);
  const ev = nextEvent(sub, "subscribed");
  server.last.serverClose(1006, "");
  const e = await ev;
  assert.equal(e.recovered, undefined);
  assert.equal(e.position, null);
  assert.deepEqual(server.sent("subscribe", server.last)[0].params, { channel: "news" });
  const got = record(sub);
  server.last.broadcast("news", 1);
  assert.equal(got[0].offset, null);
  assert.equal(got[0].epoch, null);
});

test("a since the server does not answer with recovered: true counts as not recovered", async () => {
  const { server, client } = setup();
  const sub = client.subscribe("news", { since: { epoch: "e1", offset: 4 } });
  const gap = nextEvent(sub, "gap");
  await client.connect();
  assert.deepEqual(server.sent("subscribe")[0].params.since, { epoch: "e1", offset: 4 });
  const g = await gap;
  assert.equal(sub.recovered, false);
  assert.deepEqual(g, { channel: "news", reason: "recovery", expected: 5, got: 5, missed: null, since: { epoch: "e1", offset: 4 }, position: null });
});

test("subscribe(channel, { since }) resumes from a stored position; unsubscribe forgets the position", async () => {
  const { server, client } = setup({ recover: false }, POS);
  for (let i = 1; i <= 3; i++) server.publish("news", "old", i);
  await client.connect();
  const sub = client.subscribe("news", { since: { epoch: "e1", offset: 1 } });
  const got = record(sub);
  await got.until(2);
  assert.equal(sub.recovered, true);
  assert.deepEqual(got.map((m) => [m.offset, m.seq]), [[2, 1], [3, 2]]);
  assert.equal(client.subscribe("news", { since: { epoch: "e1", offset: 0 } }), sub, "ignored while active");

  // recover: false: a reconnect does not ask to resume
  const resub = nextEvent(sub, "subscribed");
  server.last.serverClose(1006, "");
  assert.equal((await resub).recovered, undefined);
  assert.equal(server.sent("subscribe", server.last)[0].params.since, undefined);

  await sub.unsubscribe();
  assert.equal(sub.position, null);
  assert.equal(sub.recovered, undefined);
  client.subscribe("news");
  await sub.ready(1000);
  assert.equal(server.sent("subscribe", server.last)[1].params.since, undefined);
});

test("history() sends channel, limit and since and resolves with the typed result", async () => {
  const { server, client } = setup({}, POS);
  for (let i = 1; i <= 5; i++) server.publish("news", "e", i);
  await client.connect();
  const latest = await client.history("news", { limit: 2 });
  assert.deepEqual(server.sent("history")[0].params, { channel: "news", limit: 2 });
  assert.equal(latest.epoch, "e1");
  assert.equal(latest.offset, 5);
  assert.deepEqual(latest.publications.map((p) => [p.offset, p.payload, p.channel, p.event]), [[4, 4, "news", "e"], [5, 5, "news", "e"]]);
  assert.equal(typeof latest.publications[0].createTime, "string");
  const after = await client.history("news", { since: { epoch: "e1", offset: 3 } });
  assert.deepEqual(server.sent("history")[1].params, { channel: "news", since: { epoch: "e1", offset: 3 } });
  assert.deepEqual(after.publications.map((p) => p.offset), [4, 5]);
  const other = await client.history("news", { since: { epoch: "old", offset: 3 } });
  assert.deepEqual(other.publications, []);
  assert.equal(other.epoch, "e1");
  await client.history("news");
  assert.deepEqual(server.sent("history")[3].params, { channel: "news" }, "no limit, no since");

  server.handlers.history = () => ({ error: { code: "PermissionDenied", message: "no" } });
  await assert.rejects(client.history("secret"), (e) => e instanceof BroadcasterError && e.code === "PermissionDenied");
  server.handlers.history = () => ({ result: { epoch: "e1" } });
  await assert.rejects(client.history("news"), (e) => e.code === "BadResponse");
});

test("a subscribe on a socket that is already closing waits for the reconnect instead of giving up", async () => {
  const { server, client } = setup();
  await client.connect();
  const first = server.last;
  first.readyState = 2; // closing: send() throws, the close event has not arrived yet
  const sub = client.subscribe("news");
  const errors = [];
  sub.on("error", (e) => errors.push(e));
  await sleep(5); // let the failed send settle
  assert.equal(sub.state, "subscribing");
  first.readyState = 3;
  first.onclose?.({ code: 1006, reason: "" });
  await sub.ready(1000);
  assert.notEqual(server.last, first);
  assert.deepEqual(errors, []);
});

// ----- connection failures that report only `error` (issue 19) ---------------------------------------------

test("an error event without a close event (Node 20 on ECONNREFUSED) retries on the backoff schedule", async () => {
  const { server, client } = setup({ connectTimeout: 5000, minReconnectDelay: 10, maxReconnectDelay: 20 });
  server.refuse = "error-only";
  const codes = [];
  client.on("connecting", (e) => codes.push(e.code));
  const t0 = Date.now();
  client.connect();
  await waitFor(() => server.sockets.length >= 4, 1500, "4 attempts well within one connect timeout");
  assert.ok(Date.now() - t0 < 1500);
  assert.deepEqual(codes.slice(0, 3), [0, 1006, 1006]);
  server.refuse = false;
  await client.connect();
  assert.equal(client.state, "connected");
});

/** A local TCP port nobody listens on (bound, then released). */
async function closedPort() {
  const srv = net.createServer();
  await new Promise((r) => srv.listen(0, "127.0.0.1", r));
  const { port } = srv.address();
  await new Promise((r) => srv.close(r));
  return port;
}

test("with Node's built-in WebSocket a reconnect against a closed port follows the backoff, not the connect timeout", { skip: typeof WebSocket === "undefined" && "no built-in WebSocket" }, async () => {
  const port = await closedPort();
  const client = track(new Broadcaster(`ws://127.0.0.1:${port}/broadcaster/websocket`, {
    token: "t",
    connectTimeout: 10000,
    minReconnectDelay: 20,
    maxReconnectDelay: 40,
    heartbeatInterval: 0,
  }));
  const failures = [];
  const three = new Promise((resolve) =>
    client.on("connecting", (e) => {
      if (e.code !== 0) failures.push({ code: e.code, at: Date.now() });
      if (failures.length === 3) resolve();
    }),
  );
  const t0 = Date.now();
  client.connect();
  await Promise.race([three, sleep(5000).then(() => assert.fail(`only ${failures.length} failed attempts in 5 s`))]);
  const took = Date.now() - t0;
  assert.ok(took < 3000, `3 refused attempts took ${took} ms (connect timeout 10000)`);
  assert.deepEqual(failures.map((f) => f.code), [1006, 1006, 1006]);
  assert.equal(client.state, "connecting");
});

// ----- debug logging and browser online/offline (issue 19) -------------------------------------------------

test("debug: a logger function receives what the client does; debug: true uses console.debug", async () => {
  const lines = [];
  const { server, client } = setup({ debug: (...args) => lines.push(args.join(" ")) }, POS);
  const sub = client.subscribe("news");
  await client.connect();
  await sub.ready(1000);
  server.publish("news");
  await waitFor(() => sub.lastSeq === 1, 1000, "message");
  const resub = nextEvent(sub, "subscribed");
  server.last.serverClose(1006, "");
  await resub;
  assert.ok(lines.every((l) => l.startsWith("[broadcaster] ")), lines.join("\n"));
  const text = lines.join("\n");
  for (const want of [/connect ws:\/\/fake/, /opening WebSocket/, /^\[broadcaster\] connected$/m, /subscribe news since e1:1/, /connection closed 1006/, /reconnecting in \d+ ms/, /subscribed news sub-2 recovered/]) {
    assert.match(text, want);
  }

  const saved = console.debug;
  const seen = [];
  console.debug = (...args) => seen.push(args);
  try {
    const c = track(new Broadcaster("ws://fake", { ...FAST, WebSocket: server.WebSocket, token: "t", debug: true }));
    await c.connect();
  } finally {
    console.debug = saved;
  }
  assert.ok(seen.length > 0 && seen.every((a) => a[0] === "[broadcaster]"));

  const quiet = track(new Broadcaster("ws://fake", { ...FAST, WebSocket: server.WebSocket, token: "t" }));
  console.debug = (...args) => seen.push(args);
  const n = seen.length;
  try {
    await quiet.connect();
  } finally {
    console.debug = saved;
  }
  assert.equal(seen.length, n, "silent by default");
});

/** Runs fn with a browser-like `window` (an EventTarget) and `navigator.onLine`, then restores the globals. */
async function withBrowserGlobals(fn) {
  const savedWindow = Object.getOwnPropertyDescriptor(globalThis, "window");
  const savedNavigator = Object.getOwnPropertyDescriptor(globalThis, "navigator");
  const win = new EventTarget();
  const nav = { onLine: true };
  Object.defineProperty(globalThis, "window", { value: win, configurable: true, writable: true });
  Object.defineProperty(globalThis, "navigator", { value: nav, configurable: true, writable: true });
  try {
    await fn(win, nav);
  } finally {
    for (const [name, d] of [["window", savedWindow], ["navigator", savedNavigator]]) {
      if (d) Object.defineProperty(globalThis, name, d);
      else delete globalThis[name];
    }
  }
}

test("browsers: offline holds the retries back; the online event reconnects at once", async () => {
  await withBrowserGlobals(async (win, nav) => {
    const { server, client } = setup({ minReconnectDelay: 10, maxReconnectDelay: 10000 });
    await client.connect();
    nav.onLine = false;
    server.refuse = true;
    const lost = nextEvent(client, "connecting");
    server.last.serverClose(1006, "");
    await lost;
    await sleep(150); // checks that nothing happens: at 10 ms backoff this would be several attempts
    assert.equal(server.sockets.length, 1, "no attempt while offline (only a probe after maxReconnectDelay)");
    nav.onLine = true;
    server.refuse = false;
    const t0 = Date.now();
    const back = nextEvent(client, "connected", 1000);
    win.dispatchEvent(new Event("online"));
    await back;
    assert.ok(Date.now() - t0 < 1000);

    // while connected an online event changes nothing; after disconnect() the client stops listening
    win.dispatchEvent(new Event("online"));
    assert.equal(server.sockets.length, 2);
    client.disconnect();
    win.dispatchEvent(new Event("online"));
    await sleep(30);
    assert.equal(client.state, "disconnected");
    assert.equal(server.sockets.length, 2);
  });
});

test("browsers: an online event during the backoff skips the rest of it", async () => {
  await withBrowserGlobals(async (win) => {
    const { server, client } = setup({ minReconnectDelay: 5000, maxReconnectDelay: 5000 });
    await client.connect();
    const lost = nextEvent(client, "connecting");
    server.last.serverClose(1006, "");
    await lost;
    const back = nextEvent(client, "connected", 1000);
    win.dispatchEvent(new Event("online"));
    await back;
    assert.equal(server.sockets.length, 2);
  });
});

// ----- presence (PROTOCOL.md "(ext) Presence") and the server API's notifications ---------------------------

test("joinLeave is sent with every (re)subscribe; join and leave reach the subscription and the client", async () => {
  const { server, client } = setup();
  const sub = client.subscribe("news", { joinLeave: true });
  await client.connect();
  await sub.ready(1000);
  assert.equal(server.sent("subscribe")[0].params.joinLeave, true);
  const seen = [];
  sub.on("join", (e) => seen.push(["sub join", e]));
  sub.on("leave", (e) => seen.push(["sub leave", e]));
  client.on("join", (e) => seen.push(["client join", e]));
  client.on("leave", (e) => seen.push(["client leave", e]));
  const gaps = [];
  sub.on("gap", (g) => gaps.push(g));
  server.last.broadcast("news", 1);
  server.last.push({ method: "join", params: { channel: "news", clientId: "n-7", user: "bob", info: { name: "Bob" } } });
  server.last.push({ method: "leave", params: { channel: "news", clientId: "n-8", user: "eve" } });
  server.last.broadcast("news", 2);
  const bob = { channel: "news", clientId: "n-7", user: "bob", info: { name: "Bob" } };
  const eve = { channel: "news", clientId: "n-8", user: "eve" };
  assert.deepEqual(seen, [["sub join", bob], ["client join", bob], ["sub leave", eve], ["client leave", eve]]);
  assert.equal("info" in seen[2][1], false, "no info claim, no info member");
  assert.deepEqual(gaps, [], "join and leave do not count in seq");
  assert.equal(sub.lastSeq, 2);

  // a reconnect asks again
  server.last.serverClose(1001, "restart");
  await nextEvent(sub, "subscribed");
  assert.equal(server.sent("subscribe").at(-1).params.joinLeave, true);
  client.disconnect();
});

test("without joinLeave nothing is asked and stray join frames are ignored; presence calls send the channel", async () => {
  const { server, client } = setup();
  server.handlers.presence = (msg) => ({ result: { clients: { "n-1": { user: "u", info: 5 } }, truncated: true, echo: msg.params } });
  server.handlers.presenceStats = () => ({ result: { numClients: 3, numUsers: 2 } });
  const sub = client.subscribe("news");
  await client.connect();
  await sub.ready(1000);
  assert.equal("joinLeave" in server.sent("subscribe")[0].params, false);
  const joins = [];
  sub.on("join", (e) => joins.push(e));
  server.last.push({ method: "join", params: { channel: "news", clientId: "x", user: "y" } });
  assert.deepEqual(joins, []);
  const p = await sub.presence();
  assert.deepEqual(p.clients, { "n-1": { user: "u", info: 5 } });
  assert.equal(p.truncated, true);
  assert.deepEqual(server.sent("presence")[0].params, { channel: "news" });
  assert.deepEqual(await client.presenceStats("chat:1"), { numClients: 3, numUsers: 2 });
  assert.deepEqual(server.sent("presenceStats")[0].params, { channel: "chat:1" });
  client.disconnect();
});

test("presence errors are typed BroadcasterErrors; a malformed answer is BadResponse", async () => {
  const { server, client } = setup();
  server.handlers.presence = () => ({ error: { code: "FailedPrecondition", message: "presence is off for news" } });
  server.handlers.presenceStats = () => ({ result: { numClients: "3" } });
  await client.connect();
  await assert.rejects(client.presence("news"), (e) => e instanceof BroadcasterError && e.code === "FailedPrecondition");
  await assert.rejects(client.presenceStats("news"), (e) => e instanceof BroadcasterError && e.code === "BadResponse");
  server.handlers.presence = () => ({ result: { clients: [] } });
  await assert.rejects(client.presence("news"), (e) => e.code === "BadResponse");
  client.disconnect();
});

test("a server-side unsubscribe ends the subscription with reason server; it is not renewed on reconnect", async () => {
  const { server, client } = setup();
  const sub = client.subscribe("news");
  const other = client.subscribe("chat:1");
  await client.connect();
  await Promise.all([sub.ready(1000), other.ready(1000)]);
  const ended = nextEvent(sub, "unsubscribed");
  server.last.push({ method: "unsubscribe", params: { channel: "news" } });
  assert.deepEqual(await ended, { channel: "news", reason: "server", error: undefined });
  assert.equal(sub.state, "unsubscribed");
  assert.equal(other.state, "subscribed");
  const before = server.sent("subscribe").length;
  server.last.serverClose(1001, "restart");
  await nextEvent(other, "subscribed");
  assert.deepEqual(server.sent("subscribe").slice(before).map((m) => m.params.channel), ["chat:1"]);
  // the app may subscribe again
  client.subscribe("news");
  await sub.ready(1000);
  client.disconnect();
});

test("close code 4003 (disconnected by the server API) stops the client instead of reconnecting", async () => {
  const { server, client } = setup();
  await client.connect();
  const stopped = nextEvent(client, "disconnected");
  server.last.serverClose(4003, "disconnected by server");
  const ev = await stopped;
  assert.equal(ev.code, 4003);
  assert.equal(ev.reason, "disconnected by server");
  assert.equal(ev.error.code, "Disconnected");
  assert.equal(client.state, "disconnected");
  assert.equal(server.sockets.length, 1, "no reconnect attempt");
  await client.connect(); // the app may come back
  assert.equal(server.sockets.length, 2);
  client.disconnect();
});
