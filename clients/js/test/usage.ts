// Compile-only check that the published declarations fit typical use (npm test runs `tsc -p test`).
import { Broadcaster, BroadcasterError, type Message, type PublishResult, type GapEvent } from "../dist/broadcaster.js";

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
  const sub = c.subscribe("chat:1");
  sub.on("message", (m: Message<{ text: string }>) => console.log(m.seq, m.payload.text, m.latency));
  sub.on("gap", (g: GapEvent) => console.log(g.expected, g.got, g.missed));
  sub.on("subscribed", ({ resubscribed }) => resubscribed && console.log("seq restarts at 1"));
  await sub.ready(5000);
  try {
    const r: PublishResult = await c.publish("chat:1", "text", { text: "hi" });
    console.log(r.id, r.createTime);
  } catch (e) {
    if (e instanceof BroadcasterError && e.code === "PermissionDenied") console.log("no publish scope");
  }
  await sub.unsubscribe();
  c.disconnect();
}
