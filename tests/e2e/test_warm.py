"""End-to-end tests of the warm path of `pyexec serve` (zygote.c, zygote-child.c).

In warm mode (the default) the service starts `pyexec-runner --zygote 3`, a
process with CPython initialized and the allowed modules imported; every
sandbox is an init cloned from it into new namespaces, whose program is a
fork of that interpreter, and a pool of such sandboxes waits for work. These
tests check from the outside what that design must not change or break:

- isolation: whatever one run does to the interpreter it was forked from
  (module globals, sys.modules, builtins, os.environ, files, sys.path, random
  state, atexit, threads, processes) is invisible to the next run, with one
  sandbox in the pool (the same zygote makes each) and with several;
- warm and cold (--cold) runs of the same programs give identical results;
- the pool survives the death of the zygote and of a ready sandbox, recycles
  the zygote after ZYGOTE_MAX_FORKS sandboxes or ZYGOTE_MAX_AGE seconds
  without killing the runs the old one made;
- the zygote holds nothing of the service (environment, argv, fds, memory);
- policies (education by default, operator-defined ones) and limits hold;
- the pool's statistics say what happened.

Runs as root and as an unprivileged user (scripts/test-unprivileged.sh).
"""
import ast
import json
import os
import signal
import socket
import subprocess
import threading
import time
import uuid

import pytest

from conftest import (PRIVILEGED, PYEXEC, SANDBOX_LIBRARY_ENV, Listener, host_pids_matching, readable_mappings,
                      wait_for)
from test_serve import serving, start_server

# The program's environment on both paths (zygote.c, supervise.c).
SANDBOX_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": "/sandbox",
    "LANG": "C.UTF-8",
    "USER": "sandbox",
    "LOGNAME": "sandbox",
    **SANDBOX_LIBRARY_ENV,
}
# random.seed(42); random.random()
SEED42_FIRST = 0.6394267984578837


# ---------------------------------------------------------------------------
# Servers and helpers
# ---------------------------------------------------------------------------


def start(log_dir, *flags, env=None, headers=None, timeout=30, wrapper=()):
    """test_serve's start_server, but with the product's DEFAULT_POLICY
    (education) and no rate limit."""
    return start_server(log_dir, "--rate-limit-max", "0", *flags, env=env, headers=headers, timeout=timeout,
                        default_policy=None, wrapper=wrapper)


def stop_ok(srv):
    code = srv.stop()
    assert code == 0, f"pyexec serve exited {code}: {srv.log_text()[-3000:]}"


@pytest.fixture
def serve(tmp_path):
    """serve(*flags, env=..., headers=...) -> a started Server (start()), stopped (exit 0 asserted) at teardown."""
    yield from serving(tmp_path, start)


OPERATOR_POLICIES = {
    "POLICIES": "education,permissive,data",
    "POLICY_DATA": "base=education; allow=csv,sqlite3; deny=random",
    # Defined, but not offered in POLICIES.
    "POLICY_HIDDEN": "base=permissive",
}


@pytest.fixture(scope="module")
def pool1(tmp_path_factory):
    """Warm, one sandbox in the pool: consecutive runs come from the same
    zygote, one after the other. Also carries the operator policies."""
    srv = start(tmp_path_factory.mktemp("warm1"), env={"WARM_POOL_SIZE": 1, **OPERATOR_POLICIES})
    yield srv
    stop_ok(srv)


@pytest.fixture(scope="module")
def pooln(tmp_path_factory):
    """Warm with a fixed pool of MAX_CONCURRENT_EXECUTIONS (5) + 1: the
    most the default pool grows to (test_pool_load.py)."""
    srv = start(tmp_path_factory.mktemp("warmn"), env={"WARM_POOL_SIZE": 6})
    yield srv
    stop_ok(srv)


@pytest.fixture(scope="module")
def cold(tmp_path_factory):
    srv = start(tmp_path_factory.mktemp("cold"), "--cold")
    yield srv
    stop_ok(srv)


def execute(srv, code, client_timeout=60, **fields):
    """POST /api/execute on a fresh connection with a client timeout; the result document."""
    c = srv.new_client(timeout=client_timeout)
    try:
        r = c.execute({"code": code, **fields})
    finally:
        c.close()
    assert r.status == 200, r
    return r.json()


def brief(res):
    return (f"status={res.get('status')} exit={res.get('exitCode')} signal={res.get('signal')} "
            f"message={res.get('message')!r}\nstdout={str(res.get('stdout'))[:1500]!r}\n"
            f"stderr={str(res.get('stderr'))[-1500:]!r}")


def assert_ok(res, stdout=None):
    assert res["status"] == "ok", brief(res)
    if stdout is not None:
        assert res["stdout"] == stdout, brief(res)


def warm_stats(srv):
    w = srv.stats()["warm"]
    assert isinstance(w, dict), w
    return w


def children(pid):
    """Direct children of pid (every thread's)."""
    kids = []
    try:
        for t in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{t}/children") as f:
                kids += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return kids


def dead_or_zombie(pid):
    """pid has exited: it is a zombie or already reaped."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def descendants(pid):
    out, todo = [], [pid]
    while todo:
        for k in children(todo.pop()):
            out.append(k)
            todo.append(k)
    return out


def alive(pid):
    """Whether pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def wait_pool_full(srv, size, timeout=10, idle=True):
    """Wait until `size` sandboxes are ready and (idle) no run's sandbox is
    left: the zygote's children are exactly the ready ones."""
    def full():
        w = warm_stats(srv)
        return w if w["ready"] == size and w["zygotePid"] > 0 and (
            not idle or len(children(w["zygotePid"])) == size) else None
    return wait_for(full, timeout, f"a full pool of {size}: {srv.stats().get('warm')}")


def ready_ok(srv):
    c = srv.new_client(timeout=5)
    try:
        return c.get("/health/ready").status
    finally:
        c.close()


# ---------------------------------------------------------------------------
# 1. Isolation: what one run does to its interpreter, the next never sees
# ---------------------------------------------------------------------------

LEAK_DIRS = ["/dev/shm", "/var/tmp", "/run/lock", "/home", "/"]

# Run A: changes everything it can reach. Education allows every import
# used here. The last lines break print and len for the rest of the run.
MUTATE = r'''
import builtins, decimal, json, math, os, random, sys, threading, time, types, warnings
math.pi = 3
json.dumps = None
json.JSONEncoder.default = lambda self, o: "LEAK"
decimal.getcontext().prec = 3
sys.modules["fakemod_pyexec"] = types.ModuleType("fakemod_pyexec")
del sys.modules["textwrap"]
del sys.modules["json"]
os.environ["PYEXEC_LEAK"] = "leaked"
with open("/sandbox/x", "w") as f:
    f.write("x")
with open("/tmp/y", "w") as f:
    f.write("y")
sys.path.insert(0, "/tmp")
sys.path.append("/evil")
random.seed(42)
os.chdir("/tmp")
sys.setrecursionlimit(200)
sys.set_int_max_str_digits(640)
warnings.simplefilter("error")

def late():
    time.sleep(0.4)
    sys.stdout.write("late thread\n")

def ticker():
    i = 0
    while True:
        i += 1
        try:
            with open(f"/sandbox/tick{i}", "w"):
                pass
        except OSError:
            pass
        time.sleep(0.01)

threading.Thread(target=late).start()
threading.Thread(target=ticker, daemon=True).start()
EXTRA
os.umask(0o777)
builtins.len = lambda x: 42
builtins.print = lambda *a, **k: None
sys.stdout.write("A done\n")
'''

# Permissive only: atexit, a process left running, writes outside /sandbox.
MUTATE_PERMISSIVE = r'''
import atexit, subprocess
atexit.register(lambda: sys.stdout.write("atexit A\n"))
child = subprocess.Popen(["/usr/bin/python3", "-c", "import time; time.sleep(30)", sys.argv[1]],
                         start_new_session=True)
for d in LEAK_DIRS:
    try:
        with open(os.path.join(d, sys.argv[1]), "w") as f:
            f.write("leak")
        sys.stdout.write(f"wrote {d}\n")
    except OSError:
        pass
time.sleep(0.2)
sys.stdout.write(f"child running {child.poll() is None}\n")
'''

# Run B: what it sees. Printed with print (a replaced print would print nothing).
CHECK = r'''
import builtins, decimal, json, math, os, random, sys, threading, warnings
um = os.umask(0o022)
os.umask(um)
obs = {
    "pi": math.pi,
    "dumps": json.dumps({"a": [1, 2]}),
    "encoder_default": json.JSONEncoder.default.__qualname__,
    "prec": decimal.getcontext().prec,
    "fake": "fakemod_pyexec" in sys.modules,
    "textwrap": __import__("textwrap").dedent("  x"),
    "print": type(builtins.print).__name__,
    "len": len([1, 2, 3]),
    "env": dict(os.environ),
    "sandbox": sorted(os.listdir("/sandbox")),
    "tmp": sorted(os.listdir("/tmp")),
    "cwd": os.getcwd(),
    "path": sys.path,
    "recursion": sys.getrecursionlimit(),
    "digits": sys.get_int_max_str_digits(),
    "warnings": [f[0] for f in warnings.filters],
    "umask": um,
    "threads": threading.active_count(),
}
EXTRA
print(repr(obs))
print(repr(random.random()))
'''

CHECK_PERMISSIVE = r'''
import atexit
obs["atexit"] = atexit._ncallbacks()
obs["leaks"] = [d for d in LEAK_DIRS if os.path.exists(os.path.join(d, sys.argv[1]))]
'''


def programs(policy):
    extra_m = MUTATE_PERMISSIVE if policy == "permissive" else ""
    extra_c = CHECK_PERMISSIVE if policy == "permissive" else ""
    dirs = f"LEAK_DIRS = {LEAK_DIRS!r}\n"
    return (MUTATE.replace("EXTRA", dirs + extra_m), CHECK.replace("EXTRA", dirs + extra_c))


def observe(srv, code, policy, marker):
    res = execute(srv, code, policy=policy, args=[marker])
    assert_ok(res)
    lines = res["stdout"].splitlines()
    assert len(lines) == 2, brief(res)
    return ast.literal_eval(lines[0]), float(lines[1])


@pytest.mark.parametrize("policy", ["education", "permissive"])
@pytest.mark.parametrize("pool", ["pool1", "pooln"])
def test_isolation_between_runs(request, pool, policy):
    srv = request.getfixturevalue(pool)
    marker = f"pyexec-warm-{uuid.uuid4().hex}"
    mutate, check = programs(policy)
    z0 = warm_stats(srv)["zygotePid"]

    before, r0 = observe(srv, check, policy, marker)
    a = execute(srv, mutate, policy=policy, args=[marker])
    assert_ok(a)
    lines = a["stdout"].splitlines()
    assert lines[-2:] == ["A done", "late thread"] or lines[-3:] == ["A done", "late thread", "atexit A"], brief(a)
    if policy == "permissive":
        # The same as on a fresh interpreter: non-daemon threads, then atexit.
        assert lines[-3:] == ["A done", "late thread", "atexit A"], brief(a)
        assert "child running True" in lines, brief(a)
        # The process A left is gone with its sandbox.
        wait_for(lambda: not host_pids_matching(marker), 5, f"the process run A left ({marker}) is gone")
        for d in LEAK_DIRS:
            assert not os.path.exists(os.path.join(d, marker)), f"run A's file reached the host's {d}"
    after, r1 = observe(srv, check, policy, marker)
    again, r2 = observe(srv, check, policy, marker)

    assert after == before, {k: (before[k], after.get(k)) for k in before if before[k] != after.get(k)}
    assert again == before
    # Not only unchanged: right.
    assert after["pi"] == 3.141592653589793
    assert after["dumps"] == '{"a": [1, 2]}'
    assert after["encoder_default"] == "JSONEncoder.default"
    assert after["prec"] == 28
    assert after["fake"] is False
    assert after["textwrap"] == "x"
    assert after["print"] == "builtin_function_or_method"
    assert after["len"] == 3
    assert after["env"] == SANDBOX_ENV
    assert after["sandbox"] == ["main.py"]
    assert after["tmp"] == []
    assert after["cwd"] == "/sandbox"
    assert after["path"][0] == "/sandbox" and "/evil" not in after["path"] and "/tmp" not in after["path"]
    assert after["recursion"] == 1000
    assert after["digits"] == 4300
    assert "error" not in after["warnings"]
    assert after["umask"] != 0o777
    assert after["threads"] == 1
    if policy == "permissive":
        assert after["atexit"] == before["atexit"]
        assert after["leaks"] == []
    # Fresh random state each run, not the zygote's nor run A's seed.
    assert len({r0, r1, r2}) == 3, (r0, r1, r2)
    assert SEED42_FIRST not in (r0, r1, r2)
    # All of it on the warm path, from one zygote.
    assert warm_stats(srv)["zygotePid"] == z0


