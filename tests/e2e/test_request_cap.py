"""End-to-end tests of what one request of graded test cases may cost.

A request's `tests` run one fresh sandbox each, up to `timeout` each. The
service bounds them together: all the cases of one request take at most
REQUEST_TIME_LIMIT (or the request's smaller `totalTimeout`), the case
running when it is reached is stopped, and the later ones are reported
`not_run`; a client that goes away gets none of its remaining cases run;
and each case counts once against the rate limit.

Everything is checked from the host side: the response, the service's
counters (/api/stats, /api/metrics) and its log, never the program's word.
Timing bounds are generous (the machine is shared); the assertions that
matter count runs.
"""
import json
import socket
import time
import uuid

import pytest

from test_serve import HOST, Client, assert_error, serving, start_server

MODES = pytest.mark.parametrize("mode", ["warm", "cold"])


@pytest.fixture
def serve(tmp_path):
    yield from serving(tmp_path, start_server)


def sleeper(seconds, out="done"):
    return f"import time\ntime.sleep({seconds})\nprint({out!r})"


def cases(n, expected="done"):
    return [{"name": f"case {i + 1}", "expectedOutput": expected} for i in range(n)]


def statuses(doc):
    return [c["status"] for c in doc["tests"]]


@MODES
def test_cases_past_the_time_limit_are_not_run(serve, mode):
    """30 cases of 0.4 s under a 2 s limit: the response comes back after
    about 2 s, not 12, with the cases past the limit marked not run."""
    srv = serve(env={"EXECUTION_TIMEOUT": 1000, "REQUEST_TIME_LIMIT": 2000, "RATE_LIMIT_MAX": 0,
                     "EXECUTION_MODE": mode})
    n = 30
    t0 = time.monotonic()
    r = srv.execute({"code": sleeper(0.4), "tests": cases(n)})
    elapsed = time.monotonic() - t0
    assert r.status == 200, r
    doc = r.json()
    st = statuses(doc)
    ran = [c for c in doc["tests"] if c["status"] != "not_run"]
    not_run = [c for c in doc["tests"] if c["status"] == "not_run"]
    # passed cases, at most one stopped at the limit, then not run: in order
    assert st == ["passed"] * st.count("passed") + ["timeout"] * st.count("timeout") + ["not_run"] * len(not_run), st
    assert st.count("timeout") <= 1, st
    assert st[0] == "passed" and not_run, st
    for c in not_run:
        assert c["message"] == "not run: the request's total time limit of 2000 ms was reached", c
        assert c["timeMs"] == 0 and c["stdout"] == "" and c["expectedOutput"] == "done", c
    for c in ran:
        if c["status"] == "timeout":
            assert "the request's total time limit of 2000 ms was reached while this case ran" in c["message"], c
    # the runs together stayed within the limit (plus the last one's kill)
    assert sum(c["timeMs"] for c in ran) <= 2000 + 1000, [c["timeMs"] for c in ran]
    assert elapsed < 10, f"{elapsed:.1f} s for a request limited to 2 s"
    passed = st.count("passed")
    assert doc["summary"] == {"passed": passed, "failed": n - passed, "notRun": len(not_run), "total": n}
    # from the service's counters: only the cases that ran were executed
    stats = srv.stats()
    assert stats["executions"] == len(ran)
    assert stats["casesNotRun"] == {"timeLimit": len(not_run), "clientGone": 0}
    assert srv.sample("pyexec_cases_not_run_total", reason="time_limit") == len(not_run)
    logged = srv.wait_log(lambda e: e.get("requestId") == r.headers["X-Request-Id"]
                          and e["message"].startswith("request time limit reached"))
    assert logged and logged[0]["notRun"] == len(not_run) and logged[0]["run"] == len(ran), logged


@MODES
def test_case_cut_at_the_request_time_limit(serve, mode):
    """totalTimeout below the case's own timeout: the first case is stopped
    at the request's limit, with a message saying which limit it was."""
    srv = serve(env={"RATE_LIMIT_MAX": 0, "EXECUTION_MODE": mode})
    r = srv.execute({"code": sleeper(5), "timeout": 8000, "totalTimeout": 500, "tests": cases(3)})
    assert r.status == 200, r
    doc = r.json()
    assert statuses(doc) == ["timeout", "not_run", "not_run"], doc["tests"]
    want = ("stopped: the request's total time limit of 500 ms was reached while this case ran "
            "(its own limit is 8000 ms)")
    assert doc["tests"][0]["message"] == want
    assert doc["tests"][0]["timeMs"] < 5000
    # the top-level result is that run, under the limit it really had
    assert doc["status"] == "timeout" and doc["message"] == want
    assert doc["limits"]["timeoutMs"] <= 500
    assert doc["summary"] == {"passed": 0, "failed": 3, "notRun": 2, "total": 3}
    assert srv.stats()["executions"] == 1


