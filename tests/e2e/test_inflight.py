"""Descriptors a program leaves in flight when it ends (supervise.c, zygote.c).

A program can send a Unix socket into its own queue, with other descriptors
beside it (its stdout and stderr, memfds full of data), and exit. Nothing
refers to that cycle any more but itself: only the kernel's collector of
in-flight descriptors closes it, and that collector runs when some process
releases a Unix socket. The service must neither wait for the end of its
output pipes meanwhile (the run would outlive its time limit and hold its
slot), nor leave the memory in the cycle pinned after the run.

Checked from the host on the cold path (`pyexec run`) and the warm path (the
service's default), as root and (scripts/test-unprivileged.sh) unprivileged:

- the cycle program answers within a bound far below the time the cycle can
  stay open, with its real verdict and the output it wrote before;
- the same while a host process holds a reference to the cycle (so no
  collector can close it): the answer cannot depend on the collector; at
  the program's end, and at its time limit;
- memfds left in the cycle are released when the run ends: the service
  makes the collector run then (other processes' socket releases make it
  run too, at intervals from milliseconds to minutes: on a busy host this
  check may pass without the service's part);
- a normal program's whole output still arrives, and a background process
  still writing after the program's exit is killed as before.
"""
import ctypes
import json
import os
import signal
import subprocess
import threading
import time
import uuid

import pytest

from conftest import PYEXEC
from test_warm import brief, execute, start, stop_ok

SYS_PIDFD_GETFD = 438  # the same number on every architecture
libc = ctypes.CDLL(None, use_errno=True)

# The program of the report: output, then stdout and stderr in flight in a
# cycle, then exit.
CYCLE = r"""
import array, os, socket
print("before the cycle", flush=True)
a, b = socket.socketpair()
a.sendmsg([b"x"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [a.fileno(), b.fileno(), 1, 2]))])
os._exit(0)
"""

# The same, but it waits for SIGUSR1 once its cycle is made, named MARKER
# in /proc (comm) and dumpable, so that the host can take a reference to
# its sockets first (pidfd_getfd).
HELD_CYCLE = r"""
import array, ctypes, os, signal, socket
libc = ctypes.CDLL(None, use_errno=True)
signal.signal(signal.SIGUSR1, lambda *_: os._exit(0))
libc.prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE: the host takes a reference
print("before the cycle", flush=True)
a, b = socket.socketpair()
a.sendmsg([b"x"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [a.fileno(), b.fileno(), 1, 2]))])
libc.prctl(15, b"MARKER", 0, 0, 0)  # PR_SET_NAME: the cycle is made
while True:
    signal.pause()
"""

# Six memfds of 15 MiB, written, in flight in a cycle with their sockets.
MEMFDS = r"""
import array, os, socket
a, b = socket.socketpair()
fds = [a.fileno(), b.fileno()]
chunk = b"\x5a" * (1 << 20)
for i in range(6):
    m = os.memfd_create(f"pinned{i}")
    for _ in range(15):
        os.write(m, chunk)
    fds.append(m)
a.sendmsg([b"x"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
print("pinned", flush=True)
os._exit(0)
"""
PINNED_MIB = 90
# Other services on the host allocate and free shared memory meanwhile.
SHMEM_SLACK_MIB = 30

# The cycle stays open until some process of the host releases a Unix
# socket: seconds to minutes. A run of a second and a half answers well
# within this, on a loaded machine too.
ANSWER_BOUND_S = 10


def shmem_mib():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("Shmem:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no Shmem in /proc/meminfo")


def released_after(run_once, runs=3, wait_s=2):
    """run_once() runs MEMFDS and returns its result and host Shmem before
    it. After each answer the run's memory must come back within wait_s
    (the service makes the collector run at the run's end, in
    milliseconds; left to other processes, the cycle can pin it for
    minutes). Several runs: on a quiet host, each would pin its own."""
    for i in range(runs):
        res, before = run_once()
        assert res["status"] == "ok" and res["stdout"] == "pinned\n", brief(res)
        deadline = time.monotonic() + wait_s
        while (extra := shmem_mib() - before) >= SHMEM_SLACK_MIB:
            assert time.monotonic() < deadline, (
                f"run {i + 1}: {extra:.0f} MiB of host shared memory still held {wait_s} s after the answer "
                f"(the run pinned {PINNED_MIB} MiB)")
            time.sleep(0.02)