def test_isolation_of_concurrent_runs(pooln):
    """Runs going on at the same time see neither each other's files nor globals."""
    code = ("import math, os, sys, time\n"
            "tag = sys.argv[1]\n"
            "math.pi = tag\n"
            "open(f'/tmp/{tag}', 'w').close()\n"
            "open(f'/sandbox/{tag}', 'w').close()\n"
            "time.sleep(0.5)\n"
            "print(math.pi, sorted(os.listdir('/tmp')), sorted(os.listdir('/sandbox')))\n")
    results = {}

    def one(tag):
        results[tag] = execute(pooln, code, policy="education", args=[tag])

    tags = [f"t{i}" for i in range(4)]
    threads = [threading.Thread(target=one, args=(t,)) for t in tags]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for tag in tags:
        assert_ok(results[tag], f"{tag} ['{tag}'] ['main.py', '{tag}']\n")


# What a warm program finds in /dev/shm, and what it leaves there: a file
# named after its marker, and the tmpfs filled to its size.
DEV_SHM = r"""
import errno, json, os, sys
sv = os.statvfs("/dev/shm")
out = {"bytes": sv.f_blocks * sv.f_frsize, "inodes": sv.f_files, "found": sorted(os.listdir("/dev/shm"))}
with open(f"/dev/shm/{sys.argv[1]}", "w") as f:
    f.write("left by an earlier run")
total = 0
try:
    for i in range(64):
        with open(f"/dev/shm/{sys.argv[1]}-{i}", "wb") as f:
            for _ in range(8):
                f.write(b"\0" * (1 << 20))
                total += 1 << 20
except OSError as e:
    out["fill"] = [errno.errorcode[e.errno], total]
print(json.dumps(out))
"""


def test_dev_shm_is_fresh_in_every_warm_sandbox(pool1):
    """Each warm sandbox has a /dev/shm of its own, of the disk limit's size:
    what one run leaves there, the next (from the same zygote) does not
    see, and none of it is in the host's /dev/shm."""
    host_before = set(os.listdir("/dev/shm"))
    z0 = warm_stats(pool1)["zygotePid"]
    markers = [f"pyexec-warm-shm-{uuid.uuid4().hex}" for _ in range(3)]
    for marker in markers:
        res = execute(pool1, DEV_SHM, policy="permissive", args=[marker])
        assert_ok(res)
        out = json.loads(res["stdout"])
        assert out["bytes"] == res["limits"]["diskMb"] << 20 and out["inodes"] == 4096, out
        assert out["found"] == [], f"a run found an earlier run's /dev/shm: {out}"
        err, total = out["fill"]
        assert err == "ENOSPC" and total >= (res["limits"]["diskMb"] - 1) << 20, out
        host = set(os.listdir("/dev/shm"))
        assert not [n for n in host | host_before if any(m in n for m in markers)], "a run's file reached the host"
    assert warm_stats(pool1)["zygotePid"] == z0


def sandbox_namespaces(zygote):
    """From the host, in one pass: {pid namespace: {network namespaces}} of
    every process under the zygote (each sandbox's init, program, holder)."""
    seen = {}
    for pid in descendants(zygote):
        try:
            seen.setdefault(os.readlink(f"/proc/{pid}/ns/pid"), set()).add(os.readlink(f"/proc/{pid}/ns/net"))
        except OSError:
            pass  # gone meanwhile
    return seen


# Run after run in the same service: what the network namespace holds when
# the run starts (every socket table, from the program's side), then state
# left behind on purpose: listening and bound sockets of each kind, an
# abstract Unix name, and a child that keeps them open after main returns.
NET_LEFTOVERS = """
import json, os, socket, time
def rows(name):
    try:
        with open('/proc/net/' + name) as f:
            return len(f.read().splitlines()) - 1
    except OSError as e:
        return type(e).__name__
found = {n: rows(n) for n in ('tcp', 'tcp6', 'udp', 'udp6', 'unix', 'raw', 'raw6', 'udplite', 'netlink')}
t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
t.bind(('0.0.0.0', 40000))
t.listen()
t6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
t6.bind(('::', 40002))
t6.listen()
d = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
d.bind(('0.0.0.0', 40001))
u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
u.bind('\\0pyexec-net-leftover')
u.listen()
a, b = socket.socketpair()
print(os.readlink('/proc/self/ns/net'), json.dumps(found), flush=True)
if os.fork() == 0:
    os.close(1)
    os.close(2)
    time.sleep(60)
    os._exit(0)
"""


def test_network_namespace_one_sandbox_at_a_time_and_left_empty(serve):
    """Sandboxes get their network namespace from a pool on the root path
    (zygote.c): made once, joined by a sandbox's init, reused only after
    every process of its last sandbox is gone. Checked from the host: at
    any moment each sandbox (PID namespace) is in one network namespace of
    its own, never the host's nor another sandbox's. Checked run after run:
    whatever a run leaves behind in its namespace (listening TCP and UDP
    sockets, an abstract Unix name, a child holding them), the next run in
    it finds its socket tables empty and binds the same ports and name.
    Unprivileged, every sandbox makes its own (nothing is reused)."""
    srv = serve(env={"WARM_POOL_SIZE": 3, "MAX_CONCURRENT_EXECUTIONS": 4})
    wait_pool_full(srv, 3)
    host_net = os.readlink("/proc/self/ns/net")
    zygote = warm_stats(srv)["zygotePid"]

    # Four runs at once (three taken ready, one built on demand) and the
    # sandboxes built to replace them (two, while runs go on): nothing dies
    # meanwhile, so no namespace changes hands while the host looks.
    results = {}

    def one(i):
        results[i] = execute(srv, "import time\ntime.sleep(2.5)\nprint('done')\n", policy="permissive")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    wait_for(lambda: warm_stats(srv)["ready"] >= 2 and len(sandbox_namespaces(zygote)) >= 6, 10,
             "four runs going and two sandboxes ready")
    for _ in range(3):
        seen = sandbox_namespaces(zygote)
        assert len(seen) >= 6, seen
        for pidns, nets in seen.items():
            assert len(nets) == 1, f"one sandbox in several network namespaces: {pidns} {nets}"
            assert host_net not in nets, f"a sandbox in the host's network namespace: {pidns}"
        owners = [next(iter(nets)) for nets in seen.values()]
        assert len(set(owners)) == len(owners), f"two sandboxes share a network namespace: {seen}"
        time.sleep(0.2)
    for t in threads:
        t.join(30)
    for i in range(4):
        assert_ok(results[i], "done\n")

    # Run after run: each finds nothing of the previous ones.
    nets, netlink = [], {}
    for _ in range(12):
        res = execute(srv, NET_LEFTOVERS, policy="permissive")
        assert_ok(res)
        net, found = res["stdout"].split(" ", 1)
        assert net != host_net
        nets.append(net)
        found = json.loads(found)
        # netlink: the kernel's own sockets of a namespace, the same in each
        kernel = found.pop("netlink")
        assert kernel == netlink.setdefault("kernel", kernel), (found, kernel, netlink, nets)
        for table, n in found.items():
            assert n in (0, "FileNotFoundError"), f"{table} not empty at the start of a run: {found}\n{nets}"
    w = warm_stats(srv)
    netns = w["networkNamespaces"]
    if os.geteuid() == 0:
        # 4 + 2 at once above, then at most a few more: the rest reused.
        assert netns["reused"] >= 8, w
        assert netns["made"] <= 12, w
        # From the host: the sandboxes now waiting sit in namespaces that
        # runs above left their sockets in; their socket tables, read
        # through a waiting program's /proc, are empty (the kernel's own
        # netlink sockets aside), and nothing listens on the ports.
        wait_pool_full(srv, 3)
        waiting = {}
        for pid in descendants(zygote):
            try:
                waiting.setdefault(os.readlink(f"/proc/{pid}/ns/net"), pid)
            except OSError:
                pass
        reused = {net: pid for net, pid in waiting.items() if net in nets}
        assert reused, (waiting, nets)
        for net, pid in reused.items():
            for table in ("tcp", "tcp6", "udp", "udp6", "unix"):
                with open(f"/proc/{pid}/net/{table}") as f:
                    rows = f.read().splitlines()[1:]
                assert rows == [], f"{table} of {net}, reused, seen from the host: {rows}"
    else:
        assert netns == {"made": 0, "reused": 0}, w


def test_runs_see_fresh_interpreter_state_not_zygote_leftovers(pool1):
    """The zygote's start-up (pre-imports, the static check) leaves no
    garbage the program can see: no pending exception, no traceback, and
    the program's __main__ holds only the usual names."""
    code = ("import sys\n"
            "print(sys.exc_info() == (None, None, None), getattr(sys, 'last_value', None))\n"
            "print(sorted(k for k in globals() if not k.startswith('__')))\n"
            "print(__name__, __file__, sys.argv)\n")
    res = execute(pool1, code, policy="education", args=["a1"])
    assert_ok(res, "True None\n['sys']\n__main__ /sandbox/main.py ['main.py', 'a1']\n")


def test_warm_runs_share_the_zygotes_hash_secret(pool1):
    """A documented trade-off of the warm path (docs/security.md): every run
    forked from one zygote has the str hash secret the zygote drew when it
    initialized CPython, so hash('abc') and set order repeat across its
    runs until it is recycled; cold runs draw a fresh secret each time."""
    code = "print(hash('pyexec-hash-probe'))"
    hashes = {execute(pool1, code, policy="education")["stdout"] for _ in range(3)}
    assert len(hashes) == 1, hashes


def huge_code_mapping(pid):
    """The runner's code on huge pages (zygote-child.c huge_text): the
    anonymous r-xp mapping just below the runner's own file mapping, as
    (start, end, AnonHugePages in kB); None if there is none."""
    rows, cur = [], None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            parts = line.split()
            if "-" in parts[0] and ":" not in parts[0]:
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                cur = [lo, hi, parts[1], parts[5] if len(parts) > 5 else "", 0]
                rows.append(cur)
            elif parts[0] == "AnonHugePages:":
                cur[4] = int(parts[1])
    for a, b in zip(rows, rows[1:]):
        if a[2] == "r-xp" and not a[3] and a[1] == b[0] and "pyexec-runner" in b[3]:
            return a[0], a[1], a[4]
    return None


def thp_collapse_supported():
    release = tuple(int(x) for x in os.uname().release.split(".")[:2])
    return release >= (6, 1) and os.path.exists("/sys/kernel/mm/transparent_hugepage/enabled")


def test_runner_code_on_huge_pages_is_shared_never_written(pool1):
    """The zygote moves the runner's code onto 2 MiB pages that every
    sandbox shares. A program that makes its code writable and patches it
    changes only its own copy: the next run and the zygote still have the
    original bytes, checked from the host."""
    if not thp_collapse_supported():
        pytest.skip("no MADV_COLLAPSE (Linux >= 6.1 with transparent huge pages)")
    z = warm_stats(pool1)["zygotePid"]
    found = huge_code_mapping(z)
    assert found, "no anonymous code mapping below the runner's file in the zygote"
    lo, hi, huge_kb = found
    assert lo % (2 << 20) == 0 and hi % (2 << 20) == 0 and huge_kb * 1024 == hi - lo, found
    with open(f"/proc/{z}/maps") as f:
        assert not any("w" in l.split()[1] and "x" in l.split()[1] for l in f), "a writable and executable mapping"
    patch = (
        "import ctypes\n"
        f"lo = {lo}\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "print(ctypes.string_at(lo, 4))\n"
        "assert libc.mprotect(ctypes.c_void_p(lo), 4096, 7) == 0, ctypes.get_errno()\n"
        "ctypes.memmove(lo + 1, b'XYZ', 3)\n"
        "print(ctypes.string_at(lo, 4))\n")
    assert_ok(execute(pool1, patch, policy="permissive"), "b'\\x7fELF'\nb'\\x7fXYZ'\n")
    look = f"import ctypes\nprint(ctypes.string_at({lo}, 4))\nprint(open('/proc/self/maps').read().count('{lo:08x}-{hi:08x} r-xp'))\n"
    assert_ok(execute(pool1, look, policy="permissive"), "b'\\x7fELF'\n1\n")
    assert warm_stats(pool1)["zygotePid"] == z
    with open(f"/proc/{z}/mem", "rb") as f:
        f.seek(lo)
        assert f.read(4) == b"\x7fELF"
    assert huge_code_mapping(z)[2] * 1024 == hi - lo, "the zygote's huge pages were split"


