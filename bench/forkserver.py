"""The ceiling of fork-per-run on this machine, for bench/warm.sh.

An ideal fork server: no sandbox, no HTTP, no policy, no static check. The
parent imports the modules named in argv[2:] (the zygote's list) and
freezes them as the zygote does; each run is a fork whose child executes
print(1) to /dev/null and exits, and the parent waits. Prints runs per
second for argv[1] runs. bench/warm.sh runs two at a time, as many as the
machine's cores here, so the sum is what pure fork-per-run can give.
"""
import gc
import os
import sys
import time

for name in sys.argv[2:]:
    __import__(name)
gc.collect()
gc.freeze()
code = compile("print(1)", "main.py", "exec")
n = int(sys.argv[1])
devnull = os.open("/dev/null", os.O_WRONLY)
t0 = time.perf_counter()
for _ in range(n):
    pid = os.fork()
    if pid == 0:
        os.dup2(devnull, 1)
        exec(code, {"__name__": "__main__"})
        sys.stdout.flush()
        os._exit(0)
    os.waitpid(pid, 0)
print(f"{n / (time.perf_counter() - t0):.2f}")
