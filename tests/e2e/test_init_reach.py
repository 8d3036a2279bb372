"""End-to-end tests: nothing a program does reaches its sandbox's init.

init is PID 1 of the run (supervise.c's theory of operation). As root its
real and saved uid are not the program's, so the kernel refuses the
program's signals and prlimit on it; in a user namespace (the unprivileged
path) the two share the one mapped id and the seccomp policy refuses the
calls that name pid 1. init's SIGTERM handler counts only SI_USER from
outside its PID namespace, which rt_sigqueueinfo cannot forge. And a sandbox
that is lost anyway while the program runs is that program's verdict
(runtime_error): not an internal_error, not run again on another sandbox,
not counted by the circuit breaker.

Each attack runs on the cold path (a service with EXECUTION_MODE=cold, which
runs `pyexec run`'s pyexec_run) and the warm path (the zygote). The program
prints the errno each call got, renames itself (PR_SET_NAME) to a marker
and waits for SIGUSR1; meanwhile the host finds it, takes its parent as the
run's init (NSpid 1), and checks init from outside: alive, its rlimits and
scheduling as they were, its ids apart from the program's (root). Then the
host lets the program finish, and the run must end with the program's own
verdict, on one sandbox.

Runs as root and as an unprivileged user (scripts/test-unprivileged.sh).
"""
import os
import signal
import threading
import time
import uuid

import pytest

from conftest import PRIVILEGED
from test_serve import start_server

MODES = ["cold", "warm"]
THRESHOLD = 2  # BREAKER_THRESHOLD of the services below

# The program's side. argv[1] is the marker it takes as its name once its
# attack is done; it then waits (at most 60 s) for the host's SIGUSR1.
PROLOGUE = r'''
import ctypes, errno, os, resource, signal, sys, time
MARKER = sys.argv[1]
libc = ctypes.CDLL(None, use_errno=True)

def outcome(fn):
    try:
        r = fn()
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
    if isinstance(r, int) and r < 0:  # a raw libc.syscall
        return errno.errorcode.get(ctypes.get_errno(), "?")
    return "ok"

class Siginfo(ctypes.Structure):
    _fields_ = [("si_signo", ctypes.c_int), ("si_errno", ctypes.c_int), ("si_code", ctypes.c_int),
                ("pad", ctypes.c_int), ("si_pid", ctypes.c_int), ("si_uid", ctypes.c_int),
                ("rest", ctypes.c_byte * 104)]

SYS_rt_sigqueueinfo = 129
SI_QUEUE = -1

def forge_term(pid=1):
    """SIGTERM to pid, posing as a sender outside the PID namespace (si_pid 0)."""
    si = Siginfo(si_signo=signal.SIGTERM, si_code=SI_QUEUE, si_pid=0, si_uid=0)
    return libc.syscall(SYS_rt_sigqueueinfo, pid, signal.SIGTERM, ctypes.byref(si))

released = []
signal.signal(signal.SIGUSR1, lambda *a: released.append(1))

def wait_for_host():
    libc.prctl(15, MARKER.encode(), 0, 0, 0)  # PR_SET_NAME (a warm program's /proc is root's)
    deadline = time.monotonic() + 60
    while not released and time.monotonic() < deadline:
        time.sleep(0.01)
    print("released" if released else "never released", flush=True)
'''

PRLIMIT = PROLOGUE + r'''
print("prlimit", outcome(lambda: resource.prlimit(1, resource.RLIMIT_CPU, (0, 0))), flush=True)
print("prlimit-as", outcome(lambda: resource.prlimit(1, resource.RLIMIT_AS, (4096, 4096))), flush=True)
print("own", outcome(lambda: resource.prlimit(0, resource.RLIMIT_CORE, (0, 0))), flush=True)
wait_for_host()
print("done")
'''

FORGED_TERM = PROLOGUE + r'''
child = os.fork()
if child == 0:
    # Dies of a SIGTERM that init would forward to the whole run.
    time.sleep(120)
    os._exit(0)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("rt_sigqueueinfo", outcome(forge_term), flush=True)
print("self", outcome(lambda: forge_term(os.getpid())), flush=True)
wait_for_host()
pid, status = os.waitpid(child, os.WNOHANG)
print("child", "running" if pid == 0 else "ended %d" % status, flush=True)
os.kill(child, signal.SIGKILL)
os.waitpid(child, 0)
print("done")
'''

