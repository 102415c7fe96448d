// Compile-only check that the published declarations fit typical use (npm test runs `tsc -p test`).
import {
  Broadcaster,
  BroadcasterError,
  type Message,
  type PublishResult,
  type GapEvent,
  type HistoryResult,
  type StreamPosition,
  type JoinLeaveEvent,
  type PresenceResult,
  type PresenceStats,
} from "../dist/broadcaster.js";

export async function usage(): Promise<void> {
  // The DOM's WebSocket constructor fits the option.
  const c = new Broadcaster("wss://example.invalid/broadcaster/websocket", {
    WebSocket,
    getToken: async ({ reason }) => (reason === "refresh" ? "next" : "first"),
    maxReconnectDelay: 10000,
  });
  c.on("state", ({ state, previous }) => console.log(previous, "->", state));
  c.on("error", ({ type, error }) => console.warn(type, error.code));
  await c.connect();
  const saved: StreamPosition | null = JSON.parse(localStorage.getItem("chat:1") ?? "null");
  const sub = c.subscribe("chat:1", saved ? { since: saved } : {});
  sub.on("message", (m: Message<{ text: string }>) => {
    console.log(m.seq, m.payload.text, m.latency, m.offset ?? "no offset", m.epoch);
    if (sub.position) localStorage.setItem("chat:1", JSON.stringify(sub.position));
  });
  sub.on("gap", (g: GapEvent) => console.log(g.reason, g.expected, g.got, g.missed ?? "unknown", g.since?.epoch));
  sub.on("subscribed", ({ resubscribed, recovered, position }) => {
    if (resubscribed && recovered === undefined) console.log("seq restarts at 1");
    if (recovered === false) console.log("messages were lost; reload from", position?.offset);
  });
  await sub.ready(5000);
  const recovered: boolean | undefined = sub.recovered;
  console.log(recovered);
  const h: HistoryResult<{ text: string }> = await c.history("chat:1", { limit: 10, since: sub.position ?? undefined });
  for (const p of h.publications) console.log(p.offset, p.id, p.createTime, p.payload.text);
  console.log(h.epoch, h.offset);
  try {
    const r: PublishResult = await c.publish("chat:1", "text", { text: "hi" });
    console.log(r.id, r.createTime);
  } catch (e) {
    if (e instanceof BroadcasterError && e.code === "PermissionDenied") console.log("no publish scope");
  }
  // presence: join/leave on the subscription and the client, typed results, typed errors
  const room = c.subscribe("chat:2", { joinLeave: true });
  room.on("join", (e: JoinLeaveEvent) => console.log(e.clientId, e.user, e.info));
  c.on("leave", ({ channel, user }) => console.log(channel, user));
  const members: PresenceResult = await room.presence();
  for (const [id, m] of Object.entries(members.clients)) console.log(id, m.user, m.info, members.truncated === true);
  const stats: PresenceStats = await c.presenceStats("chat:2");
  console.log(stats.numClients + stats.numUsers, room.joinLeave);
  c.on("disconnected", ({ code }) => code === 4003 && console.log("disconnected by the backend"));
  room.on("unsubscribed", ({ reason }) => reason === "server" && console.log("unsubscribed by the backend"));
  try {
    await c.presence("news");
  } catch (e) {
    if (e instanceof BroadcasterError && e.code === "FailedPrecondition") console.log("presence is off for news");
  }
  await sub.unsubscribe();
  c.disconnect();
}
