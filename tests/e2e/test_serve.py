"""End-to-end tests of `pyexec serve`, the HTTP service.

Every test drives the real binary: it starts `pyexec serve` on a free
loopback port with a clean environment, talks to it with the standard
library only (http.client for ordinary requests with keep-alive, raw
sockets where HTTP itself must be bent), reads its JSON log lines from the
captured stderr, and stops it with SIGTERM, asserting a clean exit 0.

The suite passes as root and as an unprivileged user
(scripts/test-unprivileged.sh); only the circuit-breaker test, which must
hold a uid slot of the root-only uid pool, is skipped unprivileged.
"""
import datetime
import errno
import fcntl
import http.client
import json
import os
import pathlib
import random
import re
import signal
import socket
import struct
import subprocess
import threading
import time
import uuid

import pytest

import openapi_check
from conftest import PRIVILEGED, PYEXEC

HOST = "127.0.0.1"
STATUSES = {"ok", "runtime_error", "syntax_error", "timeout", "memory_limit", "output_limit", "policy_violation",
            "internal_error"}
RESULT_KEYS = {"id", "status", "exitCode", "signal", "stdout", "stderr", "output", "truncated", "message", "time",
               "memory", "images", "imagesTruncated", "limits", "exerciseId"}
JSON_HEADERS = {"Content-Type": "application/json"}
KEY1 = "key-one-0123456789abcdef"
KEY2 = "key-two-fedcba9876543210"
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


# ---------------------------------------------------------------------------
# The server fixture and a small client
# ---------------------------------------------------------------------------


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)

    def error(self):
        """The {"error": {...}} object of an error response."""
        doc = self.json()
        assert set(doc) == {"error"}, doc
        return doc["error"]

    def __repr__(self):
        return f"<Response {self.status} {self.body[:300]!r}>"


class Client:
    """One keep-alive HTTP connection to the server."""

    def __init__(self, port, headers=None, timeout=60):
        self.port = port
        self.default_headers = dict(headers or {})
        self.timeout = timeout
        self.conn = None

    def _connect(self):
        self.conn = http.client.HTTPConnection(HOST, self.port, timeout=self.timeout)

    def request(self, method, path, body=None, headers=None):
        h = {**self.default_headers, **(headers or {})}
        if isinstance(body, str):
            body = body.encode()
        for attempt in range(2):
            if self.conn is None:
                self._connect()
            try:
                self.conn.request(method, path, body=body, headers=h)
                r = self.conn.getresponse()
                data = r.read()
                if r.will_close:
                    self.close()
                openapi_check.check(method, path, r.status, r.headers, data)
                return Response(r.status, r.headers, data)
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # The server closed an idle keep-alive connection: once more
                # on a fresh one.
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def get(self, path, headers=None):
        return self.request("GET", path, headers=headers)

    def post(self, path, obj, headers=None):
        return self.request("POST", path, json.dumps(obj), {**JSON_HEADERS, **(headers or {})})

    def execute(self, obj, headers=None):
        return self.post("/api/execute", obj, headers)

    def close(self):
        if self.conn is not None:
            self.conn.close()
        self.conn = None


class Server:
    def __init__(self, proc, port, log_path, headers=None):
        self.proc = proc
        self.port = port
        self.base_url = f"http://{HOST}:{port}"
        self.log_path = log_path
        self.headers = dict(headers or {})
        self.client = Client(port, self.headers)

    # the default keep-alive client
    def request(self, *a, **kw):
        return self.client.request(*a, **kw)

    def get(self, *a, **kw):
        return self.client.get(*a, **kw)

    def post(self, *a, **kw):
        return self.client.post(*a, **kw)

    def execute(self, *a, **kw):
        return self.client.execute(*a, **kw)

    def new_client(self, headers=None, timeout=60):
        return Client(self.port, {**self.headers, **(headers or {})}, timeout)

    def log_text(self):
        return self.log_path.read_text(errors="replace")

    def logs(self):
        """The complete JSON log lines so far, parsed."""
        text = self.log_text()
        lines = text.split("\n")[:-1]  # a last line without '\n' is still being written
        return [json.loads(line) for line in lines]

    def log_for(self, request_id, message="request"):
        return [entry for entry in self.logs() if entry.get("requestId") == request_id
                and entry.get("message") == message]

    def wait_log(self, pred, timeout=5):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [e for e in self.logs() if pred(e)]
            if found:
                return found
            time.sleep(0.02)
        return []

    def metrics(self):
        from prometheus_client.parser import text_string_to_metric_families
        r = self.get("/api/metrics")
        assert r.status == 200, r
        return list(text_string_to_metric_families(r.body.decode()))

    def sample(self, name, **labels):
        """The value of the sample `name` whose labels are exactly `labels`."""
        for fam in self.metrics():
            for s in fam.samples:
                if s.name == name and s.labels == labels:
                    return s.value
        raise AssertionError(f"no sample {name}{labels}")

    def stats(self):
        r = self.get("/api/stats")
        assert r.status == 200, r
        return r.json()

    def wait_state(self, pred, timeout=10):
        """Poll /api/stats (on its own connection) until pred(stats)."""
        c = self.new_client()
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                st = c.get("/api/stats").json()
                if pred(st):
                    return st
                time.sleep(0.01)
            raise AssertionError(f"state not reached: {st}")
        finally:
            c.close()

    def alive(self):
        return self.proc.poll() is None

    def signal(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)

    def stop(self, timeout=60):
        """SIGTERM, then the exit code (kill -9 and fail if it hangs)."""
        self.client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"pyexec serve did not exit within {timeout} s of SIGTERM")


def start_server(log_dir, *flags, env=None, port=None, port_flag=True, headers=None, ready=True, timeout=20,
                 default_policy="permissive", wrapper=()):
    """Start `pyexec serve`, wait for /health/ready, return a Server.
    default_policy=None leaves DEFAULT_POLICY to the product's default;
    wrapper: a command that execs the service (its arguments follow)."""
    for attempt in range(3):
        p = port or free_port()
        # These tests are about the HTTP layer: their programs use the
        # whole standard library, so the default policy is permissive here
        # (test_policy.py and test_warm.py test the education default).
        environ = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
        if default_policy:
            environ["DEFAULT_POLICY"] = default_policy
        environ.update({k: str(v) for k, v in (env or {}).items()})
        args = [*wrapper, PYEXEC, "serve", *(["--port", str(p)] if port_flag else []), *map(str, flags)]
        log_path = log_dir / f"serve-{p}-{uuid.uuid4().hex[:6]}.log"
        with open(log_path, "wb") as logf:
            proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, env=environ)
        srv = Server(proc, p, log_path, headers)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            try:
                c = http.client.HTTPConnection(HOST, p, timeout=2)
                c.request("GET", "/health/ready" if ready else "/health/live")
                status = c.getresponse().status
                c.close()
                if status == 200:
                    return srv
            except OSError:
                pass
            time.sleep(0.02)
        if proc.poll() is None:
            srv.stop()
            raise AssertionError(f"pyexec serve not ready within {timeout} s: {srv.log_text()}")
        if "cannot listen" in srv.log_text() and port is None:
            continue  # lost a race for the free port
        raise AssertionError(f"pyexec serve exited {proc.returncode}: {srv.log_text()}")
    raise AssertionError("could not start pyexec serve")


def serving(tmp_path, starter):
    """The body of a serve fixture: yields serve(*flags, **kw) -> a Server
    started by starter(tmp_path, ...); stops them all at teardown, asserting
    exit 0."""
    servers = []

    def _serve(*flags, **kw):
        srv = starter(tmp_path, *flags, **kw)
        servers.append(srv)
        return srv

    yield _serve
    codes = [(s.stop(), s) for s in servers]
    for code, s in codes:
        assert code == 0, f"pyexec serve exited {code}: {s.log_text()[-3000:]}"


@pytest.fixture
def serve(tmp_path):
    """serve(*flags, env={...}) -> a started Server; stopped (exit 0 asserted) at teardown."""
    yield from serving(tmp_path, start_server)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A shared server for tests that need no special configuration: no rate
    limit, and small code and request-size limits to test the 413s."""
    srv = start_server(tmp_path_factory.mktemp("serve"), "--rate-limit-max", "0", "--max-code-length", "2000",
                       "--max-request-size", "65536")
    yield srv
    code = srv.stop()
    assert code == 0, f"pyexec serve exited {code}: {srv.log_text()[-3000:]}"


def raw_http(port, data, timeout=10, read=True):
    """Send raw bytes; return the parsed Response (or None if the server closed without one)."""
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        s.sendall(data)
        if not read:
            return None
        resp = http.client.HTTPResponse(s)
        try:
            resp.begin()
        except (http.client.RemoteDisconnected, ConnectionResetError):
            return None
        return Response(resp.status, resp.headers, resp.read())


def run_in_thread(fn, *args):
    out = {}

    def target():
        try:
            out["value"] = fn(*args)
        except BaseException as e:  # reported by the test
            out["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    return t, out


def slow_execute(port, seconds, headers=None, marker="slept"):
    c = Client(port, headers)
    try:
        return c.execute({"code": f"import time\ntime.sleep({seconds})\nprint({marker!r})"})
    finally:
        c.close()


def config_output(*flags, env=None):
    environ = {"PATH": "/usr/bin:/bin"}
    environ.update(env or {})
    p = subprocess.run([PYEXEC, "serve", *map(str, flags)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=environ, timeout=15)
    return p


def parse_print_config(text):
    """KEY=value  # source -> {KEY: (value, source)}"""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([A-Z_]+)=(.*?)\s+# (\w+)$", line)
        assert m, f"unexpected --print-config line: {line!r}"
        out[m.group(1)] = (m.group(2), m.group(3))
    return out


# ---------------------------------------------------------------------------
# POST /api/execute: the result, ids, and every request field
# ---------------------------------------------------------------------------


