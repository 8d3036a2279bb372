"""The science policy: education with numpy, matplotlib and pandas (policy.c),
on the cold path (`pyexec run --policy science`) and the warm one (the
service's zygote, with and without the stack imported ahead).

- the stack works: numpy, pandas, a matplotlib figure saved to a buffer on
  the Agg backend, with nothing on stderr;
- education still refuses numpy, with its usual message;
- science keeps education's refusals: socket, subprocess and ctypes by name,
  and by event or wrapper when reached through the modules the stack loads
  for itself (pandas loads ctypes, matplotlib subprocess and
  _posixsubprocess), checked from the host where there is a host side;
- numerical libraries run one thread (the sandbox's environment);
- a module a policy allows but the system lacks is said to be not
  installed, not refused.

Runs as root and unprivileged (scripts/test-unprivileged.sh).
"""
import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from conftest import PRIVILEGED, Listener, host_pids_matching
from test_policy import brief, new_marker, out_lines, refused_import, refused_op
from test_warm import execute, start, stop_ok, wait_pool_full

SCI = ("--policy", "science")
EDU = ("--policy", "education")

pytestmark = pytest.mark.skipif(
    not all(Path("/usr/lib/python3/dist-packages", m).is_dir() for m in ("numpy", "pandas", "matplotlib")),
    reason="python3-numpy, python3-pandas and python3-matplotlib are not installed (scripts/deps.sh)")

# The stack's address space passes 128 MB: under RLIMIT_AS (no cgroup, as
# unprivileged) matplotlib's Agg extension fails to map at the default.
MEMORY = 512
SERVICE = {"POLICIES": "education,permissive,science", "MEMORY_LIMIT": MEMORY}
# What the zygote may import of the stack ahead of every warm run
# (matplotlib writes its font cache at import: not in the zygote).
PREIMPORT_STACK = "math,random,re,json,numpy,pandas"

STACK = """\
import io
import numpy as np
import pandas as pd
import matplotlib
import matplotlib.pyplot as plt
print(np.arange(3).sum(), np.linalg.det(np.array([[2.0, 0.0], [0.0, 3.0]])).round(6))
df = pd.DataFrame({"a": [1, 2, 3, 4], "b": [1.5, 2.5, 3.5, 4.5]})
print(df.groupby(df.a % 2).b.sum().to_dict(), df.b.mean())
fig, ax = plt.subplots()
ax.plot(df.a, df.b)
buf = io.BytesIO()
fig.savefig(buf, format="png")
print(matplotlib.get_backend(), buf.getvalue()[:8] == b"\\x89PNG\\r\\n\\x1a\\n", len(buf.getvalue()) > 1000)
"""
STACK_OUT = "3 6.0\n{0: 7.0, 1: 5.0} 3.0\nagg True True\n"

# Threads of the process after numpy has started its BLAS, and the
# environment that decides them.
THREADS = """\
import os
import numpy as np
np.dot(np.ones((64, 64)), np.ones((64, 64)))
names = ["OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS", "MPLBACKEND",
         "MPLCONFIGDIR"]
print([os.environ.get(n) for n in names])
print([l.split()[1] for l in open("/proc/self/status") if l.startswith("Threads:")][0])
"""
THREADS_OUT = "['1', '1', '1', '1', 'Agg', '/tmp/matplotlib']\n1\n"

# The routes to a process, the network and native code that the stack's own
# imports put within the program's reach; argv: a marker, a host port.
REACHED = r"""
import os, sys
import pandas, matplotlib
marker, port = sys.argv[1], int(sys.argv[2])
loaded = {m: m in sys.modules for m in ("ctypes", "subprocess", "_posixsubprocess", "socket")}
print(loaded)
sp = sys.modules["subprocess"]
ct = pandas.errors.ctypes
argv = [b"/bin/sh", b"-c", b"sleep 30 # " + marker.encode()]
def fork_exec(fe):
    r, w = os.pipe()
    er, ew = os.pipe()
    return fe(argv, (argv[0],), True, (w,), None, None, -1, -1, -1, w, -1, -1, er, ew, True, False, -1,
              None, None, None, -1, None, False)
routes = [
    ("popen", lambda: sp.Popen(["/bin/sh", "-c", "sleep 30 # " + marker])),
    ("fork_exec", lambda: fork_exec(sys.modules["_posixsubprocess"].fork_exec)),
    ("subprocess._fork_exec", lambda: fork_exec(sp._fork_exec)),
    ("cdll", lambda: ct.CDLL("libc.so.6")),
    ("dlsym", lambda: ct.pythonapi.Py_GetVersion),
]
if "socket" in sys.modules:
    so = sys.modules["socket"]
    routes.append(("socket", lambda: so.socket(so.AF_INET, so.SOCK_STREAM).connect(("127.0.0.1", port))))
for name, f in routes:
    try:
        f()
        print(name, "DONE", flush=True)
    except PermissionError as e:
        print(name, type(e).__name__, e, flush=True)
"""


