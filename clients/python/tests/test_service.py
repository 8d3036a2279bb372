"""The Python client against a real `pyexec serve` (see conftest.py)."""
import base64
import http.server
import json
import shutil
import subprocess
import threading
import time

import pytest

from conftest import ROOT
from pyexec_client import (ApiError, AuthenticationError, BadRequestError, Client, ConflictError, NotFoundError,
                           PayloadTooLargeError, PythonExecutor, RateLimitError, ServiceUnavailableError, TestCase,
                           TransportError, WebhookVerificationError, verify_webhook)

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


@pytest.fixture(scope="module")
def client(server):
    return Client(server.url)


# ---------------------------------------------------------------------------
# POST /api/execute
# ---------------------------------------------------------------------------


def test_execute_ok(client):
    r = client.execute("print(input()[::-1])", stdin="olleh", exercise_id="rev-1", request_id="client-test-1")
    assert r.ok and r.status == "ok" and r.exit_code == 0 and r.signal is None
    assert r.stdout == "hello\n" and r.output == "hello\n" and r.stderr == ""
    assert r.id == "client-test-1" and r.exercise_id == "rev-1" and r.message is None
    assert r.time.wall_ms >= 0 and r.memory_peak_kb > 0 and r.limits.timeout_ms == 60000 and r.limits.memory_mb == 128
    assert r.verdict is None and r.tests is None and r.raw["stdout"] == "hello\n"


def test_execute_runtime_and_syntax_errors(client):
    r = client.execute("import sys\nprint('x', file=sys.stderr)\nraise ValueError('bad')")
    assert r.status == "runtime_error" and r.exit_code == 1 and not r.ok
    assert "ValueError: bad" in (r.message or "") and r.stderr.startswith("x\n")
    assert client.execute("print(").status == "syntax_error"


def test_execute_timeout(client):
    r = client.execute("while True: pass", timeout=300)
    assert r.status == "timeout" and r.limits.timeout_ms == 300 and "300 ms" in (r.message or "")


def test_execute_files_args_and_policy(client):
    r = client.execute("import sys, helper\nprint(helper.X, sys.argv[1:], open('data.txt').read())",
                       files={"helper.py": "X = 41 + 1\n", "data.txt": "D"}, args=["a", "b"], policy="education")
    assert r.stdout == "42 ['a', 'b'] D\n", r
    r = client.execute("import socket", policy="education")
    assert r.status == "policy_violation"


def test_bytes_go_in_base64(client):
    blob = bytes(range(256))
    r = client.execute("import sys\nd = sys.stdin.buffer.read()\nprint(d == open('b.bin', 'rb').read(), len(d))",
                       stdin=blob, files={"b.bin": blob})
    assert r.status == "ok" and r.stdout == "True 256\n", r


def test_graded_tests_and_run_tests(client):
    r = client.execute("n = int(input())\nprint(n * n)",
                       tests=[TestCase("4", stdin="2", name="two"), {"stdin": "3", "expectedOutput": "10"}])
    assert r.verdict == "wrong_answer" and not r.accepted and r.summary is not None
    assert (r.summary.passed, r.summary.failed, r.summary.total) == (1, 1, 2)
    assert r.tests is not None and [c.status for c in r.tests] == ["passed", "failed"]
    assert r.tests[0].passed and r.tests[0].name == "two"
    d = r.tests[1].difference
    assert d is not None and (d.line, d.expected, d.actual) == (1, "10", "9")
    r = client.execute("def add(a, b):\n    return a + b\n", run_tests=True,
                       test_code="from starter import add\nassert add(2, 3) == 5\nprint('ok')")
    assert r.accepted and r.stdout == "ok\n"


def test_bad_input_is_a_400_naming_the_field(client):
    with pytest.raises(BadRequestError) as e:
        client.execute("print(1)", timeout=999999, request_id="client-bad-1")
    err = e.value
    assert err.status == 400 and err.code == "invalid_request" and err.field == "timeout"
    assert "999999" in err.message and err.request_id == "client-bad-1"
    with pytest.raises(BadRequestError) as e:
        client.execute_request({"code": "print(1)", "timeOut": 5})
    assert e.value.field == "timeOut"


