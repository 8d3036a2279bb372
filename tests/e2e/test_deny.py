"""Deny tests: every test runs an attack in the sandbox and proves it failed.

The rule of this file: wherever the attack has a target outside the sandbox,
the verdict is checked FROM THE HOST SIDE (the file that must not appear on
the host, the host listener that must see no connection, the process that
must not survive, the secret that must not come back in the output), not
only by believing what the sandboxed program says about itself.

Runs as root (a fresh host uid per run, cgroups) and as an unprivileged user
(user namespace, rlimit fallbacks); `privileged` tells which. As root the
surviving-process checks look for the run's own host uid (the program prints
os.getuid(), which is the host uid on that path) and for a unique marker in
the command line (passed with --arg, so every forked copy of the program
carries it); unprivileged only the marker tells the run's processes apart.
"""
import errno
import json
import re
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

from conftest import (Listener, PYEXEC, SERVICE_URL, host_pids_matching, host_pids_with_uid_range, pyexec,
                      service_options, skip_on_service)

HERE = Path(__file__).resolve().parent

# What the sandbox's root may contain (mount.h): binds of the host's /usr
# and its merged-/usr links, the generated /etc, and the run's own mounts.
ROOT_ALLOWED = {"usr", "lib", "lib64", "bin", "sbin", "etc", "dev", "proc", "tmp", "sandbox"}
ETC_ALLOWED = {"passwd", "group", "hosts", "hostname", "nsswitch.conf", "ld.so.cache", "localtime",
               "python3", "python3.11", "matplotlibrc", "alternatives"}
DEV_EXPECTED = {"null", "zero", "full", "random", "urandom", "fd", "stdin", "stdout", "stderr", "shm"}
ENV_EXPECTED = {
    "PATH", "HOME", "LANG", "USER", "LOGNAME",
    "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS", "MPLBACKEND", "MPLCONFIGDIR",
}


# ---- helpers ---------------------------------------------------------------


def new_marker(tag="m"):
    """A string unique to one test, safe in file names and argv."""
    return f"pyexec-deny-{tag}-{uuid.uuid4().hex}"


def run_json(tmp_path, code, *options, env=None, pass_fds=(), timeout=60):
    """`pyexec run --json OPTIONS prog.py` with control over env and fds."""
    skip_on_service("the local `pyexec run`'s environment, descriptors and process")
    prog = tmp_path / f"deny-{uuid.uuid4().hex[:8]}.py"
    prog.write_text(code)
    p = subprocess.run(
        [PYEXEC, "run", "--json", *map(str, options), str(prog)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        pass_fds=pass_fds,
        timeout=timeout,
    )
    assert p.stdout, f"no JSON on stdout; stderr: {p.stderr.decode(errors='replace')}"
    return json.loads(p.stdout)


def brief(res):
    """A result, short enough to read in an assertion message."""
    return (f"status={res.get('status')} signal={res.get('signal')} exit={res.get('exitCode')} "
            f"message={res.get('message')!r}\nstdout={str(res.get('stdout'))[:1500]!r}\n"
            f"stderr={str(res.get('stderr'))[-1500:]!r}")


def lines_json(res):
    """The program's stdout as one JSON document (the programs print one)."""
    assert res["status"] == "ok", brief(res)
    return json.loads(res["stdout"])


def everything(res):
    """All text of a result that could carry a leaked secret."""
    return "\n".join(str(res.get(k) or "") for k in ("stdout", "stderr", "output", "message"))


@pytest.fixture(scope="module")
def host_info():
    """`pyexec check --json`: the uid pool and the cgroup parents."""
    p = pyexec("check", "--json", timeout=60)
    assert p.stdout, p.stderr
    return json.loads(p.stdout)


def _is_zombie(pid):
    """An exited process not yet reaped: it runs nothing and holds no memory.
    When pyexec itself is killed, the run's init is reparented to the host's
    pid 1, which reaps it on its own schedule."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True  # gone


def _survivors(marker, uid):
    found = set(host_pids_matching(marker))
    if uid is not None:
        found |= set(host_pids_with_uid_range(uid, uid + 1))
    found.discard(os.getpid())
    return {pid for pid in found if not _is_zombie(pid)}


def _describe(pids):
    out = []
    for pid in sorted(pids):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{pid}/status") as f:
                st = {l.split(":")[0]: l.split(":", 1)[1].strip() for l in f if ":" in l}
            out.append(f"pid {pid} uid {st.get('Uid')} state {st.get('State')}: {cmd}")
        except OSError:
            out.append(f"pid {pid} (gone)")
    return "\n".join(out)


def _kill_leftovers(pids, marker):
    """Clean up what this test's own run left behind: by pid, and only the
    processes that carry the test's marker (a bare uid match might be
    another session's run that took the slot since)."""
    ours = set(host_pids_matching(marker))
    for pid in set(pids) & ours:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def assert_nothing_survives(marker, uid=None, duration=1.0, checks=5, grace=0.0):
    """No host process carries marker (or, as root, the run's host uid),
    checked several times over duration seconds: nothing may show up late
    either (a daemon that was asleep, a straggler of a fork bomb). grace is
    time allowed for the kernel to finish tearing the run down first (none
    when pyexec returned normally: it reaps the run before it returns)."""
    if SERVICE_URL:
        # A service answers first and tears the sandbox down after
        # (zygote.c, KILL_GRACE_NS): allow that teardown its time.
        grace = max(grace, 2.0)
    deadline = time.monotonic() + grace
    while grace and _survivors(marker, uid) and time.monotonic() < deadline:
        time.sleep(0.05)
    seen = set()
    for i in range(checks):
        seen |= _survivors(marker, uid)
        if seen:
            break
        if i + 1 < checks:
            time.sleep(duration / (checks - 1))
    if seen:
        desc = _describe(seen)
        _kill_leftovers(seen, marker)
        pytest.fail(f"processes of the run survive on the host after pyexec returned:\n{desc}")


def uid_of(res, privileged):
    """The run's host uid, from the first stdout line the program printed
    (as root the sandbox uid is the host uid; unprivileged it is mapped)."""
    if not privileged:
        return None
    first = (res.get("stdout") or "").split("\n", 1)[0].split()
    assert first and first[0].isdigit(), f"the program did not print its uid first: {brief(res)}"
    return int(first[0])


def host_addresses():
    """The host's own non-loopback IPv4 addresses, as the kernel lists them
    (no packet is sent anywhere to find them)."""
    addrs = set()
    try:
        out = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True, timeout=10).stdout
        for m in re.finditer(r"\binet (\d+\.\d+\.\d+\.\d+)/", out):
            addrs.add(m.group(1))
    except (OSError, subprocess.SubprocessError):
        pass
    return sorted(a for a in addrs if not a.startswith("127.") and not a.startswith("0."))


# ---- host files --------------------------------------------------------------

HOST_FILES_PROG = r"""
import json, os, sys
secret_paths = sys.argv[1:]
out = {"exists": {}, "read": {}, "listdir": {}, "found_in": []}
probe = ["/etc/shadow", "/etc/gshadow", "/etc/sudoers", "/root", "/home", "/var", "/run", "/sys",
         "/work", "/srv", "/opt", "/mnt", "/media", "/boot", "/var/log", "/run/pyexec",
         "/root/.ssh", "/etc/ssh"] + secret_paths
for p in probe:
    out["exists"][p] = os.path.lexists(p)
    try:
        with open(p, "rb") as f:
            out["read"][p] = f.read(4096).decode("latin-1")
    except OSError as e:
        out["read"][p] = "errno %d" % e.errno
    try:
        out["listdir"][p] = os.listdir(p)
    except OSError as e:
        out["listdir"][p] = "errno %d" % e.errno
out["root"] = os.listdir("/")
out["etc"] = os.listdir("/etc")
out["tmp"] = os.listdir("/tmp")
out["passwd"] = open("/etc/passwd").read()
out["group"] = open("/etc/group").read()
# Everything readable outside /usr and /proc, whatever its name.
dump = []
for top in [d for d in os.listdir("/") if d not in ("usr", "proc", "lib", "lib64", "bin", "sbin")]:
    for dirpath, dirnames, filenames in os.walk("/" + top):
        for name in filenames:
            path = os.path.join(dirpath, name)
            if path.startswith("/dev/"):
                continue  # devices: zeros and noise
            try:
                with open(path, "rb") as f:
                    data = f.read(1 << 20)
            except OSError:
                continue
            dump.append(path)
            if ("SECRET" + "-CONTENT-").encode() in data:
                out["found_in"].append(path)
out["walked"] = dump
print(json.dumps(out))
"""


