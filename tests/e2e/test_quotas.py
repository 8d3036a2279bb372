"""Quotas through the real `pyexec serve`: each API key's own rate limit
from its line in API_KEYS_FILE, a trusted key's end users (userId) each with
a quota of their own, the RateLimit-* headers on every counted response,
Retry-After on 429, and no key in the service's log.

The windows are a minute long, so nothing here depends on timing.
"""
import hashlib

import pytest

from conftest import wait_for
from test_serve import Client, assert_error, serving, start_server

KEY_A = "quota-key-a-0123456789abcdef"
KEY_B = "quota-key-b-fedcba9876543210"
KEY_T = "quota-key-trusted-00112233445566"
KEY_S = "quota-key-small-trusted-99887766"


@pytest.fixture
def serve(tmp_path):
    yield from serving(tmp_path, start_server)


def label(key):
    return hashlib.sha256(key.encode()).hexdigest()[:8]


def keys_server(serve, tmp_path, lines, **env):
    f = tmp_path / "keys.txt"
    f.write_text("# the platform's keys\n" + "\n".join(lines) + "\n")
    # the Server's own requests (stats, metrics) use the last key
    return serve("--api-keys-file", f, env={"RATE_LIMIT_WINDOW": 60000, **env},
                 headers={"X-API-Key": lines[-1].split()[0]})


def limit_headers(r):
    return (int(r.headers["RateLimit-Limit"]), int(r.headers["RateLimit-Remaining"]),
            int(r.headers["RateLimit-Reset"]))


def assert_counted(r, limit, remaining):
    assert r.status == 200, r
    got_limit, got_remaining, reset = limit_headers(r)
    assert (got_limit, got_remaining) == (limit, remaining), r.headers
    assert 1 <= reset <= 60, r.headers


def assert_limited(r, limit, message=(), field=None):
    assert_error(r, 429, field, "rate_limited", message=[str(limit), "60000", *message])
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    got_limit, got_remaining, reset = limit_headers(r)
    assert got_limit == limit and 1 <= reset <= 60, r.headers


def test_each_key_has_its_own_limit(serve, tmp_path):
    """Two keys from one address: each counts apart, up to its own max."""
    srv = keys_server(serve, tmp_path, [f"{KEY_A} max=2", f"{KEY_B}  max=3 window=60000"])
    a = Client(srv.port, {"X-API-Key": KEY_A})
    b = Client(srv.port, {"Authorization": f"Bearer {KEY_B}"})
    assert_counted(a.execute({"code": "pass"}), 2, 1)
    assert_counted(a.execute({"code": "pass"}), 2, 0)
    assert_limited(a.execute({"code": "pass"}), 2)
    for left in (2, 1, 0):
        assert_counted(b.execute({"code": "pass"}), 3, left)
    assert_limited(b.execute({"code": "pass"}), 3)
    assert srv.sample("pyexec_rate_limited_total") == 2
    a.close()
    b.close()


def test_plain_key_line_keeps_the_default(serve, tmp_path):
    """A key's line without options: RATE_LIMIT_MAX per RATE_LIMIT_WINDOW."""
    srv = keys_server(serve, tmp_path, [KEY_A], RATE_LIMIT_MAX=2)
    a = Client(srv.port, {"X-API-Key": KEY_A})
    assert_counted(a.execute({"code": "pass"}), 2, 1)
    assert_counted(a.execute({"code": "pass"}), 2, 0)
    assert_limited(a.execute({"code": "pass"}), 2)
    a.close()


def test_trusted_key_quota_per_user(serve, tmp_path):
    """A trusted key's userIds each get user-max; the key's own max caps them
    all together; without userId the request counts for the key alone."""
    srv = keys_server(serve, tmp_path, [f"{KEY_T} trusted max=100 user-max=2",
                                        f"{KEY_S} trusted max=3 user-max=2"])
    t = Client(srv.port, {"X-API-Key": KEY_T})
    assert_counted(t.execute({"code": "pass", "userId": "student-1"}), 2, 1)
    assert_counted(t.execute({"code": "pass", "userId": "student-1"}), 2, 0)
    assert_limited(t.execute({"code": "pass", "userId": "student-1"}), 2, message=["userId"])
    # another end user of the same key: a quota of its own
    assert_counted(t.execute({"code": "pass", "userId": "student-2"}), 2, 1)
    assert_counted(t.execute({"code": "pass", "userId": "student-2"}), 2, 0)
    # the key itself has used 4 of its 100
    assert_counted(t.execute({"code": "pass"}), 100, 95)
    # a graded request counts one per case, in the user's quota too
    r = t.execute({"code": "print(input())", "userId": "student-3",
                   "tests": [{"stdin": "1", "expectedOutput": "1"}] * 3})
    assert_limited(r, 2, message=["userId", "3"], field="tests")

    # the key's max caps its users together
    s = Client(srv.port, {"X-API-Key": KEY_S})
    assert_counted(s.execute({"code": "pass", "userId": "u1"}), 2, 1)
    assert_counted(s.execute({"code": "pass", "userId": "u1"}), 2, 0)
    assert_counted(s.execute({"code": "pass", "userId": "u2"}), 3, 0)
    r = s.execute({"code": "pass", "userId": "u3"})
    assert_limited(r, 3)
    assert "userId" not in r.error()["message"]
    t.close()
    s.close()


