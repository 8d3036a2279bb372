"""Policy tests: `pyexec run --policy education|permissive` (runner.c, policy.c).

The education policy is a layer inside the program's interpreter (a PEP 578
audit hook and a static check of the imports); the kernel sandbox stays the
boundary. So every refused category is tested twice:

- under --policy education: refused by the policy, with the exact status,
  the exact message (module or audit event, policy name, file and line) and
  nothing of the refused action happening;
- under --policy permissive (no policy layer): the same action is allowed by
  Python and still contained by the kernel, checked FROM THE HOST SIDE where
  it has a target there (the host file unchanged, the host listener that saw
  nothing, no process left), with the exact errno the kernel gave.

Programs run under education import only what an education program can on
the cold path (built-in modules and those already loaded: os, sys, io, ...):
see the xfail tests below for what the product gets wrong about the rest.

Runs as root and unprivileged (scripts/test-unprivileged.sh); host paths the
tests need are under tmp_path.
"""
import ast
import errno
import json
import os
import socket
import subprocess
import time
import traceback
import uuid
from pathlib import Path

import pytest

from conftest import Listener, host_pids_matching, pyexec

EDU = ("--policy", "education")
PERM = ("--policy", "permissive")
SANDBOX = "/sandbox"

# Where Debian's Pillow lives on the host (the sandbox binds the host's /usr).
PIL_DIR = Path("/usr/lib/python3/dist-packages/PIL")


# ---- helpers ---------------------------------------------------------------


def new_marker(tag="m"):
    """A string unique to one test, safe in file names and argv."""
    return f"pyexec-policy-{tag}-{uuid.uuid4().hex}"


def brief(res):
    """A result, short enough to read in an assertion message."""
    return (f"status={res.get('status')} signal={res.get('signal')} exit={res.get('exitCode')} "
            f"message={res.get('message')!r}\nstdout={str(res.get('stdout'))[:2000]!r}\n"
            f"stderr={str(res.get('stderr'))[-2000:]!r}")


def file_opt(tmp_path, name, text):
    """`--file NAME=PATH` options for an extra program file with text."""
    d = tmp_path / f"files-{uuid.uuid4().hex[:8]}"
    d.mkdir()
    p = d / name
    p.write_text(text)
    return ("--file", f"{name}={p}")


def out_lines(res):
    """The program's stdout lines, once it ended well."""
    assert res["status"] == "ok" and res["exitCode"] == 0, brief(res)
    return res["stdout"].splitlines()


def out_repr(res):
    """The program's last stdout line, a Python literal."""
    lines = out_lines(res)
    assert lines, brief(res)
    return ast.literal_eval(lines[-1])


def out_json(res):
    """The program's last stdout line, a JSON document."""
    lines = out_lines(res)
    assert lines, brief(res)
    return json.loads(lines[-1])


def refused_import(module, policy="education"):
    return f"import of '{module}' is not allowed by policy '{policy}'"


def refused_op(what, event, policy="education"):
    return f"{what} ({event}) is not allowed by policy '{policy}'"


def refused_write(path):
    return f"writing to '{path}' is not allowed by policy 'education': only /sandbox and /tmp are writable"


def refused_change(path, event):
    return (f"changing '{path}' ({event}) is not allowed by policy 'education': "
            f"only /sandbox and /tmp are writable")


def assert_policy_violation(res, message, where):
    """Status policy_violation with message + ' (where)', and the traceback's
    last line naming the policy's exception."""
    assert res["status"] == "policy_violation", brief(res)
    assert res["exitCode"] == 1 and res["signal"] is None, brief(res)
    assert res["message"] == f"{message} ({where})", brief(res)
    last = res["stderr"].rstrip("\n").splitlines()[-1]
    kind = "PolicyImportError" if message.startswith("import of ") else "PolicyPermissionError"
    assert last == f"{kind}: {message}", brief(res)


def assert_no_survivors(marker):
    """No host process carries marker (pyexec reaps the run before it returns)."""
    left = host_pids_matching(marker)
    assert not left, f"processes carrying {marker} survive on the host: {left}"


def assert_not_on_host(*paths):
    for p in paths:
        assert not os.path.lexists(p), f"the program created {p} on the host"


# ---- usage -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["nosuch", "Education", ""])
def test_unknown_policy_is_a_usage_error(tmp_path, name):
    """--policy takes one of the defined names; anything else is a usage
    error (exit 2) that names the allowed values, and nothing runs."""
    prog = tmp_path / "p.py"
    prog.write_text("print('ran')\n")
    p = pyexec("run", "--json", "--policy", name, prog)
    err = p.stderr.decode()
    assert p.returncode == 2, err
    assert p.stdout == b"", p.stdout
    assert f"pyexec run: --policy must be one of: education, science, permissive; got '{name}'" in err, err
    assert "usage: pyexec run" in err


def test_education_needs_the_embedded_runner(tmp_path):
    """--python runs an interpreter as is: it cannot enforce a policy."""
    prog = tmp_path / "p.py"
    prog.write_text("print('ran')\n")
    p = pyexec("run", "--json", "--python", "/usr/bin/python3", "--policy", "education", prog)
    assert p.returncode == 2 and p.stdout == b"", p.stderr
    assert "--policy education needs the embedded runner; --python runs an interpreter as is" in p.stderr.decode()


# ---- processes -------------------------------------------------------------

# (statement on line 3, what the message says, the audit event)
EDU_PROCESS_ROUTES = {
    "os.system": ('os.system("echo ran " + sys.argv[1])', "running a shell command", "os.system"),
    "os.popen": ('print(os.popen("echo ran " + sys.argv[1]).read())', "starting a process", "subprocess.Popen"),
    "os.fork": ("os.fork()", "forking a process", "os.fork"),
    "os.forkpty": ("os.forkpty()", "forking a process", "os.forkpty"),
    "os.spawnv": ('os.spawnv(os.P_WAIT, "/bin/echo", ["echo", "ran", sys.argv[1]])', "forking a process", "os.fork"),
    "os.execv": ('os.execv("/bin/echo", ["echo", "ran", sys.argv[1]])',
                 "replacing the process with another program", "os.exec"),
    "os.execve": ('os.execve("/bin/echo", ["echo", "ran", sys.argv[1]], {})',
                  "replacing the process with another program", "os.exec"),
    "os.posix_spawn": ('os.posix_spawn("/bin/echo", ["echo", "ran", sys.argv[1]], {})',
                       "starting a process", "os.posix_spawn"),
    "os.posix_spawnp": ('os.posix_spawnp("echo", ["echo", "ran", sys.argv[1]], {})',
                        "starting a process", "os.posix_spawn"),
}