OTHERS = PROLOGUE + r'''
SYS_pidfd_open, SYS_tgkill = 434, 234
for name, fn in [
    ("kill-TERM", lambda: os.kill(1, signal.SIGTERM)),
    ("kill-STOP", lambda: os.kill(1, signal.SIGSTOP)),
    ("kill-KILL", lambda: os.kill(1, signal.SIGKILL)),
    ("kill-0", lambda: os.kill(1, 0)),
    ("kill-1<<32|1", lambda: libc.syscall(62, ctypes.c_long((1 << 32) | 1), signal.SIGTERM)),
    ("tgkill", lambda: libc.syscall(SYS_tgkill, 1, 1, signal.SIGTERM)),
    ("pidfd_open", lambda: libc.syscall(SYS_pidfd_open, 1, 0)),
    ("setpriority", lambda: os.setpriority(os.PRIO_PROCESS, 1, 19)),
    ("setpriority-user", lambda: os.setpriority(os.PRIO_USER, os.getuid(), 19)),
    ("sched_setscheduler", lambda: os.sched_setscheduler(1, os.SCHED_IDLE, os.sched_param(0))),
    ("sched_setaffinity", lambda: os.sched_setaffinity(1, {0})),
    ("oom_score_adj", lambda: open("/proc/1/oom_score_adj", "w").write("1000")),
]:
    print(name, outcome(fn), flush=True)
print("proc-1-listed", "1" in os.listdir("/proc"), flush=True)
print("own-group", os.getpgid(0) != os.getpgid(1) and os.getsid(0) != os.getsid(1), flush=True)
print("self-kill-0", outcome(lambda: os.kill(os.getpid(), 0)), flush=True)
wait_for_host()
print("done")
'''

# The run that used to end its init: RLIMIT_CPU 0 on it, then forged
# SIGTERMs to make it run until a tick kills it.
FLOOD = PROLOGUE + r'''
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("prlimit", outcome(lambda: resource.prlimit(1, resource.RLIMIT_CPU, (0, 0))), flush=True)
results, t = set(), time.monotonic()
while time.monotonic() - t < 0.5:
    results.add(outcome(forge_term))
print("rt_sigqueueinfo", ",".join(sorted(results)), flush=True)
print("done")
'''


# ---------------------------------------------------------------------------
# Services and the host's view of a run
# ---------------------------------------------------------------------------


def start(log_dir, mode, **env):
    env = {"BREAKER_THRESHOLD": THRESHOLD, "BREAKER_COOLDOWN": 60000, **env}
    if mode == "cold":
        env["EXECUTION_MODE"] = "cold"
    else:
        env.setdefault("WARM_POOL_SIZE", 2)
    return start_server(log_dir, "--rate-limit-max", "0", env=env)


@pytest.fixture(scope="module")
def services(tmp_path_factory):
    srvs = {}
    try:
        for mode in MODES:
            srvs[mode] = start(tmp_path_factory.mktemp(f"reach-{mode}"), mode)
        yield srvs
    finally:
        for srv in srvs.values():
            code = srv.stop()
            assert code == 0, f"pyexec serve exited {code}: {srv.log_text()[-3000:]}"


def execute(srv, code, args=(), timeout=90):
    c = srv.new_client(timeout=timeout)
    try:
        r = c.execute({"code": code, "args": list(args), "policy": "permissive"})
    finally:
        c.close()
    return r


def brief(doc):
    return (f"status={doc.get('status')} exit={doc.get('exitCode')} signal={doc.get('signal')} "
            f"message={doc.get('message')!r}\nstdout={doc.get('stdout')!r}\nstderr={str(doc.get('stderr'))[-1500:]!r}")


def lines(doc):
    """The program's 'name value' lines as a dict."""
    return dict(l.split(" ", 1) for l in doc["stdout"].splitlines() if " " in l)


def proc_status(pid):
    with open(f"/proc/{pid}/status") as f:
        return dict(l.rstrip("\n").split(":\t", 1) for l in f if ":\t" in l)


def proc_stat(pid):
    """Fields of /proc/pid/stat after the command: [0] is the state."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def alive(pid):
    try:
        return proc_stat(pid)[0] not in ("Z", "X")
    except OSError:
        return False


def cpu_limit(pid):
    with open(f"/proc/{pid}/limits") as f:
        for l in f:
            if l.startswith("Max cpu time"):
                return l.split()[3:5]
    raise AssertionError(f"no cpu time in /proc/{pid}/limits")


def find_marked(marker, timeout=60):
    """The host pid of the process named marker (the waiting program)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/comm") as f:
                    if f.read().strip() == marker and alive(int(d)):
                        return int(d)
            except OSError:
                pass
        time.sleep(0.02)
    raise AssertionError(f"no process named {marker} within {timeout} s")