def pids_named(name):
    found = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/comm") as f:
                    if f.read().strip() == name:
                        found.append(int(d))
            except OSError:
                pass
    return found


def take_sockets(pid):
    """Copies (pidfd_getfd) of every socket the process holds."""
    pidfd = os.pidfd_open(pid)
    taken = []
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if not os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                    continue
            except OSError:
                continue
            got = libc.syscall(SYS_PIDFD_GETFD, pidfd, int(fd), 0)
            assert got >= 0, f"pidfd_getfd: {os.strerror(ctypes.get_errno())}"
            taken.append(got)
    finally:
        os.close(pidfd)
    return taken


def run_holding_the_cycle(submit, timeout_ms, end_it):
    """submit(code, timeout_ms) runs HELD_CYCLE and returns its result.
    Once the program has made its cycle, the test takes references to its
    sockets (no collector can close the cycle while it holds them), ends
    the program (end_it) or leaves it to its time limit, and waits for the
    answer. Returns the result."""
    marker = "pxc-" + uuid.uuid4().hex[:8]
    answered = threading.Event()
    out = {}

    def go():
        try:
            out["res"] = submit(HELD_CYCLE.replace("MARKER", marker), timeout_ms)
        finally:
            answered.set()

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    held = []
    try:
        deadline = time.monotonic() + 30
        while not (pids := pids_named(marker)):
            assert time.monotonic() < deadline, "the program never made its cycle"
            assert not answered.is_set(), f"answered before the program made its cycle: {out}"
            time.sleep(0.01)
        (pid,) = pids
        held = take_sockets(pid)
        assert len(held) == 2, held
        if end_it:
            os.kill(pid, signal.SIGUSR1)
        bound = ANSWER_BOUND_S + (0 if end_it else timeout_ms / 1000)
        got = answered.wait(bound)
    finally:
        for fd in held:
            os.close(fd)
        thread.join(200)
    assert got, f"no answer within {bound:.0f} s while the host held the run's cycle; once it let go: {out}"
    return out["res"]


# ---------------------------------------------------------------------------
# The cold path: pyexec run
# ---------------------------------------------------------------------------


def test_cycle_program_answers_in_time_cold(run):
    t = time.monotonic()
    res = run(CYCLE, "--timeout", "1500", "--policy", "permissive", timeout=200)
    took = time.monotonic() - t
    assert res["status"] == "ok" and res["exitCode"] == 0, brief(res)
    assert res["stdout"] == "before the cycle\n", brief(res)
    assert took < ANSWER_BOUND_S, f"answered after {took:.1f} s"


