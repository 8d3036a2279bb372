"""`pyexec run --service URL` against a real `pyexec serve`: what a local
run takes (bytes that are not text, output with NUL bytes) goes through the
service and comes back the same; what the service refuses is said with the
service's own message. Also the request fields that carry bytes in base64
(stdinBase64, files[].contentBase64)."""

import base64
import hashlib
import json

import pytest

from conftest import PYEXEC, pyexec
from test_serve import serving, start_server

BYTES = bytes(range(256)) * 64 + b"\xff\xfe\x00 not UTF-8 \xc3"
DIGEST = """\
import hashlib, sys
data = sys.stdin.buffer.read()
print(len(data), hashlib.sha256(data).hexdigest())
with open("blob.bin", "rb") as f:
    blob = f.read()
print(len(blob), hashlib.sha256(blob).hexdigest())
"""


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = start_server(tmp_path_factory.mktemp("run-service"), "--rate-limit-max", "0")
    yield s
    assert s.stop() == 0


def url(srv):
    return f"http://127.0.0.1:{srv.port}"


def test_bytes_that_are_not_text_go_through(srv, tmp_path):
    prog = tmp_path / "digest.py"
    prog.write_text(DIGEST)
    data = tmp_path / "in.bin"
    data.write_bytes(BYTES)
    want = f"{len(BYTES)} {hashlib.sha256(BYTES).hexdigest()}\n".encode() * 2
    args = ["run", "--stdin", data, "--file", f"blob.bin={data}", prog]
    local = pyexec(*args)
    remote = pyexec(*args[:1], "--service", url(srv), *args[1:])
    assert local.returncode == 0 and local.stdout == want, local
    assert remote.returncode == 0 and remote.stdout == want, remote.stderr


def test_output_with_nul_bytes_comes_back_as_written(srv, tmp_path):
    prog = tmp_path / "nul.py"
    prog.write_text('import sys\nprint("a\\0b")\nprint("c\\0", file=sys.stderr)\n')
    local = pyexec("run", prog)
    remote = pyexec("run", "--service", url(srv), prog)
    assert remote.returncode == local.returncode == 0, remote.stderr
    assert remote.stdout == local.stdout == b"a\0b\n"
    assert remote.stderr == local.stderr == b"c\0\n"


def test_a_request_too_large_gets_the_services_message(srv, tmp_path):
    """30 MB of stdin: the service refuses it from its Content-Length while
    the client still sends; the client reports that answer, not the
    broken connection."""
    prog = tmp_path / "p.py"
    prog.write_text("import sys\nprint(len(sys.stdin.read()))\n")
    big = tmp_path / "big.txt"
    big.write_bytes(b"x" * (30 << 20))
    for _ in range(3):
        p = pyexec("run", "--service", url(srv), "--stdin", big, prog)
        assert p.returncode == 2, p.stderr
        assert p.stderr.decode().startswith("pyexec: the service answered 413: the request body is "), p.stderr


def test_base64_fields(srv):
    blob = bytes(range(256))
    b64 = base64.b64encode(blob).decode()
    code = ("import sys\nd = sys.stdin.buffer.read()\nprint(d == bytes(range(256)))\n"
            "print(open('b.bin', 'rb').read() == bytes(range(256)))\n")
    r = srv.execute({"code": code, "stdinBase64": b64, "files": [{"name": "b.bin", "contentBase64": b64}]})
    assert r.status == 200 and r.json()["stdout"] == "True\nTrue\n", r.json()
    r = srv.execute({"code": "print(repr(input()))", "stdinBase64": ""})
    assert r.status == 200 and r.json()["status"] == "runtime_error", r.json()  # EOFError: empty stdin


@pytest.mark.parametrize("body, field, message", [
    ({"stdinBase64": "AAA"}, "stdinBase64", "stdinBase64 is not base64"),
    ({"stdinBase64": "AA\nAA=="}, "stdinBase64", "stdinBase64 is not base64"),
    ({"stdinBase64": 7}, "stdinBase64", "stdinBase64 must be a string, got an integer"),
    ({"stdin": "x", "stdinBase64": "eA=="}, "stdinBase64", "stdin and stdinBase64 are both given"),
    ({"files": [{"name": "a", "content": "x", "contentBase64": "eA=="}]}, "files[0].contentBase64",
     "files[0] has content and contentBase64"),
    ({"files": [{"name": "a", "contentBase64": "e==A"}]}, "files[0].contentBase64",
     "files[0].contentBase64 is not base64"),
    ({"files": [{"name": "a"}]}, "files[0].content", "files[0].content (or contentBase64) is required"),
])
def test_bad_base64_fields_are_refused(srv, body, field, message):
    r = srv.execute({"code": "print(1)", **body})
    err = r.json()["error"]
    assert r.status == 400 and err["field"] == field and err["message"].startswith(message), err
