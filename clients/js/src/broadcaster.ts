/*
 * @broadcaster/client — browser and Node.js client for the Broadcaster real-time messaging server.
 *
 * One ES module, no runtime dependencies. It speaks the JSON-over-WebSocket protocol (auth, subscribe,
 * unsubscribe, publish, heartbeat, broadcast), and adds what every user would otherwise hand-write:
 * request promises with timeouts, typed errors, automatic reconnect with exponential backoff and jitter,
 * re-authentication and re-subscription after a reconnect, recovery of the messages missed meanwhile (from
 * the channel positions of servers that send them), token refresh before expiry, idle heartbeats that detect
 * a dead connection, per-subscription gap detection, channel history, and presence with join/leave events.
 */

// ---------------------------------------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------------------------------------

/** Client connection state. `disconnected` is terminal until `connect()` is called again. */
export type ClientState = "disconnected" | "connecting" | "connected";

/** Subscription state. `subscribing` also covers "waiting for the connection to come back". */
export type SubscriptionState = "unsubscribed" | "subscribing" | "subscribed";

/** Protocol error codes (PROTOCOL.md) plus the client-side ones. */
export type ErrorCode =
  | "InvalidArgument"
  | "NotFound"
  | "AlreadyExists"
  | "FailedPrecondition"
  | "PermissionDenied"
  | "Unauthenticated"
  | "Internal"
  | "ResourceExhausted"
  | "Unavailable"
  /** client: the request got no answer in time */
  | "Timeout"
  /** client: the connection closed while the request was in flight (it may or may not have been applied) */
  | "ConnectionClosed"
  /** client: the client is disconnected (disconnect() was called, or it gave up) */
  | "Disconnected"
  /** client: the server sent something that is not valid protocol */
  | "BadResponse"
  | (string & {});

