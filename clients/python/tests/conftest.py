"""Fixtures of the Python client's tests: each test talks to a real
`pyexec serve` that the fixtures start on a free loopback port (PYEXEC_BIN
names the binary; default build/pyexec of this checkout) and stop with
SIGTERM, asserting a clean exit."""
import http.client
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import uuid

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]
PYEXEC = os.environ.get("PYEXEC_BIN") or str(ROOT / "build" / "pyexec")
HOST = "127.0.0.1"

# The package from its source tree when it is not installed (the tests run
# against an installed copy under scripts/test-clients.sh).
try:
    import pyexec_client  # noqa: F401
except ImportError:
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "src"))


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, proc, port, log_path):
        self.proc = proc
        self.port = port
        self.url = f"http://{HOST}:{port}"
        self.log_path = log_path

    def log_text(self):
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout=60):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"pyexec serve did not exit within {timeout} s of SIGTERM")


def start_server(log_dir, env=None, timeout=30):
    """`pyexec serve` with env on a free port, once /health/ready answers 200."""
    for _ in range(3):
        port = free_port()
        environ = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "DEFAULT_POLICY": "permissive"}
        environ.update({k: str(v) for k, v in (env or {}).items()})
        log_path = pathlib.Path(log_dir) / f"serve-{port}-{uuid.uuid4().hex[:6]}.log"
        with open(log_path, "wb") as logf:
            proc = subprocess.Popen([PYEXEC, "serve", "--port", str(port)], stdin=subprocess.DEVNULL, stdout=logf,
                                    stderr=logf, env=environ)
        srv = Server(proc, port, log_path)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                c = http.client.HTTPConnection(HOST, port, timeout=2)
                c.request("GET", "/health/ready")
                status = c.getresponse().status
                c.close()
                if status == 200:
                    return srv
            except OSError:
                pass
            time.sleep(0.05)
        if proc.poll() is None:
            srv.stop()
            raise AssertionError(f"pyexec serve not ready within {timeout} s: {srv.log_text()[-3000:]}")
        if "cannot listen" in srv.log_text():
            continue  # lost a race for the port
        raise AssertionError(f"pyexec serve exited {proc.returncode}: {srv.log_text()[-3000:]}")
    raise AssertionError("could not start pyexec serve")


@pytest.fixture
def serve(tmp_path):
    """serve(env={...}) -> a started Server, stopped (exit 0 asserted) at teardown."""
    servers = []

    def _serve(env=None):
        srv = start_server(tmp_path, env)
        servers.append(srv)
        return srv

    yield _serve
    for s in servers:
        code = s.stop()
        assert code == 0, f"pyexec serve exited {code}: {s.log_text()[-3000:]}"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A shared service without a rate limit, whose runs may take a minute."""
    srv = start_server(tmp_path_factory.mktemp("serve"), {"RATE_LIMIT_MAX": 0, "EXECUTION_TIMEOUT": 60000})
    yield srv
    code = srv.stop()
    assert code == 0, f"pyexec serve exited {code}: {srv.log_text()[-3000:]}"