class Run:
    """A request running in a thread, and its program as the host sees it."""

    def __init__(self, srv, code):
        self.marker = "ir" + uuid.uuid4().hex[:12]
        self.out = {}
        self.thread = threading.Thread(target=self._go, args=(srv, code), daemon=True)
        self.thread.start()

    def _go(self, srv, code):
        try:
            self.out["resp"] = execute(srv, code, [self.marker])
        except Exception as e:  # reported by result()
            self.out["error"] = e

    def program_and_init(self):
        prog = find_marked(self.marker)
        init = int(proc_status(prog)["PPid"])
        assert proc_status(init)["NSpid"].split()[-1] == "1", f"the program's parent {init} is not its init"
        return prog, init

    def result(self):
        self.thread.join(120)
        assert "error" not in self.out, self.out
        return self.out["resp"]


def sandboxes_used(srv):
    """Sandboxes runs took on the warm path (ready or built for them); 0 cold."""
    w = srv.stats().get("warm")
    return w["takenReady"] + w["builtOnDemand"] if isinstance(w, dict) else 0


def assert_service_healthy(srv):
    st = srv.stats()
    assert st["byStatus"]["internal_error"] == 0, st
    assert st["breakerOpen"] is False, st
    c = srv.new_client(timeout=10)
    try:
        assert c.get("/health/ready").status == 200
    finally:
        c.close()
    r = execute(srv, "print('innocent')")
    assert r.status == 200, r
    assert r.json()["status"] == "ok" and r.json()["stdout"] == "innocent\n", brief(r.json())


def assert_init_untouched(init, parent):
    """From the host: init runs, with the rlimits and scheduling it was
    given (those of the process it came from)."""
    assert alive(init), f"init {init} is gone"
    assert cpu_limit(init) == cpu_limit(parent), (cpu_limit(init), cpu_limit(parent))
    s, p = proc_stat(init), proc_stat(parent)
    assert s[0] != "T", f"init {init} is stopped"
    # nice (stat field 19) and policy (41), counted from the state (field 3)
    assert (s[16], s[38]) == (p[16], p[38]), f"init's nice/policy {s[16]}/{s[38]}, its parent's {p[16]}/{p[38]}"


def assert_ids_apart(prog, init):
    """As root: init's real and saved uid and gid are not the program's, its
    effective ones are (so it can signal the run, and not the reverse)."""
    pu, iu = proc_status(prog)["Uid"].split(), proc_status(init)["Uid"].split()
    pg, ig = proc_status(prog)["Gid"].split(), proc_status(init)["Gid"].split()
    if PRIVILEGED:
        assert iu[0] == iu[2] != pu[0] and iu[1] == pu[0], (iu, pu)
        assert ig[0] == ig[2] != pg[0] and ig[1] == pg[0], (ig, pg)
    else:
        assert iu == pu, (iu, pu)  # one id mapped: the seccomp policy guards init


def run_attack(srv, code):
    """Run code, check init from the host while the program waits, release
    it; (result document, lines)."""
    before = sandboxes_used(srv)
    run = Run(srv, code)
    prog, init = run.program_and_init()
    assert_init_untouched(init, int(proc_status(init)["PPid"]))
    assert_ids_apart(prog, init)
    os.kill(prog, signal.SIGUSR1)
    r = run.result()
    assert r.status == 200, r
    doc = r.json()
    assert doc["status"] == "ok", brief(doc)
    assert doc["stdout"].count("released") == 1 and doc["stdout"].endswith("done\n"), brief(doc)
    # At most one warm sandbox (none when the pool was empty and the run
    # went cold): a retry would have taken a second one.
    assert sandboxes_used(srv) - before <= 1
    return doc, lines(doc)


# ---------------------------------------------------------------------------
# The attacks
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_prlimit_on_init_refused(services, mode):
    srv = services[mode]
    doc, got = run_attack(srv, PRLIMIT)
    assert got["prlimit"] == "EPERM", brief(doc)
    assert got["prlimit-as"] == "EPERM", brief(doc)
    assert got["own"] == "ok", brief(doc)
    assert_service_healthy(srv)