/** The part of the WebSocket API the client uses; the browser's WebSocket, Node's and `ws` all fit. */
// Handler parameters are `any` so that the DOM's WebSocket type (whose handlers take Event, MessageEvent,
// CloseEvent) and other implementations' types are assignable to this interface.
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((ev: any) => void) | null;
  onmessage: ((ev: any) => void) | null;
  onclose: ((ev: any) => void) | null;
  onerror: ((ev: any) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** Why the client asks for a token. */
export interface TokenRequest {
  reason: "connect" | "reconnect" | "refresh";
}

export interface BroadcasterOptions {
  /** Returns a JWT. Called on every (re)connect and before the current token expires. */
  getToken?: (req: TokenRequest) => string | Promise<string>;
  /** A fixed token, used when `getToken` is not given (no refresh possible). */
  token?: string;
  /** WebSocket constructor; defaults to `globalThis.WebSocket`. */
  WebSocket?: WebSocketConstructor;
  /** Timeout of one request (ms). Default 10000. */
  requestTimeout?: number;
  /** Time allowed to open the socket and authenticate (ms). Default 10000. */
  connectTimeout?: number;
  /** Reconnect automatically after the connection drops. Default true. */
  reconnect?: boolean;
  /** First reconnect delay before jitter (ms). Default 500. */
  minReconnectDelay?: number;
  /** Largest reconnect delay (ms). Default 20000. */
  maxReconnectDelay?: number;
  /** Send a heartbeat after this long without any frame from the server (ms); 0 disables. Default 25000. */
  heartbeatInterval?: number;
  /** A heartbeat not answered within this time means the connection is dead (ms). Default 10000. */
  heartbeatTimeout?: number;
  /** Refresh the token this long before its `exp` (ms; at most half of its remaining life). Default 60000. */
  refreshMargin?: number;
  /** Random source in [0, 1) for the backoff jitter (tests). Default Math.random. */
  random?: () => number;
  /**
   * Resubscribe after a reconnect with `since` = the last position seen, so that the server replays what was
   * missed (servers that send channel positions). Default true.
   */
  recover?: boolean;
  /** Log what the client does: `true` logs through `console.debug`, a function receives the same arguments. */
  debug?: boolean | ((...args: unknown[]) => void);
}

/** A place in a channel's stream: the message with `offset` in `epoch` (PROTOCOL.md, channel positions). */
export interface StreamPosition {
  epoch: string;
  offset: number;
}

export interface SubscribeOptions {
  /**
   * Resume from this position: the server replays the messages after it (`recovered` tells whether it could).
   * Used when the subscription is (re)activated; afterwards the client tracks the position itself.
   */
  since?: StreamPosition;
  /**
   * Also receive `join` / `leave` events when other connections subscribe to or leave the channel (servers
   * with presence on for it; elsewhere the subscription is refused with `FailedPrecondition`). Sent on every
   * (re)subscription; changing it takes effect at the next activation.
   */
  joinLeave?: boolean;
}

/** One connection subscribed to a channel, as presence lists it. */
export interface PresenceClient {
  /** The token's `sub`. */
  user: string;
  /** The token's `info` claim, when it had one (any JSON value). */
  info?: unknown;
}

export interface PresenceResult {
  /** Client id → member. One entry per connection: a user with two connections appears twice. */
  clients: Record<string, PresenceClient>;
  /** True when the server listed only part of the members (its `--presence-max-clients` cap). */
  truncated?: boolean;
}

export interface PresenceStats {
  /** Connections subscribed to the channel, on every node. */
  numClients: number;
  /** Distinct users (`sub`) among them. */
  numUsers: number;
}

/** Another connection joined (subscribed to) or left a channel this client subscribes to with `joinLeave`. */
export interface JoinLeaveEvent {
  channel: string;
  /** The server's id of that connection (the key in `presence().clients`). */
  clientId: string;
  user: string;
  /** Its token's `info` claim, when it had one. */
  info?: unknown;
}

export interface HistoryOptions {
  /** At most this many publications (the server also has a maximum). */
  limit?: number;
  /** Only publications after this position; from another epoch the answer is empty. */
  since?: StreamPosition;
}

/** A message as kept in a channel's history. */
export interface Publication<P = any> {
  id: MessageId;
  offset: number;
  createTime: string;
  channel: string;
  event: string;
  payload: P;
}

export interface HistoryResult<P = any> {
  /** Oldest first. */
  publications: Publication<P>[];
  /** The channel's current epoch and offset. */
  epoch: string;
  offset: number;
}

export type MessageId = string | number;

/** A message delivered to a subscription (the protocol's `broadcast` params plus local timing). */
export interface Message<P = any> {
  id: MessageId;
  /** Per-subscription sequence number: 1 for the first message of a subscription, +1 per message. */
  seq: number;
  /** RFC 3339 time the server accepted the message. */
  createTime: string;
  channel: string;
  event: string;
  payload: P;
  /** Date.now() when the client received the message. */
  receivedAt: number;
  /** receivedAt − createTime in ms (null if createTime is not a parseable time). Assumes synced clocks. */
  latency: number | null;
  /** The message's offset in its channel (null from a server that sends no positions). */
  offset: number | null;
  /** The channel's epoch the offset belongs to (null from a server that sends no positions). */
  epoch: string | null;
}

export interface PublishResult {
  id: MessageId;
  createTime: string;
}

/**
 * Messages were lost for good on a subscription.
 * - `reason: "seq"`: a jump in `seq` on a live subscription (the server dropped messages for it). `expected` and
 *   `got` are seq numbers and `missed` = got − expected.
 * - `reason: "recovery"`: a subscription (re)established with `since` could not get the missed messages replayed
 *   (`recovered: false`: the epoch changed, the history was trimmed or is off, or the server cannot recover).
 *   `since` is the position the client had, `position` the channel's position now; `expected` and `got` are
 *   offsets (the first one the client lacks, the first one it will receive) and `missed` = got − expected when
 *   both are in the same epoch, otherwise null (unknown).
 */
export interface GapEvent {
  channel: string;
  reason: "seq" | "recovery";
  /** The seq (reason "seq") or offset (reason "recovery") the client expected next. */
  expected: number;
  /** The seq that arrived, or the first offset the new subscription delivers. */
  got: number;
  /** How many messages were lost (got − expected); null when unknown (recovery across an epoch change). */
  missed: number | null;
  /** reason "recovery": the position the client asked to resume from. */
  since?: StreamPosition;
  /** reason "recovery": the channel's position when the subscription was made (null if the server sent none). */
  position?: StreamPosition | null;
}

export interface SubscribedEvent {
  channel: string;
  /** The server's id of this subscription: a non-empty string, unique per subscription on its node. */
  subscriptionId: string | null;
  timestamp: string | null;
  /** True when this re-establishes a subscription after a reconnect or token re-auth: seq restarts at 1. */
  resubscribed: boolean;
  /**
   * Only when the subscribe asked to resume (`since`): true if every missed message is being replayed (they
   * follow as ordinary messages, seq 1, 2, …), false if not — a `gap` event with reason "recovery" follows.
   * undefined when no `since` was sent (a first subscription, or a server that sends no positions).
   */
  recovered: boolean | undefined;
  /** The position the subscribe resumed from, or null. */
  since: StreamPosition | null;
  /** The channel's position when the server made the subscription (null if it sent none). */
  position: StreamPosition | null;
}

export interface UnsubscribedEvent {
  channel: string;
  /**
   * "client": unsubscribe() was called; "error": the server refused it; "unauthorized": a refreshed token no
   * longer covers it; "server": the application's backend ended it (server API `unsubscribe`).
   */
  reason: "client" | "error" | "unauthorized" | "server";
  error?: BroadcasterError;
}

export interface StateEvent<S> {
  state: S;
  previous: S;
}

export interface ClientErrorEvent {
  /** Where the error happened. */
  type: "token" | "transport" | "auth" | "refresh" | "subscribe" | "unsubscribe" | "protocol" | "server";
  error: BroadcasterError;
  channel?: string;
}

export interface ClientEvents {
  state: StateEvent<ClientState>;
  /** The client starts (re)connecting; `code`/`reason` tell why the previous connection ended (0/"" at first). */
  connecting: { code: number; reason: string };
  /** Connected and authenticated. */
  connected: { reconnected: boolean };
  /** The client stopped (disconnect() or a fatal error); it will not reconnect by itself. */
  disconnected: { code: number; reason: string; error?: BroadcasterError };
  error: ClientErrorEvent;
  /** Every message delivered to any subscription. */
  message: Message;
  /** A sequence gap on any subscription. */
  gap: GapEvent;
  /** Any subscription (re)established. */
  subscribed: SubscribedEvent;
  /** The token was refreshed on the live connection. */
  refreshed: { exp: number | null };
  /** Another connection joined a channel subscribed with `joinLeave`. */
  join: JoinLeaveEvent;
  /** Another connection left a channel subscribed with `joinLeave`. */
  leave: JoinLeaveEvent;
}

export interface SubscriptionEvents {
  state: StateEvent<SubscriptionState>;
  subscribed: SubscribedEvent;
  unsubscribed: UnsubscribedEvent;
  message: Message;
  gap: GapEvent;
  error: BroadcasterError;
  /** Another connection subscribed to the channel (only with `joinLeave`). */
  join: JoinLeaveEvent;
  /** Another connection left the channel (only with `joinLeave`). */
  leave: JoinLeaveEvent;
}

// ---------------------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------------------

/** Every failure the client reports: `code` is the protocol error code or a client-side one. */
export class BroadcasterError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message?: string) {
    super(message ? `${code}: ${message}` : code);
    this.name = "BroadcasterError";
    this.code = code;
  }
}

/** Close code of a connection the server API's `disconnect` ended (PROTOCOL.md, "(ext) Server API"). */
const SERVER_DISCONNECT = 4003;
const FATAL_AUTH_CODES = new Set(["Unauthenticated", "InvalidArgument", "PermissionDenied", "FailedPrecondition"]);
const TRANSIENT_CODES = new Set(["Timeout", "Unavailable", "Internal", "ResourceExhausted"]);

function toError(e: unknown, fallback: ErrorCode = "Internal"): BroadcasterError {
  if (e instanceof BroadcasterError) return e;
  if (e instanceof Error) return new BroadcasterError(fallback, e.message);
  return new BroadcasterError(fallback, String(e));
}

// ---------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------

type Listener<T> = (arg: T) => void;

/** Reports an exception thrown by an event listener the way the platform reports uncaught errors. */
function reportListenerError(e: unknown): void {
  const report = (globalThis as any).reportError;
  if (typeof report === "function") report(e);
  else
    setTimeout(() => {
      throw e;
    }, 0);
}

/** A tiny typed event emitter. A listener that throws does not disturb the client; the error is rethrown async. */
export class Emitter<E extends object> {
  private readonly listeners = new Map<keyof E, Set<Listener<any>>>();

  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof E>(event: K, fn: Listener<E[K]>): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(fn);
    return () => this.off(event, fn);
  }

  once<K extends keyof E>(event: K, fn: Listener<E[K]>): () => void {
    const off = this.on(event, (arg) => {
      off();
      fn(arg);
    });
    return off;
  }

  off<K extends keyof E>(event: K, fn: Listener<E[K]>): void {
    this.listeners.get(event)?.delete(fn);
  }

  protected emit<K extends keyof E>(event: K, arg: E[K]): void {
    const set = this.listeners.get(event);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        fn(arg);
      } catch (e) {
        reportListenerError(e);
      }
    }
  }
}