# ---------------------------------------------------------------------------
# 2. Warm and cold agree
# ---------------------------------------------------------------------------

# init (supervise.c run_init) resets every signal to SIG_DFL; the warm
# program, a fork of the zygote's interpreter, sets the interpreter's own
# dispositions again from its table (zygote-child.c), so SIGPIPE, SIGXFSZ
# and SIGINT behave as under a fresh python3: the cases below check it.

AGREE = [
    ("hello", "print('hello')", {}),
    ("exception", "def f(x):\n    return 1 / x\n\nprint('before')\nf(0)\n", {}),
    ("exit_code", "import sys\nprint('out')\nsys.exit(3)\n", {}),
    ("exit_message", "import sys\nsys.exit('bye now')\n", {}),
    ("exit_none", "raise SystemExit(None)\n", {}),
    ("syntax_error", "print('x')\ndef f(:\n    pass\n", {}),
    ("indentation_error", "if True:\nprint(1)\n", {}),
    ("policy_violation", "print('start')\nimport socket\n", {"policy": "education"}),
    ("policy_event", "import os\nos.system('true')\n", {"policy": "education"}),
    ("stdin_echo", "import sys\ndata = sys.stdin.read()\nprint(repr(data))\nprint(data.upper(), end='')\n",
     {"stdin": "abc\ndéf\n"}),
    ("input_eof", "a = input('prompt> ')\nprint(a)\ninput()\n", {"stdin": "one\n"}),
    ("args", "import sys\nprint(sys.argv)\n", {"args": ["a", "b c", "ü", ""]}),
    ("unicode", "import sys\nprint('héllo wörld ✓ 日本語 🐍')\nsys.stderr.write('ошибка ✗\\n')\n", {}),
    ("atexit", "import atexit\natexit.register(print, 'bye')\natexit.register(lambda: print('first'))\n"
               "print('main')\n", {"policy": "permissive"}),
    ("threads", "import threading, time\nout = []\n"
                "def w(i):\n    time.sleep(0.01 * i)\n    out.append(i * i)\n"
                "ts = [threading.Thread(target=w, args=(i,)) for i in range(5)]\n"
                "[t.start() for t in ts]\n[t.join() for t in ts]\nprint(sorted(out))\n"
                "threading.Thread(target=lambda: (time.sleep(0.2), print('late'))).start()\n"
                "print('main done')\n", {}),
    ("thread_exception", "import threading\n"
                         "def bad():\n    raise ValueError('in thread')\n"
                         "t = threading.Thread(target=bad, name='worker')\nt.start()\nt.join()\nprint('after')\n", {}),
    ("keyboard_interrupt", "print('x', flush=True)\nraise KeyboardInterrupt\n", {}),
    ("recursion", "def f(n):\n    return f(n + 1)\nf(0)\n", {}),
    ("warning", "import warnings\nwarnings.warn('careful')\nprint('went on')\n", {}),
    ("os_exit", "import os\nprint('flushed?', flush=True)\nos._exit(7)\n", {"policy": "permissive"}),
    ("files", "import helper, os\nprint(helper.f(), sorted(os.listdir('.')))\nprint(open('data.txt').read())\n",
     {"files": [{"name": "helper.py", "content": "def f():\n    return 42\n"},
                {"name": "data.txt", "content": "some data"}]}),
    ("environment", "import os, sys\nprint(dict(os.environ))\nprint(os.getcwd(), __name__, __file__, sys.argv)\n"
                    "print(sys.path)\nprint(sys.stdin.encoding, sys.stdout.encoding, sys.stdout.isatty())\n"
                    "print(sys.flags.optimize, sys.flags.dont_write_bytecode, sys.flags.isolated)\n"
                    "print(sorted(os.listdir('/proc/self/fd')))\n"
                    "print(os.getpid(), os.getppid())\n", {"policy": "permissive"}),
    ("mixed_streams", "import sys\nfor i in range(3):\n    print('out', i)\n    print('err', i, file=sys.stderr)\n"
                      "raise RuntimeError('boom')\n", {}),
    # Python ignores SIGPIPE and SIGXFSZ and turns SIGINT into
    # KeyboardInterrupt: the program sees exceptions, not signals.
    pytest.param("broken_pipe", "import os\nr, w = os.pipe()\nos.close(r)\ntry:\n    os.write(w, b'x')\n"
                 "except BrokenPipeError as e:\n    print('BrokenPipeError', e.errno)\n", {},
                 id="broken_pipe"),
    pytest.param("file_too_large", "f = open('/tmp/big', 'wb')\ntry:\n    f.write(b'x' * (20 << 20))\n    f.flush()\n"
                 "except OSError as e:\n    print('OSError', e.errno)\n", {},
                 id="file_too_large"),
    pytest.param("sigint_caught", "import os, signal, time\ntry:\n    os.kill(os.getpid(), signal.SIGINT)\n"
                 "    time.sleep(2)\nexcept KeyboardInterrupt:\n    print('caught')\n", {"policy": "permissive"},
                 id="sigint_caught"),
    # The holder of a warm program's address space is invisible: to wait(),
    # in /proc, and in what the pids limit leaves the program.
    ("processes", "import os\nprint([p for p in os.listdir('/proc') if p.isdigit()], os.getpid(), os.getppid())\n"
                  "try:\n    os.wait()\nexcept ChildProcessError as e:\n    print('wait:', e.errno)\n",
     {"policy": "permissive"}),
    ("pids_limit", "import os, time\nn = 0\ntry:\n    while True:\n        if os.fork() == 0:\n"
                   "            time.sleep(30)\n            os._exit(0)\n        n += 1\n"
                   "except OSError as e:\n    print(n, 'children, then errno', e.errno)\n",
     {"policy": "permissive"}),
    # Its locks and queues are POSIX semaphores in /dev/shm; education
    # refuses the import.
    ("multiprocessing", "import multiprocessing\n"
                        "def sq(x):\n    return x * x\n"
                        "if __name__ == '__main__':\n"
                        "    with multiprocessing.Pool(2) as pool:\n        print(pool.map(sq, range(6)))\n"
                        "    lock, q = multiprocessing.Lock(), multiprocessing.Queue()\n"
                        "    with lock:\n        q.put('queued')\n"
                        "    print(q.get(timeout=30))\n", {"policy": "permissive"}),
    ("multiprocessing_refused", "import multiprocessing\n", {"policy": "education"}),
    pytest.param("signal_dispositions", "import signal\n"
                 "for l in open('/proc/self/status'):\n    if l.startswith(('SigIgn', 'SigCgt', 'SigBlk')):\n"
                 "        print(l.strip())\n"
                 "print([str(signal.getsignal(s)) for s in (signal.SIGINT, signal.SIGPIPE, signal.SIGXFSZ, "
                 "signal.SIGCHLD, signal.SIGTERM)])\n", {"policy": "permissive"},
                 id="signal_dispositions"),
]


def _agree_id(a):
    return a[0] if type(a) is tuple else a.id


@pytest.mark.parametrize("name,code,fields", AGREE, ids=[_agree_id(a) for a in AGREE])
def test_warm_and_cold_agree(pooln, cold, name, code, fields):
    fields = {"policy": "education", **fields}
    w = execute(pooln, code, **fields)
    c = execute(cold, code, **fields)
    # Not "output": how stdout and stderr interleave there depends on when
    # the service reads which pipe.
    for key in ("status", "exitCode", "signal", "stdout", "stderr", "message", "truncated"):
        assert w[key] == c[key], f"{key} differs\nwarm: {brief(w)}\ncold: {brief(c)}"


def test_agree_programs_behave_as_expected(pooln):
    """The programs above are not vacuous: spot-check what the warm path gives."""
    progs = {a[0]: (a[1], a[2]) for a in AGREE if type(a) is tuple}

    def run(name):
        code, fields = progs[name]
        return execute(pooln, code, **{"policy": "education", **fields})

    r = run("keyboard_interrupt")
    assert (r["status"], r["signal"], r["exitCode"], r["stdout"]) == ("runtime_error", "SIGINT", None, "x\n"), brief(r)
    assert r["stderr"].endswith("KeyboardInterrupt\n")
    r = run("exit_code")
    assert (r["status"], r["exitCode"], r["stdout"]) == ("runtime_error", 3, "out\n"), brief(r)
    r = run("exit_message")
    assert (r["exitCode"], r["stderr"]) == (1, "bye now\n"), brief(r)
    r = run("syntax_error")
    assert r["status"] == "syntax_error" and r["stdout"] == "", brief(r)
    r = run("policy_violation")
    assert r["status"] == "policy_violation", brief(r)
    assert r["message"] == "import of 'socket' is not allowed by policy 'education' (main.py, line 2)"
    r = run("atexit")
    assert r["stdout"] == "main\nfirst\nbye\n", brief(r)
    r = run("threads")
    assert r["stdout"] == "[0, 1, 4, 9, 16]\nmain done\nlate\n", brief(r)
    r = run("os_exit")
    assert (r["exitCode"], r["stdout"]) == (7, "flushed?\n"), brief(r)
    r = run("stdin_echo")
    assert r["stdout"] == "'abc\\ndéf\\n'\nABC\nDÉF\n", brief(r)
    r = run("environment")
    assert r["stdout"].splitlines()[0] == repr(SANDBOX_ENV), brief(r)
    r = run("processes")
    assert r["stdout"] == "['2'] 2 1\nwait: 10\n", brief(r)
    r = run("multiprocessing")
    assert r["stdout"] == "[0, 1, 4, 9, 16, 25]\nqueued\n", brief(r)
    r = run("multiprocessing_refused")
    assert r["status"] == "policy_violation", brief(r)
    assert r["message"] == "import of 'multiprocessing' is not allowed by policy 'education' (main.py, line 1)"
    r = run("pids_limit")
    # The default limit of 64 processes: the program and 63 children.
    assert r["stdout"] == "63 children, then errno 11\n", brief(r)


def test_cold_server_has_no_zygote(cold):
    assert cold.stats().get("warm") is None
    assert cold.sample("pyexec_warm") == 0
    for pid in descendants(cold.proc.pid):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                assert b"--zygote" not in f.read(), f"a zygote ({pid}) under a --cold server"
        except FileNotFoundError:
            pass
    assert_ok(execute(cold, "print(1)"), "1\n")


# ---------------------------------------------------------------------------
# 3. The zygote or a ready sandbox dies
# ---------------------------------------------------------------------------

# While the zygote is replaced (after its death, and on every recycle) the
# pool has no zygote and no ready sandbox for about a second; a request
# then runs on the cold path. A ready sandbox that died a moment ago is not
# used: the program is handed to another sandbox, or runs cold. The tests
# below check that every request is answered ok meanwhile.


def request_outcome(srv, i, tag):
    """(HTTP status, result status, message, stdout, seconds) of a quick request, bounded by a client timeout."""
    t = time.monotonic()
    c = srv.new_client(timeout=15)
    try:
        r = c.execute({"code": f"print('{tag}', {i})"})
    except (socket.timeout, TimeoutError) as e:
        raise AssertionError(f"request {i} ({tag}) hung: {e}")
    finally:
        c.close()
    doc = r.json()
    return (r.status, doc.get("status") or doc.get("error", {}).get("code"),
            doc.get("message") or doc.get("error", {}).get("message"), doc.get("stdout"), time.monotonic() - t)


def quick_requests(srv, n, tag):
    """n requests one after the other: all must be ok, fast, and the service ready after each."""
    got = []
    for i in range(n):
        out = request_outcome(srv, i, tag)
        got.append((out, ready_ok(srv)))
    bad = [(i, g) for i, g in enumerate(got)
           if g[0][:2] != (200, "ok") or g[0][3] != f"{tag} {i}\n" or g[0][4] > 5 or g[1] != 200]
    assert not bad, f"{len(bad)} of {n} requests ({tag}) failed: (http, status, message, stdout, s), ready: {bad}"


