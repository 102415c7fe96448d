// Integration tests of the backend entry (dist/server.js) against the real server: REST publish, history,
// presence, the server API's disconnect and unsubscribe as SDK clients see them, info and health, tokens from
// mintToken (and the same bytes as `broadcaster token`), and 503 retries while the Redis broker is down. All on
// 127.0.0.1; skipped when the binary is not built (the Redis test also when redis-server is missing).
import { test, before, after, afterEach } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import net from "node:net";
import { Broadcaster, BroadcasterError } from "../dist/broadcaster.js";
import { BroadcasterApi, BroadcasterApiError, mintToken } from "../dist/server.js";
import { serverBinary, startServer, SECRET, API_KEY, next } from "./harness.mjs";

const bin = serverBinary();
const skip = bin ? false : "server binary not built (build/broadcaster); set BROADCASTER_BIN to run";
const REDIS = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"].find((p) => existsSync(p));

let server;
let api;
const clients = [];

before(async () => {
  if (skip) return;
  server = await startServer({ args: ["--presence", "--history-size", "10"] });
  api = new BroadcasterApi({ baseUrl: server.http, apiKey: API_KEY, timeout: 5000 });
});
after(async () => {
  for (const c of clients.splice(0)) c.disconnect();
  if (server) await server.stop();
});
afterEach(() => {
  for (const c of clients.splice(0)) c.disconnect();
});

/** An SDK client whose tokens come from mintToken with the server's secret. */
function client(sub, { channels = ["news", "room:1", "room:2", "room:3"], info, url = server.ws, secret = SECRET } = {}) {
  const c = new Broadcaster(url, {
    getToken: () => mintToken({ secret, sub, channels, scope: ["subscribe", "publish"], ttl: "10m", info }),
    minReconnectDelay: 50,
    maxReconnectDelay: 500,
    requestTimeout: 5000,
  });
  clients.push(c);
  return c;
}

test("publish reaches a subscribed client with the id and createTime the backend got", { skip }, async () => {
  const c = client("reader");
  await c.connect();
  const sub = c.subscribe("news");
  await sub.ready(5000);
  const got = next(sub, "message");
  const r = await api.publish("news", "headline", { title: "hello", n: [1, 2] });
  const m = await got;
  assert.equal(m.id, r.id);
  assert.equal(m.createTime, r.createTime);
  assert.equal(m.event, "headline");
  assert.deepEqual(m.payload, { title: "hello", n: [1, 2] });
  assert.equal(m.seq, 1);
});

test("history returns the latest messages oldest first, and those after a position", { skip }, async () => {
  const ids = [];
  for (const n of [1, 2, 3]) ids.push((await api.publish("room:1", "ev", { n })).id);
  const h = await api.history("room:1", { limit: 2 });
  assert.deepEqual(h.publications.map((p) => p.payload.n), [2, 3]);
  assert.deepEqual(h.publications.map((p) => p.id), ids.slice(1));
  assert.equal(h.offset, h.publications[1].offset);
  const after = await api.history("room:1", { since: { epoch: h.epoch, offset: h.publications[0].offset } });
  assert.deepEqual(after.publications.map((p) => p.payload.n), [3]);
  await assert.rejects(api.history("bad channel!"), (e) => e instanceof BroadcasterApiError && e.code === "InvalidArgument" && e.status === 400);
});

test("presence and presenceStats list the clients with their info", { skip }, async () => {
  const a = client("ann", { info: { name: "Ann" } });
  const b = client("ann");
  const c = client("cid");
  await Promise.all([a, b, c].map((x) => x.connect()));
  await Promise.all([a, b, c].map((x) => x.subscribe("room:2").ready(5000)));
  const { clients: members } = await api.presence("room:2");
  const key = (m) => `${m.user} ${JSON.stringify(m.info ?? null)}`;
  const list = Object.values(members).sort((x, y) => key(x).localeCompare(key(y)));
  assert.deepEqual(list, [{ user: "ann", info: { name: "Ann" } }, { user: "ann" }, { user: "cid" }]);
  assert.deepEqual(await api.presenceStats("room:2"), { numClients: 3, numUsers: 2 });
});

test("disconnect closes every connection of the user with 4003; the client stops, others stay", { skip }, async () => {
  const [m1, m2, other] = [client("mallory"), client("mallory"), client("olivia")];
  await Promise.all([m1, m2, other].map((x) => x.connect()));
  const stopped = [m1, m2].map((x) => next(x, "disconnected"));
  await api.disconnect("mallory");
  for (const ev of await Promise.all(stopped)) {
    assert.equal(ev.code, 4003);
    assert.match(ev.reason, /disconnected by server/);
  }
  assert.equal(m1.state, "disconnected", "the SDK does not reconnect after a server-API disconnect");
  assert.equal(other.state, "connected");
  assert.ok((await other.heartbeat()).timestamp, "the other user's connection still works");
  await api.disconnect("nobody"); // nobody matched: still a success
});

