"""The client's parts that need no service: the event-stream parser, the
webhook verifier, the typed views of results and the README's examples."""
import base64
import hashlib
import hmac
import json
import pathlib
import re
import time

import pytest

from pyexec_client import (ExecuteRequest, Result, SSEParser, Submission, TestCase, WebhookVerificationError,
                           verify_webhook)

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()


def sign(secret, msg_id, ts, body):
    key = base64.b64decode(secret.removeprefix("whsec_"))
    return "v1," + base64.b64encode(hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()).decode()


def test_sse_parser_takes_bytes_as_they_come():
    stream = ('\ufeff: a comment\r\nevent: stdout\r\ndata: "a\\n"\r\n\r\n'
              'event: stderr\rdata: "é"\r\rdata: line1\ndata: line2\nid: 7\n\n'
              'event: result\ndata: {"status":"ok"}\n\n').encode()
    # every split point, one byte at a time included
    for step in (1, 2, 3, 7, len(stream)):
        p = SSEParser()
        events = []
        for i in range(0, len(stream), step):
            events += p.feed(stream[i:i + step])
        events += p.close()
        assert [(e.event, e.data) for e in events] == [("stdout", '"a\\n"'), ("stderr", '"é"'),
                                                       ("message", "line1\nline2"), ("result", '{"status":"ok"}')]
        assert events[2].id == "7"


def test_sse_parser_drops_an_unterminated_event():
    p = SSEParser()
    assert p.feed(b"event: stdout\ndata: \"x\"\n") == []
    assert p.close() == []


def webhook(body=b'{"type":"submission.done"}', ts=None, secret=SECRET):
    ts = str(int(time.time()) if ts is None else ts)
    return {"Webhook-Id": "msg_1", "Webhook-Timestamp": ts, "Webhook-Signature": sign(secret, "msg_1", ts, body)}, body


def test_verify_webhook_accepts_a_signed_body():
    headers, body = webhook()
    assert verify_webhook(SECRET, headers, body) == {"type": "submission.done"}
    # several signatures (a rotated secret): one matching is enough
    other = "whsec_" + base64.b64encode(b"o" * 32).decode()
    headers["Webhook-Signature"] = sign(other, "msg_1", headers["Webhook-Timestamp"], body) + " " + \
        headers["Webhook-Signature"]
    assert verify_webhook(SECRET, headers, body)["type"] == "submission.done"


@pytest.mark.parametrize("change", ["body", "id", "secret", "old", "future", "missing", "version"])
def test_verify_webhook_refuses(change):
    headers, body = webhook()
    secret = SECRET
    if change == "body":
        body = body.replace(b"done", b"dune")
    elif change == "id":
        headers["Webhook-Id"] = "msg_2"
    elif change == "secret":
        secret = "whsec_" + base64.b64encode(b"x" * 32).decode()
    elif change == "old":
        headers, body = webhook(ts=int(time.time()) - 301)
    elif change == "future":
        headers, body = webhook(ts=int(time.time()) + 301)
    elif change == "missing":
        del headers["Webhook-Signature"]
    elif change == "version":
        headers["Webhook-Signature"] = headers["Webhook-Signature"].replace("v1,", "v2,")
    with pytest.raises(WebhookVerificationError):
        verify_webhook(secret, headers, body)


def test_request_fields_are_the_api_names():
    req = ExecuteRequest("print(1)", stdin="x", files={"a.txt": "A"}, timeout=500, memory_limit=64,
                         exercise_id="e", run_tests=True, test_code="import starter", module_name="starter",
                         tests=[TestCase("1", stdin="", name="one"), {"expectedOutput": "2"}], total_timeout=900)
    assert req.to_json() == {"code": "print(1)", "stdin": "x", "files": [{"name": "a.txt", "content": "A"}],
                             "timeout": 500, "memoryLimit": 64, "exerciseId": "e", "runTests": True,
                             "testCode": "import starter", "moduleName": "starter",
                             "tests": [{"expectedOutput": "1", "name": "one", "stdin": ""}, {"expectedOutput": "2"}],
                             "totalTimeout": 900}


def test_result_with_images_and_a_worker_refusal():
    doc = {"id": "r", "status": "ok", "exitCode": 0, "signal": None, "stdout": "", "stderr": "", "output": "",
           "truncated": False, "message": None, "time": {"wallMs": 1.5, "cpuMs": 1}, "memory": {"peakKb": 10},
           "limits": {"timeoutMs": 1}, "images": [{"format": "png", "width": 2, "height": 3,
                                                   "data": base64.b64encode(b"PNG").decode()}],
           "imagesTruncated": False}
    r = Result.from_json(doc)
    assert r.ok and r.images and r.images[0].bytes() == b"PNG" and r.images[0].width == 2
    assert r.images_truncated is False
    assert Result.from_json({**doc, "images": None, "imagesTruncated": None}).images is None
    assert r.time.wall_ms == 1.5 and r.memory_peak_kb == 10 and r.tests is None
    s = Submission.from_json({"id": "s", "state": "done", "httpStatus": 400,
                              "result": {"error": {"code": "invalid_request", "message": "m", "field": "f"}}})
    assert s.done and s.result is None and s.error and s.error.field == "f"


def test_readme_examples_compile_and_import():
    readme = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert len(blocks) >= 5
    import pyexec_client
    for b in blocks:
        compile(b, "README.md", "exec")
        for names in re.findall(r"^from pyexec_client import (.+)$", b, re.M):
            for n in names.strip("()").split(","):
                assert hasattr(pyexec_client, n.strip()), n
