"""Asynchronous submissions on Redis Streams: `pyexec serve` instances that
accept, `pyexec worker` processes that run, a real redis-server started by
the tests on loopback (Debian's redis-server), killed and restarted.

The crash test hands 1,000 submissions to three workers, SIGKILLs one of
them while it runs submissions and SIGKILLs redis-server once (append-only
file, fsync always) and starts it again: every submission must end with
exactly one stored result, the right verdict, and none lost; the runs made
twice are counted and printed.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import time

import pytest

from conftest import PYEXEC, wait_for
from test_serve import free_port, serving, start_server
from test_webhooks import SECRET, Receiver

REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"
pytestmark = pytest.mark.skipif(not os.path.exists(REDIS), reason="redis-server is not installed "
                                "(scripts/deps.sh installs it with the test packages)")


class Redis:
    """redis-server on a loopback port, its data in dir (append-only file)."""

    def __init__(self, dir, port=None):
        self.dir = dir
        self.port = port or free_port()
        self.proc = None

    def start(self):
        args = [REDIS, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir), "--save", "",
                "--appendonly", "yes", "--appendfsync", "always", "--daemonize", "no", "--protected-mode", "yes"]
        self.log = open(self.dir / "redis.log", "ab")
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.ping():
                return self
            assert self.proc.poll() is None, (self.dir / "redis.log").read_text()
            time.sleep(0.05)
        raise AssertionError("redis-server did not answer PING")

    def ping(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self):
        self.proc.kill()
        self.proc.wait()
        self.log.close()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)
            self.log.close()

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}"


@pytest.fixture
def redis(tmp_path):
    d = tmp_path / "redis"
    d.mkdir()
    r = Redis(d).start()
    yield r
    r.stop()


@pytest.fixture
def serve(tmp_path):
    yield from serving(tmp_path, start_server)


def start_worker(tmp_path, env):
    """`pyexec worker` on a free port; returns (process, port, log path)."""
    port = free_port()
    log = tmp_path / f"worker-{port}.log"
    environ = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "DEFAULT_POLICY": "permissive",
               **{k: str(v) for k, v in env.items()}}
    with open(log, "wb") as f:
        p = subprocess.Popen([PYEXEC, "worker", "--port", str(port)], stdin=subprocess.DEVNULL, stdout=f, stderr=f,
                             env=environ)
    import http.client
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert p.poll() is None, log.read_text()
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/health/ready")
            if c.getresponse().status == 200:
                c.close()
                return p, port, log
        except OSError:
            pass
        time.sleep(0.05)
    p.kill()
    raise AssertionError(f"pyexec worker not ready: {log.read_text()}")


def stop_worker(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        return p.wait(60)
    return p.returncode


def log_lines(path):
    out = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def get_states(srv, ids):
    """id -> entry, through GET ?ids= in chunks; None while the queue is unreachable."""
    found = {}
    for i in range(0, len(ids), 100):
        r = srv.get("/api/submissions?ids=" + ",".join(ids[i:i + 100]))
        if r.status != 200:
            return None
        for s in r.json()["submissions"]:
            found[s["id"]] = s
    return found


def test_serve_accepts_and_workers_run(serve, redis, tmp_path):
    srv = serve(env={"QUEUE_URL": redis.url, "QUEUE_WORKERS": 0, "RATE_LIMIT_MAX": 0})
    w, wport, wlog = start_worker(tmp_path, {"QUEUE_URL": redis.url, "MAX_CONCURRENT_EXECUTIONS": 2})
    try:
        r = srv.post("/api/submissions?wait=30000", {"code": "import socket; print(socket.gethostname())"})
        assert r.status == 200, r
        assert r.json()["result"]["status"] == "ok", r.json()
        st = srv.stats()["submissions"]
        assert st["backend"] == "redis" and st["persistent"] is True and st["workers"] == 0, st
        assert st["queue"]["stored"] >= 1, st
        ran = [e for e in log_lines(wlog) if e.get("message") == "submission done"]
        assert [e["submission"] for e in ran] == [r.json()["id"]]
        # The worker's own port: probes and metrics, no work.
        import http.client
        c = http.client.HTTPConnection("127.0.0.1", wport, timeout=5)
        c.request("POST", "/api/submissions", body="{}", headers={"Content-Type": "application/json"})
        resp = c.getresponse()
        assert resp.status == 404 and b"pyexec worker" in resp.read()
        c.request("GET", "/api/stats")
        assert json.loads(c.getresponse().read())["submissions"]["runHere"] == 1
    finally:
        assert stop_worker(w) == 0, wlog.read_text()[-3000:]


def test_a_job_run_by_a_worker_reports_progress_to_every_instance(serve, redis, tmp_path):
    """The worker records a job's progress in Redis; the instance that
    accepted the job (which runs nothing) answers with it."""
    script = tmp_path / "half.py"
    script.write_text("import sys, time\nprint('PYEXEC_PROGRESS 0.5', file=sys.stderr, flush=True)\n"
                      "time.sleep(2)\n")
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text(f"jobs:\n  half:\n    interpreter: /usr/bin/python3\n    script: {script}\n"
                    "    args: [\"{script}\"]\n")
    for p in (script, jobs):
        p.chmod(0o644)
    tmp_path.chmod(0o755)
    srv = serve(env={"QUEUE_URL": redis.url, "QUEUE_WORKERS": 0, "RATE_LIMIT_MAX": 0, "JOBS_FILE": jobs})
    w, _, wlog = start_worker(tmp_path, {"QUEUE_URL": redis.url, "JOBS_FILE": jobs})
    try:
        r = srv.post("/api/jobs/half", {"params": {}, "async": True})
        assert r.status == 202, r
        sid = r.json()["id"]
        seen = set()
        deadline = time.monotonic() + 60
        while (doc := srv.get(f"/api/submissions/{sid}").json())["state"] != "done":
            seen.add(doc.get("progress"))
            assert time.monotonic() < deadline, doc
            time.sleep(0.05)
        assert 0.5 in seen and seen <= {None, 0.5}, seen
        assert "progress" not in doc and doc["result"]["status"] == "ok", doc
    finally:
        assert stop_worker(w) == 0, wlog.read_text()[-3000:]


def wait_for_callback(receiver, sid, timeout=30):
    """The first delivery of sid's callback that the receiver answered 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with receiver.lock:
            ok = [q for i, q in enumerate(receiver.requests)
                  if i >= receiver.fail_first and q["headers"].get("webhook-id") == f"msg_{sid}"]
        if ok:
            return ok[0]
        time.sleep(0.05)
    raise AssertionError(f"no delivery of msg_{sid}: {len(receiver.requests)} requests")


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
def test_a_callback_outlives_the_worker_that_finished_it(serve, redis, tmp_path, how):
    """The worker stores the result and its callback in one step; it dies
    (or stops) while the receiver still fails: the instance that accepted
    the submission takes the callback over from the outbox once its lease
    runs out, and delivers it with the same webhook-id."""
    receiver = Receiver(fail_first=10 ** 9)
    hooks = {"CALLBACK_ALLOWED_HOSTS": "127.0.0.1", "WEBHOOK_SECRET": SECRET, "QUEUE_LEASE": 2}
    srv = serve(env={"QUEUE_URL": redis.url, "QUEUE_WORKERS": 0, "RATE_LIMIT_MAX": 0, **hooks})
    w, _, wlog = start_worker(tmp_path, {"QUEUE_URL": redis.url, **hooks})
    try:
        r = srv.post("/api/submissions?wait=30000",
                     {"code": "print('graded')", "callbackUrl": f"http://127.0.0.1:{receiver.port}/"})
        assert r.status == 200, r
        sid = r.json()["id"]
        receiver.wait(1)
        w.send_signal(getattr(signal, how))
        assert w.wait(60) == (0 if how == "SIGTERM" else -signal.SIGKILL), wlog.read_text()[-3000:]
        if how == "SIGTERM":
            left = [e for e in log_lines(wlog) if e.get("message", "").startswith("webhook left for another")]
            assert left and left[0]["msgId"] == f"msg_{sid}", log_lines(wlog)[-5:]
            assert not any(e.get("message") == "webhook given up" for e in log_lines(wlog))
        assert srv.stats()["submissions"]["queue"]["outbox"] == 1
        with receiver.lock:
            receiver.fail_first = len(receiver.requests)
        got = wait_for_callback(receiver, sid)
        assert got["verified"], got
        doc = json.loads(got["body"])
        assert doc["data"]["id"] == sid and doc["data"]["result"]["stdout"] == "graded\n", doc
        st = srv.stats()["submissions"]
        assert st["webhooks"]["takenOver"] == 1 and st["webhooks"]["delivered"] == 1, st
        wait_for(lambda: srv.stats()["submissions"]["queue"]["outbox"] == 0, 10, "an empty outbox")
        assert any(e.get("message") == "callback taken over from the outbox" and e.get("submission") == sid
                   for e in log_lines(srv.log_path))
    finally:
        receiver.close()
        if w.poll() is None:
            w.kill()
            w.wait()


