#!/usr/bin/env bash
# Runs nginx + Nchan (Debian's nginx and libnginx-mod-nchan) in the foreground on 127.0.0.1:PORT:
#   GET  /sub/<channel>  WebSocket subscriber (nchan_subscriber websocket)
#   POST /pub/<channel>  publisher (201/202), keep-alive
# Two worker processes (one per core, like Broadcaster's two threads), 20000 fds each, Nchan's defaults
# otherwise (message buffer on: 10 messages, 1 h). The master's pid is this script's pid (exec).
# With NCHAN_TLS_CERT and NCHAN_TLS_KEY set (PEM files), it listens with TLS instead (wss://, https://),
# nginx's TLS defaults otherwise (no session cache, tickets on).
# usage: bench/peers/nchan/run.sh PORT [WORKDIR]
set -euo pipefail
port=${1:?port}
tls=""
if [ -n "${NCHAN_TLS_CERT:-}" ]; then
  tls=" ssl;
    ssl_certificate $(realpath "$NCHAN_TLS_CERT");
    ssl_certificate_key $(realpath "${NCHAN_TLS_KEY:?NCHAN_TLS_KEY}")"
fi
dir=${2:-$(mktemp -d /tmp/bench-nchan.XXXXXX)}
dir=$(realpath -m "$dir")
mkdir -p "$dir/logs" "$dir/tmp"
module=/usr/lib/nginx/modules/ngx_nchan_module.so
[ -f "$module" ] || { echo "nchan module missing: apt-get install -y nginx libnginx-mod-nchan" >&2; exit 2; }
cat >"$dir/nginx.conf" <<CONF
load_module $module;
worker_processes 2;
worker_rlimit_nofile 20000;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 19900; multi_accept on; }
http {
  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  server {
    listen 127.0.0.1:$port backlog=4096$tls;
    location ~ ^/sub/([\w:-]+)\$ { nchan_subscriber websocket; nchan_channel_id \$1; }
    location ~ ^/pub/([\w:-]+)\$ { nchan_publisher; nchan_channel_id \$1; }
  }
}
CONF
echo "listening on 127.0.0.1:$port${tls:+ with TLS} (nginx+nchan, config $dir/nginx.conf)"
exec /usr/sbin/nginx -p "$dir" -c "$dir/nginx.conf" -g 'daemon off; master_process on;'
