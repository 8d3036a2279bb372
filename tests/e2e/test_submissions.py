"""Asynchronous submissions (POST /api/submissions, GET /api/submissions):
through the real `pyexec serve` with its in-process queue (the default).
The Redis Streams queue, `pyexec worker` and the crash test are in
test_queue_redis.py; the callbacks in test_webhooks.py.
"""
import json
import re
import subprocess
import time

import pytest

from conftest import PYEXEC
from test_serve import JSON_HEADERS, serving, start_server

ID = re.compile(r"^[0-9a-f]{32}$")


@pytest.fixture
def serve(tmp_path):
    yield from serving(tmp_path, start_server)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("subs"), env={"RATE_LIMIT_MAX": 0, "MAX_BATCH": 8})
    yield srv
    code = srv.stop()
    assert code == 0, f"pyexec serve exited {code}: {srv.log_text()[-3000:]}"


def submit(srv, body, headers=None, query=""):
    return srv.post("/api/submissions" + query, body, headers)


def wait_done(srv, ids, timeout=60):
    """GET until every id is done; the last answer's entries by id."""
    deadline = time.monotonic() + timeout
    while True:
        r = srv.get("/api/submissions?ids=" + ",".join(ids))
        assert r.status == 200, r
        subs = {s["id"]: s for s in r.json()["submissions"]}
        if all(s["state"] == "done" for s in subs.values()):
            return subs
        assert time.monotonic() < deadline, f"not done in {timeout} s: {subs}"
        time.sleep(0.05)


def test_one_submission_is_queued_then_done(server):
    r = submit(server, {"code": "print(6 * 7)", "exerciseId": "ex-1"})
    assert r.status == 202, r
    doc = r.json()
    assert ID.match(doc["id"]) and doc["state"] in ("queued", "running", "done"), doc
    assert r.headers["Location"] == "/api/submissions/" + doc["id"]
    done = wait_done(server, [doc["id"]])[doc["id"]]
    assert done["httpStatus"] == 200
    res = done["result"]
    assert res["id"] == doc["id"] and res["status"] == "ok" and res["stdout"] == "42\n", res
    assert res["exerciseId"] == "ex-1"
    one = server.get("/api/submissions/" + doc["id"])
    assert one.status == 200 and one.json() == done


def test_wait_returns_the_result_inline(server):
    r = submit(server, {"code": "print('quick')"}, query="?wait=20000")
    assert r.status == 200, r
    doc = r.json()
    assert doc["state"] == "done" and doc["result"]["stdout"] == "quick\n", doc


def test_wait_gives_up_at_its_deadline(server):
    t0 = time.monotonic()
    r = submit(server, {"code": "import time; time.sleep(3); print('late')", "timeout": 8000}, query="?wait=300")
    took = time.monotonic() - t0
    assert r.status == 202, r
    assert r.json()["state"] in ("queued", "running")
    assert took < 2.5, took
    assert wait_done(server, [r.json()["id"]])[r.json()["id"]]["result"]["stdout"] == "late\n"


def test_a_batch_runs_each_submission_with_its_own_verdict(server):
    programs = {"ok": "print('fine')", "syntax_error": "print(", "runtime_error": "1/0",
                "timeout": "while True: pass"}
    body = {"submissions": [{"code": c, "timeout": 1000} for c in programs.values()]}
    r = submit(server, body)
    assert r.status == 202, r
    subs = r.json()["submissions"]
    assert len(subs) == len(programs) and all(ID.match(s["id"]) for s in subs)
    assert len({s["id"] for s in subs}) == len(subs)
    done = wait_done(server, [s["id"] for s in subs])
    for s, want in zip(subs, programs):
        assert done[s["id"]]["result"]["status"] == want, done[s["id"]]


def test_batch_limits(server):
    r = submit(server, {"submissions": [{"code": "pass"}] * 9})
    assert r.status == 413 and r.error()["code"] == "batch_too_large", r
    assert "MAX_BATCH" in r.error()["message"]
    r = submit(server, {"submissions": []})
    assert r.status == 400 and r.error()["field"] == "submissions", r
    r = submit(server, {"submissions": [{"code": "pass"}, {"code": "pass"}, {"codes": "x"}]})
    assert r.status == 400 and r.error()["field"].startswith("submissions[2]."), r
    r = submit(server, {"submissions": [{"code": "pass"}], "extra": 1})
    assert r.status == 400 and r.error()["field"] == "extra", r


def test_a_refused_batch_queues_nothing(server):
    before = server.stats()["submissions"]["accepted"]
    r = submit(server, {"submissions": [{"code": "pass"}, {"code": 5}]})
    assert r.status == 400, r
    assert server.stats()["submissions"]["accepted"] == before


def test_idempotency_key(server):
    key = {"Idempotency-Key": "grade-run-17"}
    body = {"submissions": [{"code": "import random; print(random.random())"}] * 2}
    first = submit(server, body, key)
    assert first.status == 202, first
    ids = [s["id"] for s in first.json()["submissions"]]
    again = submit(server, body, key)
    assert again.status in (200, 202), again
    assert [s["id"] for s in again.json()["submissions"]] == ids
    assert again.headers["Idempotent-Replayed"] == "true"
    other = submit(server, {"submissions": [{"code": "print(2)"}]}, key)
    assert other.status == 409 and other.error()["code"] == "idempotency_key_reused", other
    done = wait_done(server, ids)
    # Each ran once: the replay queued nothing.
    outputs = [done[i]["result"]["stdout"] for i in ids]
    third = submit(server, body, key).json()
    assert [third["submissions"][k]["result"]["stdout"] for k in range(2)] == outputs
    bad = submit(server, {"code": "pass"}, {"Idempotency-Key": "x" * 256})
    assert bad.status == 400 and bad.error()["code"] == "invalid_idempotency_key", bad