def test_host_files_are_invisible(run, tmp_path):
    marker = new_marker("file")
    content = f"SECRET-CONTENT-{marker}"
    planted = []

    def plant(path):
        try:
            path.write_text(content + "\n")
            os.chmod(path, 0o644)
        except OSError:
            return
        planted.append(path)

    host_tmp = Path("/tmp") / f"{marker}.txt"
    plant(host_tmp)
    plant(tmp_path / f"{marker}.txt")
    plant(HERE / f"{marker}.txt")  # the test directory (under /work as root)
    try:
        assert planted and planted[0] == host_tmp, "could not plant the secret in the host's /tmp"
        paths = [str(p) for p in planted] + [str(tmp_path), str(HERE), PYEXEC, str(Path(PYEXEC).parent)]
        res = run(HOST_FILES_PROG, "--max-output", 1000000, *sum((["--arg", p] for p in paths), []))
        out = lines_json(res)
        text = everything(res)
        # The secret's content never comes back, whatever path it was read by.
        assert content not in text
        assert out["found_in"] == []
        for p in paths:
            assert out["exists"][p] is False, f"{p} is visible in the sandbox"
            assert out["read"][p] == f"errno {errno.ENOENT}", (p, out["read"][p])
        # The sensitive host trees are simply absent.
        for p in ("/etc/shadow", "/etc/gshadow", "/etc/sudoers", "/root", "/home", "/var", "/run", "/sys",
                  "/work", "/srv", "/opt", "/mnt", "/media", "/boot", "/run/pyexec", "/root/.ssh", "/etc/ssh"):
            assert out["exists"][p] is False, f"{p} exists in the sandbox: {out['listdir'][p]}"
        assert set(out["root"]) <= ROOT_ALLOWED, out["root"]
        assert set(out["etc"]) <= ETC_ALLOWED, out["etc"]
        assert host_tmp.name not in out["tmp"]
        # The generated passwd/group name none of the host's accounts.
        with open("/etc/passwd") as f:
            host_users = {l.split(":")[0] for l in f if ":" in l} - {"root", "nobody", "sandbox"}
        sandbox_users = {l.split(":")[0] for l in out["passwd"].splitlines() if ":" in l}
        assert sandbox_users <= {"root", "nobody", "sandbox"}, sandbox_users
        assert not (host_users & sandbox_users)
        # Host side: the secrets are untouched.
        for p in planted:
            assert p.read_text() == content + "\n"
    finally:
        for p in planted:
            try:
                p.unlink()
            except OSError:
                pass


def test_host_shadow_hashes_not_readable(run):
    """Whatever the host's /etc/shadow holds never reaches the program."""
    try:
        with open("/etc/shadow") as f:
            hashes = [l.split(":")[1] for l in f if l.count(":") >= 2 and len(l.split(":")[1]) > 3]
    except OSError:
        hashes = []
    res = run("import os\n"
              "for p in ('/etc/shadow', '/../etc/shadow', '/proc/1/root/etc/shadow', '/proc/self/root/etc/shadow',"
              " '/dev/../etc/shadow', '/sandbox/../../etc/shadow'):\n"
              "    try:\n"
              "        print(p, open(p).read())\n"
              "    except OSError as e:\n"
              "        print(p, 'errno', e.errno)\n")
    assert res["status"] == "ok", brief(res)
    for line in res["stdout"].splitlines():
        assert " errno " in line, line
    for h in hashes:
        assert h not in everything(res)


def test_host_paths_not_leaked_through_proc(run, tmp_path):
    """The host path of the pyexec binary and of the caller's files must not
    be readable anywhere in the sandbox, /proc included (the supervisor's
    command line names both)."""
    res = run("import os, json\n"
              "out = {}\n"
              "for pid in [p for p in os.listdir('/proc') if p.isdigit()] + ['self', 'thread-self']:\n"
              "    for name in ('cmdline', 'comm', 'status', 'environ', 'mountinfo', 'cgroup', 'maps', 'stat',"
              " 'sched', 'cwd', 'exe', 'root'):\n"
              "        path = '/proc/%s/%s' % (pid, name)\n"
              "        try:\n"
              "            if name in ('cwd', 'exe', 'root'):\n"
              "                out[path] = os.readlink(path)\n"
              "            else:\n"
              "                out[path] = open(path, 'rb').read().decode('latin-1')\n"
              "        except OSError as e:\n"
              "            out[path] = 'errno %d' % e.errno\n"
              "print(json.dumps(out))\n", "--max-output", 8 << 20)
    out = lines_json(res)
    leaks = {}
    for needle in (PYEXEC, str(tmp_path)):
        hits = [p for p, v in out.items() if needle in v]
        if hits:
            leaks[needle] = {p: out[p][:200] for p in hits}
    assert not leaks, f"host paths readable inside the sandbox: {leaks}"


def test_symlinks_planted_in_the_work_directory_reach_nothing(run, tmp_path):
    marker = new_marker("link")
    secret = tmp_path / f"{marker}.txt"
    secret.write_text(f"SECRET-CONTENT-{marker}\n")
    os.chmod(secret, 0o644)
    host_target = Path("/tmp") / f"{marker}-written"
    res = run(
        "import os, sys, json\n"
        "secret, host_target = sys.argv[1], sys.argv[2]\n"
        "out = {}\n"
        "links = {'shadow': '/etc/shadow', 'hostfile': secret, 'hostdir': os.path.dirname(secret),\n"
        "         'up': '../../../../../../' + secret.lstrip('/'), 'rootproc': '/proc/1/root' + secret,\n"
        "         'selfroot': '/proc/self/root' + os.path.dirname(secret)}\n"
        "for name, target in links.items():\n"
        "    os.symlink(target, name)\n"
        "    try:\n"
        "        out[name] = open(name, 'rb').read().decode('latin-1')\n"
        "    except OSError as e:\n"
        "        out[name] = e.errno\n"
        "    try:\n"
        "        out[name + '/ls'] = os.listdir(name)\n"
        "    except OSError as e:\n"
        "        out[name + '/ls'] = e.errno\n"
        "# Writing through links that climb out of /tmp or the work directory.\n"
        "for name, target in {'w1': '/tmp/../../etc/pwned', 'w2': '/sandbox/../usr/pwned',\n"
        "                     'w3': host_target, 'w4': '/tmp/../../../' + host_target.lstrip('/')}.items():\n"
        "    os.symlink(target, name)\n"
        "    try:\n"
        "        with open(name, 'w') as f:\n"
        "            f.write('x')\n"
        "        out[name] = 'written to ' + os.path.realpath(name)\n"
        "    except OSError as e:\n"
        "        out[name] = e.errno\n"
        "print(json.dumps(out))\n",
        "--arg", str(secret), "--arg", str(host_target),
    )
    try:
        out = lines_json(res)
        assert f"SECRET-CONTENT-{marker}" not in everything(res)
        for name in ("shadow", "hostfile", "up", "rootproc"):
            assert out[name] in (errno.ENOENT, errno.EACCES), (name, out[name])
        for name in ("hostdir", "selfroot"):
            assert out[name + "/ls"] in (errno.ENOENT, errno.EACCES), (name, out[name + "/ls"])
        assert out["w1"] == errno.EROFS, out
        assert out["w2"] == errno.EROFS, out
        # w3/w4 land in the sandbox's own /tmp at most; never on the host.
        for name in ("w3", "w4"):
            assert out[name] == errno.ENOENT or str(out[name]).startswith("written to /tmp/"), out[name]
        assert not host_target.exists(), f"the program wrote {host_target} on the host"
        assert not Path("/etc/pwned").exists() and not Path("/usr/pwned").exists()
        assert secret.read_text() == f"SECRET-CONTENT-{marker}\n"
    finally:
        if host_target.exists():
            host_target.unlink()


# ---- host environment and file descriptors ----------------------------------

ENV_PROG = r"""
import json, os
out = {"environ": dict(os.environ)}
for p in ("/proc/self/environ", "/proc/1/environ", "/proc/2/environ", "/proc/1/cmdline"):
    try:
        out[p] = open(p, "rb").read().decode("latin-1")
    except OSError as e:
        out[p] = "errno %d" % e.errno
print(json.dumps(out))
"""


def test_host_environment_does_not_leak(tmp_path):
    marker = new_marker("env")
    secret = f"SECRET-VALUE-{marker}"
    env = dict(os.environ)
    env["PYEXEC_DENY_SECRET"] = secret
    env["AWS_SECRET_ACCESS_KEY"] = secret
    env["LD_PRELOAD"] = "/nonexistent/" + marker + ".so"
    env["PYTHONSTARTUP"] = "/nonexistent/" + marker + ".py"
    res = run_json(tmp_path, ENV_PROG, env=env)
    out = lines_json(res)
    text = everything(res)
    assert secret not in text
    assert marker not in text
    assert "PYEXEC_DENY_SECRET" not in text and "AWS_SECRET_ACCESS_KEY" not in text
    assert set(out["environ"]) == ENV_EXPECTED, out["environ"]
    assert out["environ"]["HOME"] == "/sandbox"
    environ = dict(kv.split("=", 1) for kv in out["/proc/self/environ"].split("\0") if "=" in kv)
    assert set(environ) == ENV_EXPECTED, environ
    # init's environment and argv are the supervisor's: init is not even
    # visible (proc is mounted with hidepid=2 and init is undumpable).
    assert out["/proc/1/environ"] == f"errno {errno.ENOENT}", out["/proc/1/environ"]
    assert out["/proc/1/cmdline"] == f"errno {errno.ENOENT}", out["/proc/1/cmdline"]


# A program's descriptors past 0, 1 and 2, each described by its kind and
# access mode (listdir's own is closed again by the time they are looked at).
OPEN_FDS = (
    "import fcntl, os, stat\n"
    "def open_fds():\n"
    "    out = {}\n"
    "    for fd in sorted(int(x) for x in os.listdir('/proc/self/fd')):\n"
    "        try:\n"
    "            st = os.fstat(fd)\n"
    "        except OSError:\n"
    "            continue\n"
    "        if fd > 2:\n"
    "            acc = {os.O_RDONLY: 'read', os.O_WRONLY: 'write', os.O_RDWR: 'read-write'}[\n"
    "                fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE]\n"
    "            out[fd] = ('pipe' if stat.S_ISFIFO(st.st_mode) else oct(stat.S_IFMT(st.st_mode))) + ', ' + acc\n"
    "    return out\n"
)