def test_a_worker_without_callbacks_leaves_them_to_one_with(serve, redis, tmp_path):
    """A worker with callbacks off puts the callback in the outbox,
    free to claim; an instance with callbacks on delivers it."""
    receiver = Receiver(fail_first=0)
    srv = serve(env={"QUEUE_URL": redis.url, "QUEUE_WORKERS": 0, "RATE_LIMIT_MAX": 0,
                     "CALLBACK_ALLOWED_HOSTS": "127.0.0.1", "WEBHOOK_SECRET": SECRET})
    w, _, wlog = start_worker(tmp_path, {"QUEUE_URL": redis.url})
    try:
        r = srv.post("/api/submissions", {"code": "print(1)", "callbackUrl": f"http://127.0.0.1:{receiver.port}/"})
        assert r.status == 202, r
        sid = r.json()["id"]
        got = wait_for_callback(receiver, sid)
        assert got["verified"] and json.loads(got["body"])["data"]["result"]["stdout"] == "1\n", got
        assert any(e.get("message") == "callback left in the outbox for a process with callbacks on"
                   for e in log_lines(wlog))
        assert srv.stats()["submissions"]["webhooks"]["takenOver"] == 1
    finally:
        receiver.close()
        assert stop_worker(w) == 0, wlog.read_text()[-3000:]


