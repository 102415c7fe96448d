#!/usr/bin/env bash
# Runs the Socket.IO peer (Node, npm socket.io pinned by package-lock.json) in the foreground on 127.0.0.1:PORT.
# usage: bench/peers/socketio/run.sh PORT
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ ! -d "$here/node_modules/socket.io" ]; then
  (cd "$here" && npm ci --no-audit --no-fund --silent >&2)
fi
exec node "$here/server.js" "${1:?port}"
