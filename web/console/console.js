// Broadcaster web console: connect with a token (or a dev token from the server), subscribe, watch broadcasts
// live with seq, latency and channel offset, see whether a resubscription recovered what was missed, see who
// else is subscribed (presence, kept live by join/leave), publish, and follow the server's counters. Plain ES
// module, no build step; the SDK is served next to it as ./broadcaster.js.
import { Broadcaster, BroadcasterError } from "./broadcaster.js";

const $ = (id) => document.getElementById(id);
const MAX_ROWS = 500;
const MAX_EVENTS = 200;
const HISTORY = 60; // chart samples, one per second

// The console lives at {BASE}/console/; everything else is relative to BASE.
const base = location.pathname.replace(/\/console(\/.*)?$/, "");
const params = new URLSearchParams(location.search);
const hashParams = new URLSearchParams(location.hash.slice(1));

let client = null;
let devAvailable = false;
let received = 0;
let latencies = []; // latencies (ms) of messages received since the last sample
let receivedSinceSample = 0;
const history = []; // { rate, latency }
let lastCounters = null; // { t, published, deliveries }

// ----- small helpers --------------------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function timeOf(ms) {
  const d = new Date(ms);
  return d.toTimeString().slice(0, 8) + "." + String(d.getMilliseconds()).padStart(3, "0");
}

function logEvent(text, kind = "info") {
  const list = $("events");
  list.prepend(el("li", { class: kind }, el("span", { class: "time" }, timeOf(Date.now())), " ", text));
  while (list.children.length > MAX_EVENTS) list.lastChild.remove();
}

function defaultWsUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${base}/websocket`;
}

function setState(state) {
  const s = $("state");
  s.textContent = state;
  s.dataset.state = state;
  s.className = `badge state-${state}`;
  const active = state !== "disconnected";
  $("connect-btn").disabled = active;
  $("disconnect-btn").disabled = !active;
}

// ----- tokens ---------------------------------------------------------------------------------------------

async function fetchDevToken() {
  const channels = $("dev-channels")
    .value.split(",")
    .map((c) => c.trim())
    .filter(Boolean)
    .map(encodeURIComponent)
    .join(",");
  const res = await fetch(`${base}/console/dev-token${channels ? `?channels=${channels}` : ""}`, { cache: "no-store" });
  if (!res.ok) throw new Error(`dev token: HTTP ${res.status}`);
  const body = await res.json();
  if (!body || typeof body.token !== "string") throw new Error("dev token: unexpected answer");
  return body.token;
}

async function getToken() {
  if (devAvailable && $("use-dev-token").checked) {
    const token = await fetchDevToken();
    $("token").value = token;
    return token;
  }
  const token = $("token").value.trim();
  if (!token) {
    // An Unauthenticated error stops the client instead of retrying forever.
    throw new BroadcasterError("Unauthenticated", "paste a token first");
  }
  return token;
}

async function detectDevMode() {
  try {
    const res = await fetch(`${base}/console/dev-token`, { cache: "no-store" });
    devAvailable = res.ok;
  } catch {
    devAvailable = false;
  }
  $("mode").textContent = devAvailable ? "dev mode" : "token mode";
  $("mode").dataset.mode = devAvailable ? "dev" : "token";
  $("dev-box").hidden = !devAvailable;
  const pasted = hashParams.get("token") || "";
  if (pasted) $("token").value = pasted;
  $("use-dev-token").checked = devAvailable && !pasted;
  updateTokenNote();
}

function updateTokenNote() {
  $("token-note").textContent =
    devAvailable && $("use-dev-token").checked
      ? "The server is in dev mode: a fresh token for these channels is fetched on every (re)connect and refresh."
      : "Paste a token signed with the server's JWT_SECRET (claims: sub, aud \"broadcaster\", exp, iat, authorizedChannels, scope).";
}

// ----- connection -----------------------------------------------------------------------------------------

function connect() {
  if (client) {
    // keep the previous client's subscriptions, and where they got to, for the new one
    for (const sub of client.subscriptions()) {
      if (sub.state === "unsubscribed") continue;
      pendingChannels.add(sub.channel);
      if (sub.position) resumeFrom.set(sub.channel, sub.position);
    }
    client.disconnect();
  }
  const url = $("ws-url").value.trim() || defaultWsUrl();
  // ?debug=1 logs what the SDK does to the browser console
  client = new Broadcaster(url, { getToken, maxReconnectDelay: 5000, debug: params.get("debug") === "1" });
  window.broadcasterConsole.client = client;
  client.on("state", ({ state }) => setState(state));
  client.on("connecting", ({ code, reason }) => {
    if (code) logEvent(`connection lost (${code}${reason ? " " + reason : ""}); reconnecting`, "warn");
    else logEvent(`connecting to ${url}`);
  });
  client.on("connected", ({ reconnected }) => logEvent(reconnected ? "reconnected and re-authenticated" : "connected", "ok"));
  client.on("disconnected", ({ code, reason, error }) =>
    logEvent(`disconnected (${code} ${reason})${error ? ": " + error.message : ""}`, error ? "error" : "info"),
  );
  client.on("error", ({ type, error, channel }) => {
    logEvent(`${type} error${channel ? " on " + channel : ""}: ${error.message}`, "error");
    if (type === "subscribe" && channel) renderSub(client.getSubscription(channel));
  });
  client.on("refreshed", ({ exp }) => logEvent(`token refreshed${exp ? ", expires " + new Date(exp * 1000).toLocaleTimeString() : ""}`));
  client.on("message", onMessage);
  for (const ch of pendingChannels) addSubscription(ch);
  pendingChannels.clear();
  client.connect().catch((e) => logEvent(`connect failed: ${e.message}`, "error"));
}

function disconnect() {
  if (client) client.disconnect();
}

// ----- subscriptions --------------------------------------------------------------------------------------

const pendingChannels = new Set(); // channels to subscribe on the next connect
const resumeFrom = new Map(); // channel → position to resume from on the next connect
const counts = new Map(); // channel → { messages, gaps, lossUnknown, recovered }
// channel → { clients: Map(clientId → {user, info}), mode, truncated, held }; mode is "loading", "live" (presence
// plus join/leave), "snapshot" (presence without join/leave: a [[channels]] rule says join_leave = false), "off"
const members = new Map();
const noJoinLeave = new Set(); // channels whose subscribe with joinLeave was refused: asked without it from then on

function newCounts() {
  return { messages: 0, gaps: 0, lossUnknown: false, recovered: undefined };
}

function positionText(pos) {
  return pos ? `${pos.epoch}:${pos.offset}` : "none";
}

function addSubscription(channel) {
  channel = channel.trim();
  if (!channel) return;
  if (!client) {
    pendingChannels.add(channel);
    renderPending(channel);
    return;
  }
  const existing = client.getSubscription(channel);
  const since = resumeFrom.get(channel);
  resumeFrom.delete(channel);
  const options = { joinLeave: !noJoinLeave.has(channel) };
  if (since) options.since = since;
  const sub = client.subscribe(channel, options);
  if (!counts.has(channel)) counts.set(channel, newCounts());
  if (existing !== sub || !sub.__consoleWired) {
    sub.__consoleWired = true;
    sub.on("state", () => renderSub(sub));
    sub.on("join", (e) => memberEvent(sub, "join", e));
    sub.on("leave", (e) => memberEvent(sub, "leave", e));
    sub.on("subscribed", ({ resubscribed, subscriptionId, recovered, since, position }) => {
      counts.get(channel).recovered = recovered;
      const what = `${resubscribed ? "resubscribed to" : "subscribed to"} ${channel} (${subscriptionId ?? "?"}) at ${positionText(position)}`;
      if (recovered === true) logEvent(`${what}: recovered from ${positionText(since)}, missed messages are replayed (seq restarts at 1)`, "ok");
      else if (recovered === false) logEvent(`${what}: NOT recovered from ${positionText(since)}, messages published meanwhile are lost`, "warn");
      else logEvent(`${what}${resubscribed ? ": seq restarts at 1, nothing replayed (the server sends no positions)" : ""}`, "ok");
      renderSub(sub);
      loadMembers(sub);
    });
    sub.on("unsubscribed", ({ reason, error }) => {
      members.delete(channel);
      if (error?.code === "FailedPrecondition" && sub.joinLeave) {
        // Presence, or join/leave, is off for this channel: subscribe without join/leave rather than not at all.
        noJoinLeave.add(channel);
        logEvent(`no join/leave on ${channel} (${error.message}); subscribing without`, "warn");
        sub.subscribe({ joinLeave: false });
        return renderSub(sub);
      }
      logEvent(`unsubscribed from ${channel} (${reason})${error ? ": " + error.message : ""}`, error ? "error" : "info");
      renderSub(sub);
    });
    sub.on("gap", ({ reason, expected, got, missed, since, position }) => {
      const c = counts.get(channel);
      if (missed === null) c.lossUnknown = true;
      else c.gaps += missed;
      if (reason === "recovery") {
        const count = missed === null ? "an unknown number of messages (the epoch changed)" : `${missed} message${missed === 1 ? "" : "s"}`;
        logEvent(`lost ${count} on ${channel}: could not recover from ${positionText(since)}, channel at ${positionText(position ?? null)}`, "warn");
      } else {
        logEvent(`gap on ${channel}: expected seq ${expected}, got ${got} (${missed} missed)`, "warn");
      }
      renderSub(sub);
    });
  }
  renderSub(sub);
}

// ----- members (presence) ---------------------------------------------------------------------------------

/** Fetches who is subscribed; joins and leaves that arrive meanwhile are held and applied after the answer. */
async function loadMembers(sub) {
  const channel = sub.channel;
  const m = { clients: new Map(), mode: "loading", truncated: false, held: [] };
  members.set(channel, m);
  renderSub(sub);
  try {
    const r = await sub.presence();
    if (members.get(channel) !== m) return; // unsubscribed or resubscribed meanwhile
    for (const [id, member] of Object.entries(r.clients)) m.clients.set(id, member);
    for (const [kind, e] of m.held) applyMember(m, kind, e);
    m.truncated = r.truncated === true;
    m.mode = sub.joinLeave ? "live" : "snapshot";
  } catch (e) {
    if (members.get(channel) !== m) return;
    m.mode = "off";
    if (e.code !== "FailedPrecondition") logEvent(`presence of ${channel}: ${e.message}`, "error");
  }
  m.held = null;
  renderSub(sub);
}

function applyMember(m, kind, e) {
  if (kind === "join") m.clients.set(e.clientId, { user: e.user, info: e.info });
  else m.clients.delete(e.clientId);
}

function memberEvent(sub, kind, e) {
  logEvent(`${e.user} ${kind === "join" ? "joined" : "left"} ${e.channel} (${e.clientId})`);
  const m = members.get(sub.channel);
  if (!m) return;
  if (m.held) m.held.push([kind, e]);
  else applyMember(m, kind, e);
  renderSub(sub);
}

function renderMembers(channel) {
  const m = members.get(channel);
  if (!m) return "";
  const box = el("div", { class: "members", "data-mode": m.mode });
  if (m.mode === "off") {
    box.append(el("span", { class: "members-count" }, "presence is off for this channel"));
    return box;
  }
  if (m.mode === "loading") {
    box.append(el("span", { class: "members-count" }, "members: loading…"));
    return box;
  }
  const users = new Set([...m.clients.values()].map((x) => x.user));
  box.dataset.count = String(m.clients.size);
  const note = m.mode === "snapshot" ? " (as of subscribing: join/leave is off here)" : m.truncated ? " (list truncated by the server)" : "";
  box.append(
    el("span", { class: "members-count", title: "connections subscribed to this channel, on every node" }, `${m.clients.size} member${m.clients.size === 1 ? "" : "s"}, ${users.size} user${users.size === 1 ? "" : "s"}${note}`),
  );
  const sorted = [...m.clients.entries()].sort(([a, x], [b, y]) => x.user.localeCompare(y.user) || a.localeCompare(b));
  for (const [id, x] of sorted) {
    const info = x.info === undefined ? "" : JSON.stringify(x.info);
    box.append(el("span", { class: "member", "data-client-id": id, "data-user": x.user, title: `${id}${info ? " " + info : ""}` }, x.user, info ? el("span", { class: "info" }, info.length > 60 ? info.slice(0, 60) + "…" : info) : ""));
  }
  return box;
}

function subItem(channel) {
  let li = $("subs").querySelector(`li[data-channel="${CSS.escape(channel)}"]`);
  if (!li) {
    li = el("li", { "data-channel": channel });
    $("subs").append(li);
  }
  return li;
}

function renderPending(channel) {
  const li = subItem(channel);
  li.dataset.state = "pending";
  li.replaceChildren(el("span", { class: "channel" }, channel), el("span", { class: "sub-state" }, "waiting for connect"));
}

function renderSub(sub) {
  if (!sub) return;
  const li = subItem(sub.channel);
  const c = counts.get(sub.channel) ?? newCounts();
  li.dataset.state = sub.state;
  // data-recovered: "true" / "false" when the (re)subscription asked to resume, absent otherwise
  if (c.recovered === undefined) delete li.dataset.recovered;
  else li.dataset.recovered = String(c.recovered);
  const pos = sub.position;
  const recovery =
    c.recovered === undefined
      ? ""
      : el("span", { class: `recovery ${c.recovered ? "ok" : "lost"}`, title: "did the last resubscription get the missed messages replayed?" }, c.recovered ? "recovered" : "not recovered");
  const button =
    sub.state === "unsubscribed"
      ? el("button", { type: "button", class: "small", onclick: () => addSubscription(sub.channel) }, "subscribe")
      : el("button", { type: "button", class: "small", onclick: () => sub.unsubscribe() }, "unsubscribe");
  const remove = el("button", { type: "button", class: "small", title: "forget", onclick: () => client.removeSubscription(sub).then(() => li.remove()) }, "×");
  li.replaceChildren(
    el("span", { class: "channel" }, sub.channel),
    el("span", { class: `sub-state ${sub.state}` }, sub.state),
    el("span", { class: "count", "data-count": String(c.messages) }, `${c.messages} msg${c.messages === 1 ? "" : "s"}`),
    el("span", { class: "seq" }, `seq ${sub.lastSeq}`),
    el("span", { class: "offset", title: pos ? `epoch ${pos.epoch}` : "the server sends no channel positions" }, pos ? `offset ${pos.offset}` : "no offset"),
    recovery,
    el("span", { class: c.gaps || c.lossUnknown ? "gaps warn" : "gaps" }, `${c.gaps}${c.lossUnknown ? "+?" : ""} missed`),
    el("span", { class: "actions" }, button, remove),
    renderMembers(sub.channel),
  );
}

// ----- messages -------------------------------------------------------------------------------------------

const lastEpoch = new Map(); // channel → epoch of the last message shown

function onMessage(m) {
  received++;
  receivedSinceSample++;
  if (m.latency !== null) latencies.push(m.latency);
  const c = counts.get(m.channel);
  if (c) c.messages++;
  const payload = JSON.stringify(m.payload);
  const attrs = { "data-channel": m.channel, "data-event": m.event, "data-seq": String(m.seq) };
  if (m.offset !== null) attrs["data-offset"] = String(m.offset);
  if (m.epoch !== null) attrs["data-epoch"] = m.epoch;
  // a new epoch on a channel is worth seeing: its history was lost and offsets started again
  const newEpoch = m.epoch !== null && lastEpoch.has(m.channel) && lastEpoch.get(m.channel) !== m.epoch;
  if (m.epoch !== null) lastEpoch.set(m.channel, m.epoch);
  const row = el(
    "tr",
    attrs,
    el("td", { class: "time" }, timeOf(m.receivedAt)),
    el("td", {}, m.channel),
    el("td", {}, m.event),
    el("td", { class: "num" }, m.seq),
    el("td", { class: "num" }, m.latency === null ? "?" : `${m.latency} ms`),
    el("td", { class: newEpoch ? "num offset new-epoch" : "num offset", title: m.epoch === null ? "no channel position" : `epoch ${m.epoch}` }, m.offset === null ? "–" : newEpoch ? `${m.offset} (epoch ${m.epoch})` : m.offset),
    el("td", { class: "payload", title: payload }, payload.length > 200 ? payload.slice(0, 200) + "…" : payload),
  );
  const body = $("messages");
  body.prepend(row);
  while (body.children.length > MAX_ROWS) body.lastChild.remove();
  $("stat-received").textContent = String(received);
  const sub = client && client.getSubscription(m.channel);
  if (sub) renderSub(sub);
}

async function publish(ev) {
  ev.preventDefault();
  const out = $("pub-result");
  if (!client || client.state !== "connected") {
    out.textContent = "connect first";
    out.className = "note error";
    return;
  }
  const channel = $("pub-channel").value.trim();
  const event = $("pub-event").value.trim();
  const raw = $("pub-payload").value;
  let payload;
  let note = "";
  try {
    payload = raw.trim() === "" ? null : JSON.parse(raw);
  } catch {
    payload = raw;
    note = " (not JSON: sent as a string)";
  }
  out.textContent = "publishing…";
  out.className = "note";
  try {
    const r = await client.publish(channel, event, payload);
    out.textContent = `published ${JSON.stringify(r.id)} at ${r.createTime}${note}`;
    out.className = "note ok";
    out.dataset.id = String(r.id);
  } catch (e) {
    out.textContent = e.message;
    out.className = "note error";
  }
}

// ----- server counters and chart --------------------------------------------------------------------------

/** Parses the Prometheus text format; sums each metric name over its label sets. */
export function parseMetrics(text) {
  const values = new Map();
  for (const line of text.split("\n")) {
    const l = line.trim();
    if (!l || l.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(l);
    if (!m) continue;
    const v = Number(m[3]);
    if (!Number.isFinite(v)) continue;
    values.set(m[1], (values.get(m[1]) ?? 0) + v);
  }
  return values;
}

async function pollMetrics() {
  let metrics = null;
  try {
    const res = await fetch(`${base}/metrics`, { cache: "no-store" });
    if (res.ok) metrics = parseMetrics(await res.text());
  } catch {
    metrics = null;
  }
  const now = performance.now();
  const show = (id, v, digits = 0) => ($(id).textContent = v === undefined || v === null ? "n/a" : v.toFixed(digits));
  show("stat-connections", metrics?.get("broadcaster_connections"));
  show("stat-channels", metrics?.get("broadcaster_channels"));
  const published = metrics?.get("broadcaster_messages_published_total");
  const deliveries = metrics?.get("broadcaster_deliveries_total");
  let rate = null;
  let deliveryRate = null;
  if (lastCounters) {
    const dt = (now - lastCounters.t) / 1000;
    if (published !== undefined && lastCounters.published !== undefined) rate = Math.max(0, (published - lastCounters.published) / dt);
    if (deliveries !== undefined && lastCounters.deliveries !== undefined) deliveryRate = Math.max(0, (deliveries - lastCounters.deliveries) / dt);
  }
  lastCounters = { t: now, published, deliveries };
  show("stat-rate", rate, 1);
  show("stat-deliveries", deliveryRate, 1);
  const latency = latencies.length ? latencies.reduce((a, b) => a + b, 0) / latencies.length : null;
  if (latency !== null) $("stat-latency").textContent = latency.toFixed(1);
  // Without server counters, chart what this page receives instead.
  history.push({ rate: rate ?? (metrics ? null : receivedSinceSample), latency });
  while (history.length > HISTORY) history.shift();
  latencies = [];
  receivedSinceSample = 0;
  drawChart();
}

function drawChart() {
  const canvas = $("chart");
  const ctx = canvas.getContext("2d");
  const w = canvas.width;
  const h = canvas.height;
  const pad = { l: 44, r: 44, t: 10, b: 18 };
  ctx.clearRect(0, 0, w, h);
  ctx.font = "11px system-ui, sans-serif";
  const rates = history.map((s) => s.rate).filter((v) => v !== null);
  const lats = history.map((s) => s.latency).filter((v) => v !== null);
  const maxRate = niceMax(Math.max(1, ...rates));
  const maxLat = niceMax(Math.max(1, ...lats));
  const x = (i) => pad.l + ((w - pad.l - pad.r) * (i + HISTORY - history.length)) / (HISTORY - 1);
  const y = (v, max) => h - pad.b - ((h - pad.t - pad.b) * v) / max;

  ctx.strokeStyle = "#e3e6ea";
  ctx.fillStyle = "#6b7280";
  ctx.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const yy = pad.t + ((h - pad.t - pad.b) * i) / 4;
    ctx.beginPath();
    ctx.moveTo(pad.l, yy);
    ctx.lineTo(w - pad.r, yy);
    ctx.stroke();
    ctx.textAlign = "right";
    ctx.fillText(fmt((maxRate * (4 - i)) / 4), pad.l - 6, yy + 4);
    ctx.textAlign = "left";
    ctx.fillText(fmt((maxLat * (4 - i)) / 4), w - pad.r + 6, yy + 4);
  }
  ctx.textAlign = "center";
  ctx.fillText("−60 s", pad.l, h - 4);
  ctx.fillText("now", w - pad.r, h - 4);

  const line = (key, max, color) => {
    ctx.strokeStyle = color;
    ctx.lineWidth = 2;
    ctx.beginPath();
    let started = false;
    history.forEach((s, i) => {
      const v = s[key];
      if (v === null) {
        started = false;
        return;
      }
      if (!started) ctx.moveTo(x(i), y(v, max));
      else ctx.lineTo(x(i), y(v, max));
      started = true;
    });
    ctx.stroke();
  };
  line("rate", maxRate, "#2563eb");
  line("latency", maxLat, "#ea580c");
}

function niceMax(v) {
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 4, 6, 8, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function fmt(v) {
  return Number.isInteger(v) || v >= 10 ? v.toFixed(0) : v.toFixed(v < 1 ? 2 : 1);
}

// ----- wiring ---------------------------------------------------------------------------------------------

window.broadcasterConsole = { client: null, parseMetrics };

async function main() {
  $("ws-url").value = params.get("url") || defaultWsUrl();
  setState("disconnected");
  $("connect-btn").addEventListener("click", connect);
  $("disconnect-btn").addEventListener("click", disconnect);
  $("use-dev-token").addEventListener("change", updateTokenNote);
  $("subscribe-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    addSubscription($("sub-channel").value);
  });
  $("publish-form").addEventListener("submit", publish);
  $("clear-btn").addEventListener("click", () => $("messages").replaceChildren());
  await detectDevMode();
  document.body.dataset.ready = "true";
  pollMetrics();
  setInterval(pollMetrics, 1000);
  // Connect at once in dev mode or with a token in the URL fragment, unless ?connect=0.
  if (params.get("connect") !== "0" && (devAvailable || $("token").value)) connect();
}

main();
