/*
 * @broadcaster/client/server — for your backend (Node.js ≥ 18): the Broadcaster REST API with an API key
 * (publish, history, presence, disconnect and unsubscribe users, info, health), and client token minting.
 *
 * Node-only (node:crypto, global fetch); the browser bundles never include it. It shares BroadcasterError and
 * the result types with the client, so code that handles both sees one error class.
 */
import { createHmac } from "node:crypto";
import {
  BroadcasterError,
  backoffDelay,
  type ErrorCode,
  type HistoryOptions,
  type HistoryResult,
  type PresenceResult,
  type PresenceStats,
  type PublishResult,
} from "./broadcaster.js";

export { BroadcasterError };
export type { ErrorCode, HistoryOptions, HistoryResult, PresenceResult, PresenceStats, PublishResult };

export interface BroadcasterApiOptions {
  /** Where the server's REST API lives: scheme, host, port and base path, e.g. `http://127.0.0.1:8000/broadcaster`. */
  baseUrl: string;
  /** One of the server's `API_KEYS`. */
  apiKey: string;
  /** How long one attempt may take (ms). Default 10000. */
  timeout?: number;
  /** Retries after a 503 `Unavailable` (and, for calls that are safe to repeat, after a network error). Default 3. */
  retries?: number;
  /** Base of the first retry delay (ms); it doubles per retry, with jitter. Default 200. */
  minRetryDelay?: number;
  /** Cap on a retry delay (ms). A `Retry-After` longer than this is not waited for: the call fails. Default 5000. */
  maxRetryDelay?: number;
  /** The fetch to use. Default `globalThis.fetch`. */
  fetch?: typeof fetch;
  /** Random source in [0, 1) for the retry jitter (tests). Default Math.random. */
  random?: () => number;
}

