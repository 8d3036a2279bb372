#!/usr/bin/env bash
# A/B two builds of the service under the same minute of the machine: both
# serve at once (on two free loopback ports), `wrk -c8` POSTs hello world to each
# for DUEL_SECONDS (10) after a 2 s warm-up, and the ratio of their runs/s is
# printed. DUEL_ROUNDS (6) duels, the order of the two swapped every round,
# then the mean and range of B/A.
#
# Why: on a virtual machine one build's runs/s can move 10-20% from one
# minute to the next, so consecutive runs (A then B) need many pairs to show
# a 3% effect; two services loaded together share the minute, and a build
# dueling itself scatters about +-3% on a 2-core virtualized Xeon. Each program gets an
# autogroup of its own (setsid), so the two services' programs share the
# CPUs evenly and the build whose runs cost less CPU completes more of them.
# Not for changes to scheduling itself (priorities, policies): those tilt the
# share between the two.
#
#   bench/duel.sh A/pyexec B/pyexec
set -euo pipefail
lua=$(dirname "$(realpath "$0")")/hello-post.lua
for knob in DUEL_SECONDS DUEL_ROUNDS; do
  if [[ -n ${!knob:-} && ! ${!knob} =~ ^[1-9][0-9]{0,4}$ ]]; then
    echo "bench/duel.sh: $knob must be a positive integer, got '${!knob}'" >&2
    exit 2
  fi
done
if [[ $# -ne 2 || ! -x $1 || ! -x $2 ]]; then
  echo "usage: bench/duel.sh BUILD_A/pyexec BUILD_B/pyexec (two executables)" >&2
  exit 2
fi
command -v wrk >/dev/null || { echo "bench/duel.sh: needs wrk (apt-get install wrk)" >&2; exit 2; }
a=$(realpath "$1")
b=$(realpath "$2")
secs=${DUEL_SECONDS:-10}
rounds=${DUEL_ROUNDS:-6}
tmp=$(mktemp -d)
pids=()
cleanup() {
  if ((${#pids[@]})); then
    kill "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# Two free ports, asked of the kernel (fixed ones could reach another
# service already listening there, and measure it instead).
read -r port1 port2 < <(/usr/bin/python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s:
    x.bind(("127.0.0.1", 0))
print(*(x.getsockname()[1] for x in s))')

serve() { # BIN PORT
  RATE_LIMIT_MAX=0 MAX_CONCURRENT_EXECUTIONS=8 LOG_LEVEL=warn DEFAULT_POLICY=permissive \
    EXECUTION_TIMEOUT=60000 "$1" serve --port "$2" > "$tmp/serve-$2.log" 2>&1 &
  pids+=($!)
}
ready() { # PORT PID: ready, and answered by the service we started
  for _ in $(seq 100); do
    if ! kill -0 "$2" 2>/dev/null; then
      break
    fi
    curl -sf "http://127.0.0.1:$1/health/ready" >/dev/null && return 0
    sleep 0.1
  done
  echo "bench/duel.sh: the service on port $1 did not become ready:" >&2
  tail -5 "$tmp/serve-$1.log" >&2
  return 1
}
load() { # SECONDS OUT: wrk -c8 on both at once
  wrk -t1 -c8 -d"$1s" -s "$lua" "http://127.0.0.1:$port1/api/execute" > "$2.1" &
  local w=$!
  wrk -t1 -c8 -d"$1s" -s "$lua" "http://127.0.0.1:$port2/api/execute" > "$2.2"
  wait "$w"
}
# Runs/s from wrk's report; a build that answers with errors (fast) must
# not win the duel, so any non-2xx response or socket error ends the script.
rate() { # WRK_OUTPUT BIN
  if grep -Eq 'Non-2xx or 3xx responses|Socket errors' "$1"; then
    echo "bench/duel.sh: $2 did not answer every request with success:" >&2
    grep -E 'Non-2xx or 3xx responses|Socket errors' "$1" >&2
    return 1
  fi
  awk '/Requests\/sec/{ print $2; found = 1 } END { exit !found }' "$1" || {
    echo "bench/duel.sh: no rate in wrk's report for $2" >&2
    return 1
  }
}

ratios=()
for ((i = 1; i <= rounds; i++)); do
  if ((i % 2)); then first=$a second=$b; else first=$b second=$a; fi
  pids=()
  serve "$first" "$port1"
  serve "$second" "$port2"
  ready "$port1" "${pids[0]}"
  ready "$port2" "${pids[1]}"
  load 2 "$tmp/warm"
  load "$secs" "$tmp/run"
  r1=$(rate "$tmp/run.1" "$first")
  r2=$(rate "$tmp/run.2" "$second")
  kill "${pids[@]}"
  wait "${pids[@]}" 2>/dev/null || true
  pids=()
  if [[ $first == "$a" ]]; then ra=$r1 rb=$r2; else ra=$r2 rb=$r1; fi
  ratio=$(awk -v x="$rb" -v y="$ra" 'BEGIN { printf "%.3f", x / y }')
  ratios+=("$ratio")
  echo "round $i: A $ra runs/s, B $rb runs/s, B/A $ratio ($( ((i % 2)) && echo "A" || echo "B") started first)"
done
printf '%s\n' "${ratios[@]}" | awk '{ s += $1; if (NR == 1 || $1 < lo) lo = $1; if (NR == 1 || $1 > hi) hi = $1 }
  END { printf "B/A mean %.3f over %d duels (range %.3f-%.3f)\n", s / NR, NR, lo, hi }'
