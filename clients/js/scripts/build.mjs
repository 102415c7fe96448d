// Builds the package into dist/ (`npm run build`, and `prepare` before a pack or publish):
// - dist/broadcaster.js      ES module (tsc), with dist/broadcaster.d.ts and source maps
// - dist/broadcaster.cjs     CommonJS (esbuild), with dist/broadcaster.d.cts for `require` under TypeScript
// - dist/broadcaster.iife.js and .iife.min.js: one <script> for browsers without a bundler; the exports are the
//   global `BroadcasterClient` (new BroadcasterClient.Broadcaster(url, options))
// - dist/server.js (ESM, tsc) and dist/server.cjs, with .d.ts/.d.cts: the Node-only `./server` entry for backends.
//   It uses the client's BroadcasterError; both module systems load the client's own file for it rather than a
//   copy, so that `instanceof BroadcasterError` holds across the two entries.
// Every map carries its sources (sourcesContent), so the package needs no src/ to debug with.
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
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
// Under `require`, TypeScript must take the client's types from the .d.cts too, or it sees an ES module there.
const serverTypes = readFileSync(join(dist, "server.d.ts"), "utf8");
writeFileSync(join(dist, "server.d.cts"), serverTypes.replaceAll('from "./broadcaster.js"', 'from "./broadcaster.cjs"'));

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
const clientAsCjs = {
  name: "client-as-cjs",
  setup(build) {
    build.onResolve({ filter: /^\.\/broadcaster(\.js)?$/ }, () => ({ path: "./broadcaster.cjs", external: true }));
  },
};
await esbuild.build({
  ...common,
  entryPoints: [join(root, "src", "server.ts")],
  format: "cjs",
  platform: "node",
  target: "node18",
  plugins: [clientAsCjs],
  outfile: join(dist, "server.cjs"),
});
console.log("built dist/: broadcaster.js (ESM), broadcaster.cjs, broadcaster.iife.js, broadcaster.iife.min.js, server.js, server.cjs, .d.ts/.d.cts, maps");
