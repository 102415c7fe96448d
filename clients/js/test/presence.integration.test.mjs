// Integration tests of the SDK's presence against the real server (PROTOCOL.md, "(ext) Presence"): presence on
// for every channel (--presence) except `quiet:*`, where a [[channels]] rule turns it off. Several real clients
// on 127.0.0.1; skipped when the binary is not built.
import { test, before, after, afterEach } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Broadcaster, BroadcasterError } from "../dist/broadcaster.js";
import { serverBinary, startServer, mintToken, restPublish, next } from "./harness.mjs";

const skip = serverBinary() ? false : "server binary not built (build/broadcaster); set BROADCASTER_BIN to run";

let server;
let dir;
const clients = [];

before(async () => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), "bc-presence-"));
  const config = join(dir, "broadcaster.toml");
  writeFileSync(config, '[[channels]]\npattern = "quiet:*"\npresence = false\n');
  server = await startServer({ args: ["--presence", "--config", config] });
});
after(async () => {
  for (const c of clients.splice(0)) c.disconnect();
  if (server) await server.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});
afterEach(() => {
  for (const c of clients.splice(0)) c.disconnect();
});

const CHANNELS = ["room:1", "room:2", "room:3", "room:4", "room:5", "quiet:1"];

function client(sub, info) {
  const c = new Broadcaster(server.ws, {
    getToken: () => mintToken({ sub, channels: CHANNELS, extra: info === undefined ? {} : { info } }),
    minReconnectDelay: 50,
    maxReconnectDelay: 500,
    requestTimeout: 5000,
  });
  clients.push(c);
  return c;
}

async function connected(...cs) {
  await Promise.all(cs.map((c) => c.connect()));
  return cs;
}

test("a join is seen by the others with user and info, never by the joiner; presence lists everyone", { skip }, async () => {
  const [alice, bob] = await connected(client("alice", { name: "Alice" }), client("bob"));
  const sa = alice.subscribe("room:1", { joinLeave: true });
  await sa.ready(5000);
  assert.equal(sa.joinLeave, true);
  const ownJoins = [];
  const sb = bob.subscribe("room:1", { joinLeave: true });
  sb.on("join", (ev) => ownJoins.push(ev));
  const clientJoin = next(alice, "join"); // the client-level event carries the same
  const joined = await next(sa, "join");
  assert.equal(joined.channel, "room:1");
  assert.equal(joined.user, "bob");
  assert.equal(typeof joined.clientId, "string");
  assert.ok(joined.clientId.length > 0);
  assert.equal("info" in joined, false, "bob's token has no info claim");
  assert.deepEqual(await clientJoin, joined);
  await sb.ready(5000);

  const { clients: members, truncated } = await sb.presence();
  assert.notEqual(truncated, true);
  const entries = Object.entries(members);
  assert.equal(entries.length, 2);
  const byUser = Object.fromEntries(entries.map(([id, m]) => [m.user, { id, ...m }]));
  assert.deepEqual(byUser.alice.info, { name: "Alice" });
  assert.equal("info" in byUser.bob, false);
  assert.equal(byUser.bob.id, joined.clientId, "the join's clientId is the presence key");
  assert.notEqual(byUser.alice.id, byUser.bob.id);
  // the client-level call answers the same
  assert.deepEqual(Object.keys((await alice.presence("room:1")).clients).sort(), entries.map(([id]) => id).sort());
  assert.deepEqual(ownJoins, [], "a connection never gets its own join");
});

test("presenceStats counts connections and distinct users", { skip }, async () => {
  const [a1, a2, b] = await connected(client("ann"), client("ann"), client("ben"));
  await Promise.all([a1, a2, b].map((c) => c.subscribe("room:2").ready(5000)));
  assert.deepEqual(await b.presenceStats("room:2"), { numClients: 3, numUsers: 2 });
  await a2.getSubscription("room:2").unsubscribe();
  assert.deepEqual(await b.getSubscription("room:2").presenceStats(), { numClients: 2, numUsers: 2 });
  // presence does not need a subscription of one's own, only the permission to subscribe
  const c = (await connected(client("cat")))[0];
  assert.equal(Object.keys((await c.presence("room:2")).clients).length, 2);
});