@pytest.mark.parametrize("mode", MODES)
def test_forged_sigterm_to_init_refused_and_ignored(services, mode):
    srv = services[mode]
    before = sandboxes_used(srv)
    run = Run(srv, FORGED_TERM)
    prog, init = run.program_and_init()
    # From the host: init did not forward the forged SIGTERM to the run (the
    # program's child, which does not ignore it, still runs).
    kids = []
    for t in os.listdir(f"/proc/{prog}/task"):
        with open(f"/proc/{prog}/task/{t}/children") as f:
            kids += [int(k) for k in f.read().split()]
    assert len(kids) == 1 and alive(kids[0]), f"the program's child: {kids}"
    assert_init_untouched(init, int(proc_status(init)["PPid"]))
    assert_ids_apart(prog, init)
    os.kill(prog, signal.SIGUSR1)
    r = run.result()
    assert r.status == 200, r
    doc = r.json()
    assert doc["status"] == "ok", brief(doc)
    got = lines(doc)
    assert got["rt_sigqueueinfo"] == "EPERM", brief(doc)
    assert got["self"] == "ok", brief(doc)  # a program may still queue signals to itself
    assert got["child"] == "running", brief(doc)
    assert sandboxes_used(srv) - before <= 1
    assert_service_healthy(srv)


@pytest.mark.parametrize("mode", MODES)
def test_other_ways_to_init_refused(services, mode):
    """Signals (also with garbage in the pid's upper half), a pidfd, the
    scheduler, /proc/1: every one refused; init is hidden in /proc and in
    another session and process group."""
    srv = services[mode]
    doc, got = run_attack(srv, OTHERS)
    for name in ("kill-TERM", "kill-STOP", "kill-KILL", "kill-0", "kill-1<<32|1", "tgkill", "pidfd_open",
                 "setpriority", "setpriority-user", "sched_setscheduler", "sched_setaffinity"):
        assert got[name] == "EPERM", f"{name}: {got[name]}\n{brief(doc)}"
    assert got["oom_score_adj"] in ("ENOENT", "EACCES", "EPERM"), brief(doc)
    assert got["proc-1-listed"] == "False", brief(doc)
    assert got["own-group"] == "True", brief(doc)
    assert got["self-kill-0"] == "ok", brief(doc)
    assert_service_healthy(srv)


@pytest.mark.parametrize("mode", MODES)
def test_attacks_on_init_never_open_the_breaker(tmp_path, mode):
    """More attacks in a row than the breaker's threshold (RLIMIT_CPU 0 on
    init, then forged SIGTERMs to make it run into it): each is the
    program's ok, on one sandbox; innocent requests and /health/ready
    still get 200."""
    srv = start(tmp_path, mode)
    try:
        for i in range(THRESHOLD + 2):
            before = sandboxes_used(srv)
            r = execute(srv, FLOOD, ["unused"])
            assert r.status == 200, r
            doc = r.json()
            assert doc["status"] == "ok", brief(doc)
            got = lines(doc)
            assert got["prlimit"] == "EPERM" and got["rt_sigqueueinfo"] == "EPERM", brief(doc)
            assert sandboxes_used(srv) - before <= 1
        assert_service_healthy(srv)
    finally:
        code = srv.stop()
        assert code == 0, f"pyexec serve exited {code}: {srv.log_text()[-3000:]}"


# ---------------------------------------------------------------------------
# A sandbox lost while the program runs is the program's verdict
# ---------------------------------------------------------------------------


LOST = PROLOGUE + r'''
print("started", flush=True)
wait_for_host()
print("never here")
'''


@pytest.mark.parametrize("mode", MODES)
def test_sandbox_lost_while_running_is_the_programs_verdict(tmp_path, mode):
    """init killed from the host while the program runs (what a program
    that reached its init would do): runtime_error saying so, the program
    ran once (no retry on another sandbox), and more of them than the
    breaker's threshold leave the service ready."""
    srv = start(tmp_path, mode)
    try:
        for i in range(THRESHOLD + 1):
            before = sandboxes_used(srv)
            run = Run(srv, LOST)
            prog, init = run.program_and_init()
            os.kill(init, signal.SIGKILL)
            r = run.result()
            assert r.status == 200, r
            doc = r.json()
            assert doc["status"] == "runtime_error", brief(doc)
            assert "init was killed" in doc["message"], brief(doc)
            # Run once: run again, it would have printed "started" twice,
            # or waited for a SIGUSR1 that never comes.
            assert doc["stdout"] == "started\n", brief(doc)
            assert sandboxes_used(srv) - before <= 1
        assert srv.stats()["byStatus"]["runtime_error"] == THRESHOLD + 1
        assert_service_healthy(srv)
    finally:
        code = srv.stop()
        assert code == 0, f"pyexec serve exited {code}: {srv.log_text()[-3000:]}"