/**
 * Reconnect delay for the n-th consecutive attempt (0-based): exponential growth from `min`, capped at `max`,
 * with "equal jitter" (a random value in [base/2, base)) so that many clients do not reconnect in lockstep.
 */
export function backoffDelay(attempt: number, min: number, max: number, random: () => number = Math.random): number {
  const base = Math.min(max, min * Math.pow(2, Math.min(attempt, 30)));
  return Math.round(base / 2 + random() * (base / 2));
}

/** Decodes a JWT's claims without verifying it (the client only needs `exp` and `authorizedChannels`). */
export function decodeJwtClaims(token: string): Record<string, unknown> | null {
  const parts = token.split(".");
  if (parts.length !== 3) return null;
  try {
    let b64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) b64 += "=";
    const bin = atob(b64);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return claims && typeof claims === "object" && !Array.isArray(claims) ? claims : null;
  } catch {
    return null;
  }
}

/** A position from a server's `epoch` and `offset` fields, or null when they are absent or malformed. */
function positionOf(epoch: unknown, offset: unknown): StreamPosition | null {
  if (typeof epoch !== "string" || epoch === "" || typeof offset !== "number" || !Number.isFinite(offset)) return null;
  return { epoch, offset };
}

/** True only where a browser says there is no network (`navigator.onLine === false`). */
function isOffline(): boolean {
  const nav = (globalThis as any).navigator;
  return !!nav && nav.onLine === false;
}

type Timer = ReturnType<typeof setTimeout>;

interface Pending {
  // Called synchronously when the reply frame is read, so that a subscribe result is applied before the
  // broadcasts that follow it in the same read.
  resolve: (v: any) => void;
  reject: (e: BroadcasterError) => void;
  timer: Timer;
  ws: WebSocketLike;
}

interface Waiter {
  resolve: () => void;
  reject: (e: BroadcasterError) => void;
  timer?: Timer;
}

// ---------------------------------------------------------------------------------------------------------
// Subscription
// ---------------------------------------------------------------------------------------------------------

/** One channel subscription. Created by `Broadcaster.subscribe()`; survives reconnects. */
export class Subscription extends Emitter<SubscriptionEvents> {
  readonly channel: string;
  private _state: SubscriptionState = "unsubscribed";
  private _subscriptionId: string | null = null;
  private _lastSeq = 0;
  private _position: StreamPosition | null = null;
  private _recovered: boolean | undefined = undefined;
  /** @internal */ _expected = 1;
  /** @internal */ _gen = 0;
  /** @internal */ _unsubInFlight = 0;
  /** @internal */ _everSubscribed = false;
  /** @internal */ _retries = 0;
  /** @internal */ _retryTimer: Timer | null = null;
  /** @internal the position was given by the app (subscribe with `since`) and is not yet used */
  _explicitSince = false;
  /** @internal asked with every (re)subscribe, so that join/leave survive reconnects */
  _joinLeave = false;
  private readonly client: Broadcaster;

  /** @internal */
  constructor(client: Broadcaster, channel: string) {
    super();
    this.client = client;
    this.channel = channel;
  }

  get state(): SubscriptionState {
    return this._state;
  }
  /** The server's id of the current subscription (changes on every resubscription). */
  get subscriptionId(): string | null {
    return this._subscriptionId;
  }
  /** seq of the last message delivered (0 before the first one of the current subscription). */
  get lastSeq(): number {
    return this._lastSeq;
  }
  /**
   * The channel position this subscription has reached: from the subscribe result, then from every message
   * delivered. A resubscription resumes from it. null from a server that sends no positions, and after
   * `unsubscribe()`. Store it to resume later with `subscribe(channel, { since })`.
   */
  get position(): StreamPosition | null {
    return this._position ? { ...this._position } : null;
  }
  /** Whether the current subscription recovered what was missed; undefined when it did not ask (no `since`). */
  get recovered(): boolean | undefined {
    return this._recovered;
  }
  /** Whether the subscription asks for `join` / `leave` events (the `joinLeave` subscribe option). */
  get joinLeave(): boolean {
    return this._joinLeave;
  }

  /** Who is subscribed to this channel, on every node (`client.presence(channel)`). */
  presence(): Promise<PresenceResult> {
    return this.client.presence(this.channel);
  }

  /** How many connections and users are subscribed to this channel (`client.presenceStats(channel)`). */
  presenceStats(): Promise<PresenceStats> {
    return this.client.presenceStats(this.channel);
  }

  /**
   * (Re)activates the subscription; it is (re)established whenever the client is connected. `options.since`
   * applies only when the subscription is not active: it resumes from that position.
   */
  subscribe(options: SubscribeOptions = {}): this {
    this.client._activate(this, options);
    return this;
  }

  /** Stops the subscription. Resolves once the server confirmed (or at once when not connected). Never rejects. */
  unsubscribe(): Promise<void> {
    return this.client._deactivate(this);
  }