def reached_expected(policy, socket_loaded):
    process = refused_op("starting a process", "subprocess.Popen", policy)
    fork_exec = refused_op("starting a process", "_posixsubprocess.fork_exec", policy)
    native = "calling native code through ctypes"
    lines = [
        "popen PolicyPermissionError " + process,
        "fork_exec PolicyPermissionError " + fork_exec,
        "subprocess._fork_exec PolicyPermissionError " + fork_exec,
        "cdll PolicyPermissionError " + refused_op(native, "ctypes.dlopen", policy),
        "dlsym PolicyPermissionError " + refused_op(native, "ctypes.dlsym", policy),
    ]
    if socket_loaded:
        lines.append("socket PolicyPermissionError " + refused_op("network access", "socket.__new__", policy))
    return lines


def check_reached(res, marker, listener, policy="science"):
    lines = out_lines(res)
    loaded = eval(lines[0])  # a dict of literals, printed by the program
    assert loaded["ctypes"] and loaded["subprocess"] and loaded["_posixsubprocess"], lines
    assert lines[1:] == reached_expected(policy, loaded["socket"]), brief(res)
    time.sleep(0.2)
    assert listener.accepted == []
    assert host_pids_matching(marker) == []


# ---- the cold path ------------------------------------------------------------


def test_stack_works_cold(run):
    res = run(STACK, *SCI, "--memory", MEMORY)
    assert res["status"] == "ok", brief(res)
    assert res["stdout"] == STACK_OUT, brief(res)
    assert res["stderr"] == "", brief(res)


def test_numerical_libraries_run_one_thread_cold(run):
    res = run(THREADS, *SCI, "--memory", MEMORY)
    assert res["status"] == "ok" and res["stdout"] == THREADS_OUT, brief(res)


def test_education_still_refuses_numpy(run):
    res = run("import numpy as np\nprint(np.arange(3).sum())\n", *EDU)
    assert res["status"] == "policy_violation", brief(res)
    assert res["message"] == refused_import("numpy") + " (main.py, line 1)", brief(res)
    assert res["stdout"] == ""


@pytest.mark.parametrize("module", ["socket", "subprocess", "ctypes", "_posixsubprocess", "importlib"])
def test_science_refuses_what_education_refuses_by_name(run, module):
    """A literal import is refused before anything runs; a computed one,
    after the stack is imported (and has loaded the module itself), at run
    time."""
    res = run(f"import numpy\nimport {module}\n", *SCI, "--memory", MEMORY)
    assert res["status"] == "policy_violation", brief(res)
    assert res["message"] == refused_import(module, "science") + " (main.py, line 2)", brief(res)
    res = run(f"import pandas, matplotlib\nprint('before', flush=True)\n__import__('' + {module!r})\n", *SCI,
              "--memory", MEMORY)
    assert res["status"] == "policy_violation", brief(res)
    assert res["message"] == refused_import(module, "science") + " (main.py, line 3)", brief(res)
    assert res["stdout"] == "before\n"


def test_modules_the_stack_loads_are_refused_by_event_cold(run):
    """pandas loads ctypes and matplotlib subprocess for themselves: neither
    starts a process (seen from the host: no process carries the marker)
    nor loads or calls native code, nor opens a socket."""
    marker = new_marker("sci")
    listener = Listener(2, "127.0.0.1")  # AF_INET
    try:
        res = run(REACHED, *SCI, "--memory", MEMORY, "--arg", marker, "--arg", listener.port)
        check_reached(res, marker, listener)
    finally:
        listener.close()


# ---- the warm path --------------------------------------------------------------


@pytest.fixture(scope="module", params=["plain", "preimport"])
def warm(request, tmp_path_factory):
    """A warm service offering science; with "preimport" its zygote has
    imported the stack ahead."""
    env = dict(SERVICE)
    if request.param == "preimport":
        env["ZYGOTE_PREIMPORT"] = PREIMPORT_STACK
    srv = start(tmp_path_factory.mktemp("science"), env=env)
    yield srv
    stop_ok(srv)


def test_stack_works_warm(warm):
    res = execute(warm, STACK, policy="science", memoryLimit=MEMORY)
    assert res["status"] == "ok", brief(res)
    assert res["stdout"] == STACK_OUT, brief(res)
    assert res["stderr"] == "", brief(res)


def test_numerical_libraries_run_one_thread_warm(warm):
    res = execute(warm, THREADS, policy="science", memoryLimit=MEMORY)
    assert res["status"] == "ok" and res["stdout"] == THREADS_OUT, brief(res)


