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
  "dist/server.cjs",
  "dist/server.cjs.map",
  "dist/server.d.cts",
  "dist/server.d.ts",
  "dist/server.d.ts.map",
  "dist/server.js",
  "dist/server.js.map",
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

// 3b. The backend entry, `${pkg.name}/server`, from both module systems. Its errors must be the client's own
// BroadcasterError (not a bundled copy), so that one `instanceof` check covers both entries.
const esmServer = await import(`${pkg.name}/server`);
const cjsServer = createRequire(join(root, "package.json"))(`${pkg.name}/server`);
for (const [kind, mod, client] of [["import", esmServer, esm], ["require", cjsServer, cjs]]) {
  for (const name of ["BroadcasterApi", "BroadcasterApiError", "mintToken", "parseTtl"]) {
    check(typeof mod[name] === "function", `${kind}("${pkg.name}/server").${name} is ${typeof mod[name]}`);
  }
  check(mod.BroadcasterError === client.BroadcasterError, `${kind}("${pkg.name}/server").BroadcasterError is a copy, not the client's`);
  check(mod.BroadcasterApiError && new mod.BroadcasterApiError("Unavailable", "x", 503) instanceof client.BroadcasterError, `${kind}: BroadcasterApiError is not a BroadcasterError`);
}

// 4. The browser bundles: one script each, defining the global BroadcasterClient, in a context with no module
// system at all.
for (const file of ["dist/broadcaster.iife.js", "dist/broadcaster.iife.min.js"]) {
  const sandbox = {};
  vm.runInNewContext(readFileSync(join(root, file), "utf8"), sandbox, { filename: file });
  const api = sandbox.BroadcasterClient;
  check(api && typeof api.Broadcaster === "function" && typeof api.decodeJwtClaims === "function", `${file} does not define BroadcasterClient.Broadcaster`);
  check(api && api.BroadcasterApi === undefined && !readFileSync(join(root, file), "utf8").includes("node:crypto"), `${file} carries the Node-only server entry`);
}

// 5. Source maps: each output names its map, and each map carries the TypeScript source it came from.
const mapped = [
  ["broadcaster", "export class Broadcaster "],
  ["server", "export class BroadcasterApi "],
];
for (const [name, marker] of mapped) {
  const outputs = name === "broadcaster" ? ["js", "cjs", "iife.js", "iife.min.js", "d.ts"] : ["js", "cjs", "d.ts"];
  for (const file of outputs.map((ext) => `${name}.${ext}`)) {
    const text = readFileSync(join(root, "dist", file), "utf8");
    check(text.includes(`//# sourceMappingURL=${file}.map`), `dist/${file} does not point at its map`);
    const map = JSON.parse(readFileSync(join(root, "dist", `${file}.map`), "utf8"));
    const i = map.sources.findIndex((s) => s.endsWith(`src/${name}.ts`));
    check(i >= 0, `dist/${file}.map does not name src/${name}.ts`);
    if (!file.endsWith(".d.ts")) check(map.sourcesContent?.[i]?.includes(marker), `dist/${file}.map lacks the source's text`);
  }
}

if (problems.length) {
  for (const p of problems) console.error(`check-package: ${p}`);
  process.exit(1);
}
console.log(`check-package: ${files.length} files, exports resolve from ESM and CommonJS, bundles and maps ok`);
