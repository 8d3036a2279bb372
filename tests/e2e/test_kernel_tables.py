"""Kernel tables that outlive a run or are shared beyond it.

Some kernel objects a program can make without privileges are not confined
to its sandbox: IPv6 flow labels sit in one host-wide table (4096 entries
for every network namespace together, ENOBUFS for unprivileged users once
3072 are taken) and linger up to 150 s after their socket, in a network
namespace that the warm path as root reuses for later runs (zygote.c);
inotify instances and queued signals are counted per host uid, which on
the unprivileged path is the service's for every run. The seccomp policy
refuses flow labels and inotify (seccomp-policy.c); RLIMIT_SIGPENDING
bounds a run's queued signals (rlimit.c). Each test looks from the host: at the flow labels of
the sandboxes' namespaces (root: through their processes' /proc), at what
an unprivileged host user can still do while a run tries to take
everything, and at what a later run in a reused namespace finds. Cold and
warm, root and unprivileged (scripts/test-unprivileged.sh).
"""
import ctypes
import errno
import json
import os
import subprocess
import threading
import time

import pytest

from conftest import PRIVILEGED
from test_serve import serving, start_server

# The flow label a run tries to leave behind (20 bits).
MARKER = 0xABCDE
PYTHON = "/usr/bin/python3"

# A program that tries to leave a flow label in its network namespace,
# shared with any socket there (IPV6_FL_S_ANY) and lingering 150 s, joins
# it from a second socket, asks the manager about it, turns on
# IPV6_FLOWINFO_SEND; with fill, it then takes as many labels as the host's
# table gives an unprivileged user. It prints the errno of each attempt (0:
# it worked) and what its namespace's table shows, then holds everything
# for `hold` seconds so the host can look.
ATTACK = r'''
import json, os, socket, struct, time
def req(label, create, linger=150):
    return struct.pack('16sIBBHHHI', socket.inet_pton(socket.AF_INET6, '::1'), socket.htonl(label),
                       0, 255, 1 if create else 0, linger, linger, 0)
def attempt(f):
    try:
        f()
        return 0
    except OSError as e:
        return e.errno
out = {}
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
j = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
out['create'] = attempt(lambda: s.setsockopt(socket.IPPROTO_IPV6, 32, req(%(label)d, True)))
out['join'] = attempt(lambda: j.setsockopt(socket.IPPROTO_IPV6, 32, req(%(label)d, False)))
out['get'] = attempt(lambda: s.getsockopt(socket.IPPROTO_IPV6, 32, 32))
out['flowinfo_send'] = attempt(lambda: s.setsockopt(socket.IPPROTO_IPV6, 33, 1))
out['filled'] = 0
if %(fill)d:
    # One label per socket, closed at once: the label stays (linger 6 s).
    for i in range(3200):
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as k:
            e = attempt(lambda: k.setsockopt(socket.IPPROTO_IPV6, 32, req(0x10000 + i, True, 6)))
        if e:
            out['fill_errno'] = e
            break
        out['filled'] += 1
with open('/proc/net/ip6_flowlabel') as f:
    rows = f.read().splitlines()[1:]
out['labels'], out['rows'] = len(rows), rows[:3]
out['net'] = os.readlink('/proc/self/ns/net')
print(json.dumps(out), flush=True)
time.sleep(%(hold)s)
'''

# A later run: what its namespace's table holds when it starts, and whether
# it can join the marker label.
LATER = r'''
import json, os, socket, struct
with open('/proc/net/ip6_flowlabel') as f:
    rows = f.read().splitlines()[1:]
r = struct.pack('16sIBBHHHI', socket.inet_pton(socket.AF_INET6, '::1'), socket.htonl(%(label)d), 0, 255, 0, 0, 0, 0)
try:
    socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).setsockopt(socket.IPPROTO_IPV6, 32, r)
    join = 0
except OSError as e:
    join = e.errno
print(json.dumps({'net': os.readlink('/proc/self/ns/net'), 'labels': len(rows), 'rows': rows[:3], 'join': join}))
'''

# An unprivileged host user makes one flow label, in a network namespace of
# its own so that nothing of it stays; prints the errno (0: made).
PROBE = r'''
import socket, struct
r = struct.pack('16sIBBHHHI', socket.inet_pton(socket.AF_INET6, '::1'), socket.htonl(0x12345), 0, 255, 1, 6, 6, 0)
try:
    socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).setsockopt(socket.IPPROTO_IPV6, 32, r)
    print(0)
except OSError as e:
    print(e.errno)
'''


def attack(label=MARKER, fill=False, hold=0):
    return ATTACK % {"label": label, "fill": int(fill), "hold": hold}