@pytest.mark.parametrize("route", list(EDU_PROCESS_ROUTES))
def test_process_start_is_refused_under_education(run, route):
    """Every way of starting a process is refused by its audit event, also
    when raised inside the library (os.popen -> subprocess.Popen, os.spawnv
    -> os.fork): policy_violation naming the event and main.py's line."""
    stmt, what, event = EDU_PROCESS_ROUTES[route]
    marker = new_marker("proc")
    res = run(f"import os, sys\nprint('before', flush=True)\n{stmt}\nprint('after')\n", *EDU, "--arg", marker)
    assert_policy_violation(res, refused_op(what, event), "main.py, line 3")
    assert res["stdout"] == "before\n", brief(res)
    assert "ran" not in res["stdout"]
    assert_no_survivors(marker)


def test_refused_process_start_can_be_caught(run):
    """PolicyPermissionError is a PermissionError (an OSError): a program
    that catches it goes on, and no child exists (it sees only itself)."""
    res = run(
        "import os\n"
        "try:\n"
        "    os.system('echo ran > /sandbox/ran')\n"
        "except PermissionError as e:\n"
        "    print(type(e).__name__, e)\n"
        "    print(isinstance(e, OSError), type(e).__mro__[1].__name__, e.errno)\n"
        "print(os.path.exists('/sandbox/ran'), sorted(int(p) for p in os.listdir('/proc') if p.isdigit()) == [os.getpid()])\n",
        *EDU,
    )
    assert out_lines(res) == [
        "PolicyPermissionError " + refused_op("running a shell command", "os.system"),
        "True PermissionError None",
        "False True",
    ]


def test_subprocess_loaded_by_the_library_is_still_refused(run):
    """os.popen makes the library import subprocess for itself (allowed);
    the program then finds it in sys.modules: importing it by name is still
    refused (the __import__ wrapper checks loaded modules too) and using it
    still raises subprocess.Popen."""
    res = run(
        "import os, sys\n"
        "try:\n"
        "    os.popen('true')\n"
        "except PermissionError as e:\n"
        "    print(type(e).__name__, e)\n"
        "print('subprocess' in sys.modules)\n"
        "try:\n"
        "    __import__('sub' + 'process')\n"
        "except ImportError as e:\n"
        "    print(type(e).__name__, e, e.name)\n"
        "try:\n"
        "    sys.modules['subprocess'].run(['/bin/echo', 'ran'])\n"
        "except PermissionError as e:\n"
        "    print(type(e).__name__, e)\n",
        *EDU,
    )
    popen = "PolicyPermissionError " + refused_op("starting a process", "subprocess.Popen")
    assert out_lines(res) == [popen, "True",
                              "PolicyImportError " + refused_import("subprocess") + " subprocess", popen]


# The child every permissive route starts: what it can see and write.
CHILD = r"""
import json, os, sys
host_file, marker = sys.argv[1], sys.argv[2]
out = {"pid": os.getpid(), "procs": {}}
for d in os.listdir("/proc"):
    if d.isdigit():
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                out["procs"][d] = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError as e:
            out["procs"][d] = "errno %d" % e.errno
for name, path in (("etc", "/etc/" + marker), ("usr", "/usr/lib/" + marker), ("host", host_file)):
    try:
        with open(path, "w") as f:
            f.write("pwned")
        out[name] = "written"
    except OSError as e:
        out[name] = e.errno
print(json.dumps(out), flush=True)
"""

PARENT = r"""
import os, shlex, subprocess, sys
ARGS = [sys.executable, "/sandbox/child.py", sys.argv[1], sys.argv[2]]
print("parent", os.getpid(), flush=True)
"""

PERMISSIVE_PROCESS_ROUTES = {
    "subprocess.run": "subprocess.run(ARGS, check=True)",
    "os.system": "assert os.system(shlex.join(ARGS)) == 0",
    "os.popen": "print(os.popen(shlex.join(ARGS)).read(), end='', flush=True)",
    "os.fork": ("pid = os.fork()\n"
                "if pid == 0:\n"
                "    sys.argv = ARGS[1:]\n"
                "    exec(compile(open(ARGS[1]).read(), ARGS[1], 'exec'))\n"
                "    os._exit(0)\n"
                "assert os.waitpid(pid, 0)[1] == 0\n"),
    "os.posix_spawn": "assert os.waitpid(os.posix_spawn(sys.executable, ARGS, dict(os.environ)), 0)[1] == 0",
    "os.execv": "os.execv(sys.executable, ARGS)",
}


def check_confined_child(res, marker, host_file, original):
    """The child's view (a pid namespace, read-only system paths, a private
    /tmp) and the host's (nothing written, nothing left running)."""
    child = out_json(res)
    assert child["pid"] < 64, child
    pids = sorted(int(p) for p in child["procs"])
    assert pids and max(pids) < 64 and len(pids) <= 6, child["procs"]
    assert not any("-m pytest" in c for c in child["procs"].values()), child["procs"]  # the host test runner
    assert child["etc"] == errno.EROFS, child
    assert child["usr"] == errno.EROFS, child
    assert child["host"] == errno.ENOENT, child
    assert host_file.read_text() == original
    assert_not_on_host("/etc/" + marker, "/usr/lib/" + marker)
    assert_no_survivors(marker)


@pytest.mark.parametrize("route", list(PERMISSIVE_PROCESS_ROUTES))
def test_process_started_under_permissive_is_confined(run, tmp_path, route):
    """Without the policy layer a process starts, and is confined by the
    kernel: small pids, no host process visible, /etc and /usr read-only
    (EROFS), the host's /tmp absent (ENOENT); the host file is unchanged."""
    marker = new_marker("perm")
    host_file = tmp_path / f"host-{marker}.txt"
    original = f"ORIGINAL-{marker}\n"
    host_file.write_text(original)
    res = run(PARENT + PERMISSIVE_PROCESS_ROUTES[route] + "\n", *PERM,
              *file_opt(tmp_path, "child.py", CHILD), "--arg", host_file, "--arg", marker)
    lines = out_lines(res)
    if route != "os.execv":
        assert lines[0].startswith("parent "), lines
        assert int(lines[0].split()[1]) < 16, lines
    check_confined_child(res, marker, host_file, original)


