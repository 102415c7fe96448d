// Runs `node --test` on the given files (default: every test/*.test.mjs) on every Node from Debian 12's 18 up:
// - a WebSocket: Node >= 22 has one built in; Node 20 has it behind --experimental-websocket; older Node gets
//   the `ws` package's, preloaded by test/setup-websocket.cjs.
// - --test-timeout exists from Node 20.11; without it a test still cannot hang the run: the whole run is bounded
//   here (RUN_LIMIT_MS), past which the runner's process group (its test files and the servers they started)
//   is killed.
import { spawn } from "node:child_process";
import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const RUN_LIMIT_MS = 10 * 60 * 1000;
const root = join(dirname(fileURLToPath(import.meta.url)), "..");
let files = process.argv.slice(2);
if (files.length === 0) {
  files = readdirSync(join(root, "test"))
    .filter((f) => f.endsWith(".test.mjs"))
    .sort()
    .map((f) => join("test", f));
}
const [major, minor] = process.versions.node.split(".").map(Number);
const atLeast = (M, m) => major > M || (major === M && minor >= m);
const flags = [];
if (typeof globalThis.WebSocket === "undefined") {
  if (process.allowedNodeEnvironmentFlags.has("--experimental-websocket")) flags.push("--experimental-websocket");
  else flags.push("--require", join(root, "test", "setup-websocket.cjs"));
}
if (atLeast(20, 11)) flags.push("--test-timeout=120000");
const child = spawn(process.execPath, [...flags, "--test", ...files], { cwd: root, stdio: "inherit", detached: true });
const killAll = (signal) => {
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
};
const limit = setTimeout(() => {
  console.error(`run-tests: the tests did not finish within ${RUN_LIMIT_MS / 1000} s: stopping them`);
  killAll("SIGKILL");
}, RUN_LIMIT_MS);
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => killAll(signal));
child.on("exit", (code) => {
  clearTimeout(limit);
  process.exit(code ?? 1);
});
