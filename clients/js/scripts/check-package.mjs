// Checks the package as npm would publish it (`npm test` runs it after the build): the files `npm pack` takes,
// every `exports` entry resolving by the package's own name from ESM and CommonJS, the browser bundles defining
// their global, and source maps that carry their sources. Exits non-zero with one line per problem.
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import vm from "node:vm";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
const problems = [];
const check = (ok, what) => ok || problems.push(what);

// 1. What `npm pack` would put in the tarball: dist/, the README and package.json, nothing else.
const npm = process.platform === "win32" ? "npm.cmd" : "npm";
const packed = JSON.parse(execFileSync(npm, ["pack", "--dry-run", "--json", "--ignore-scripts"], { cwd: root, encoding: "utf8" }));
const files = packed[0].files.map((f) => f.path).sort();
const expected = [
  "README.md",
  "dist/broadcaster.cjs",
  "dist/broadcaster.cjs.map",
  "dist/broadcaster.d.cts",
  "dist/broadcaster.d.ts",
  "dist/broadcaster.d.ts.map",
  "dist/broadcaster.iife.js",
  "dist/broadcaster.iife.js.map",
  "dist/broadcaster.iife.min.js",
  "dist/broadcaster.iife.min.js.map",
  "dist/broadcaster.js",
  "dist/broadcaster.js.map",
  "package.json",
];
check(JSON.stringify(files) === JSON.stringify(expected), `npm pack takes ${JSON.stringify(files)}, expected ${JSON.stringify(expected)}`);

// 2. Every path package.json names exists.
const targets = [pkg.main, pkg.module, pkg.types, pkg.unpkg, pkg.jsdelivr];
const walk = (v) => (typeof v === "string" ? targets.push(v) : Object.values(v).forEach(walk));
walk(pkg.exports);
for (const t of targets) check(t && existsSync(join(root, t)), `package.json names ${t}, which does not exist`);

// 3. The package by its own name (self-reference through `exports`), from both module systems.
const esm = await import(pkg.name);
const cjs = createRequire(join(root, "package.json"))(pkg.name);
for (const [kind, mod] of [["import", esm], ["require", cjs]]) {
  for (const name of ["Broadcaster", "BroadcasterError", "Subscription", "decodeJwtClaims", "backoffDelay"]) {
    check(typeof mod[name] === "function", `${kind}("${pkg.name}").${name} is ${typeof mod[name]}`);
  }
  check(mod.default === mod.Broadcaster, `${kind}("${pkg.name}").default is not Broadcaster`);
}
check(typeof createRequire(join(root, "package.json")).resolve(`${pkg.name}/iife`) === "string", "no ./iife export");

// 4. The browser bundles: one script each, defining the global BroadcasterClient, in a context with no module
// system at all.
for (const file of ["dist/broadcaster.iife.js", "dist/broadcaster.iife.min.js"]) {
  const sandbox = {};
  vm.runInNewContext(readFileSync(join(root, file), "utf8"), sandbox, { filename: file });
  const api = sandbox.BroadcasterClient;
  check(api && typeof api.Broadcaster === "function" && typeof api.decodeJwtClaims === "function", `${file} does not define BroadcasterClient.Broadcaster`);
}

// 5. Source maps: each output names its map, and each map carries the TypeScript source it came from.
for (const file of ["broadcaster.js", "broadcaster.cjs", "broadcaster.iife.js", "broadcaster.iife.min.js", "broadcaster.d.ts"]) {
  const text = readFileSync(join(root, "dist", file), "utf8");
  check(text.includes(`//# sourceMappingURL=${file}.map`), `dist/${file} does not point at its map`);
  const map = JSON.parse(readFileSync(join(root, "dist", `${file}.map`), "utf8"));
  const i = map.sources.findIndex((s) => s.endsWith("src/broadcaster.ts"));
  check(i >= 0, `dist/${file}.map does not name src/broadcaster.ts`);
  if (file !== "broadcaster.d.ts") check(map.sourcesContent?.[i]?.includes("export class Broadcaster"), `dist/${file}.map lacks the source's text`);
}

if (problems.length) {
  for (const p of problems) console.error(`check-package: ${p}`);
  process.exit(1);
}
console.log(`check-package: ${files.length} files, exports resolve from ESM and CommonJS, bundles and maps ok`);