def test_no_policy_behaves_as_permissive(run):
    """Without --policy nothing is checked by the policy layer: a program
    importing subprocess and socket runs and starts its process."""
    prog = ("import socket, subprocess\n"
            "print(subprocess.run(['/bin/echo', 'child', 'ran'], capture_output=True, text=True).stdout, end='')\n")
    for options in ((), PERM):
        res = run(prog, *options)
        assert out_lines(res) == ["child ran"], (options, brief(res))


FORK_EXEC_PROG = r"""
import os, sys
host_file, marker = sys.argv[1], sys.argv[2]
try:
    ps = sys.modules["_frozen_importlib"]._gcd_import("_posix" + "subprocess")
    r, w = os.pipe()
    er, ew = os.pipe()
    pid = ps.fork_exec([sys.executable.encode(), b"/sandbox/child.py", host_file.encode(), marker.encode()],
                       (sys.executable.encode(),), True, (w,), None, None,
                       -1, -1, -1, w, -1, -1, er, ew, True, False, -1, None, None, None, -1, None, False)
    os.close(w)
    os.close(ew)
    data = b""
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        data += chunk
    os.waitpid(pid, 0)
    print("STARTED", flush=True)
    print(data.decode().strip(), flush=True)
except (ImportError, PermissionError) as e:
    print("REFUSED", type(e).__name__, e, flush=True)
"""


def test_fork_exec_is_refused_under_education(run, tmp_path):
    """_posixsubprocess.fork_exec (what subprocess uses underneath) must not
    start a process under education either."""
    marker = new_marker("fe")
    host_file = tmp_path / "host.txt"
    host_file.write_text("original\n")
    res = run(FORK_EXEC_PROG, *EDU, *file_opt(tmp_path, "child.py", CHILD), "--arg", host_file, "--arg", marker)
    lines = out_lines(res)
    assert lines[0].startswith("REFUSED Policy"), brief(res)
    assert "STARTED" not in res["stdout"]


def test_fork_exec_process_is_confined_by_the_kernel(run, tmp_path):
    """Whatever the policy layer misses (see the xfail above), a process the
    program starts is the kernel's: confined exactly as under permissive."""
    marker = new_marker("fek")
    host_file = tmp_path / f"host-{marker}.txt"
    original = f"ORIGINAL-{marker}\n"
    host_file.write_text(original)
    res = run(FORK_EXEC_PROG, *EDU, *file_opt(tmp_path, "child.py", CHILD), "--arg", host_file, "--arg", marker)
    lines = out_lines(res)
    if lines[0].startswith("REFUSED"):
        assert lines == [lines[0]] and " Policy" in lines[0], lines
        assert host_file.read_text() == original
        assert_no_survivors(marker)
    else:
        assert lines[0] == "STARTED", lines
        check_confined_child(res, marker, host_file, original)


# ---- network ---------------------------------------------------------------


def test_socket_import_is_refused_statically(run):
    """A literal `import socket` is refused before anything runs."""
    res = run("print('before')\nimport socket\nsocket.create_connection(('127.0.0.1', 1))\n", *EDU)
    assert res["status"] == "policy_violation", brief(res)
    assert res["message"] == refused_import("socket") + " (main.py, line 2)"
    assert res["stdout"] == ""
    assert res["stderr"] == f'  File "/sandbox/main.py", line 2\nPolicyImportError: {refused_import("socket")}\n'


def test_socket_import_is_refused_at_run_time(run):
    """A computed name passes the static check and is refused by the import
    hook, with the line of the program's call (here inside a function)."""
    res = run("def connect():\n"
              "    return __import__('sock' + 'et')\n"
              "print('before', flush=True)\n"
              "connect()\n", *EDU)
    assert_policy_violation(res, refused_import("socket"), "main.py, line 2")
    assert res["stdout"] == "before\n"


def test_socket_operations_are_refused_by_event(run):
    """A socket module obtained around the import check (the import
    machinery's own _gcd_import) still cannot open a socket or resolve a
    name: socket.__new__ and socket.getaddrinfo are refused, and the host
    listener sees nothing."""
    listener = Listener(socket.AF_INET, "127.0.0.1")
    try:
        res = run(
            "import sys\n"
            "port = int(sys.argv[1])\n"
            "try:\n"
            "    so = sys.modules['_frozen_importlib']._gcd_import('_so' + 'cket')\n"
            "except ImportError as e:\n"
            "    print('IMPORT', type(e).__name__, e)\n"
            "else:\n"
            "    for what, f in (('new', lambda: so.socket(so.AF_INET, so.SOCK_STREAM).connect(('127.0.0.1', port))),\n"
            "                    ('gai', lambda: so.getaddrinfo('127.0.0.1', port))):\n"
            "        try:\n"
            "            f()\n"
            "            print(what, 'DONE')\n"
            "        except OSError as e:\n"
            "            print(what, type(e).__name__, e)\n",
            *EDU, "--arg", listener.port)
        lines = out_lines(res)
        if lines[0].startswith("IMPORT"):
            assert lines == ["IMPORT PolicyImportError " + refused_import("_socket")], lines
        else:
            assert lines == [
                "new PolicyPermissionError " + refused_op("network access", "socket.__new__"),
                "gai PolicyPermissionError " + refused_op("network access", "socket.getaddrinfo"),
            ], lines
        time.sleep(0.2)
        assert listener.accepted == []
    finally:
        listener.close()


def test_socket_under_permissive_cannot_reach_the_host(run):
    """Without the policy the program creates sockets, and the kernel keeps
    them in an empty network namespace: a connect to a host loopback
    listener is ENETUNREACH and the listener sees nothing (while a host
    connection to it does get through)."""
    listener = Listener(socket.AF_INET, "127.0.0.1")
    try:
        res = run(
            "import json, socket, sys\n"
            "port = int(sys.argv[1])\n"
            "out = {}\n"
            "for name, addr in (('loopback', '127.0.0.1'), ('any', '0.0.0.0')):\n"
            "    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n"
            "    s.settimeout(2)\n"
            "    try:\n"
            "        s.connect((addr, port))\n"
            "        s.sendall(sys.argv[2].encode())\n"
            "        out[name] = 'connected'\n"
            "    except OSError as e:\n"
            "        out[name] = e.errno\n"
            "print(json.dumps(out))\n",
            *PERM, "--arg", listener.port, "--arg", new_marker("net"))
        out = out_json(res)
        assert out["loopback"] == errno.ENETUNREACH, out
        assert out["any"] == errno.ENETUNREACH, out
        time.sleep(0.2)
        assert listener.accepted == [], listener.accepted
        c = socket.create_connection(("127.0.0.1", listener.port), timeout=2)
        c.sendall(b"control")
        c.close()
        for _ in range(50):
            if listener.accepted:
                break
            time.sleep(0.02)
        assert [d for _, d in listener.accepted] == [b"control"], listener.accepted
    finally:
        listener.close()


