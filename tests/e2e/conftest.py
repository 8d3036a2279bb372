"""Shared fixtures for the end-to-end tests: they drive the real pyexec binary.

PYEXEC_BIN names the binary (scripts/test-e2e.sh sets it); the default is
build/pyexec in this checkout. The suite runs as root (a fresh host uid per
run, cgroups) and, through scripts/test-unprivileged.sh, as an unprivileged
user (user namespaces, rlimit fallbacks); `privileged` tells which.

PYEXEC_TEST_URL points the runs of the `run` and `run_plain` fixtures at a
running service instead (`pyexec run --service URL`, its warm path; the
service must allow the limits' whole ranges: EXECUTION_TIMEOUT=600000,
MEMORY_LIMIT=4096, MAX_OUTPUT_LENGTH=67108864, RATE_LIMIT_MAX=0), and
PYEXEC_TEST_CONTAINER names the podman container that service runs in, where
`pyexec check` then runs: scripts/test-container.sh runs the smoke and deny
tests so against the container image. A run whose options the service sets
by configuration (--pids, --disk, ...) is skipped there, and so are the tests
that drive the local CLI's own side (its environment, descriptors, process).
"""
import json
import os
import pathlib
import re
import socket
import subprocess
import threading
import time
import urllib.request

import pytest

import openapi_check

ROOT = pathlib.Path(__file__).resolve().parents[2]
PYEXEC = os.environ.get("PYEXEC_BIN") or str(ROOT / "build" / "pyexec")
SERVICE_URL = os.environ.get("PYEXEC_TEST_URL") or None


def _service_privileged(url):
    """Whether the service at url runs as root (GET /api/environment)."""
    with urllib.request.urlopen(url + "/api/environment", timeout=30) as r:
        return json.load(r)["privileged"] is True


# Whether runs get a host uid of their own (root) or a user namespace: this
# process's, or the service's that the runs go to.
PRIVILEGED = _service_privileged(SERVICE_URL) if SERVICE_URL else os.geteuid() == 0
SERVICE_CONTAINER = os.environ.get("PYEXEC_TEST_CONTAINER") or None
# The options of `pyexec run` a request carries (the rest are the service's
# configuration: `pyexec run --service` refuses them).
SERVICE_RUN_OPTIONS = {"--json", "--timeout", "--cpu-time", "--memory", "--max-output", "--policy", "--stdin",
                       "--arg", "--file", "--test", "--module"}
SERVICE_RUN_DEFAULTS = {"--timeout": "10000", "--cpu-time": "10000", "--memory": "128", "--max-output": "10000"}


class Result(dict):
    """The parsed --json result, plus the process's exit code and stderr."""

    returncode: int
    proc_stderr: str


def pyexec(*args, stdin=None, timeout=120, env=None):
    """Run the pyexec binary with args; returns subprocess.CompletedProcess (bytes).
    `pyexec check` runs in the service's container when there is one."""
    argv = [PYEXEC, *map(str, args)]
    if SERVICE_CONTAINER and args and args[0] == "check":
        argv = ["podman", "exec", SERVICE_CONTAINER, "pyexec", *map(str, args)]
    return subprocess.run(
        argv,
        input=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        timeout=timeout,
        env=env,
    )


def service_options(options):
    """options, with --service PYEXEC_TEST_URL when the runs go to a service;
    skips the test when an option is not one a request can carry."""
    if not SERVICE_URL:
        return list(options)
    for o in options:
        if isinstance(o, str) and o.startswith("--") and o not in SERVICE_RUN_OPTIONS:
            pytest.skip(f"{o} is the service's configuration, not part of a request ({SERVICE_URL})")
    # A local run has no policy unless given one; the service's default is
    # education: ask for permissive, as close to none as a request gets.
    policy = [] if "--policy" in options else ["--policy", "permissive"]
    # A request without a limit gets the service's maximum (its configured
    # default): send a local run's defaults instead (pyexec run --help).
    defaults = [x for o, v in SERVICE_RUN_DEFAULTS.items() if o not in options for x in (o, v)]
    return ["--service", SERVICE_URL, *policy, *defaults, *options]


def skip_on_service(reason):
    """Skip a test that drives the local CLI's own side when the runs go to a service."""
    if SERVICE_URL:
        pytest.skip(f"{reason}: not through a service ({SERVICE_URL})")


def readable_mappings(pid):
    """The contents of every readable mapping of pid, read from the host
    through /proc/PID/mem (root, or the process's own user): a list of bytes."""
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
    return chunks