/** A failed REST call: the protocol's error code, plus the HTTP status (0 when no response came). */
export class BroadcasterApiError extends BroadcasterError {
  readonly status: number;
  /** The server's `Retry-After`, in ms, when it sent one. */
  readonly retryAfter: number | null;
  constructor(code: ErrorCode, message: string, status: number, retryAfter: number | null = null) {
    super(code, message);
    this.name = "BroadcasterApiError";
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

/** What `GET {BASE}/info` answers (node id, version, uptime, counts, broker state); fields vary by version. */
export type ServerInfo = Record<string, unknown>;

// For answers without the protocol's error body (a proxy's 502 page, say): the code the status stands for.
const STATUS_CODES: Record<number, ErrorCode> = {
  400: "InvalidArgument",
  401: "Unauthenticated",
  403: "PermissionDenied",
  404: "NotFound",
  405: "InvalidArgument",
  409: "AlreadyExists",
  413: "ResourceExhausted",
  429: "ResourceExhausted",
  503: "Unavailable",
};

interface CallOptions {
  query?: Record<string, string | number | undefined>;
  body?: unknown;
  /** Safe to send again after a network error: the server may or may not have acted on the first. */
  idempotent: boolean;
}

/**
 * The Broadcaster REST API, for a backend.
 *
 * ```ts
 * const api = new BroadcasterApi({ baseUrl: "http://127.0.0.1:8000/broadcaster", apiKey: process.env.BROADCASTER_KEY! });
 * await api.publish("chat:lobby", "text", { body: "hi" });
 * ```
 *
 * A 503 (`Unavailable`: the broker is down, the server is shutting down) means the server did not act, so every
 * call retries it, a bounded number of times with growing delays, waiting what `Retry-After` asks when the server
 * says. A network error or timeout is retried only where repeating is harmless: not for `publish`, which could
 * then be delivered twice. Any 4xx fails at once: sending the same request again cannot help.
 */
export class BroadcasterApi {
  readonly baseUrl: string;
  private readonly apiKey: string;
  private readonly timeout: number;
  private readonly retries: number;
  private readonly minRetryDelay: number;
  private readonly maxRetryDelay: number;
  private readonly fetchImpl: typeof fetch;
  private readonly random: () => number;

  constructor(options: BroadcasterApiOptions) {
    if (!options || typeof options.baseUrl !== "string" || !/^https?:\/\//.test(options.baseUrl)) {
      throw new BroadcasterError("InvalidArgument", "baseUrl must be an http:// or https:// URL");
    }
    if (typeof options.apiKey !== "string" || options.apiKey === "") {
      throw new BroadcasterError("InvalidArgument", "apiKey is required");
    }
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.apiKey = options.apiKey;
    this.timeout = options.timeout ?? 10000;
    this.retries = Math.max(0, options.retries ?? 3);
    this.minRetryDelay = options.minRetryDelay ?? 200;
    this.maxRetryDelay = options.maxRetryDelay ?? 5000;
    const f = options.fetch ?? (globalThis as any).fetch;
    if (typeof f !== "function") throw new BroadcasterError("Internal", "no fetch available; pass options.fetch");
    this.fetchImpl = f;
    this.random = options.random ?? Math.random;
  }

  /** Publishes to `channel` (`POST {BASE}/publish`); resolves with the message's id and createTime. */
  publish(channel: string, event: string, payload: unknown = null): Promise<PublishResult> {
    return this.call("POST", "/publish", { body: { channel, event, payload: payload === undefined ? null : payload }, idempotent: false });
  }

  /** A channel's kept messages, oldest first, and its current position (`GET {BASE}/history`). */
  history<P = any>(channel: string, options: HistoryOptions = {}): Promise<HistoryResult<P>> {
    const query: CallOptions["query"] = { channel, limit: options.limit };
    if (options.since) {
      query.epoch = options.since.epoch;
      query.offset = options.since.offset;
    }
    return this.call("GET", "/history", { query, idempotent: true });
  }

  /** Who is subscribed to `channel` on every node (`GET {BASE}/presence`); `FailedPrecondition` where presence is off. */
  presence(channel: string): Promise<PresenceResult> {
    return this.call("GET", "/presence", { query: { channel }, idempotent: true });
  }

  /** How many connections and users are subscribed to `channel` (`GET {BASE}/presence-stats`). */
  presenceStats(channel: string): Promise<PresenceStats> {
    return this.call("GET", "/presence-stats", { query: { channel }, idempotent: true });
  }

  /** Closes every connection of `user` (a token's `sub`) with code 4003; succeeds also when none matched. */
  async disconnect(user: string): Promise<void> {
    await this.call("POST", "/disconnect", { body: { user }, idempotent: true });
  }

  /** Ends every subscription of `user` to `channel`; each client is told with an `unsubscribe` notification. */
  async unsubscribe(user: string, channel: string): Promise<void> {
    await this.call("POST", "/unsubscribe", { body: { user, channel }, idempotent: true });
  }

  /** The node's id, version, uptime, counts and broker state (`GET {BASE}/info`). */
  info(): Promise<ServerInfo> {
    return this.call("GET", "/info", { idempotent: true });
  }

  /**
   * `GET {BASE}/health`: true when the server accepts traffic (and is connected to its broker), false when it
   * answers otherwise or cannot be reached. A probe: no retries.
   */
  async health(): Promise<boolean> {
    try {
      const res = await this.fetchImpl(`${this.baseUrl}/health`, { signal: AbortSignal.timeout(this.timeout) });
      await res.arrayBuffer().catch(() => undefined); // lets the connection be reused
      return res.status === 200;
    } catch {
      return false;
    }
  }

  private async call<T>(method: "GET" | "POST", path: string, options: CallOptions): Promise<T> {
    let url = this.baseUrl + path;
    if (options.query) {
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(options.query)) if (v !== undefined) q.set(k, String(v));
      url += `?${q}`;
    }
    const headers: Record<string, string> = { Authorization: `Bearer ${this.apiKey}` };
    let body: string | undefined;
    if (options.body !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(options.body);
    }
    for (let attempt = 0; ; attempt++) {
      let status = 0;
      let text: string;
      let retryAfter: number | null = null;
      try {
        const res = await this.fetchImpl(url, { method, headers, body, signal: AbortSignal.timeout(this.timeout) });
        status = res.status;
        retryAfter = parseRetryAfter(res.headers.get("retry-after"));
        text = await res.text();
      } catch (e) {
        const timedOut = (e as any)?.name === "TimeoutError" || (e as any)?.name === "AbortError";
        const err = new BroadcasterApiError(
          timedOut ? "Timeout" : status ? "BadResponse" : "Unavailable",
          `${method} ${path}: ${timedOut ? `no answer within ${this.timeout} ms` : (e as Error)?.message ?? String(e)}`,
          status,
        );
        if (!options.idempotent || attempt >= this.retries) throw err;
        await sleep(backoffDelay(attempt, this.minRetryDelay, this.maxRetryDelay, this.random));
        continue;
      }
      if (status >= 200 && status < 300) {
        try {
          return JSON.parse(text) as T;
        } catch {
          throw new BroadcasterApiError("BadResponse", `${method} ${path}: the answer is not JSON`, status);
        }
      }
      const err = errorOf(method, path, status, text, retryAfter);
      if (status === 503 && attempt < this.retries) {
        const delay = retryAfter ?? backoffDelay(attempt, this.minRetryDelay, this.maxRetryDelay, this.random);
        // A server that asks for a longer pause than we are willing to wait: fail now and let the caller decide.
        if (delay <= this.maxRetryDelay) {
          await sleep(delay);
          continue;
        }
      }
      throw err;
    }
  }
}

function errorOf(method: string, path: string, status: number, text: string, retryAfter: number | null): BroadcasterApiError {
  let code: ErrorCode = STATUS_CODES[status] ?? "Internal";
  let message = `HTTP ${status}`;
  try {
    const e = JSON.parse(text)?.error;
    if (e && typeof e.code === "string") code = e.code;
    if (e && typeof e.message === "string") message = e.message;
  } catch {
    // not the protocol's error body (e.g. a proxy's page): the status decides
  }
  return new BroadcasterApiError(code, `${method} ${path}: ${message}`, status, retryAfter);
}

/** `Retry-After` as ms: delay-seconds or an HTTP date (RFC 9110); null when absent or unreadable. */
function parseRetryAfter(value: string | null): number | null {
  if (value === null) return null;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const t = Date.parse(v);
  return Number.isFinite(t) ? Math.max(0, t - Date.now()) : null;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// ---------------------------------------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------------------------------------

export type Scope = "subscribe" | "publish";

export interface MintTokenOptions {
  /** The server's `JWT_SECRET`. */
  secret: string;
  /** The user: the `sub` claim (presence and the server API's `disconnect` know users by it). */
  sub: string;
  /** The channels the token authorizes (`authorizedChannels`). */
  channels: string[];
  /** Default `["subscribe"]`, as `broadcaster token`. */
  scope?: Scope[];
  /** Lifetime: seconds, or a string such as `"90"`, `"15m"`, `"1h"`, `"7d"`. Default `"1h"`. */
  ttl?: number | string;
  /** The `info` claim others see in presence and join/leave: any JSON value, at most 1 KiB serialised. */
  info?: unknown;
  /** The issue time (`iat`) in Unix seconds. Default now. */
  now?: number;
}

const TTL_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };
const MAX_INFO_BYTES = 1024;

/** A lifetime in seconds from a number of seconds or `N`, `Ns`, `Nm`, `Nh`, `Nd` (as `broadcaster token --ttl`). */
export function parseTtl(ttl: number | string): number {
  if (typeof ttl === "number") {
    if (Number.isInteger(ttl) && ttl > 0) return ttl;
  } else {
    const m = /^(\d+)([smhd]?)$/.exec(ttl);
    const n = m ? Number(m[1]) * TTL_UNITS[m[2] || "s"] : 0;
    if (n > 0 && Number.isSafeInteger(n)) return n;
  }
  throw new BroadcasterError("InvalidArgument", `ttl ${JSON.stringify(ttl)}: expected positive whole seconds, or a number with s, m, h or d`);
}

/**
 * A client token (HS256 JWT) with the claims the server expects, the same as `broadcaster token` prints: `sub`,
 * `aud: "broadcaster"`, `iat`, `exp`, `authorizedChannels`, `scope` and, when given, `info`. Throws
 * `InvalidArgument` for what the server would refuse (empty `sub` or channel list, an unknown scope, an `info`
 * over 1 KiB).
 */
export function mintToken(options: MintTokenOptions): string {
  const { secret, sub, channels, scope = ["subscribe"], ttl = "1h", info } = options;
  const bad = (why: string) => new BroadcasterError("InvalidArgument", why);
  if (typeof secret !== "string" || secret === "") throw bad("secret is required");
  if (typeof sub !== "string" || sub === "") throw bad("sub must be a non-empty string");
  if (!Array.isArray(channels) || channels.length === 0) throw bad("channels needs at least one channel");
  if (channels.some((c) => typeof c !== "string" || c === "")) throw bad("channels: empty channel name");
  for (const s of scope) if (s !== "subscribe" && s !== "publish") throw bad(`scope: '${s}' is neither subscribe nor publish`);
  const lifetime = parseTtl(ttl);
  const iat = Math.floor(options.now ?? Date.now() / 1000);
  // The claims in the order `broadcaster token` writes them, so that both sign the same bytes.
  const claims: Record<string, unknown> = { sub, aud: "broadcaster", iat, exp: iat + lifetime, authorizedChannels: channels, scope };
  if (info !== undefined) {
    const text = JSON.stringify(info);
    if (text === undefined) throw bad("info is not a JSON value");
    if (Buffer.byteLength(text) > MAX_INFO_BYTES) throw bad(`info is ${Buffer.byteLength(text)} bytes serialised; the server takes at most ${MAX_INFO_BYTES}`);
    claims.info = info;
  }
  const head = `${b64url('{"alg":"HS256","typ":"JWT"}')}.${b64url(JSON.stringify(claims))}`;
  return `${head}.${createHmac("sha256", secret).update(head).digest("base64url")}`;
}

function b64url(text: string): string {
  return Buffer.from(text, "utf8").toString("base64url");
}