def test_too_large_is_413(client):
    with pytest.raises(PayloadTooLargeError) as e:
        client.execute("#" * 50001)
    assert e.value.status == 413 and e.value.code == "payload_too_large"


def test_client_timeout_is_a_transport_error(server):
    start = time.monotonic()
    with pytest.raises(TransportError):
        Client(server.url, timeout=1).execute("import time\ntime.sleep(10)")
    assert time.monotonic() - start < 9


# ---------------------------------------------------------------------------
# Streaming
# ---------------------------------------------------------------------------


def test_stream_delivers_output_before_the_run_ends(client):
    """The first event arrives while the program still sleeps: a client that
    read the whole body first would wait the program's 20 s."""
    code = "import time\nprint('first', flush=True)\ntime.sleep(20)\nprint('late')"
    start = time.monotonic()
    it = client.stream(code, timeout=25000)
    ev = next(it)
    elapsed = time.monotonic() - start
    assert ev.event == "stdout" and ev.text == "first\n" and ev.result is None
    assert elapsed < 15, f"the first event took {elapsed:.1f} s"
    it.close()  # closes the connection: the service stops the run


def test_execute_stream_callbacks_and_result(client):
    out, err = [], []
    r = client.execute_stream("import sys, time\nprint('working', flush=True)\ntime.sleep(0.3)\n"
                              "print('oops', file=sys.stderr, flush=True)\nprint('done')",
                              on_stdout=out.append, on_stderr=err.append, exercise_id="s-1")
    assert r.ok and r.exercise_id == "s-1"
    assert "".join(out) == r.stdout == "working\ndone\n" and "".join(err) == r.stderr == "oops\n"
    assert out[0] == "working\n"


def test_stream_refusals_are_errors(client):
    with pytest.raises(BadRequestError) as e:
        list(client.stream_request({"code": "print(1)", "tests": [{"expectedOutput": "1"}]}))
    assert e.value.field == "tests"
    with pytest.raises(BadRequestError) as e:
        client.execute_stream("print(1)", memory_limit=1)
    assert e.value.field == "memoryLimit"


# ---------------------------------------------------------------------------
# Authentication, rate limit, 503
# ---------------------------------------------------------------------------


def test_wrong_key_is_401(serve, tmp_path):
    keys = tmp_path / "keys"
    keys.write_text("client-test-key-0123456789\n")
    srv = serve({"API_KEYS_FILE": keys, "RATE_LIMIT_MAX": 0})
    with pytest.raises(AuthenticationError) as e:
        Client(srv.url, api_key="wrong-key-0123456789abcdef").execute("print(1)")
    assert e.value.status == 401 and e.value.code == "unauthorized" and e.value.request_id
    with pytest.raises(AuthenticationError):
        Client(srv.url).health()
    good = Client(srv.url, api_key="client-test-key-0123456789")
    assert good.execute("print(2)").stdout == "2\n"
    assert good.health().ready
    anon = Client(srv.url)
    assert anon.live() and anon.ready().ready  # the probes need no key


def test_rate_limit_is_429_with_retry_after(serve):
    srv = serve({"RATE_LIMIT_MAX": 1, "RATE_LIMIT_WINDOW": 60000})
    c = Client(srv.url, retries=3, max_retry_wait=5)
    assert c.execute("print(1)").ok
    start = time.monotonic()
    with pytest.raises(RateLimitError) as e:
        c.execute("print(2)")
    assert e.value.status == 429 and e.value.code == "rate_limited"
    assert e.value.retry_after is not None and 1 <= e.value.retry_after <= 60
    # An Idempotency-Key makes the call repeatable, but a Retry-After past
    # max_retry_wait is raised at once rather than slept through.
    with pytest.raises(RateLimitError):
        c.submissions.create({"code": "print(3)"}, idempotency_key="k-429")
    assert time.monotonic() - start < 5


