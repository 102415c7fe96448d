# syntax=docker/dockerfile:1
# Broadcaster image: built on Debian 12 from Debian's packages, run on debian:12-slim with only the shared
# libraries the binary links. Build: `docker build -t broadcaster .`; run: docs/deployment.md.

# ---- build
FROM debian:12 AS build
# The build half of scripts/install-deps.sh (no test, benchmark or browser tooling).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build pkg-config \
      libboost1.81-dev libssl-dev zlib1g-dev libhiredis-dev liburing-dev libspdlog-dev libfmt-dev libcli11-dev libtomlplusplus-dev \
      nodejs npm \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY cmake ./cmake
COPY src ./src
# The web console is built into the binary: its page, the JS SDK compiled with tsc (npm ci in clients/js) and the
# example chat.
COPY web/console ./web/console
COPY clients/js ./clients/js
COPY examples/chat ./examples/chat
# No .git is sent to the builder: the commit for broadcaster_build_info comes as
# `--build-arg BROADCASTER_COMMIT=$(git rev-parse --short=12 HEAD)`, else it is "unknown".
ARG BROADCASTER_COMMIT=""
RUN cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DBROADCASTER_TESTS=OFF -DBROADCASTER_BENCH=OFF \
      -DBROADCASTER_COMMIT="${BROADCASTER_COMMIT}" \
 && ninja -C build broadcaster \
 && strip build/broadcaster \
 && build/broadcaster --help >/dev/null

# ---- runtime
FROM debian:12-slim
# Exactly what `ldd broadcaster` lists beyond libc: OpenSSL 3, hiredis, liburing, spdlog and fmt (libstdc++ is in
# the base).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libssl3 libhiredis0.14 liburing2 libspdlog1.10 libfmt9 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin broadcaster \
 && mkdir -p /etc/broadcaster
COPY --from=build /src/build/broadcaster /usr/local/bin/broadcaster
COPY packaging/broadcaster.toml /etc/broadcaster/broadcaster.toml.example

# Settings come from the environment (JWT_SECRET and API_KEYS are required), or from a TOML file mounted at
# /etc/broadcaster/broadcaster.toml with CONFIG=/etc/broadcaster/broadcaster.toml. Logs go to stdout.
ENV HOST=0.0.0.0 \
    PORT=8000 \
    LOG_FORMAT=json
USER 10001:10001
EXPOSE 8000
# SIGTERM closes every WebSocket with 1001 and exits 0 within SHUTDOWN_TIMEOUT (5 s): keep `docker stop -t`
# (10 s by default) above it.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/broadcaster"]
