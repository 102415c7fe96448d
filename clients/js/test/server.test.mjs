// Unit tests of the backend entry (dist/server.js) against a scripted HTTP server on 127.0.0.1: what goes on the
// wire, the retry policy (503 only, bounded, Retry-After honoured, never a 4xx, no blind publish repeat after a
// network error), error mapping, and token minting.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import net from "node:net";
import { createHmac } from "node:crypto";
import { BroadcasterApi, BroadcasterApiError, BroadcasterError, mintToken, parseTtl } from "../dist/server.js";
import { BroadcasterError as ClientError } from "../dist/broadcaster.js";

// The scripted server: each request takes the next answer from `script` (the last one repeats).
let server;
let base;
let script = [];
let seen = [];
before(async () => {
  server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      seen.push({ method: req.method, url: req.url, headers: req.headers, body, at: Date.now() });
      const answer = script.length > 1 ? script.shift() : script[0];
      if (answer === "hang") return; // never answers: the client's timeout must end it
      res.writeHead(answer.status, { "Content-Type": answer.type ?? "application/json", ...(answer.headers ?? {}) });
      res.end(typeof answer.body === "string" ? answer.body : JSON.stringify(answer.body ?? {}));
    });
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${server.address().port}/broadcaster`;
});
after(async () => {
  server.closeAllConnections?.();
  await new Promise((r) => server.close(r));
});

function api(opts = {}) {
  script = [];
  seen = [];
  return new BroadcasterApi({ baseUrl: base, apiKey: "k1", minRetryDelay: 5, maxRetryDelay: 50, timeout: 2000, ...opts });
}
const unavailable = (headers) => ({ status: 503, headers, body: { error: { code: "Unavailable", message: "broker unavailable, retry later" } } });
const ok = (body) => ({ status: 200, body });

test("publish POSTs the JSON body with the API key and resolves with the result", async () => {
  const a = api({ baseUrl: `${base}/` }); // a trailing slash is fine
  script = [ok({ id: "m1", createTime: "2026-01-01T00:00:00.000Z" })];
  assert.deepEqual(await a.publish("chat:1", "text", { body: "hi" }), { id: "m1", createTime: "2026-01-01T00:00:00.000Z" });
  const [r] = seen;
  assert.equal(r.method, "POST");
  assert.equal(r.url, "/broadcaster/publish");
  assert.equal(r.headers.authorization, "Bearer k1");
  assert.equal(r.headers["content-type"], "application/json");
  assert.deepEqual(JSON.parse(r.body), { channel: "chat:1", event: "text", payload: { body: "hi" } });
  await a.publish("chat:1", "empty");
  assert.equal(JSON.parse(seen[1].body).payload, null, "no payload is null");
});

test("the GET calls and the server API calls use their paths, queries and bodies", async () => {
  const a = api();
  script = [ok({ publications: [], epoch: "e", offset: 4 })];
  await a.history("chat:1", { limit: 2, since: { epoch: "e", offset: 1 } });
  await a.history("news");
  script = [ok({ clients: {} })];
  await a.presence("room:a b");
  await a.presenceStats("room");
  script = [ok({ success: true })];
  assert.equal(await a.disconnect("alice"), undefined);
  assert.equal(await a.unsubscribe("bob", "news"), undefined);
  script = [ok({ nodeId: "n" })];
  assert.deepEqual(await a.info(), { nodeId: "n" });
  assert.deepEqual(
    seen.map((r) => `${r.method} ${r.url} ${r.body}`),
    [
      "GET /broadcaster/history?channel=chat%3A1&limit=2&epoch=e&offset=1 ",
      "GET /broadcaster/history?channel=news ",
      "GET /broadcaster/presence?channel=room%3Aa+b ",
      "GET /broadcaster/presence-stats?channel=room ",
      'POST /broadcaster/disconnect {"user":"alice"}',
      'POST /broadcaster/unsubscribe {"user":"bob","channel":"news"}',
      "GET /broadcaster/info ",
    ],
  );
  assert.ok(seen.every((r) => r.headers.authorization === "Bearer k1"));
});

test("a 503 is retried with backoff until it succeeds", async () => {
  const a = api({ retries: 3 });
  script = [unavailable(), unavailable(), ok({ id: "m2", createTime: "t" })];
  assert.deepEqual(await a.publish("news", "e", 1), { id: "m2", createTime: "t" });
  assert.equal(seen.length, 3);
  assert.ok(seen.every((r) => r.body === seen[0].body), "the same request each time");
});

test("retries are bounded: after retries + 1 attempts the 503 surfaces as Unavailable", async () => {
  const a = api({ retries: 2 });
  script = [unavailable()];
  await assert.rejects(a.publish("news", "e"), (e) => {
    assert.ok(e instanceof BroadcasterApiError);
    assert.ok(e instanceof ClientError, "the client's error class");
    assert.equal(e.code, "Unavailable");
    assert.equal(e.status, 503);
    assert.match(e.message, /broker unavailable/);
    return true;
  });
  assert.equal(seen.length, 3);
  const b = api({ retries: 0 });
  script = [unavailable()];
  await assert.rejects(b.presence("news"), (e) => e.code === "Unavailable");
  assert.equal(seen.length, 1);
});

test("Retry-After is honoured; one longer than maxRetryDelay fails at once and is reported", async () => {
  const a = api({ retries: 2, maxRetryDelay: 5000 });
  script = [unavailable({ "Retry-After": "1" }), ok({ id: "m3", createTime: "t" })];
  await a.publish("news", "e");
  assert.equal(seen.length, 2);
  const waited = seen[1].at - seen[0].at;
  assert.ok(waited >= 950, `waited ${waited} ms for Retry-After: 1`);

  const b = api({ retries: 5, maxRetryDelay: 2000 });
  script = [unavailable({ "Retry-After": "30" })];
  await assert.rejects(b.publish("news", "e"), (e) => e.code === "Unavailable" && e.retryAfter === 30000);
  assert.equal(seen.length, 1, "no 30 s wait, no retry");

  const c = api({ retries: 1, maxRetryDelay: 5000 });
  script = [unavailable({ "Retry-After": new Date(Date.now() - 1000).toUTCString() }), ok({ success: true })];
  await c.disconnect("u"); // an HTTP date in the past: retry at once
  assert.equal(seen.length, 2);
});

test("a 4xx is never retried, 429 included; the protocol's code and the status are kept", async () => {
  for (const [status, code] of [
    [400, "InvalidArgument"],
    [401, "Unauthenticated"],
    [403, "PermissionDenied"],
    [404, "NotFound"],
    [413, "ResourceExhausted"],
    [429, "ResourceExhausted"],
  ]) {
    const a = api({ retries: 3 });
    script = [{ status, body: { error: { code, message: `m${status}` } } }];
    await assert.rejects(a.publish("news", "e"), (e) => e instanceof BroadcasterApiError && e.code === code && e.status === status && /m\d+/.test(e.message));
    assert.equal(seen.length, 1, `${status} was sent once`);
  }
  // FailedPrecondition (presence off) arrives as a 400 with its own code
  const a = api();
  script = [{ status: 400, body: { error: { code: "FailedPrecondition", message: "presence is off" } } }];
  await assert.rejects(a.presenceStats("quiet"), (e) => e.code === "FailedPrecondition" && e.status === 400);
});

test("an answer without the protocol's error body is mapped from its status; non-JSON success is BadResponse", async () => {
  const a = api({ retries: 0 });
  script = [{ status: 502, type: "text/html", body: "<html>bad gateway</html>" }];
  await assert.rejects(a.info(), (e) => e.code === "Internal" && e.status === 502);
  script = [{ status: 200, type: "text/plain", body: "ok" }];
  await assert.rejects(a.info(), (e) => e.code === "BadResponse" && e.status === 200);
});

test("a network error is retried for calls safe to repeat, never for publish", async () => {
  // a port nobody listens on: every attempt is refused
  const probe = net.createServer();
  await new Promise((r) => probe.listen(0, "127.0.0.1", r));
  const port = probe.address().port;
  await new Promise((r) => probe.close(r));
  let attempts = 0;
  const counting = (...args) => {
    attempts++;
    return fetch(...args);
  };
  const a = new BroadcasterApi({ baseUrl: `http://127.0.0.1:${port}/broadcaster`, apiKey: "k", retries: 2, minRetryDelay: 5, maxRetryDelay: 20, fetch: counting });
  await assert.rejects(a.publish("news", "e"), (e) => e instanceof BroadcasterApiError && e.code === "Unavailable" && e.status === 0);
  assert.equal(attempts, 1, "publish might have gone through: not repeated");
  attempts = 0;
  await assert.rejects(a.history("news"), (e) => e.code === "Unavailable");
  assert.equal(attempts, 3);
  assert.equal(await a.health(), false, "health answers false when the server cannot be reached");
});