def test_secrets_reach_no_log_and_no_answer(serve, redis, tmp_path):
    """The Redis password and WEBHOOK_SECRET are in no log line and no
    answer: not while Redis cannot be reached (its URL is logged, masked),
    not while callbacks fail and are retried, not in stats, metrics,
    health or the environment report."""
    password = "pw-" + os.urandom(8).hex()
    key = os.urandom(24)
    secret = "whsec_" + __import__("base64").b64encode(key).decode()
    needles = [password, secret, secret.removeprefix("whsec_"), key.hex()]
    receiver = Receiver(fail_first=1)
    gone = serve(env={"QUEUE_URL": f"redis://:{password}@127.0.0.1:{free_port()}/0", "RATE_LIMIT_MAX": 0,
                      "CALLBACK_ALLOWED_HOSTS": "127.0.0.1", "WEBHOOK_SECRET": secret})
    live = serve(env={"QUEUE_URL": redis.url, "RATE_LIMIT_MAX": 0, "CALLBACK_ALLOWED_HOSTS": "127.0.0.1",
                      "WEBHOOK_SECRET": secret})
    try:
        r = gone.post("/api/submissions", {"code": "print(1)"})
        assert r.status == 503, r
        r = live.post("/api/submissions?wait=30000",
                      {"code": "print(1)", "callbackUrl": f"http://127.0.0.1:{receiver.port}/"})
        assert r.status == 200, r
        receiver.wait(2)
        seen = []
        for srv in (gone, live):
            for path in ("/api/stats", "/api/metrics", "/health", "/health/ready", "/api/environment"):
                seen.append(srv.get(path).body.decode(errors="replace"))
        gone.wait_log(lambda e: "queue" in json.dumps(e) and "127.0.0.1" in json.dumps(e), timeout=10)
        live.wait_log(lambda e: e.get("message") == "webhook delivered", timeout=10)
        seen += [gone.log_text(), live.log_text()]
        assert "***@127.0.0.1" in gone.log_text(), gone.log_text()[-2000:]
        for text in seen:
            for n in needles:
                assert n not in text, (n, text[:3000])
    finally:
        receiver.close()