test("unsubscribe ends the user's subscription: the client is told, a watcher sees the leave", { skip }, async () => {
  const [watcher, user] = [client("watcher"), client("ursula")];
  await Promise.all([watcher.connect(), user.connect()]);
  const sw = watcher.subscribe("room:3", { joinLeave: true });
  await sw.ready(5000);
  const su = user.subscribe("room:3");
  const keep = user.subscribe("news");
  await Promise.all([su.ready(5000), keep.ready(5000)]);
  const ended = next(su, "unsubscribed");
  const left = next(sw, "leave", (e) => e.user === "ursula");
  await api.unsubscribe("ursula", "room:3");
  assert.deepEqual(await ended, { channel: "room:3", reason: "server", error: undefined });
  await left;
  assert.equal(keep.state, "subscribed", "other channels are not touched");
  assert.deepEqual(await api.presenceStats("room:3"), { numClients: 1, numUsers: 1 });
});

test("info and health describe the node; a wrong API key is refused once, without retries", { skip }, async () => {
  const info = await api.info();
  assert.match(String(info.nodeId), /^[0-9a-f]{16}$/);
  assert.equal(typeof info.version, "string");
  assert.equal(await api.health(), true);
  let attempts = 0;
  const wrong = new BroadcasterApi({
    baseUrl: server.http,
    apiKey: "not-a-key",
    fetch: (...args) => {
      attempts++;
      return fetch(...args);
    },
  });
  await assert.rejects(wrong.publish("news", "e"), (e) => e instanceof BroadcasterApiError && e.code === "Unauthenticated" && e.status === 401);
  assert.equal(attempts, 1);
});

test("a minted token is accepted by the server; one signed with another secret is refused", { skip }, async () => {
  const good = client("minted", { channels: ["news"] });
  await good.connect();
  await good.subscribe("news").ready(5000);
  const bad = client("forger", { secret: "not-the-server-secret" });
  await assert.rejects(bad.connect(), (e) => e instanceof BroadcasterError && e.code === "Unauthenticated");
  assert.equal(bad.state, "disconnected");
});

test("mintToken signs the same bytes as `broadcaster token`", { skip }, () => {
  const cli = execFileSync(bin, ["token", "--sub", "alice", "--channels", "news,chat:lobby", "--scope", "subscribe,publish", "--ttl", "2h", "--info", '{"name":"Alice","tags":["a"]}', "--jwt-secret", SECRET], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  const iat = JSON.parse(Buffer.from(cli.split(".")[1], "base64url").toString()).iat;
  const ours = mintToken({ secret: SECRET, sub: "alice", channels: ["news", "chat:lobby"], scope: ["subscribe", "publish"], ttl: "2h", info: { name: "Alice", tags: ["a"] }, now: iat });
  assert.equal(ours, cli);
});

async function freePort() {
  const probe = net.createServer();
  await new Promise((r) => probe.listen(0, "127.0.0.1", r));
  const { port } = probe.address();
  await new Promise((r) => probe.close(r));
  return port;
}

test("while the Redis broker is down publish retries its 503s; it goes through once Redis is up", { skip: skip || (!REDIS && "redis-server not installed"), timeout: 60000 }, async () => {
  const port = await freePort();
  const node = await startServer({ args: ["--broker", "redis", "--redis-url", `redis://127.0.0.1:${port}`] });
  let redis;
  try {
    const statuses = [];
    let firstRefusal;
    const refused = new Promise((r) => (firstRefusal = r));
    const watching = async (...args) => {
      const res = await fetch(...args);
      statuses.push(res.status);
      if (res.status === 503) firstRefusal();
      return res;
    };
    // Without retries the 503 surfaces at once.
    const once = new BroadcasterApi({ baseUrl: node.http, apiKey: API_KEY, retries: 0 });
    await assert.rejects(once.publish("news", "e"), (e) => e.code === "Unavailable" && e.status === 503);
    assert.equal(await once.health(), false);

    const patient = new BroadcasterApi({ baseUrl: node.http, apiKey: API_KEY, retries: 60, minRetryDelay: 100, maxRetryDelay: 500, fetch: watching });
    const published = patient.publish("news", "after-outage", { ok: true });
    await refused;
    redis = spawn(REDIS, ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], { stdio: "ignore" });
    const r = await published;
    assert.equal(typeof r.createTime, "string");
    assert.ok(statuses.length >= 2 && statuses.slice(0, -1).every((s) => s === 503) && statuses.at(-1) === 200, `statuses ${statuses}`);
    assert.equal(await patient.health(), true);
  } finally {
    await node.stop();
    if (redis && redis.exitCode === null) {
      redis.kill("SIGTERM");
      await new Promise((r) => redis.once("exit", r));
    }
  }
});