@pytest.fixture
def run(tmp_path):
    """run(code, *options) -> Result: `pyexec run --json OPTIONS main.py` with code."""
    counter = [0]

    def _run(code, *options, stdin=None, timeout=120):
        counter[0] += 1
        prog = tmp_path / f"prog{counter[0]}.py"
        prog.write_text(code) if isinstance(code, str) else prog.write_bytes(code)
        p = pyexec("run", "--json", *service_options(options), prog, stdin=stdin, timeout=timeout)
        assert p.stdout, f"no JSON on stdout; stderr: {p.stderr.decode(errors='replace')}"
        res = Result(json.loads(p.stdout))
        openapi_check.check_result(res, f"pyexec run --json {' '.join(map(str, options))}")
        res.returncode = p.returncode
        res.proc_stderr = p.stderr.decode(errors="replace")
        return res

    return _run


@pytest.fixture
def run_plain(tmp_path):
    """run_plain(code, *options) -> CompletedProcess of `pyexec run OPTIONS main.py` (no --json)."""
    counter = [0]

    def _run(code, *options, stdin=None, timeout=120):
        counter[0] += 1
        prog = tmp_path / f"plain{counter[0]}.py"
        prog.write_text(code) if isinstance(code, str) else prog.write_bytes(code)
        return pyexec("run", *service_options(options), prog, stdin=stdin, timeout=timeout)

    return _run


@pytest.fixture(autouse=True)
def responses_as_described():
    """Fails a test that received a response, or a result, that the OpenAPI
    description (docs/openapi.json) does not allow (openapi_check.py)."""
    openapi_check.VIOLATIONS.clear()
    yield
    found, openapi_check.VIOLATIONS[:] = list(openapi_check.VIOLATIONS), []
    if found:
        pytest.fail("not as docs/openapi.json describes:\n" + "\n".join(found[:10]), pytrace=False)


@pytest.fixture
def privileged():
    return PRIVILEGED


@pytest.fixture(scope="session", autouse=True)
def hugetlb_pool_restored():
    """Services reserve huge pages as root (vm.nr_hugepages) and give them
    back when they stop; tests that kill a service leave them reserved. The
    session leaves the pool as it found it."""
    path = "/proc/sys/vm/nr_hugepages"
    try:
        with open(path) as f:
            before = f.read()
    except OSError:
        before = None
    yield
    if PRIVILEGED and before is not None:
        with open(path, "w") as f:
            f.write(before)


def host_pids_with_uid_range(lo, hi):
    """Host pids whose real uid is in [lo, hi): sandbox uids as root."""
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/status") as f:
                for line in f:
                    if line.startswith("Uid:"):
                        uid = int(line.split()[1])
                        if lo <= uid < hi:
                            found.append(int(d))
                        break
        except OSError:
            pass
    return found


def host_pids_matching(marker):
    """Host pids whose command line contains marker (bytes or str)."""
    if isinstance(marker, str):
        marker = marker.encode()
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                if marker in f.read():
                    found.append(int(d))
        except OSError:
            pass
    return found


class Listener:
    """A TCP listener on the host that records every connection it accepts."""

    def __init__(self, family, addr):
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        self.sock.bind((addr, 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.accepted = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while not self.stop.is_set():
            try:
                conn, peer = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            conn.settimeout(0.2)
            try:
                data = conn.recv(256)
            except OSError:
                data = b""
            self.accepted.append((peer, data))
            conn.close()

    def close(self):
        self.stop.set()
        self.thread.join(2)
        self.sock.close()


def wait_for(pred, timeout, what):
    """pred()'s first true value within timeout seconds, else an
    AssertionError naming what was awaited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError(f"not within {timeout} s: {what}")


# What every sandbox's environment adds for the numerical libraries and
# matplotlib (sandbox-env.c): one thread each, the Agg backend, a cache in
# the sandbox's own /tmp.
SANDBOX_LIBRARY_ENV = {
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
    "MPLBACKEND": "Agg",
    "MPLCONFIGDIR": "/tmp/matplotlib",
}


def long_decimals(text):
    """The decimal numbers in a JSON text written with more than the 10
    significant digits every result uses (jansson's default writes 17)."""
    out = []
    for number in re.findall(r"-?\d+\.\d+(?:[eE][-+]?\d+)?", text):
        if len(re.sub(r"[eE].*", "", number).replace("-", "").replace(".", "").lstrip("0")) > 10:
            out.append(number)
    return out