def test_a_repeatable_call_is_retried_after_retry_after(serve):
    srv = serve({"RATE_LIMIT_MAX": 1, "RATE_LIMIT_WINDOW": 1500})
    c = Client(srv.url, retries=3, max_retry_wait=5)
    assert c.execute("print(1)").ok
    with pytest.raises(RateLimitError) as e:
        c.execute("print(1)")  # never repeated: it would run twice
    assert e.value.retry_after in (1, 2)
    start = time.monotonic()
    sub = c.submissions.create({"code": "print(2)"}, idempotency_key="k-retry", wait=10000)
    assert time.monotonic() - start >= 0.5  # it waited for the window to end
    assert sub.done and sub.result is not None and sub.result.stdout == "2\n"


def test_full_queue_is_503(serve):
    srv = serve({"MAX_CONCURRENT_EXECUTIONS": 1, "EXECUTION_QUEUE_SIZE": 0, "RATE_LIMIT_MAX": 0,
                 "EXECUTION_TIMEOUT": 60000})
    c = Client(srv.url, retries=0)
    it = c.stream("import time\nprint('busy', flush=True)\ntime.sleep(30)", timeout=40000)
    assert next(it).text == "busy\n"  # the only slot is taken
    try:
        with pytest.raises(ServiceUnavailableError) as e:
            c.execute("print(1)")
        assert e.value.status == 503 and e.value.code == "queue_full" and e.value.retry_after == 1
    finally:
        it.close()


# ---------------------------------------------------------------------------
# Submissions and webhooks
# ---------------------------------------------------------------------------


def test_submissions_batch_and_wait(client):
    subs = client.submissions.create_batch([{"code": "print(1)"}, {"code": "1/0"},
                                            {"code": "print(input())", "stdin": "x"}])
    assert len(subs) == 3 and all(s.state in ("queued", "running", "done") for s in subs)
    done = client.submissions.wait_many([s.id for s in subs], timeout=60)
    assert [d.state for d in done] == ["done"] * 3
    assert [d.result.status for d in done if d.result] == ["ok", "runtime_error", "ok"]
    assert done[2].result is not None and done[2].result.stdout == "x\n" and done[0].http_status == 200
    many = client.submissions.get_many([subs[0].id, "0" * 32])
    assert many[0].done and many[1].state == "unknown"
    one = client.submissions.wait(subs[1].id, timeout=10)
    assert one.result is not None and "ZeroDivisionError" in (one.result.message or "")
    with pytest.raises(NotFoundError):
        client.submissions.get("f" * 32)


def test_submission_wait_and_idempotency(client):
    s = client.submissions.create({"code": "print(6 * 7)", "exerciseId": "ex-1"}, wait=10000,
                                  idempotency_key="client-idem-1")
    assert s.done and s.result is not None and s.result.stdout == "42\n" and s.result.exercise_id == "ex-1"
    again = client.submissions.create({"code": "print(6 * 7)", "exerciseId": "ex-1"}, idempotency_key="client-idem-1")
    assert again.id == s.id
    with pytest.raises(ConflictError) as e:
        client.submissions.create({"code": "print(7)"}, idempotency_key="client-idem-1")
    assert e.value.code == "idempotency_key_reused"