def assert_only_the_images_pipe(extra):
    """Past 0, 1 and 2 a program holds at most the write end of its images
    pipe (the pictures it shows go to the supervisor through it), nothing
    of the host's."""
    assert len(extra) <= 1 and all(v == "pipe, write" for v in extra.values()), extra


def test_inherited_host_fds_do_not_reach_the_program(tmp_path):
    """A service's open files and sockets never reach a sandbox: pyexec is
    started with extra inherited fds (a secret file, a listening socket)."""
    marker = new_marker("fd")
    secret = tmp_path / "fd-secret.txt"
    secret.write_text(f"SECRET-FD-{marker}\n")
    listener = Listener(socket.AF_INET, "127.0.0.1")
    f = open(secret, "rb")
    try:
        fds = (f.fileno(), listener.sock.fileno())
        res = run_json(
            tmp_path,
            OPEN_FDS + "import json\n"
            "out = {'fds': open_fds(), 'open': {}}\n"
            "for fd in range(3, 1024):\n"
            "    try:\n"
            "        os.fstat(fd)\n"
            "    except OSError as e:\n"
            "        if e.errno != 9:\n"
            "            out['open'][fd] = 'errno %d' % e.errno\n"
            "        continue\n"
            "    try:\n"
            "        out['open'][fd] = os.pread(fd, 100, 0).decode('latin-1')\n"
            "    except OSError as e:\n"
            "        out['open'][fd] = 'open, read errno %d' % e.errno\n"
            "print(json.dumps(out))\n",
            pass_fds=fds,
        )
        out = lines_json(res)
        assert f"SECRET-FD-{marker}" not in everything(res)
        assert_only_the_images_pipe(out["fds"])
        # Whatever is open is not readable: the images pipe is write-only.
        assert set(out["open"]) == set(out["fds"]) and all(
            v == "open, read errno 29" for v in out["open"].values()), out  # ESPIPE
        assert listener.accepted == []
    finally:
        f.close()
        listener.close()


def test_stdin_is_read_only(tmp_path):
    stdin_file = tmp_path / "stdin.txt"
    stdin_file.write_text("original\n")
    res = run_json(
        tmp_path,
        "import os\n"
        "for how in ('fd', '/proc/self/fd/0', '/dev/stdin'):\n"
        "    try:\n"
        "        if how == 'fd':\n"
        "            os.write(0, b'overwritten')\n"
        "        else:\n"
        "            with open(how, 'r+b') as f:\n"
        "                f.write(b'overwritten')\n"
        "        print(how, 'WROTE')\n"
        "    except OSError as e:\n"
        "        print(how, 'errno', e.errno)\n"
        "print(repr(open('/dev/stdin').read()))\n",
        "--stdin", stdin_file,
    )
    assert res["status"] == "ok", brief(res)
    assert "WROTE" not in res["stdout"], res["stdout"]
    assert res["stdout"].splitlines()[-1] == repr("original\n")
    assert stdin_file.read_text() == "original\n"


# ---- network -------------------------------------------------------------------

NET_PROG = r"""
import json, socket, sys
port, port6 = int(sys.argv[1]), int(sys.argv[2])
abstract, ext = sys.argv[3], sys.argv[4:]
out = {}
targets = [("v4-loopback", socket.AF_INET, "127.0.0.1", port), ("v4-any", socket.AF_INET, "0.0.0.0", port),
           ("v6-loopback", socket.AF_INET6, "::1", port6 or port), ("v6-any", socket.AF_INET6, "::", port6 or port),
           ("v4-mapped", socket.AF_INET6, "::ffff:127.0.0.1", port), ("public", socket.AF_INET, "1.1.1.1", 80)]
targets += [("host-" + a, socket.AF_INET, a, port) for a in ext]
for name, fam, addr, p in targets:
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(1)
    try:
        s.connect((addr, p))
        s.sendall(b"ESCAPED")
        out[name] = "connected"
    except OSError as e:
        out[name] = e.errno
    finally:
        s.close()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    u.sendto(b"ESCAPED", ("127.0.0.1", port))
    out["udp"] = "sent"
except OSError as e:
    out["udp"] = e.errno
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect("\0" + abstract)
    s.sendall(b"ESCAPED")
    out["abstract"] = "connected"
except OSError as e:
    out["abstract"] = e.errno
try:
    out["dns"] = repr(socket.getaddrinfo("example.com", 80))
except OSError as e:
    out["dns"] = "gaierror %s" % e.errno
try:
    out["ifaces"] = [n for _, n in socket.if_nameindex()]
except OSError as e:
    out["ifaces"] = e.errno
print(json.dumps(out))
"""


def test_network_is_unreachable(run):
    marker = new_marker("net")
    v4 = Listener(socket.AF_INET, "0.0.0.0")  # every host IPv4 address, loopback included
    try:
        v6 = Listener(socket.AF_INET6, "::")
    except OSError:
        v6 = None
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", v4.port))
    udp.settimeout(0.3)
    ab = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ab.bind("\0" + marker)
    ab.listen(4)
    ab.settimeout(0.3)
    try:
        args = ["--arg", v4.port, "--arg", v6.port if v6 else 0, "--arg", marker]
        for a in host_addresses():
            args += ["--arg", a]
        res = run(NET_PROG, *args, "--timeout", 20000)
        out = lines_json(res)
        for name, v in out.items():
            if name in ("dns", "ifaces"):
                continue
            assert v != "connected" and v != "sent", f"{name}: {v}"
        assert out["v4-loopback"] == errno.ENETUNREACH
        assert out["abstract"] == errno.ECONNREFUSED
        assert out["dns"].startswith("gaierror"), out["dns"]
        assert out["ifaces"] in (["lo"], errno.EAFNOSUPPORT), out["ifaces"]
        # Host side: nothing arrived anywhere.
        time.sleep(0.2)
        assert v4.accepted == [], v4.accepted
        if v6:
            assert v6.accepted == [], v6.accepted
        with pytest.raises(socket.timeout):
            print(udp.recvfrom(100))
        with pytest.raises(socket.timeout):
            ab.accept()
        # Control: the listener does see a connection made from the host.
        c = socket.create_connection(("127.0.0.1", v4.port), timeout=2)
        c.sendall(b"control")
        c.close()
        for _ in range(50):
            if v4.accepted:
                break
            time.sleep(0.02)
        assert len(v4.accepted) == 1 and v4.accepted[0][1] == b"control", v4.accepted
    finally:
        v4.close()
        if v6:
            v6.close()
        udp.close()
        ab.close()


def test_socket_families_beyond_unix_and_ip_are_refused(run):
    res = run(
        "import socket, json\n"
        "out = {}\n"
        "for name, fam, typ in [('netlink', socket.AF_NETLINK, socket.SOCK_RAW), ('packet', socket.AF_PACKET, socket.SOCK_RAW),\n"
        "                       ('packet-dgram', socket.AF_PACKET, socket.SOCK_DGRAM), ('vsock', 40, socket.SOCK_STREAM),\n"
        "                       ('alg', 38, socket.SOCK_SEQPACKET), ('bluetooth', 31, socket.SOCK_STREAM),\n"
        "                       ('unspec', 0, socket.SOCK_STREAM), ('ax25', 3, socket.SOCK_SEQPACKET),\n"
        "                       ('key', 15, socket.SOCK_RAW), ('huge', 1 << 20, socket.SOCK_STREAM)]:\n"
        "    try:\n"
        "        socket.socket(fam, typ, 0).close()\n"
        "        out[name] = 'created'\n"
        "    except OSError as e:\n"
        "        out[name] = e.errno\n"
        "try:\n"
        "    socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)\n"
        "    out['raw-ip'] = 'created'\n"
        "except OSError as e:\n"
        "    out['raw-ip'] = e.errno\n"
        "print(json.dumps(out))\n")
    out = lines_json(res)
    for name in ("netlink", "packet", "packet-dgram", "vsock", "alg", "bluetooth", "unspec", "ax25", "key", "huge"):
        assert out[name] == errno.EAFNOSUPPORT, (name, out[name])
    # A raw IP socket needs CAP_NET_RAW, which the program lacks.
    assert out["raw-ip"] == errno.EPERM, out["raw-ip"]


def test_socketpair_is_unix_only(run):
    """socketpair(2) creates sockets without socket(2): no family but
    AF_UNIX may come out of it either (AF_TIPC, for one, supports it)."""
    res = run("import ctypes, json\n"
              "libc = ctypes.CDLL(None, use_errno=True)\n"
              "made = []\n"
              "for fam in list(range(0, 64)) + [1 << 20]:\n"
              "    if fam == 1:\n"
              "        continue\n"
              "    for typ in (1, 2, 3, 5):\n"
              "        sv = (ctypes.c_int * 2)()\n"
              "        if libc.socketpair(fam, typ, 0, sv) == 0:\n"
              "            made.append([fam, typ])\n"
              "sv = (ctypes.c_int * 2)()\n"
              "print(json.dumps({'made': made, 'unix': libc.socketpair(1, 1, 0, sv)}))\n")
    out = lines_json(res)
    assert out["made"] == [], f"socketpair created sockets of families other than AF_UNIX: {out['made']}"
    assert out["unix"] == 0


