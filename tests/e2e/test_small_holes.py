"""What a program can learn or reach through small side doors, each checked
from the host: the host's mount table in a warm program's memory, the
education policy's write rule through dir_fd and symlinks, /proc/locks, and
(test_jobs.py) staging trees and hard-linked inputs.

Runs as root (scripts/test-e2e.sh) and as an unprivileged user
(scripts/test-unprivileged.sh); reading another process's memory needs root.
"""
import ast
import errno
import os
import re
import uuid

import pytest

from conftest import PRIVILEGED, readable_mappings
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
    return b"\x00".join(readable_mappings(pid))


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


# ---------------------------------------------------------------------------
# The education policy's write rule holds for dir_fd, symlinks and /proc links
# ---------------------------------------------------------------------------

# Every route writes where the path as written does not say: /dev/zero (the
# kernel lets any program write it, so only the policy stands in the way)
# and /etc/MARKER (read-only in the sandbox: the kernel refuses it too).
# Each route prints its outcome; the program never stops on the first.
ROUTES_PROG = r"""
import os, sys
M = sys.argv[1]
dev = os.open('/dev', os.O_RDONLY | os.O_DIRECTORY)
etc = os.open('/etc', os.O_RDONLY | os.O_DIRECTORY)
os.symlink('/dev/zero', 'z')
os.symlink('z', 'zz')
os.symlink('../dev/zero', 'rel')
os.symlink('/dev', 'dd')
os.symlink('/etc/' + M, 'e')
zero_ro = os.open('/dev/zero', os.O_RDONLY)
routes = {
    'os.open dir_fd': lambda: os.close(os.open('zero', os.O_WRONLY, dir_fd=dev)),
    'os.open dir_fd etc': lambda: os.close(os.open(M, os.O_WRONLY | os.O_CREAT, dir_fd=etc)),
    'open symlink': lambda: open('z', 'w').close(),
    'open symlink chain': lambda: open('zz', 'w').close(),
    'open relative symlink': lambda: open('rel', 'w').close(),
    'open symlinked dir': lambda: open('dd/zero', 'w').close(),
    'open dangling symlink': lambda: open('e', 'w').close(),
    'os.open symlink': lambda: os.close(os.open('z', os.O_WRONLY)),
    'open /proc fd link': lambda: open('/proc/self/fd/%d' % zero_ro, 'w').close(),
    'open opener dir_fd': lambda: open('zero', 'w', opener=lambda p, f: os.open(p, f, dir_fd=dev)).close(),
    'mkdir dir_fd': lambda: os.mkdir(M, dir_fd=etc),
    'chmod dir_fd': lambda: os.chmod('zero', 0o666, dir_fd=dev),
    'rename dst_dir_fd': lambda: os.rename('/sandbox/main.py', M, dst_dir_fd=etc),
    'chmod symlink': lambda: os.chmod('z', 0o666),
}
out = {}
for k, f in routes.items():
    try:
        f()
        out[k] = 'done'
    except OSError as e:
        out[k] = (type(e).__name__, e.errno, str(e) if type(e).__name__.startswith('Policy') else None)
print(repr(out))
"""


def route_refusals(m):
    def w(path):
        return ("PolicyPermissionError", None,
                f"writing to '{path}' is not allowed by policy 'education': only /sandbox and /tmp are writable")

    def c(path, event):
        return ("PolicyPermissionError", None, f"changing '{path}' ({event}) is not allowed by policy 'education': "
                "only /sandbox and /tmp are writable")

    return {
        "os.open dir_fd": w("/dev/zero"),
        "os.open dir_fd etc": w(f"/etc/{m}"),
        "open symlink": w("/dev/zero"),
        "open symlink chain": w("/dev/zero"),
        "open relative symlink": w("/dev/zero"),
        "open symlinked dir": w("/dev/zero"),
        "open dangling symlink": w(f"/etc/{m}"),
        "os.open symlink": w("/dev/zero"),
        "open /proc fd link": w("/dev/zero"),
        "open opener dir_fd": w("/dev/zero"),
        "mkdir dir_fd": c(f"/etc/{m}", "os.mkdir"),
        "chmod dir_fd": c("/dev/zero", "os.chmod"),
        "rename dst_dir_fd": c(f"/etc/{m}", "os.rename"),
        "chmod symlink": c("/dev/zero", "os.chmod"),
    }


