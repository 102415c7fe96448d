// Helpers to run the real server binary in tests: start it on 127.0.0.1, find its port, drain its output,
// stop it, mint HS256 tokens, publish over REST. Used by the integration test here and by tests/e2e.
import { spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = resolve(here, "../../..");

/** The server binary: $BROADCASTER_BIN or build/broadcaster at the repository root. */
export function serverBinary() {
  const bin = process.env.BROADCASTER_BIN || join(REPO_ROOT, "build", "broadcaster");
  return existsSync(bin) ? bin : null;
}

export const SECRET = "integration-secret";
export const API_KEY = "integration-key";

/**
 * Starts the server and resolves once it logged `listening on 127.0.0.1:PORT`.
 * Returns { port, http, ws, proc, output(), stop() }.
 */
export async function startServer({ port = 0, args = [], base = "/broadcaster", timeout = 15000, bin = serverBinary() } = {}) {
  if (!bin) throw new Error("server binary not found (build it or set BROADCASTER_BIN)");
  const fullArgs = ["--port", String(port), "--host", "127.0.0.1", "--jwt-secret", SECRET, "--api-keys", API_KEY, "--shutdown-timeout", "1", ...args];
  const env = { ...process.env };
  for (const k of ["PORT", "HOST", "JWT_SECRET", "API_KEYS", "BASE_PATH", "DEV", "CONSOLE", "CONSOLE_DIR"]) delete env[k];
  const proc = spawn(bin, fullArgs, { stdio: ["ignore", "pipe", "pipe"], env });
  let out = "";
  const keep = (chunk) => {
    out += chunk.toString();
    if (out.length > 200000) out = out.slice(-100000); // keep draining, keep the tail
  };
  proc.stderr.on("data", keep);
  const listening = new Promise((resolveP, rejectP) => {
    const timer = setTimeout(() => rejectP(new Error(`server did not start within ${timeout} ms:\n${out}`)), timeout);
    let buf = "";
    proc.stdout.on("data", (chunk) => {
      keep(chunk);
      buf += chunk.toString();
      const m = /listening on 127\.0\.0\.1:(\d+)/.exec(buf);
      if (m) {
        clearTimeout(timer);
        buf = "";
        resolveP(Number(m[1]));
      } else if (buf.length > 100000) buf = buf.slice(-1000);
    });
    proc.on("exit", (code, sig) => {
      clearTimeout(timer);
      rejectP(new Error(`server exited (${code ?? sig}) before listening:\n${out}`));
    });
  });
  const actualPort = await listening;
  const exited = new Promise((r) => proc.on("exit", (code, sig) => r(code ?? sig)));
  return {
    port: actualPort,
    proc,
    http: `http://127.0.0.1:${actualPort}${base}`,
    ws: `ws://127.0.0.1:${actualPort}${base}/websocket`,
    output: () => out,
    exited,
    async stop(signal = "SIGTERM", wait = 10000) {
      if (proc.exitCode !== null || proc.signalCode !== null) return exited;
      proc.kill(signal);
      const t = setTimeout(() => proc.kill("SIGKILL"), wait);
      const r = await exited;
      clearTimeout(t);
      return r;
    },
  };
}

/** Starts the server on a fixed port, retrying briefly while the old listener's port is still being released. */
export async function restartServer(old, opts = {}) {
  await old.stop();
  let lastErr;
  for (let i = 0; i < 20; i++) {
    try {
      return await startServer({ ...opts, port: old.port });
    } catch (e) {
      lastErr = e;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  throw lastErr;
}

const b64url = (v) => Buffer.from(typeof v === "string" ? v : JSON.stringify(v)).toString("base64url");

/** An HS256 JWT for the server: sub, channels, scope, lifetime in seconds; `extra` overrides claims. */
export function mintToken({ sub = "tester", channels = ["news"], scope = ["subscribe", "publish"], ttl = 3600, secret = SECRET, extra = {} } = {}) {
  const now = Math.floor(Date.now() / 1000);
  const claims = { sub, aud: "broadcaster", iat: now, exp: now + ttl, authorizedChannels: channels, scope, ...extra };
  const head = `${b64url({ alg: "HS256", typ: "JWT" })}.${b64url(claims)}`;
  const sig = createHmac("sha256", secret).update(head).digest("base64url");
  return `${head}.${sig}`;
}

/** POST {BASE}/publish with the API key; resolves with { status, body }. */
export async function restPublish(server, channel, event, payload, key = API_KEY) {
  const res = await fetch(`${server.http}/publish`, {
    method: "POST",
    headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
    body: JSON.stringify({ channel, event, payload }),
    signal: AbortSignal.timeout(5000),
  });
  const text = await res.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  return { status: res.status, body };
}

/** Resolves with the next `event` on `emitter` that satisfies `pred`; rejects after `timeout` ms. */
export function next(emitter, event, pred = () => true, timeout = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no ${event} event within ${timeout} ms`));
    }, timeout);
    const off = emitter.on(event, (ev) => {
      if (!pred(ev)) return;
      clearTimeout(timer);
      off();
      resolve(ev);
    });
  });
}
