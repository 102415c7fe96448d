// Runs `node --test` on the given files (default: every test/*.test.mjs), enabling Node's built-in WebSocket
// on Node 20 where it is still behind --experimental-websocket (Node >= 22 has it on by default).
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
let files = process.argv.slice(2);
if (files.length === 0) {
  files = readdirSync(join(root, "test"))
    .filter((f) => f.endsWith(".test.mjs"))
    .sort()
    .map((f) => join("test", f));
}
const flags = [];
if (typeof globalThis.WebSocket === "undefined" && process.allowedNodeEnvironmentFlags.has("--experimental-websocket")) {
  flags.push("--experimental-websocket");
}
const r = spawnSync(process.execPath, [...flags, "--test", "--test-timeout=120000", ...files], { cwd: root, stdio: "inherit" });
process.exit(r.status ?? 1);