def test_zygote_killed_recovers(serve):
    srv = serve(env={"WARM_POOL_SIZE": 2})
    w = wait_pool_full(srv, 2)
    z = w["zygotePid"]
    with open(f"/proc/{z}/stat") as f:
        assert int(f.read().rsplit(")", 1)[1].split()[1]) == srv.proc.pid, "the zygote is not the service's child"
    inits = children(z)
    assert len(inits) == 2
    os.kill(z, signal.SIGKILL)
    # The service stays ready and a new zygote with a full pool comes up.
    deadline = time.monotonic() + 10
    while True:
        assert ready_ok(srv) == 200
        w = warm_stats(srv)
        if w["zygotePid"] not in (z, 0, -1) and w["zygoteDeaths"] >= 1 and w["ready"] == 2:
            break
        assert time.monotonic() < deadline, f"no new zygote with a full pool within 10 s: {w}"
        time.sleep(0.05)
    assert w["zygotes"] == 2 and w["zygoteDeaths"] == 1, w
    assert alive(w["zygotePid"])
    # The old zygote's sandboxes went with it.
    wait_for(lambda: not any(alive(p) for p in inits), 5, f"the dead zygote's inits {inits} are gone")
    assert srv.sample("pyexec_zygote_deaths") == 1
    assert srv.sample("pyexec_zygotes_started") == 2
    # The warm path serves again, from the new zygote.
    wait_pool_full(srv, 2)
    quick_requests(srv, 4, "after zygote kill")
    results = []
    threads = [threading.Thread(target=lambda i=i: results.append(execute(srv, f"print({i})", client_timeout=15)))
               for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert sorted(r["stdout"] for r in results) == ["0\n", "1\n"], results
    w2 = warm_stats(srv)
    assert w2["takenReady"] >= w["takenReady"] + 1 and w2["zygotePid"] == w["zygotePid"], (w, w2)


def test_requests_right_after_zygote_death_succeed(serve):
    """Repro: WARM_POOL_SIZE=2; SIGKILL the zygote (GET /api/stats warm.zygotePid); POST /api/execute
    {"code": "print(1)"} at once, 6 times. Expected: all ok (on a new zygote, or cold meanwhile).
    Got: runtime_error 'exited with code -1', then 500 internal_error 'building a warm sandbox: Broken
    pipe' / 'No child processes', then 503 'circuit breaker open' and /health/ready 503."""
    srv = serve(env={"WARM_POOL_SIZE": 2})
    z = wait_pool_full(srv, 2)["zygotePid"]
    os.kill(z, signal.SIGKILL)
    quick_requests(srv, 6, "right after zygote kill")


def test_zygote_killed_during_a_run(serve):
    """The run in flight dies with its zygote (its init does, by design).
    Nothing of it left its sandbox, so the service runs it again from the
    start (another sandbox, or cold while the zygote is replaced): the
    request is answered ok, within its own time plus the restart, and the
    service goes on."""
    srv = serve(env={"WARM_POOL_SIZE": 1})
    z = wait_pool_full(srv, 1)["zygotePid"]
    out = {}

    def long_run():
        t = time.monotonic()
        c = srv.new_client(timeout=20)
        try:
            out["resp"] = c.execute({"code": "import time\ntime.sleep(3)\nprint('survived')"})
        except Exception as e:  # reported below
            out["error"] = e
        finally:
            c.close()
        out["took"] = time.monotonic() - t

    t = threading.Thread(target=long_run)
    t.start()
    wait_for(lambda: srv.stats()["queue"]["active"] == 1, 5, "the long run started")
    time.sleep(0.3)
    os.kill(z, signal.SIGKILL)
    t.join(25)
    assert "error" not in out, out
    assert out["resp"].status == 200, out["resp"]
    res = out["resp"].json()
    assert res["status"] == "ok", brief(res)
    assert res["stdout"] == "survived\n"
    assert out["took"] < 9, f"the run whose zygote died took {out['took']:.1f} s to be answered: {brief(res)}"
    w = srv.wait_state(lambda st: st["warm"]["zygotePid"] not in (z, 0, -1) and st["warm"]["ready"] == 1,
                       timeout=10)["warm"]
    assert w["zygoteDeaths"] == 1
    quick_requests(srv, 3, "after zygote kill during a run")


def blocked_signals(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(next(l for l in f if l.startswith("SigBlk:")).split()[1], 16)


def program_and_holder(init):
    """A ready sandbox's init has two children: the program and the holder of
    its address space, which blocks every signal."""
    kids = children(init)
    assert len(kids) == 2, kids
    holder = [k for k in kids if blocked_signals(k) != 0]
    assert len(holder) == 1, [(k, hex(blocked_signals(k))) for k in kids]
    (prog,) = set(kids) - set(holder)
    return prog, holder[0]


def proc_status(pid):
    with open(f"/proc/{pid}/status") as f:
        return dict(l.rstrip("\n").split(":\t", 1) for l in f if ":\t" in l)


def test_holder_is_confined_like_its_program(serve):
    """The holder shares the program's memory, so the program could take it
    over: checked from the host, it has nothing the program has not."""
    srv = serve(env={"WARM_POOL_SIZE": 1})
    (init,) = children(wait_pool_full(srv, 1)["zygotePid"])
    prog, holder = program_and_holder(init)
    p, h = proc_status(prog), proc_status(holder)
    for key in ("Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp",
                "Seccomp_filters"):
        assert h[key] == p[key], (key, h[key], p[key])
    assert h["PPid"] == p["PPid"] == str(init)
    assert h["CapEff"] == "0000000000000000" and h["NoNewPrivs"] == "1" and h["Seccomp"] == "2", h
    if os.geteuid() == 0:
        # (Unprivileged, the host user may not look into the sandbox's
        # processes: they are not dumpable.)
        for ns in os.listdir(f"/proc/{prog}/ns"):
            assert os.readlink(f"/proc/{holder}/ns/{ns}") == os.readlink(f"/proc/{prog}/ns/{ns}"), ns
        # Same address space (the point of it), no descriptors.
        with open(f"/proc/{prog}/maps") as a, open(f"/proc/{holder}/maps") as b:
            assert a.read() == b.read()
        assert os.listdir(f"/proc/{holder}/fd") == []
    # Every signal but SIGKILL and SIGSTOP blocked.
    assert int(h["SigBlk"], 16) == (1 << 64) - 1 - (1 << (signal.SIGKILL - 1)) - (1 << (signal.SIGSTOP - 1)), h["SigBlk"]
    # A run ends its sandbox's processes, the holder included.
    assert_ok(execute(srv, "print('ran')"), "ran\n")
    wait_for(lambda: not alive(holder) and not alive(prog) and not alive(init), 5, "the used sandbox is gone")


def test_init_of_a_warm_sandbox_is_the_small_init(serve):
    """A warm sandbox's init shares the zygote's memory only until it has
    forked the program, then execs pyexec-init (supervise.c): from the host,
    a process of a few pages, unprivileged like its program, whose children
    are the program and the holder."""
    if not os.path.exists(os.path.join(os.path.dirname(os.path.realpath(PYEXEC)), "pyexec-init")):
        pytest.skip("no pyexec-init beside pyexec (it is built for x86-64 only)")
    srv = serve(env={"WARM_POOL_SIZE": 1})
    z = wait_pool_full(srv, 1)["zygotePid"]
    (init,) = children(z)
    prog, holder = program_and_holder(init)
    i, p = proc_status(init), proc_status(prog)
    assert i["Name"] == "pyexec-init", i["Name"]
    assert int(i["VmRSS"].split()[0]) < 512, f"init maps {i['VmRSS']}: not the small init"
    assert int(proc_status(z)["VmRSS"].split()[0]) > 4 * 1024
    for key in ("Groups", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs"):
        assert i[key] == p[key], (key, i[key], p[key])
    # Its effective ids are the program's (it signals the run); as root its
    # real and saved ids are its own, so the program cannot signal it
    # (test_init_reach.py). In a user namespace they share the one id.
    for key in ("Uid", "Gid"):
        ids, pids = i[key].split(), p[key].split()
        assert ids[1] == ids[3] == pids[1], (key, ids, pids)
        if os.geteuid() == 0:
            assert ids[0] == ids[2] != pids[0], (key, ids, pids)
        else:
            assert ids == pids, (key, ids, pids)
    assert i["CapEff"] == i["CapAmb"] == i["CapBnd"] == "0000000000000000" and i["NoNewPrivs"] == "1", i
    # init stopped the program for its copies (zygote-child.c) and let it go:
    # a ready program sleeps, waiting for work.
    with open(f"/proc/{prog}/stat") as f:
        state = f.read().rsplit(")", 1)[1].split()[0]
    assert state == "S", f"the ready program's state is {state}"
    if os.geteuid() != 0:
        # Same user as the service: the zygote stays dumpable (init shared
        # its memory and left that so); the program clears it itself, so its
        # /proc is closed to this user. (pyexec-init clears it too, but it
        # was exec'd in the sandbox's user namespace, which this user owns:
        # the kernel lets the owner look. What matters is the program, below.)
        assert os.readlink(f"/proc/{z}/exe")
        for pid in (prog, holder):
            with pytest.raises(PermissionError):
                os.readlink(f"/proc/{pid}/exe")
    else:
        assert "pyexec-init" in os.readlink(f"/proc/{init}/exe")
        with open(f"/proc/{init}/maps") as f:
            maps = f.read()
        assert "pyexec-runner" not in maps and "libc" not in maps, maps
        # The status pipe only (the holder pipe is read and closed).
        assert os.listdir(f"/proc/{init}/fd") == ["3"], os.listdir(f"/proc/{init}/fd")
    # The program cannot reach its init (which shared the zygote's memory
    # until it exec'd): invisible in /proc, and ptrace and process_vm_readv
    # refused.
    assert_ok(execute(srv, REACH_INIT, policy="permissive"), "[False, 2, 2, (-1, 1), (-1, 1)]\n")
    wait_for(lambda: not alive(init), 5, "the used sandbox's init is gone")


REACH_INIT = r"""
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
out = ['1' in os.listdir('/proc')]
for path in ('/proc/1/mem', '/proc/1/exe'):
    try:
        open(path, 'rb')
        out.append('opened')
    except OSError as e:
        out.append(e.errno)
class iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
buf = ctypes.create_string_buffer(8)
local, remote = iovec(ctypes.cast(buf, ctypes.c_void_p), 8), iovec(0x400000, 8)
out.append((libc.process_vm_readv(1, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0), ctypes.get_errno()))
out.append((libc.ptrace(16, 1, None, None), ctypes.get_errno()))  # PTRACE_ATTACH
print(out)
"""


def vmas(pid, flag=None):
    """[(start, end)] of pid's mappings (those with VmFlags `flag` only)."""
    out, cur = [], None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split(" ", 1)[0]
            if "-" in head and not line.startswith("VmFlags"):
                a, b = head.split("-")
                cur = (int(a, 16), int(b, 16))
            elif line.startswith("VmFlags") and (flag is None or flag in line.split()[1:]):
                out.append(cur)
    return out


def test_programs_do_not_get_inits_stack(serve):
    """init's stack in the zygote's memory is not copied into the programs
    (MADV_DONTFORK, supervise.c: init forks the program on another stack),
    so the next init's writes to it are not copy-on-write faults. From the
    host: the zygote has that one do-not-copy mapping, of init's 256 KiB
    stack and more; as root, a ready program maps nothing of it and runs.
    With the zygote's data on huge pages the madvise is refused (a hugetlb
    page cannot be split), and needs not be: see
    test_zygote_memory_on_huge_pages_never_shared_with_a_sandbox."""
    if not os.path.exists(os.path.join(os.path.dirname(os.path.realpath(PYEXEC)), "pyexec-init")):
        pytest.skip("no pyexec-init beside pyexec: each init is a full copy of the zygote")
    srv = serve(env={"WARM_POOL_SIZE": 1, "ZYGOTE_HUGE_PAGES": "false"})
    z = wait_pool_full(srv, 1)["zygotePid"]
    dc = vmas(z, "dc")
    assert len(dc) == 1 and dc[0][1] - dc[0][0] >= 256 * 1024, [(hex(a), hex(b)) for a, b in dc]
    (lo, hi), = dc
    if os.geteuid() == 0:  # a program's maps are closed to the service's user
        (init,) = children(z)
        prog, _ = program_and_holder(init)
        inside = [(hex(a), hex(b)) for a, b in vmas(prog) if a < hi and b > lo]
        assert inside == [], f"the program maps init's stack: {inside}"
        assert vmas(prog, "dc") == []
    assert_ok(execute(srv, "import sys\nprint(sum(range(10)))\n", policy="permissive"), "45\n")


def test_warm_path_without_pyexec_init(serve, tmp_path):
    """Without pyexec-init beside the runner, the service says so and each
    init is a copy of the zygote, as before it; runs are unchanged."""
    d = tmp_path / "runner"
    d.mkdir()
    runner = d / "pyexec-runner"
    with open(os.path.join(os.path.dirname(os.path.realpath(PYEXEC)), "pyexec-runner"), "rb") as f:
        runner.write_bytes(f.read())
    runner.chmod(0o755)
    os.chmod(tmp_path, 0o755)
    os.chmod(d, 0o755)
    srv = serve(env={"WARM_POOL_SIZE": 1, "PYEXEC_RUNNER": str(runner)})
    z = wait_pool_full(srv, 1)["zygotePid"]
    (init,) = children(z)
    assert "pyexec-init not found beside pyexec-runner" in srv.log_text()
    assert int(proc_status(init)["VmRSS"].split()[0]) > 4 * 1024, "init is not a copy of the zygote"
    assert_ok(execute(srv, "import os\nprint(os.getpid(), os.getppid())"), "2 1\n")
    assert_ok(execute(srv, "print('again')"), "again\n")
    assert warm_stats(srv)["zygotePid"] == z


def test_program_that_kills_its_holder(serve):
    """The program can signal its holder (same uid): the run still ends with
    its whole output, only without the early answer."""
    srv = serve(env={"WARM_POOL_SIZE": 1})
    wait_pool_full(srv, 1)
    code = ("import os, signal\nfor sig in (signal.SIGSTOP, signal.SIGKILL):\n    os.kill(3, sig)\n"
            "print('x' * 5000)\nprint('end')\n")
    res = execute(srv, code, policy="permissive")
    assert_ok(res, "x" * 5000 + "\nend\n")
    res = execute(srv, "import os, signal\nos.kill(3, signal.SIGSTOP)\nprint('stopped it')\n", policy="permissive")
    assert_ok(res, "stopped it\n")
    assert_ok(execute(srv, "print('next')"), "next\n")


# The program takes its holder over: the holder sleeps in libc's syscall()
# and the kernel re-executes that syscall instruction when a stop ends, so
# code written there runs in the holder after a SIGSTOP and a SIGCONT. The
# code connects to a socket of the program's, receives the program's
# stdout over it, and sleeps for good, signals blocked. (Reopening
# /proc/2/fd/1 is refused: the pipe belongs to the service.)
TAKE_OVER_HOLDER = r"""
import ctypes, os, signal, socket, struct
libc = ctypes.CDLL(None, use_errno=True)
libc.prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE: to watch it in /proc
fn = ctypes.cast(libc.syscall, ctypes.c_void_p).value
at = fn + ctypes.string_at(fn, 64).index(b"\x0f\x05")
assert libc.mprotect(ctypes.c_void_p(at & ~4095), 8192, 7) == 0, ctypes.get_errno()
name = b"\0pyexec-takeover"
addr = ctypes.create_string_buffer(struct.pack("H", socket.AF_UNIX) + name)
byte = ctypes.create_string_buffer(1)
iov = ctypes.create_string_buffer(struct.pack("QQ", ctypes.addressof(byte), 1))
control = ctypes.create_string_buffer(64)
msg = ctypes.create_string_buffer(struct.pack("QI4xQQQQi4x", 0, 0, ctypes.addressof(iov), 1,
                                              ctypes.addressof(control), 64, 0))
code = (b"\xbf\x01\x00\x00\x00\xbe\x01\x00\x00\x00\x31\xd2"  # socket(AF_UNIX, SOCK_STREAM, 0)
        b"\xb8\x29\x00\x00\x00\x0f\x05\x49\x89\xc4"
        b"\x4c\x89\xe7\x48\xbe" + struct.pack("Q", ctypes.addressof(addr)) +  # connect(s, addr, len)
        b"\xba" + struct.pack("I", 2 + len(name)) + b"\xb8\x2a\x00\x00\x00\x0f\x05"
        b"\x4c\x89\xe7\x48\xbe" + struct.pack("Q", ctypes.addressof(msg)) +  # recvmsg(s, msg, 0)
        b"\x31\xd2\xb8\x2f\x00\x00\x00\x0f\x05"
        b"\xb8\x22\x00\x00\x00\x0f\x05\xeb\xf7")  # for (;;) pause()
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(name)
srv.listen(1)
srv.settimeout(5)
ctypes.memmove(at, code, len(code))
os.kill(3, signal.SIGSTOP)
os.kill(3, signal.SIGCONT)
conn, _ = srv.accept()
socket.send_fds(conn, [b"x"], [1])
import time
for _ in range(500):
    if len(os.listdir("/proc/3/fd")) == 2:
        break
    time.sleep(0.01)
print("holder has", sorted(os.listdir("/proc/3/fd")), flush=True)
"""


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the takeover's code is x86-64")
def test_program_that_takes_its_holder_over(serve):
    """init answers with the rest of the run stopped, not killed; a holder
    taken over and holding stdout open must not make the run wait for its
    time limit. The run ends as the program did, with its output, and
    nothing of it is left."""
    srv = serve(env={"WARM_POOL_SIZE": 1})
    (init,) = children(wait_pool_full(srv, 1)["zygotePid"])
    prog, holder = program_and_holder(init)
    t = time.monotonic()
    res = execute(srv, TAKE_OVER_HOLDER, policy="permissive", timeout=10000)
    took = time.monotonic() - t
    assert_ok(res, "holder has ['0', '1']\n")
    assert took < 5, f"{took:.1f} s: the run waited for the stopped holder"
    wait_for(lambda: not alive(holder) and not alive(prog) and not alive(init), 5, "the used sandbox is gone")
    assert_ok(execute(srv, "print('next')"), "next\n")


@pytest.mark.skipif(os.geteuid() != 0, reason="sandbox uids come from the host's pool on the privileged path only")
def test_service_and_cli_never_share_a_uid(serve, tmp_path):
    """The service's sandboxes (waiting, running, dying) and `pyexec run`'s
    take their uids from one pool: observed from the host while four warm
    runs and four CLI runs overlap, no uid belongs to two sandboxes (PID
    namespaces), and every run had a uid of its own."""
    base, count = 1900700000, 24
    pool_env = {"PYEXEC_UID_BASE": str(base), "PYEXEC_UID_COUNT": str(count)}
    srv = serve(env={"WARM_POOL_SIZE": 4, "MAX_CONCURRENT_EXECUTIONS": 4, **pool_env})
    wait_pool_full(srv, 4)
    code = "import os, time\nprint(os.getuid(), flush=True)\ntime.sleep(1.5)\n"
    prog = tmp_path / "uid.py"
    prog.write_text(code)
    results = {}

    def warm(i):
        results["warm", i] = execute(srv, code, policy="permissive")

    def cli(i):
        p = subprocess.run([PYEXEC, "run", "--json", str(prog)], capture_output=True, timeout=60,
                           env={**os.environ, **pool_env})
        results["cli", i] = json.loads(p.stdout)

    threads = [threading.Thread(target=f, args=(i,)) for f in (warm, cli) for i in range(4)]
    for t in threads:
        t.start()
    owners = {}  # uid -> the PID namespaces its processes were seen in
    # Watched until every run has answered (each sleeps 1.5 s, so each is
    # seen however late a slow machine starts it).
    deadline = time.monotonic() + 120
    while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/status") as f:
                    uid = int(next(l for l in f if l.startswith("Uid:")).split()[1])
                if base <= uid < base + count:
                    owners.setdefault(uid, set()).add(os.readlink(f"/proc/{d}/ns/pid"))
            except (OSError, StopIteration):
                pass
        time.sleep(0.05)
    for t in threads:
        t.join()
    shared = {uid: ns for uid, ns in owners.items() if len(ns) > 1}
    assert not shared, f"uids in two sandboxes at once: {shared}"
    for key, res in results.items():
        assert_ok(res)
    uids = [int(res["stdout"].split()[0]) for res in results.values()]
    assert len(results) == 8 and len(set(uids)) == 8, results
    assert set(uids) <= set(owners), (uids, owners)


def test_ready_sandbox_killed(serve):
    srv = serve(env={"WARM_POOL_SIZE": 3})
    w = wait_pool_full(srv, 3)
    z = w["zygotePid"]
    inits = children(z)
    assert len(inits) == 3, inits
    # The init of one ready sandbox, the program of another, the holder of
    # the third's address space.
    os.kill(inits[0], signal.SIGKILL)
    prog, _ = program_and_holder(inits[1])
    os.kill(prog, signal.SIGKILL)
    _, holder = program_and_holder(inits[2])
    os.kill(holder, signal.SIGKILL)
    # The pool notices and replaces the first two; the third runs without
    # its holder (its answer then waits for the address space's teardown).
    wait_for(lambda: not alive(inits[0]) and not alive(inits[1]), 5, "the killed sandboxes are gone")
    w = wait_pool_full(srv, 3)
    assert set(children(z)) & set(inits) == {inits[2]}
    quick_requests(srv, 4, "after killing ready sandboxes")
    assert not alive(inits[2]), "the sandbox without its holder was not used"
    w = wait_pool_full(srv, 3)
    assert w["zygotePid"] == z, "killing a sandbox must not replace the zygote"
    assert w["zygoteDeaths"] == 0 and w["zygotes"] == 1


def kill_ready_init(srv, timeout=60):
    """SIGKILL the init of the pool's one ready sandbox; its pid. The one
    the pool held a moment ago may be gone already (a slow machine is still
    ending the previous run's): then look again."""
    deadline = time.monotonic() + timeout
    while True:
        (init,) = children(wait_pool_full(srv, 1, timeout=max(1, deadline - time.monotonic()))["zygotePid"])
        try:
            os.kill(init, signal.SIGKILL)
            return init
        except ProcessLookupError:
            assert time.monotonic() < deadline, "no ready sandbox stayed long enough to be killed"


def test_ready_sandbox_killed_right_before_take(serve):
    """Repro: WARM_POOL_SIZE=1; SIGKILL the one ready sandbox's init (the zygote's child) and POST
    {"code": "print(1)"} at once. Expected: ok (another sandbox). Got: 500 'handing the program to its
    sandbox: Broken pipe', 'sandbox setup failed: the sandbox did not start' or runtime_error
    'exited with code -1'."""
    srv = serve(env={"WARM_POOL_SIZE": 1})
    got = []
    for i in range(4):
        init = kill_ready_init(srv)
        # A SIGKILL is pending until its target runs: on a busy machine the
        # request could reach the program first, which is then a loss while
        # the program ran (the program's verdict). The request goes once init
        # is a zombie or reaped, its namespace emptied, and before the pool
        # has necessarily seen it.
        wait_for(lambda: dead_or_zombie(init), 10, f"sandbox init {init} killed")
        got.append(request_outcome(srv, i, "init"))
    bad = [g for g in got if g[:2] != (200, "ok")]
    assert not bad, bad


# ---------------------------------------------------------------------------
# 4. Recycling the zygote
# ---------------------------------------------------------------------------


def test_recycle_after_max_forks(serve):
    t0 = time.monotonic()
    srv = serve(env={"WARM_POOL_SIZE": 1, "ZYGOTE_MAX_FORKS": 3, "EXECUTION_TIMEOUT": 120000})
    z0 = wait_pool_full(srv, 1)["zygotePid"]
    # The long run must outlast the first recycle, a zygote's start: scaled
    # by how long this one took (seconds here, far more under emulation).
    long_s = min(100.0, max(4.0, 4 * (time.monotonic() - t0)))
    out = {}

    def long_run():
        c = srv.new_client(timeout=long_s + 30)
        try:
            out["resp"] = c.execute({"code": f"import time\ntime.sleep({long_s:.1f})\nprint('survived')",
                                     "timeout": int(long_s * 1000) + 5000})
        finally:
            c.close()

    t = threading.Thread(target=long_run)
    t.start()
    wait_for(lambda: srv.stats()["queue"]["active"] == 1, 5, "the long run started")
    pids = {z0}
    retiring_seen = False
    # One request at a time, each on a full pool.
    for i in range(6):
        w = wait_pool_full(srv, 1, idle=False)
        pids.add(w["zygotePid"])
        if w["zygotePid"] != z0 and not retiring_seen:
            # The first zygote made the long run's sandbox: recycled, it is
            # retiring, alive until that run is over.
            assert t.is_alive(), "the long run ended before the first recycle; make it longer"
            assert alive(z0), "the retiring zygote died while its sandbox was running"
            assert z0 in children(srv.proc.pid)
            retiring_seen = True
        assert_ok(execute(srv, f"print({i})", client_timeout=15), f"{i}\n")
    w = wait_pool_full(srv, 1, idle=False)
    pids.add(w["zygotePid"])
    assert retiring_seen
    assert w["zygotes"] >= 3, w
    assert w["zygotePid"] != z0
    assert len(pids) >= 3, pids
    assert w["zygoteDeaths"] == 0, "a recycle is not a death"
    t.join(long_s + 30)
    assert out["resp"].status == 200
    assert_ok(out["resp"].json(), "survived\n")
    # Then it goes (and is reaped), as have the zygotes in between.
    wait_for(lambda: not alive(z0) and z0 not in children(srv.proc.pid), 5, f"the retired zygote {z0} exits")
    wait_for(lambda: [p for p in children(srv.proc.pid) if alive(p)] == [warm_stats(srv)["zygotePid"]], 5,
             "only the current zygote is left")
    assert srv.sample("pyexec_zygotes_started") == warm_stats(srv)["zygotes"]
    assert srv.sample("pyexec_zygote_deaths") == 0


def test_recycle_without_failed_requests(serve):
    """Repro: WARM_POOL_SIZE=2 ZYGOTE_MAX_FORKS=3; POST {"code": "print(1)"} 10 times back to back.
    Expected: all ok. Got: from the 3rd or 4th on, 500 internal_error 'building a warm sandbox: No child
    processes', then 503 'circuit breaker open' (and /health/ready 503) for 10 s."""
    srv = serve(env={"WARM_POOL_SIZE": 2, "ZYGOTE_MAX_FORKS": 3})
    wait_pool_full(srv, 2)
    quick_requests(srv, 10, "across recycles")


def test_recycle_after_max_age(serve):
    srv = serve(env={"WARM_POOL_SIZE": 1, "ZYGOTE_MAX_AGE": 1})
    z0 = wait_pool_full(srv, 1)["zygotePid"]
    w = srv.wait_state(lambda st: st["warm"]["zygotePid"] not in (z0, 0, -1), timeout=30)["warm"]
    assert w["zygotes"] >= 2 and w["zygoteDeaths"] == 0
    wait_for(lambda: not alive(z0), 15, f"the old zygote {z0} exits")
    wait_pool_full(srv, 1)
    assert_ok(execute(srv, "print('aged')", client_timeout=15), "aged\n")


# ---------------------------------------------------------------------------
# 5. The zygote holds nothing of the service
# ---------------------------------------------------------------------------


def read_environ(pid):
    with open(f"/proc/{pid}/environ", "rb") as f:
        return f.read()


def listening_inodes(port):
    inodes = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if int(parts[1].rsplit(":", 1)[1], 16) == port:
                        inodes.add(parts[9])
        except OSError:
            pass
    return inodes


def test_zygote_environment_argv_fds(serve):
    secret = f"xyz-secret-{uuid.uuid4().hex}"
    key = f"apikey-{uuid.uuid4().hex}"
    srv = serve(env={"SECRET_TOKEN": secret, "API_KEYS": key, "WARM_POOL_SIZE": 2},
                headers={"Authorization": f"Bearer {key}"})
    # The key is in force.
    c = srv.new_client(headers={"Authorization": "Bearer wrong-key-0123456789"})
    try:
        assert c.execute({"code": "print(1)"}).status == 401
    finally:
        c.close()
    z = wait_pool_full(srv, 2)["zygotePid"]
    env = read_environ(z)
    assert env.split(b"\0")[:-1] == [f"{k}={v}".encode() for k, v in SANDBOX_ENV.items()], env
    with open(f"/proc/{z}/cmdline", "rb") as f:
        cmdline = f.read()
    # --huge-pages: room in the hugetlb pool for this many copies of its
    # memory (zygote-heap.c): the pool's 2, MAX_CONCURRENT_EXECUTIONS (5)
    # running, itself and its probe; 0 where no hugetlb cgroup can bound a
    # sandbox's share (unprivileged, here).
    # 0 also where huge pages do not pay (ZYGOTE_HUGE_PAGES=auto).
    huge = b"9" if w_huge_bounded(srv) and warm_stats(srv)["hugePages"]["on"] else b"0"
    assert cmdline.split(b"\0")[:-1] == [b"pyexec-runner", b"--zygote", b"3", b"--huge-pages", huge], cmdline
    # Exec'd from a sealed memfd copy: its programs' /proc/self/exe and maps
    # name no host path.
    assert os.readlink(f"/proc/{z}/exe") == "/memfd:pyexec-runner (deleted)"
    for pid in [z, *descendants(z)]:
        try:
            blob = read_environ(pid)
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                blob += f.read()
        except OSError:
            continue
        assert secret.encode() not in blob and key.encode() not in blob, f"the service's secrets in {pid}"
    # Its fds: /dev/null, the log, the control socket and the runner itself;
    # never the service's listening socket.
    listen = listening_inodes(srv.port)
    assert listen, "the service's listening socket not found in /proc/net/tcp"
    links = {}
    for fd in os.listdir(f"/proc/{z}/fd"):
        try:
            links[int(fd)] = os.readlink(f"/proc/{z}/fd/{fd}")
        except OSError:
            pass
    assert links[0] == links[1] == "/dev/null", links
    sockets = [v for v in links.values() if v.startswith("socket:")]
    assert len(sockets) == 1, links
    assert sockets[0][len("socket:["):-1] not in listen, links
    assert len(links) <= 6, links
    # The program on the warm path: exactly the five variables.
    res = execute(srv, "import os\nprint(dict(os.environ))", policy="education")
    assert_ok(res, repr(SANDBOX_ENV) + "\n")
    # 0, 1, 2, listdir's own (3) and the images pipe's write end, at 5 as on
    # the cold path.
    res = execute(srv, "import os\nprint(sorted(os.listdir('/proc/self/fd')))", policy="permissive")
    assert_ok(res, "['0', '1', '2', '3', '5']\n")


def test_zygote_memory_holds_no_service_secret(serve):
    """Every warm program is a copy of the zygote's memory: it must hold
    nothing of the service (an environment secret) nor of the host layout
    the service detected (its cgroup directory)."""
    secret = f"xyz-secret-{uuid.uuid4().hex}"
    srv = serve(env={"SECRET_TOKEN": secret, "WARM_POOL_SIZE": 1})
    z = wait_pool_full(srv, 1)["zygotePid"]
    check = json.loads(subprocess.run([PYEXEC, "check", "--json"], capture_output=True).stdout)
    cgroup_dir = (check.get("cgroup") or {}).get("memory")

    def scan(pid, needle):
        chunks = readable_mappings(pid)
        return any(needle.encode() in c for c in chunks), sum(map(len, chunks))

    try:
        found, scanned = scan(srv.proc.pid, secret)
    except PermissionError:
        pytest.skip("cannot read the service's memory (ptrace restrictions)")
    assert found, "the control: the secret is in the service's memory"
    try:
        found, scanned = scan(z, secret)
    except PermissionError:
        pytest.skip("cannot read the zygote's memory (ptrace restrictions)")
    assert scanned > 1 << 20
    assert not found, "the service's secret is in the zygote's memory"
    if cgroup_dir:
        assert scan(srv.proc.pid, cgroup_dir)[0], "the control: the service knows its cgroup directory"
        assert not scan(z, cgroup_dir)[0], f"the zygote's memory names the host's cgroup directory {cgroup_dir}"


# ---------------------------------------------------------------------------
# 6. Policies over HTTP
# ---------------------------------------------------------------------------


def test_default_policy_is_education(pool1):
    res = execute(pool1, "import socket\n")
    assert res["status"] == "policy_violation", brief(res)
    assert res["message"] == "import of 'socket' is not allowed by policy 'education' (main.py, line 1)"
    # Also for modules the zygote imported already (the import wrapper, not
    # the "import" event, must refuse them).
    res = execute(pool1, "import atexit\n")
    assert res["status"] == "policy_violation", brief(res)
    res = execute(pool1, "import json, math, random\nprint(json.dumps(math.floor(2.5)))\n")
    assert_ok(res, "2\n")


def host_addresses():
    addrs = {"127.0.0.1"}
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # no packet is sent
            addrs.add(s.getsockname()[0])
    except OSError:
        pass
    try:
        addrs.update(socket.gethostbyname_ex(socket.gethostname())[2])
    except OSError:
        pass
    return sorted(addrs)


def test_permissive_socket_reaches_nothing(pool1):
    listener = Listener(socket.AF_INET, "0.0.0.0")
    try:
        code = ("import socket, sys\n"
                "port = int(sys.argv[1])\n"
                "for host in sys.argv[2:]:\n"
                "    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n"
                "    s.settimeout(1)\n"
                "    try:\n"
                "        s.connect((host, port))\n"
                "        s.sendall(b'hello from the sandbox')\n"
                "        print(host, 'connected')\n"
                "    except OSError as e:\n"
                "        print(host, type(e).__name__)\n"
                "    finally:\n"
                "        s.close()\n")
        addrs = host_addresses()
        res = execute(pool1, code, policy="permissive", args=[str(listener.port), *addrs])
        assert_ok(res)
        for line in res["stdout"].splitlines():
            assert "connected" not in line, brief(res)
        assert len(res["stdout"].splitlines()) == len(addrs), brief(res)
        time.sleep(0.3)
        assert listener.accepted == [], listener.accepted
    finally:
        listener.close()


def test_unknown_policy_is_400(pool1):
    for name in ("nope", "hidden", "Education"):
        r = pool1.execute({"code": "print(1)", "policy": name})
        assert r.status == 400, (name, r)
        err = r.error()
        assert err["field"] == "policy", err
        assert err["code"] == "invalid_request"
        assert name in err["message"]
        assert "hidden" not in err["message"].split("available:")[1], err


def test_operator_policy(pool1):
    def run(code):
        return execute(pool1, code, policy="data")

    res = run("import csv, io\nw = csv.writer(out := io.StringIO())\nw.writerow(['a', 1])\nprint(out.getvalue(), end='')\n")
    assert_ok(res, "a,1\r\n")
    res = run("import random\n")
    assert res["status"] == "policy_violation", brief(res)
    assert res["message"] == "import of 'random' is not allowed by policy 'data' (main.py, line 1)"
    # random is in the zygote's sys.modules: every way of asking is refused.
    for code in ("from random import randint\n", "x = __import__('random')\n", "import random as r\n"):
        res = run(code)
        assert res["status"] == "policy_violation", (code, brief(res))
        assert "'random'" in res["message"] and "'data'" in res["message"], (code, brief(res))
    # The base's refusals hold.
    res = run("import socket\n")
    assert res["status"] == "policy_violation", brief(res)
    assert res["message"] == "import of 'socket' is not allowed by policy 'data' (main.py, line 1)"
    # An allowed module the zygote did not import ahead.
    code = "import sqlite3\ncon = sqlite3.connect(':memory:')\nprint(con.execute('select 6 * 7').fetchone())\n"
    assert_ok(run(code), "(42,)\n")
    res = execute(pool1, code, policy="education")
    assert res["status"] == "policy_violation", brief(res)
    assert res["message"] == "import of 'sqlite3' is not allowed by policy 'education' (main.py, line 1)"
    # The same program under education may import random.
    assert_ok(execute(pool1, "import random\nprint(0 <= random.random() < 1)\n", policy="education"), "True\n")


# ---------------------------------------------------------------------------
# 7. Limits on the warm path
# ---------------------------------------------------------------------------


def test_timeout(pool1):
    res = execute(pool1, "while True:\n    pass\n", client_timeout=30, timeout=1000)
    assert res["status"] == "timeout", brief(res)
    assert 900 <= res["time"]["wallMs"] < 4000, res["time"]
    assert_ok(execute(pool1, "print('next')"), "next\n")


def test_memory_limit(pool1):
    for policy in ("education", "permissive"):
        res = execute(pool1, "x = b'x' * (200 << 20)\nprint(len(x))\n", policy=policy, memoryLimit=32)
        assert res["status"] == "memory_limit", brief(res)
        assert res["stdout"] == ""
    assert_ok(execute(pool1, "print('next')"), "next\n")


def test_dev_shm_counts_against_the_memory_limit(pool1):
    """/dev/shm's pages are charged to the run's memory cgroup: a run whose
    memory limit is below the disk limit cannot hold more through it. With
    no cgroup (unprivileged here) the disk limit bounds it."""
    code = ("import errno\ntotal = 0\ntry:\n    for i in range(64):\n"
            "        with open(f'/dev/shm/f{i}', 'wb') as f:\n            for _ in range(8):\n"
            "                f.write(b'x' * (1 << 20))\n                total += 1 << 20\n"
            "except OSError as e:\n    print(errno.errorcode[e.errno], total >> 20)\n")
    res = execute(pool1, code, policy="permissive", memoryLimit=16)
    if os.geteuid() == 0:
        assert res["status"] == "memory_limit", brief(res)
    elif res["status"] != "memory_limit":
        assert_ok(res)
        err, mib = res["stdout"].split()
        assert err == "ENOSPC" and int(mib) <= res["limits"]["diskMb"], brief(res)
    assert_ok(execute(pool1, "import os\nprint(os.listdir('/dev/shm'))\n", policy="permissive"), "[]\n")


def test_output_limit(pool1):
    res = execute(pool1, "print('x' * 100000)\n", maxOutput=1000)
    assert res["status"] == "output_limit", brief(res)
    assert res["truncated"] is True
    assert 0 < len(res["stdout"]) <= 1000
    res = execute(pool1, "while True:\n    print('y' * 100)\n", maxOutput=5000, timeout=5000)
    assert res["status"] == "output_limit", brief(res)
    assert res["time"]["wallMs"] < 4000


def test_file_size_limit(pool1):
    code = ("import os\ntry:\n    with open('/tmp/big', 'wb') as f:\n        f.write(b'x' * (20 << 20))\n"
            "except OSError as e:\n    print('OSError', e.errno)\nprint(os.path.getsize('/tmp/big'))\n")
    res = execute(pool1, code)
    assert res["limits"]["fileSizeMb"] == 16
    # The write fails with EFBIG (SIGXFSZ is ignored, as python3 has it) and
    # the file never grows past the limit.
    assert res["status"] == "ok", brief(res)
    lines = res["stdout"].split()
    assert lines[:2] == ["OSError", "27"] and int(lines[2]) <= 16 << 20, brief(res)


@pytest.mark.parametrize("policy", ["education", "permissive"])
def test_fork_bomb_contained(serve, policy):
    srv = serve(env={"WARM_POOL_SIZE": 2})
    wait_pool_full(srv, 2)
    baseline = len(descendants(srv.proc.pid))
    # The zygote; per sandbox init, the program and its holder.
    assert baseline == 1 + 2 * 3, descendants(srv.proc.pid)
    code = "import os\nwhile True:\n    try:\n        os.fork()\n    except BlockingIOError:\n        pass\n"
    res = execute(srv, code, policy=policy, client_timeout=30, timeout=2000)
    assert res["status"] != "ok", brief(res)
    if policy == "education":
        assert res["status"] == "policy_violation", brief(res)
    assert ready_ok(srv) == 200
    assert_ok(execute(srv, "print('alive')", client_timeout=15), "alive\n")
    w = wait_pool_full(srv, 2)
    wait_for(lambda: len(descendants(srv.proc.pid)) == baseline, 10,
             f"the fork bomb's processes are gone: {descendants(srv.proc.pid)}")
    assert w["zygoteDeaths"] == 0


def test_cpu_and_wall_accounting(pool1):
    busy = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.5:\n    pass\n"
    res = execute(pool1, busy)
    assert_ok(res)
    assert 400 <= res["time"]["cpuMs"] <= 1500, res["time"]
    assert res["time"]["wallMs"] >= res["time"]["cpuMs"] * 0.9, res["time"]
    # The sandbox's construction (the fork, the page copies) is not the run's.
    res = execute(pool1, "print(1)")
    assert_ok(res)
    assert 0 <= res["time"]["cpuMs"] < 150, res["time"]
    assert 0 < res["time"]["wallMs"] < 500, res["time"]
    res = execute(pool1, "import time\ntime.sleep(0.3)\n")
    assert_ok(res)
    assert 290 <= res["time"]["wallMs"] < 1500, res["time"]
    assert res["time"]["cpuMs"] < 150, res["time"]


def test_peak_memory(pool1):
    small = execute(pool1, "print(1)")
    assert_ok(small)
    assert small["memory"]["peakKb"] > 0
    big = execute(pool1, "x = b'x' * (60 << 20)\nprint(len(x))\n")
    assert_ok(big, f"{60 << 20}\n")
    assert big["memory"]["peakKb"] >= 60 * 1024, big["memory"]
    assert big["memory"]["peakKb"] > small["memory"]["peakKb"] + 50 * 1024, (small["memory"], big["memory"])


# ---------------------------------------------------------------------------
# 8. Pool statistics
# ---------------------------------------------------------------------------


def test_pool_stats(pooln):
    slots = pooln.stats()["queue"]["slots"]
    size = slots + 1  # pooln's WARM_POOL_SIZE
    w0 = wait_pool_full(pooln, size)
    n = 8
    for i in range(n):
        assert_ok(execute(pooln, f"print({i})"), f"{i}\n")
    w1 = warm_stats(pooln)
    taken = w1["takenReady"] - w0["takenReady"]
    built = w1["builtOnDemand"] - w0["builtOnDemand"]
    assert taken >= 1 and taken + built == n, (w0, w1)
    assert w1["zygotePid"] == w0["zygotePid"] and w1["zygotes"] == w0["zygotes"]
    assert w1["failures"] == w0["failures"]
    # Refilled within a second or two.
    w2 = wait_pool_full(pooln, size, timeout=3)
    assert w2["sandboxes"] >= w0["sandboxes"] + n, (w0, w2)
    # A burst no larger than the pool is served entirely from it.
    results = []
    threads = [threading.Thread(target=lambda i=i: results.append(execute(pooln, f"print({i})")))
               for i in range(slots)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(r["stdout"] for r in results) == [f"{i}\n" for i in range(slots)]
    w3 = warm_stats(pooln)
    assert w3["takenReady"] - w2["takenReady"] == slots, (w2, w3)
    assert w3["builtOnDemand"] == w2["builtOnDemand"], (w2, w3)
    w4 = wait_pool_full(pooln, size, timeout=3)
    # The gauges say the same.
    assert pooln.sample("pyexec_warm") == 1
    assert pooln.sample("pyexec_warm_sandboxes_taken_ready") == w4["takenReady"]
    assert pooln.sample("pyexec_warm_sandboxes_built_on_demand") == w4["builtOnDemand"]
    assert pooln.sample("pyexec_warm_sandboxes_ready") == size
    assert pooln.sample("pyexec_zygotes_started") == w4["zygotes"]
    assert pooln.sample("pyexec_warm_sandbox_failures") == w4["failures"] == 0


PREIMPORT_PROBE = ("import sys\n"
                   "print(sorted(m for m in ('PIL', 'PIL.Image', 'threading', 'logging', 'hashlib', 'math', 'json',"
                   " 'unittest', 'csv') if m in sys.modules))\n")


def test_default_preimport_is_lean(pooln):
    """The default ZYGOTE_PREIMPORT (config.h) leaves out what makes every
    fork dearer (Pillow, threading's at-fork handler, hashlib): a warm
    program starts with the common modules only."""
    r = execute(pooln, PREIMPORT_PROBE)
    assert_ok(r, "['json', 'math', 'unittest']\n")


def test_preimport_is_configurable(serve, pooln, cold):
    """ZYGOTE_PREIMPORT lists what the zygote imports: a program finds
    exactly those (and their own imports) already there, and runs the
    same whether its imports were made ahead or on demand."""
    srv = serve(env={"ZYGOTE_PREIMPORT": "csv, PIL.Image", "WARM_POOL_SIZE": 1})
    r = execute(srv, PREIMPORT_PROBE)
    assert_ok(r)
    have = set(ast.literal_eval(r["stdout"]))
    # PIL.Image imports logging (which imports threading) and math.
    assert {"PIL", "PIL.Image", "csv", "logging", "threading"} <= have, have
    assert not have & {"hashlib", "json", "unittest"}, have
    image = ("from PIL import Image\nimport threading, hashlib\n"
             "im = Image.new('RGB', (3, 2), (10, 20, 30))\n"
             "print(im.size, im.getpixel((1, 1)), hashlib.sha256(b'x').hexdigest()[:8], threading.active_count())\n")
    want = "(3, 2) (10, 20, 30) 2d711642 1\n"
    for server in (srv, pooln, cold):  # imported ahead, on demand (warm), on demand (cold)
        for policy in ("education", "permissive"):
            assert_ok(execute(server, image, policy=policy), want)
    # Nothing imported ahead but the static check's own module.
    srv2 = serve(env={"ZYGOTE_PREIMPORT": "", "WARM_POOL_SIZE": 1})
    assert_ok(execute(srv2, PREIMPORT_PROBE), "[]\n")
    assert_ok(execute(srv2, "import json, math\nprint(json.dumps([math.pi]))\n"), "[3.141592653589793]\n")


def test_preimport_failure_is_logged(serve):
    """A module the zygote cannot import ahead is named in a warning, with
    python3's error; the service runs on, and a program that imports it
    gets python3's own error."""
    srv = serve(env={"ZYGOTE_PREIMPORT": "math,no_such_module_xyz,json", "WARM_POOL_SIZE": 1})
    wait_pool_full(srv, 1)
    warnings = [json.loads(line) for line in srv.log_text().splitlines()
                if line.startswith("{") and "ZYGOTE_PREIMPORT" in line]
    assert len(warnings) == 1, srv.log_text()[-2000:]
    assert warnings[0]["level"] == "warn"
    assert warnings[0]["failed"] == "no_such_module_xyz: ModuleNotFoundError: No module named 'no_such_module_xyz'"
    assert_ok(execute(srv, PREIMPORT_PROBE, policy="permissive"), "['json', 'math']\n")
    r = execute(srv, "import no_such_module_xyz\n", policy="permissive")
    assert r["status"] == "runtime_error" and "ModuleNotFoundError" in r["stderr"], brief(r)


def test_bad_preimport_stops_start_up(tmp_path):
    """A ZYGOTE_PREIMPORT that is not a list of module names stops the
    service at start, naming the key and the item."""
    p = subprocess.run([PYEXEC, "serve", "--port", "1"], env={"ZYGOTE_PREIMPORT": "math,os..path"},
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0
    assert "ZYGOTE_PREIMPORT must list module names separated by commas, got 'os..path'" in p.stderr, p.stderr


# ---------------------------------------------------------------------------
# 9. What the warm program can see and do to its sandbox
# ---------------------------------------------------------------------------


def test_warm_program_cannot_kill_its_init(pool1):
    """A sandbox lost with its zygote makes the service run the program again
    (nothing of it left the sandbox), and any other loss while the program
    runs is its own verdict; both rest on the program being unable to end
    its own init (test_init_reach.py). Signals to PID 1 from inside do
    nothing, and the program runs exactly once (one 'started' line, status
    ok)."""
    code = ("import os, signal, time\n"
            "print('started', flush=True)\n"
            "for sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGSTOP, signal.SIGINT, signal.SIGSEGV):\n"
            "    try:\n"
            "        os.kill(1, sig)\n"
            "    except OSError as e:\n"
            "        print('errno', e.errno)\n"
            "time.sleep(0.3)\n"
            "print('still here')\n")
    before = warm_stats(pool1)["sandboxes"]
    res = execute(pool1, code, policy="permissive")
    assert_ok(res)
    assert res["stdout"].count("started") == 1, brief(res)
    assert res["stdout"].rstrip().endswith("still here"), brief(res)
    # One sandbox used, none lost: at most the pool's refill after it.
    assert warm_stats(pool1)["sandboxes"] - before <= 2


def test_no_host_path_of_pyexec_in_a_warm_program(pool1):
    """The warm program is a fork of the zygote, which was exec'd from a
    sealed memfd: nothing under /proc (exe, maps, mountinfo, cmdline, ...)
    names where the host keeps pyexec."""
    code = ("import os, sys, json\n"
            "needles = sys.argv[1:]\n"
            "hits = {}\n"
            "for pid in [p for p in os.listdir('/proc') if p.isdigit()] + ['self', 'thread-self']:\n"
            "    for name in ('cmdline', 'comm', 'status', 'environ', 'mountinfo', 'cgroup', 'maps', 'exe', 'cwd', 'root'):\n"
            "        path = '/proc/%s/%s' % (pid, name)\n"
            "        try:\n"
            "            v = os.readlink(path) if name in ('exe', 'cwd', 'root') else open(path, 'rb').read().decode('latin-1')\n"
            "        except OSError:\n"
            "            continue\n"
            "        if any(n in v for n in needles):\n"
            "            hits[path] = v[:120]\n"
            "print(os.readlink('/proc/self/exe'))\n"
            "print(json.dumps(hits))\n")
    # The host paths are handed to the program only so it can look for them.
    needles = sorted({os.path.dirname(os.path.realpath(PYEXEC)), os.path.dirname(PYEXEC)})
    res = execute(pool1, code, policy="permissive", args=needles)
    assert_ok(res)
    exe, hits = res["stdout"].splitlines()
    assert exe == "/memfd:pyexec-runner (deleted)", exe
    assert json.loads(hits) == {}, hits


def test_a_zygote_that_stops_answering_is_replaced(serve):
    """A zygote that misbehaves (here: stopped, so it never answers) is
    killed after the 10 s answer timeout and replaced; meanwhile requests
    are still answered (a ready sandbox, else the cold path), none hangs."""
    srv = serve(env={"WARM_POOL_SIZE": 1})
    z = wait_pool_full(srv, 1)["zygotePid"]
    os.kill(z, signal.SIGSTOP)
    try:
        t = time.monotonic()
        for i in range(3):
            res = execute(srv, f"print({i})", client_timeout=60)
            assert_ok(res, f"{i}\n")
        assert time.monotonic() - t < 45
        w = srv.wait_state(lambda st: st["warm"]["zygotePid"] not in (z, 0, -1) and st["warm"]["zygoteDeaths"] >= 1,
                           timeout=30)["warm"]
        assert w["zygotes"] >= 2
    finally:
        try:
            os.kill(z, signal.SIGCONT)
        except ProcessLookupError:
            pass
    assert_ok(execute(srv, "print('after')"), "after\n")


def test_nothing_survives_the_service(tmp_path):
    """The parent-death chain, checked from the host: SIGKILL the service in
    the middle of a run; its zygote, every init (ready or running) and the
    running program with a child it forked are all gone within seconds."""
    srv = start(tmp_path, env={"WARM_POOL_SIZE": 2, "DEFAULT_POLICY": "permissive"})
    try:
        z = wait_pool_full(srv, 2)["zygotePid"]
        out = {}

        def long_run():
            c = srv.new_client(timeout=30)
            try:
                out["resp"] = c.execute({"code": "import os, time\nif os.fork() == 0:\n    time.sleep(9)\n"
                                                 "time.sleep(9)\n"})
            except Exception as e:  # the service dies under it
                out["error"] = e
            finally:
                c.close()

        t = threading.Thread(target=long_run, daemon=True)
        t.start()
        wait_for(lambda: srv.stats()["queue"]["active"] == 1, 5, "the long run started")
        # The running sandbox's program and its child exist.
        wait_for(lambda: len(descendants(z)) >= 2 + 2 * 2, 5, "the pool's sandboxes and the run's processes")
        victims = [z, *descendants(z)]
        srv.proc.kill()
        srv.proc.wait(10)
        wait_for(lambda: not any(alive(p) for p in victims), 10, "every process of the service's sandboxes gone")
        t.join(10)
        assert "resp" not in out or out["resp"].status != 200
    finally:
        if srv.proc.poll() is None:
            srv.proc.kill()
            srv.proc.wait(10)


# ---------------------------------------------------------------------------
# The zygote's memory on hugetlb pages (zygote-heap.c)
# ---------------------------------------------------------------------------

HUGE_PAGE_KB = 2048


def meminfo():
    with open("/proc/meminfo") as f:
        return {k: int(v.split()[0]) for k, v in (line.split(":", 1) for line in f)}


def nr_hugepages():
    with open("/proc/sys/vm/nr_hugepages") as f:
        return int(f.read())


def hugetlb_kb(pid):
    """(private, shared) hugetlb memory of pid in KiB, from its smaps."""
    priv = shared = 0
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            if line.startswith("Private_Hugetlb:"):
                priv += int(line.split()[1])
            elif line.startswith("Shared_Hugetlb:"):
                shared += int(line.split()[1])
    return priv, shared


# The program's own view: its hugetlb memory, private and shared.
OWN_HUGETLB = r'''
def own_hugetlb():
    priv = shared = 0
    for line in open("/proc/self/smaps"):
        if line.startswith("Private_Hugetlb:"):
            priv += int(line.split()[1])
        elif line.startswith("Shared_Hugetlb:"):
            shared += int(line.split()[1])
    return priv, shared
'''


def w_huge_bounded(srv):
    """Whether the service could bound each sandbox's huge pages with a
    hugetlb cgroup (else its zygote is told --huge-pages 0 and says why)."""
    return "no hugetlb cgroup can bound" not in srv.log_text()


def huge_server(serve, **env):
    """A service with the zygote's memory on huge pages: as root it reserves
    the pool itself; unprivileged it would use the host's, but only where it
    can make a hugetlb cgroup to bound each sandbox's share (zygote.c,
    huge_bounded), which an unprivileged user cannot on most hosts."""
    if os.geteuid() != 0 and meminfo()["HugePages_Free"] < 64:
        pytest.skip("no hugetlb pool with room, and only root can reserve one (vm.nr_hugepages)")
    srv = serve(env={"WARM_POOL_SIZE": 1, "ZYGOTE_HUGE_PAGES": "true", **env})
    w = wait_pool_full(srv, 1)
    if os.geteuid() != 0 and w["zygoteHugePages"] == 0:
        pytest.skip("the zygote stays on ordinary pages (no hugetlb cgroup, or no room in the pool): "
                    + srv.log_text()[-500:])
    assert w["zygoteHugePages"] > 0, srv.log_text()[-3000:]
    return srv, w


def test_zygote_memory_on_huge_pages_never_shared_with_a_sandbox(serve):
    """The zygote moves its arenas, heap and static data to 2 MiB hugetlb
    pages, and init copies every one of them into the program before it
    runs. From the host: the zygote and a ready program each hold exactly
    the zygote's pages, privately, none shared; the program's own view
    agrees; the service raised vm.nr_hugepages and gives the pages back when
    it stops."""
    before = nr_hugepages()
    srv, w = huge_server(serve)
    pages = w["zygoteHugePages"]
    z = w["zygotePid"]
    assert nr_hugepages() >= before
    assert "reserved huge pages" in srv.log_text() or before > 0
    assert hugetlb_kb(z) == (pages * HUGE_PAGE_KB, 0)
    if os.geteuid() == 0:  # a program's maps are closed to the service's user
        (init,) = children(z)
        prog, holder = program_and_holder(init)
        assert hugetlb_kb(prog) == (pages * HUGE_PAGE_KB, 0)
        assert hugetlb_kb(init) == (0, 0)  # pyexec-init: exec'd, none of the zygote's memory
    res = execute(srv, OWN_HUGETLB + "print(*own_hugetlb())\n", policy="permissive")
    assert_ok(res, f"{pages * HUGE_PAGE_KB} 0\n")
    assert srv.sample("pyexec_zygote_huge_pages") == pages
    added = nr_hugepages() - before
    stop_ok(srv)
    assert nr_hugepages() == before, f"the service added {added} pages and did not give them back"


def test_huge_pages_off_and_without_a_pool(serve):
    """ZYGOTE_HUGE_PAGES=false leaves the pool alone and the zygote on
    ordinary pages; so does a pool the service cannot fill (unprivileged),
    and the log says why. Runs are unchanged."""
    before = nr_hugepages()
    env = {"WARM_POOL_SIZE": 1}
    if os.geteuid() == 0:
        env["ZYGOTE_HUGE_PAGES"] = "false"
    elif meminfo()["HugePages_Free"] > 0:
        pytest.skip("the host has a hugetlb pool this unprivileged service may use")
    srv = serve(env=env)
    w = wait_pool_full(srv, 1)
    assert w["zygoteHugePages"] == 0
    assert hugetlb_kb(w["zygotePid"]) == (0, 0)
    assert nr_hugepages() == before
    if os.geteuid() != 0:
        assert "the zygote's memory stays on ordinary pages" in srv.log_text()
    assert_ok(execute(srv, "print(sum(range(10)))"), "45\n")


FORK_MOVES_BACK = OWN_HUGETLB + r'''
import os
before = own_hugetlb()
data = [str(i) for i in range(50000)]
kids = []
for k in range(3):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        mine = [x * 2 for x in data]  # writes all over the copied heap
        os.write(w, repr((own_hugetlb(), len(mine), mine[-1])).encode())
        os._exit(10 + k)
    os.close(w)
    kids.append((pid, r))
data.append("parent")
for k, (pid, r) in enumerate(kids):
    got = os.read(r, 1000).decode()
    assert os.waitpid(pid, 0)[1] >> 8 == 10 + k
    print(got)
print(before[1], own_hugetlb(), len(data))
'''


def test_fork_in_a_program_moves_its_huge_pages_back(serve):
    """A program's huge pages would be shared with a forked child, and each
    write would take a page from the pool: fork() first moves them back to
    ordinary pages, in the parent and so in every child. Seen from inside
    (no hugetlb left, no data lost) and from the host (the pool's free
    pages are the same before and after)."""
    srv, w = huge_server(serve)
    free_before = meminfo()["HugePages_Free"]
    res = execute(srv, FORK_MOVES_BACK, policy="permissive")
    assert_ok(res)
    lines = res["stdout"].splitlines()
    assert lines[:3] == [repr(((0, 0), 50000, "4999949999"))] * 3, lines
    assert lines[3] == "0 (0, 0) 50001", lines
    wait_pool_full(srv, 1)
    assert meminfo()["HugePages_Free"] == free_before


def take_free_huge_pages():
    """Map and touch every free huge page of the pool (the host's own
    process): a pool exhausted by someone else."""
    import mmap
    n = meminfo()["HugePages_Free"]
    if n == 0:
        return None
    m = mmap.mmap(-1, n * HUGE_PAGE_KB * 1024, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | 0x40000)
    for off in range(0, len(m), HUGE_PAGE_KB * 1024):
        m[off] = 1
    assert meminfo()["HugePages_Free"] == 0
    return m


def test_exhausted_pool_fails_builds_never_runs(serve):
    """With no free huge page left, init cannot copy the zygote's pages into
    a new sandbox: the build fails (the program is killed before it runs,
    never left sharing pages with the zygote), and every request is still
    answered correctly, on the cold path. Given the pages back, the pool
    refills."""
    srv, w = huge_server(serve)
    z = w["zygotePid"]
    hog = take_free_huge_pages()
    try:
        failures = warm_stats(srv)["failures"]
        for i in range(4):
            assert_ok(execute(srv, f"print({i} * 7)"), f"{i * 7}\n")
        wait_for(lambda: warm_stats(srv)["failures"] > failures, 10, "a sandbox build failed")
        # The zygote kept its pages and shares none; no process of a failed
        # build was left holding (and so sharing) any of them.
        assert warm_stats(srv)["zygotePid"] == z
        assert hugetlb_kb(z) == (w["zygoteHugePages"] * HUGE_PAGE_KB, 0)
        if os.geteuid() == 0:  # a program's maps are closed to the service's user
            shared = {}
            for p in descendants(z):
                try:
                    kb = hugetlb_kb(p)
                except OSError:
                    continue  # gone meanwhile
                if kb[1] or kb[0] not in (0, w["zygoteHugePages"] * HUGE_PAGE_KB):
                    shared[p] = kb
            assert shared == {}, f"processes holding part of the zygote's pages, or sharing them: {shared}"
    finally:
        if hog is not None:
            hog.close()
    wait_pool_full(srv, 1, timeout=20)
    if os.geteuid() == 0:
        (init,) = children(z)
        prog, _ = program_and_holder(init)
        assert hugetlb_kb(prog) == (w["zygoteHugePages"] * HUGE_PAGE_KB, 0)
    assert_ok(execute(srv, "print('back')"), "back\n")


@pytest.mark.parametrize("huge", ["true", "false"])
def test_init_makes_the_programs_copies(serve, huge):
    """init copies the pages a run writes (and the zygote's huge pages) into
    the stopped program (zygote-child.c), so that a ready program has taken
    almost no page faults of its own: had the copies failed, it would have
    made them itself, about 1500 faults (its minflt, from the host)."""
    if not os.path.exists(os.path.join(os.path.dirname(os.path.realpath(PYEXEC)), "pyexec-init")):
        pytest.skip("no pyexec-init beside pyexec: each init is a full copy of the zygote")
    srv = serve(env={"WARM_POOL_SIZE": 1, "ZYGOTE_HUGE_PAGES": huge})
    (init,) = children(wait_pool_full(srv, 1)["zygotePid"])
    prog, _ = program_and_holder(init)
    with open(f"/proc/{prog}/stat") as f:
        minflt = int(f.read().rsplit(")", 1)[1].split()[7])
    assert minflt < 300, f"the ready program took {minflt} page faults itself"
    assert_ok(execute(srv, "print('ok')"), "ok\n")


@pytest.mark.skipif(not PRIVILEGED, reason="the sandbox's processes are not dumpable: only root reads their /proc links")
def test_a_waiting_sandbox_holds_no_host_directory(serve):
    """A ready sandbox's init and program (the program builds the root
    after the fork) have the sandbox's root as their root and working
    directory: read from the host, /proc/PID/root and cwd name no host path
    (a detached root shows as "/"), whatever directory the service runs in."""
    srv = serve(env={"WARM_POOL_SIZE": 1})
    z = wait_pool_full(srv, 1)["zygotePid"]
    inits = children(z)
    assert len(inits) == 1, inits
    procs = inits + children(inits[0])
    assert len(procs) >= 2, procs
    for pid in procs:
        for what in ("root", "cwd"):
            target = os.readlink(f"/proc/{pid}/{what}")
            assert target in ("/", "/sandbox"), (pid, what, target)
    assert os.readlink(f"/proc/{z}/cwd") != "/", "the service's own directory, for the test to mean something"