@pytest.fixture
def submit_cold(tmp_path):
    def submit(code, timeout_ms):
        prog = tmp_path / f"held-{uuid.uuid4().hex[:6]}.py"
        prog.write_text(code)
        p = subprocess.run([PYEXEC, "run", "--json", "--timeout", str(timeout_ms), "--policy", "permissive", str(prog)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
        assert p.stdout, p.stderr
        return json.loads(p.stdout)
    return submit


def test_cycle_held_by_the_host_does_not_hold_the_run_cold(submit_cold):
    """A host process holds the cycle (no collector can close it): the run
    still answers at the program's end, with its verdict and output."""
    res = run_holding_the_cycle(submit_cold, 30000, end_it=True)
    assert res["status"] == "ok" and res["exitCode"] == 0, brief(res)
    assert res["stdout"] == "before the cycle\n", brief(res)


def test_cycle_held_by_the_host_at_the_time_limit_cold(submit_cold):
    res = run_holding_the_cycle(submit_cold, 2000, end_it=False)
    assert res["status"] == "timeout", brief(res)
    assert res["stdout"] == "before the cycle\n", brief(res)


def test_memfds_in_flight_released_after_the_run_cold(run):
    def run_once():
        before = shmem_mib()
        return run(MEMFDS, "--memory", "256", "--policy", "permissive", timeout=200), before

    released_after(run_once)


def test_full_output_of_a_normal_program_cold(run):
    code = "import sys\nfor i in range(20000):\n    sys.stdout.write(f'{i:07d} ' + 'x' * 92 + '\\n')\n"
    res = run(code, "--max-output", "4000000", timeout=200)
    assert res["status"] == "ok", brief(res)
    want = "".join(f"{i:07d} " + "x" * 92 + "\n" for i in range(20000))
    assert res["stdout"] == want, f"{len(res['stdout'])} of {len(want)} bytes"


BACKGROUND_WRITER = r"""
import os, sys, time
if os.fork() == 0:
    while True:
        os.write(1, b"child\n")
        time.sleep(0.001)
time.sleep(0.3)
print("main done", flush=True)
"""


def test_background_writer_killed_at_the_programs_exit_cold(run):
    t = time.monotonic()
    res = run(BACKGROUND_WRITER, "--timeout", "20000", "--max-output", "1000000", "--policy", "permissive",
              timeout=200)
    assert res["status"] == "ok", brief(res)
    assert "main done\n" in res["stdout"] and res["stdout"].startswith("child\n"), brief(res)
    assert time.monotonic() - t < 15, "the background writer kept the run going"


# ---------------------------------------------------------------------------
# The warm path: the service's zygote
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def warm(tmp_path_factory):
    srv = start(tmp_path_factory.mktemp("inflight"),
                env={"WARM_POOL_SIZE": 2, "MEMORY_LIMIT": 512, "MAX_OUTPUT_LENGTH": 4000000,
                     "EXECUTION_TIMEOUT": 60000})
    yield srv
    stop_ok(srv)


def test_cycle_program_answers_in_time_warm(warm):
    t = time.monotonic()
    res = execute(warm, CYCLE, client_timeout=200, timeout=1500, policy="permissive")
    took = time.monotonic() - t
    assert res["status"] == "ok" and res["exitCode"] == 0, brief(res)
    assert res["stdout"] == "before the cycle\n", brief(res)
    assert took < ANSWER_BOUND_S, f"answered after {took:.1f} s"
    assert execute(warm, "print('next')")["stdout"] == "next\n"


def submit_warm(srv):
    return lambda code, timeout_ms: execute(srv, code, client_timeout=300, timeout=timeout_ms, policy="permissive")


def test_cycle_held_by_the_host_does_not_hold_the_run_warm(warm):
    res = run_holding_the_cycle(submit_warm(warm), 30000, end_it=True)
    assert res["status"] == "ok" and res["exitCode"] == 0, brief(res)
    assert res["stdout"] == "before the cycle\n", brief(res)


def test_cycle_held_by_the_host_at_the_time_limit_warm(warm):
    res = run_holding_the_cycle(submit_warm(warm), 2000, end_it=False)
    assert res["status"] == "timeout", brief(res)
    assert res["stdout"] == "before the cycle\n", brief(res)


def test_memfds_in_flight_released_after_the_run_warm(warm):
    def run_once():
        before = shmem_mib()
        return execute(warm, MEMFDS, client_timeout=200, memoryLimit=256, policy="permissive"), before

    released_after(run_once)


def test_full_output_of_a_normal_program_warm(warm):
    code = "import sys\nfor i in range(20000):\n    sys.stdout.write(f'{i:07d} ' + 'x' * 92 + '\\n')\n"
    res = execute(warm, code, client_timeout=200, maxOutput=4000000)
    assert res["status"] == "ok", brief(res)
    want = "".join(f"{i:07d} " + "x" * 92 + "\n" for i in range(20000))
    assert res["stdout"] == want, f"{len(res['stdout'])} of {len(want)} bytes"


def test_background_writer_killed_at_the_programs_exit_warm(warm):
    t = time.monotonic()
    res = execute(warm, BACKGROUND_WRITER, client_timeout=200, timeout=20000, maxOutput=1000000,
                  policy="permissive")
    assert res["status"] == "ok", brief(res)
    assert "main done\n" in res["stdout"] and res["stdout"].startswith("child\n"), brief(res)
    assert time.monotonic() - t < 15, "the background writer kept the run going"
