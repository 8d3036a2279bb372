"""`pyexec serve` under a unit of Type=notify, without systemd: the test plays
the service manager's part of sd_notify(3), a datagram socket named by
$NOTIFY_SOCKET. READY=1 comes only once /health/ready answers 200 (the
self-test passed and the listening socket accepts), STATUS= lines say what the
service is doing, and SIGTERM brings STOPPING=1 before the exit, 0. Outside
systemd (no $NOTIFY_SOCKET) nothing is sent: every other test runs so.
"""
import http.client
import os
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import PYEXEC

HOST = "127.0.0.1"


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def ready_status(port):
    c = http.client.HTTPConnection(HOST, port, timeout=5)
    try:
        c.request("GET", "/health/ready")
        return c.getresponse().status
    finally:
        c.close()


class Manager:
    """The notify socket; each datagram is checked against the service's
    state the moment it arrives."""

    def __init__(self, path, port):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.port = port
        self.messages = []  # (assignments, /health/ready status when READY=1 came, else None)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while not self.stop.is_set():
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            fields = dict(line.split("=", 1) for line in data.decode().split("\n") if "=" in line)
            status = None
            if fields.get("READY") == "1":
                try:
                    status = ready_status(self.port)
                except OSError as e:
                    status = f"no connection: {e}"
            self.messages.append((fields, status))

    def wait_for(self, key, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for fields, status in self.messages:
                if key in fields:
                    return fields, status
            time.sleep(0.02)
        raise AssertionError(f"no {key}= within {timeout} s; got {self.messages}")

    def close(self):
        self.stop.set()
        self.thread.join(2)
        self.sock.close()


def test_ready_after_self_test_and_stopping_at_shutdown(tmp_path):
    port = free_port()
    manager = Manager(tmp_path / "notify", port)
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "NOTIFY_SOCKET": str(tmp_path / "notify")}
    for k in ("PYEXEC_RUNNER",):
        if k in os.environ:
            env[k] = os.environ[k]
    log = tmp_path / "serve.log"
    with open(log, "wb") as logf:
        proc = subprocess.Popen([PYEXEC, "serve", "--port", str(port)], stdin=subprocess.DEVNULL, stdout=logf,
                                stderr=logf, env=env)
    try:
        try:
            fields, status = manager.wait_for("READY", timeout=90)
        except AssertionError:
            raise AssertionError(f"{manager.messages}\n{log.read_text()[-3000:]}")
        assert status == 200, f"READY=1 came while /health/ready answered {status}"
        assert fields["STATUS"].startswith("ready: serving on 127.0.0.1 port"), fields
        statuses = [f["STATUS"] for f, _ in manager.messages if "STATUS" in f]
        assert any(s.startswith("listening on ") for s in statuses), statuses
        assert sum(1 for f, _ in manager.messages if "READY" in f) == 1, manager.messages

        proc.send_signal(signal.SIGTERM)
        fields, _ = manager.wait_for("STOPPING", timeout=30)
        assert fields["STOPPING"] == "1" and fields["STATUS"].startswith("shutting down (SIGTERM)"), fields
        assert proc.wait(60) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        manager.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="one case is enough: the path does not depend on the user")
def test_unreachable_notify_socket_changes_nothing(tmp_path):
    """A $NOTIFY_SOCKET nobody listens on: the service runs and stops as
    without one (sd_notify's failures are ignored)."""
    port = free_port()
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "NOTIFY_SOCKET": str(tmp_path / "nobody")}
    if "PYEXEC_RUNNER" in os.environ:
        env["PYEXEC_RUNNER"] = os.environ["PYEXEC_RUNNER"]
    log = tmp_path / "serve.log"
    with open(log, "wb") as logf:
        proc = subprocess.Popen([PYEXEC, "serve", "--port", str(port), "--cold"], stdin=subprocess.DEVNULL,
                                stdout=logf, stderr=logf, env=env)
    try:
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline and status != 200 and proc.poll() is None:
            try:
                status = ready_status(port)
            except OSError:
                time.sleep(0.05)
        assert status == 200, log.read_text()[-3000:]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
