// Compile-only check that the backend entry's declarations fit typical use (npm test runs `tsc -p test`).
import { BroadcasterApi, BroadcasterApiError, BroadcasterError, mintToken, type ServerInfo } from "../dist/server.js";
import type { HistoryResult, PresenceResult, PresenceStats, PublishResult } from "../dist/server.js";
import { BroadcasterError as ClientError } from "../dist/broadcaster.js";

export async function backend(): Promise<string> {
  const api = new BroadcasterApi({ baseUrl: "http://127.0.0.1:8000/broadcaster", apiKey: "key", retries: 5, maxRetryDelay: 2000 });
  const r: PublishResult = await api.publish("chat:1", "text", { body: "hi" });
  const h: HistoryResult<{ body: string }> = await api.history("chat:1", { limit: 10, since: { epoch: "e", offset: 1 } });
  for (const p of h.publications) console.log(p.payload.body, p.offset);
  const p: PresenceResult = await api.presence("chat:1");
  const s: PresenceStats = await api.presenceStats("chat:1");
  console.log(r.id, Object.keys(p.clients).length, s.numUsers);
  await api.disconnect("alice");
  await api.unsubscribe("bob", "chat:1");
  const info: ServerInfo = await api.info();
  const healthy: boolean = await api.health();
  console.log(info.nodeId, healthy);
  try {
    await api.publish("chat:1", "text");
  } catch (e) {
    // one error class for the client and the backend helper
    if (e instanceof BroadcasterApiError) console.log(e.status, e.code, e.retryAfter ?? "no Retry-After");
    const base: ClientError | null = e instanceof BroadcasterError ? e : null;
    console.log(base?.code);
  }
  return mintToken({ secret: "s", sub: "alice", channels: ["chat:1"], scope: ["subscribe", "publish"], ttl: "1h", info: { name: "Alice" } });
}