test("an attempt that gets no answer times out with code Timeout", async () => {
  const a = api({ timeout: 200, retries: 2 });
  script = ["hang"];
  await assert.rejects(a.publish("news", "e"), (e) => e.code === "Timeout" && e.status === 0);
  assert.equal(seen.length, 1, "a publish that timed out may have been applied: not repeated");
});

test("health is true on 200 and false on 503, without the API key and without retries", async () => {
  const a = api({ retries: 3 });
  script = [{ status: 200, type: "text/plain", body: "ok" }];
  assert.equal(await a.health(), true);
  script = [{ status: 503, type: "text/plain", body: "unavailable" }];
  seen = [];
  assert.equal(await a.health(), false);
  assert.equal(seen.length, 1);
  assert.equal(seen[0].url, "/broadcaster/health");
  assert.equal(seen[0].headers.authorization, undefined);
});

test("the constructor refuses a missing apiKey or a baseUrl that is not http(s)", () => {
  assert.throws(() => new BroadcasterApi({ baseUrl: "ws://x/broadcaster", apiKey: "k" }), (e) => e instanceof BroadcasterError && e.code === "InvalidArgument");
  assert.throws(() => new BroadcasterApi({ baseUrl: "http://x/broadcaster", apiKey: "" }), (e) => e.code === "InvalidArgument");
});

