#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan) in build-fuzz/, replays every saved regression input, then
# fuzzes each target for a while. Fails if any regression still crashes or any target crashes.
#
#   fuzz/run.sh [seconds per target, default 60] [target ...]
#
# The seed corpus of each target (fuzz/corpus/<target>/) is copied to a temporary directory first, so the
# repository's corpus is never written to. A crash leaves its input in the temporary directory (the path is
# printed and the directory kept); minimize it, add it to fuzz/regressions/<target>/, and fix the code.
set -uo pipefail

seconds="${1:-60}"
shift || true
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
build="${BUILD_FUZZ:-$root/build-fuzz}"
all_targets=(ws_frame_parser permessage_deflate request_parser jwt_verifier channel_validator rest_body raw_json)
if [[ $# -gt 0 ]]; then targets=("$@"); else targets=("${all_targets[@]}"); fi

if ! [[ "$seconds" =~ ^[0-9]+$ ]]; then
  echo "usage: $0 [seconds per target] [target ...]" >&2
  exit 2
fi

echo "== configuring and building $build"
CC="${CC:-clang}" CXX="${CXX:-clang++}" cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DBROADCASTER_FUZZ=ON -DBROADCASTER_TESTS=OFF -DBROADCASTER_BENCH=OFF >/dev/null || exit 1
ninja -C "$build" $(printf '%s_fuzz ' "${targets[@]}") || exit 1

# Undefined behaviour is a crash too; leaks are not this script's business (the targets keep static state).
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:${UBSAN_OPTIONS:-}"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:${ASAN_OPTIONS:-}"

work="$(mktemp -d -t broadcaster-fuzz.XXXXXX)"
keep_work=0

# A JSON dictionary for the targets that read JSON, written to the temporary directory.
cat >"$work/json.dict" <<'EOF'
"{"
"}"
"["
"]"
":"
","
"\""
"\\u0000"
"\\ud83d\\ude00"
"null"
"true"
"false"
"0"
"-0"
"1e400"
"-1e999"
"1e-400"
"1E+2"
"0.10"
"0e5"
"18446744073709551617"
"\\u006c"
"\"pay\\u006coad\":"
"1.5"
"18446744073709551615"
"-9223372036854775808"
"\"id\":"
"\"method\":"
"\"params\":"
"\"channel\":"
"\"event\":"
"\"payload\":"
"\"token\":"
"\"auth\""
"\"subscribe\""
"\"unsubscribe\""
"\"publish\""
"\"heartbeat\""
"\"news\""
"\"chat:room-1\""
"\"a::b\""
"\"sub\":"
"\"aud\":"
"\"exp\":"
"\"iat\":"
"\"nbf\":"
"\"alg\":"
"\"HS256\""
"\"none\""
"\"crit\":"
"\"broadcaster\""
"\"authorizedChannels\":"
"\"scope\":"
"\x0a"
EOF

dict_for() {
  case "$1" in
    request_parser | jwt_verifier | rest_body | raw_json) echo "-dict=$work/json.dict" ;;
    *) echo "" ;;
  esac
}

failures=()
summary=()

for t in "${targets[@]}"; do
  bin="$build/fuzz/${t}_fuzz"
  if [[ ! -x "$bin" ]]; then
    failures+=("$t: no binary $bin")
    continue
  fi

  # 1. Every input that once crashed must now pass.
  reg="$here/regressions/$t"
  if [[ -d "$reg" ]] && compgen -G "$reg/*" >/dev/null; then
    echo "== $t: replaying $(ls "$reg" | wc -l) regression input(s)"
    for f in "$reg"/*; do
      if ! "$bin" "$f" >"$work/$t.replay.log" 2>&1; then
        echo "!! $t: regression $f still crashes:"
        grep -E "ERROR|runtime error|SUMMARY|deadly signal|==[0-9]+==" "$work/$t.replay.log" | head -5
        failures+=("$t: regression $(basename "$f") still crashes")
      fi
    done
  fi

  # 2. Fuzz, starting from a copy of the seed corpus.
  corpus="$work/$t.corpus"
  artifacts="$work/$t.artifacts/"
  mkdir -p "$corpus" "$artifacts"
  if [[ -d "$here/corpus/$t" ]]; then cp -r "$here/corpus/$t/." "$corpus/"; fi
  echo "== $t: fuzzing for ${seconds}s"
  "$bin" "$corpus" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=8192 -print_final_stats=1 \
    -artifact_prefix="$artifacts" $(dict_for "$t") >"$work/$t.log" 2>&1
  rc=$?
  execs="$(grep -E '^stat::number_of_executed_units:' "$work/$t.log" | awk '{print $2}')"
  if [[ -z "$execs" ]]; then execs="$(grep -oE '^#[0-9]+' "$work/$t.log" | tail -1 | tr -d '#')"; fi
  cov="$(grep -E '#[0-9]+.*(DONE|pulse|NEW|REDUCE)' "$work/$t.log" | tail -1 | grep -oE 'cov: [0-9]+' || true)"
  if [[ $rc -ne 0 ]] || compgen -G "$artifacts*" >/dev/null; then
    keep_work=1
    echo "!! $t: crashed (exit $rc); inputs in $artifacts, log $work/$t.log"
    grep -E "ERROR|error|runtime error|SUMMARY|deadly signal|Test unit written" "$work/$t.log" | head -8
    failures+=("$t: crash found by fuzzing (see $artifacts)")
    summary+=("$t: CRASH after ${execs:-?} executions")
  else
    summary+=("$t: ok, ${execs:-?} executions, ${cov:-cov ?}")
  fi
done

echo
echo "== summary (${seconds}s per target)"
printf '   %s\n' "${summary[@]}"
if [[ ${#failures[@]} -gt 0 ]]; then
  echo "== FAILED"
  printf '   %s\n' "${failures[@]}"
  echo "   (work directory kept: $work)"
  exit 1
fi
if [[ $keep_work -eq 0 ]]; then rm -rf "$work"; fi
echo "== all targets passed"
