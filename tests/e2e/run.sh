#!/usr/bin/env bash
# Runs the browser end-to-end tests: installs Debian's Chromium when missing (as root), the npm dependencies
# (playwright-core, no browser download), assembles the console into a temp dir and runs `node --test`.
# Needs the server binary: build/broadcaster (or $BROADCASTER_BIN).
set -euo pipefail
e2e=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$e2e/../.." && pwd)

if [ ! -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ] && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "e2e: installing chromium from Debian"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

cd "$e2e"
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bash "$repo/clients/js/scripts/assemble-console.sh" "$tmp/console" >/dev/null

export BROADCASTER_CONSOLE_DIR="$tmp/console"
# --test-timeout and --test-concurrency exist from Node 20.11 (20.10 for the latter); on Debian 12's Node 18 the
# files run one by one instead, each bounded by `timeout`, and every suite keeps its own limit.
if node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 11) ? 0 : 1)'; then
  timeout 600 node --test --test-timeout=300000 --test-concurrency=1 "$e2e"/*.test.mjs
else
  for f in "$e2e"/*.test.mjs; do
    timeout 300 node --test "$f"
  done
fi
