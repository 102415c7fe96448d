// An in-process fake of the Broadcaster WebSocket endpoint for unit tests: a WebSocket constructor the client
// can be given, plus server-side controls (reply handlers, pushes, closes, a "dead" connection).
// With `new FakeServer({ positions: true, historySize })` it also keeps channel positions the way PROTOCOL.md's
// "(ext) Channel positions, history and recovery" describes: `publish()` assigns offsets and fans out to the
// sockets subscribed (per-subscription seq), `subscribe` answers `since` with replay or `recovered: false`,
// and `history` answers from the kept publications.
export function jwt(claims) {
  const enc = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  return `${enc({ alg: "HS256", typ: "JWT" })}.${enc(claims)}.c2ln`;
}

export class FakeServer {
  constructor({ positions = false, historySize = 100, epoch = "e1" } = {}) {
    this.sockets = [];
    this.received = []; // { ws, msg }
    // new sockets fail to open: true = error then close (browsers); "error-only" = an error event and no close
    // (Node 20's built-in WebSocket on ECONNREFUSED)
    this.refuse = false;
    this.positions = positions;
    this.historySize = historySize;
    this.epoch = epoch; // the epoch new channels get
    this.channels = new Map(); // channel → { epoch, offset, pubs: [{ id, offset, createTime, channel, event, payload }] }
    this.nextSub = 0;
    this.nextMsg = 0;
    this.handlers = {
      auth: () => ({ result: { success: true } }),
      subscribe: (msg, ws) => (this.positions ? this.subscribeWithPositions(msg, ws) : { result: { subscriptionId: `s${++this.nextSub}`, timestamp: new Date().toISOString() } }),
      unsubscribe: (msg, ws) => {
        ws.subs.delete(msg.params?.channel);
        return { result: { success: true } };
      },
      publish: (msg) => {
        if (this.positions) {
          const p = this.publish(msg.params.channel, msg.params.event, msg.params.payload);
          return { result: { id: p.id, createTime: p.createTime } };
        }
        return { result: { id: `m${++this.nextMsg}`, createTime: new Date().toISOString() } };
      },
      heartbeat: () => ({ result: { timestamp: new Date().toISOString() } }),
      history: (msg) => this.history(msg.params ?? {}),
    };
    const server = this;
    this.WebSocket = class FakeWebSocket {
      constructor(url) {
        this.url = url;
        this.readyState = 0;
        this.onopen = this.onmessage = this.onclose = this.onerror = null;
        this.dead = false;
        this.closedBy = null;
        this.subs = new Map(); // channel → { seq } (positions mode)
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
        let reply = h ? h(msg, this) : { error: { code: "NotFound", message: "unknown method" } };
        if (!reply) return;
        setTimeout(() => {
          if (this.readyState !== 1 || this.dead) return;
          if (typeof reply === "function") reply = reply(); // computed when sent (subscribe in positions mode)
          if (msg.id === undefined || msg.id === 0) {
            if (reply.error) this.push({ error: reply.error });
            return;
          }
          const { after, ...frame } = reply;
          this.push({ requestId: msg.id, ...frame });
          after?.(); // in the same task, as frames that arrive in one read
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
      broadcast(channel, seq, payload = null, event = "ev", extra = {}) {
        this.push({
          method: "broadcast",
          params: { id: `b${seq}`, seq, createTime: new Date().toISOString(), channel, event, payload, ...extra },
        });
      }
      /** Delivers a kept publication on this socket's subscription (positions mode). */
      deliver(pub) {
        const sub = this.subs.get(pub.channel);
        if (!sub) return;
        const { offset, ...rest } = pub;
        this.push({ method: "broadcast", params: { ...rest, seq: ++sub.seq, offset, epoch: server.channel(pub.channel).epoch } });
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

  // ----- positions mode ---------------------------------------------------------------------------------

  channel(name) {
    let c = this.channels.get(name);
    if (!c) this.channels.set(name, (c = { epoch: this.epoch, offset: 0, pubs: [] }));
    return c;
  }

  /** Publishes: the next offset, kept in history, delivered to every open socket subscribed. */
  publish(channel, event = "ev", payload = null, { deliver = true } = {}) {
    const c = this.channel(channel);
    const pub = { id: `m${++this.nextMsg}`, offset: ++c.offset, createTime: new Date().toISOString(), channel, event, payload };
    c.pubs.push(pub);
    while (c.pubs.length > this.historySize) c.pubs.shift();
    if (deliver) for (const ws of this.sockets) if (ws.readyState === 1 && !ws.dead) ws.deliver(pub);
    return pub;
  }

  /** The channel's history is lost (a broker restart): a new epoch, offsets start again. */
  newEpoch(channel, epoch) {
    this.channels.set(channel, { epoch, offset: 0, pubs: [] });
  }

  /** The kept publications after `since`, or null when some of them are no longer kept (or another epoch). */
  after(channel, since) {
    const c = this.channel(channel);
    if (since.epoch !== c.epoch || since.offset > c.offset) return null;
    const first = c.pubs.length ? c.pubs[0].offset : c.offset + 1;
    if (since.offset + 1 < first) return null;
    return c.pubs.filter((p) => p.offset > since.offset);
  }

  subscribeWithPositions(msg, ws) {
    // answered when sent, so that nothing published between the request and the answer is lost or doubled
    return () => this.subscribeNow(msg, ws);
  }

  subscribeNow(msg, ws) {
    const channel = msg.params.channel;
    if (ws.subs.has(channel)) return { error: { code: "AlreadyExists", message: "already subscribed" } };
    const c = this.channel(channel);
    const result = { subscriptionId: `sub-${++this.nextSub}`, timestamp: new Date().toISOString(), epoch: c.epoch, offset: c.offset };
    const since = msg.params.since;
    const replay = since ? this.after(channel, since) : null;
    if (since) result.recovered = replay !== null;
    ws.subs.set(channel, { seq: 0 });
    // the replay follows the result at once, before anything else can be sent on this socket
    return { result, after: () => replay?.forEach((p) => ws.deliver(p)) };
  }

  history({ channel, limit, since }) {
    const c = this.channel(channel);
    let pubs = since ? (since.epoch === c.epoch ? c.pubs.filter((p) => p.offset > since.offset) : []) : c.pubs;
    if (typeof limit === "number" && limit >= 0) pubs = since ? pubs.slice(0, limit) : pubs.slice(Math.max(0, pubs.length - limit));
    return { result: { publications: pubs.map((p) => ({ ...p })), epoch: c.epoch, offset: c.offset } };
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
