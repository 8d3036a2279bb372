"""POST /api/execute with `Accept: text/event-stream`: the program's output
as Server-Sent Events while it runs, then the result document, on the warm
path (the default) and the cold one. The client reads the stream as it comes
(http.client, a read timeout), and a client that leaves mid-run has its run
stopped: checked from the host (the process table, /api/stats)."""
import http.client
import json
import socket
import time
import uuid

import pytest

import openapi_check
from conftest import host_pids_matching, long_decimals, wait_for
from test_serve import HOST, JSON_HEADERS, start_server

SSE_HEADERS = {**JSON_HEADERS, "Accept": "text/event-stream"}


@pytest.fixture(scope="module", params=["warm", "cold"])
def srv(request, tmp_path_factory):
    s = start_server(tmp_path_factory.mktemp("stream"), "--rate-limit-max", "0",
                     env={"EXECUTION_MODE": request.param, "EXECUTION_TIMEOUT": 60000,
                          "MAX_OUTPUT_LENGTH": 16 << 20})
    yield s
    code = s.stop()
    assert code == 0, f"pyexec serve exited {code}: {s.log_text()[-3000:]}"


class Stream:
    """A streamed execution: the response's headers, then its events one by
    one (name, decoded data) as they arrive."""

    def __init__(self, port, body, headers=None, timeout=60):
        self.conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
        self.conn.request("POST", "/api/execute", body=json.dumps(body).encode(),
                          headers={**SSE_HEADERS, **(headers or {})})
        self.resp = self.conn.getresponse()
        self.cut = False  # the stream ended without its last chunk
        self.raw = []  # each event's data as sent

    def next_event(self):
        name, data = None, []
        while True:
            try:
                line = self.resp.readline()
            except (http.client.IncompleteRead, ConnectionResetError):
                self.cut = True
                return None
            if not line:
                return None
            line = line.decode().rstrip("\n")
            if line == "":
                if name is not None:
                    self.raw.append("\n".join(data))
                    event = name, json.loads(self.raw[-1])
                    openapi_check.check_event(*event)
                    return event
                continue
            field, _, value = line.partition(": ")
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)

    def events(self):
        out = []
        while (ev := self.next_event()) is not None:
            out.append(ev)
        return out

    def close(self):
        self.conn.close()


def stream_all(port, body):
    s = Stream(port, body)
    try:
        assert s.resp.status == 200
        assert s.resp.getheader("Content-Type").startswith("text/event-stream")
        return s.events()
    finally:
        s.close()


def joined(events, name):
    return "".join(d for n, d in events if n == name)


def plain_execute(port, body):
    c = http.client.HTTPConnection(HOST, port, timeout=60)
    try:
        c.request("POST", "/api/execute", body=json.dumps(body).encode(), headers=JSON_HEADERS)
        r = c.getresponse()
        return r.status, r.getheader("Content-Type"), json.loads(r.read())
    finally:
        c.close()


def active_runs(srv):
    c = http.client.HTTPConnection(HOST, srv.port, timeout=10)
    try:
        c.request("GET", "/api/stats")
        return json.loads(c.getresponse().read())["queue"]["active"]
    finally:
        c.close()


def test_output_arrives_while_the_program_runs(srv):
    code = "import time\nprint('first', flush=True)\ntime.sleep(2)\nprint('second')\n"
    s = Stream(srv.port, {"code": code})
    try:
        assert s.resp.status == 200
        assert s.next_event() == ("stdout", "first\n")
        # The marker: the run is still going when the first line is here.
        assert active_runs(srv) == 1
        rest = s.events()
    finally:
        s.close()
    assert rest[0] == ("stdout", "second\n")
    assert rest[-1][0] == "result" and len(rest) == 2
    assert rest[-1][1]["status"] == "ok" and rest[-1][1]["stdout"] == "first\nsecond\n"


def test_stdout_and_stderr_events_and_split_characters(srv):
    code = ("import sys, time\n"
            "print('out 1', flush=True)\n"
            "time.sleep(0.2)\n"
            "sys.stderr.write('err 1\\n'); sys.stderr.flush()\n"
            "time.sleep(0.2)\n"
            "sys.stdout.buffer.write(b'\\xc3'); sys.stdout.flush()\n"
            "time.sleep(0.2)\n"
            "sys.stdout.buffer.write(b'\\xa9 \\xff\\n'); sys.stdout.flush()\n")
    events = stream_all(srv.port, {"code": code})
    names = [n for n, _ in events]
    assert names[0] == "stdout" and "stderr" in names and names[-1] == "result"
    assert names.index("stderr") < len(names) - 2  # stdout came after it
    result = events[-1][1]
    # A character cut between two chunks arrives whole; an invalid byte is
    # U+FFFD, as in the result.
    assert joined(events, "stdout") == "out 1\n\u00e9 \ufffd\n" == result["stdout"]
    assert joined(events, "stderr") == "err 1\n" == result["stderr"]


