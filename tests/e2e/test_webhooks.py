"""Callbacks of asynchronous submissions, end to end: `pyexec serve` posts
to a real HTTP receiver on loopback (in this process) that verifies the
Standard Webhooks signature with the standard library, fails the first
attempt with 500 and counts every delivery. The address rules are tested
in detail by tests/unit/test-webhook.c; here, that the API refuses what
they refuse, before anything is queued.
"""
import base64
import hashlib
import hmac
import http.server
import json
import threading
import time

import pytest

import openapi_check
from conftest import long_decimals
from test_serve import serving, start_server

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


class Receiver:
    """An HTTP server on 127.0.0.1: answers 500 to the first `fail_first`
    requests, then 200; keeps every request with its verdict."""

    def __init__(self, fail_first=1):
        self.fail_first = fail_first
        self.requests = []
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                openapi_check.check_webhook("submissionDone", self.headers, body)
                with outer.lock:
                    outer.requests.append({"headers": {k.lower(): v for k, v in self.headers.items()},
                                           "body": body, "verified": verify(self.headers, body)})
                    status = 500 if len(outer.requests) <= outer.fail_first else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def wait(self, n, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.requests) >= n:
                    return list(self.requests)
            time.sleep(0.05)
        raise AssertionError(f"{len(self.requests)} requests, not {n}")

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def verify(headers, body):
    """Standard Webhooks, as a receiver that knows only the spec checks it."""
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    msg_id, ts = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "")
    if not ts.isdigit() or abs(time.time() - int(ts)) > 300:
        return False
    want = base64.b64encode(hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()).decode()
    return any(hmac.compare_digest(want, s.removeprefix("v1,")) for s in headers.get("webhook-signature", "").split())


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def serve(tmp_path):
    yield from serving(tmp_path, start_server)


def test_a_callback_is_signed_retried_and_delivered(serve, receiver):
    srv = serve(env={"CALLBACK_ALLOWED_HOSTS": "127.0.0.1", "WEBHOOK_SECRET": SECRET, "RATE_LIMIT_MAX": 0})
    url = f"http://127.0.0.1:{receiver.port}/graded?course=7"
    r = srv.post("/api/submissions", {"code": "print('graded')", "exerciseId": "ex-9", "callbackUrl": url})
    assert r.status == 202, r
    sid = r.json()["id"]
    reqs = receiver.wait(2)
    time.sleep(0.5)
    assert len(receiver.requests) == 2, receiver.requests  # the 500, then the 200: no more
    assert all(q["verified"] for q in reqs), reqs
    assert reqs[0]["headers"]["webhook-id"] == reqs[1]["headers"]["webhook-id"] == f"msg_{sid}"
    assert reqs[0]["headers"]["content-type"] == "application/json"
    doc = json.loads(reqs[1]["body"])
    assert doc["type"] == "submission.done" and doc["data"]["id"] == sid, doc
    assert doc["data"]["result"]["stdout"] == "graded\n" and doc["data"]["result"]["exerciseId"] == "ex-9"
    assert not long_decimals(reqs[1]["body"].decode()), reqs[1]["body"]  # written as /api/execute writes a result
    st = srv.stats()["submissions"]["webhooks"]
    assert st["delivered"] == 1 and st["attempts"] == 2 and st["failedAttempts"] == 1, st
    assert srv.sample("pyexec_webhook_deliveries_total", outcome="delivered") == 1
    # A signature checked with another secret fails: the receiver's check is real.
    bad = dict(reqs[1]["headers"])
    bad["webhook-signature"] = "v1," + base64.b64encode(b"x" * 32).decode()
    assert not verify(bad, reqs[1]["body"])


def test_a_batch_shares_its_callback(serve, receiver):
    receiver.fail_first = 0
    srv = serve(env={"CALLBACK_ALLOWED_HOSTS": "127.0.0.1", "WEBHOOK_SECRET": SECRET, "RATE_LIMIT_MAX": 0})
    r = srv.post("/api/submissions", {"submissions": [{"code": "print(1)"}, {"code": "1/0"}],
                                      "callbackUrl": f"http://127.0.0.1:{receiver.port}/"})
    assert r.status == 202, r
    ids = {s["id"] for s in r.json()["submissions"]}
    reqs = receiver.wait(2)
    got = {json.loads(q["body"])["data"]["id"]: json.loads(q["body"])["data"]["result"]["status"] for q in reqs}
    assert set(got) == ids and sorted(got.values()) == ["ok", "runtime_error"], got


@pytest.mark.parametrize("url, rule", [
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
    ("http://10.0.0.5/hook", "10.0.0.5"),
    ("http://[::1]:8080/hook", "::1"),
    ("ftp://hooks.example.com/x", "http"),
    ("http://user:pw@hooks.example.com/x", "password"),
    ("http://elsewhere.example.org/x", "elsewhere.example.org"),
])
def test_refused_callback_urls(serve, url, rule):
    srv = serve(env={"CALLBACK_ALLOWED_HOSTS": "*", "WEBHOOK_SECRET": SECRET})
    if "elsewhere" in url:
        srv = serve(env={"CALLBACK_ALLOWED_HOSTS": "hooks.example.com", "WEBHOOK_SECRET": SECRET})
    before = srv.stats()["submissions"]["accepted"]
    r = srv.post("/api/submissions", {"code": "print(1)", "callbackUrl": url})
    assert r.status == 400 and r.error()["code"] == "invalid_callback_url", r
    assert rule in r.error()["message"], r.error()
    assert srv.stats()["submissions"]["accepted"] == before


def test_a_name_that_resolves_to_loopback_gets_nothing(serve, receiver):
    """With "*", localhost passes the check at submission (a name is not
    resolved then) but the connection to 127.0.0.1 is refused: the receiver
    sees no request."""
    receiver.fail_first = 0
    srv = serve(env={"CALLBACK_ALLOWED_HOSTS": "*", "WEBHOOK_SECRET": SECRET, "WEBHOOK_RETRY_FOR": 2})
    r = srv.post("/api/submissions?wait=20000", {"code": "print(1)",
                                                 "callbackUrl": f"http://localhost:{receiver.port}/"})
    assert r.status == 200, r
    deadline = time.monotonic() + 20
    while srv.stats()["submissions"]["webhooks"]["givenUp"] < 1:
        assert time.monotonic() < deadline, srv.stats()["submissions"]
        time.sleep(0.2)
    assert receiver.requests == []


def test_callbacks_need_a_secret(tmp_path):
    import subprocess
    from conftest import PYEXEC
    from test_serve import free_port
    p = subprocess.run([PYEXEC, "serve", "--port", str(free_port())], capture_output=True, text=True, timeout=30,
                       env={"PATH": "/usr/bin:/bin", "CALLBACK_ALLOWED_HOSTS": "hooks.example.com"})
    assert p.returncode == 1, p
    assert "WEBHOOK_SECRET" in p.stderr, p.stderr
