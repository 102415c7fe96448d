#!/usr/bin/env bash
# Assembles the web console into OUT_DIR: web/console/* plus the compiled SDK (dist/*.js, imported by the page
# as ./broadcaster.js). Installs the SDK's npm dev dependencies first when node_modules is missing.
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
if [ ! -d node_modules ]; then
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
fi
npx --no-install tsc -p tsconfig.json
cp "$repo"/web/console/* "$out"/
cp dist/*.js "$out"/
test -f "$out/broadcaster.js" && test -f "$out/index.html"
echo "console assembled in $out"
