"""What a program printed before a limit stopped it is in its result.

A program's stdout is a pipe, on which python3 holds up to 8 KiB before
writing: killed at a limit, python3 would lose every line it had printed.
The runner flushes stdout at each newline instead (stderr already is), so
the lines printed before the kill are in `stdout` and `output`, and the
prints that came before a traceback come before it in `output`. At a
normal exit the output is python3's. Checked on the cold CLI, the warm
service (the default) and a cold service.
"""
import subprocess

import pytest

from test_serve import serving, start_server

COUNT_THEN = "for i in range(3):\n    print(i)\n"
SPIN = COUNT_THEN + "while True:\n    pass\n"
SLEEP = COUNT_THEN + "import time\ntime.sleep(60)\n"
HOG = COUNT_THEN + "x = []\nwhile True:\n    x.append(bytearray(1 << 20))\n"
KEPT = "0\n1\n2\n"

LIMITS = [
    # (program, options of pyexec run, fields of a request, status)
    (SLEEP, ["--timeout", "700"], {"timeout": 700}, "timeout"),
    (SPIN, ["--cpu-time", "500", "--timeout", "5000"], {"cpuTimeout": 500, "timeout": 5000}, "timeout"),
    (HOG, ["--memory", "64"], {"memoryLimit": 64}, "memory_limit"),
]
IDS = ["wall-clock", "cpu", "memory"]


@pytest.mark.parametrize("code,options,fields,status", LIMITS, ids=IDS)
def test_cold_run_keeps_what_was_printed(run, code, options, fields, status):
    res = run(code, *options)
    assert res["status"] == status, res
    assert res["stdout"] == KEPT, res
    assert res["output"].startswith(KEPT), res


@pytest.fixture(scope="module", params=["warm", "cold"])
def service(request, tmp_path_factory):
    flags = ["--cold"] if request.param == "cold" else []
    srv = start_server(tmp_path_factory.mktemp(f"kept-{request.param}"), *flags, env={"RATE_LIMIT_MAX": 0})
    yield srv
    assert srv.stop() == 0, srv.log_text()[-3000:]


@pytest.mark.parametrize("code,options,fields,status", LIMITS, ids=IDS)
def test_service_keeps_what_was_printed(service, code, options, fields, status):
    doc = service.execute({"code": code, **fields}).json()
    assert doc["status"] == status, doc
    assert doc["stdout"] == KEPT and doc["output"].startswith(KEPT), doc


def test_output_has_the_lines_in_the_order_printed(run):
    """stdout's lines and stderr's, written a moment apart, in their order
    (lines written at the same instant into the two pipes may be read in
    either order)."""
    res = run("import sys, time\nprint('first')\ntime.sleep(0.2)\nprint('warning', file=sys.stderr)\n"
              "time.sleep(0.2)\nprint('second')\ntime.sleep(0.2)\n1 / 0\n")
    assert res["status"] == "runtime_error", res
    out = res["output"]
    assert out.startswith("first\nwarning\nsecond\nTraceback (most recent call last):"), out


@pytest.mark.parametrize("how", ["os.abort()", "os.kill(os.getpid(), signal.SIGKILL)",
                                 "signal.raise_signal(signal.SIGTERM)"])
def test_a_program_that_kills_itself_keeps_its_lines(run, how):
    """python3 on a pipe loses 'kept'; the line was ended, so it stays."""
    res = run(f"import os, signal, sys\nprint(sys.stdout.line_buffering)\nprint('kept')\n{how}\n")
    assert res["stdout"] == "True\nkept\n" and res["signal"] in ("SIGABRT", "SIGKILL", "SIGTERM"), res


NORMAL = [
    "print('a')\nprint('b', end='')\n",
    "import sys\nsys.stdout.write('no newline')\nsys.stderr.write('err')\n",
    "import sys\nfor i in range(2000):\n    print(i, i * i)\nprint('e', file=sys.stderr)\n",
    "print('x' * 100000)\n",
    "import sys\nprint('out')\nsys.exit('bye')\n",
]


@pytest.mark.parametrize("code", NORMAL, ids=range(len(NORMAL)))
def test_normal_exit_prints_what_python3_prints(run, tmp_path, code):
    prog = tmp_path / "p.py"
    prog.write_text(code)
    want = subprocess.run(["/usr/bin/python3", str(prog)], capture_output=True, text=True, timeout=60)
    res = run(code, "--max-output", "1048576")
    assert (res["stdout"], res["stderr"], res["exitCode"]) == (want.stdout, want.stderr, want.returncode), res
