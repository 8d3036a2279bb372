"""Scale-out of the synchronous API: two `pyexec serve` instances behind a
real HAProxy (Debian's haproxy) on loopback, which routes by
/health/ready. One instance is SIGKILLed while clients keep sending
requests: HAProxy's health checks take it out, and only the requests in
flight on it when it died fail; they are counted and bounded.
"""
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

from test_serve import free_port, serving, start_server

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
pytestmark = pytest.mark.skipif(not os.path.exists(HAPROXY), reason="haproxy is not installed "
                                "(scripts/deps.sh installs it with the test packages)")
CONCURRENCY = 4


@pytest.fixture
def serve(tmp_path):
    yield from serving(tmp_path, start_server)


def haproxy_config(front, stats, backends):
    servers = "\n".join(f"    server s{i} 127.0.0.1:{p} check inter 100ms fall 2 rise 2"
                        for i, p in enumerate(backends))
    return f"""global
    maxconn 256
defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    retries 2
    option redispatch
frontend api
    bind 127.0.0.1:{front}
    default_backend pyexec
frontend stats
    bind 127.0.0.1:{stats}
    stats enable
    stats uri /stats
backend pyexec
    balance roundrobin
    option httpchk GET /health/ready
    http-check expect status 200
{servers}
"""


def start_haproxy(tmp_path, backends):
    front, stats = free_port(), free_port()
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(haproxy_config(front, stats, backends))
    check = subprocess.run([HAPROXY, "-c", "-f", str(cfg)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    log = open(tmp_path / "haproxy.log", "wb")
    p = subprocess.Popen([HAPROXY, "-db", "-f", str(cfg)], stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", front), timeout=1).close()
            return p, front, stats
        except OSError:
            time.sleep(0.05)
    p.kill()
    raise AssertionError((tmp_path / "haproxy.log").read_text())


def server_status(stats_port):
    """name -> UP/DOWN, from HAProxy's CSV statistics."""
    c = http.client.HTTPConnection("127.0.0.1", stats_port, timeout=5)
    c.request("GET", "/stats;csv")
    rows = c.getresponse().read().decode().splitlines()
    head = rows[0].lstrip("# ").split(",")
    out = {}
    for r in rows[1:]:
        f = dict(zip(head, r.split(",")))
        if f.get("pxname") == "pyexec" and f.get("svname", "").startswith("s"):
            out[f["svname"]] = f["status"]
    return out


def test_a_killed_instance_costs_only_its_requests_in_flight(serve, tmp_path):
    # The instance killed is started here, not by the fixture (which
    # asserts a clean exit).
    a = start_server(tmp_path, env={"RATE_LIMIT_MAX": 0})
    b = serve(env={"RATE_LIMIT_MAX": 0})
    hp, front, stats = start_haproxy(tmp_path, [a.port, b.port])
    try:
        deadline = time.monotonic() + 10
        while server_status(stats) != {"s0": "UP", "s1": "UP"}:
            assert time.monotonic() < deadline, server_status(stats)
            time.sleep(0.1)
        results = []
        lock = threading.Lock()
        stop = threading.Event()

        def client():
            c = http.client.HTTPConnection("127.0.0.1", front, timeout=30)
            while not stop.is_set():
                t = time.monotonic()
                try:
                    c.request("POST", "/api/execute", json.dumps({"code": "import time; time.sleep(0.05); print(1)"}),
                              {"Content-Type": "application/json"})
                    r = c.getresponse()
                    body = r.read()
                    ok = r.status == 200 and json.loads(body)["stdout"] == "1\n"
                    code = r.status
                except (OSError, http.client.HTTPException, ValueError) as e:
                    ok, code = False, repr(e)
                    c.close()
                    c = http.client.HTTPConnection("127.0.0.1", front, timeout=30)
                with lock:
                    results.append((t, time.monotonic(), ok, code))

        threads = [threading.Thread(target=client) for _ in range(CONCURRENCY)]
        for t in threads:
            t.start()
        time.sleep(2)
        killed_at = time.monotonic()
        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait()
        time.sleep(3)
        stop.set()
        for t in threads:
            t.join(30)
        assert server_status(stats)["s0"] == "DOWN", server_status(stats)
        failed = [r for r in results if not r[2]]
        before = [r for r in results if r[1] < killed_at]
        after = [r for r in results if r[0] > killed_at + 1.0]
        # Only what was in flight on the killed instance can fail: at most
        # one request per client.
        assert len(failed) <= CONCURRENCY, failed
        assert all(r[2] for r in before), [r for r in before if not r[2]]
        assert after and all(r[2] for r in after), [r for r in after if not r[2]]
        print(f"\nscale-out: {len(results)} requests through haproxy, instance killed mid-load: "
              f"{len(failed)} failed ({sorted(set(str(r[3]) for r in failed))}), {len(after)} after it, all ok")
    finally:
        hp.terminate()
        hp.wait(10)
        if a.proc.poll() is None:
            a.proc.kill()
            a.proc.wait()
