#!/usr/bin/env bash
# HTTP benchmark of `pyexec serve`, with its baselines measured in the same run:
#   - bare python3 -c 'print(1)' and bubblewrap (hyperfine, median)
#   - POST /api/execute hello world, sequential on one keep-alive connection
#     (wrk -c1): p50/p99, and the HTTP overhead = p50 - the service's own p50
#     of the whole run in the library (GET /api/stats runMs.p50)
#   - POST /api/execute throughput at concurrency 8 (wrk -c8)
#   - GET /health/live throughput (wrk -c32)
# Targets: HTTP adds <= 1 ms p50 over the execution itself;
# /health >= 10,000 requests/s.
set -euo pipefail
lua=$(dirname "$(realpath "$0")")/hello-post.lua
bin=$(realpath "${1:-build/pyexec}")
secs=${BENCH_SECONDS:-10}
py=/usr/bin/python3
work=$(mktemp -d)
port=$($py -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cleanup() { [[ -n "${pid:-}" ]] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

RATE_LIMIT_MAX=0 MAX_CONCURRENT_EXECUTIONS=${BENCH_SLOTS:-4} LOG_LEVEL=warn \
  "$bin" serve --port "$port" 2>"$work/server.log" &
pid=$!
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$port/health/ready" >/dev/null && break
  sleep 0.05
done
url="http://127.0.0.1:$port"

hyperfine -N --style none --warmup 5 --runs 50 --export-json "$work/base.json" \
  -n python3 "$py -c print(1)" \
  -n bwrap "bwrap --unshare-all --die-with-parent --new-session --ro-bind /usr /usr --symlink usr/lib /lib --symlink usr/lib64 /lib64 --symlink usr/bin /bin --proc /proc --dev /dev --tmpfs /tmp --chdir /tmp $py -c print(1)" \
  >/dev/null

wrk -t1 -c1 -d"${secs}s" --latency -s "$lua" "$url/api/execute" > "$work/seq.txt"
curl -s "$url/api/stats" > "$work/stats.json"
wrk -t2 -c8 -d"${secs}s" -s "$lua" "$url/api/execute" > "$work/c8.txt"
wrk -t2 -c32 -d5s "$url/health/live" > "$work/health.txt"

$py - "$work" <<'PY'
import json, re, sys, os
w = sys.argv[1]
base = {r["command"]: r["median"] * 1e3 for r in json.load(open(f"{w}/base.json"))["results"]}
def ms(v, unit):
    return float(v) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]
seq = open(f"{w}/seq.txt").read()
pct = {p: ms(v, u) for p, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)", seq, re.M)}
def rps(path):
    return float(re.search(r"Requests/sec:\s+([\d.]+)", open(path).read()).group(1))
def errors(path):
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", open(path).read())
    return int(m.group(1)) if m else 0
stats = json.load(open(f"{w}/stats.json"))
run_p50 = stats["recent"]["runMs"]["p50"]
print(f"baseline python3 -c print(1)        median {base['python3']:8.2f} ms")
print(f"baseline bwrap --unshare-all        median {base['bwrap']:8.2f} ms")
print(f"POST /api/execute, sequential       p50 {pct['50']:8.2f} ms   p99 {pct['99']:8.2f} ms   "
      f"({pct['50']/base['python3']:.2f}x python3)")
print(f"  the run itself (library, p50)         {run_p50:8.2f} ms   HTTP overhead p50 {pct['50']-run_p50:+.2f} ms (target <= 1 ms)")
c8 = rps(f"{w}/c8.txt")
print(f"POST /api/execute, concurrency 8    {c8:8.1f} runs/s   (non-2xx: {errors(f'{w}/c8.txt')})")
print(f"  bwrap+python3 two at a time would do {2e3/base['bwrap']:8.1f} runs/s -> {c8/(2e3/base['bwrap']):.2f}x")
h = rps(f"{w}/health.txt")
print(f"GET /health/live, concurrency 32    {h:8.0f} requests/s (target >= 10000)")
PY
