// A chat room on Broadcaster in a few dozen lines. Query parameters: room (a channel, default chat:lobby),
// name, token (a JWT; without one, a dev server's /console/dev-token is asked), url (WebSocket URL).
import { Broadcaster } from "./broadcaster.js";

const q = new URLSearchParams(location.search);
const room = q.get("room") || "chat:lobby";
const name = q.get("name") || `guest-${Math.random().toString(36).slice(2, 6)}`;
const base = location.pathname.includes("/console/") ? location.pathname.replace(/\/console\/.*$/, "") : "/broadcaster";
const url = q.get("url") || `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${base}/websocket`;
const $ = (id) => document.getElementById(id);

async function getToken() {
  if (q.get("token")) return q.get("token");
  const res = await fetch(`${base}/console/dev-token?channels=${encodeURIComponent(room)}`);
  if (!res.ok) throw new Error("no token: open this page with ?token=<JWT>");
  return (await res.json()).token;
}

function show(who, text, cls = "") {
  const li = document.createElement("li");
  li.className = cls;
  if (who) li.append(Object.assign(document.createElement("b"), { textContent: who + ": " }));
  li.append(text);
  $("log").append(li);
  $("log").scrollTop = $("log").scrollHeight;
}

const client = new Broadcaster(url, { getToken });
client.on("state", ({ state }) => ($("status").textContent = state));
const sub = client.subscribe(room);
sub.on("message", (m) => show(m.payload?.name ?? "?", String(m.payload?.text ?? ""), m.payload?.name === name ? "mine" : ""));
sub.on("subscribed", ({ resubscribed }) => show("", resubscribed ? "reconnected" : `joined ${room} as ${name}`, "note"));
sub.on("gap", ({ missed }) => show("", `${missed} message(s) missed`, "note"));
sub.on("error", (e) => show("", e.message, "note"));

$("room").textContent = room;
$("form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const text = $("text").value.trim();
  if (!text) return;
  $("text").value = "";
  await client.publish(room, "text", { name, text }).catch((e) => show("", `not sent: ${e.message}`, "note"));
});
client.connect().catch((e) => show("", `cannot connect: ${e.message}`, "note"));