  /** Resolves when subscribed; rejects if the subscription ends with an error (or the timeout passes). */
  ready(timeout = 0): Promise<void> {
    if (this._state === "subscribed") return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      let timer: Timer | undefined;
      const done = () => {
        offSub();
        offUnsub();
        if (timer) clearTimeout(timer);
      };
      const offSub = this.on("subscribed", () => {
        done();
        resolve();
      });
      const offUnsub = this.on("unsubscribed", (ev) => {
        done();
        reject(ev.error ?? new BroadcasterError("Disconnected", `unsubscribed from ${this.channel}`));
      });
      if (timeout > 0) {
        timer = setTimeout(() => {
          done();
          reject(new BroadcasterError("Timeout", `not subscribed to ${this.channel} within ${timeout} ms`));
        }, timeout);
      }
    });
  }

  /** @internal */
  _setState(state: SubscriptionState): void {
    const previous = this._state;
    if (previous === state) return;
    this._state = state;
    this.emit("state", { state, previous });
  }

  /** @internal `result` is null when the server's answer is unknown (AlreadyExists). */
  _subscribed(result: any, resubscribed: boolean, since: StreamPosition | null): SubscribedEvent {
    // A string (PROTOCOL); a number from an older server is kept as its decimal text.
    const id = result ? result.subscriptionId : undefined;
    this._subscriptionId = typeof id === "string" ? id : typeof id === "number" ? String(id) : null;
    const position = result ? positionOf(result.epoch, result.offset) : null;
    // Sent `since` but no `recovered: true` (also: a server that ignores `since`): nothing is replayed.
    const recovered = since && result ? result.recovered === true : undefined;
    this._recovered = recovered;
    // When recovering, the replayed messages (after `since`) still have to arrive and advance the position
    // one by one; otherwise everything from now on is live, after the channel's current position.
    if (result && !recovered) this._position = position;
    this._everSubscribed = true;
    this._explicitSince = false;
    this._retries = 0;
    this._setState("subscribed");
    const ev: SubscribedEvent = {
      channel: this.channel,
      subscriptionId: this._subscriptionId,
      timestamp: result && typeof result.timestamp === "string" ? result.timestamp : null,
      resubscribed,
      recovered,
      since,
      position,
    };
    this.emit("subscribed", ev);
    return ev;
  }

  /** @internal after `_subscribed`: the loss a failed recovery means, if any (emitted here, returned). */
  _recoveryGap(ev: SubscribedEvent): GapEvent | null {
    const { since, position } = ev;
    if (ev.recovered !== false || !since) return null;
    const sameEpoch = position !== null && position.epoch === since.epoch;
    if (sameEpoch && position.offset <= since.offset) return null; // nothing was published meanwhile
    const gap: GapEvent = {
      channel: this.channel,
      reason: "recovery",
      expected: since.offset + 1,
      got: position ? position.offset + 1 : since.offset + 1,
      missed: sameEpoch ? position.offset - since.offset : null,
      since,
      position,
    };
    this.emit("gap", gap);
    return gap;
  }

  /** @internal starts a new server-side subscription: seq restarts at 1. */
  _resetSeq(): void {
    this._expected = 1;
    this._lastSeq = 0;
  }

  /** @internal */
  _unsubscribed(reason: UnsubscribedEvent["reason"], error?: BroadcasterError): void {
    this._gen++;
    this._subscriptionId = null;
    this._position = null;
    this._recovered = undefined;
    if (this._retryTimer) clearTimeout(this._retryTimer);
    this._retryTimer = null;
    this._setState("unsubscribed");
    if (error) this.emit("error", error);
    this.emit("unsubscribed", { channel: this.channel, reason, error });
  }

  /** @internal returns the gap (if any) after delivering. */
  _deliver(m: Message): GapEvent | null {
    let gap: GapEvent | null = null;
    if (Number.isFinite(m.seq)) {
      if (m.seq > this._expected) {
        gap = { channel: this.channel, reason: "seq", expected: this._expected, got: m.seq, missed: m.seq - this._expected };
      }
      if (m.seq >= this._expected) this._expected = m.seq + 1;
      this._lastSeq = m.seq;
    }
    if (m.epoch !== null && m.offset !== null) {
      const p = this._position;
      // Offsets only grow within an epoch; a new epoch means the channel's history was lost and restarts.
      if (!p || p.epoch !== m.epoch || m.offset > p.offset) this._position = { epoch: m.epoch, offset: m.offset };
    }
    if (gap) this.emit("gap", gap);
    this.emit("message", m);
    return gap;
  }

  /** @internal */
  _emitError(e: BroadcasterError): void {
    this.emit("error", e);
  }

  /** @internal */
  _emitJoinLeave(kind: "join" | "leave", ev: JoinLeaveEvent): void {
    this.emit(kind, ev);
  }

  /** @internal used when (re)activated with `since`. */
  _resumeFrom(since: StreamPosition): void {
    this._position = { epoch: since.epoch, offset: since.offset };
    this._explicitSince = true;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------------------------------------

/**
 * A connection to a Broadcaster server.
 *
 * ```ts
 * const c = new Broadcaster("wss://host/broadcaster/websocket", { getToken: () => fetchToken() });
 * await c.connect();
 * const sub = c.subscribe("chat:1");
 * sub.on("message", (m) => console.log(m.event, m.payload));
 * await c.publish("chat:1", "text", { body: "hi" });
 * ```
 */
export class Broadcaster extends Emitter<ClientEvents> {
  readonly url: string;
  private readonly opts: Required<Omit<BroadcasterOptions, "getToken" | "token" | "WebSocket" | "debug">> & {
    getToken?: BroadcasterOptions["getToken"];
    token?: string;
  };
  private readonly logger: ((...args: unknown[]) => void) | null;
  private readonly WS: WebSocketConstructor | undefined;
  private _state: ClientState = "disconnected";
  private ws: WebSocketLike | null = null;
  private epoch = 0;
  private nextId = 0;
  private readonly pending = new Map<number, Pending>();
  private waiters: Waiter[] = [];
  private readonly subs = new Map<string, Subscription>();
  private attempts = 0;
  private everConnected = false;
  private lastRecv = 0;
  private reconnectTimer: Timer | null = null;
  private connectTimer: Timer | null = null;
  private heartbeatTimer: Timer | null = null;
  private refreshTimer: Timer | null = null;
  /** The browser window whose online/offline events we listen to while not disconnected. */
  private watched: { removeEventListener(type: string, fn: () => void): void } | null = null;

  constructor(url: string, options: BroadcasterOptions = {}) {
    super();
    this.url = url;
    this.WS = options.WebSocket ?? (globalThis as any).WebSocket;
    this.opts = {
      getToken: options.getToken,
      token: options.token,
      requestTimeout: options.requestTimeout ?? 10000,
      connectTimeout: options.connectTimeout ?? 10000,
      reconnect: options.reconnect ?? true,
      minReconnectDelay: options.minReconnectDelay ?? 500,
      maxReconnectDelay: options.maxReconnectDelay ?? 20000,
      heartbeatInterval: options.heartbeatInterval ?? 25000,
      heartbeatTimeout: options.heartbeatTimeout ?? 10000,
      refreshMargin: options.refreshMargin ?? 60000,
      random: options.random ?? Math.random,
      recover: options.recover ?? true,
    };
    const debug = options.debug;
    this.logger = typeof debug === "function" ? debug : debug ? (...args) => console.debug(...args) : null;
  }

  get state(): ClientState {
    return this._state;
  }

  // ----- public API ------------------------------------------------------------------------------------

  /**
   * Starts connecting (if not already) and resolves once connected and authenticated. While the server is
   * unreachable it keeps retrying with backoff and the promise stays pending; it rejects when the client stops:
   * `disconnect()`, an authentication failure (the token is refused), or a failed attempt with `reconnect: false`.
   */
  connect(): Promise<void> {
    const p = this.waitConnected(0);
    // Callers may fire and forget connect(): a later rejection must not count as an unhandled one.
    p.catch(() => {});
    if (this._state === "disconnected") {
      this.log("connect", this.url);
      this.watchNetwork();
      this.setState("connecting");
      this.emit("connecting", { code: 0, reason: "" });
      void this.attempt();
    }
    return p;
  }

  /** Closes the connection and stops reconnecting. Subscriptions are kept and come back on the next connect(). */
  disconnect(): void {
    this.stop(1000, "client disconnect", undefined);
  }

  /**
   * Returns the subscription for `channel`, creating and activating it if needed. `options.since` (a position
   * stored earlier, e.g. `sub.position`) asks the server to replay what came after it; it applies only when the
   * subscription is not already active.
   */
  subscribe(channel: string, options: SubscribeOptions = {}): Subscription {
    let sub = this.subs.get(channel);
    if (!sub) {
      sub = new Subscription(this, channel);
      this.subs.set(channel, sub);
    }
    if (sub.state === "unsubscribed") this._activate(sub, options);
    return sub;
  }

  getSubscription(channel: string): Subscription | undefined {
    return this.subs.get(channel);
  }

  /** All subscriptions the client knows (including unsubscribed ones not yet removed). */
  subscriptions(): Subscription[] {
    return [...this.subs.values()];
  }

  /** Unsubscribes and forgets the subscription. */
  async removeSubscription(sub: Subscription): Promise<void> {
    if (this.subs.get(sub.channel) === sub) this.subs.delete(sub.channel);
    await this._deactivate(sub);
  }

  /** Publishes over the WebSocket (needs the token's `publish` scope). Waits for the connection if needed. */
  publish(channel: string, event: string, payload: unknown = null): Promise<PublishResult> {
    return this.request("publish", { channel, event, payload: payload === undefined ? null : payload });
  }

  /** Sends a heartbeat and resolves with the server time. */
  heartbeat(): Promise<{ timestamp: string }> {
    return this.request("heartbeat", null);
  }

  /**
   * A channel's history (servers with channel positions; needs the permission to subscribe to it), oldest first:
   * without `since` the latest `limit` publications, with `since` those after it (none if its epoch is not the
   * channel's). Waits for the connection if needed.
   */
  async history<P = any>(channel: string, options: HistoryOptions = {}): Promise<HistoryResult<P>> {
    const params: Record<string, unknown> = { channel };
    if (options.limit !== undefined) params.limit = options.limit;
    if (options.since) params.since = { epoch: options.since.epoch, offset: options.since.offset };
    const r = await this.request<any>("history", params);
    if (!r || typeof r !== "object" || !Array.isArray(r.publications)) {
      throw new BroadcasterError("BadResponse", "history result has no publications");
    }
    return r as HistoryResult<P>;
  }

  /**
   * Who is subscribed to `channel`, on every node: client id → `{user, info?}`, one entry per connection
   * (servers with presence on for the channel, else `FailedPrecondition`; needs the permission to subscribe to it).
   * `truncated` is true when the server listed only part of them. Waits for the connection like `publish`.
   */
  async presence(channel: string): Promise<PresenceResult> {
    const r = await this.request<any>("presence", { channel });
    if (!r || typeof r !== "object" || !r.clients || typeof r.clients !== "object" || Array.isArray(r.clients)) {
      throw new BroadcasterError("BadResponse", "presence result has no clients");
    }
    return r as PresenceResult;
  }

  /** How many connections (`numClients`) and distinct users (`numUsers`) are subscribed to `channel`. */
  async presenceStats(channel: string): Promise<PresenceStats> {
    const r = await this.request<any>("presenceStats", { channel });
    if (!r || typeof r.numClients !== "number" || typeof r.numUsers !== "number") {
      throw new BroadcasterError("BadResponse", "presenceStats result lacks numClients or numUsers");
    }
    return { numClients: r.numClients, numUsers: r.numUsers };
  }

  /** Sends any request once connected; resolves with `result`, rejects with a BroadcasterError. */
  async request<T = any>(method: string, params: unknown, timeout = this.opts.requestTimeout): Promise<T> {
    const deadline = Date.now() + timeout;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) throw new BroadcasterError("Timeout", `not connected within ${timeout} ms`);
      await this.waitConnected(left);
      // the state may have changed again between the wake-up and now
      if (this._state === "connected" && this.ws) return this.rawRequest<T>(this.ws, method, params, Math.max(1, deadline - Date.now()));
      if (this._state === "disconnected") throw new BroadcasterError("Disconnected", "client is not connected");
    }
  }

  /** Fetches a fresh token from getToken and re-authenticates the live connection now. */
  async refreshToken(): Promise<void> {
    if (this._state !== "connected" || !this.ws) throw new BroadcasterError("Disconnected", "not connected");
    await this.refresh();
  }

  // ----- state -----------------------------------------------------------------------------------------

  private setState(state: ClientState): void {
    const previous = this._state;
    if (previous === state) return;
    this._state = state;
    this.emit("state", { state, previous });
  }

  private waitConnected(timeout: number): Promise<void> {
    if (this._state === "connected") return Promise.resolve();
    if (this._state === "disconnected" && timeout > 0) {
      return Promise.reject(new BroadcasterError("Disconnected", "client is not connected"));
    }
    return new Promise<void>((resolve, reject) => {
      const w: Waiter = { resolve, reject };
      if (timeout > 0) {
        w.timer = setTimeout(() => {
          this.waiters = this.waiters.filter((x) => x !== w);
          reject(new BroadcasterError("Timeout", `not connected within ${timeout} ms`));
        }, timeout);
      }
      this.waiters.push(w);
    });
  }

  private settleWaiters(error?: BroadcasterError): void {
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) {
      if (w.timer) clearTimeout(w.timer);
      if (error) w.reject(error);
      else w.resolve();
    }
  }

  private clearTimers(): void {
    for (const t of [this.connectTimer, this.heartbeatTimer, this.refreshTimer]) if (t) clearTimeout(t);
    this.connectTimer = this.heartbeatTimer = this.refreshTimer = null;
  }

  /** Terminal stop: no reconnect until connect() is called again. */
  private stop(code: number, reason: string, error: BroadcasterError | undefined): void {
    if (this._state === "disconnected") return;
    this.epoch++;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    const ws = this.ws;
    if (ws) {
      this.detach(ws);
      try {
        ws.close(1000, reason.slice(0, 100));
      } catch {
        /* ignore */
      }
    }
    this.transportGone(new BroadcasterError("Disconnected", reason));
    this.unwatchNetwork();
    this.attempts = 0;
    this.log("stopped", code, reason, error ? error.message : "");
    this.setState("disconnected");
    this.emit("disconnected", { code, reason, error });
    this.settleWaiters(error ?? new BroadcasterError("Disconnected", reason));
  }

  // ----- connecting ------------------------------------------------------------------------------------

  private async attempt(): Promise<void> {
    const epoch = ++this.epoch;
    let token: string | undefined = this.opts.token;
    if (this.opts.getToken) {
      try {
        token = await this.opts.getToken({ reason: this.everConnected ? "reconnect" : "connect" });
      } catch (e) {
        if (epoch !== this.epoch) return;
        const err = toError(e, "Unavailable");
        this.emit("error", { type: "token", error: err });
        if (err.code === "Unauthenticated") return this.stop(4003, "getToken refused", err);
        return this.retry();
      }
      if (epoch !== this.epoch) return;
    }
    if (!this.WS) {
      return this.stop(0, "no WebSocket implementation", new BroadcasterError("Internal", "no WebSocket available; pass options.WebSocket"));
    }
    let ws: WebSocketLike;
    this.log("opening WebSocket", this.url);
    try {
      ws = new this.WS(this.url);
    } catch (e) {
      const err = toError(e, "InvalidArgument");
      this.emit("error", { type: "transport", error: err });
      return this.stop(0, "cannot open WebSocket", err);
    }
    this.ws = ws;
    this.connectTimer = setTimeout(() => this.drop(ws, 4000, "connect timeout"), this.opts.connectTimeout);
    ws.onopen = () => {
      if (ws !== this.ws) return;
      this.log("WebSocket open", token === undefined ? "(no token)" : "authenticating");
      this.lastRecv = Date.now();
      this.authenticate(ws, token);
    };
    ws.onmessage = (ev: { data: unknown }) => {
      if (ws !== this.ws) return;
      this.onFrame(ev.data);
    };
    ws.onerror = () => {
      // Browsers follow an error with a close event; Node's built-in WebSocket (undici) fires only `error` when
      // the connection is refused, and would leave us waiting for the connect timeout. An error always ends
      // the WebSocket (WHATWG "fail the WebSocket connection"), so end this transport here, with close code 1006.
      if (ws !== this.ws) return;
      this.log("WebSocket error");
      this.detach(ws);
      try {
        ws.close();
      } catch {
        /* ignore */
      }
      this.closed(1006, "connection error");
    };
    ws.onclose = (ev: { code?: number; reason?: string }) => {
      if (ws !== this.ws) return;
      this.detach(ws);
      this.closed(typeof ev?.code === "number" ? ev.code : 1006, ev?.reason || "");
    };
  }

  private authenticate(ws: WebSocketLike, token: string | undefined): void {
    if (token === undefined) return this.connected(ws, undefined);
    this.rawRequest(ws, "auth", { token }, this.opts.requestTimeout).then(
      () => {
        if (ws === this.ws) this.connected(ws, token);
      },
      (e: BroadcasterError) => {
        if (ws !== this.ws) return;
        this.emit("error", { type: "auth", error: e });
        if (FATAL_AUTH_CODES.has(e.code)) this.stop(4003, "authentication failed", e);
        else this.drop(ws, 4000, "authentication failed");
      },
    );
  }

  private connected(ws: WebSocketLike, token: string | undefined): void {
    if (this.connectTimer) clearTimeout(this.connectTimer);
    this.connectTimer = null;
    this.attempts = 0;
    const reconnected = this.everConnected;
    this.everConnected = true;
    this.log(reconnected ? "reconnected" : "connected");
    this.setState("connected");
    this.armHeartbeat(ws);
    this.scheduleRefresh(token);
    for (const sub of this.subs.values()) {
      if (sub.state !== "unsubscribed") this.sendSubscribe(sub);
    }
    this.emit("connected", { reconnected });
    this.settleWaiters();
  }

  /** The transport closed (or was dropped): clean up and reconnect or stop. */
  private closed(code: number, reason: string): void {
    this.transportGone(new BroadcasterError("ConnectionClosed", `connection closed (${code}${reason ? " " + reason : ""})`));
    if (this._state === "disconnected") return;
    this.log("connection closed", code, reason);
    if (code === SERVER_DISCONNECT) {
      // The application's backend disconnected this user on purpose (server API): reconnecting at once would
      // undo that. The app decides whether to connect() again.
      return this.stop(code, reason || "disconnected by server", new BroadcasterError("Disconnected", `disconnected by server (${code})`));
    }
    if (!this.opts.reconnect) return this.stop(code, reason || "connection closed", undefined);
    this.setState("connecting");
    this.emit("connecting", { code, reason });
    this.retry();
  }

  private retry(): void {
    if (!this.opts.reconnect) {
      return this.stop(0, "connection failed", new BroadcasterError("Unavailable", "connection failed"));
    }
    let delay = backoffDelay(this.attempts++, this.opts.minReconnectDelay, this.opts.maxReconnectDelay, this.opts.random);
    if (isOffline()) {
      // No network: an `online` event retries at once (onOnline); until then only probe slowly, in case the
      // browser's idea of being offline is wrong.
      delay = Math.max(delay, this.opts.maxReconnectDelay);
      this.log("offline: next attempt on the online event or in", delay, "ms");
    } else {
      this.log("reconnecting in", delay, "ms (attempt", this.attempts + ")");
    }
    const epoch = this.epoch;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      if (epoch === this.epoch && this._state === "connecting") void this.attempt();
    }, delay);
  }

  // ----- browser online/offline -------------------------------------------------------------------------

  private readonly onOnline = (): void => {
    // Waiting for a retry (not in the middle of an attempt): try now instead of at the end of the backoff.
    if (this._state !== "connecting" || !this.reconnectTimer) return;
    this.log("online: reconnecting now");
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    this.attempts = 0;
    void this.attempt();
  };

  private readonly onOffline = (): void => {
    this.log("offline");
  };

  private watchNetwork(): void {
    const w = (globalThis as any).window;
    if (this.watched || !w || typeof w.addEventListener !== "function") return; // Node, workers
    w.addEventListener("online", this.onOnline);
    w.addEventListener("offline", this.onOffline);
    this.watched = w;
  }

  private unwatchNetwork(): void {
    if (!this.watched) return;
    this.watched.removeEventListener("online", this.onOnline);
    this.watched.removeEventListener("offline", this.onOffline);
    this.watched = null;
  }

  private log(...args: unknown[]): void {
    if (this.logger) this.logger("[broadcaster]", ...args);
  }

  private transportGone(error: BroadcasterError): void {
    this.ws = null;
    this.clearTimers();
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      this.pending.delete(id);
      p.reject(error);
    }
    for (const sub of this.subs.values()) {
      sub._unsubInFlight = 0;
      if (sub._retryTimer) clearTimeout(sub._retryTimer);
      sub._retryTimer = null;
      if (sub.state === "subscribed") sub._setState("subscribing");
    }
  }

  private detach(ws: WebSocketLike): void {
    ws.onopen = ws.onmessage = ws.onerror = null;
    ws.onclose = null;
  }

  /** Abandons a transport we consider dead or unusable, then reconnects. */
  private drop(ws: WebSocketLike, code: number, reason: string): void {
    if (ws !== this.ws) return;
    this.detach(ws);
    try {
      ws.close(code, reason);
    } catch {
      /* ignore */
    }
    this.log("dropping the connection:", reason);
    this.emit("error", { type: "transport", error: new BroadcasterError("Unavailable", reason) });
    this.closed(code, reason);
  }

  // ----- frames ----------------------------------------------------------------------------------------

  private rawRequest<T>(ws: WebSocketLike, method: string, params: unknown, timeout: number): Promise<T> {
    return new Promise<T>((resolve, reject) => this.call(ws, method, params, timeout, resolve, reject));
  }

  /** Sends a request; `resolve` runs synchronously when its reply is read, `reject` never synchronously. */
  private call(ws: WebSocketLike, method: string, params: unknown, timeout: number, resolve: (v: any) => void, reject: (e: BroadcasterError) => void): void {
    const id = ++this.nextId;
    const timer = setTimeout(() => {
      this.pending.delete(id);
      reject(new BroadcasterError("Timeout", `${method} got no reply within ${timeout} ms`));
    }, timeout);
    this.pending.set(id, { resolve, reject, timer, ws });
    const frame: Record<string, unknown> = { id, method };
    if (params !== null && params !== undefined) frame.params = params;
    try {
      ws.send(JSON.stringify(frame));
    } catch (e) {
      clearTimeout(timer);
      this.pending.delete(id);
      const err = toError(e, "ConnectionClosed");
      void Promise.resolve().then(() => reject(err));
    }
  }

  private onFrame(data: unknown): void {
    this.lastRecv = Date.now();
    if (typeof data !== "string") return; // the protocol is text-only
    let msg: any;
    try {
      msg = JSON.parse(data);
    } catch {
      this.emit("error", { type: "protocol", error: new BroadcasterError("BadResponse", "frame is not JSON") });
      return;
    }
    if (!msg || typeof msg !== "object") return;
    if (msg.method === "broadcast") {
      if (msg.params && typeof msg.params === "object") this.onBroadcast(msg.params);
      return;
    }
    if (msg.method === "join" || msg.method === "leave") {
      if (msg.params && typeof msg.params === "object") this.onJoinLeave(msg.method, msg.params);
      return;
    }
    if (msg.method === "unsubscribe") {
      if (msg.params && typeof msg.params.channel === "string") this.onServerUnsubscribe(msg.params.channel);
      return;
    }
    if (msg.requestId !== undefined && msg.requestId !== null) {
      const id = typeof msg.requestId === "number" ? msg.requestId : Number(msg.requestId);
      const p = this.pending.get(id);
      if (!p) return; // late reply to a timed-out request
      this.pending.delete(id);
      clearTimeout(p.timer);
      if (msg.error) p.reject(new BroadcasterError(String(msg.error.code ?? "Internal"), String(msg.error.message ?? "")));
      else p.resolve(msg.result);
      return;
    }
    if (msg.error) {
      this.emit("error", {
        type: "server",
        error: new BroadcasterError(String(msg.error.code ?? "Internal"), String(msg.error.message ?? "")),
      });
    }
    // anything else: a newer server's notification this client does not know; ignore it.
  }

  private onBroadcast(p: any): void {
    const sub = this.subs.get(p.channel);
    if (!sub || sub.state === "unsubscribed" || sub._unsubInFlight > 0) return;
    const receivedAt = Date.now();
    const created = typeof p.createTime === "string" ? Date.parse(p.createTime) : NaN;
    const m: Message = {
      id: p.id,
      seq: typeof p.seq === "number" ? p.seq : Number(p.seq),
      createTime: p.createTime,
      channel: p.channel,
      event: p.event,
      payload: p.payload,
      receivedAt,
      latency: Number.isFinite(created) ? receivedAt - created : null,
      offset: null,
      epoch: null,
    };
    const pos = positionOf(p.epoch, p.offset);
    if (pos) {
      m.offset = pos.offset;
      m.epoch = pos.epoch;
    }
    const gap = sub._deliver(m);
    if (gap) {
      this.log("gap on", sub.channel, "expected seq", gap.expected, "got", gap.got);
      this.emit("gap", gap);
    }
    this.emit("message", m);
  }

  private onJoinLeave(kind: "join" | "leave", p: any): void {
    const sub = this.subs.get(p.channel);
    // Like broadcasts: nothing for a subscription the app has already given up on.
    if (!sub || sub.state === "unsubscribed" || sub._unsubInFlight > 0 || !sub._joinLeave) return;
    const ev: JoinLeaveEvent = { channel: p.channel, clientId: String(p.clientId ?? ""), user: String(p.user ?? "") };
    if ("info" in p) ev.info = p.info;
    sub._emitJoinLeave(kind, ev);
    this.emit(kind, ev);
  }

  /** The backend ended the subscription (server API): it must not come back by itself on the next reconnect. */
  private onServerUnsubscribe(channel: string): void {
    const sub = this.subs.get(channel);
    // With our own unsubscribe in flight the notification may be about that older subscription.
    if (!sub || sub.state === "unsubscribed" || sub._unsubInFlight > 0) return;
    this.log("unsubscribed by the server from", channel);
    sub._unsubscribed("server");
  }

  // ----- subscriptions ---------------------------------------------------------------------------------

  /** @internal */
  _activate(sub: Subscription, options: SubscribeOptions = {}): void {
    if (this.subs.get(sub.channel) !== sub) {
      const other = this.subs.get(sub.channel);
      if (other && other.state !== "unsubscribed") {
        throw new BroadcasterError("AlreadyExists", `another subscription to ${sub.channel} is active`);
      }
      this.subs.set(sub.channel, sub);
    }
    if (sub.state !== "unsubscribed") return;
    if (options.since) sub._resumeFrom(options.since);
    if (options.joinLeave !== undefined) sub._joinLeave = options.joinLeave;
    sub._setState("subscribing");
    if (this._state === "connected") this.sendSubscribe(sub);
  }

  /** @internal */
  async _deactivate(sub: Subscription): Promise<void> {
    if (sub.state === "unsubscribed") return;
    sub._unsubscribed("client");
    const ws = this.ws;
    if (this._state !== "connected" || !ws) return;
    sub._unsubInFlight++;
    try {
      await this.rawRequest(ws, "unsubscribe", { channel: sub.channel }, this.opts.requestTimeout);
    } catch (e) {
      if (ws === this.ws) this.emit("error", { type: "unsubscribe", error: toError(e), channel: sub.channel });
    } finally {
      if (ws === this.ws && sub._unsubInFlight > 0) sub._unsubInFlight--;
    }
  }

  private sendSubscribe(sub: Subscription): void {
    const ws = this.ws;
    if (!ws) return;
    const gen = ++sub._gen;
    const resubscribed = sub._everSubscribed;
    // Resume from the last position seen; from a position the app gave also with `recover: false`.
    const since = this.opts.recover || sub._explicitSince ? sub.position : null;
    const params: Record<string, unknown> = { channel: sub.channel };
    if (since) params.since = since;
    if (sub._joinLeave) params.joinLeave = true;
    sub._setState("subscribing");
    sub._resetSeq();
    this.log("subscribe", sub.channel, since ? `since ${since.epoch}:${since.offset}` : "");
    // The result must be applied synchronously: replayed broadcasts may follow it in the same read.
    this.call(
      ws,
      "subscribe",
      params,
      this.opts.requestTimeout,
      (result) => {
        if (gen !== sub._gen || ws !== this.ws) return;
        const ev = sub._subscribed(result, resubscribed, since);
        this.log("subscribed", sub.channel, ev.subscriptionId, ev.recovered === undefined ? "" : ev.recovered ? "recovered" : "NOT recovered");
        this.emit("subscribed", ev);
        const gap = sub._recoveryGap(ev);
        if (gap) this.emit("gap", gap);
      },
      (e: BroadcasterError) => {
        if (gen !== sub._gen || ws !== this.ws) return;
        if (e.code === "AlreadyExists") {
          // The server already has it on this connection (e.g. an earlier attempt timed out but succeeded).
          this.emit("subscribed", sub._subscribed(null, resubscribed, since));
          return;
        }
        // The socket is closing (send failed): its close event follows, and the reconnect resubscribes.
        if (e.code === "ConnectionClosed") return;
        this.log("subscribe failed", sub.channel, e.code);
        this.emit("error", { type: "subscribe", error: e, channel: sub.channel });
        if (TRANSIENT_CODES.has(e.code)) {
          sub._emitError(e);
          const delay = backoffDelay(sub._retries++, this.opts.minReconnectDelay, this.opts.maxReconnectDelay, this.opts.random);
          sub._retryTimer = setTimeout(() => {
            sub._retryTimer = null;
            if (gen === sub._gen && ws === this.ws && sub.state === "subscribing") this.sendSubscribe(sub);
          }, delay);
          return;
        }
        sub._unsubscribed("error", e);
      },
    );
  }

  // ----- heartbeat -------------------------------------------------------------------------------------

  private armHeartbeat(ws: WebSocketLike): void {
    const interval = this.opts.heartbeatInterval;
    if (!(interval > 0)) return;
    if (this.heartbeatTimer) clearTimeout(this.heartbeatTimer);
    const wait = Math.max(0, this.lastRecv + interval - Date.now());
    this.heartbeatTimer = setTimeout(() => {
      this.heartbeatTimer = null;
      if (ws !== this.ws) return;
      if (Date.now() - this.lastRecv < interval) return this.armHeartbeat(ws);
      this.rawRequest(ws, "heartbeat", null, this.opts.heartbeatTimeout).then(
        () => {
          if (ws === this.ws) this.armHeartbeat(ws);
        },
        (e: BroadcasterError) => {
          if (ws !== this.ws) return;
          if (e.code === "Timeout") this.drop(ws, 4000, "heartbeat timeout");
          else this.armHeartbeat(ws);
        },
      );
    }, wait);
  }

  // ----- token refresh ---------------------------------------------------------------------------------

  private scheduleRefresh(token: string | undefined, retryIn?: number): void {
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    this.refreshTimer = null;
    if (!token || !this.opts.getToken) return;
    const exp = decodeJwtClaims(token)?.exp;
    if (typeof exp !== "number") return;
    const remaining = exp * 1000 - Date.now();
    let delay: number;
    if (retryIn !== undefined) {
      if (remaining < 1000) return; // too late; the server will close with 4001 and we reconnect
      delay = Math.min(retryIn, remaining / 3);
    } else {
      delay = Math.max(0, remaining - Math.min(this.opts.refreshMargin, remaining / 2));
    }
    const ws = this.ws;
    this.refreshTimer = setTimeout(() => {
      this.refreshTimer = null;
      if (ws !== this.ws || this._state !== "connected") return;
      this.refresh().catch(() => {
        if (ws === this.ws) this.scheduleRefresh(token, 5000);
      });
    }, delay);
  }

  private async refresh(): Promise<void> {
    const ws = this.ws;
    if (!ws || !this.opts.getToken) throw new BroadcasterError("FailedPrecondition", "no getToken to refresh with");
    let token: string;
    try {
      token = await this.opts.getToken({ reason: "refresh" });
    } catch (e) {
      const err = toError(e, "Unavailable");
      if (ws === this.ws) this.emit("error", { type: "refresh", error: err });
      throw err;
    }
    if (ws !== this.ws) throw new BroadcasterError("ConnectionClosed", "connection changed during refresh");
    try {
      await this.rawRequest(ws, "auth", { token }, this.opts.requestTimeout);
    } catch (e) {
      const err = toError(e);
      if (ws === this.ws) this.emit("error", { type: "refresh", error: err });
      throw err;
    }
    if (ws !== this.ws) return;
    const claims = decodeJwtClaims(token);
    this.pruneUnauthorized(claims);
    this.scheduleRefresh(token);
    this.emit("refreshed", { exp: typeof claims?.exp === "number" ? claims.exp : null });
  }

  /** The server drops subscriptions a refreshed token no longer authorizes; mirror that locally. */
  private pruneUnauthorized(claims: Record<string, unknown> | null): void {
    if (!claims) return;
    const channels = claims.authorizedChannels;
    const scope = claims.scope;
    const canSubscribe = !Array.isArray(scope) || scope.includes("subscribe");
    const allowed = Array.isArray(channels) ? new Set(channels.filter((c) => typeof c === "string")) : null;
    for (const sub of this.subs.values()) {
      if (sub.state === "unsubscribed") continue;
      if (!canSubscribe || (allowed && !allowed.has(sub.channel))) {
        sub._unsubscribed(
          "unauthorized",
          new BroadcasterError("PermissionDenied", `the refreshed token does not authorize ${sub.channel}`),
        );
      }
    }
  }
}

export default Broadcaster;