# ---- ctypes -------------------------------------------------------------------


def test_ctypes_is_refused_under_education(run):
    """ctypes by name (static and computed), its C half by the import
    machinery: all refused as imports; no native call ran."""
    res = run("print('before')\nimport ctypes\nctypes.CDLL(None).getpid()\n", *EDU)
    assert res["status"] == "policy_violation", brief(res)
    assert res["message"] == refused_import("ctypes") + " (main.py, line 2)"
    assert res["stdout"] == ""

    res = run(
        "import sys\n"
        "for name, f in (('dynamic', lambda: __import__('ct' + 'ypes')),\n"
        "                ('gcd_c', lambda: sys.modules['_frozen_importlib']._gcd_import('_ct' + 'ypes'))):\n"
        "    try:\n"
        "        f()\n"
        "        print(name, 'IMPORTED')\n"
        "    except ImportError as e:\n"
        "        print(name, type(e).__name__, e)\n"
        "print(sorted(m for m in sys.modules if 'ctypes' in m))\n",
        *EDU)
    assert out_lines(res) == ["dynamic PolicyImportError " + refused_import("ctypes"),
                              "gcd_c PolicyImportError " + refused_import("_ctypes"), "[]"]


def test_ctypes_reached_through_the_import_machinery_calls_nothing(run):
    """If the program gets the ctypes package loaded around the import
    check, loading a library is still refused (ctypes.dlopen event): no
    native function ever runs."""
    res = run(
        "import sys\n"
        "try:\n"
        "    ct = sys.modules['_frozen_importlib']._gcd_import('ct' + 'ypes')\n"
        "    print('CALLED', ct.CDLL(None).getpid())\n"
        "except (ImportError, PermissionError) as e:\n"
        "    print(type(e).__name__, e)\n",
        *EDU)
    lines = out_lines(res)
    assert lines[0] in (
        "PolicyPermissionError " + refused_op("calling native code through ctypes", "ctypes.dlopen"),
        "PolicyImportError " + refused_import("_ctypes"),
        "PolicyImportError " + refused_import("ctypes"),
    ), lines
    assert "CALLED" not in res["stdout"]


def test_ctypes_under_permissive_cannot_change_the_sandbox(run):
    """Native calls run without the policy, and the kernel refuses what
    matters: unshare, mount and ptrace return -1 with EPERM."""
    res = run(
        "import ctypes, json\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "out = {}\n"
        "def call(name, f):\n"
        "    ctypes.set_errno(0)\n"
        "    out[name] = [f(), ctypes.get_errno()]\n"
        "call('getpid', lambda: libc.getpid())\n"
        "call('unshare_user', lambda: libc.unshare(0x10000000))\n"
        "call('unshare_mount', lambda: libc.unshare(0x00020000))\n"
        "call('unshare_net', lambda: libc.unshare(0x40000000))\n"
        "call('mount', lambda: libc.mount(b'none', b'/tmp', b'tmpfs', 0, None))\n"
        "call('remount_usr', lambda: libc.mount(None, b'/usr', None, 0x20 | 0x1000, None))\n"
        "call('ptrace_traceme', lambda: libc.ptrace(0, 0, None, None))\n"
        "call('ptrace_attach_1', lambda: libc.ptrace(16, 1, None, None))\n"
        "print(json.dumps(out))\n",
        *PERM)
    out = out_json(res)
    assert out.pop("getpid")[0] < 64, out  # the call itself works: a pid in the sandbox's namespace
    wrong = {k: v for k, v in out.items() if v != [-1, errno.EPERM]}
    assert not wrong, f"calls that did not fail with EPERM: {wrong}"


# ---- writes ----------------------------------------------------------------------

WRITES_PROG = r"""
import os, sys
M, host = sys.argv[1], sys.argv[2]
ops = {
    "open_w": lambda: open("/etc/" + M, "w"),
    "open_a_usr": lambda: open("/usr/lib/" + M, "a"),
    "open_x_relative": lambda: open("../etc/" + M, "x"),
    "open_dotdot": lambda: open("/sandbox/../etc/" + M, "w"),
    "open_root": lambda: open("/" + M, "w"),
    "open_tmp_prefix": lambda: open("/tmpx" + M, "w"),
    "os_open": lambda: os.open("/etc/" + M, os.O_WRONLY | os.O_CREAT),
    "mkdir": lambda: os.mkdir("/etc/" + M),
    "remove": lambda: os.remove("/etc/hosts"),
    "rename": lambda: os.rename("/sandbox/main.py", "/etc/" + M),
    "symlink": lambda: os.symlink("/sandbox/main.py", "/etc/" + M),
    "chmod": lambda: os.chmod("/etc/hosts", 0o777),
    "host_file": lambda: open(host, "w"),
}
out = {}
for k, f in ops.items():
    try:
        f()
        out[k] = "done"
    except OSError as e:
        out[k] = (type(e).__name__, e.errno, e.strerror if e.errno else str(e))
print(repr(out))
"""


def test_writes_outside_sandbox_and_tmp_are_refused_under_education(run, tmp_path):
    """Writes are refused by path (normalized: relative, '..'), naming the
    path, the event and the policy. A host path under /tmp passes the policy
    (it is the sandbox's own /tmp) and is absent there: ENOENT. On the host
    nothing appeared and the host file is unchanged."""
    marker = new_marker("w")
    host_file = tmp_path / f"host-{marker}.txt"
    host_file.write_text("original\n")
    res = run(WRITES_PROG, *EDU, "--arg", marker, "--arg", host_file)
    out = out_repr(res)
    pe = "PolicyPermissionError"
    assert out == {
        "open_w": (pe, None, refused_write(f"/etc/{marker}")),
        "open_a_usr": (pe, None, refused_write(f"/usr/lib/{marker}")),
        "open_x_relative": (pe, None, refused_write(f"/etc/{marker}")),
        "open_dotdot": (pe, None, refused_write(f"/etc/{marker}")),
        "open_root": (pe, None, refused_write(f"/{marker}")),
        "open_tmp_prefix": (pe, None, refused_write(f"/tmpx{marker}")),
        "os_open": (pe, None, refused_write(f"/etc/{marker}")),
        "mkdir": (pe, None, refused_change(f"/etc/{marker}", "os.mkdir")),
        "remove": (pe, None, refused_change("/etc/hosts", "os.remove")),
        "rename": (pe, None, refused_change(f"/etc/{marker}", "os.rename")),
        "symlink": (pe, None, refused_change(f"/etc/{marker}", "os.symlink")),
        "chmod": (pe, None, refused_change("/etc/hosts", "os.chmod")),
        "host_file": ("FileNotFoundError", errno.ENOENT, "No such file or directory"),
    }
    assert host_file.read_text() == "original\n"
    assert_not_on_host(f"/etc/{marker}", f"/usr/lib/{marker}", f"/{marker}", f"/tmpx{marker}")