def test_education_still_refuses_numpy_warm(warm):
    """Also where the zygote has numpy imported: the import is checked
    against the allowlist even for a module already loaded."""
    res = execute(warm, "import numpy as np\nprint(np.arange(3).sum())\n")
    assert res["status"] == "policy_violation", brief(res)
    assert res["message"] == refused_import("numpy") + " (main.py, line 1)", brief(res)
    res = execute(warm, "import sys\nm = __import__('num' + 'py')\nprint('loaded')\n")
    assert res["status"] == "policy_violation", brief(res)
    assert res["message"] == refused_import("numpy") + " (main.py, line 2)", brief(res)
    assert res["stdout"] == ""


def test_modules_the_stack_loads_are_refused_by_event_warm(warm):
    marker = new_marker("sciw")
    listener = Listener(2, "127.0.0.1")
    try:
        res = execute(warm, REACHED, policy="science", memoryLimit=MEMORY, args=[marker, str(listener.port)])
        check_reached(res, marker, listener)
    finally:
        listener.close()


# ---- allowed, but not installed ----------------------------------------------


@pytest.fixture(scope="module", params=["warm", "cold"])
def ghost(request, tmp_path_factory):
    """A service with a policy that allows a module no system has."""
    env = {"POLICIES": "education,ghost", "POLICY_GHOST": "base=education; allow=pyexec_absent"}
    srv = start(tmp_path_factory.mktemp("ghost"), *(["--cold"] if request.param == "cold" else []), env=env)
    yield srv
    stop_ok(srv)


def test_allowed_module_that_is_missing_is_not_installed(ghost):
    message = "module 'pyexec_absent' is allowed by policy 'ghost' but is not installed"
    for code, line in (("import pyexec_absent\n", 1), ("import os\nimport pyexec_absent.sub\n", 2)):
        res = execute(ghost, code, policy="ghost")
        assert res["status"] == "runtime_error", brief(res)
        assert res["stderr"].rstrip("\n").splitlines()[-1] == f"ModuleNotFoundError: {message}", brief(res)
        assert f'File "/sandbox/main.py", line {line}' in res["stderr"], brief(res)
    # Still python3's exception: a program that catches it sees its name.
    res = execute(ghost, "try:\n    import pyexec_absent\nexcept ModuleNotFoundError as e:\n    print(e.name)\n",
                  policy="ghost")
    assert res["status"] == "ok" and res["stdout"] == "pyexec_absent\n", brief(res)
    # A module the policy does not allow is refused before anything runs.
    res = execute(ghost, "import pyexec_absent_too\n", policy="ghost")
    assert res["status"] == "policy_violation", brief(res)
    assert res["message"] == refused_import("pyexec_absent_too", "ghost") + " (main.py, line 1)", brief(res)


def test_the_wrapped_fork_exec_holds_no_original(run):
    """The wrapper of _posixsubprocess.fork_exec keeps the original in C:
    its __self__ (where a builtin method's bound object is) is None, so a
    program that reaches the wrapper does not reach the real function."""
    res = run("import sys, matplotlib\nm = sys.modules['_posixsubprocess']\nprint(m.fork_exec.__self__)\n",
              *SCI, "--memory", str(MEMORY))
    assert res["status"] == "ok" and res["stdout"] == "None\n", res



@pytest.mark.skipif(not PRIVILEGED, reason="puts an overlay on the service's /tmp in a mount namespace: needs root")
def test_zygote_preimport_writes_nothing_on_the_host(tmp_path):
    """The zygote imports on the host's file system, as the service's user:
    with the stack pre-imported and runs that use all of it (matplotlib's
    font cache included), neither the service's /tmp nor its home gains an
    entry. The service sees the host's /tmp through an overlay whose upper
    layer takes every write, so only the service's own writes show there,
    whatever else the machine does. What the runs write stays in their
    sandboxes."""
    home = tmp_path / "home"
    home.mkdir()
    layers = Path(tempfile.mkdtemp(prefix="pyexec-test-overlay-", dir="/dev/shm"))
    (layers / "upper").mkdir()
    (layers / "work").mkdir()
    overlay_tmp = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                   'mount -t overlay overlay -o "lowerdir=/tmp,upperdir=$0/upper,workdir=$0/work" /tmp && exec "$@"',
                   layers]
    try:
        srv = start(tmp_path, env={**SERVICE, "ZYGOTE_PREIMPORT": PREIMPORT_STACK, "HOME": home, "WARM_POOL_SIZE": 2},
                    wrapper=overlay_tmp)
        try:
            for _ in range(2):
                res = execute(srv, STACK, policy="science", memoryLimit=MEMORY)
                assert res["status"] == "ok", brief(res)
            wait_pool_full(srv, 2)
        finally:
            stop_ok(srv)
        assert sorted(p.name for p in (layers / "upper").iterdir()) == []
        assert list(home.iterdir()) == []
    finally:
        shutil.rmtree(layers)