# ---- processes: bombs, daemons, survivors --------------------------------------

FORK_BOMB = r"""
import os, sys
print(os.getuid(), flush=True)
while True:
    try:
        os.fork()
    except OSError:
        pass
"""


def test_fork_bomb_is_contained_and_leaves_nothing(run, privileged):
    marker = new_marker("fork")
    t0 = time.monotonic()
    res = run(FORK_BOMB, "--arg", marker, "--timeout", 1500, "--pids", 32)
    elapsed = time.monotonic() - t0
    assert res["status"] == "timeout", brief(res)
    assert elapsed < 8, elapsed
    assert_nothing_survives(marker, uid_of(res, privileged))


THREAD_BOMB = r"""
import os, sys, threading, time
print(os.getuid(), flush=True)
n = 0
try:
    while n < 100000:
        threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
        n += 1
except RuntimeError as e:
    print("stopped", n, e, flush=True)
print("threads", threading.active_count(), flush=True)
"""


def test_thread_bomb_is_contained_and_leaves_nothing(run, privileged):
    marker = new_marker("thread")
    res = run(THREAD_BOMB, "--arg", marker, "--timeout", 5000, "--pids", 32)
    assert res["status"] == "ok", brief(res)
    assert "stopped" in res["stdout"], res["stdout"]
    threads = int(res["stdout"].split("threads")[1].split()[0])
    # pids counts tasks: the main thread included, never more than the limit.
    assert threads <= 32, threads
    assert_nothing_survives(marker, uid_of(res, privileged))


def test_fork_bomb_with_setsid_children_and_exit(run, privileged):
    """Children that leave the session and outlive an exiting main program."""
    marker = new_marker("forkexit")
    res = run(
        "import os, sys, time\n"
        "print(os.getuid(), flush=True)\n"
        "for i in range(20):\n"
        "    try:\n"
        "        pid = os.fork()\n"
        "    except OSError:\n"
        "        break\n"
        "    if pid == 0:\n"
        "        os.setsid()\n"
        "        signal = __import__('signal')\n"
        "        for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):\n"
        "            signal.signal(s, signal.SIG_IGN)\n"
        "        while True:\n"
        "            try:\n"
        "                os.fork()\n"
        "            except OSError:\n"
        "                time.sleep(0.01)\n"
        "time.sleep(0.3)\n"
        "print('main exits', flush=True)\n",
        "--arg", marker, "--timeout", 5000, "--pids", 40,
    )
    assert res["status"] == "ok", brief(res)
    assert_nothing_survives(marker, uid_of(res, privileged))


DAEMON = r"""
import os, sys, time
marker = sys.argv[1]
print(os.getuid(), flush=True)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        import signal
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        for fd in (0, 1, 2):
            os.close(fd)
        os.execv("/usr/bin/python3", ["/usr/bin/python3", "-c",
                 "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)", marker])
    os._exit(0)
os.wait()
time.sleep(0.2)
"""


def test_daemonized_grandchild_dies_with_the_run(run, privileged):
    marker = new_marker("daemon")
    res = run(DAEMON, "--arg", marker, "--timeout", 5000)
    assert res["status"] == "ok", brief(res)
    assert_nothing_survives(marker, uid_of(res, privileged))


def test_daemonized_grandchild_dies_on_timeout(run, privileged):
    marker = new_marker("daemonto")
    res = run(DAEMON + "time.sleep(60)\n", "--arg", marker, "--timeout", 1000)
    assert res["status"] == "timeout", brief(res)
    assert_nothing_survives(marker, uid_of(res, privileged))


