#!/usr/bin/python3
"""Per-step times of warm requests from a trace build (bench/trace.patch).

trace-agg.py FILE: FILE is the service's stderr. The trace build writes
LABEL=MICROSECONDS tokens (CLOCK_MONOTONIC), LABEL@T=... where a step's time
T came from another process's clock message; h0 starts a request. For each
step in ORDER, prints the median, mean and p90 of the time since the step
before it, over the requests that have both, and the median h0 -> resp. The
first three requests are skipped (warm-up).

Then the warm program's own CPU per step: CPULABEL:MICROSECONDS:MINFLT
tokens (trace_cpu: CLOCK_PROCESS_CPUTIME_ID since the program's fork, and
its minor faults), each step's median CPU since the one before it. These
show where a sandbox's CPU goes under load too (run the trace build at c8);
the steps share first touches of pages, so a step's share moves when
another changes: only an A/B of the totals decides (docs/benchmarks.md).
"""
import re
import statistics
import sys

ORDER = ["h0", "hsub", "wrun", "prun", "take0", "take1", "send", "sSTART", "Wrecv", "Wfiles", "Rin", "Rsys",
         "Rchk", "Rprep", "Reval", "Rfin", "rdO", "eofO", "eofE", "sEXIT", "rEXIT", "wend", "stats", "rel",
         "pdone", "wdone", "resp"]

requests, cur = [], None
for tok in open(sys.argv[1], errors="replace").read().split():
    m = re.match(r"(\w+)(?:@(\d+))?=(\d+)$", tok)
    if not m:
        continue
    label, at, value = m.group(1), m.group(2), int(m.group(3))
    if label == "h0":
        cur = {}
        requests.append(cur)
    if cur is not None:
        cur.setdefault(label, int(at) if at else value)
requests = [r for r in requests if "resp" in r and "Rin" in r][3:]
print(len(requests), "requests")
prev = None
for label in ORDER:
    ds = [r[label] - r[prev] if prev else 0 for r in requests if label in r and (prev is None or prev in r)]
    if ds:
        ds.sort()
        print(f"{label:8s} +{statistics.median(ds) / 1000:7.3f} ms  mean {statistics.mean(ds) / 1000:7.3f}"
              f" (p90 {ds[int(len(ds) * .9)] / 1000:7.3f})")
    prev = label
print("total h0->resp median", statistics.median(r["resp"] - r["h0"] for r in requests) / 1000, "ms")

CPU_ORDER = ["cred", "secc", "pref", "afork", "hold", "Rin", "Rsys", "Rchk", "Rprep", "Reval", "Rfin"]
programs, cur = [], None
for tok in open(sys.argv[1], errors="replace").read().split():
    m = re.match(r"CPU(\w+):(\d+):(\d+)", tok)
    if not m:
        continue
    if m.group(1) == CPU_ORDER[0]:
        cur = {}
        programs.append(cur)
    if cur is not None:
        cur[m.group(1)] = (int(m.group(2)), int(m.group(3)))
programs = [p for p in programs if "Rfin" in p][3:]
if programs:
    print(len(programs), "programs: CPU per step (ms, median since the step before; minor faults)")
    prev = None
    for label in CPU_ORDER:
        ds = [p[label][0] - (p[prev][0] if prev else 0) for p in programs if label in p and (prev is None or prev in p)]
        if ds:
            print(f"{label:8s} {statistics.median(ds) / 1000:7.3f} ms  faults {statistics.median(p[label][1] for p in programs if label in p):.0f}")
        prev = label