def test_unknown_and_malformed_ids(server):
    r = server.get("/api/submissions/" + "0" * 32)
    assert r.status == 404 and r.error()["code"] == "not_found", r
    r = server.get("/api/submissions/not-an-id")
    assert r.status == 404, r
    r = server.get("/api/submissions?ids=" + "0" * 32)
    assert r.status == 200 and r.json()["submissions"] == [{"id": "0" * 32, "state": "unknown"}], r
    r = server.get("/api/submissions?ids=abc")
    assert r.status == 400 and r.error()["field"] == "ids", r
    r = server.get("/api/submissions")
    assert r.status == 400, r


def test_callbacks_are_off_by_default(server):
    r = submit(server, {"code": "pass", "callbackUrl": "https://example.com/hook"})
    assert r.status == 400 and r.error()["code"] == "invalid_callback_url", r
    assert "CALLBACK_ALLOWED_HOSTS" in r.error()["message"]


def test_methods(server):
    r = server.request("DELETE", "/api/submissions")
    assert r.status == 405 and r.headers["Allow"] == "GET, HEAD, POST, OPTIONS", r
    r = server.request("POST", "/api/submissions/" + "0" * 32, "{}", JSON_HEADERS)
    assert r.status == 405 and r.headers["Allow"] == "GET, HEAD, OPTIONS", r
    r = server.request("POST", "/api/submissions", "code=1", {"Content-Type": "text/plain"})
    assert r.status == 415, r


def test_stats_metrics_and_logs(server):
    r = submit(server, {"code": "print(1)"}, query="?wait=20000")
    assert r.status == 200, r
    sid = r.json()["id"]
    st = server.stats()["submissions"]
    assert st["backend"] == "memory" and st["persistent"] is False and st["reachable"] is True, st
    assert st["queue"]["stored"] >= 1 and st["accepted"] >= 1 and st["runHere"] >= 1, st
    assert server.sample("pyexec_submissions_accepted_total") >= 1
    assert server.sample("pyexec_submissions_results_stored_total") >= 1
    msgs = [e["message"] for e in server.logs() if e.get("submission") == sid]
    # One line per change of state; "queued" is written by the thread that
    # accepted it, and may follow the worker's "running".
    assert sorted(msgs) == ["submission done", "submission queued", "submission running"], msgs
    assert msgs.index("submission running") < msgs.index("submission done"), msgs


def test_submissions_count_against_the_rate_limit(serve):
    srv = serve(env={"RATE_LIMIT_MAX": 3, "RATE_LIMIT_WINDOW": 60000})
    r = submit(srv, {"submissions": [{"code": "pass"}] * 4})
    assert r.status == 429 and r.error()["code"] == "rate_limited", r
    assert srv.stats()["submissions"]["accepted"] == 0
    r = submit(srv, {"submissions": [{"code": "pass"}] * 3})
    assert r.status == 202, r


def test_shutdown_answers_a_waiting_request(serve):
    srv = serve()
    c = srv.new_client(timeout=30)
    import threading
    out = {}

    def post():
        out["r"] = c.post("/api/submissions?wait=30000", {"code": "import time; time.sleep(2)", "timeout": 10000})

    t = threading.Thread(target=post)
    t.start()
    assert srv.wait_log(lambda e: e.get("message") == "submission running", timeout=10)
    srv.signal()
    t.join(30)
    assert out["r"].status == 200 and out["r"].json()["state"] == "done", out["r"]


def test_worker_needs_a_shared_queue(tmp_path):
    p = subprocess.run([PYEXEC, "worker"], capture_output=True, text=True, timeout=30,
                       env={"PATH": "/usr/bin:/bin"})
    assert p.returncode == 2, p
    assert "QUEUE_URL" in p.stderr
    p = subprocess.run([PYEXEC, "serve", "--queue-workers", "0"], capture_output=True, text=True, timeout=30,
                       env={"PATH": "/usr/bin:/bin"})
    assert p.returncode == 2 and "QUEUE_WORKERS=0 needs QUEUE_URL" in p.stderr, p


def test_config_hides_the_secrets(tmp_path):
    p = subprocess.run([PYEXEC, "serve", "--print-config"], capture_output=True, text=True, timeout=30,
                       env={"PATH": "/usr/bin:/bin", "QUEUE_URL": "redis://:hunter2@127.0.0.1:6390/0",
                            "WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"})
    assert p.returncode == 0, p
    assert "hunter2" not in p.stdout and "MfKQ9r8" not in p.stdout
    assert "QUEUE_URL=redis://***@127.0.0.1:6390/0" in p.stdout, p.stdout


def test_the_queue_has_a_bound(serve):
    srv = serve(env={"QUEUE_MAX_DEPTH": 2, "MAX_CONCURRENT_EXECUTIONS": 1, "RATE_LIMIT_MAX": 0})
    slow = {"code": "import time; time.sleep(1)", "timeout": 5000}
    r = submit(srv, {"submissions": [slow] * 3})
    assert r.status == 503 and r.error()["code"] == "queue_full", r
    assert "QUEUE_MAX_DEPTH" in r.error()["message"] and r.headers["Retry-After"] == "1"
    r = submit(srv, {"submissions": [slow] * 2})
    assert r.status == 202, r
    ids = [s["id"] for s in r.json()["submissions"]]
    srv.wait_log(lambda e: e.get("message") == "submission running", timeout=10)
    r = submit(srv, {"submissions": [slow] * 2})
    assert r.status == 503 and r.error()["code"] == "queue_full", r
    wait_done(srv, ids)