class Receiver:
    """An HTTP server on loopback that keeps every request it gets."""

    def __init__(self):
        self.requests = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                outer.requests.append((dict(self.headers.items()), body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def wait(self, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.requests:
            time.sleep(0.05)
        assert self.requests, "no callback arrived"
        return self.requests[0]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_a_callback_verifies_and_a_tampered_one_does_not(serve):
    receiver = Receiver()
    try:
        srv = serve({"CALLBACK_ALLOWED_HOSTS": "127.0.0.1", "WEBHOOK_SECRET": SECRET, "RATE_LIMIT_MAX": 0})
        c = Client(srv.url)
        sub = c.submissions.create({"code": "print('graded')"},
                                   callback_url=f"http://127.0.0.1:{receiver.port}/hook")
        headers, body = receiver.wait()
        doc = verify_webhook(SECRET, headers, body)
        assert doc["type"] == "submission.done" and doc["data"]["id"] == sub.id
        assert doc["data"]["result"]["stdout"] == "graded\n"
        with pytest.raises(WebhookVerificationError):
            verify_webhook(SECRET, headers, body.replace(b"graded", b"grader"))
        with pytest.raises(WebhookVerificationError):
            verify_webhook("whsec_" + base64.b64encode(b"another secret, 24 bytes+").decode(), headers, body)
        with pytest.raises(WebhookVerificationError):  # replayed an hour later
            verify_webhook(SECRET, headers, body, now=time.time() + 3600)
        with pytest.raises(BadRequestError) as e:  # a host the service does not allow
            c.submissions.create({"code": "print(1)"}, callback_url="http://192.0.2.1/hook")
        assert e.value.code == "invalid_callback_url"
    finally:
        receiver.close()


# ---------------------------------------------------------------------------
# Jobs, health, environment and the PythonExecutor interface
# ---------------------------------------------------------------------------


PROGRESS_JOB = """
  progress:
    interpreter: /usr/bin/python3
    script: "@SCRIPT@"
    args: ["{script}", "{seconds}"]
    params:
      seconds:
        type: int
        min: 1
        max: 30
"""


@pytest.fixture(scope="module")
def jobs_server(tmp_path_factory):
    """A service whose compose and render jobs are the shipped ones, with
    their roots in a temporary directory."""
    from PIL import Image

    from conftest import start_server
    base = tmp_path_factory.mktemp("jobs")
    for d in ("templates", "uploads", "composed", "renders", "scripts"):
        (base / d).mkdir()
    for s in ("compose_design.py", "render_design.py"):
        shutil.copyfile(ROOT / "jobs" / s, base / "scripts" / s)
    Image.new("RGB", (64, 64), (255, 255, 255)).save(base / "templates" / "shirt.png")
    Image.new("RGB", (16, 8), (200, 30, 30)).save(base / "uploads" / "logo.png")
    text = (ROOT / "jobs" / "jobs.yaml").read_text().replace("/srv/pyexec", str(base))
    text = text.replace("script: compose_design.py", f"script: {base}/scripts/compose_design.py")
    text = text.replace("script: render_design.py", f"script: {base}/scripts/render_design.py")
    (base / "scripts" / "progress.py").write_text(
        "import sys, time\nprint('PYEXEC_PROGRESS 1/2', file=sys.stderr, flush=True)\n"
        "time.sleep(int(sys.argv[1]))\nprint('done')\n")
    text += PROGRESS_JOB.replace("@SCRIPT@", f"{base}/scripts/progress.py")
    (base / "jobs.yaml").write_text(text)
    if shutil.which("blender"):
        home = base / "blender-home"
        home.mkdir()
        p = subprocess.run(["blender", "--background", "--factory-startup", "--python",
                            str(ROOT / "jobs" / "make_shirt_blend.py"), "--", str(base / "templates" / "shirt.blend")],
                           env={"PATH": "/usr/bin:/bin", "HOME": str(home), "TMPDIR": str(home)},
                           capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
        assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    for p in [base, *base.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    srv = start_server(base, {"JOBS_FILE": base / "jobs.yaml", "RATE_LIMIT_MAX": 0})
    srv.base = base
    yield srv
    code = srv.stop()
    assert code == 0, f"pyexec serve exited {code}: {srv.log_text()[-3000:]}"


def test_jobs_list_run_and_submit(jobs_server):
    c = Client(jobs_server.url)
    jobs = {j.name: j for j in c.jobs.list()}
    assert set(jobs) == {"compose", "render", "progress"} and jobs["compose"].ready
    assert list(jobs["compose"].params) == ["template", "design", "preset", "output"]
    base = jobs_server.base
    params = {"template": f"{base}/templates/shirt.png", "design": f"{base}/uploads/logo.png",
              "preset": "chest-large", "output": f"{base}/composed/a.png"}
    r = c.jobs.run("compose", params)
    assert r.ok and r.job == "compose" and r.outputs and r.outputs[0].path == params["output"]
    with pytest.raises(BadRequestError) as e:
        c.jobs.run("compose", {**params, "preset": "top"})
    assert e.value.code == "invalid_parameter" and e.value.field == "params.preset"
    with pytest.raises(NotFoundError):
        c.jobs.run("print", {})
    seen = []
    sub = c.jobs.run_async("compose", {**params, "output": f"{base}/composed/b.png"}, on_progress=seen.append,
                           timeout=120)
    assert sub.done and sub.result is not None and sub.result.ok and sub.result.job == "compose"
    assert (base / "composed" / "b.png").is_file()


def test_a_queued_job_reports_its_progress(jobs_server):
    c = Client(jobs_server.url)
    seen = []
    sub = c.jobs.run_async("progress", {"seconds": 4}, on_progress=seen.append, timeout=120)
    assert seen == [0.5], seen  # reported once by the job, seen once by the client
    assert sub.result is not None and sub.result.ok and sub.result.stdout == "done\n"
    assert sub.progress is None  # a finished submission has none


@pytest.mark.skipif(not shutil.which("blender"), reason="Blender is not installed")
def test_python_executor_renders(jobs_server):
    ex = PythonExecutor(base_url=jobs_server.url)
    base = jobs_server.base
    ok, path, err = ex.execute_compose(f"{base}/templates/shirt.png", f"{base}/uploads/logo.png", "chest-large",
                                       f"{base}/composed/t.png")
    assert ok, err
    ok, still, anim, err = ex.execute_render(f"{base}/templates/shirt.blend", path, f"{base}/renders/r2",
                                             samples=1, skip_animation=False)
    assert (ok, err) == (True, None)
    # named after the design: the texture's file name, t.png
    assert (still, anim) == (f"{base}/renders/r2/t_render.png", f"{base}/renders/r2/t_animation.mp4")
    assert (base / "renders" / "r2" / "t_render.png").stat().st_size > 0
    ok, still, anim, err = ex.execute_render(f"{base}/templates/shirt.blend", path, f"{base}/renders/r3",
                                             samples=1, skip_animation=True)
    assert ok and still and anim is None, err


def test_health_and_environment(client):
    h = client.health()
    assert h.status == "ok" and h.ready and h.version and h.reason is None
    assert client.live() and client.ready().ready
    env = client.environment()
    assert isinstance(env, dict) and "privileged" in env


def test_python_executor_keeps_the_original_interface(jobs_server):
    ex = PythonExecutor(timeout=5000, memory_limit=64, enable_sandbox=True, base_url=jobs_server.url)
    res = ex.execute({"code": "print(input() * 2)", "stdin": "ab"})
    assert res["output"] == "abab\n" and res["status"] == "ok" and res["limits"]["timeoutMs"] == 5000
    assert res["limits"]["memoryMb"] == 64
    assert ex.execute({"code": "print(1)", "timeout": 700})["limits"]["timeoutMs"] == 700
    with pytest.raises(ApiError):
        ex.execute({"code": "print(1)", "memoryLimit": 1})
    with pytest.warns(UserWarning):
        PythonExecutor(enable_sandbox=False, base_url=jobs_server.url)
    base = jobs_server.base
    ok, path, err = ex.execute_compose(f"{base}/templates/shirt.png", f"{base}/uploads/logo.png", "back-small",
                                       f"{base}/composed/c.png")
    assert (ok, path, err) == (True, f"{base}/composed/c.png", None)
    assert (base / "composed" / "c.png").is_file()
    ok, path, err = ex.execute_compose(f"{base}/templates/shirt.png", "/etc/passwd", "back-small",
                                       f"{base}/composed/d.png")
    assert not ok and path is None and err and "params.design" in err
    ok, still, anim, err = ex.execute_render(f"{base}/templates/missing.blend", f"{base}/composed/c.png",
                                             f"{base}/renders/r1", samples=1, skip_animation=True)
    assert (ok, still, anim) == (False, None, None) and err and "does not exist" in err
    st = ex.validate_python_environment()
    assert st["jobs"]["compose"] is True and "render" in st["jobs"]
    assert st["valid"] == (not st["problems"])
    json.dumps(st)