def later(label=MARKER):
    return LATER % {"label": label}


def start(log_dir, *flags, env=None, **kw):
    return start_server(log_dir, "--rate-limit-max", "0", *flags, env=env, **kw)


@pytest.fixture
def serve(tmp_path):
    yield from serving(tmp_path, start)


# Cold: a fresh network namespace per run. Warm: as root, namespaces from
# the pool, reused run after run (two sandboxes ready, two runs at once).
PATHS = {
    "cold": (("--cold",), {}),
    "warm": ((), {"WARM_POOL_SIZE": 2, "MAX_CONCURRENT_EXECUTIONS": 2}),
}


def execute(srv, code, timeout=60):
    c = srv.new_client(timeout=timeout)
    try:
        r = c.execute({"code": code, "policy": "permissive"})
    finally:
        c.close()
    assert r.status == 200, r
    return r.json()


def program_output(res):
    assert res["status"] == "ok", f"{res.get('status')} {res.get('message')!r}\n{res.get('stderr', '')[-2000:]}"
    return json.loads(res["stdout"])


def descendants(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{t}/children") as f:
                    kids = [int(x) for x in f.read().split()]
                out += kids
                todo += kids
        except OSError:
            pass
    return out


HOST_NET = os.readlink("/proc/self/ns/net")


def host_flow_labels(root_pid):
    """From the host (root): {network namespace: its flow label rows} of
    every process under root_pid outside the host's namespace."""
    found = {}
    for pid in descendants(root_pid):
        try:
            net = os.readlink(f"/proc/{pid}/ns/net")
            if net == HOST_NET or net in found:
                continue
            with open(f"/proc/{pid}/net/ip6_flowlabel") as f:
                found[net] = f.read().splitlines()[1:]
        except OSError:
            pass  # gone meanwhile
    return found


def labelled(tables):
    return {net: rows for net, rows in tables.items() if rows}


def in_background(fn, *args):
    box = {}

    def target():
        try:
            box["result"] = fn(*args)
        except BaseException as e:  # reported by the caller
            box["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    return t, box


def joined(t, box, timeout=90):
    t.join(timeout)
    assert not t.is_alive(), "request did not finish"
    if "error" in box:
        raise box["error"]
    return box["result"]


def probe_flow_label():
    """An unprivileged host user's attempt at one flow label: its errno."""
    if PRIVILEGED:
        cmd = ["unshare", "-n", "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", PYTHON, "-c", PROBE]
    else:
        cmd = ["unshare", "-rn", PYTHON, "-c", PROBE]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30, cwd="/")
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    return int(p.stdout)


@pytest.mark.parametrize("path", sorted(PATHS))
def test_flow_label_denied_and_never_seen_by_a_later_run(serve, path):
    """A run's attempts at a lingering, shared flow label get EPERM. From
    the host (root), while each run holds what it made and afterwards in
    the namespaces of the sandboxes waiting for the next runs (on the warm
    path, namespaces runs have used), no label is there; later runs, in
    the same reused namespaces, find an empty table and nothing to join."""
    flags, env = PATHS[path]
    srv = serve(*flags, env=env)
    root = srv.proc.pid
    seen_during, attack_nets, outs = {}, set(), []
    for _ in range(4):
        t, box = in_background(execute, srv, attack(hold=1.5))
        while t.is_alive():
            if PRIVILEGED:
                for net, rows in labelled(host_flow_labels(root)).items():
                    seen_during.setdefault(net, rows)
            time.sleep(0.05)
        out = program_output(joined(t, box))
        attack_nets.add(out["net"])
        outs.append(out)

    if PRIVILEGED:
        # The sandboxes now waiting (warm) sit in namespaces the runs above
        # used; seen from the host, they hold no label.
        time.sleep(0.5)
        after = labelled(host_flow_labels(root))
        assert seen_during == {}, f"flow labels in a sandbox's namespace during a run: {seen_during}"
        assert after == {}, f"flow labels left in the sandboxes' namespaces: {after}"

    laters = [program_output(execute(srv, later())) for _ in range(6)]
    for res in laters:
        assert res["rows"] == [], f"a later run finds flow labels of an earlier one: {res}"
        assert res["join"] == errno.EPERM, res
    for out in outs:
        assert out["rows"] == [], out
        for what in ("create", "join", "get", "flowinfo_send"):
            assert out[what] == errno.EPERM, f"{what}: {out}"

    w = srv.stats().get("warm")
    if path == "warm" and PRIVILEGED:
        # The namespaces were reused: the later runs ran where the attacks did.
        assert w["networkNamespaces"]["reused"] >= 6, w
        assert attack_nets & {res["net"] for res in laters}, (attack_nets, laters)


@pytest.mark.parametrize("path", sorted(PATHS))
def test_flow_label_table_not_exhausted_by_a_run(serve, path):
    """A run trying to take every flow label the host's table gives an
    unprivileged user gets none; meanwhile and afterwards an unprivileged
    host user, in a namespace of its own, still makes one."""
    flags, env = PATHS[path]
    srv = serve(*flags, env=env)
    assert probe_flow_label() == 0, "the host's flow label table is full before the test"
    t, box = in_background(execute, srv, attack(fill=True, hold=3))
    probes = []
    while t.is_alive():
        probes.append(probe_flow_label())
        time.sleep(0.1)
    res = joined(t, box)
    probes.append(probe_flow_label())
    refused = [p for p in probes if p != 0]
    assert refused == [], f"an unprivileged host user refused a flow label during a run: {refused} of {len(probes)}"
    out = program_output(res)
    assert out["filled"] == 0 and out.get("fill_errno") == errno.EPERM, out


def test_flow_label_denied_cli(run):
    """`pyexec run` (cold): EPERM, and the run's namespace shows no label."""
    out = program_output(run(attack(), "--policy", "permissive"))
    assert out["rows"] == [], out
    for what in ("create", "join", "get", "flowinfo_send"):
        assert out[what] == errno.EPERM, f"{what}: {out}"


# inotify instances are counted per host uid: a run tries to take as many as
# it can, and holds them.
INOTIFY = r'''
import ctypes, json, os, time
libc = ctypes.CDLL(None, use_errno=True)
fds, err = [], 0
for i in range(%(n)d):
    fd = libc.inotify_init1(0o2000000)
    if fd < 0:
        err = ctypes.get_errno()
        break
    fds.append(fd)
print(json.dumps({'made': len(fds), 'errno': err, 'fanotify': libc.fanotify_init(0, 0) < 0 and ctypes.get_errno()}),
      flush=True)
time.sleep(%(hold)s)
'''


def inotify_fds(root_pid):
    """From the host (root): inotify instances held by processes under root_pid."""
    n = 0
    for pid in descendants(root_pid):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:inotify":
                    n += 1
        except OSError:
            pass
    return n


def host_inotify_works():
    """Whether this host user (on the unprivileged path, the service's and
    every run's uid) can still make an inotify instance."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.inotify_init1(0o2000000)
    if fd < 0:
        return ctypes.get_errno()
    os.close(fd)
    return 0


@pytest.mark.parametrize("path", sorted(PATHS))
def test_inotify_quota_not_taken_by_a_run(serve, path):
    """inotify and fanotify get EPERM in a run. From the host, while the
    run tries to take the uid's every instance (fs.inotify.max_user_instances)
    and holds them: root sees none held by the sandbox's processes; the
    unprivileged service's user still makes one."""
    flags, env = PATHS[path]
    srv = serve(*flags, env=env)
    assert host_inotify_works() == 0
    t, box = in_background(execute, srv, INOTIFY % {"n": 200, "hold": 2})
    held, host = 0, []
    while t.is_alive():
        if PRIVILEGED:
            held = max(held, inotify_fds(srv.proc.pid))
        else:
            host.append(host_inotify_works())
        time.sleep(0.1)
    out = program_output(joined(t, box))
    assert held == 0, f"the sandbox held {held} inotify instances"
    assert [e for e in host if e] == [], f"the service's user could not make an inotify instance: {host}"
    assert out == {"made": 0, "errno": errno.EPERM, "fanotify": errno.EPERM}, out


# Queued signals are counted per host user: a run queues real-time signals
# to itself until the kernel refuses, and holds them.
SIGQUEUE = r'''
import ctypes, json, os, signal, time
libc = ctypes.CDLL(None, use_errno=True)
class sigval(ctypes.Union):
    _fields_ = [('i', ctypes.c_int), ('p', ctypes.c_void_p)]
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGRTMIN})
n, err = 0, 0
while n < 200000:
    if libc.sigqueue(os.getpid(), signal.SIGRTMIN, sigval(1)) != 0:
        err = ctypes.get_errno()
        break
    n += 1
print(json.dumps({'queued': n, 'errno': err}), flush=True)
time.sleep(%(hold)s)
'''

# The host user queues one signal to itself: the errno (0: queued).
SIGPROBE = r'''
import ctypes, os, signal
libc = ctypes.CDLL(None, use_errno=True)
class sigval(ctypes.Union):
    _fields_ = [('i', ctypes.c_int), ('p', ctypes.c_void_p)]
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGRTMIN})
print(0 if libc.sigqueue(os.getpid(), signal.SIGRTMIN, sigval(1)) == 0 else ctypes.get_errno())
'''


def host_sigqueue_works():
    """Whether this host user (on the unprivileged path, the service's and
    every run's uid) can still queue a signal: its errno."""
    p = subprocess.run([PYTHON, "-c", SIGPROBE], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    return int(p.stdout)


def queued_signals(root_pid):
    """From the host (root): the largest per-user count of queued signals
    (SigQ) among processes under root_pid outside the host's namespaces."""
    most = 0
    for pid in descendants(root_pid):
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("SigQ:"):
                        most = max(most, int(line.split()[1].split("/")[0]))
        except OSError:
            pass
    return most


@pytest.mark.parametrize("path", sorted(PATHS))
def test_queued_signals_bounded_per_run(serve, path):
    """A run queues at most RLIMIT_SIGPENDING (256) signals, then EAGAIN.
    From the host while it holds them: root sees at most that many queued
    for the sandbox's user; the unprivileged service's user still queues
    one of its own."""
    flags, env = PATHS[path]
    srv = serve(*flags, env=env)
    assert host_sigqueue_works() == 0
    t, box = in_background(execute, srv, SIGQUEUE % {"hold": 2})
    most, host = 0, []
    while t.is_alive():
        if PRIVILEGED:
            most = max(most, queued_signals(srv.proc.pid))
        else:
            host.append(host_sigqueue_works())
        time.sleep(0.1)
    out = program_output(joined(t, box))
    assert most <= 256, f"the sandbox's user had {most} signals queued"
    assert [e for e in host if e] == [], f"the service's user could not queue a signal: {host}"
    assert out["errno"] == errno.EAGAIN and out["queued"] <= 256, out


# System V IPC objects and a POSIX message queue, left behind on purpose;
# what the IPC namespace held when the run started.
IPC_LEFTOVERS = r'''
import ctypes, json, os
libc = ctypes.CDLL(None, use_errno=True)
def rows(name):
    with open('/proc/sysvipc/' + name) as f:
        return f.read().splitlines()[1:]
before = {n: rows(n) for n in ('shm', 'msg', 'sem')}
made = [libc.shmget(0x5059, 4096, 0o1666), libc.msgget(0x5059, 0o1666), libc.semget(0x5059, 1, 0o1666)]
libc.mq_open.restype = ctypes.c_int
mq = libc.mq_open(b'/pyexec-left', 0o102, 0o600, None)
print(json.dumps({'ipc': os.readlink('/proc/self/ns/ipc'), 'before': before, 'made': made,
                  'mq': ctypes.get_errno() if mq < 0 else 0}))
'''


def host_ipc_keys():
    keys = set()
    for name in ("shm", "msg", "sem"):
        with open(f"/proc/sysvipc/{name}") as f:
            keys |= {int(line.split()[0]) for line in f.read().splitlines()[1:]}
    return keys


@pytest.mark.parametrize("path", sorted(PATHS))
def test_ipc_objects_stay_in_the_run(serve, path):
    """Each run has an IPC namespace of its own on every path: the System V
    objects a run leaves are gone for the next runs, and never in the
    host's; a POSIX message queue is refused (RLIMIT_MSGQUEUE 0)."""
    flags, env = PATHS[path]
    srv = serve(*flags, env=env)
    host_ipc = os.readlink("/proc/self/ns/ipc")
    assert 0x5059 not in host_ipc_keys(), "the host already has an object with the test's key"
    seen = []
    for _ in range(6):
        out = program_output(execute(srv, IPC_LEFTOVERS))
        assert out["before"] == {"shm": [], "msg": [], "sem": []}, f"a run found an earlier run's objects: {out}"
        assert all(i >= 0 for i in out["made"]), out
        assert out["mq"] == errno.EMFILE, out
        assert out["ipc"] != host_ipc, out
        seen.append(out["ipc"])
    assert 0x5059 not in host_ipc_keys(), "a run's object is in the host's IPC namespace"
    if PRIVILEGED:
        # Every process of a sandbox (its own PID namespace: not the
        # zygote) is outside the host's IPC namespace.
        host_pid = os.readlink("/proc/self/ns/pid")
        for pid in descendants(srv.proc.pid):
            try:
                if os.readlink(f"/proc/{pid}/ns/pid") != host_pid:
                    assert os.readlink(f"/proc/{pid}/ns/ipc") != host_ipc, f"sandbox process {pid} in the host's IPC namespace"
            except FileNotFoundError:
                pass