def test_uncaught_write_refusal_is_a_policy_violation(run):
    """An uncaught refusal ends the run: policy_violation, line of the write."""
    marker = new_marker("wu")
    res = run("import sys\nprint('before', flush=True)\nopen('/etc/' + sys.argv[1], 'w').write('x')\n",
              *EDU, "--arg", marker)
    assert_policy_violation(res, refused_write(f"/etc/{marker}"), "main.py, line 3")
    assert res["stdout"] == "before\n"
    assert_not_on_host(f"/etc/{marker}")


def test_writes_outside_under_permissive_are_refused_by_the_kernel(run, tmp_path):
    """Without the policy the same writes reach the kernel: read-only
    system paths (EROFS; EXDEV for a rename across mounts), the host's /tmp
    absent (ENOENT). Host side: nothing appeared, the host file unchanged."""
    marker = new_marker("wk")
    host_file = tmp_path / f"host-{marker}.txt"
    host_file.write_text("original\n")
    res = run(WRITES_PROG, *PERM, "--arg", marker, "--arg", host_file)
    out = out_repr(res)
    errnos = {k: v[1] if isinstance(v, tuple) else v for k, v in out.items()}
    assert errnos == {
        "open_w": errno.EROFS, "open_a_usr": errno.EROFS, "open_x_relative": errno.EROFS,
        "open_dotdot": errno.EROFS, "open_root": errno.EROFS, "open_tmp_prefix": errno.EROFS,
        "os_open": errno.EROFS, "mkdir": errno.EROFS, "remove": errno.EROFS, "rename": errno.EXDEV,
        "symlink": errno.EROFS, "chmod": errno.EROFS, "host_file": errno.ENOENT,
    }, out
    assert host_file.read_text() == "original\n"
    assert_not_on_host(f"/etc/{marker}", f"/usr/lib/{marker}", f"/{marker}", f"/tmpx{marker}")


def test_paths_through_symlinks_and_dir_fds_are_refused_by_the_policy(run):
    """The policy checks where a path leads, not how it is written: a
    symlink in /sandbox to /etc, or a name relative to a directory
    descriptor of /etc, is refused like /etc itself (test_small_holes.py has
    every route; without the policy the kernel refuses these with EROFS)."""
    marker = new_marker("wl")
    res = run(
        "import os, sys\n"
        "M = sys.argv[1]\n"
        "os.symlink('/etc/' + M, '/sandbox/link')\n"
        "d = os.open('/etc', os.O_RDONLY | os.O_DIRECTORY)\n"
        "out = {}\n"
        "for k, f in (('symlink', lambda: open('/sandbox/link', 'w')),\n"
        "             ('dir_fd', lambda: os.open(M, os.O_WRONLY | os.O_CREAT, dir_fd=d))):\n"
        "    try:\n"
        "        f()\n"
        "        out[k] = 'done'\n"
        "    except OSError as e:\n"
        "        out[k] = (type(e).__name__, e.errno)\n"
        "print(repr(out))\n",
        *EDU, "--arg", marker)
    assert out_repr(res) == {"symlink": ("PolicyPermissionError", None), "dir_fd": ("PolicyPermissionError", None)}
    assert_not_on_host(f"/etc/{marker}")


def test_writes_in_sandbox_and_tmp_work_under_education(run):
    """The work directory (also relative to it) and /tmp are writable: files,
    directories, renames, removals."""
    res = run(
        "import os\n"
        "for p in ('/sandbox/out.txt', '/tmp/out.txt', '/tmp/sub/deep/x.txt', 'rel.txt', 'd/rel2.txt'):\n"
        "    os.makedirs(os.path.dirname(os.path.abspath(p)), exist_ok=True)\n"
        "    with open(p, 'w') as f:\n"
        "        f.write('data:' + p)\n"
        "    with open(p, 'a') as f:\n"
        "        f.write('!')\n"
        "    os.rename(p, p + '.2')\n"
        "    with open(p + '.2') as f:\n"
        "        print(f.read())\n"
        "    os.chmod(p + '.2', 0o600)\n"
        "    os.remove(p + '.2')\n"
        "os.mkdir('/tmp/d')\n"
        "os.rmdir('/tmp/d')\n"
        "fd = os.open('/tmp/raw', os.O_WRONLY | os.O_CREAT, 0o644)\n"
        "os.write(fd, b'raw')\n"
        "os.close(fd)\n"
        "print(open('/tmp/raw').read(), os.getcwd())\n",
        *EDU)
    assert out_lines(res) == ["data:/sandbox/out.txt!", "data:/tmp/out.txt!", "data:/tmp/sub/deep/x.txt!",
                              "data:rel.txt!", "data:d/rel2.txt!", "raw /sandbox"]


# ---- imports: the static check --------------------------------------------------


def test_static_check_reports_every_refused_import_at_once(run, tmp_path):
    """Every refused import of every file (import, from-import, __import__
    and import_module with a literal name, denied or merely not listed) is
    reported in one verdict, main.py first, by line; nothing ran."""
    res = run(
        "print('before')\n"                       # 1
        "import socket\n"                         # 2
        "from subprocess import run\n"            # 3
        "x = 1\n"                                 # 4
        "__import__('ctypes')\n"                  # 5
        "whatever.import_module('pty')\n"         # 6
        "import json, ssl\n"                      # 7
        "if x:\n"                                 # 8
        "    def f():\n"                          # 9
        "        import urllib.request\n"         # 10
        "import helper, math, os.path\n",         # 11
        *EDU, *file_opt(tmp_path, "helper.py", "import math\nimport multiprocessing.pool\n"))
    refused = [("main.py", 2, "socket"), ("main.py", 3, "subprocess"), ("main.py", 5, "ctypes"),
               ("main.py", 6, "pty"), ("main.py", 7, "ssl"), ("main.py", 10, "urllib.request"),
               ("helper.py", 2, "multiprocessing.pool")]
    assert res["status"] == "policy_violation", brief(res)
    assert res["exitCode"] == 1
    assert res["message"] == "; ".join(f"{refused_import(m)} ({f}, line {n})" for f, n, m in refused)
    assert res["stderr"] == "".join(f'  File "/sandbox/{f}", line {n}\nPolicyImportError: {refused_import(m)}\n'
                                    for f, n, m in refused)
    assert res["stdout"] == ""


