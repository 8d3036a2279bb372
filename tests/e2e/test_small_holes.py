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
