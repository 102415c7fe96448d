// An in-process fake of the Broadcaster WebSocket endpoint for unit tests: a WebSocket constructor the client
// can be given, plus server-side controls (reply handlers, pushes, closes, a "dead" connection).
export function jwt(claims) {
  const enc = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  return `${enc({ alg: "HS256", typ: "JWT" })}.${enc(claims)}.c2ln`;
}

export class FakeServer {
  constructor() {
    this.sockets = [];
    this.received = []; // { ws, msg }
    // new sockets fail to open: true = error then close (browsers); "error-only" = an error event and no close
    // (Node 20's built-in WebSocket on ECONNREFUSED)
    this.refuse = false;
    this.nextSub = 0;
    this.nextMsg = 0;
    this.handlers = {
      auth: () => ({ result: { success: true } }),
      subscribe: () => ({ result: { subscriptionId: `s${++this.nextSub}`, timestamp: new Date().toISOString() } }),
      unsubscribe: () => ({ result: { success: true } }),
      publish: () => ({ result: { id: `m${++this.nextMsg}`, createTime: new Date().toISOString() } }),
      heartbeat: () => ({ result: { timestamp: new Date().toISOString() } }),
    };
    const server = this;
    this.WebSocket = class FakeWebSocket {
      constructor(url) {
        this.url = url;
        this.readyState = 0;
        this.onopen = this.onmessage = this.onclose = this.onerror = null;
        this.dead = false;
        this.closedBy = null;
        server.sockets.push(this);
        setTimeout(() => {
          if (server.refuse === "error-only") {
            this.onerror?.({}); // and nothing else: readyState stays CONNECTING, as with undici
          } else if (server.refuse) {
            this.readyState = 3;
            this.onerror?.({});
            this.onclose?.({ code: 1006, reason: "" });
          } else {
            this.readyState = 1;
            this.onopen?.({});
          }
        }, 1);
      }
      send(data) {
        if (this.readyState !== 1) throw new Error("InvalidStateError: not open");
        if (this.dead) return;
        const msg = JSON.parse(data);
        server.received.push({ ws: this, msg });
        const h = server.handlers[msg.method];
        const reply = h ? h(msg, this) : { error: { code: "NotFound", message: "unknown method" } };
        if (!reply) return;
        setTimeout(() => {
          if (this.readyState !== 1 || this.dead) return;
          if (msg.id === undefined || msg.id === 0) {
            if (reply.error) this.push({ error: reply.error });
            return;
          }
          this.push({ requestId: msg.id, ...reply });
        }, 1);
      }
      close(code, reason) {
        if (this.readyState >= 2) return;
        this.closedBy = "client";
        this.readyState = 3;
        setTimeout(() => this.onclose?.({ code: code ?? 1005, reason: reason ?? "" }), 1);
      }
      // ----- server side -----
      push(obj) {
        if (this.readyState !== 1) return;
        this.onmessage?.({ data: typeof obj === "string" ? obj : JSON.stringify(obj) });
      }
      broadcast(channel, seq, payload = null, event = "ev") {
        this.push({
          method: "broadcast",
          params: { id: `b${seq}`, seq, createTime: new Date().toISOString(), channel, event, payload },
        });
      }
      serverClose(code = 1001, reason = "") {
        if (this.readyState >= 2) return;
        this.closedBy = "server";
        this.readyState = 3;
        this.onclose?.({ code, reason });
      }
    };
  }

  get last() {
    return this.sockets[this.sockets.length - 1];
  }

  sent(method, ws) {
    return this.received.filter((r) => r.msg.method === method && (!ws || r.ws === ws)).map((r) => r.msg);
  }
}

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

export async function waitFor(pred, timeout = 3000, what = "condition") {
  const end = Date.now() + timeout;
  while (Date.now() < end) {
    const v = pred();
    if (v) return v;
    await sleep(5);
  }
  throw new Error(`timed out waiting for ${what}`);
}

export function nextEvent(emitter, name, timeout = 3000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      off();
      reject(new Error(`timed out waiting for event ${name}`));
    }, timeout);
    const off = emitter.on(name, (ev) => {
      clearTimeout(t);
      off();
      resolve(ev);
    });
  });
}