def test_imports_are_not_checked_under_permissive(run, tmp_path):
    """The same kind of program runs under permissive: the check there is
    only for syntax."""
    res = run("print('before')\nimport socket, subprocess, ctypes\nimport helper\nprint(helper.pool.__name__)\n",
              *PERM, *file_opt(tmp_path, "helper.py", "import multiprocessing.pool as pool\n"))
    assert out_lines(res) == ["before", "multiprocessing.pool"]


def python3_syntax_error(src, name):
    """What python3 itself (the host's, the interpreter the sandbox binds)
    reports for src in /sandbox/name."""
    try:
        compile(src, f"{SANDBOX}/{name}", "exec", dont_inherit=True)
    except SyntaxError as e:
        return e
    raise AssertionError("no syntax error in " + repr(src))


SYNTAX_CASES = {
    "unclosed": ("print('a')\nprint((1,\n",
                 "SyntaxError: '(' was never closed (main.py, line 2, column 7)"),
    "invalid": ("x = 1\nif x = 2:\n    pass\n",
                "SyntaxError: invalid syntax. Maybe you meant '==' or ':=' instead of '='? (main.py, line 2, column 4)"),
    "expected_indent": ("if True:\nprint(1)\n",
                        "IndentationError: expected an indented block after 'if' statement on line 1 "
                        "(main.py, line 2, column 1)"),
    "unindent": ("def f():\n    return 1\n  x = 2\n",
                 "IndentationError: unindent does not match any outer indentation level (main.py, line 3, column 8)"),
    "tabs": ("if True:\n        x = 1\n\tx = 2\n",
             "TabError: inconsistent use of tabs and spaces in indentation (main.py, line 3, column 1)"),
}