def test_total_timeout_validation(serve):
    srv = serve(env={"REQUEST_TIME_LIMIT": 20000, "RATE_LIMIT_MAX": 0})
    r = srv.execute({"code": "print(1)", "totalTimeout": 20001, "tests": cases(1, "1")})
    assert_error(r, 400, "totalTimeout", message=["between 1 and 20000", "20001"])
    r = srv.execute({"code": "print(1)", "totalTimeout": 1000})
    assert_error(r, 400, "totalTimeout", message=["needs tests"])
    r = srv.execute({"code": "print(1)", "totalTimeout": 20000, "tests": cases(2, "1")})
    assert r.status == 200 and statuses(r.json()) == ["passed", "passed"], r
    # every case ran: the summary is the three counts alone
    assert r.json()["summary"] == {"passed": 2, "failed": 0, "total": 2}


def test_request_time_limit_config_refused_below_execution_timeout(tmp_path):
    from test_serve import config_output
    p = config_output("--request-time-limit", 4000, env={"EXECUTION_TIMEOUT": "5000"})
    assert p.returncode != 0
    err = p.stderr.decode()
    assert "REQUEST_TIME_LIMIT is 4000 ms (flag), less than EXECUTION_TIMEOUT, 5000 ms (environment)" in err, err


@MODES
def test_client_gone_stops_the_remaining_cases(serve, mode):
    """A client sends 40 slow cases and disconnects after the first ones ran:
    the service runs no more of them, and the next request is served with
    nothing of the abandoned one run in between."""
    srv = serve(env={"MAX_CONCURRENT_EXECUTIONS": 1, "RATE_LIMIT_MAX": 0, "REQUEST_TIME_LIMIT": 600000,
                     "EXECUTION_MODE": mode})
    n = 40
    rid = "abandoned-" + uuid.uuid4().hex
    body = json.dumps({"code": sleeper(0.25), "tests": cases(n)}).encode()
    s = socket.create_connection((HOST, srv.port), timeout=10)
    s.sendall(b"POST /api/execute HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"X-Request-Id: " + rid.encode() + b"\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    srv.wait_state(lambda st: st["executions"] >= 2, timeout=60)
    s.close()
    gone = srv.wait_log(lambda e: e.get("requestId") == rid and e["message"].startswith("client went away"),
                        timeout=20)
    assert gone, f"the service did not notice the client leave: {srv.log_text()[-3000:]}"
    ran, not_run = gone[0]["run"], gone[0]["notRun"]
    assert ran + not_run == n and ran < n, gone[0]
    st = srv.wait_state(lambda st: st["queue"]["active"] == 0, timeout=20)
    # executions stopped at the cases that ran before the client left
    assert st["executions"] == ran
    assert st["casesNotRun"] == {"timeLimit": 0, "clientGone": not_run}
    assert srv.sample("pyexec_cases_not_run_total", reason="client_gone") == not_run
    # the slot is free: the next request runs, and nothing else did
    c = Client(srv.port)
    r = c.execute({"code": "print('hello')"})
    c.close()
    assert r.status == 200 and r.json()["stdout"] == "hello\n", r
    assert srv.stats()["executions"] == ran + 1


def test_rate_limit_counts_cases(serve):
    """RATE_LIMIT_MAX=5: each case is one execution, all or none."""
    srv = serve(env={"RATE_LIMIT_MAX": 5, "RATE_LIMIT_WINDOW": 60000})
    code = "print(input())"

    def graded(k):
        return {"code": code, "tests": [{"stdin": str(i), "expectedOutput": str(i)} for i in range(k)]}

    # more cases than a window holds: never admitted, and says why
    r = srv.execute(graded(6))
    assert_error(r, 429, "tests", "rate_limited", message=["6 test cases", "5 executions per 60000 ms", "never"])
    assert int(r.headers["Retry-After"]) >= 1
    # past MAX_TESTS: a 400 naming the field, charging nothing
    r = srv.execute(graded(51))
    assert_error(r, 400, "tests", message=["51 cases", "at most 50"])
    assert srv.stats()["executions"] == 0

    r = srv.execute(graded(3))
    assert r.status == 200 and r.json()["summary"]["passed"] == 3, r
    r = srv.execute(graded(3))
    assert_error(r, 429, "tests", "rate_limited", message=["3 test cases count as 3 executions", "2 remain"])
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    # what is left still fits exactly
    r = srv.execute(graded(2))
    assert r.status == 200 and r.json()["summary"]["passed"] == 2, r
    r = srv.execute({"code": "print(1)"})
    assert_error(r, 429, None, "rate_limited", message=["5", "60000"])
    st = srv.stats()
    assert st["executions"] == 5 and st["rateLimited"] == 3
    assert srv.sample("pyexec_rate_limited_total") == 3
    # the operator was told that MAX_TESTS (50) cannot fit under RATE_LIMIT_MAX (5)
    assert [e for e in srv.logs() if e["message"].startswith("MAX_TESTS is above RATE_LIMIT_MAX")]