def test_result_event_is_the_plain_response(srv):
    # The descriptors the program sees too: the client's socket is not among them.
    body = {"code": "import os, sys\nprint(input() * 2)\nprint(sorted(os.listdir('/proc/self/fd')))\nsys.exit(3)\n",
            "stdin": "ab\n", "args": ["x"]}
    events = stream_all(srv.port, body)
    status, ctype, plain = plain_execute(srv.port, body)
    assert status == 200 and ctype == "application/json"
    streamed = events[-1][1]
    assert events[-1][0] == "result"
    for doc in (streamed, plain):
        for k in ("id", "time", "memory"):
            doc.pop(k)
    assert streamed == plain
    assert streamed["status"] == "runtime_error" and streamed["exitCode"] == 3


def test_result_event_is_written_as_the_plain_response(srv):
    """The same key order and number precision (10 significant digits) as
    the plain JSON answer, not the encoder's defaults."""
    s = Stream(srv.port, {"code": "print(1)"})
    try:
        events = s.events()
        raw = s.raw[-1]
    finally:
        s.close()
    assert events[-1][0] == "result"
    _, _, plain = plain_execute(srv.port, {"code": "print(1)"})
    assert list(json.loads(raw)) == list(plain)
    assert not long_decimals(raw), raw


def test_output_cap_applies(srv):
    code = "import sys\nfor i in range(100):\n    sys.stdout.write('x' * 100); sys.stdout.flush()\n"
    events = stream_all(srv.port, {"code": code, "maxOutput": 1000})
    result = events[-1][1]
    assert result["status"] == "output_limit" and result["truncated"] is True
    assert joined(events, "stdout") == result["stdout"] == "x" * 1000


def test_timeout(srv):
    code = "import time\nprint('before', flush=True)\ntime.sleep(30)\nprint('after')\n"
    events = stream_all(srv.port, {"code": code, "timeout": 1000})
    assert events[0] == ("stdout", "before\n")
    assert events[-1][0] == "result" and len(events) == 2
    assert events[-1][1]["status"] == "timeout"


@pytest.mark.parametrize("body,field", [
    ({"cod": "print(1)"}, None),
    ({"code": "print(1)", "timeout": -1}, "timeout"),
    ({"code": "print(input())", "tests": [{"stdin": "1", "expectedOutput": "1"}]}, "tests"),
])
def test_a_bad_request_is_answered_with_json(srv, body, field):
    s = Stream(srv.port, body)
    try:
        assert s.resp.status == 400
        assert s.resp.getheader("Content-Type") == "application/json"
        err = json.loads(s.resp.read())["error"]
    finally:
        s.close()
    assert err["code"] == "invalid_request" and err["message"]
    if field:
        assert err["field"] == field


def test_a_client_that_leaves_stops_its_run(srv):
    marker = "SSE_GONE_" + uuid.uuid4().hex
    code = ("import subprocess\n"
            f"p = subprocess.Popen(['/bin/sh', '-c', 'sleep 50; true', '{marker}'])\n"
            "print('started', flush=True)\n"
            "p.wait()\n"
            "print('not reached')\n")
    s = Stream(srv.port, {"code": code, "timeout": 60000, "cpuTimeout": 60000})
    assert s.resp.status == 200
    assert s.next_event() == ("stdout", "started\n")
    wait_for(lambda: host_pids_matching(marker), 10, "the run's process on the host's process table")
    assert active_runs(srv) == 1
    # Gone at once: shut the socket down, not just drop the reference.
    s.conn.sock.shutdown(socket.SHUT_RDWR)
    s.close()
    wait_for(lambda: not host_pids_matching(marker), 10, "the run's processes killed")
    wait_for(lambda: active_runs(srv) == 0, 10, "the execution slot freed")
    status, _, doc = plain_execute(srv.port, {"code": "print('still serving')"})
    assert status == 200 and doc["stdout"] == "still serving\n"
    logged = srv.wait_log(lambda e: e.get("stream") is True and e.get("clientGone") is True
                          and e.get("status") == "runtime_error")
    assert logged, srv.log_text()[-2000:]


def test_a_client_too_far_behind_is_disconnected(srv):
    # 16 MiB of control characters are 96 MiB of JSON escapes: more than the
    # stream holds for a client (twice the output cap) that reads nothing.
    code = ("import sys\n"
            "for i in range(256):\n"
            "    sys.stdout.buffer.write(b'\\x01' * 65536); sys.stdout.flush()\n"
            "print('done', file=sys.stderr)\n")
    rid = "slow-" + uuid.uuid4().hex
    s = Stream(srv.port, {"code": code, "maxOutput": 16 << 20}, headers={"X-Request-Id": rid})
    try:
        assert s.resp.status == 200
        logged = srv.wait_log(lambda e: e.get("requestId") == rid and "too slow" in e["message"], timeout=30)
        assert logged, srv.log_text()[-2000:]
        wait_for(lambda: active_runs(srv) == 0, 10, "the execution slot freed")
        events = s.events()  # what was sent before the disconnection, then the end
    finally:
        s.close()
    assert s.cut
    assert events and all(n == "stdout" for n, _ in events)