def host_python3_stderr(tmp_path, files):
    """What /usr/bin/python3 main.py prints on stderr for these files, with
    the directory shown as /sandbox."""
    d = tmp_path / f"host-{uuid.uuid4().hex[:8]}"
    d.mkdir()
    for name, text in files.items():
        (d / name).write_text(text)
    p = subprocess.run(["/usr/bin/python3", "main.py"], cwd=d, capture_output=True, text=True,
                       env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
    return p.stderr.replace(str(d), SANDBOX)


@pytest.mark.parametrize("case", list(SYNTAX_CASES))
@pytest.mark.parametrize("policy", ["education", "permissive"])
def test_syntax_errors_are_reported_with_line_and_column(run, tmp_path, case, policy):
    """A program that does not compile: syntax_error, the message with file,
    line and column, stderr as python3 prints it; nothing ran."""
    src, message = SYNTAX_CASES[case]
    e = python3_syntax_error(src, "main.py")
    res = run(src, "--policy", policy)
    assert res["status"] == "syntax_error", brief(res)
    assert res["exitCode"] == 1
    assert res["message"] == message
    assert res["message"] == f"{type(e).__name__}: {e.msg} (main.py, line {e.lineno}, column {e.offset})"
    assert res["stderr"] == host_python3_stderr(tmp_path, {"main.py": src})
    assert res["stdout"] == ""


def test_syntax_error_wins_over_refused_imports(run):
    """A file that does not compile is reported as such even with refused
    imports before it; nothing ran."""
    res = run("print('ran')\nimport socket\nprint((\n", *EDU)
    assert res["status"] == "syntax_error", brief(res)
    assert res["message"] == "SyntaxError: '(' was never closed (main.py, line 3, column 7)"
    assert res["stdout"] == ""


@pytest.mark.parametrize("policy", ["education", "permissive"])
def test_syntax_error_in_a_second_file_names_it(run, tmp_path, policy):
    """A helper that does not compile fails when it is imported, as under
    python3 (main.py's first line ran): the verdict is syntax_error, the
    message names helper.py, stderr is python3's."""
    helper = "X = 1\ndef f(:\n    pass\n"
    main = "print('ran')\nimport helper\n"
    res = run(main, "--policy", policy, *file_opt(tmp_path, "helper.py", helper))
    assert res["status"] == "syntax_error", brief(res)
    assert res["message"] == "SyntaxError: invalid syntax (helper.py, line 2, column 7)"
    assert res["stderr"] == host_python3_stderr(tmp_path, {"main.py": main, "helper.py": helper})
    assert '  File "/sandbox/helper.py", line 2\n' in res["stderr"]
    assert res["stdout"] == "ran\n"


# ---- imports: what education allows ---------------------------------------------


def test_builtin_and_loaded_allowlisted_modules_work(run):
    """Allowlisted modules that need no .pyc of the standard library load
    (built-in ones, those loaded at start-up), and so do private helpers."""
    res = run(
        "import math, itertools, time, zlib, binascii, unicodedata, cmath, sys, os, io, abc\n"
        "import _heapq, _bisect, _json\n"
        "from os import path\n"
        "print(math.factorial(10), list(itertools.accumulate([1, 2, 3])), zlib.crc32(b'abc'))\n"
        "print(binascii.hexlify(b'hi').decode(), unicodedata.name('a'), cmath.sqrt(-1))\n"
        "h = [5, 1, 3]\n_heapq.heapify(h)\nprint(h[0], _bisect.bisect_right([1, 2, 3], 2), path.join('a', 'b'))\n"
        "buf = io.StringIO()\nbuf.write('x')\nprint(buf.getvalue(), time.time() > 0)\n",
        *EDU)
    assert out_lines(res) == ["3628800 [1, 3, 6] 891568578", "6869 LATIN SMALL LETTER A 1j", "1 2 a/b", "x True"]


def test_pure_python_allowlisted_modules_work(run):
    """The allowlist's pure-Python modules import and work under education."""
    res = run(
        "import json, random, re, collections, functools, string, datetime, decimal, fractions\n"
        "import statistics, heapq, bisect, dataclasses, enum, typing, textwrap, copy, operator, array\n"
        "print(json.dumps({'a': [1, 2]}, sort_keys=True))\n"
        "random.seed(7)\nprint(0 < random.randint(1, 10) <= 10)\n"
        "print(re.sub(r'\\d', '#', 'a1b2'), collections.Counter('aab')['a'], string.ascii_lowercase[:3])\n"
        "print(decimal.Decimal('0.1') + decimal.Decimal('0.2'), fractions.Fraction(1, 3) * 3)\n"
        "print(statistics.mean([1, 2, 3, 4]), heapq.nsmallest(2, [3, 1, 2]), bisect.bisect([1, 3], 2))\n"
        "@dataclasses.dataclass\nclass P:\n    x: int\nprint(P(1), copy.deepcopy([[1]]), array.array('i', [1]).tolist())\n",
        *EDU)
    assert out_lines(res) == ['{"a": [1, 2]}', "True", "a#b# 2 abc", "0.3 1", "2.5 [1, 2] 1",
                              "P(x=1) [[1]] [1]"]


def test_strptime_lazy_import_works(run):
    """datetime's C code imports _strptime on first use: the library's own
    request, allowed."""
    res = run("import datetime\nprint(datetime.datetime.strptime('2020-03-04', '%Y-%m-%d').isoformat())\n"
              "print(datetime.datetime.strptime('2020', '%Y').year)\n", *EDU)
    assert out_lines(res) == ["2020-03-04T00:00:00", "2020"]


def test_unittest_runs_under_education(run):
    """unittest (and what it imports for itself) runs a program's tests."""
    res = run(
        "import unittest\n"
        "class T(unittest.TestCase):\n"
        "    def test_ok(self):\n"
        "        self.assertEqual(1 + 1, 2)\n"
        "    def test_fail(self):\n"
        "        self.assertEqual(1, 2)\n"
        "r = unittest.main(argv=['t'], exit=False, verbosity=0).result\n"
        "print('ran', r.testsRun, 'failures', len(r.failures))\n",
        *EDU)
    assert out_lines(res) == ["ran 2 failures 1"]
    assert "AssertionError: 1 != 2" in res["stderr"]


@pytest.mark.skipif(not PIL_DIR.is_dir(), reason="Pillow is not installed on the host")
def test_pil_image_in_memory_under_education(run):
    """Pillow works: an image made in memory, saved to /tmp and to a buffer."""
    res = run(
        "import io\n"
        "from PIL import Image\n"
        "im = Image.new('RGB', (4, 3), (255, 0, 0))\n"
        "im.save('/tmp/x.png')\n"
        "print(Image.open('/tmp/x.png').size, im.getpixel((0, 0)))\n"
        "b = io.BytesIO()\n"
        "im.save(b, 'PNG')\n"
        "print(b.getvalue()[:4])\n",
        *EDU)
    assert out_lines(res) == ["(4, 3) (255, 0, 0)", "b'\\x89PNG'"]


def test_program_modules_import_under_education(run, tmp_path):
    """The program's own files are always importable (import, from-import,
    __import__ with a computed name)."""
    res = run("import helper\nfrom helper import X\nprint(helper.hello(), X, __import__('hel' + 'per').X)\n",
              *EDU, *file_opt(tmp_path, "helper.py", "X = 1\ndef hello():\n    return 'hello from helper'\n"))
    assert out_lines(res) == ["hello from helper 1 1"]


@pytest.mark.parametrize("name", ["random", "socket"])
def test_program_module_shadows_a_library_module(run, tmp_path, name):
    """A program file named like a library module is the one imported, as
    with python3 (the script's directory first on sys.path): allowed or
    denied name alike, since it is the program's own code."""
    res = run(f"import {name}\nprint({name}.X, {name}.__file__)\n", *EDU,
              *file_opt(tmp_path, f"{name}.py", "X = 1\n"))
    assert out_lines(res) == [f"1 /sandbox/{name}.py"]


def test_unlisted_and_denied_modules_are_refused_at_run_time(run):
    """Computed names: denied modules, the import machinery's routes, and
    modules merely absent from the allowlist are refused; PolicyImportError
    is an ImportError carrying the module's name."""
    mods = ["import" + "lib", "run" + "py", "_imp", "marsh" + "al", "_posix" + "subprocess", "sel" + "ect",
            "sqlite3", "http.client", "urllib.request", "pickle", "asyncio", "multiprocessing.pool"]
    res = run(
        "import sys\n"
        f"for n in {mods!r}:\n"
        "    try:\n"
        "        __import__(n)\n"
        "        print(n, 'IMPORTED')\n"
        "    except ImportError as e:\n"
        "        print(type(e).__name__, isinstance(e, ImportError), e.name, e)\n",
        *EDU)
    assert out_lines(res) == [f"PolicyImportError True {m} {refused_import(m)}" for m in mods]


# ---- catching a refusal ------------------------------------------------------------


def test_policy_import_error_can_be_caught(run):
    """A refused import can be caught as ImportError; the program goes on and
    ends well."""
    res = run("try:\n"
              "    __import__('sock' + 'et')\n"
              "except ImportError as e:\n"
              "    print(type(e).__name__, e)\n"
              "print('after')\n", *EDU)
    assert out_lines(res) == ["PolicyImportError import of 'socket' is not allowed by policy 'education'", "after"]
    assert res["stderr"] == ""


def test_refusal_in_a_program_module_names_that_file(run, tmp_path):
    """An uncaught refusal raised in another file of the program names it."""
    res = run("import helper\n", *EDU, *file_opt(tmp_path, "helper.py", "a = 1\n\n__import__('sock' + 'et')\n"))
    assert_policy_violation(res, refused_import("socket"), "helper.py, line 3")


# ---- bypass attempts ----------------------------------------------------------------


def test_exec_of_an_import_is_refused(run):
    """exec() hides the import from the static check, not from the hook; the
    verdict names main.py's line of the exec."""
    res = run("try:\n"
              "    exec('import sock' + 'et')\n"
              "except ImportError as e:\n"
              "    print(type(e).__name__, e)\n"
              "exec('import sub' + 'process')\n", *EDU)
    assert_policy_violation(res, refused_import("subprocess"), "main.py, line 5")
    assert res["stdout"] == "PolicyImportError " + refused_import("socket") + "\n"


def test_builtins_import_called_by_attribute_is_refused(run):
    """builtins.__import__('socket') is not what the static check looks for:
    the run-time check refuses it."""
    res = run("import builtins\nprint('before', flush=True)\nbuiltins.__import__('socket')\n", *EDU)
    assert_policy_violation(res, refused_import("socket"), "main.py, line 3")
    assert res["stdout"] == "before\n"


@pytest.mark.parametrize("filename", [
    "/usr/lib/python3.11/fake.py",
    "/usr/lib/python3/dist-packages/fake.py",
    "/usr/local/lib/python3.11/fake.py",
    "<frozen importlib._bootstrap>",
    "/usr/lib/python3.11/importlib/fake.py",
])
def test_compiling_under_a_library_file_name_is_refused(run, filename):
    """Code compiled under a library file name would pass for the library's
    own (whose imports are not checked): compile() refuses such names."""
    res = run(f"try:\n"
              f"    compile('__import__(\"sock\" + \"et\")', {filename!r}, 'exec')\n"
              f"except PermissionError as e:\n"
              f"    print(type(e).__name__, e)\n"
              f"print(compile('x = 1', '/sandbox/gen.py', 'exec').co_filename)\n", *EDU)
    assert out_lines(res) == [
        f"PolicyPermissionError compiling code under the file name '{filename}' of the standard library "
        f"is not allowed by policy 'education'",
        "/sandbox/gen.py",
    ]


def test_creating_code_objects_is_refused(run):
    """code.replace() and the code type's constructor would relabel the
    program's code as the library's: code.__new__ is refused."""
    res = run(
        "c = (lambda: 0).__code__\n"
        "for name, f in (('replace', lambda: c.replace(co_filename='/usr/lib/python3.11/x.py')),\n"
        "                ('replace_same', lambda: c.replace()),\n"
        "                ('new', lambda: type(c)(c.co_argcount, c.co_posonlyargcount, c.co_kwonlyargcount,\n"
        "                                        c.co_nlocals, c.co_stacksize, c.co_flags, c.co_code, c.co_consts,\n"
        "                                        c.co_names, c.co_varnames, '/usr/lib/python3.11/x.py', c.co_name,\n"
        "                                        c.co_qualname, c.co_firstlineno, c.co_linetable,\n"
        "                                        c.co_exceptiontable))):\n"
        "    try:\n"
        "        f()\n"
        "        print(name, 'CREATED')\n"
        "    except PermissionError as e:\n"
        "        print(name, type(e).__name__, e)\n",
        *EDU)
    msg = "PolicyPermissionError code.__new__ is not allowed by policy 'education'"
    assert out_lines(res) == [f"replace {msg}", f"replace_same {msg}", f"new {msg}"]


def test_unmarshalling_code_is_refused(run):
    """marshal is loaded at start-up and reachable in sys.modules; loads()
    from the program is refused (dumps is harmless)."""
    res = run(
        "import sys\n"
        "m = sys.modules['marshal']\n"
        "data = m.dumps(compile('print(1)', 'gen', 'exec'))\n"
        "try:\n"
        "    m.loads(data)\n"
        "    print('LOADED')\n"
        "except PermissionError as e:\n"
        "    print(type(e).__name__, e)\n", *EDU)
    assert out_lines(res) == ["PolicyPermissionError marshal.loads is not allowed by policy 'education'"]


@pytest.mark.parametrize("name", ["socket", "_socket", "_posixsubprocess", "select"])
def test_import_machinery_cannot_import_denied_modules(run, name):
    """The program asking the import machinery directly
    (sys.modules['_frozen_importlib']._gcd_import) is still the program's
    request: refused as an import."""
    res = run(
        "import sys\n"
        "try:\n"
        f"    m = sys.modules['_frozen_importlib']._gcd_import({name[:2]!r} + {name[2:]!r})\n"
        "    print('IMPORTED', m)\n"
        "except BaseException as e:\n"
        "    print(type(e).__name__, e)\n", *EDU)
    assert out_lines(res) == ["PolicyImportError " + refused_import(name)]


def test_replacing_builtins_import_keeps_operations_refused(run):
    """A program that swaps builtins.__import__ for the import machinery's
    own __import__ may get modules past the import check (see the xfail
    above), but not the operations: os.system, sockets and processes are
    still refused by their events, and nothing started."""
    marker = new_marker("bi")
    res = run(
        "import builtins, os, sys\n"
        "builtins.__import__ = sys.modules['_frozen_importlib'].__import__\n"
        "def attempt(name, f):\n"
        "    try:\n"
        "        print(name, 'DONE', f())\n"
        "    except (ImportError, PermissionError) as e:\n"
        "        print(name, type(e).__name__, e)\n"
        "attempt('system', lambda: os.system('echo ran ' + sys.argv[1]))\n"
        "so = ps = sp = None\n"
        "try:\n"
        "    exec('import _sock' + 'et as so')\n"
        "except (ImportError, PermissionError) as e:\n"
        "    print('import _socket', type(e).__name__)\n"
        "try:\n"
        "    exec('import sub' + 'process as sp')\n"
        "except (ImportError, PermissionError) as e:\n"
        "    print('import subprocess', type(e).__name__)\n"
        "if so is not None:\n"
        "    attempt('socket', lambda: so.socket())\n"
        "if sp is not None:\n"
        "    attempt('popen', lambda: sp.run(['/bin/echo', 'ran', sys.argv[1]]))\n",
        *EDU, "--arg", marker)
    lines = out_lines(res)
    assert lines[0] == "system PolicyPermissionError " + refused_op("running a shell command", "os.system"), lines
    for line in lines[1:]:
        name = line.split()[0]
        if name == "import":
            assert line.split()[2] in ("PolicyImportError", "PolicyPermissionError"), lines
        elif name == "socket":
            assert line == "socket PolicyPermissionError " + refused_op("network access", "socket.__new__"), lines
        elif name == "popen":
            assert line == "popen PolicyPermissionError " + refused_op("starting a process", "subprocess.Popen"), lines
        else:
            pytest.fail(f"unexpected line {line!r} in {lines}")
    assert "DONE" not in res["stdout"] and "ran" not in res["stdout"]
    assert_no_survivors(marker)


def test_library_importing_a_name_the_program_chose_still_cannot_use_it(run):
    """A documented limit of the import check: an allowed library asked to
    import a name the program chose (unittest's loader) imports it as the
    library's own request. What the module could do is still refused by
    its audit events: no socket is ever created."""
    res = run(
        "import sys, unittest\n"
        "try:\n"
        "    m = unittest.TestLoader().loadTestsFromName('sock' + 'et')\n"
        "    s = sys.modules['socket'].socket()\n"
        "    print('SOCKET')\n"
        "except (ImportError, PermissionError) as e:\n"
        "    print(type(e).__name__, e)\n", *EDU)
    assert res["status"] == "ok", res
    assert "SOCKET" not in res["stdout"]
    assert out_lines(res) in (["PolicyImportError " + refused_import("socket")],
                              ["PolicyPermissionError " + refused_op("network access", "socket.__new__")]), res