def test_killing_the_supervisor_takes_the_run_along(tmp_path, privileged, host_info):
    """If pyexec itself dies (SIGKILL: no cleanup code runs), nothing of the
    run may keep running on the host: no timer enforces its limits any more.
    (Its cgroup directory may stay behind: the next run of that slot empties
    and reuses it, by design; this test removes it itself.)"""
    skip_on_service("kills the local `pyexec run`")
    marker = new_marker("orphan")
    uid = None
    prog = tmp_path / "orphan.py"
    prog.write_text(DAEMON.replace("os.wait()\ntime.sleep(0.2)\n",
                                   "os.wait()\ntime.sleep(0.2)\nprint('ready', flush=True)\ntime.sleep(60)\n"))
    p = subprocess.Popen([PYEXEC, "run", "--timeout", "30000", "--arg", marker, str(prog)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        first = p.stdout.readline().decode()
        uid = int(first.split()[0]) if privileged and first.split() and first.split()[0].isdigit() else None
        assert p.stdout.readline() == b"ready\n"
        assert host_pids_matching(marker), "the run's processes should be running now"
        p.kill()
        p.wait(5)
        assert_nothing_survives(marker, uid, grace=1.0)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(5)
        _kill_leftovers(host_pids_matching(marker), marker)
        if uid is not None:
            _remove_stale_cgroups(host_info, uid)


def _remove_stale_cgroups(host_info, uid):
    idx = uid - host_info["uids"]["base"]
    cg = host_info.get("cgroup") or {}
    for parent in (cg.get("memory"), cg.get("pids"), cg.get("cpu")):
        if not parent:
            continue
        d = Path(parent) / f"box-{idx}"
        for _ in range(40):  # the killed tasks leave the group as they are reaped
            try:
                if not d.exists():
                    break
                if not (d / "cgroup.procs").read_text().strip():
                    d.rmdir()
                    break
            except OSError:
                pass
            time.sleep(0.05)


# ---- memory ----------------------------------------------------------------------


def test_memory_bomb_in_main_process(run, privileged):
    marker = new_marker("mem")
    res = run("import os, sys\nprint(os.getuid(), flush=True)\nx = []\nwhile True:\n    x.append(b'x' * (1 << 20))\n",
              "--arg", marker, "--memory", 64, "--timeout", 10000)
    assert res["status"] == "memory_limit", brief(res)
    assert "64 MB" in res["message"]
    # The machine (and pyexec) are fine afterwards.
    again = run("print('fine')")
    assert again["status"] == "ok" and again["stdout"] == "fine\n", again
    if privileged:
        # The cgroup's high-water mark stays at the limit.
        assert res["memory"]["peakKb"] <= 64 * 1024 + 1024, res["memory"]
    assert_nothing_survives(marker, uid_of(res, privileged))


def test_memory_bomb_in_forked_child(run, privileged):
    marker = new_marker("memchild")
    res = run(
        "import os, sys\n"
        "print(os.getuid(), flush=True)\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    x = []\n"
        "    while True:\n"
        "        x.append(bytearray(1 << 20))\n"
        "_, st = os.waitpid(pid, 0)\n"
        "print('child', 'signal' if os.WIFSIGNALED(st) else 'exit',\n"
        "      os.WTERMSIG(st) if os.WIFSIGNALED(st) else os.WEXITSTATUS(st), flush=True)\n",
        "--arg", marker, "--memory", 64, "--timeout", 10000,
    )
    line = [l for l in res["stdout"].splitlines() if l.startswith("child ")]
    if privileged:
        # The cgroup's OOM killer picks the big child, not its parent; and
        # one OOM kill ends the whole run (memory.oom.group on v2, the
        # supervisor on v1, at its next look at the counter). Whether the
        # parent gets to report its child's death first is a race (the
        # child's exit takes tens of milliseconds here): when it does, it
        # saw SIGKILL; either way the run is a memory_limit verdict.
        assert res["status"] == "memory_limit", brief(res)
        assert "OOM killer" in res["message"], brief(res)
        if line:
            assert line[0].split()[1:] == ["signal", str(int(signal.SIGKILL))], line
        else:
            assert res["signal"] == "SIGKILL", brief(res)
    else:
        assert line, brief(res)
        kind, value = line[0].split()[1:]
        # RLIMIT_AS: the child's allocation fails with MemoryError.
        assert (kind, int(value)) == ("exit", 1), line
        assert "MemoryError" in res["stderr"]
    assert res["status"] in ("ok", "memory_limit"), brief(res)
    assert_nothing_survives(marker, uid_of(res, privileged))


def test_limits_cannot_be_raised_from_inside(run):
    res = run("import resource, json\n"
              "out = {}\n"
              "for name in ('RLIMIT_CPU', 'RLIMIT_FSIZE', 'RLIMIT_NOFILE', 'RLIMIT_AS', 'RLIMIT_NPROC',\n"
              "             'RLIMIT_CORE', 'RLIMIT_MSGQUEUE'):\n"
              "    r = getattr(resource, name)\n"
              "    soft, hard = resource.getrlimit(r)\n"
              "    if hard == resource.RLIM_INFINITY:\n"
              "        continue\n"
              "    try:\n"
              "        resource.setrlimit(r, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))\n"
              "        out[name] = 'raised'\n"
              "    except (ValueError, OSError) as e:\n"
              "        out[name] = 'refused'\n"
              "print(json.dumps(out))\n")
    out = lines_json(res)
    # CPU, FSIZE, NOFILE, CORE and MSGQUEUE are always set; AS/NPROC only
    # as fallbacks for missing cgroups.
    for name in ("RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_NOFILE", "RLIMIT_CORE", "RLIMIT_MSGQUEUE"):
        assert out.get(name) == "refused", (name, out)
    assert "raised" not in out.values(), out


# ---- time ------------------------------------------------------------------------


def test_cpu_loop_hits_the_cpu_limit(run, privileged):
    marker = new_marker("cpu")
    t0 = time.monotonic()
    res = run("import os\nprint(os.getuid(), flush=True)\nwhile True:\n    pass\n",
              "--arg", marker, "--cpu-time", 1000, "--timeout", 8000)
    assert time.monotonic() - t0 < 5
    assert res["status"] == "timeout", brief(res)
    assert "CPU" in res["message"], res["message"]
    assert_nothing_survives(marker, uid_of(res, privileged))


def test_sleep_past_the_wall_timeout(run, privileged):
    marker = new_marker("sleep")
    t0 = time.monotonic()
    res = run("import os, time\nprint(os.getuid(), flush=True)\ntime.sleep(30)\n",
              "--arg", marker, "--timeout", 1000)
    elapsed = time.monotonic() - t0
    assert res["status"] == "timeout", brief(res)
    assert "wall-clock" in res["message"], res["message"]
    assert res["signal"] == "SIGKILL"
    assert 0.9 < elapsed < 5, elapsed
    assert_nothing_survives(marker, uid_of(res, privileged))


def test_program_ignoring_sigterm_is_still_killed(run, privileged):
    marker = new_marker("sigterm")
    t0 = time.monotonic()
    res = run(
        "import os, signal, time\n"
        "print(os.getuid(), flush=True)\n"
        "for s in range(1, signal.NSIG):\n"
        "    if s not in (signal.SIGKILL, signal.SIGSTOP, 32, 33):\n"
        "        try:\n"
        "            signal.signal(s, signal.SIG_IGN)\n"
        "        except (OSError, ValueError):\n"
        "            pass\n"
        "while True:\n"
        "    time.sleep(0.05)\n",
        "--arg", marker, "--timeout", 1000,
    )
    assert time.monotonic() - t0 < 5
    assert res["status"] == "timeout", brief(res)
    assert res["signal"] == "SIGKILL"
    assert_nothing_survives(marker, uid_of(res, privileged))


def test_no_realtime_scheduling_or_priority_boost(run):
    """A SCHED_FIFO busy loop would starve the host's own processes."""
    res = run("import os, ctypes, json\n"
              "out = {}\n"
              "for name in ('SCHED_FIFO', 'SCHED_RR'):\n"
              "    try:\n"
              "        os.sched_setscheduler(0, getattr(os, name), os.sched_param(1))\n"
              "        out[name] = 'granted'\n"
              "    except OSError as e:\n"
              "        out[name] = e.errno\n"
              "try:\n"
              "    os.setpriority(os.PRIO_PROCESS, 0, -5)\n"
              "    out['nice'] = 'granted'\n"
              "except OSError as e:\n"
              "    out['nice'] = e.errno\n"
              "libc = ctypes.CDLL(None, use_errno=True)\n"
              "r = libc.syscall(251, 1, 0, (1 << 13) | 0)\n"  # ioprio_set(PROCESS, self, RT class)
              "out['ioprio_rt'] = ctypes.get_errno() if r < 0 else 'granted'\n"
              "out['policy'] = os.sched_getscheduler(0)\n"
              "print(json.dumps(out))\n")
    out = lines_json(res)
    assert out["SCHED_FIFO"] == errno.EPERM and out["SCHED_RR"] == errno.EPERM, out
    assert out["nice"] == errno.EACCES or out["nice"] == errno.EPERM, out
    assert out["ioprio_rt"] == errno.EPERM, out
    assert out["policy"] == os.SCHED_OTHER


# ---- output ------------------------------------------------------------------------


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_output_flood_is_cut_at_the_cap(run, stream, privileged):
    marker = new_marker("flood")
    t0 = time.monotonic()
    res = run(f"import os, sys\nline = 'x' * 4095 + '\\n'\nwhile True:\n    sys.{stream}.write(line)\n",
              "--arg", marker, "--max-output", 10000, "--timeout", 10000)
    elapsed = time.monotonic() - t0
    assert res["status"] == "output_limit", brief(res)
    assert res["truncated"] is True
    assert len(res["stdout"]) + len(res["stderr"]) == 10000
    assert len(res[stream]) == 10000
    assert elapsed < 3, elapsed
    assert_nothing_survives(marker)


def test_output_flood_from_many_processes(run, privileged):
    marker = new_marker("flood2")
    t0 = time.monotonic()
    res = run("import os, sys\n"
              "for i in range(8):\n"
              "    if os.fork() == 0:\n"
              "        break\n"
              "while True:\n"
              "    os.write(1 if os.getpid() % 2 else 2, b'y' * 65536)\n",
              "--arg", marker, "--max-output", 20000, "--timeout", 10000)
    assert time.monotonic() - t0 < 3
    assert res["status"] == "output_limit", brief(res)
    assert len(res["stdout"]) + len(res["stderr"]) == 20000
    assert_nothing_survives(marker)


# ---- disk ----------------------------------------------------------------------------


def test_huge_sparse_file_is_refused(run):
    res = run("import errno\n"
              "for d in ('/sandbox', '/tmp'):\n"
              "    try:\n"
              "        with open(d + '/sparse', 'wb') as f:\n"
              "            f.seek(10 ** 12)\n"
              "            f.write(b'x')\n"
              "        print(d, 'WROTE')\n"
              "    except OSError as e:\n"
              "        print(d, e.errno)\n"
              "import os\n"
              "try:\n"
              "    fd = os.open('/sandbox/t', os.O_WRONLY | os.O_CREAT)\n"
              "    os.ftruncate(fd, 10 ** 12)\n"
              "    print('truncate', 'GREW', os.fstat(fd).st_size)\n"
              "except OSError as e:\n"
              "    print('truncate', e.errno)\n")
    assert res["status"] == "ok", brief(res)
    assert res["stdout"].split("\n")[:3] == [f"/sandbox {errno.EFBIG}", f"/tmp {errno.EFBIG}",
                                              f"truncate {errno.EFBIG}"], res["stdout"]


DISK_FILL = r"""
import json, os, sys
marker = sys.argv[1]
out = {}
for d in ("/sandbox", "/tmp"):
    total, n = 0, 0
    try:
        while True:
            with open(f"{d}/{marker}-fill{n}", "wb") as f:
                n += 1
                for _ in range(16):
                    f.write(b"\0" * 65536)
                    total += 65536
    except OSError as e:
        out[d] = [e.errno, total]
    for i in range(n):
        os.unlink(f"{d}/{marker}-fill{i}")
    n = 0
    try:
        while n < 100000:
            open(f"{d}/{marker}-{n}", "w").close()
            n += 1
    except OSError as e:
        out[d + "-inodes"] = [e.errno, n]
print(json.dumps(out))
"""


def test_disk_fill_stops_at_the_disk_limit(run):
    marker = new_marker("disk")
    before = {p.name for p in Path("/tmp").iterdir()}
    res = run(DISK_FILL, "--arg", marker, "--disk", 4, "--file-size", 64)
    out = lines_json(res)
    for d in ("/sandbox", "/tmp"):
        err, total = out[d]
        assert err == errno.ENOSPC, out
        assert 3 * 2**20 <= total <= 4 * 2**20, out
        err, n = out[d + "-inodes"]
        assert err == errno.ENOSPC, out
        assert 4000 <= n <= 4096, out
    # Host side: nothing of it landed in the host's /tmp (where the
    # sandbox's root is staged) or in the test directory.
    after = {p.name for p in Path("/tmp").iterdir()}
    assert not [n for n in after - before if marker in n]
    assert not [p for p in HERE.iterdir() if marker in p.name]


# /dev/shm: a tmpfs of the run's own, /tmp's twin. The program fills it,
# counts its files up to the inode cap, and leaves a file named after the
# marker there.
DEV_SHM = r"""
import json, os, sys
marker = sys.argv[1]
sv = os.statvfs("/dev/shm")
out = {"bytes": sv.f_blocks * sv.f_frsize, "inodes": sv.f_files, "flags": sv.f_flag,
       "mode": os.stat("/dev/shm").st_mode & 0o7777, "found": sorted(os.listdir("/dev/shm"))}
with open(f"/dev/shm/{marker}", "w") as f:
    f.write(marker)
total, n = 0, 0
try:
    while True:
        with open(f"/dev/shm/{marker}-fill{n}", "wb") as f:
            n += 1
            for _ in range(16):
                f.write(b"\0" * 65536)
                total += 65536
except OSError as e:
    out["fill"] = [e.errno, total]
for i in range(n):
    os.unlink(f"/dev/shm/{marker}-fill{i}")
n = 0
try:
    while n < 100000:
        open(f"/dev/shm/{marker}-{n}", "w").close()
        n += 1
except OSError as e:
    out["inodes-made"] = [e.errno, n]
for i in range(n):
    os.unlink(f"/dev/shm/{marker}-{i}")
print(json.dumps(out))
"""


def host_dev_shm():
    return {p.name for p in Path("/dev/shm").iterdir()}


def test_dev_shm_is_a_private_tmpfs_of_the_disk_limit(run):
    marker = new_marker("shm")
    before = host_dev_shm()
    out = lines_json(run(DEV_SHM, "--arg", marker, "--disk", 4, "--file-size", 64))
    assert out["bytes"] == 4 * 2**20 and out["inodes"] == 4096, out
    assert out["mode"] == 0o1777, out
    nosuid_nodev_noexec = os.ST_NOSUID | os.ST_NODEV | os.ST_NOEXEC
    assert out["flags"] & nosuid_nodev_noexec == nosuid_nodev_noexec and not out["flags"] & os.ST_RDONLY, out
    assert out["found"] == [], out
    err, total = out["fill"]
    assert err == errno.ENOSPC and 3 * 2**20 <= total <= 4 * 2**20, out
    err, n = out["inodes-made"]
    assert err == errno.ENOSPC and 4000 <= n <= 4096, out
    # Host side: the host's /dev/shm never saw the run's files, and the next
    # run finds its own /dev/shm empty, not the file this one left.
    assert not [n for n in host_dev_shm() | before if marker in n]
    out = lines_json(run("import json, os\nprint(json.dumps(os.listdir('/dev/shm')))\n"))
    assert out == [], out


def test_dev_shm_counts_against_the_memory_limit(run, privileged):
    """Files in /dev/shm are shmem pages: charged to the run's memory cgroup,
    like /tmp's, so a disk limit above the memory limit does not let a run
    hold more memory than its limit. Without a cgroup (unprivileged here),
    the disk limit bounds them."""
    marker = new_marker("shmmem")
    before = host_dev_shm()
    res = run("import errno, sys\n"
              "total = 0\n"
              "try:\n"
              "    for i in range(64):\n"
              "        with open(f'/dev/shm/{sys.argv[1]}-{i}', 'wb') as f:\n"
              "            for _ in range(8):\n"
              "                f.write(b'x' * (1 << 20))\n"
              "                total += 1 << 20\n"
              "except OSError as e:\n"
              "    print(errno.errorcode[e.errno], total >> 20)\n",
              "--arg", marker, "--memory", 32, "--disk", 64, "--timeout", 20000)
    if privileged:
        assert res["status"] == "memory_limit", brief(res)
        assert res["memory"]["peakKb"] <= 32 * 1024 + 1024, res["memory"]
    else:
        assert res["status"] == "ok", brief(res)
        err, mib = res["stdout"].split()
        assert err == "ENOSPC" and 60 <= int(mib) <= 64, brief(res)
    assert not [n for n in host_dev_shm() | before if marker in n]


def test_file_size_limit_is_enforced(run):
    res = run("import errno\n"
              "try:\n"
              "    with open('/sandbox/big', 'wb') as f:\n"
              "        for i in range(64):\n"
              "            f.write(b'z' * (1 << 20))\n"
              "    print('WROTE 64 MB')\n"
              "except OSError as e:\n"
              "    import os\n"
              "    print(e.errno, os.path.getsize('/sandbox/big'))\n",
              "--disk", 64, "--file-size", 2)
    assert res["status"] == "ok", brief(res)
    err, size = map(int, res["stdout"].split())
    assert err == errno.EFBIG
    assert size <= 2 * 2**20


# ---- processes of the host ---------------------------------------------------------------


def test_host_processes_are_invisible_and_unreachable(run, tmp_path):
    # A victim on the host, running as this very user (on the unprivileged
    # path the sandbox's uid maps to it: only the PID namespace protects it).
    victim = subprocess.Popen(["/usr/bin/sleep", "30"])
    try:
        res = run(
            "import os, signal, sys, json, ctypes\n"
            "out = {'pids': sorted(int(p) for p in os.listdir('/proc') if p.isdigit())}\n"
            "for name in sys.argv[1:]:\n"
            "    pid = int(name)\n"
            "    for sig in (signal.SIGKILL, signal.SIGSTOP, 0):\n"
            "        try:\n"
            "            os.kill(pid, sig)\n"
            "            out['kill %d %d' % (pid, sig)] = 'delivered'\n"
            "        except OSError as e:\n"
            "            out['kill %d %d' % (pid, sig)] = e.errno\n"
            "    try:\n"
            "        os.killpg(pid, signal.SIGKILL)\n"
            "        out['killpg %d' % pid] = 'delivered'\n"
            "    except OSError as e:\n"
            "        out['killpg %d' % pid] = e.errno\n"
            "    out['visible %d' % pid] = os.path.exists('/proc/%d' % pid)\n"
            "libc = ctypes.CDLL(None, use_errno=True)\n"
            "fd = libc.syscall(434, int(sys.argv[1]), 0)\n"  # pidfd_open
            "out['pidfd_open'] = ctypes.get_errno() if fd < 0 else 'opened'\n"
            "# Signals aimed at everything: only the program's own processes qualify.\n"
            "try:\n"
            "    os.kill(-1, signal.SIGKILL)\n"
            "    out['kill -1'] = 'delivered'\n"
            "except OSError as e:\n"
            "    out['kill -1'] = e.errno\n"
            "print(json.dumps(out))\n",
            "--arg", victim.pid, "--arg", os.getpid(), "--arg", os.getppid(),
        )
        out = lines_json(res)
        # Only the program itself: init (pid 1) is hidden by hidepid=2.
        assert out["pids"] == [2], out["pids"]
        for pid in (victim.pid, os.getpid(), os.getppid()):
            if pid in (1, 2):
                continue
            assert out[f"visible {pid}"] is False
            for sig in (signal.SIGKILL, signal.SIGSTOP, 0):
                assert out[f"kill {pid} {int(sig)}"] == errno.ESRCH, out
            assert out[f"killpg {pid}"] == errno.ESRCH, out
        assert out["pidfd_open"] == errno.ESRCH, out
        assert out["kill -1"] == errno.ESRCH, out  # init is immune, nothing else to hit
        # Host side: the victim and this process are alive and not stopped.
        time.sleep(0.1)
        assert victim.poll() is None, "the host victim process was killed"
        with open(f"/proc/{victim.pid}/status") as f:
            state = [l for l in f if l.startswith("State:")][0]
        assert "T" not in state.split()[1], state
    finally:
        victim.kill()
        victim.wait()


def test_init_cannot_be_killed_from_inside(run):
    res = run("import os, signal, time\n"
              "for sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGSTOP, signal.SIGINT, signal.SIGSEGV):\n"
              "    try:\n"
              "        os.kill(1, sig)\n"
              "        print('sent', int(sig))\n"
              "    except OSError as e:\n"
              "        print('errno', e.errno)\n"
              "time.sleep(0.3)\n"
              "print('still here')\n",
              "--timeout", 5000)
    # Had init died (or stopped reaping), the kernel would have killed the
    # program with it and the run would not end normally.
    assert res["status"] == "ok", brief(res)
    assert res["stdout"].rstrip().endswith("still here")


# ---- kernel calls ----------------------------------------------------------------------------

SYSCALL_PROG = r"""
import ctypes, json, os, threading
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def sc(nr, *args):
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    return [r, ctypes.get_errno()]
def s(b):
    return ctypes.addressof(ctypes.create_string_buffer(b))
buf = ctypes.create_string_buffer(4096)
B = ctypes.addressof(buf)
calls = {
    "ptrace_traceme": (101, 0, 0, 0, 0),
    "ptrace_attach_1": (101, 16, 1, 0, 0),
    "ptrace_seize_1": (101, 0x4206, 1, 0, 0),
    "mount": (165, s(b"none"), s(b"/tmp"), s(b"tmpfs"), 0, 0),
    "mount_remount_usr_rw": (165, 0, s(b"/usr"), 0, 0x20 | 0x1000, 0),
    "umount2": (166, s(b"/proc"), 2),
    "unshare_user": (272, 0x10000000),
    "unshare_mount": (272, 0x00020000),
    "unshare_net": (272, 0x40000000),
    "clone_newuser": (56, 0x10000000 | 17, 0, 0, 0, 0),
    "clone_newns": (56, 0x00020000 | 17, 0, 0, 0, 0),
    "bpf": (321, 0, B, 48),
    "clone3": (435, B, 88),
    "io_uring_setup": (425, 8, B),
    "io_uring_enter": (426, 0, 0, 0, 0, 0, 0),
    "keyctl": (250, 0, -3, 0),
    "add_key": (248, s(b"user"), s(b"k"), s(b"v"), 1, -3),
    "request_key": (249, s(b"user"), s(b"k"), 0, -3),
    "personality_no_aslr": (135, 0x0040000),
    "personality_exec": (135, 0x0400000),
    "setns": (308, 0, 0),
    "process_vm_readv": (310, 1, B, 1, B, 1, 0),
    "process_vm_writev": (311, 1, B, 1, B, 1, 0),
    "perf_event_open": (298, B, 0, -1, -1, 0),
    "userfaultfd": (323, 0),
    "open_by_handle_at": (304, -100, B, 0),
    "name_to_handle_at": (303, -100, s(b"/"), B, B, 0),
    "chroot": (161, s(b"/tmp")),
    "pivot_root": (155, s(b"/tmp"), s(b"/tmp")),
    "kexec_load": (246, 0, 0, 0, 0),
    "init_module": (175, B, 16, s(b"")),
    "finit_module": (313, 0, s(b""), 0),
    "delete_module": (176, s(b"ext4"), 0),
    "reboot": (169, 0xfee1dead, 672274793, 0x4321fedc, 0),
    "syslog": (103, 3, B, 100),
    "swapon": (167, s(b"/tmp/x"), 0),
    "acct": (163, s(b"/tmp/acct")),
    "iopl": (172, 3),
    "ioperm": (173, 0x80, 1, 1),
    "settimeofday": (164, B, 0),
    "clock_settime": (227, 0, B),
    "kcmp": (312, 1, 2, 0, 0, 0),
    "pidfd_getfd": (438, 0, 0, 0),
    "fsopen": (430, s(b"tmpfs"), 0),
    "open_tree": (428, -100, s(b"/usr"), 1),
    "move_mount": (429, -100, s(b"/usr"), -100, s(b"/tmp"), 0),
    "mount_setattr": (442, -100, s(b"/usr"), 0, B, 32),
    "setuid_0": (105, 0),
    "setgid_0": (106, 0),
    "ioctl_tiocsti": (16, 0, 0x5412, B),
    # The host's hugetlb pool (the zygote's memory lives there).
    "mmap_hugetlb": (9, 0, 2 << 20, 3, 0x22 | 0x40000, -1, 0),
    "memfd_hugetlb": (319, s(b"x"), 1 | 4),
    "shmget_hugetlb": (29, 0, 2 << 20, 0o1000 | 0o600 | 0o4000),
}
out = {name: sc(*args) for name, args in calls.items()}
# The filter is inherited: a thread and a forked child are bound too.
box = {}
t = threading.Thread(target=lambda: box.update(thread=sc(272, 0x10000000), thread_ptrace=sc(101, 0, 0, 0, 0)))
t.start(); t.join()
out.update(box)
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.write(w, json.dumps([sc(272, 0x10000000), sc(165, s(b"none"), s(b"/tmp"), s(b"tmpfs"), 0, 0)]).encode())
    os._exit(0)
os.waitpid(pid, 0)
out["child_unshare"], out["child_mount"] = json.loads(os.read(r, 1000))
print(json.dumps(out))
"""

EPERM_CALLS = [
    "ptrace_traceme", "ptrace_attach_1", "ptrace_seize_1", "mount", "mount_remount_usr_rw", "umount2",
    "unshare_user", "unshare_mount", "unshare_net", "clone_newuser", "clone_newns", "bpf", "keyctl", "add_key",
    "request_key", "personality_no_aslr", "personality_exec", "setns", "process_vm_readv", "process_vm_writev",
    "perf_event_open", "userfaultfd", "open_by_handle_at", "name_to_handle_at", "chroot", "pivot_root",
    "kexec_load", "init_module", "finit_module", "delete_module", "reboot", "syslog", "swapon", "acct", "iopl",
    "ioperm", "settimeofday", "clock_settime", "kcmp", "pidfd_getfd", "fsopen", "open_tree", "move_mount",
    "mount_setattr", "ioctl_tiocsti", "thread", "thread_ptrace", "child_unshare", "child_mount",
    "mmap_hugetlb", "memfd_hugetlb", "shmget_hugetlb",
]
ENOSYS_CALLS = ["clone3", "io_uring_setup", "io_uring_enter"]


def hugetlb_counters():
    with open("/proc/meminfo") as f:
        return {k: v.strip() for k, v in (line.split(":", 1) for line in f) if k.startswith("HugePages_")}


@pytest.fixture
def huge_pages_free():
    """As root: a few free pages in the host's hugetlb pool during the test,
    so that a hugetlb call the filter let through would succeed (without a
    pool the kernel itself refuses, with ENOMEM)."""
    if os.geteuid() != 0:
        yield
        return
    with open("/proc/sys/vm/nr_hugepages") as f:
        before = int(f.read())
    with open("/proc/sys/vm/nr_hugepages", "w") as f:
        f.write(str(before + 4))
    yield
    with open("/proc/sys/vm/nr_hugepages", "w") as f:
        f.write(str(before))


def test_dangerous_syscalls_fail_with_exact_errnos(run, privileged, huge_pages_free):
    huge_before = hugetlb_counters()
    res = run(SYSCALL_PROG)
    out = lines_json(res)
    wrong = {}
    for name in EPERM_CALLS:
        if out[name] != [-1, errno.EPERM]:
            wrong[name] = out[name]
    for name in ENOSYS_CALLS:
        if out[name] != [-1, errno.ENOSYS]:
            wrong[name] = out[name]
    # setuid(0) is refused by the kernel: EPERM as root's sandbox uid; in a
    # user namespace uid 0 is not even mapped (EINVAL).
    expect_id = errno.EPERM if privileged else errno.EINVAL
    for name in ("setuid_0", "setgid_0"):
        if out[name] != [-1, expect_id]:
            wrong[name] = out[name]
    assert not wrong, f"calls that did not fail as they should (name: [return, errno]): {wrong}"
    assert not Path("/tmp/acct").exists()
    # Nothing taken from the pool, not even reserved.
    assert hugetlb_counters() == huge_before


def test_x32_syscall_kills_the_process(run):
    res = run("import ctypes\n"
              "libc = ctypes.CDLL(None, use_errno=True)\n"
              "libc.syscall.restype = ctypes.c_long\n"
              "print('before', flush=True)\n"
              "r = libc.syscall(ctypes.c_long(0x40000000 | 39))\n"  # x32 getpid
              "print('survived', r, ctypes.get_errno(), flush=True)\n")
    assert res["signal"] == "SIGSYS", brief(res)
    assert res["status"] == "runtime_error", brief(res)
    assert res["stdout"] == "before\n"


INT80 = r"""
import ctypes, mmap, sys
code = bytes([0xb8, 20, 0, 0, 0, 0xcd, 0x80, 0xc3])  # mov eax, 20 (i386 getpid); int 0x80; ret
m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
m.write(code)
f = ctypes.CFUNCTYPE(ctypes.c_long)(ctypes.addressof(ctypes.c_char.from_buffer(m)))
print("before", flush=True)
print("survived", f(), flush=True)
"""


def test_int80_syscall_kills_the_process(run):
    # Control: does this machine run 32-bit system calls at all? (Some
    # hypervisors fault on int 0x80 from 64-bit code whatever the kernel.)
    host = subprocess.run(["/usr/bin/python3", "-c", INT80], capture_output=True, timeout=30)
    if b"survived" not in host.stdout:
        pytest.skip(f"int 0x80 does not work on this host outside the sandbox either (rc {host.returncode})")
    res = run(INT80)
    assert res["stdout"] == "before\n", brief(res)
    assert res["signal"] == "SIGSYS", brief(res)


# ---- devices and read-only filesystem ----------------------------------------------------------


def test_only_harmless_devices(run):
    res = run(
        "import os, json, stat\n"
        "out = {'dev': sorted(os.listdir('/dev'))}\n"
        "for p in ('/dev/sda', '/dev/vda', '/dev/mem', '/dev/kmem', '/dev/port', '/dev/kmsg', '/dev/tty',\n"
        "          '/dev/console', '/dev/ptmx', '/dev/pts', '/dev/mqueue', '/dev/fuse', '/dev/kvm',\n"
        "          '/dev/net/tun', '/dev/loop0', '/dev/loop-control', '/dev/cpu', '/dev/hpet'):\n"
        "    out[p] = os.path.lexists(p)\n"
        "with open('/dev/null', 'w') as f:\n"
        "    out['null'] = f.write('discarded')\n"
        "out['zero'] = open('/dev/zero', 'rb').read(4) == b'\\0' * 4\n"
        "out['urandom'] = len(open('/dev/urandom', 'rb').read(16))\n"
        "try:\n"
        "    with open('/dev/full', 'w') as f:\n"
        "        f.write('x')\n"
        "    out['full'] = 'written'\n"
        "except OSError as e:\n"
        "    out['full'] = e.errno\n"
        "for name, mode, dev in [('/sandbox/sda', stat.S_IFBLK, os.makedev(8, 0)),\n"
        "                        ('/tmp/mem', stat.S_IFCHR, os.makedev(1, 1)),\n"
        "                        ('/dev/kmsg2', stat.S_IFCHR, os.makedev(1, 11))]:\n"
        "    try:\n"
        "        os.mknod(name, mode | 0o666, dev)\n"
        "        out[name] = 'created'\n"
        "    except OSError as e:\n"
        "        out[name] = e.errno\n"
        "for name in ('/dev/newfile', '/dev/null.d'):\n"
        "    try:\n"
        "        open(name, 'w')\n"
        "        out[name] = 'created'\n"
        "    except OSError as e:\n"
        "        out[name] = e.errno\n"
        "print(json.dumps(out))\n")
    out = lines_json(res)
    assert set(out["dev"]) == DEV_EXPECTED, out["dev"]
    for p, v in out.items():
        if p.startswith("/dev/") and p not in ("/dev/kmsg2", "/dev/newfile", "/dev/null.d"):
            assert v is False, f"{p} exists in the sandbox"
    assert out["null"] == 9 and out["zero"] is True and out["urandom"] == 16
    assert out["full"] == errno.ENOSPC
    assert out["/sandbox/sda"] == errno.EPERM
    assert out["/tmp/mem"] == errno.EPERM
    assert out["/dev/kmsg2"] in (errno.EPERM, errno.EROFS)
    assert out["/dev/newfile"] == errno.EROFS
    assert out["/dev/null.d"] == errno.EROFS


def test_readonly_filesystem(run):
    marker = new_marker("ro")
    python_before = os.stat("/usr/bin/python3")
    res = run(
        "import os, sys, json\n"
        "m = sys.argv[1]\n"
        "out = {}\n"
        "for p in ['/' + m, '/usr/' + m, '/usr/lib/' + m, '/etc/' + m, '/etc/passwd', '/etc/hosts',\n"
        "          '/usr/bin/python3', '/etc/python3.11/sitecustomize.py', '/proc/' + m, '/lib/' + m]:\n"
        "    try:\n"
        "        with open(p, 'a') as f:\n"
        "            f.write('pwned')\n"
        "        out[p] = 'written'\n"
        "    except OSError as e:\n"
        "        out[p] = e.errno\n"
        "for p in ['/' + m + 'd', '/usr/' + m + 'd', '/etc/' + m + 'd']:\n"
        "    try:\n"
        "        os.mkdir(p)\n"
        "        out[p] = 'created'\n"
        "    except OSError as e:\n"
        "        out[p] = e.errno\n"
        "for op, f in [('rename_etc', lambda: os.rename('/etc/passwd', '/etc/x')),\n"
        "              ('unlink_etc', lambda: os.unlink('/etc/hosts')),\n"
        "              ('chmod_usr', lambda: os.chmod('/usr/bin/python3', 0o7777)),\n"
        "              ('utime_usr', lambda: os.utime('/usr/bin/python3', (0, 0)))]:\n"
        "    try:\n"
        "        f()\n"
        "        out[op] = 'done'\n"
        "    except OSError as e:\n"
        "        out[op] = e.errno\n"
        "for d in ('/sandbox', '/tmp'):\n"
        "    with open(d + '/' + m, 'w') as f:\n"
        "        out[d] = f.write('fine')\n"
        "print(json.dumps(out))\n",
        "--arg", marker,
    )
    out = lines_json(res)
    for p in ("/" + marker, "/usr/" + marker, "/usr/lib/" + marker, "/etc/" + marker, "/etc/passwd",
              "/etc/hosts", "/lib/" + marker, "/" + marker + "d", "/usr/" + marker + "d",
              "/etc/" + marker + "d", "rename_etc", "unlink_etc", "utime_usr"):
        assert out[p] == errno.EROFS, (p, out[p])
    # Read-only and also not ours: either error is a refusal.
    assert out["/usr/bin/python3"] in (errno.EROFS, errno.EACCES)
    assert out["/etc/python3.11/sitecustomize.py"] in (errno.EROFS, errno.EACCES, errno.ENOENT)
    assert out["/proc/" + marker] in (errno.ENOENT, errno.EACCES)
    assert out["chmod_usr"] in (errno.EROFS, errno.EPERM)
    assert out["/sandbox"] == 4 and out["/tmp"] == 4
    # Host side: nothing appeared anywhere the sandbox's paths coincide with ours.
    for p in ("/" + marker, "/usr/" + marker, "/usr/lib/" + marker, "/etc/" + marker, "/tmp/" + marker,
              "/sandbox/" + marker):
        assert not os.path.lexists(p), p
    after = os.stat("/usr/bin/python3")
    assert (after.st_mtime_ns, after.st_mode, after.st_size) == (
        python_before.st_mtime_ns, python_before.st_mode, python_before.st_size)


def test_setuid_binaries_gain_nothing(run, privileged):
    """/usr is nosuid and no_new_privs is set: a setuid-root program runs
    with the caller's ids. LD_SHOW_AUXV (ignored in secure-execution mode)
    makes the loader print what the kernel granted."""
    res = run("import os, subprocess\n"
              "print(os.getuid())\n"
              "for b in ('/usr/bin/su', '/usr/bin/passwd', '/usr/bin/mount'):\n"
              "    if not os.path.exists(b):\n"
              "        continue\n"
              "    r = subprocess.run([b, '--version'], env={'LD_SHOW_AUXV': '1', 'PATH': '/usr/bin'},\n"
              "                       capture_output=True, text=True)\n"
              "    print(b, os.stat(b).st_mode & 0o4000 != 0,\n"
              "          [l.split()[1] for l in r.stdout.splitlines() if l.startswith(('AT_EUID', 'AT_SECURE'))])\n")
    assert res["status"] == "ok", brief(res)
    lines = res["stdout"].splitlines()
    uid = lines[0]
    tried = [l for l in lines[1:] if l.startswith("/usr/bin/")]
    setuid = [l for l in tried if l.split()[1] == "True"]
    if not setuid:
        pytest.skip("no setuid binary in /usr on this host")
    for l in setuid:
        assert l.endswith(f"['{uid}', '0']"), f"setuid binary ran with other ids or in secure mode: {l}"


# ---- identity ------------------------------------------------------------------------------------


def test_identity_is_unprivileged(run, privileged, host_info):
    res = run(OPEN_FDS + "import json, socket\n"
              "st = dict(l.split(':', 1) for l in open('/proc/self/status') if ':' in l)\n"
              "st = {k: v.strip() for k, v in st.items()}\n"
              "print(json.dumps({'uid': os.getuid(), 'euid': os.geteuid(), 'gid': os.getgid(),\n"
              "    'groups': os.getgroups(), 'status': st, 'fds': open_fds(),\n"
              "    'hostname': socket.gethostname(), 'uname': os.uname().nodename,\n"
              "    'etc_hostname': open('/etc/hostname').read().strip(), 'cwd': os.getcwd(),\n"
              "    'pid': os.getpid(), 'ppid': os.getppid(), 'sid': os.getsid(0)}))\n")
    out = lines_json(res)
    st = out["status"]
    assert out["uid"] != 0 and out["euid"] != 0 and out["gid"] != 0
    assert st["Uid"].split() == [str(out["uid"])] * 4
    assert st["Gid"].split() == [str(out["gid"])] * 4
    if privileged:
        base, count = host_info["uids"]["base"], host_info["uids"]["count"]
        assert base <= out["uid"] < base + count, out["uid"]
    else:
        assert out["uid"] == 1000
    assert out["groups"] in ([], [out["gid"]])
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(st[cap], 16) == 0, (cap, st[cap])
    assert st["NoNewPrivs"] == "1"
    assert st["Seccomp"] == "2"
    assert_only_the_images_pipe({int(k): v for k, v in out["fds"].items()})
    assert out["hostname"] == out["uname"] == out["etc_hostname"] == "sandbox"
    assert out["cwd"] == "/sandbox"
    assert out["pid"] == 2 and out["ppid"] == 1 and out["sid"] == 2


# ---- concurrency ------------------------------------------------------------------------------


CONCURRENT = r"""
import os, sys, time, json
me = sys.argv[1]
for d in ("/sandbox", "/tmp"):
    with open(f"{d}/{me}", "w") as f:
        f.write(me)
time.sleep(1.0)
print(json.dumps({"uid": os.getuid(), "sandbox": sorted(os.listdir("/sandbox")), "tmp": sorted(os.listdir("/tmp")),
                  "procs": sorted(p for p in os.listdir("/proc") if p.isdigit())}))
"""


def test_concurrent_runs_are_isolated(tmp_path, privileged):
    names = [new_marker("a"), new_marker("b")]
    prog = tmp_path / "concurrent.py"
    prog.write_text(CONCURRENT)
    procs = [subprocess.Popen([PYEXEC, "run", *service_options(["--json", "--timeout", "10000", "--arg", n]), str(prog)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for n in names]
    outs = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=60)
        res = json.loads(stdout)
        outs.append(lines_json(res))
    for me, other, out in ((names[0], names[1], outs[0]), (names[1], names[0], outs[1])):
        assert me in out["sandbox"] and me in out["tmp"]
        assert other not in out["sandbox"] and other not in out["tmp"], out
        assert out["procs"] == ["2"], out["procs"]  # init is hidden (hidepid=2)
    if privileged:
        assert outs[0]["uid"] != outs[1]["uid"]
    for n in names:
        assert not os.path.lexists(f"/tmp/{n}") and not os.path.lexists(f"/sandbox/{n}")


# ---- cgroups ----------------------------------------------------------------------------------


def test_cgroups_of_runs_are_removed(run, privileged, host_info):
    if not privileged:
        pytest.skip("no cgroups are used on the unprivileged path here")
    cg = host_info["cgroup"]
    parents = [p for p in (cg.get("memory"), cg.get("pids"), cg.get("cpu")) if p]
    if not parents:
        pytest.skip("no usable cgroup on this host")
    base = host_info["uids"]["base"]
    runs = [
        ("import os\nprint(os.getuid())\n", ()),
        (FORK_BOMB, ("--timeout", 1000, "--pids", 16)),
        ("import os\nprint(os.getuid(), flush=True)\nx = []\nwhile True:\n    x.append(b'x' * (1 << 20))\n",
         ("--memory", 32)),
        ("import os, time\nprint(os.getuid(), flush=True)\n"
         "[os.fork() for _ in range(3)]\ntime.sleep(30)\n", ("--timeout", 500)),
    ]
    leftovers = []
    for code, opts in runs:
        res = run(code, *opts)
        idx = int(res["stdout"].split()[0]) - base
        # While the run existed its cgroup was box-<slot>; once pyexec has
        # returned it must be gone (a short grace for the kernel).
        for parent in parents:
            d = Path(parent) / f"box-{idx}"
            for _ in range(10):
                if not d.exists():
                    break
                time.sleep(0.05)
            else:
                leftovers.append(str(d))
    assert not leftovers, f"cgroup directories left behind: {leftovers}"