test("a leave follows an unsubscribe and a disconnect; presence drops the member", { skip }, async () => {
  const [watcher, u1, u2] = await connected(client("watcher"), client("u1", ["tag"]), client("u2"));
  const sw = watcher.subscribe("room:3", { joinLeave: true });
  await sw.ready(5000);
  const joins = [next(sw, "join", (e) => e.user === "u1"), next(sw, "join", (e) => e.user === "u2")];
  const s1 = u1.subscribe("room:3");
  const s2 = u2.subscribe("room:3");
  await Promise.all([s1.ready(5000), s2.ready(5000)]);
  const [j1, j2] = await Promise.all(joins);
  assert.deepEqual(j1.info, ["tag"], "info may be any JSON value");

  const left1 = next(sw, "leave", (e) => e.user === "u1");
  await s1.unsubscribe();
  assert.deepEqual(await left1, j1, "a leave carries what the connection joined with");

  const left2 = next(watcher, "leave", (e) => e.user === "u2");
  u2.disconnect();
  assert.deepEqual(await left2, j2);

  const { clients: members } = await sw.presence();
  assert.deepEqual(Object.values(members).map((m) => m.user), ["watcher"]);
});

test("join and leave take no seq: the broadcasts around them stay consecutive, with no gap", { skip }, async () => {
  const [a, b] = await connected(client("reader"), client("visitor"));
  const sa = a.subscribe("room:4", { joinLeave: true });
  await sa.ready(5000);
  const log = [];
  const gaps = [];
  sa.on("message", (m) => log.push(`m${m.seq}:${m.payload}`));
  sa.on("join", (e) => log.push(`join:${e.user}`));
  sa.on("leave", (e) => log.push(`leave:${e.user}`));
  sa.on("gap", (g) => gaps.push(g));
  const published = (n) => next(sa, "message", (m) => m.payload === n);

  let seen = published(1);
  assert.equal((await restPublish(server, "room:4", "ev", 1)).status, 200);
  await seen;
  const joined = next(sa, "join");
  const sb = b.subscribe("room:4");
  await sb.ready(5000);
  await joined;
  seen = published(2);
  assert.equal((await restPublish(server, "room:4", "ev", 2)).status, 200);
  await seen;
  const left = next(sa, "leave");
  await sb.unsubscribe();
  await left;
  seen = published(3);
  assert.equal((await restPublish(server, "room:4", "ev", 3)).status, 200);
  await seen;

  assert.deepEqual(log, ["m1:1", "join:visitor", "m2:2", "leave:visitor", "m3:3"]);
  assert.deepEqual(gaps, []);
  assert.equal(sa.lastSeq, 3);
});

test("without joinLeave a subscription gets no join or leave", { skip }, async () => {
  const [a, b] = await connected(client("plain"), client("other"));
  const sa = a.subscribe("room:5");
  await sa.ready(5000);
  const events = [];
  sa.on("join", (e) => events.push(e));
  a.on("join", (e) => events.push(e));
  await b.subscribe("room:5").ready(5000);
  // a broadcast published after b's subscribe reaches a after anything the server sent a about that subscribe
  const after = next(sa, "message");
  assert.equal((await restPublish(server, "room:5", "ev", "after")).status, 200);
  await after;
  assert.deepEqual(events, []);
});

test("where presence is off: typed FailedPrecondition errors, and a plain subscription still works", { skip }, async () => {
  const [c] = await connected(client("q"));
  const isFailedPrecondition = (e) => e instanceof BroadcasterError && e.code === "FailedPrecondition";
  await assert.rejects(c.presence("quiet:1"), isFailedPrecondition);
  await assert.rejects(c.presenceStats("quiet:1"), isFailedPrecondition);
  const sub = c.subscribe("quiet:1", { joinLeave: true });
  const errors = [];
  sub.on("error", (e) => errors.push(e.code));
  await assert.rejects(sub.ready(5000), isFailedPrecondition);
  assert.equal(sub.state, "unsubscribed");
  assert.deepEqual(errors, ["FailedPrecondition"]);
  // the same subscription without join/leave is accepted
  sub.subscribe({ joinLeave: false });
  await sub.ready(5000);
  assert.equal(sub.joinLeave, false);
  const got = next(sub, "message");
  assert.equal((await restPublish(server, "quiet:1", "ev", { ok: true })).status, 200);
  assert.deepEqual((await got).payload, { ok: true });
  // a channel the token does not authorize is refused before presence is considered
  await assert.rejects(c.presence("elsewhere"), (e) => e instanceof BroadcasterError && e.code === "PermissionDenied");
});