class TestExecute:
    def test_hello_world_full_schema(self, server):
        r = server.execute({"code": "print('Hello, World!')", "exerciseId": "ex-42"})
        assert r.status == 200, r
        assert r.headers["Content-Type"].startswith("application/json")
        doc = r.json()
        assert set(doc) >= RESULT_KEYS, set(doc) ^ RESULT_KEYS
        assert doc["status"] == "ok"
        assert doc["exitCode"] == 0
        assert doc["signal"] is None
        assert doc["stdout"] == "Hello, World!\n"
        assert doc["stderr"] == ""
        assert doc["output"] == "Hello, World!\n"
        assert doc["truncated"] is False
        assert doc["message"] is None
        assert set(doc["time"]) >= {"wallMs", "cpuMs"}
        assert 0 < doc["time"]["wallMs"] < 10000
        assert doc["time"]["cpuMs"] >= 0
        assert doc["memory"]["peakKb"] > 0
        assert doc["limits"]["timeoutMs"] == 10000
        assert doc["limits"]["cpuTimeMs"] == 10000
        assert doc["limits"]["memoryMb"] == 128
        assert doc["limits"]["maxOutput"] == 10000
        assert doc["limits"]["pids"] == 64
        assert doc["exerciseId"] == "ex-42"
        assert re.fullmatch(r"[0-9a-f]{32}", doc["id"]), doc["id"]
        assert r.headers["X-Request-Id"] == doc["id"]

    def test_exercise_id_types_echoed(self, server):
        r = server.execute({"code": "pass", "exerciseId": 17})
        assert r.status == 200
        assert r.json()["exerciseId"] == 17 and isinstance(r.json()["exerciseId"], int)
        r = server.execute({"code": "pass", "exerciseId": "17"})
        assert r.json()["exerciseId"] == "17"
        r = server.execute({"code": "pass"})
        assert r.json()["exerciseId"] is None
        ids = {server.execute({"code": "pass"}).json()["id"] for _ in range(3)}
        assert len(ids) == 3, "request ids must be unique"

    def test_keep_alive(self, server):
        c = server.new_client()
        try:
            assert c.get("/health/live").status == 200
            sock = c.conn.sock
            assert c.execute({"code": "print(1)"}).status == 200
            assert c.get("/health").status == 200
            assert c.conn is not None and c.conn.sock is sock, "the server closed a keep-alive connection"
        finally:
            c.close()

    def test_client_request_id_sanitized_and_logged(self, server):
        r = server.execute({"code": "print(2)", "exerciseId": "rid"}, headers={"X-Request-Id": "ab c/<d>;e\"f.g_h:i-j"})
        assert r.status == 200
        assert r.headers["X-Request-Id"] == "abcdef.g_h:i-j"
        assert r.json()["id"] == "abcdef.g_h:i-j"
        lines = server.log_for("abcdef.g_h:i-j")
        assert len(lines) == 1, lines
        assert lines[0]["status"] == "ok" and lines[0]["path"] == "/api/execute"

    def test_client_request_id_capped_at_64(self, server):
        rid = "r" + uuid.uuid4().hex * 4  # 129 allowed characters
        r = server.get("/health", headers={"X-Request-Id": rid})
        assert r.headers["X-Request-Id"] == rid[:64]
        r = server.execute({"code": "pass"}, headers={"X-Request-Id": rid})
        assert r.json()["id"] == rid[:64]
        assert server.log_for(rid[:64]), "no log line with the capped request id"

    def test_client_request_id_all_disallowed_gets_fresh_id(self, server):
        r = server.execute({"code": "pass"}, headers={"X-Request-Id": "<>/ ;!"})
        assert re.fullmatch(r"[0-9a-f]{32}", r.json()["id"])
        assert r.headers["X-Request-Id"] == r.json()["id"]

    def test_run_tests_with_starter_module(self, server):
        r = server.execute({
            "code": "def add(a, b):\n    return a + b\n",
            "runTests": True,
            "testCode": "from starter import add\nassert add(2, 3) == 5\nprint('tests passed', __name__)\n",
        })
        assert r.status == 200, r
        assert r.json()["status"] == "ok", r.json()
        assert r.json()["stdout"] == "tests passed __main__\n"
        assert r.json()["verdict"] == "accepted"

    def test_run_tests_failing(self, server):
        r = server.execute({
            "code": "def add(a, b):\n    return a - b\n",
            "runTests": True,
            "testCode": "from starter import add\nassert add(2, 3) == 5, 'add is wrong'\n",
        })
        assert r.json()["status"] == "runtime_error"
        assert "add is wrong" in r.json()["stderr"]
        # A failed assert is a wrong answer; another exception is not.
        assert r.json()["verdict"] == "wrong_answer"
        r = server.execute({"code": "def add(a, b):\n    return a / 0\n", "runTests": True,
                            "testCode": "from starter import add\nassert add(2, 3) == 5\n"})
        assert r.json()["status"] == "runtime_error" and r.json()["verdict"] == "runtime_error", r.json()
        # Without runTests or tests, nothing is graded: no verdict.
        assert "verdict" not in server.execute({"code": "print(1)"}).json()

    def test_run_tests_module_name(self, server):
        r = server.execute({
            "code": "VALUE = 41 + 1\n",
            "runTests": True,
            "moduleName": "solution",
            "testCode": "import solution\nprint(solution.VALUE)\nimport importlib.util\n"
                        "print(importlib.util.find_spec('starter') is None)\n",
        })
        assert r.json()["status"] == "ok", r.json()
        assert r.json()["stdout"] == "42\nTrue\n"

    def test_run_tests_false_runs_code(self, server):
        r = server.execute({"code": "print('plain')", "runTests": False})
        assert r.json()["stdout"] == "plain\n"

    def test_timeout(self, server):
        t0 = time.monotonic()
        r = server.execute({"code": "import time\ntime.sleep(30)", "timeout": 300})
        assert time.monotonic() - t0 < 5
        doc = r.json()
        assert doc["status"] == "timeout", doc
        assert "wall" in doc["message"].lower()
        assert doc["limits"]["timeoutMs"] == 300
        assert doc["limits"]["cpuTimeMs"] == 300  # follows timeout unless given

    def test_cpu_timeout(self, server):
        r = server.execute({"code": "while True:\n    pass\n", "timeout": 8000, "cpuTimeout": 300})
        doc = r.json()
        assert doc["status"] == "timeout", doc
        assert "cpu" in doc["message"].lower()
        assert doc["limits"]["cpuTimeMs"] == 300
        assert doc["limits"]["timeoutMs"] == 8000
        assert doc["time"]["wallMs"] < 5000

    def test_memory_limit(self, server):
        r = server.execute({"code": "x = bytearray(200 * 1024 * 1024)\nprint('allocated')", "memoryLimit": 48})
        doc = r.json()
        assert doc["status"] == "memory_limit", doc
        assert doc["limits"]["memoryMb"] == 48
        assert "allocated" not in doc["stdout"]
        r = server.execute({"code": "x = bytearray(8 * 1024 * 1024)\nprint('allocated')", "memoryLimit": 48})
        assert r.json()["status"] == "ok", r.json()

    def test_max_output(self, server):
        r = server.execute({"code": "print('x' * 5000)", "maxOutput": 100})
        doc = r.json()
        assert doc["status"] == "output_limit", doc
        assert doc["truncated"] is True
        assert doc["limits"]["maxOutput"] == 100
        assert 0 < len(doc["stdout"]) <= 100
        assert set(doc["stdout"]) == {"x"}

    def test_files(self, server):
        r = server.execute({
            "code": "import os\nprint(open('data.txt').read())\nprint(open('dätä 2.csv').read())\n"
                    "print(sorted(f for f in os.listdir('.') if f != '__pycache__'))",
            "files": [{"name": "data.txt", "content": "hello file"}, {"name": "dätä 2.csv", "content": "a,b\n1,2"}],
        })
        doc = r.json()
        assert doc["status"] == "ok", doc
        assert doc["stdout"] == "hello file\na,b\n1,2\n['data.txt', 'dätä 2.csv', 'main.py']\n"

    def test_stdin(self, server):
        r = server.execute({"code": "import sys\ndata = sys.stdin.read()\nprint(data[::-1], len(data))",
                            "stdin": "abc\ndéf"})
        assert r.json()["stdout"] == "féd\ncba 7\n"
        r = server.execute({"code": "print(input())"})
        assert r.json()["status"] == "runtime_error"
        assert "EOFError" in r.json()["stderr"]

    def test_args(self, server):
        r = server.execute({"code": "import sys\nprint(sys.argv[1:])", "args": ["a b", "--x", "", "ü"]})
        assert r.json()["stdout"] == "['a b', '--x', '', 'ü']\n"

    def test_policy_permissive(self, server):
        r = server.execute({"code": "print('p')", "policy": "permissive"})
        assert r.status == 200 and r.json()["stdout"] == "p\n"

    def test_statuses(self, server):
        cases = {
            "raise ValueError('boom')": "runtime_error",
            "def f(:\n  pass": "syntax_error",
            "import sys\nsys.exit(3)": "runtime_error",
        }
        for src, status in cases.items():
            doc = server.execute({"code": src}).json()
            assert doc["status"] == status, (src, doc)
        doc = server.execute({"code": "import sys\nsys.exit(3)"}).json()
        assert doc["exitCode"] == 3
        doc = server.execute({"code": "def f(:\n  pass"}).json()
        assert "line 1" in doc["message"]


# ---------------------------------------------------------------------------
# Graded test cases
# ---------------------------------------------------------------------------