// ----- tokens ---------------------------------------------------------------------------------------------

const decode = (part) => JSON.parse(Buffer.from(part, "base64url").toString("utf8"));

test("mintToken signs HS256 over the claims broadcaster token writes", () => {
  const token = mintToken({ secret: "s3cret", sub: "alice", channels: ["news", "chat:1"], scope: ["subscribe", "publish"], ttl: "15m", info: { name: "Alice" }, now: 1_800_000_000 });
  const [h, p, sig] = token.split(".");
  assert.deepEqual(decode(h), { alg: "HS256", typ: "JWT" });
  assert.equal(Buffer.from(p, "base64url").toString(), '{"sub":"alice","aud":"broadcaster","iat":1800000000,"exp":1800000900,"authorizedChannels":["news","chat:1"],"scope":["subscribe","publish"],"info":{"name":"Alice"}}');
  assert.equal(sig, createHmac("sha256", "s3cret").update(`${h}.${p}`).digest("base64url"));
  // defaults: scope subscribe, one hour, now, no info
  const claims = decode(mintToken({ secret: "s", sub: "bob", channels: ["news"] }).split(".")[1]);
  assert.deepEqual(claims.scope, ["subscribe"]);
  assert.equal(claims.exp - claims.iat, 3600);
  assert.ok(Math.abs(claims.iat - Date.now() / 1000) < 5);
  assert.equal("info" in claims, false);
  assert.equal(decode(mintToken({ secret: "s", sub: "b", channels: ["n"], info: null }).split(".")[1]).info, null, "null info is kept");
});

test("mintToken refuses what the server would refuse", () => {
  const good = { secret: "s", sub: "a", channels: ["news"] };
  const refused = (o, what) => assert.throws(() => mintToken({ ...good, ...o }), (e) => e instanceof BroadcasterError && e.code === "InvalidArgument", what);
  refused({ secret: "" }, "no secret");
  refused({ sub: "" }, "empty sub");
  refused({ channels: [] }, "no channels");
  refused({ channels: ["news", ""] }, "an empty channel");
  refused({ scope: ["admin"] }, "unknown scope");
  refused({ ttl: 0 }, "zero ttl");
  refused({ ttl: "1w" }, "unknown unit");
  refused({ info: { blob: "x".repeat(1100) } }, "info over 1 KiB");
  refused({ info: () => 1 }, "info that is not JSON");
});

test("parseTtl takes seconds and s, m, h, d like the token command", () => {
  assert.equal(parseTtl(90), 90);
  assert.equal(parseTtl("90"), 90);
  assert.equal(parseTtl("45s"), 45);
  assert.equal(parseTtl("15m"), 900);
  assert.equal(parseTtl("2h"), 7200);
  assert.equal(parseTtl("7d"), 604800);
  for (const bad of [-1, 1.5, "", "h", "-5m", "1.5h", "10 m"]) assert.throws(() => parseTtl(bad), (e) => e.code === "InvalidArgument", String(bad));
});
