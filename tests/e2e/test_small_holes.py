"""What a program can learn or reach through small side doors, each checked
from the host: the host's mount table in a warm program's memory, the
education policy's write rule through dir_fd and symlinks, /proc/locks, and
(test_jobs.py) staging trees and hard-linked inputs.

Runs as root (scripts/test-e2e.sh) and as an unprivileged user
(scripts/test-unprivileged.sh); reading another process's memory needs root.
"""
import json
import os
import re

import pytest

from conftest import PRIVILEGED, PYEXEC
from test_warm import children, execute, program_and_holder, start, wait_pool_full
from test_serve import serving


@pytest.fixture
def serve(tmp_path):
    yield from serving(tmp_path, start)


# ---------------------------------------------------------------------------
# The host's mountinfo is not in a warm program's memory
# ---------------------------------------------------------------------------


def host_cgroup_mount_lines():
    """The host's cgroup mount lines, as /proc/self/mountinfo has them: the
    part from the mount point on, which names the host's layout and appears
    nowhere in pyexec's own code."""
    with open("/proc/self/mountinfo") as f:
        lines = [l.rstrip("\n") for l in f if re.search(r" - cgroup2? ", l)]
    return [l.split(" ", 4)[4] for l in lines]


def read_memory(pid):
    """Every readable mapping of pid, from the host (root)."""
    chunks = []
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        for line in maps:
            parts = line.split()
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            if not parts[1].startswith("r") or (len(parts) > 5 and parts[5] in ("[vvar]", "[vsyscall]")):
                continue
            try:
                mem.seek(lo)
                chunks.append(mem.read(hi - lo))
            except OSError:
                continue
    return b"\x00".join(chunks)


@pytest.mark.skipif(not PRIVILEGED, reason="reads other processes' memory (root)")
def test_warm_program_memory_holds_no_host_mountinfo(serve):
    """A waiting warm program is a copy of the zygote: scanned from the host,
    its memory (and the zygote's) holds none of the host's cgroup mount
    lines, nor the mount points alone."""
    needles = host_cgroup_mount_lines()
    if not needles:
        pytest.skip("the host has no cgroup mounts")
    srv = serve(env={"WARM_POOL_SIZE": 1})
    z = wait_pool_full(srv, 1)["zygotePid"]
    (init,) = children(z)
    prog, _ = program_and_holder(init)
    # The control: the same scan finds the text in a process that read it.
    with open("/proc/self/mountinfo", "rb") as f:
        kept = f.read()
    assert needles[0].encode() in read_memory(os.getpid())
    del kept
    # A mount point followed by what follows it in mountinfo, in a path or
    # at the end of a string: the parts the detection copies out.
    points = [n.split(" ", 1)[0] + end for n in needles for end in (" ", "/", "\0")]
    for pid, what in ((prog, "the waiting program"), (z, "the zygote")):
        mem = read_memory(pid)
        assert len(mem) > 1 << 20, what
        found = [n for n in needles if n.encode() in mem]
        assert not found, f"{what} holds the host's mountinfo lines {found}"
        found = [p for p in points if p.encode() in mem]
        assert not found, f"{what} holds the host's cgroup mount points {found}"
    # The program's own view is its sandbox's mount table, not the host's.
    res = execute(srv, "print(open('/proc/self/mountinfo').read())", policy="permissive")
    assert res["status"] == "ok", res
    assert not [n for n in needles if n in res["stdout"]], res["stdout"]


# ---------------------------------------------------------------------------
# /proc/locks shows nothing of the host
# ---------------------------------------------------------------------------

# The program takes a lock of its own (a POSIX lock, listed in its own PID
# namespace), then reads /proc/locks.
READ_LOCKS = r"""
import fcntl, os
fd = os.open('/tmp/lockme', os.O_RDWR | os.O_CREAT)
fcntl.lockf(fd, fcntl.LOCK_EX)
print(repr(open('/proc/locks').read()))
print(os.stat('/proc/locks').st_size)
"""


def uid_slot_lock_inode():
    """The inode of the service's uid-slot lock file (root only), or None."""
    try:
        return os.stat("/run/pyexec/uid-slots.lock").st_ino
    except OSError:
        return None


def host_locks():
    with open("/proc/locks") as f:
        return f.read()


def assert_no_locks_seen(res):
    assert res["status"] == "ok", res
    assert res["stdout"] == "''\n0\n", res["stdout"]


def test_proc_locks_is_empty_in_the_sandbox_cold(run):
    res = run(READ_LOCKS)
    assert_no_locks_seen(res)


def test_proc_locks_is_empty_in_the_sandbox_warm(serve):
    srv = serve(env={"WARM_POOL_SIZE": 1})
    wait_pool_full(srv, 1)
    ino = uid_slot_lock_inode()
    if PRIVILEGED:
        # The control, from the host: the pool's sandboxes hold uid slots,
        # and the host's /proc/locks lists them.
        assert ino is not None
        assert re.search(rf":{ino} ", host_locks()), host_locks()
    res = execute(srv, READ_LOCKS, policy="permissive")
    assert_no_locks_seen(res)