class TestGraded:
    def test_pass_fail_error_and_summary(self, server):
        r = server.execute({
            "code": "n = int(input())\nprint(100 // n)",
            "exerciseId": "graded",
            "tests": [
                {"name": "ten", "stdin": "10", "expectedOutput": "10"},
                {"name": "wrong", "stdin": "3", "expectedOutput": "34\n"},
                {"name": "zero", "stdin": "0", "expectedOutput": "0"},
                {"stdin": "1", "expectedOutput": "100"},
            ],
        })
        assert r.status == 200, r
        doc = r.json()
        assert doc["summary"] == {"passed": 2, "failed": 2, "total": 4}
        cases = doc["tests"]
        assert [c["name"] for c in cases] == ["ten", "wrong", "zero", "test 4"]
        assert [c["status"] for c in cases] == ["passed", "failed", "runtime_error", "passed"]
        assert cases[1]["stdout"] == "33\n" and cases[1]["expectedOutput"] == "34\n"
        assert isinstance(cases[2]["message"], str) and cases[2]["message"]
        assert "message" not in cases[0] and "message" not in cases[1]
        # The first case that did not pass decides the verdict: a wrong
        # answer, with where it goes wrong; the others have no difference.
        assert doc["verdict"] == "wrong_answer"
        assert cases[1]["difference"] == {"line": 1, "expected": "34", "actual": "33"}
        assert [("difference" in c) for c in cases] == [False, True, False, False]
        assert all(c["timeMs"] >= 0 for c in cases)
        # the top-level result is the first case that did not run ok
        assert doc["status"] == "runtime_error"
        assert "ZeroDivisionError" in doc["stderr"]
        assert doc["exerciseId"] == "graded"

    def test_whitespace_normalization(self, server):
        r = server.execute({
            "code": "import sys\nfor a in sys.argv[1:]:\n    print(a.replace('_', ' '))\nprint()\nprint()",
            "tests": [
                {"name": "trailing spaces", "args": ["1__", "2\t"], "expectedOutput": "1\n2"},
                {"name": "expected has trailing", "args": ["1", "2"], "expectedOutput": "1  \n2 \n\n\n"},
                {"name": "leading space matters", "args": ["_1", "2"], "expectedOutput": "1\n2"},
                {"name": "inner blank line matters", "args": ["1", "2"], "expectedOutput": "1\n\n2"},
                {"name": "case matters", "args": ["a"], "expectedOutput": "A"},
            ],
        })
        doc = r.json()
        assert [c["status"] for c in doc["tests"]] == ["passed", "passed", "failed", "failed", "failed"], doc["tests"]
        assert doc["summary"] == {"passed": 2, "failed": 3, "total": 5}
        assert doc["status"] == "ok"
        assert doc["verdict"] == "wrong_answer"
        assert [c.get("difference") for c in doc["tests"]][2:] == [
            {"line": 1, "expected": "1", "actual": " 1"},
            {"line": 2, "expected": "", "actual": "2"},
            {"line": 1, "expected": "A", "actual": "a"},
        ]

    def test_each_case_in_fresh_sandbox(self, server):
        src = ("import os\n"
               "seen = [p for p in ('mark', '/tmp/mark') if os.path.exists(p)]\n"
               "print(seen)\n"
               "open('mark', 'w').write('x')\n"
               "open('/tmp/mark', 'w').write('x')\n")
        r = server.execute({"code": src, "tests": [{"expectedOutput": "[]"}] * 3})
        doc = r.json()
        assert [c["status"] for c in doc["tests"]] == ["passed"] * 3, doc["tests"]
        assert doc["verdict"] == "accepted" and doc["status"] == "ok"

    def test_case_args_override_and_timeout(self, server):
        r = server.execute({
            "code": "import sys, time\nif sys.argv[1:] == ['slow']:\n    time.sleep(30)\nprint(sys.argv[1:])",
            "args": ["default"],
            "timeout": 500,
            "tests": [
                {"name": "default args", "expectedOutput": "['default']"},
                {"name": "own args", "args": ["x"], "expectedOutput": "['x']"},
                {"name": "slow", "args": ["slow"], "expectedOutput": ""},
            ],
        })
        doc = r.json()
        assert [c["status"] for c in doc["tests"]] == ["passed", "passed", "timeout"], doc["tests"]
        assert doc["status"] == "timeout"
        assert doc["summary"]["passed"] == 2
        assert doc["verdict"] == "timeout"


# ---------------------------------------------------------------------------
# The other endpoints
# ---------------------------------------------------------------------------


class TestEndpoints:
    def test_health(self, server):
        r = server.get("/health")
        assert r.status == 200
        doc = r.json()
        assert doc["status"] == "ok"
        assert doc["ready"] is True
        assert re.fullmatch(r"\d+\.\d+\.\d+.*", doc["version"])
        assert doc["uptimeSeconds"] > 0

    def test_health_live_and_ready(self, server):
        r = server.get("/health/live")
        assert r.status == 200 and r.json() == {"status": "alive"}
        r = server.get("/health/ready")
        assert r.status == 200 and r.json() == {"status": "ready"}

    def test_head(self, server):
        r = server.request("HEAD", "/health")
        assert r.status == 200 and r.body == b""

    def test_stats(self, server):
        before = server.stats()
        for i in range(3):
            server.execute({"code": f"print({i})"})
        server.execute({"code": "raise SystemExit(1)"})
        st = server.wait_state(lambda st: st["queue"]["active"] == 0)
        assert st["executions"] == before["executions"] + 4
        assert set(st["byStatus"]) == STATUSES
        assert st["byStatus"]["ok"] >= before["byStatus"]["ok"] + 3
        assert st["byStatus"]["runtime_error"] == before["byStatus"]["runtime_error"] + 1
        assert sum(st["byStatus"].values()) == st["executions"]
        for key in ("wallMs", "runMs"):
            p = st["recent"][key]
            assert 0 < p["p50"] <= p["p95"] <= p["p99"], p
        assert st["recent"]["count"] >= 4
        assert st["queue"] == {"depth": 0, "capacity": 100, "active": 0, "slots": 5}
        assert st["ready"] is True and st["breakerOpen"] is False
        assert st["rateLimited"] == 0
        assert st["uptimeSeconds"] > before["uptimeSeconds"]

    def test_environment(self, server):
        r = server.get("/api/environment")
        assert r.status == 200
        env = r.json()
        assert re.match(r"3\.\d+", env["python"]["version"])
        assert env["python"]["available"] is True
        assert env["selfTest"]["ok"] is True
        assert env["selfTest"]["status"] == "ok"
        assert env["ok"] is True
        assert env["privileged"] is PRIVILEGED

    def test_metrics_content_type(self, server):
        r = server.get("/api/metrics")
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain")
        assert b"# TYPE pyexec_executions_total counter" in r.body


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


def assert_error(r, status, field=None, code="invalid_request", message=None):
    assert r.status == status, r
    err = r.error()
    assert err["code"] == code, err
    if field is None:
        assert "field" not in err, err
    else:
        assert err.get("field") == field, err
    assert isinstance(err["message"], str) and err["message"], err
    if message:
        for m in ([message] if isinstance(message, str) else message):
            assert m in err["message"], err
    return err


WRONG_TYPES = [
    ({"code": 123}, "code", "string"),
    ({"code": None}, "code", "string"),
    ({"code": ["print(1)"]}, "code", "string"),
    ({"exerciseId": 1.5}, "exerciseId", "exerciseId"),
    ({"exerciseId": True}, "exerciseId", "exerciseId"),
    ({"exerciseId": {"a": 1}}, "exerciseId", "exerciseId"),
    ({"exerciseId": "x" * 257}, "exerciseId", "256"),
    ({"runTests": "true"}, "runTests", "boolean"),
    ({"runTests": 1}, "runTests", "boolean"),
    ({"runTests": True, "testCode": 5}, "testCode", "string"),
    ({"runTests": True, "testCode": "pass", "moduleName": 5}, "moduleName", "string"),
    ({"timeout": "100"}, "timeout", "whole number"),
    ({"timeout": 1.5}, "timeout", "whole number"),
    ({"timeout": True}, "timeout", "whole number"),
    ({"timeout": None}, "timeout", "whole number"),
    ({"cpuTimeout": "100"}, "cpuTimeout", "whole number"),
    ({"memoryLimit": [64]}, "memoryLimit", "whole number"),
    ({"maxOutput": {}}, "maxOutput", "whole number"),
    ({"files": "a.txt"}, "files", "array"),
    ({"files": {"name": "a", "content": "b"}}, "files", "array"),
    ({"files": [1]}, "files[0]", "object"),
    ({"files": [{"name": 1, "content": "x"}]}, "files[0].name", "string"),
    ({"files": [{"name": "a", "content": 1}]}, "files[0].content", "string"),
    ({"files": [{"name": "a"}]}, "files[0].content", "required"),
    ({"files": [{"content": "a"}]}, "files[0].name", "required"),
    ({"stdin": 5}, "stdin", "string"),
    ({"stdin": ["x"]}, "stdin", "string"),
    ({"args": "a b"}, "args", "array"),
    ({"args": [1]}, "args[0]", "string"),
    ({"args": ["ok", None]}, "args[1]", "string"),
    ({"args": ["a\u0000b"]}, "args[0]", "NUL"),
    ({"tests": {}}, "tests", "array"),
    ({"tests": []}, "tests", "non-empty"),
    ({"tests": "x"}, "tests", "array"),
    ({"tests": [1]}, "tests[0]", "object"),
    ({"tests": [{"name": "a"}]}, "tests[0].expectedOutput", "required"),
    ({"tests": [{"expectedOutput": 1}]}, "tests[0].expectedOutput", "string"),
    ({"tests": [{"expectedOutput": "", "args": "x"}]}, "tests[0].args", "array"),
    ({"tests": [{"expectedOutput": "", "stdin": 1}]}, "tests[0].stdin", "string"),
    ({"tests": [{"expectedOutput": "", "name": 1}]}, "tests[0].name", "string"),
    ({"policy": 5}, "policy", "string"),
]


