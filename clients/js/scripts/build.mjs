// Builds the package into dist/ (`npm run build`, and `prepare` before a pack or publish):
// - dist/broadcaster.js      ES module (tsc), with dist/broadcaster.d.ts and source maps
// - dist/broadcaster.cjs     CommonJS (esbuild), with dist/broadcaster.d.cts for `require` under TypeScript
// - dist/broadcaster.iife.js and .iife.min.js: one <script> for browsers without a bundler; the exports are the
//   global `BroadcasterClient` (new BroadcasterClient.Broadcaster(url, options))
// Every map carries its sources (sourcesContent), so the package needs no src/ to debug with.
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const dist = join(root, "dist");
const require = createRequire(import.meta.url);
const esbuild = require("esbuild");

rmSync(dist, { recursive: true, force: true });
mkdirSync(dist);
execFileSync(process.execPath, [require.resolve("typescript/bin/tsc"), "-p", join(root, "tsconfig.json")], {
  cwd: root,
  stdio: "inherit",
});
copyFileSync(join(dist, "broadcaster.d.ts"), join(dist, "broadcaster.d.cts"));

const common = {
  entryPoints: [join(root, "src", "broadcaster.ts")],
  bundle: true,
  sourcemap: true,
  target: "es2020",
  logLevel: "warning",
  legalComments: "none",
};
await esbuild.build({ ...common, format: "cjs", platform: "neutral", outfile: join(dist, "broadcaster.cjs") });
await esbuild.build({ ...common, format: "iife", globalName: "BroadcasterClient", outfile: join(dist, "broadcaster.iife.js") });
await esbuild.build({
  ...common,
  format: "iife",
  globalName: "BroadcasterClient",
  minify: true,
  outfile: join(dist, "broadcaster.iife.min.js"),
});
console.log("built dist/: broadcaster.js (ESM), broadcaster.cjs, broadcaster.iife.js, broadcaster.iife.min.js, .d.ts/.d.cts, maps");