def routes_outcome(res):
    assert res["status"] == "ok", res
    return ast.literal_eval(res["stdout"].strip().splitlines()[-1])


def marker():
    return f"pyexec-small-{uuid.uuid4().hex}"


def assert_routes_refused(res, m):
    assert routes_outcome(res) == route_refusals(m)
    assert not os.path.lexists(f"/etc/{m}"), "the program created a file in the host's /etc"


def test_write_rule_holds_through_dir_fd_and_symlinks_cold(run):
    m = marker()
    assert_routes_refused(run(ROUTES_PROG, "--policy", "education", "--arg", m), m)


def test_write_rule_holds_through_dir_fd_and_symlinks_warm(serve):
    srv = serve(env={"WARM_POOL_SIZE": 1})
    m = marker()
    res = execute(srv, ROUTES_PROG, policy="education", args=[m])
    assert_routes_refused(res, m)


def test_write_routes_reach_the_kernel_without_the_policy(run):
    """The control: under permissive the same routes do write /dev/zero
    (the kernel allows it), and /etc stays read-only (EROFS)."""
    m = marker()
    out = routes_outcome(run(ROUTES_PROG, "--policy", "permissive", "--arg", m))
    wrote = {k for k, v in out.items() if v == "done"}
    assert wrote == {"os.open dir_fd", "open symlink", "open symlink chain", "open relative symlink",
                     "open symlinked dir", "os.open symlink", "open /proc fd link", "open opener dir_fd"}, out
    assert {k: v[1] for k, v in out.items() if k not in wrote} == {
        "os.open dir_fd etc": errno.EROFS, "open dangling symlink": errno.EROFS, "mkdir dir_fd": errno.EROFS,
        "chmod dir_fd": errno.EPERM, "rename dst_dir_fd": errno.EXDEV, "chmod symlink": errno.EPERM}, out
    assert not os.path.lexists(f"/etc/{m}")


# What the rule must still let through: the work directory and /tmp by any
# route, /dev/null (also through a symlink), and acting on a symlink itself.
ALLOWED_PROG = r"""
import os
tmp = os.open('/tmp', os.O_RDONLY | os.O_DIRECTORY)
os.makedirs('sub/a')
a = os.open('sub/a', os.O_RDONLY | os.O_DIRECTORY)
os.symlink('/tmp/t.txt', 'to-tmp')
os.symlink('/dev/zero', 'to-zero')
os.symlink('/dev/null', 'to-null')
os.close(os.open('x', os.O_WRONLY | os.O_CREAT, dir_fd=tmp))
os.close(os.open('../../y', os.O_WRONLY | os.O_CREAT, dir_fd=a))
open('to-tmp', 'w').write('via link')
open('/dev/null', 'w').write('gone')
open('to-null', 'w').write('gone')
os.rename('to-zero', 'to-zero-2')
os.remove('to-zero-2')
os.mkdir('made', dir_fd=tmp)
print(sorted(os.listdir('/tmp')), sorted(os.listdir('.')), open('/tmp/t.txt').read())
"""

ALLOWED_OUT = "['made', 't.txt', 'x'] ['main.py', 'sub', 'to-null', 'to-tmp', 'y'] via link\n"


def test_write_rule_allows_the_work_directory_by_any_route_cold(run):
    res = run(ALLOWED_PROG, "--policy", "education")
    assert res["status"] == "ok", res
    assert res["stdout"] == ALLOWED_OUT, res


def test_write_rule_allows_the_work_directory_by_any_route_warm(serve):
    srv = serve(env={"WARM_POOL_SIZE": 1})
    res = execute(srv, ALLOWED_PROG, policy="education")
    assert res["status"] == "ok", res
    assert res["stdout"] == ALLOWED_OUT, res
