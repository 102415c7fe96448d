// Integration tests of channel positions, resume and history (PROTOCOL.md "(ext) Channel positions, history
// and recovery") with the compiled SDK against the real server binary (build/broadcaster or $BROADCASTER_BIN),
// over Node's built-in WebSocket, on 127.0.0.1 only. Skipped when the binary is not built. They need a server
// that assigns offsets and keeps history: against one without, they fail (they are not skipped, so that a
// server that stops sending positions cannot pass unnoticed).
import { test, before, after, afterEach } from "node:test";
import net from "node:net";
import assert from "node:assert/strict";
import { Broadcaster } from "../dist/broadcaster.js";
import { serverBinary, startServer, restartServer, mintToken, restPublish } from "./harness.mjs";

const bin = serverBinary();
const skip = !bin ? "server binary not built (build/broadcaster); set BROADCASTER_BIN to run" : false;
const CHANNELS = ["news", "hist", "resume", "stored", "trim", "restart"];

/** Starts a server with history kept (HISTORY_SIZE / HISTORY_TTL are fixed env names in PROTOCOL.md). */
async function startWithHistory(size, opts = {}) {
  const saved = { size: process.env.HISTORY_SIZE, ttl: process.env.HISTORY_TTL };
  process.env.HISTORY_SIZE = String(size);
  process.env.HISTORY_TTL = "300";
  try {
    return opts.restart ? await restartServer(opts.restart) : await startServer();
  } finally {
    for (const [k, v] of [["HISTORY_SIZE", saved.size], ["HISTORY_TTL", saved.ttl]]) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

let server;
const clients = [];

before(async () => {
  if (!skip) server = await startWithHistory(100);
});
after(async () => {
  for (const c of clients.splice(0)) c.disconnect();
  if (server) await server.stop();
});
afterEach(() => {
  for (const c of clients.splice(0)) c.disconnect();
});

function client(url = server.ws, opts = {}) {
  const c = new Broadcaster(url, {
    getToken: () => mintToken({ sub: "recovery", channels: CHANNELS }),
    minReconnectDelay: 50,
    maxReconnectDelay: 200,
    requestTimeout: 5000,
    ...opts,
  });
  clients.push(c);
  return c;
}

/** Collects a subscription's messages and gaps; `until(n)` waits for n messages. */
function collect(sub) {
  const msgs = [];
  const waiters = [];
  msgs.gaps = [];
  sub.on("gap", (g) => msgs.gaps.push(g));
  sub.on("message", (m) => {
    msgs.push(m);
    for (const w of [...waiters]) if (msgs.length >= w.n) w.resolve(msgs);
  });
  msgs.until = (n, timeout = 5000) =>
    msgs.length >= n
      ? Promise.resolve(msgs)
      : new Promise((resolve, reject) => {
          waiters.push({ n, resolve });
          setTimeout(() => reject(new Error(`got ${msgs.length} of ${n} messages on ${sub.channel}`)), timeout);
        });
  return msgs;
}

function event(emitter, name, timeout = 10000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no ${name} event within ${timeout} ms`)), timeout);
    emitter.once(name, (ev) => {
      clearTimeout(t);
      resolve(ev);
    });
  });
}

async function publish(srv, channel, event, payload) {
  const r = await restPublish(srv, channel, event, payload);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body;
}

/** A TCP proxy on 127.0.0.1 that can be taken down (connections cut, new ones refused) and brought back. */
async function startProxy(targetPort) {
  const pairs = new Set();
  let down = false;
  const srv = net.createServer((c) => {
    if (down) return c.destroy();
    const u = net.connect(targetPort, "127.0.0.1");
    const pair = { c, u };
    pairs.add(pair);
    c.pipe(u);
    u.pipe(c);
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
    url: `ws://127.0.0.1:${srv.address().port}/broadcaster/websocket`,
    down() {
      down = true;
      pairs.forEach((p) => (p.c.destroy(), p.u.destroy()));
    },
    up() {
      down = false;
    },
    close() {
      pairs.forEach((p) => (p.c.destroy(), p.u.destroy()));
      srv.close();
    },
  };
}

test("the subscribe result and every broadcast carry the channel's position; offsets grow by one", { skip }, async () => {
  const c = client();
  const sub = c.subscribe("news");
  const subscribed = event(sub, "subscribed");
  await c.connect();
  const ev = await subscribed;
  assert.equal(ev.recovered, undefined, "no since on a first subscribe");
  assert.ok(ev.position, "the subscribe result has epoch and offset");
  assert.equal(typeof ev.position.epoch, "string");
  assert.ok(Number.isInteger(ev.position.offset));
  const got = collect(sub);
  for (let i = 1; i <= 3; i++) await publish(server, "news", "pos", i);
  await got.until(3);
  assert.deepEqual(got.map((m) => m.epoch), Array(3).fill(ev.position.epoch));
  assert.deepEqual(got.map((m) => m.offset), [1, 2, 3].map((i) => ev.position.offset + i));
  assert.deepEqual(sub.position, { epoch: ev.position.epoch, offset: ev.position.offset + 3 });
});

test("history: the latest messages oldest first, those after a position, none from another epoch", { skip }, async () => {
  const c = client();
  await c.connect();
  const sent = [];
  for (let i = 1; i <= 5; i++) sent.push(await publish(server, "hist", "h", { i }));
  const latest = await c.history("hist", { limit: 3 });
  assert.equal(typeof latest.epoch, "string");
  assert.equal(latest.publications.length, 3);
  assert.deepEqual(latest.publications.map((p) => p.payload.i), [3, 4, 5]);
  assert.deepEqual(latest.publications.map((p) => p.id), sent.slice(2).map((s) => s.id));
  assert.deepEqual(latest.publications.map((p) => p.createTime), sent.slice(2).map((s) => s.createTime));
  for (const p of latest.publications) {
    assert.equal(p.channel, "hist");
    assert.equal(p.event, "h");
  }
  const offs = latest.publications.map((p) => p.offset);
  assert.deepEqual(offs, [offs[0], offs[0] + 1, offs[0] + 2]);
  assert.equal(latest.offset, offs[2], "the channel's offset is the last message's");

  const after = await c.history("hist", { since: { epoch: latest.epoch, offset: offs[0] } });
  assert.deepEqual(after.publications.map((p) => p.payload.i), [4, 5]);
  const all = await c.history("hist");
  assert.deepEqual(all.publications.map((p) => p.payload.i), [1, 2, 3, 4, 5]);
  const other = await c.history("hist", { since: { epoch: `not-${latest.epoch}`, offset: 1 } });
  assert.deepEqual(other.publications, []);
  assert.equal(other.epoch, latest.epoch);
  assert.equal(other.offset, latest.offset);
  await assert.rejects(c.history("not-allowed"), (e) => e.code === "PermissionDenied");
});

test("after the connection is lost the client resumes: the missed messages are replayed with seq 1, 2, …, then live ones", { skip }, async () => {
  const proxy = await startProxy(server.port);
  try {
    const c = client(proxy.url);
    const sub = c.subscribe("resume");
    await c.connect();
    await sub.ready(5000);
    const got = collect(sub);
    await publish(server, "resume", "live", 1);
    await got.until(1);

    const lost = event(c, "connecting");
    proxy.down();
    await lost;
    for (let i = 2; i <= 4; i++) await publish(server, "resume", "missed", i);
    const resubscribed = event(sub, "subscribed");
    proxy.up();
    const ev = await resubscribed;
    assert.equal(ev.resubscribed, true);
    assert.equal(ev.recovered, true, "every missed message is replayed");
    assert.deepEqual(ev.since, { epoch: got[0].epoch, offset: got[0].offset });
    assert.equal(sub.recovered, true);
    await got.until(4);
    await publish(server, "resume", "live", 5);
    await got.until(5);
    assert.deepEqual(got.map((m) => m.payload), [1, 2, 3, 4, 5], "nothing lost, nothing doubled, in order");
    assert.deepEqual(got.map((m) => m.seq), [1, 1, 2, 3, 4], "the new subscription's seq counts replay then live");
    assert.deepEqual(got.map((m) => m.offset), [0, 1, 2, 3, 4].map((i) => got[0].offset + i));
    assert.deepEqual(got.gaps, []);
  } finally {
    proxy.close();
  }
});

test("a position stored from an earlier connection resumes on a new client", { skip }, async () => {
  const first = client();
  const sub1 = first.subscribe("stored");
  await first.connect();
  await sub1.ready(5000);
  const got1 = collect(sub1);
  await publish(server, "stored", "seen", 1);
  await got1.until(1);
  const saved = sub1.position;
  first.disconnect();
  await publish(server, "stored", "later", 2);
  await publish(server, "stored", "later", 3);

  const second = client();
  const sub2 = second.subscribe("stored", { since: saved });
  const got2 = collect(sub2);
  const subscribed = event(sub2, "subscribed");
  await second.connect();
  assert.equal((await subscribed).recovered, true);
  await got2.until(2);
  assert.deepEqual(got2.map((m) => [m.payload, m.seq]), [[2, 1], [3, 2]]);
});

test("history trimmed: recovered is false and a gap with reason recovery counts the lost messages", { skip }, async () => {
  const small = await startWithHistory(2);
  const proxy = await startProxy(small.port);
  try {
    const c = client(proxy.url);
    const sub = c.subscribe("trim");
    await c.connect();
    await sub.ready(5000);
    const got = collect(sub);
    await publish(small, "trim", "live", 1);
    await got.until(1);
    const lost = event(c, "connecting");
    proxy.down();
    await lost;
    for (let i = 2; i <= 6; i++) await publish(small, "trim", "missed", i); // only 2 are kept
    const gap = event(sub, "gap");
    const resubscribed = event(sub, "subscribed");
    proxy.up();
    const ev = await resubscribed;
    assert.equal(ev.recovered, false);
    const g = await gap;
    assert.equal(g.reason, "recovery");
    assert.equal(g.missed, 5);
    assert.equal(g.expected, got[0].offset + 1);
    assert.equal(g.got, got[0].offset + 6);
    await publish(small, "trim", "live", 7);
    await got.until(2);
    assert.deepEqual(got.map((m) => [m.payload, m.seq]), [[1, 1], [7, 1]], "nothing replayed; live messages start at seq 1");
  } finally {
    proxy.close();
    await small.stop();
  }
});

// Last: it restarts the shared server on the same port, which loses its in-memory history (a new epoch).
test("after a server restart the epoch changed: recovered is false and the gap's count is unknown", { skip }, async () => {
  const c = client();
  const sub = c.subscribe("restart");
  await c.connect();
  await sub.ready(5000);
  const got = collect(sub);
  await publish(server, "restart", "before", 1);
  await got.until(1);
  const before = sub.position;
  const gap = event(sub, "gap", 15000);
  const resubscribed = event(sub, "subscribed", 15000);
  server = await startWithHistory(100, { restart: server });
  const ev = await resubscribed;
  assert.equal(ev.recovered, false);
  assert.deepEqual(ev.since, before);
  assert.notEqual(ev.position.epoch, before.epoch, "a restarted embedded broker has a new epoch");
  const g = await gap;
  assert.equal(g.reason, "recovery");
  assert.equal(g.missed, null);
  await publish(server, "restart", "after", 2);
  await got.until(2);
  assert.equal(got[1].seq, 1);
  assert.equal(got[1].epoch, ev.position.epoch);
});