class TestErrors:
    @pytest.mark.parametrize("fields,field,msg", WRONG_TYPES,
                             ids=[f"{f}-{json.dumps(b)[:40]}" for b, f, _ in WRONG_TYPES])
    def test_wrong_type(self, server, fields, field, msg):
        body = {"code": "print(1)", **fields}
        assert_error(server.execute(body), 400, field, message=[field, msg])

    OUT_OF_RANGE = [
        ("timeout", 0, "1 and 10000"),
        ("timeout", 10001, "1 and 10000"),
        ("timeout", -5, "1 and 10000"),
        ("cpuTimeout", 0, "1 and 10000"),
        ("cpuTimeout", 10001, "1 and 10000"),
        ("memoryLimit", 15, "16 and 128"),
        ("memoryLimit", 129, "16 and 128"),
        ("maxOutput", 0, "1 and 10000"),
        ("maxOutput", 10001, "1 and 10000"),
    ]

    @pytest.mark.parametrize("field,value,rng", OUT_OF_RANGE)
    def test_out_of_range(self, server, field, value, rng):
        err = assert_error(server.execute({"code": "pass", field: value}), 400, field, message=[field, rng])
        assert str(value) in err["message"]

    @pytest.mark.parametrize("field,value", [("timeout", 1), ("timeout", 10000), ("memoryLimit", 16),
                                             ("memoryLimit", 128), ("maxOutput", 1), ("cpuTimeout", 10000)])
    def test_range_bounds_accepted(self, server, field, value):
        r = server.execute({"code": "pass", field: value})
        assert r.status == 200, r

    def test_huge_integer(self, server):
        r = server.request("POST", "/api/execute", '{"code": "pass", "timeout": 1' + "0" * 40 + "}", JSON_HEADERS)
        assert_error(r, 400)

    @pytest.mark.parametrize("body,field", [
        ({"code": "pass", "langauge": "python"}, "langauge"),
        ({"code": "pass", "Code": "x"}, "Code"),
        ({"code": "pass", "files": [{"name": "a", "content": "", "mode": 7}]}, "files[0].mode"),
        ({"code": "pass", "tests": [{"expectedOutput": "", "expected": ""}]}, "tests[0].expected"),
    ])
    def test_unknown_fields(self, server, body, field):
        assert_error(server.execute(body), 400, field, message=field.split(".")[-1].split("[")[0])

    def test_missing_code(self, server):
        assert_error(server.execute({"stdin": "x"}), 400, "code", message="required")
        assert_error(server.execute({}), 400, "code", message="required")

    def test_test_code_rules(self, server):
        assert_error(server.execute({"code": "pass", "runTests": True}), 400, "testCode", message="runTests")
        assert_error(server.execute({"code": "pass", "testCode": "pass"}), 400, "testCode", message="runTests")
        assert_error(server.execute({"code": "pass", "moduleName": "m"}), 400, "moduleName", message="runTests")
        for bad in ["1abc", "main", "a-b", "", "os.path"]:
            r = server.execute({"code": "pass", "runTests": True, "testCode": "pass", "moduleName": bad})
            assert_error(r, 400, "moduleName", message="identifier")
        r = server.execute({"code": "pass", "runTests": True, "testCode": "import " + "m" * 64,
                            "moduleName": "m" * 64})
        assert r.status == 200 and r.json()["status"] == "ok", r

    def test_module_name_too_long(self, server):
        """A 65-character module name is an invalid name (400), not a too-large payload (413)."""
        r = server.execute({"code": "pass", "runTests": True, "testCode": "pass", "moduleName": "a" * 65})
        assert_error(r, 400, "moduleName", message="64")

    def test_unknown_policy(self, server):
        assert_error(server.execute({"code": "pass", "policy": "strict"}), 400, "policy", message="strict")

    @pytest.mark.parametrize("body", [
        b"", b"{", b'{"code": "pass",}', b"{'code': 'pass'}", b'{"code": "pass"} trailing', b"null",
        b'{"code": "pass", "code": "pass"}',
    ])
    def test_malformed_json(self, server, body):
        assert_error(server.request("POST", "/api/execute", body, JSON_HEADERS), 400)

    @pytest.mark.parametrize("body", [b"[]", b'[{"code": "pass"}]'])
    def test_not_an_object(self, server, body):
        assert_error(server.request("POST", "/api/execute", body, JSON_HEADERS), 400, message="object")

    @pytest.mark.parametrize("body", [b'"code"', b"42", b"true"])
    def test_scalar_body(self, server, body):
        assert_error(server.request("POST", "/api/execute", body, JSON_HEADERS), 400)

    def test_deep_nesting(self, server):
        deep = "[" * 17 + "]" * 17
        r = server.request("POST", "/api/execute", '{"code": "pass", "args": ' + deep + "}", JSON_HEADERS)
        assert_error(r, 400, message="nested")
        r = server.request("POST", "/api/execute", "[" * 60000, JSON_HEADERS)
        assert_error(r, 400, message="nested")
        # brackets inside strings are not nesting
        r = server.execute({"code": "print('" + "[{" * 200 + "')"})
        assert r.status == 200 and r.json()["stdout"] == "[{" * 200 + "\n"

    @pytest.mark.parametrize("raw", [
        b'{"code": "print(\'\xff\')"}',
        b'{"code": "pass", "stdin": "\xc0\xaf"}',          # overlong '/'
        b'{"code": "pass", "stdin": "\xed\xa0\x80"}',      # a UTF-16 surrogate in UTF-8
        b'{"code": "pass", "exerciseId": "\xe2\x82"}',      # truncated sequence
    ])
    def test_invalid_utf8(self, server, raw):
        assert_error(server.request("POST", "/api/execute", raw, JSON_HEADERS), 400, message="UTF-8")

    def test_nul_in_stdin_and_file_content_accepted(self, server):
        """JSON strings may carry U+0000: data (stdin, file content, code) may hold NULs."""
        r = server.execute({"code": "import sys\nprint(repr(sys.stdin.read()), repr(open('f.bin').read()))",
                            "stdin": "a\u0000b", "files": [{"name": "f.bin", "content": "\u0000x\u0000"}]})
        assert r.status == 200, r
        assert r.json()["stdout"] == "'a\\x00b' '\\x00x\\x00'\n"

    def test_escaped_lone_surrogate(self, server):
        r = server.request("POST", "/api/execute", b'{"code": "pass", "stdin": "\\ud800"}', JSON_HEADERS)
        assert_error(r, 400)

    def test_code_length(self, server):
        assert_error(server.execute({"code": "#" * 2001}), 413, "code", "payload_too_large", message="2000")
        assert server.execute({"code": "#" * 2000}).status == 200
        # characters, not bytes: 1999 two-byte characters are 3998 bytes
        r = server.execute({"code": "#" + "é" * 1999})
        assert r.status == 200, r
        r = server.execute({"code": "pass", "runTests": True, "testCode": "#" * 2001})
        assert_error(r, 413, "testCode", "payload_too_large", message="2000")

    def test_request_size_buffered(self, server):
        r = server.execute({"code": "pass", "stdin": "x" * 70000})
        assert_error(r, 413, None, "payload_too_large", message="65536")

    def test_request_size_content_length_rejected_before_body(self, server):
        """A Content-Length over the limit is answered at once, without the body."""
        head = (b"POST /api/execute HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 10000000\r\n\r\n")
        t0 = time.monotonic()
        r = raw_http(server.port, head + b'{"code": "', timeout=5)
        assert r is not None, "no response to an oversized Content-Length"
        assert time.monotonic() - t0 < 3
        assert_error(r, 413, None, "payload_too_large", message="65536")

    def test_request_size_chunked_small(self, server):
        head = (b"POST /api/execute HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        body = json.dumps({"code": "print('chunked')"}).encode()
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 7]), body[i:i + 7]) for i in range(0, len(body), 7))
        r = raw_http(server.port, head + chunks + b"0\r\n\r\n")
        assert r is not None and r.status == 200, r
        assert json.loads(r.body)["stdout"] == "chunked\n"

    def test_request_size_chunked_gets_413(self, server):
        """Chunked and over the limit: the client must get a 413, not a closed socket."""
        head = (b"POST /api/execute HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        with socket.create_connection((HOST, server.port), timeout=10) as s:
            s.sendall(head)
            sent = 0
            try:
                while sent < 100000:
                    s.sendall(b"1000\r\n" + b" " * 4096 + b"\r\n")
                    sent += 4096
                s.sendall(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass
            resp = http.client.HTTPResponse(s)
            resp.begin()
            r = Response(resp.status, resp.headers, resp.read())
        assert_error(r, 413, None, "payload_too_large")

    HOSTILE_NAMES = ["../x", "a/b", "/etc/passwd", "", ".", "..", "a\u0000b", "x" * 300, "tab\there", "nl\nx",
                     "del\x7f"]

    @pytest.mark.parametrize("name", HOSTILE_NAMES, ids=[repr(n)[:20] for n in HOSTILE_NAMES])
    def test_hostile_file_names(self, server, name):
        r = server.execute({"code": "pass", "files": [{"name": name, "content": "x"}]})
        assert_error(r, 400, "files[0].name")

    def test_duplicate_and_reserved_file_names(self, server):
        files = [{"name": "a.txt", "content": "1"}, {"name": "a.txt", "content": "2"}]
        assert_error(server.execute({"code": "pass", "files": files}), 400, "files[1].name", message="a.txt")
        r = server.execute({"code": "pass", "files": [{"name": "main.py", "content": "print('evil')"}]})
        assert_error(r, 400, "files[0].name", message="main.py")
        r = server.execute({"code": "pass", "runTests": True, "testCode": "import starter",
                            "files": [{"name": "starter.py", "content": "x = 1"}]})
        assert_error(r, 400, "files[0].name", message="starter.py")

    def test_too_many(self, server):
        assert_error(server.execute({"code": "pass", "args": ["a"] * 257}), 400, "args", message="256")
        files = [{"name": f"f{i}", "content": ""} for i in range(65)]
        assert_error(server.execute({"code": "pass", "files": files}), 400, "files", message="64")
        tests = [{"expectedOutput": ""}] * 51
        assert_error(server.execute({"code": "pass", "tests": tests}), 400, "tests", message="50")
        assert server.execute({"code": "pass", "args": ["a"] * 256}).status == 200

    @pytest.mark.parametrize("ctype", [None, "text/plain", "application/jsonx", "application/x-www-form-urlencoded",
                                       "multipart/form-data; boundary=x"])
    def test_wrong_content_type(self, server, ctype):
        headers = {"Content-Type": ctype} if ctype else {}
        r = server.request("POST", "/api/execute", json.dumps({"code": "print(1)"}), headers)
        assert_error(r, 415, None, "unsupported_media_type", message="application/json")

    @pytest.mark.parametrize("ctype", ["application/json; charset=utf-8", "Application/JSON"])
    def test_content_type_variants_accepted(self, server, ctype):
        r = server.request("POST", "/api/execute", json.dumps({"code": "print(1)"}), {"Content-Type": ctype})
        assert r.status == 200, r

    @pytest.mark.parametrize("path", ["/", "/nope", "/api/execute/", "/API/EXECUTE", "/health/x"])
    def test_unknown_path(self, server, path):
        r = server.get(path)
        assert_error(r, 404, None, "not_found")

    @pytest.mark.parametrize("method,path,allow", [
        ("GET", "/api/execute", "POST"),
        ("PUT", "/api/execute", "POST"),
        ("POST", "/health", "GET"),
        ("DELETE", "/api/metrics", "GET"),
        ("POST", "/api/stats", "GET"),
        ("PATCH", "/health/ready", "GET"),
    ])
    def test_wrong_method(self, server, method, path, allow):
        body = "{}" if method in ("POST", "PUT", "PATCH") else None
        r = server.request(method, path, body, JSON_HEADERS if body else None)
        assert_error(r, 405, None, "method_not_allowed", message=method)
        methods = {m.strip() for m in r.headers["Allow"].split(",")}
        assert allow in methods
        assert method not in methods

    def test_errors_do_not_run_or_count(self, server):
        before = server.stats()["executions"]
        server.execute({"code": "print(1)", "timeout": "x"})
        server.request("POST", "/api/execute", "{", JSON_HEADERS)
        assert server.stats()["executions"] == before

    def test_no_cors_headers_when_unset(self, server):
        r = server.get("/health")
        assert "Access-Control-Allow-Origin" not in r.headers
        r = server.request("OPTIONS", "/api/execute", headers={"Origin": "https://evil.example",
                                                               "Access-Control-Request-Method": "POST"})
        assert r.status in (200, 204)
        assert "Access-Control-Allow-Origin" not in r.headers
        assert "Access-Control-Allow-Methods" not in r.headers


def executions(srv):
    return srv.stats()["executions"]


@pytest.mark.parametrize("origin", ["https://evil.example", "http://evil.example:3002", "null",
                                    "http://127.0.0.1.evil.example", "http://localhost.evil.example",
                                    "http://[::2]:3002", "file://"])
def test_web_pages_elsewhere_cannot_call_a_loopback_service(serve, origin):
    """A page of another site, or one reached by DNS rebinding (its Origin
    names the attacker's host though the request reaches 127.0.0.1), gets
    403 before anything runs; nothing ran, seen from the service's counts."""
    srv = serve()
    before = executions(srv)
    r = srv.execute({"code": "print(1)"}, headers={"Origin": origin})
    err = r.json()["error"]
    assert r.status == 403 and err["code"] == "origin_not_allowed", r.json()
    assert err["message"].startswith("requests from web pages of "), err
    r = srv.post("/api/submissions", {"code": "print(1)"}, headers={"Origin": origin})
    assert r.status == 403, r.json()
    assert executions(srv) == before
    assert srv.stats()["submissions"]["accepted"] == 0


@pytest.mark.parametrize("origin", ["http://localhost:3002", "http://127.0.0.1:3002", "http://127.5.6.7",
                                    "https://LOCALHOST", "http://[::1]:3002"])
def test_loopback_pages_and_programs_may_call_a_loopback_service(serve, origin):
    srv = serve()
    assert srv.execute({"code": "print(1)"}, headers={"Origin": origin}).status == 200
    assert srv.execute({"code": "print(1)"}).status == 200  # no Origin: a program, a proxy


def test_origin_check_follows_cors_origin_and_the_bind_address(serve):
    srv = serve("--cors-origin", "https://app.example.org")
    assert srv.execute({"code": "print(1)"}, headers={"Origin": "https://app.example.org"}).status == 200
    assert srv.execute({"code": "print(1)"}, headers={"Origin": "https://other.example.org"}).status == 403
    # A service on a public address serves other machines: browsers' CORS
    # decides what their pages read.
    srv2 = serve(env={"BIND": "0.0.0.0"})
    assert srv2.execute({"code": "print(1)"}, headers={"Origin": "https://evil.example"}).status == 200


def test_cors(serve):
    srv = serve("--cors-origin", "https://app.example.org")
    r = srv.request("OPTIONS", "/api/execute", headers={
        "Origin": "https://app.example.org", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type, authorization"})
    assert r.status in (200, 204)
    assert r.headers["Access-Control-Allow-Origin"] == "https://app.example.org"
    methods = {m.strip() for m in r.headers["Access-Control-Allow-Methods"].split(",")}
    assert {"POST", "GET", "OPTIONS"} <= methods
    allowed = {h.strip().lower() for h in r.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"content-type", "authorization", "x-api-key", "x-request-id"} <= allowed
    assert int(r.headers["Access-Control-Max-Age"]) > 0
    # on normal responses, errors included
    for resp in (srv.execute({"code": "print(1)"}), srv.get("/health"), srv.get("/nope"),
                 srv.execute({"code": 1})):
        assert resp.headers["Access-Control-Allow-Origin"] == "https://app.example.org", resp
        exposed = {h.strip() for h in resp.headers["Access-Control-Expose-Headers"].split(",")}
        # every header a client reads: ids, rate limits, a submission's Location and replay, the ETag
        assert exposed == {"X-Request-Id", "Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset",
                           "Location", "Idempotent-Replayed", "ETag"}, exposed


# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------


class TestConfig:
    def test_port_from_env(self, serve):
        port = free_port()
        srv = serve(env={"PORT": port}, port=port, port_flag=False)
        assert srv.get("/health").status == 200
        listening = [e for e in srv.logs() if e["message"] == "listening"]
        assert listening and listening[0]["port"] == port

    def test_a_port_in_use_is_refused(self, serve, tmp_path):
        """A second service on a port the first one listens on exits 1
        naming it, before it starts a zygote or reserves huge pages; the
        first keeps every connection."""
        first = serve()
        huge_before = pathlib.Path("/proc/sys/vm/nr_hugepages").read_text()
        second = subprocess.run([PYEXEC, "serve", "--port", str(first.port)], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60,
                                env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
        assert second.returncode == 1, second.stderr.decode()[-2000:]
        lines = [json.loads(x) for x in second.stderr.decode().splitlines()]
        assert [x["message"] for x in lines] == ["cannot listen"], lines
        assert lines[0]["port"] == first.port and lines[0]["error"] == "Address already in use"
        assert pathlib.Path("/proc/sys/vm/nr_hugepages").read_text() == huge_before
        for _ in range(8):
            assert first.get("/health/live").status == 200

    def test_bind_ipv6_only(self, tmp_path):
        """BIND=::1 listens on that address alone: IPv6 answers, the IPv4
        loopback is refused."""
        port = free_port()
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "BIND": "::1", "EXECUTION_MODE": "cold"}
        with open(tmp_path / "serve.log", "wb") as log:
            proc = subprocess.Popen([PYEXEC, "serve", "--port", str(port)], stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=log, env=env)
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    c = http.client.HTTPConnection("::1", port, timeout=5)
                    c.request("GET", "/health/live")
                    assert c.getresponse().status == 200
                    c.close()
                    break
                except OSError:
                    assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
                    time.sleep(0.05)
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", port), timeout=5).close()
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0, (tmp_path / "serve.log").read_text()

    def test_env_limits(self, serve):
        srv = serve(env={"EXECUTION_TIMEOUT": 1500, "MEMORY_LIMIT": 64, "MAX_OUTPUT_LENGTH": 120})
        doc = srv.execute({"code": "print('x' * 1000)"}).json()
        assert doc["limits"]["timeoutMs"] == 1500
        assert doc["limits"]["cpuTimeMs"] == 1500
        assert doc["limits"]["memoryMb"] == 64
        assert doc["limits"]["maxOutput"] == 120
        assert doc["status"] == "output_limit" and len(doc["stdout"]) <= 120
        assert_error(srv.execute({"code": "pass", "timeout": 2000}), 400, "timeout", message="1 and 1500")
        assert_error(srv.execute({"code": "pass", "memoryLimit": 65}), 400, "memoryLimit", message="16 and 64")
        assert_error(srv.execute({"code": "pass", "maxOutput": 121}), 400, "maxOutput", message="1 and 120")
        t0 = time.monotonic()
        doc = srv.execute({"code": "import time\ntime.sleep(20)"}).json()
        assert doc["status"] == "timeout"
        assert time.monotonic() - t0 < 6

    def test_metrics_disabled(self, serve):
        srv = serve(env={"METRICS_ENABLED": "false"})
        assert_error(srv.get("/api/metrics"), 404, None, "not_found", message="METRICS_ENABLED")
        assert srv.get("/api/stats").status == 200

    def test_log_level_warn(self, serve):
        srv = serve("--max-concurrent-executions", 1, "--execution-queue-size", 0, env={"LOG_LEVEL": "warn"})
        srv.get("/health")
        assert srv.execute({"code": 1}).status == 400  # an info line, if info were on
        t, out = run_in_thread(slow_execute, srv.port, 1.5)
        srv.wait_state(lambda st: st["queue"]["active"] == 1)
        r = srv.execute({"code": "print(2)"})
        assert r.status == 503  # logged as a warning
        t.join(30)
        assert out["value"].status == 200
        logs = srv.logs()
        assert logs, "no log lines at all at warn"
        assert all(e["level"] in ("warn", "error") for e in logs), [e for e in logs if e["level"] not in
                                                                    ("warn", "error")]
        assert any(e.get("code") == 503 for e in logs)

    def test_log_level_info(self, serve):
        srv = serve("--log-level", "info")
        srv.get("/health")
        assert any(e["level"] == "info" and e.get("path") == "/health" for e in srv.logs())

    def test_config_file(self, serve, tmp_path):
        cfg = tmp_path / "pyexec.conf"
        cfg.write_text("# pyexec service\n\n"
                       "  MAX_OUTPUT_LENGTH = 77\n"
                       "EXECUTION_TIMEOUT=2500\t\n"
                       "# MEMORY_LIMIT=17\n"
                       "MEMORY_LIMIT=96\r\n"
                       "METRICS_ENABLED=off\n")
        srv = serve("--config", cfg)
        doc = srv.execute({"code": "print(1)"}).json()
        assert doc["limits"]["maxOutput"] == 77
        assert doc["limits"]["timeoutMs"] == 2500
        assert doc["limits"]["memoryMb"] == 96
        assert srv.get("/api/metrics").status == 404

    def test_precedence(self, serve, tmp_path):
        cfg = tmp_path / "prec.conf"
        cfg.write_text("EXECUTION_TIMEOUT=2000\nMEMORY_LIMIT=100\nMAX_OUTPUT_LENGTH=500\nMAX_TESTS=7\n")
        env = {"EXECUTION_TIMEOUT": "3000", "MEMORY_LIMIT": "90", "RATE_LIMIT_WINDOW": "1234"}
        p = config_output("--config", cfg, "--execution-timeout", "4000", "--max-tests=9", "--print-config",
                          env=env)
        assert p.returncode == 0, p.stderr
        out = p.stdout.decode()
        conf = parse_print_config(out)
        assert f"# config file: {cfg}" in out
        assert conf["EXECUTION_TIMEOUT"] == ("4000", "flag")
        assert conf["MAX_TESTS"] == ("9", "flag")
        assert conf["MEMORY_LIMIT"] == ("90", "environment")
        assert conf["RATE_LIMIT_WINDOW"] == ("1234", "environment")
        assert conf["MAX_OUTPUT_LENGTH"] == ("500", "file")
        assert conf["RATE_LIMIT_MAX"] == ("100", "default")
        assert conf["PORT"] == ("3002", "default")
        assert conf["BIND"] == ("127.0.0.1", "default")
        assert conf["LOG_LEVEL"] == ("info", "default")
        assert conf["METRICS_ENABLED"] == ("true", "default")
        # every key of --help is shown
        helptext = config_output("--help").stdout.decode()
        # (a key column: two spaces or more after the option; "--config FILE" is no key)
        keys = set(re.findall(r"^\s+--[a-z-]+\s{2,}([A-Z_]+)\s", helptext, re.M))
        assert len(keys) >= 20 and keys == set(conf), keys ^ set(conf)
        # and the running server follows the same precedence
        srv = serve("--config", cfg, "--execution-timeout", "4000", env=env)
        doc = srv.execute({"code": "pass"}).json()
        assert doc["limits"]["timeoutMs"] == 4000
        assert doc["limits"]["memoryMb"] == 90
        assert doc["limits"]["maxOutput"] == 500

    def test_config_file_from_env(self, tmp_path):
        cfg = tmp_path / "envfile.conf"
        cfg.write_text("MAX_TESTS=3\n")
        p = config_output("--print-config", env={"PYEXEC_CONFIG": str(cfg)})
        assert p.returncode == 0, p.stderr
        assert parse_print_config(p.stdout.decode())["MAX_TESTS"] == ("3", "file")

    INVALID = [
        ("flag", ["--port", "70000"], {}, None, "PORT"),
        ("flag", ["--memory-limit=8"], {}, None, "MEMORY_LIMIT"),
        ("flag", ["--metrics-enabled", "maybe"], {}, None, "METRICS_ENABLED"),
        ("flag", ["--bind", "localhost"], {}, None, "BIND"),
        ("flag", ["--no-such-option", "1"], {}, None, "no-such-option"),
        ("flag", ["--port"], {}, None, "port"),
        ("env", [], {"MEMORY_LIMIT": "lots"}, None, "MEMORY_LIMIT"),
        ("env", [], {"LOG_LEVEL": "loud"}, None, "LOG_LEVEL"),
        ("env", [], {"EXECUTION_TIMEOUT": "0"}, None, "EXECUTION_TIMEOUT"),
        ("env", [], {"RATE_LIMIT_MAX": "-1"}, None, "RATE_LIMIT_MAX"),
        ("env", [], {"PYEXEC_PYTHON": "python3"}, None, "PYEXEC_PYTHON"),
        ("file", [], {}, "EXECUTION_TIMEOUT=0\n", "EXECUTION_TIMEOUT"),
        ("file", [], {}, "# ok\nMAX_CONCURRENT_EXECUTIONS=many\n", "MAX_CONCURRENT_EXECUTIONS"),
        ("file", [], {}, "NO_SUCH_KEY=1\n", "NO_SUCH_KEY"),
        ("file", [], {}, "just words\n", "KEY=value"),
    ]

    @pytest.mark.parametrize("where,flags,env,file,key", INVALID, ids=[f"{w}-{k}" for w, _, _, _, k in INVALID])
    def test_invalid_value_stops_startup(self, tmp_path, where, flags, env, file, key):
        args = ["--port", str(free_port()), *flags]
        if file is not None:
            cfg = tmp_path / "bad.conf"
            cfg.write_text(file)
            args = ["--config", str(cfg), *args]
        p = config_output(*args, env=env)
        assert p.returncode != 0
        err = p.stderr.decode()
        assert key in err, err
        assert "listening" not in err

    def test_missing_config_file(self, tmp_path):
        p = config_output("--config", tmp_path / "nope.conf", "--print-config")
        assert p.returncode != 0
        assert "nope.conf" in p.stderr.decode()

    def test_api_keys_not_printed(self, tmp_path):
        keyfile = tmp_path / "keys"
        keyfile.write_text(f"# keys\n{KEY2}\n")
        p = config_output("--print-config", "--api-keys-file", keyfile, env={"API_KEYS": KEY1})
        assert p.returncode == 0, p.stderr
        out = p.stdout.decode() + p.stderr.decode()
        assert KEY1 not in out and KEY2 not in out
        assert KEY1[:12] not in out and KEY2[-12:] not in out
        conf = parse_print_config(p.stdout.decode())
        assert "not shown" in conf["API_KEYS"][0]
        assert conf["API_KEYS"][1] == "environment"
        assert conf["API_KEYS_FILE"] == (str(keyfile), "flag")


# ---------------------------------------------------------------------------
# Rate limit, queue, slots
# ---------------------------------------------------------------------------


def test_rate_limit(serve):
    srv = serve(env={"RATE_LIMIT_MAX": 3, "RATE_LIMIT_WINDOW": 2000, "API_KEYS": f"{KEY1},{KEY2}"},
                headers={"X-API-Key": KEY1})
    a = srv.new_client({"Authorization": f"Bearer {KEY1}"})
    b = Client(srv.port, {"X-API-Key": KEY2})
    assert srv.sample("pyexec_rate_limited_total") == 0
    t0 = time.monotonic()
    for i in range(3):
        r = a.execute({"code": f"print({i})"})
        assert r.status == 200, r
    r = a.execute({"code": "print('fourth')"})
    assert_error(r, 429, None, "rate_limited", message=["3", "2000"])
    assert 1 <= int(r.headers["Retry-After"]) <= 2
    # reads and invalid requests are not executions
    assert a.get("/health").status == 200
    assert a.execute({"code": 1}).status == 400
    # the other key has its own budget
    for i in range(3):
        assert b.execute({"code": "print('b')"}).status == 200
    assert b.execute({"code": "print('b')"}).status == 429
    assert srv.sample("pyexec_rate_limited_total") == 2
    assert a.get("/api/stats").json()["rateLimited"] == 2
    # after the window, allowed again
    time.sleep(max(0, 2.4 - (time.monotonic() - t0)))
    r = a.execute({"code": "print('again')"})
    assert r.status == 200, r
    assert r.json()["stdout"] == "again\n"
    a.close()
    b.close()


def test_rate_limit_by_address(serve):
    srv = serve("--rate-limit-max", 2, "--rate-limit-window", 60000)
    assert srv.execute({"code": "pass"}).status == 200
    assert srv.execute({"code": "pass"}).status == 200
    other = srv.new_client()  # another connection, same address: same budget
    r = other.execute({"code": "pass"})
    other.close()
    assert r.status == 429
    assert int(r.headers["Retry-After"]) > 50


def test_queue_full(serve):
    srv = serve(env={"MAX_CONCURRENT_EXECUTIONS": 1, "EXECUTION_QUEUE_SIZE": 1})
    t1, o1 = run_in_thread(slow_execute, srv.port, 2, None, "first")
    srv.wait_state(lambda st: st["queue"]["active"] == 1)
    t2, o2 = run_in_thread(slow_execute, srv.port, 2, None, "second")
    st = srv.wait_state(lambda st: st["queue"]["depth"] == 1)
    assert st["queue"]["slots"] == 1 and st["queue"]["capacity"] == 1
    t0 = time.monotonic()
    r = srv.execute({"code": "print('third')"})
    elapsed = time.monotonic() - t0
    assert_error(r, 503, None, "queue_full")
    assert int(r.headers["Retry-After"]) >= 1
    assert elapsed < 0.75, f"a full queue must answer at once, took {elapsed:.2f} s"
    assert srv.sample("pyexec_queue_depth") == 1
    assert srv.sample("pyexec_active_executions") == 1
    assert srv.sample("pyexec_rejected_total", reason="queue_full") == 1
    t1.join(30)
    t2.join(30)
    assert o1["value"].status == 200 and o1["value"].json()["stdout"] == "first\n"
    assert o2["value"].status == 200 and o2["value"].json()["stdout"] == "second\n"
    assert srv.stats()["byStatus"]["ok"] == 2
    # the queue wait of the second was observed
    assert srv.sample("pyexec_queue_wait_seconds_count") == 2
    assert srv.sample("pyexec_queue_wait_seconds_bucket", le="1") <= 1


def test_sequential_client_never_sees_queue_full(serve):
    """One slot, no queue, one client sending one request after another: the
    slot is free again by the time the client has its response, so none of
    its requests may be refused as queue_full, and stats show the slot idle."""
    srv = serve("--max-concurrent-executions", 1, "--execution-queue-size", 0, "--rate-limit-max", 0)
    n = 100
    statuses, busy_after = [], 0
    for i in range(n):
        r = srv.execute({"code": f"print({i})"})
        statuses.append(r.status)
        if srv.get("/api/stats").json()["queue"]["active"] != 0:
            busy_after += 1
    refused = statuses.count(503)
    assert (refused, busy_after) == (0, 0), (
        f"{refused} of {n} sequential requests got 503 queue_full; "
        f"/api/stats showed the slot busy after {busy_after} of {n} completed responses")


def test_client_gone_is_not_run(serve):
    srv = serve("--max-concurrent-executions", 1, "--execution-queue-size", 5)
    t, out = run_in_thread(slow_execute, srv.port, 1.5)
    srv.wait_state(lambda st: st["queue"]["active"] == 1)
    rid = "gone-" + uuid.uuid4().hex
    marker = "MARKER_" + uuid.uuid4().hex
    body = json.dumps({"code": f"print('{marker}')"}).encode()
    s = socket.create_connection((HOST, srv.port), timeout=10)
    s.sendall(b"POST /api/execute HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"X-Request-Id: " + rid.encode() + b"\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    srv.wait_state(lambda st: st["queue"]["depth"] == 1)
    s.close()
    t.join(30)
    assert out["value"].status == 200
    dropped = srv.wait_log(lambda e: e.get("requestId") == rid and "not run" in e["message"])
    assert dropped, srv.log_text()
    srv.wait_state(lambda st: st["queue"]["depth"] == 0 and st["queue"]["active"] == 0)
    assert srv.sample("pyexec_rejected_total", reason="client_gone") == 1
    assert srv.sample("pyexec_executions_total", status="ok") == 1
    assert srv.stats()["executions"] == 1
    assert not [e for e in srv.logs() if e.get("requestId") == rid and "status" in e]
    assert marker not in srv.log_text()


def test_concurrent_100(serve):
    srv = serve(env={"MAX_CONCURRENT_EXECUTIONS": 4, "EXECUTION_QUEUE_SIZE": 200, "RATE_LIMIT_MAX": 0})
    n = 100
    barrier = threading.Barrier(n)
    results = [None] * n
    errors = []

    def worker(i):
        c = Client(srv.port, timeout=120)
        try:
            c._connect()
            c.conn.connect()
            barrier.wait(30)
            results[i] = c.execute({"code": f"print({i} * {i}, 'run-{i}')"}, headers={"X-Request-Id": f"c100-{i}"})
        except BaseException as e:
            errors.append((i, repr(e)))
        finally:
            c.close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(n)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:5]
    statuses = [r.status for r in results]
    assert statuses == [200] * n, {s: statuses.count(s) for s in set(statuses)}
    for i, r in enumerate(results):
        doc = r.json()
        assert doc["status"] == "ok", doc
        assert doc["stdout"] == f"{i * i} run-{i}\n"
        assert doc["id"] == f"c100-{i}"
    assert time.monotonic() - t0 < 90
    st = srv.stats()
    assert st["executions"] == n and st["byStatus"]["ok"] == n
    assert srv.sample("pyexec_http_requests_total", route="/api/execute", code="200") == n


def test_slow_clients_do_not_block(serve):
    srv = serve()
    socks = []
    try:
        for i in range(64):
            s = socket.create_connection((HOST, srv.port), timeout=10)
            if i % 2:
                s.sendall(b"POST /api/execute HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                          b"Content-Length: 100\r\n\r\n{\"code\": \"pri")
            else:
                s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            socks.append(s)
        time.sleep(0.2)
        t0 = time.monotonic()
        c = srv.new_client(timeout=10)
        r = c.execute({"code": "print('served')"})
        assert r.status == 200 and r.json()["stdout"] == "served\n"
        assert c.get("/health").status == 200
        c.close()
        assert time.monotonic() - t0 < 5
        assert srv.alive()
    finally:
        for s in socks:
            s.close()
    assert srv.get("/health").status == 200


GARBAGE = [
    bytes(random.Random(1).getrandbits(8) for _ in range(4096)),
    bytes(random.Random(2).getrandbits(8) for _ in range(65536)),
    b"\x00" * 2048,
    b"\r\n" * 5000,
    b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"A" * 200000 + b"\r\n\r\n",
    b"GET /" + b"a" * 100000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /health HTTP/9.9\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,  # a TLS ClientHello
    b"POST /api/execute HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: -5\r\n\r\n{}",
    b"POST /api/execute HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Content-Length: 99999999999999999999999\r\n\r\n{}",
    b"POST /api/execute HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Transfer-Encoding: chunked\r\n\r\nZZZZ\r\nxx\r\n",
    b"POST /api/execute HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n",
    b"GET /health HTTP/1.1\r\n" + b"X-H: v\r\n" * 5000 + b"\r\n",
    b"GET /health\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"\xff\xfe GET /health HTTP/1.1\r\n\r\n",
    b"POST /api/execute HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 4\r\n"
    b"Content-Length: 400\r\n\r\n{}{}",
]


def test_garbage_does_not_crash(serve):
    srv = serve()
    for i, payload in enumerate(GARBAGE):
        try:
            with socket.create_connection((HOST, srv.port), timeout=5) as s:
                s.sendall(payload)
                s.settimeout(0.3)
                try:  # read whatever comes back for a moment; a stalled connection is fine
                    while s.recv(65536):
                        pass
                except (socket.timeout, ConnectionResetError):
                    pass
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert srv.alive(), f"the server died on garbage payload {i}: {srv.log_text()[-2000:]}"
    r = srv.get("/health")
    assert r.status == 200 and r.json()["status"] == "ok"
    assert srv.execute({"code": "print('still fine')"}).json()["stdout"] == "still fine\n"
    assert srv.alive()


# ---------------------------------------------------------------------------
# API keys
# ---------------------------------------------------------------------------


class TestApiKeys:
    def check(self, srv, keys):
        anon = Client(srv.port)
        r = anon.execute({"code": "print(1)"})
        assert_error(r, 401, None, "unauthorized")
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        for path in ("/health", "/api/stats", "/api/metrics", "/api/environment"):
            assert anon.get(path).status == 401, path
        # liveness and readiness stay open
        assert anon.get("/health/live").status == 200
        assert anon.get("/health/ready").status == 200
        for bad in ({"Authorization": "Bearer wrong-key-0123456789"}, {"X-API-Key": keys[0] + "x"},
                    {"X-API-Key": keys[0][:-1]}, {"Authorization": keys[0]}, {"Authorization": f"Basic {keys[0]}"},
                    {"X-API-Key": ""}):
            r = anon.execute({"code": "print(1)"}, headers=bad)
            assert r.status == 401, (bad, r)
            assert "WWW-Authenticate" in r.headers
        for k in keys:
            for h in ({"Authorization": f"Bearer {k}"}, {"X-API-Key": k}):
                r = anon.execute({"code": "print('authorized')"}, headers=h)
                assert r.status == 200, (h, r)
                assert r.json()["stdout"] == "authorized\n"
                assert anon.get("/api/stats", headers=h).status == 200
        anon.close()
        text = srv.log_text()
        for k in keys:
            assert k not in text and k[:-1] not in text
        assert "wrong-key-0123456789" not in text

    def test_api_keys_env(self, serve):
        srv = serve(env={"API_KEYS": f"{KEY1}, {KEY2}"}, headers={"X-API-Key": KEY1})
        self.check(srv, [KEY1, KEY2])
        assert [e for e in srv.logs() if e["message"] == "listening"][0]["auth"] is True

    def test_api_keys_file(self, serve, tmp_path):
        f = tmp_path / "keys.txt"
        f.write_text(f"# the keys\n{KEY2}\n\n  {KEY1}  \n")
        srv = serve("--api-keys-file", f, headers={"X-API-Key": KEY2})
        self.check(srv, [KEY2, KEY1])

    @pytest.mark.parametrize("env,file", [({"API_KEYS": "short-key"}, None),
                                          ({"API_KEYS": f"{KEY1},tooshort"}, None),
                                          ({}, "tiny\n"),
                                          ({"API_KEYS": "key with spaces in it!"}, None)])
    def test_bad_keys_rejected_at_start(self, tmp_path, env, file):
        args = ["--port", str(free_port())]
        if file:
            (tmp_path / "k").write_text(file)
            args += ["--api-keys-file", str(tmp_path / "k")]
        p = config_output(*args, env=env)
        assert p.returncode != 0
        err = p.stderr.decode()
        assert "API_KEYS" in err
        for secret in ("short-key", "tooshort", "tiny", "key with spaces"):
            assert secret not in err

    def test_no_auth_without_keys(self, server):
        assert server.execute({"code": "pass"}).status == 200
        assert "WWW-Authenticate" not in server.get("/health").headers


# ---------------------------------------------------------------------------
# Graceful shutdown
# ---------------------------------------------------------------------------


def probe_listener(port):
    """One connection and a GET /health/live on it: "refused" when nothing
    listens, "dropped" when the connection was reset, closed or left
    unanswered (it raced the listener's close: it sat in the accept queue of
    a listener no longer accepting, or its SYN went unanswered there), else
    the answer's status line. Short timeouts, so that several probes fit
    before the execution under way ends."""
    try:
        c = socket.create_connection((HOST, port), timeout=0.5)
    except ConnectionRefusedError:
        return "refused"
    except (ConnectionResetError, socket.timeout):
        return "dropped"
    try:
        c.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        line = c.makefile("rb").readline()
    except (ConnectionResetError, BrokenPipeError, socket.timeout):
        return "dropped"
    finally:
        c.close()
    return line.decode(errors="replace").strip() or "dropped"


def test_graceful_shutdown(serve):
    srv = serve()
    t, out = run_in_thread(slow_execute, srv.port, 2, None, "finished")
    srv.wait_state(lambda st: st["queue"]["active"] == 1)
    srv.signal(signal.SIGTERM)
    # Until the signal is handled a probe may still be answered; one that
    # races the close of the listening socket may be reset instead of
    # refused. What must happen: the listener closes while the admitted
    # execution still runs, and from then on no connection is accepted.
    seen = []
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        seen.append(probe_listener(srv.port))
        if seen[-1] == "refused":
            break
        time.sleep(0.02)
    assert seen and seen[-1] == "refused", f"new connections still accepted after SIGTERM: {seen}"
    assert t.is_alive(), "the execution should still be running when connections are refused"
    after = [probe_listener(srv.port) for _ in range(5)]
    assert after == ["refused"] * 5, f"a connection was accepted after the listener closed: {after}"
    t.join(30)
    assert "error" not in out, out
    r = out["value"]
    assert r.status == 200
    doc = r.json()
    assert doc["status"] == "ok" and doc["stdout"] == "finished\n"
    assert set(doc) >= RESULT_KEYS
    assert srv.proc.wait(20) == 0
    logs = srv.logs()
    assert any("shutting down" in e["message"] for e in logs)
    assert logs[-1]["message"] == "stopped"


def test_sigint_idle_exit_0(serve):
    srv = serve()
    srv.signal(signal.SIGINT)
    assert srv.proc.wait(20) == 0


# ---------------------------------------------------------------------------
# Metrics and logs
# ---------------------------------------------------------------------------


def test_metrics_prometheus_format(serve):
    from prometheus_client.parser import text_string_to_metric_families
    srv = serve()

    def families():
        text = srv.get("/api/metrics").body.decode()
        fams = {f.name: f for f in text_string_to_metric_families(text)}
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in fams.values() for s in f.samples}
        return fams, samples

    fams, before = families()
    # the parser drops the _total suffix from counter family names
    expected = {
        "pyexec_executions": "counter", "pyexec_http_requests": "counter", "pyexec_rate_limited": "counter",
        "pyexec_rejected": "counter", "pyexec_execution_duration_seconds": "histogram",
        "pyexec_queue_wait_seconds": "histogram", "pyexec_queue_depth": "gauge",
        "pyexec_active_executions": "gauge", "pyexec_execution_slots": "gauge", "pyexec_build_info": "gauge",
    }
    for name, typ in expected.items():
        assert name in fams, f"missing metric family {name}"
        assert fams[name].type == typ, (name, fams[name].type)
    assert {s.labels["status"] for s in fams["pyexec_executions"].samples} == STATUSES
    assert {s.labels["reason"] for s in fams["pyexec_rejected"].samples} >= {"queue_full", "client_gone"}
    assert before[("pyexec_execution_slots", ())] == 5
    assert fams["pyexec_build_info"].samples[0].labels["version"]
    for s in fams["pyexec_http_requests"].samples:
        assert set(s.labels) == {"route", "code"}

    srv.execute({"code": "print(1)"})
    srv.execute({"code": "print(2)"})
    srv.execute({"code": "1/0"})
    srv.get("/nope")
    srv.execute({"code": 5})
    fams, after = families()

    def delta(name, **labels):
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0) - before.get(key, 0)

    assert delta("pyexec_executions_total", status="ok") == 2
    assert delta("pyexec_executions_total", status="runtime_error") == 1
    assert delta("pyexec_executions_total", status="timeout") == 0
    assert delta("pyexec_http_requests_total", route="/api/execute", code="200") == 3
    assert delta("pyexec_http_requests_total", route="/api/execute", code="400") == 1
    assert delta("pyexec_http_requests_total", route="other", code="404") == 1
    assert delta("pyexec_http_requests_total", route="/api/metrics", code="200") == 1
    assert delta("pyexec_execution_duration_seconds_count") == 3
    assert delta("pyexec_execution_duration_seconds_sum") > 0
    assert delta("pyexec_execution_duration_seconds_bucket", le="+Inf") == 3
    assert delta("pyexec_queue_wait_seconds_count") == 3
    assert after[("pyexec_queue_depth", ())] == 0
    assert after[("pyexec_active_executions", ())] == 0
    # buckets are cumulative
    buckets = [s for s in fams["pyexec_execution_duration_seconds"].samples if s.name.endswith("_bucket")]
    values = [s.value for s in buckets]
    assert values == sorted(values) and buckets[-1].labels["le"] == "+Inf"


def test_structured_logs(serve):
    srv = serve()
    code_secret = "CODE_SECRET_" + uuid.uuid4().hex
    stdin_secret = "STDIN_SECRET_" + uuid.uuid4().hex
    r = srv.execute({"code": f"# {code_secret}\nprint(len(input()))", "stdin": stdin_secret,
                     "exerciseId": "log-ex"})
    assert r.status == 200 and r.json()["stdout"] == f"{len(stdin_secret)}\n"
    rid = r.json()["id"]
    r2 = srv.execute({"code": f"print('{code_secret}' * 0)\nraise SystemExit(2)", "exerciseId": 99})
    srv.execute({"code": f"'{code_secret}'", "timeout": "bad"})
    srv.get("/health")
    text = srv.log_text()
    assert text.endswith("\n")
    lines = text.splitlines()
    assert len(lines) >= 6
    for line in lines:
        entry = json.loads(line)
        assert isinstance(entry, dict), line
        assert RFC3339.match(entry["timestamp"]), entry
        datetime.datetime.fromisoformat(entry["timestamp"].replace("Z", "+00:00"))
        assert entry["level"] in ("debug", "info", "warn", "error"), entry
        assert isinstance(entry["message"], str) and entry["message"], entry
    (entry,) = srv.log_for(rid)
    for key in ("requestId", "status", "wallMs", "cpuMs", "exerciseId", "client"):
        assert key in entry, (key, entry)
    assert entry["status"] == "ok"
    assert entry["exerciseId"] == "log-ex"
    assert entry["client"] == HOST
    assert entry["wallMs"] > 0 and entry["cpuMs"] >= 0
    assert entry["level"] == "info"
    (entry2,) = srv.log_for(r2.json()["id"])
    assert entry2["exerciseId"] == 99 and entry2["status"] == "runtime_error"
    assert code_secret not in text
    assert stdin_secret not in text


# ---------------------------------------------------------------------------
# The circuit breaker (root: the uid pool exists only then)
# ---------------------------------------------------------------------------

F_OFD_SETLK = 37
UID_LOCK = "/run/pyexec/uid-slots.lock"


def ofd_lock_byte0(fd, timeout=10):
    fl = struct.pack("hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, 0, 1, 0)
    assert struct.calcsize("hhqqi4x") == 32
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.fcntl(fd, F_OFD_SETLK, fl)
            return
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() > deadline:
                raise
            time.sleep(0.005)


@pytest.mark.skipif(not PRIVILEGED, reason="the uid pool (and its lock file) is used only as root")
def test_circuit_breaker(serve):
    # Cold: a warm pool would hold the one uid slot this test takes away.
    srv = serve(env={"PYEXEC_UID_COUNT": 1, "BREAKER_THRESHOLD": 3, "BREAKER_COOLDOWN": 1000,
                     "EXECUTION_MODE": "cold"})
    assert srv.execute({"code": "print('before')"}).json()["stdout"] == "before\n"
    fd = os.open(UID_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        ofd_lock_byte0(fd)
        for i in range(3):
            r = srv.execute({"code": "print('never')"})
            assert r.status == 500, r
            doc = r.json()
            assert doc["status"] == "internal_error", doc
            assert "no free sandbox uid" in doc["message"]
            assert doc["stdout"] == ""
        r = srv.execute({"code": "print('never')"})
        assert_error(r, 503, None, "sandbox_unavailable")
        assert 1 <= int(r.headers["Retry-After"]) <= 2
        r = srv.get("/health/ready")
        assert r.status == 503 and "Retry-After" in r.headers
        assert r.json()["status"] == "not_ready"
        h = srv.get("/health").json()
        assert h["status"] == "degraded" and h["ready"] is False
        assert srv.stats()["breakerOpen"] is True
        assert srv.sample("pyexec_breaker_open") == 1
        assert srv.sample("pyexec_rejected_total", reason="breaker_open") == 1
        assert srv.sample("pyexec_executions_total", status="internal_error") == 3
    finally:
        os.close(fd)  # releases the OFD lock
    # after the cooldown one probe is admitted; it succeeds and closes the breaker
    ok = None
    for attempt in range(3):  # another pyexec on this host may hold the slot for a moment
        time.sleep(1.1)
        r = srv.execute({"code": "print('recovered')"})
        if r.status == 200:
            ok = r
            break
    assert ok is not None, r
    assert ok.json()["stdout"] == "recovered\n"
    assert srv.get("/health/ready").status == 200
    assert srv.get("/health").json()["status"] == "ok"
    assert srv.sample("pyexec_breaker_open") == 0
    assert srv.execute({"code": "print('again')"}).status == 200


@pytest.mark.skipif(not PRIVILEGED, reason="the uid pool (and its lock file) is used only as root")
def test_a_refused_job_does_not_close_the_breaker(serve):
    """A job whose parameters fail on the worker tried no sandbox: as the
    half-open probe it leaves the breaker open (the next run probes), and
    its log line names the refusal, not a status."""
    srv = serve(env={"PYEXEC_UID_COUNT": 1, "BREAKER_THRESHOLD": 1, "BREAKER_COOLDOWN": 500,
                     "EXECUTION_MODE": "cold"})
    fd = os.open(UID_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        ofd_lock_byte0(fd)
        assert srv.execute({"code": "print('never')"}).status == 500
        assert srv.stats()["breakerOpen"] is True
    finally:
        os.close(fd)
    time.sleep(0.6)
    missing = f"/srv/pyexec/templates/missing-{uuid.uuid4().hex}.png"
    r = srv.post("/api/jobs/compose", {"params": {"template": missing, "design": "/srv/pyexec/uploads/x.png",
                                                  "preset": "chest-large", "output": "/srv/pyexec/composed/x.png"}})
    assert_error(r, 400, "params.template", "invalid_parameter", "does not exist")
    assert srv.get("/health/ready").status == 503
    assert srv.stats()["breakerOpen"] is True
    [line] = srv.log_for(r.headers["X-Request-Id"])
    assert "status" not in line and line["field"] == "params.template" and "does not exist" in line["error"]
    # The next run is the probe; it succeeds and closes the breaker.
    for attempt in range(3):  # another pyexec on this host may hold the slot for a moment
        r = srv.execute({"code": "print('recovered')"})
        if r.status == 200:
            break
        time.sleep(0.6)
    assert r.status == 200 and r.json()["stdout"] == "recovered\n"
    assert srv.get("/health/ready").status == 200