def test_unreachable_redis_refuses_submissions_and_says_why(serve):
    port = free_port()  # nothing listens there
    srv = serve(env={"QUEUE_URL": f"redis://127.0.0.1:{port}", "QUEUE_WORKERS": 0})
    r = srv.post("/api/submissions", {"code": "print(1)"})
    assert r.status == 503 and r.error()["code"] == "queue_unavailable", r
    assert r.headers["Retry-After"] == "1"
    # /api/execute still runs; the probes say what is wrong.
    assert srv.execute({"code": "print(1)"}).status == 200
    deadline = time.monotonic() + 10
    while True:
        h = srv.get("/health").json()
        if h.get("submissions"):
            break
        assert time.monotonic() < deadline, h
        time.sleep(0.1)
    assert h["status"] == "degraded" and "queue" in h["submissions"], h
    ready = srv.get("/health/ready")
    assert ready.status == 200 and "queue" in ready.json()["submissions"], ready


def test_a_thousand_submissions_survive_a_worker_kill_and_a_redis_crash(serve, redis, tmp_path):
    n = 1000
    srv = serve(env={"QUEUE_URL": redis.url, "QUEUE_WORKERS": 0, "RATE_LIMIT_MAX": 0, "MAX_BATCH": 100})
    wenv = {"QUEUE_URL": redis.url, "QUEUE_LEASE": 2, "MAX_CONCURRENT_EXECUTIONS": 2, "MAX_DELIVERIES": 20}
    workers = [start_worker(tmp_path, wenv) for _ in range(3)]

    def program(i):
        if i % 10 == 0:
            return f"import time; time.sleep(0.02); raise ValueError({i})", "runtime_error"
        return f"import time; time.sleep(0.02); print({i})", "ok"

    ids = []
    for start in range(0, n, 100):
        r = srv.post("/api/submissions", {"submissions": [{"code": program(i)[0]} for i in range(start, start + 100)]})
        assert r.status == 202, r
        ids += [s["id"] for s in r.json()["submissions"]]
    assert len(set(ids)) == n

    def done_count():
        st = get_states(srv, ids)
        return None if st is None else sum(s["state"] == "done" for s in st.values())

    # Kill a worker while it runs submissions.
    victim, _, vlog = workers[0]
    deadline = time.monotonic() + 300
    while (done_count() or 0) < n // 5:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    victim.kill()
    victim.wait()
    killed_running = {e["submission"] for e in log_lines(vlog) if e.get("message") == "submission running"} - \
        {e["submission"] for e in log_lines(vlog) if e.get("message", "").startswith("submission done")}

    # Crash redis-server and start it again on the same files.
    while (done_count() or 0) < n // 2:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    redis.kill()
    time.sleep(1)
    redis.start()

    while True:
        c = done_count()
        if c == n:
            break
        assert time.monotonic() < deadline, f"{c} of {n} done"
        time.sleep(0.2)

    states = get_states(srv, ids)
    for i, sid in enumerate(ids):
        s = states[sid]
        want = program(i)[1]
        assert s["state"] == "done" and s["result"]["status"] == want, (i, s)
        if want == "ok":
            assert s["result"]["stdout"] == f"{i}\n", (i, s)
        assert s["result"]["id"] == sid
    st = srv.stats()["submissions"]["queue"]
    runs, starts = {}, {}
    for _, _, log in workers:
        for e in log_lines(log):
            if e.get("message", "").startswith("submission done"):
                runs[e["submission"]] = runs.get(e["submission"], 0) + 1
            if e.get("message") == "submission running":
                starts[e["submission"]] = starts.get(e["submission"], 0) + 1
    twice = sum(1 for v in runs.values() if v > 1)
    started_twice = sum(1 for v in starts.values() if v > 1)
    print(f"\ncrash test: {n} submissions, 3 workers (one SIGKILLed with {len(killed_running)} running), "
          f"redis-server SIGKILLed and restarted once: {st['stored']} results stored, "
          f"{st['claimed']} claimed after a lease ran out, {st['duplicates']} second results discarded, "
          f"{started_twice} started twice, {twice} finished twice, {st['deadLettered']} dead-lettered, 0 lost")
    assert started_twice >= len(killed_running), (started_twice, killed_running)
    assert st["deadLettered"] == 0, st
    assert st["claimed"] >= len(killed_running), st
    # Never a second result stored for a submission.
    assert st["stored"] <= n, st
    for w, _, wl in workers[1:]:
        assert stop_worker(w) == 0, wl.read_text()[-3000:]
