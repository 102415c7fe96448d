#!/usr/bin/env bash
# Assembles the web console into OUT_DIR: web/console/* plus the compiled SDK (broadcaster.js, imported by the
# page as ./broadcaster.js), and the example chat in OUT_DIR/chat/. The build runs it to embed the console in
# the binary (CMakeLists.txt); a folder it made can also be served as an override with --console-dir. Installs
# the SDK's npm dev dependencies first when TypeScript is missing from node_modules. The SDK is compiled into
# a temporary folder, not dist/, so that several build trees can assemble at once. Works with Debian 12's Node
# 18 and npm 9.
# Usage: clients/js/scripts/assemble-console.sh OUT_DIR
set -euo pipefail
if [ $# -ne 1 ]; then
  echo "usage: $0 OUT_DIR" >&2
  exit 2
fi
mkdir -p "$1"
out=$(cd "$1" && pwd)                         # absolute: the script changes directory below
here=$(cd "$(dirname "$0")/.." && pwd)        # clients/js
repo=$(cd "$here/../.." && pwd)
cd "$here"
if [ ! -x node_modules/.bin/tsc ] || [ ! -d node_modules/@types/node ]; then
  # No scripts: `prepare` would build the package into dist/, which is not needed here.
  npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
npx --no-install tsc -p tsconfig.json --outDir "$tmp" --declaration false --declarationMap false --sourceMap false --inlineSources false
cp "$repo"/web/console/*.html "$repo"/web/console/*.css "$repo"/web/console/*.js "$out"/
cp "$tmp"/broadcaster.js "$out"/   # not server.js: the backend helper has no place in a browser
# The example chat, served at {BASE}/console/chat/ like the built-in one (its page imports ./broadcaster.js).
mkdir -p "$out/chat"
cp "$repo"/examples/chat/index.html "$repo"/examples/chat/chat.js "$tmp"/broadcaster.js "$out/chat/"
test -f "$out/broadcaster.js" && test -f "$out/index.html"
echo "console assembled in $out"
