#!/usr/bin/env bash
# Installs everything Broadcaster needs to build, run and test, from Debian's packages only.
# Idempotent: packages already present are not fetched again, and apt's lists are refreshed only when needed.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config clang libclang-rt-14-dev clang-format
  libboost1.81-dev libssl-dev zlib1g-dev libhiredis-dev liburing-dev libspdlog-dev libfmt-dev libcli11-dev libtomlplusplus-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  redis-server redis-sentinel openssl
  prometheus
  python3 python3-pytest python3-websockets python3-requests python3-yaml python3-jsonschema
  chromium
)
# The peers the benchmark compares against, and its plotting: only for `make bench`.
if [ "${1:-}" = "--bench" ]; then
  packages+=(nginx libnginx-mod-nchan gnuplot-nox valgrind)
fi
# Node.js (SDK, console, browser tests): the machine image may bring its own build; only install Debian's
# when there is none, so the two never fight over /usr/bin/node.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  packages+=(nodejs npm)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-deps: installing ${missing[*]}"
# A machine that has just booted often has apt busy (unattended-upgrades, another install): wait for its lock
# rather than fail.
APT_OPTS=(-o DPkg::Lock::Timeout=600)
$SUDO apt-get "${APT_OPTS[@]}" update -qq

# prometheus (for promtool, tests/integration/test_packaging.py) and redis-sentinel (the Sentinel tests start
# their own on free ports) would also start a system service (Prometheus on :9090, a sentinel on :26379) and
# enable it at boot. They are installed on their own, under a policy-rc.d that refuses to start services
# (invoke-rc.d and systemd's deb-systemd-invoke both ask it), and their services are disabled after. An
# existing policy-rc.d (Docker images have one) is left as it is. redis-server's own service is Debian's
# default and stays as it was.
quiet_services=(prometheus redis-sentinel)
others=()
services=()
for p in "${missing[@]}"; do
  if [[ " ${quiet_services[*]} " == *" $p "* ]]; then services+=("$p"); else others+=("$p"); fi
done
if [ "${#others[@]}" -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get "${APT_OPTS[@]}" install -y -qq --no-install-recommends "${others[@]}" >/dev/null
fi
if [ "${#services[@]}" -gt 0 ]; then
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# scripts/install-deps.sh: no service starts while it installs %s.\nexit 101\n' "${services[*]}" |
      $SUDO tee "$policy" >/dev/null
    $SUDO chmod 0755 "$policy"
    trap '$SUDO rm -f "$policy"' EXIT
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get "${APT_OPTS[@]}" install -y -qq --no-install-recommends "${services[@]}" >/dev/null
  for p in "${services[@]}"; do
    $SUDO deb-systemd-helper disable "$p.service" >/dev/null 2>&1 || true
    $SUDO update-rc.d "$p" disable >/dev/null 2>&1 || true
  done
fi
