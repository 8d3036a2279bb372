#!/usr/bin/env bash
# Cold-start benchmark: median wall time of
#   1. bare python3 -c 'print(1)'                  (the baseline)
#   2. the same under bubblewrap, every namespace unshared
#   3. pyexec run hello.py                         (full sandbox, limits, JSON-free)
# measured in one run with hyperfine, and reported as ratios to the baseline.
# Targets: pyexec <= 1.2x bare python3, and faster than bubblewrap.
set -euo pipefail
bin=$(realpath "${1:-build/pyexec}")
runs=${BENCH_RUNS:-100}
py=/usr/bin/python3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo 'print(1)' > "$work/hello.py"

bwrap_cmd="bwrap --unshare-all --die-with-parent --new-session \
 --ro-bind /usr /usr --symlink usr/lib /lib --symlink usr/lib64 /lib64 --symlink usr/bin /bin \
 --proc /proc --dev /dev --tmpfs /tmp --chdir /tmp $py -c print(1)"

hyperfine -N --style basic --warmup 10 --runs "$runs" --export-json "$work/out.json" \
  -n python3 "$py -c print(1)" \
  -n bwrap "$bwrap_cmd" \
  -n pyexec "$bin run $work/hello.py" >/dev/null

$py - "$work/out.json" <<'PY'
import json, sys
res = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
base = res["python3"]["median"]
print(f"{'command':<10} {'median ms':>10} {'mean ms':>9} {'stddev':>7} {'x python3':>10}")
for name in ("python3", "bwrap", "pyexec"):
    r = res[name]
    print(f"{name:<10} {r['median']*1e3:>10.2f} {r['mean']*1e3:>9.2f} {r['stddev']*1e3:>7.2f} {r['median']/base:>10.2f}")
p, b = res["pyexec"]["median"], res["bwrap"]["median"]
print(f"pyexec/python3 = {p/base:.2f} (target <= 1.20); pyexec/bwrap = {p/b:.2f} (target < 1.00)")
PY