def test_user_id_needs_a_trusted_key(serve, tmp_path):
    """userId from an untrusted key, or with no keys at all, is a 400 naming
    userId, and counts nothing; a malformed one is a 400 too."""
    srv = keys_server(serve, tmp_path, [f"{KEY_A} max=5", f"{KEY_T} trusted"])
    a = Client(srv.port, {"X-API-Key": KEY_A})
    r = a.execute({"code": "pass", "userId": "student-1"})
    assert_error(r, 400, "userId", "invalid_request", message=["trusted"])
    assert "RateLimit-Limit" not in r.headers
    r = a.post("/api/submissions", {"code": "pass", "userId": "student-1"})
    assert_error(r, 400, "userId", "invalid_request", message=["trusted"])
    assert srv.stats()["submissions"]["accepted"] == 0
    # nothing was counted: the key has all 5 left
    assert_counted(a.execute({"code": "pass"}), 5, 4)

    t = Client(srv.port, {"X-API-Key": KEY_T})
    for bad, what in (("x" * 129, "129 bytes"), ("", "0 bytes"), (42, "an integer"), ("a\nb", "control")):
        r = t.execute({"code": "pass", "userId": bad})
        assert_error(r, 400, "userId", "invalid_request", message=["128", what])
    r = t.post("/api/submissions", {"submissions": [{"code": "pass", "userId": "s1"}]})
    assert_error(r, 400, "submissions[0].userId", "invalid_request")
    a.close()
    t.close()

    plain = serve()
    r = plain.execute({"code": "pass", "userId": "student-1"})
    assert_error(r, 400, "userId", "invalid_request", message=["no API keys"])


def test_async_submission_counts_for_its_user(serve, tmp_path):
    """An asynchronous submission's userId counts in that user's quota."""
    srv = keys_server(serve, tmp_path, [f"{KEY_T} trusted user-max=1"])
    t = Client(srv.port, {"X-API-Key": KEY_T})
    r = t.post("/api/submissions", {"code": "pass", "userId": "s1"})
    assert r.status == 202, r
    assert limit_headers(r)[:2] == (1, 0)
    assert_limited(t.post("/api/submissions", {"code": "pass", "userId": "s1"}), 1, message=["userId"])
    assert t.post("/api/submissions", {"code": "pass", "userId": "s2"}).status == 202
    t.close()


def test_headers_count_down_by_address(serve):
    """Without keys: RATE_LIMIT_MAX per address, the headers on every counted
    response, and 429 with Retry-After when it is used up."""
    srv = serve(env={"RATE_LIMIT_MAX": 3, "RATE_LIMIT_WINDOW": 60000})
    for left in (2, 1, 0):
        assert_counted(srv.execute({"code": "pass"}), 3, left)
    r = srv.execute({"code": "pass"})
    assert_limited(r, 3)
    assert int(r.headers["RateLimit-Remaining"]) == 0
    # reads are not counted: no headers
    assert "RateLimit-Limit" not in srv.get("/health").headers


def test_no_key_in_the_log(serve, tmp_path):
    """The log names a key by the first 8 hex digits of its SHA-256, never
    by the key itself, refused or not."""
    srv = keys_server(serve, tmp_path, [f"{KEY_A} max=1", f"{KEY_T} trusted user-max=1"])
    a = Client(srv.port, {"X-API-Key": KEY_A})
    t = Client(srv.port, {"Authorization": f"Bearer {KEY_T}"})
    assert a.execute({"code": "pass"}).status == 200
    assert a.execute({"code": "pass"}).status == 429
    assert a.execute({"code": "pass", "userId": "u"}).status == 400
    assert t.execute({"code": "pass", "userId": "u"}).status == 200
    assert t.execute({"code": "pass", "userId": "u"}).status == 429
    a.close()
    t.close()
    assert wait_for(lambda: sum(e.get("code") == 429 for e in srv.logs()) == 2, 5, "the two 429s logged")
    text = srv.log_text()
    for k in (KEY_A, KEY_T):
        assert k not in text and k[:16] not in text
    assert KEY_A not in srv.get("/api/metrics", headers={"X-API-Key": KEY_A}).body.decode()
    clients = {e.get("client") for e in srv.logs() if e.get("message") == "request"}
    assert {f"key:{label(KEY_A)}", f"key:{label(KEY_T)}"} <= clients
