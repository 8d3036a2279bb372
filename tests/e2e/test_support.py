"""End-to-end tests of what pyexec supports: the result schema, running a
program exactly as `python3 main.py` would, stdin/stdout/stderr handling,
verdicts, the CLI's pass-through mode and exit codes, usage errors, and
`pyexec check`.

Every test drives the real binary through the conftest fixtures and passes
both as root and as an unprivileged user (scripts/test-unprivileged.sh).
"""
import hashlib
import json
import os
import re
import subprocess
import textwrap

import pytest

from conftest import pyexec

HOST_PYTHON = "/usr/bin/python3"

# Exit codes of `pyexec run` without --json when the sandbox decided (src/cli/cmd.h).
EXIT_USAGE = 2
EXIT_MEMORY = 122
EXIT_OUTPUT = 123
EXIT_TIMEOUT = 124

DEFAULT_LIMITS = {
    "timeoutMs": 10000,
    "cpuTimeMs": 10000,
    "memoryMb": 128,
    "maxOutput": 10000,
    "pids": 64,
    "diskMb": 32,
    "fileSizeMb": 16,
    "openFiles": 256,
}


def code(s):
    return textwrap.dedent(s).lstrip("\n")


def host_run(tmp_path, src, stdin=b""):
    """Run src as `python3 main.py` on the host, in its own directory."""
    d = tmp_path / "host"
    d.mkdir(exist_ok=True)
    (d / "main.py").write_text(src)
    # The sandbox's environment, not ours (which may set PYTHONUNBUFFERED).
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(d), "LANG": "C.UTF-8"}
    return subprocess.run(
        [HOST_PYTHON, "main.py"], cwd=d, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=env, timeout=60,
    )


def write(tmp_path, name, data):
    p = tmp_path / name
    p.write_bytes(data) if isinstance(data, bytes) else p.write_text(data)
    return p


# ---------------------------------------------------------------------------
# The result schema
# ---------------------------------------------------------------------------


class TestResultSchema:
    def test_hello_world(self, run):
        """The canonical program: ok, exit 0, exact output in all three streams."""
        r = run("print('Hello, World!')\n")
        assert r["status"] == "ok"
        assert r["exitCode"] == 0
        assert r["signal"] is None
        assert r["stdout"] == "Hello, World!\n"
        assert r["stderr"] == ""
        assert r["output"] == "Hello, World!\n"
        assert r["truncated"] is False
        assert r["message"] is None
        assert r.returncode == 0

    def test_keys_and_types(self, run):
        """Exactly the documented keys, with the documented types."""
        r = run("print(1)\n")
        assert set(r) == {
            "id", "status", "exitCode", "signal", "stdout", "stderr", "output",
            "truncated", "message", "time", "memory", "images", "imagesTruncated", "limits",
        }
        assert r["images"] == [] and r["imagesTruncated"] is False
        assert re.fullmatch(r"[0-9a-f]{32}", r["id"])
        assert set(r["time"]) == {"wallMs", "cpuMs"}
        for k in ("wallMs", "cpuMs"):
            assert isinstance(r["time"][k], (int, float)) and not isinstance(r["time"][k], bool)
            assert r["time"][k] > 0
        assert set(r["memory"]) == {"peakKb"}
        assert isinstance(r["memory"]["peakKb"], int) and r["memory"]["peakKb"] > 0
        assert r["limits"] == DEFAULT_LIMITS

    def test_ids_differ_between_runs(self, run):
        """Each run gets a fresh correlation id."""
        assert run("pass\n")["id"] != run("pass\n")["id"]

    def test_limits_echo_options(self, run):
        """Every limit option given is echoed under limits."""
        r = run(
            "pass\n",
            "--timeout", "7000", "--cpu-time", "3000", "--memory", "200", "--max-output", "12345",
            "--pids", "17", "--disk", "9", "--file-size", "3", "--open-files", "99",
        )
        assert r["status"] == "ok"
        assert r["limits"] == {
            "timeoutMs": 7000, "cpuTimeMs": 3000, "memoryMb": 200, "maxOutput": 12345,
            "pids": 17, "diskMb": 9, "fileSizeMb": 3, "openFiles": 99,
        }

    def test_cpu_time_defaults_to_timeout(self, run):
        """Without --cpu-time, the CPU limit follows --timeout."""
        r = run("pass\n", "--timeout", "4321")
        assert r["limits"]["timeoutMs"] == 4321
        assert r["limits"]["cpuTimeMs"] == 4321


# ---------------------------------------------------------------------------
# The program runs as `python3 main.py` in its directory
# ---------------------------------------------------------------------------


class TestLikePython:
    def test_main_name_cwd_and_path(self, run):
        """__name__ is __main__, the cwd is /sandbox, the script dir leads sys.path."""
        r = run(code("""
            import os, sys
            print(__name__)
            print(os.getcwd())
            print(sys.path[0])
            print(os.path.basename(__file__))
        """))
        assert r["status"] == "ok"
        assert r["stdout"] == "__main__\n/sandbox\n/sandbox\nmain.py\n"

    def test_argv_plain(self, run):
        """No --arg: sys.argv is just the script name."""
        r = run("import sys, json; print(json.dumps(sys.argv))\n")
        assert json.loads(r["stdout"]) == ["main.py"]

    def test_argv_values(self, run):
        """--arg values arrive verbatim and in order: spaces, unicode, dashes, empty."""
        args = ["one", "two words", "ünï ✓ 日本", "-x", "--y=1", "", "  "]
        opts = []
        for a in args:
            opts += ["--arg", a]
        opts += ["--arg=-z", "--arg=--also"]
        r = run("import sys, json; print(json.dumps(sys.argv))\n", *opts)
        assert r["status"] == "ok", r
        assert json.loads(r["stdout"]) == ["main.py", *args, "-z", "--also"]

    def test_sibling_import(self, run, tmp_path):
        """A --file helper.py is importable as a sibling module."""
        helper = write(tmp_path, "h.py", "def greet(n):\n    return f'hi {n}'\nNAME = __name__\n")
        r = run("import helper\nprint(helper.greet('x'), helper.NAME)\n", "--file", f"helper.py={helper}")
        assert r["status"] == "ok", r
        assert r["stdout"] == "hi x helper\n"

    def test_data_file_exact_bytes(self, run, tmp_path):
        """A --file data file is readable with exactly its bytes (text and binary)."""
        text = "line one\nünïcode ✓\r\nno newline at end".encode()
        binary = bytes(range(256)) * 3 + b"\x00\x00"
        t = write(tmp_path, "t.txt", text)
        b = write(tmp_path, "b.bin", binary)
        r = run(
            code("""
                import hashlib
                for n in ('data.txt', 'blob.bin'):
                    d = open(n, 'rb').read()
                    print(n, len(d), hashlib.sha256(d).hexdigest())
                print(repr(open('data.txt', encoding='utf-8', newline='').read()))
            """),
            "--file", f"data.txt={t}", "--file", f"blob.bin={b}",
        )
        assert r["status"] == "ok", r
        assert r["stdout"] == (
            f"data.txt {len(text)} {hashlib.sha256(text).hexdigest()}\n"
            f"blob.bin {len(binary)} {hashlib.sha256(binary).hexdigest()}\n"
            f"{text.decode()!r}\n"
        )

    def test_unicode_file_name(self, run, tmp_path):
        """A --file name may be any plain UTF-8 name."""
        f = write(tmp_path, "d", "contenu\n")
        r = run("import os\nprint(open('donn\u00e9es v2.txt').read(), end='')\n", "--file", f"donn\u00e9es v2.txt={f}")
        assert r["status"] == "ok", r
        assert r["stdout"] == "contenu\n"

    def test_crlf_and_empty_programs(self, run):
        """CRLF line endings work; an empty program is ok with no output."""
        r = run(b"print(1)\r\nprint(2)\r\n")
        assert r["stdout"] == "1\n2\n"
        r = run("")
        assert r["status"] == "ok"
        assert r["stdout"] == r["stderr"] == ""

    def test_empty_file(self, run, tmp_path):
        """An empty --file exists and is empty."""
        e = write(tmp_path, "empty", b"")
        r = run("import os; print(os.path.getsize('empty.txt'))\n", "--file", f"empty.txt={e}")
        assert r["stdout"] == "0\n"

    @pytest.mark.parametrize("n", [0, 3, 255])
    def test_sys_exit_codes(self, run, n):
        """sys.exit(N) is the exit code; non-zero is runtime_error."""
        r = run(f"import sys\nprint('before')\nsys.exit({n})\n")
        assert r["exitCode"] == n
        assert r["signal"] is None
        assert r["stdout"] == "before\n"
        assert r["status"] == ("ok" if n == 0 else "runtime_error")
        if n:
            assert r["message"] == f"exited with code {n}"
        else:
            assert r["message"] is None

    def test_uncaught_exception(self, run):
        """An uncaught exception: exit 1, runtime_error, traceback, message names it."""
        r = run("def f():\n    raise ValueError('boom 42')\nf()\n")
        assert r["status"] == "runtime_error"
        assert r["exitCode"] == 1
        assert r["signal"] is None
        assert r["stderr"].startswith("Traceback (most recent call last):\n")
        assert 'File "/sandbox/main.py", line 2, in f' in r["stderr"]
        assert r["stderr"].endswith("ValueError: boom 42\n")
        assert "ValueError: boom 42" in r["message"]

    def test_system_exit_with_string(self, run):
        """SystemExit('msg') prints msg on stderr and exits 1."""
        r = run("raise SystemExit('bye now')\n")
        assert r["status"] == "runtime_error"
        assert r["exitCode"] == 1
        assert r["stderr"] == "bye now\n"
        assert "bye now" in r["message"]

    def test_keyboard_interrupt_like_host(self, run, tmp_path):
        """raise KeyboardInterrupt ends the program as on the host: killed by SIGINT."""
        src = "raise KeyboardInterrupt\n"
        host = host_run(tmp_path, src)
        assert host.returncode == -2  # CPython re-raises SIGINT on itself
        r = run(src)
        assert r["status"] == "runtime_error"
        assert r["exitCode"] is None
        assert r["signal"] == "SIGINT"
        assert r["stderr"].endswith("KeyboardInterrupt\n")
        assert "SIGINT" in r["message"]

    def test_atexit_handlers_run(self, run):
        """atexit handlers run at normal exit and after sys.exit."""
        r = run(code("""
            import atexit, sys
            atexit.register(lambda: print('atexit ran', flush=True))
            print('main')
            sys.exit(4)
        """))
        assert r["stdout"] == "main\natexit ran\n"
        assert r["exitCode"] == 4

    def test_non_daemon_threads_awaited(self, run):
        """The interpreter waits for non-daemon threads before exiting."""
        r = run(code("""
            import threading, time
            def work():
                time.sleep(0.3)
                print('thread done', flush=True)
            threading.Thread(target=work).start()
            print('main done', flush=True)
        """))
        assert r["status"] == "ok", r
        assert r["stdout"] == "main done\nthread done\n"

    def test_os_exit_loses_an_unended_line_like_host(self, run, tmp_path):
        """os._exit flushes nothing: a line not ended is lost, as on the
        host. An ended one was flushed at its newline (api.md), where
        python3 on a pipe still held it."""
        src = "import os, sys\nprint('kept')\nprint('lost', end='')\nsys.stderr.write('err kept\\n')\nos._exit(0)\n"
        host = host_run(tmp_path, src)
        r = run(src)
        assert host.stdout == b"" and host.returncode == 0
        assert r["status"] == "ok"
        assert r["stdout"] == "kept\n"
        assert r["stderr"] == host.stderr.decode() == "err kept\n"

    def test_os_exit_code(self, run):
        """os._exit(N) reports N."""
        r = run("import os\nos._exit(42)\n")
        assert r["exitCode"] == 42
        assert r["status"] == "runtime_error"

    def test_utf8_output(self, run):
        """Non-ASCII output is UTF-8 (not ASCII-escaped, no UnicodeEncodeError)."""
        s = "héllo wörld ✓ 日本語 🐍"
        r = run(f"import sys\nprint({s!r})\nprint({s!r}, file=sys.stderr)\nprint(sys.stdout.encoding)\n")
        assert r["status"] == "ok", r
        assert r["stdout"] == f"{s}\nutf-8\n"
        assert r["stderr"] == f"{s}\n"

    def test_utf8_stdin(self, run, tmp_path):
        """Non-ASCII stdin decodes as UTF-8."""
        s = "ünïcödé ✓ 日本 🐍\nsecond line\n"
        f = write(tmp_path, "in.txt", s.encode())
        r = run("import sys\nd = sys.stdin.read()\nprint(len(d), repr(d))\n", "--stdin", f)
        assert r["status"] == "ok", r
        assert r["stdout"] == f"{len(s)} {s!r}\n"

    def test_input_reads_lines(self, run, tmp_path):
        """input() reads stdin line by line and then hits EOF."""
        f = write(tmp_path, "in.txt", "3\n4\n")
        r = run(code("""
            a = int(input()); b = int(input())
            print(a + b)
            try:
                input()
            except EOFError:
                print('eof')
        """), "--stdin", f)
        assert r["stdout"] == "7\neof\n"

    def test_large_stdin(self, run, tmp_path):
        """A 5 MB stdin is read completely and exactly."""
        data = (b"0123456789abcdef" * 65536 * 5)[: 5 * 1024 * 1024 - 7]
        f = write(tmp_path, "big.txt", data)
        r = run(
            "import sys, hashlib\nd = sys.stdin.buffer.read()\nprint(len(d), hashlib.sha256(d).hexdigest())\n",
            "--stdin", f,
        )
        assert r["status"] == "ok", r
        assert r["stdout"] == f"{len(data)} {hashlib.sha256(data).hexdigest()}\n"

    def test_binary_stdin(self, run, tmp_path):
        """Every byte value arrives through sys.stdin.buffer unchanged."""
        data = bytes(range(256))
        f = write(tmp_path, "bin", data)
        r = run("import sys\nprint(sys.stdin.buffer.read().hex())\n", "--stdin", f)
        assert r["stdout"] == data.hex() + "\n"

    def test_no_stdin_is_empty(self, run):
        """Without --stdin, stdin is empty (EOF at once), not the caller's stdin."""
        r = run("import sys\nprint(repr(sys.stdin.read()))\n", stdin=b"caller's stdin must not leak\n")
        assert r["status"] == "ok", r
        assert r["stdout"] == "''\n"

    def test_pillow(self, run):
        """Pillow works: make an image, save it to /tmp, reload it."""
        r = run(code("""
            from PIL import Image
            im = Image.new('RGB', (37, 21), (255, 0, 0))
            im.putpixel((3, 4), (1, 2, 3))
            im.save('/tmp/x.png')
            back = Image.open('/tmp/x.png')
            print(back.size, back.mode, back.getpixel((3, 4)), back.getpixel((0, 0)))
        """))
        assert r["status"] == "ok", r
        assert r["stdout"] == "(37, 21) RGB (1, 2, 3) (255, 0, 0)\n"

    def test_sandbox_uid(self, run, privileged):
        """The program runs as uid 1000 in a user namespace, as a large per-run host uid as root."""
        r = run("import os\nprint(os.getuid(), os.geteuid(), os.getgid())\n")
        uid, euid, gid = map(int, r["stdout"].split())
        assert uid == euid == gid
        if privileged:
            assert uid >= 1900000000
        else:
            assert uid == 1000


# ---------------------------------------------------------------------------
# Output streams
# ---------------------------------------------------------------------------


class TestOutput:
    def test_large_stdout_and_stderr_no_deadlock(self, run):
        """200 KB on each stream, interleaved: no deadlock, exact content."""
        # Each line is one write(2) of 2 KB (below PIPE_BUF, so atomic): the
        # merged stream cannot split a line.
        r = run(
            code("""
                import sys
                for i in range(100):
                    sys.stdout.write(f'{i:03d}' + 'o' * 2044 + '\\n')
                    sys.stdout.flush()
                    sys.stderr.write(f'{i:03d}' + 'e' * 2044 + '\\n')
                    sys.stderr.flush()
            """),
            "--max-output", "1000000", "--timeout", "20000",
        )
        exp_out = "".join(f"{i:03d}" + "o" * 2044 + "\n" for i in range(100))
        exp_err = "".join(f"{i:03d}" + "e" * 2044 + "\n" for i in range(100))
        assert r["status"] == "ok", r["message"]
        assert r["truncated"] is False
        assert r["stdout"] == exp_out
        assert r["stderr"] == exp_err
        assert len(r["output"]) == len(exp_out) + len(exp_err)
        # The merged stream holds both, each in its own order.
        assert "".join(l for l in r["output"].splitlines(True) if "o" in l) == exp_out
        assert "".join(l for l in r["output"].splitlines(True) if "e" in l) == exp_err

    def test_one_huge_write_each(self, run):
        """A single 300 KB write to stderr before 300 KB to stdout: neither pipe blocks the other."""
        r = run(
            "import sys\nsys.stderr.write('E' * 300000)\nsys.stderr.flush()\nsys.stdout.write('O' * 300000)\n",
            "--max-output", "700000",
        )
        assert r["status"] == "ok", r["message"]
        assert r["stdout"] == "O" * 300000
        assert r["stderr"] == "E" * 300000

    def test_merged_output_order(self, run):
        """For a program that flushes alternately, output keeps the order of the writes."""
        r = run(code("""
            import sys, time
            for i in range(8):
                print(f'out {i}', flush=True)
                time.sleep(0.025)
                print(f'err {i}', file=sys.stderr, flush=True)
                time.sleep(0.025)
        """))
        # The pauses let the supervisor see each write before the next: the
        # two streams are separate pipes, so only arrival order exists.
        assert r["status"] == "ok"
        assert r["output"] == "".join(f"out {i}\nerr {i}\n" for i in range(8))
        assert r["stdout"] == "".join(f"out {i}\n" for i in range(8))
        assert r["stderr"] == "".join(f"err {i}\n" for i in range(8))

    def test_invalid_utf8_becomes_replacement(self, run):
        """Invalid UTF-8 turns into U+FFFD; the JSON stays valid; NUL bytes survive."""
        r = run(
            "import sys\nsys.stdout.buffer.write(b'a\\xffb\\x00c\\xc3(d\\xed\\xa0\\x80e\\n')\n"
            "sys.stderr.buffer.write(b'\\x80x\\x00\\n')\n"
        )
        assert r["status"] == "ok"
        # A lone continuation byte, a truncated sequence, an encoded surrogate:
        # each invalid byte is one U+FFFD (as Python's decode(errors='replace')).
        assert r["stdout"] == "a\ufffdb\x00c\ufffd(d\ufffd\ufffd\ufffde\n"
        assert r["stderr"] == "\ufffdx\x00\n"
        assert "\x00" in r["output"]

    def test_valid_utf8_edge_characters_kept(self, run):
        """Valid 4-byte sequences and U+FFFD itself pass unchanged."""
        s = "\U0001F40D \U0010FFFF \ufffd \u0800 \x7f"
        r = run(f"print({s!r})\n")
        assert r["stdout"] == s + "\n"

    def test_output_cap(self, run):
        """Past --max-output: output_limit, truncated, exactly cap bytes kept, a prefix."""
        r = run(
            "import sys\nfor i in range(2000):\n    print(f'line {i:05d}')\n",
            "--max-output", "1000",
        )
        full = "".join(f"line {i:05d}\n" for i in range(2000))
        assert r["status"] == "output_limit"
        assert r["truncated"] is True
        assert len(r["stdout"]) + len(r["stderr"]) == 1000
        assert r["stdout"] == full[:1000]
        assert r["output"] == r["stdout"]
        assert "1000" in r["message"]

    def test_output_cap_counts_both_streams(self, run):
        """The cap counts stdout and stderr together; each kept part is a prefix of its stream.
        (stderr is written first and given time to be read: how writes that
        alternate faster than the supervisor reads the two pipes are split
        between them is not specified, see docs/operations.md, Limits.)"""
        r = run(
            code("""
                import sys, time
                sys.stderr.write('e' * 500)
                sys.stderr.flush()
                time.sleep(0.3)
                for i in range(500):
                    print(f'o{i:04d}', flush=True)
            """),
            "--max-output", "777",
        )
        assert r["status"] == "output_limit"
        assert r["truncated"] is True
        assert r["stderr"] == "e" * 500
        assert len(r["stdout"]) == 277
        assert "".join(f"o{i:04d}\n" for i in range(500)).startswith(r["stdout"])
        assert len(r["output"]) == 777

    def test_output_cap_inside_utf8_character(self, run):
        """A cap that cuts a multi-byte character still yields valid JSON with the prefix."""
        r = run("print('\u00e9' * 10)\n", "--max-output", "5")
        assert r["status"] == "output_limit"
        assert r["stdout"] in ("\u00e9\u00e9", "\u00e9\u00e9\ufffd")

    def test_output_exactly_at_cap_is_ok(self, run):
        """Output of exactly --max-output bytes is not truncated."""
        r = run("import sys\nsys.stdout.write('x' * 500)\n", "--max-output", "500")
        assert r["status"] == "ok"
        assert r["truncated"] is False
        assert r["stdout"] == "x" * 500


# ---------------------------------------------------------------------------
# Verdicts
# ---------------------------------------------------------------------------


class TestStatuses:
    def test_syntax_error_line_and_column(self, run):
        """`x = (`: syntax_error with file, line and column."""
        r = run("print('never')\nx = (\n")
        assert r["status"] == "syntax_error"
        assert r["exitCode"] == 1
        assert r["stdout"] == ""
        assert "SyntaxError" in r["message"]
        assert "line 2" in r["message"]
        assert "column 5" in r["message"]
        assert "main.py" in r["message"]

    def test_syntax_error_column_in_indented_line(self, run):
        """The column counts from the start of the source line, indentation included."""
        r = run("if True:\n    x = (\n")
        assert r["status"] == "syntax_error"
        # '(' is the 9th character of '    x = ('; SyntaxError.offset is 9.
        assert r["message"] == "SyntaxError: '(' was never closed (main.py, line 2, column 9)"

    def test_syntax_error_column_in_nested_block(self, run):
        """Same in a function body: `  return 1 +` fails at column 13."""
        r = run("def f():\n  return 1 +\n")
        assert r["status"] == "syntax_error"
        assert r["message"] == "SyntaxError: invalid syntax (main.py, line 2, column 13)"

    def test_syntax_error_column_counts_characters(self, run):
        """The column counts characters, not UTF-8 bytes, like SyntaxError.offset."""
        r = run('x = "\u00e9\u00e9" + (\n')
        assert r["status"] == "syntax_error"
        assert r["message"] == "SyntaxError: '(' was never closed (main.py, line 1, column 12)"

    def test_indentation_error(self, run):
        """IndentationError is a syntax_error too."""
        r = run("if True:\nprint(1)\n")
        assert r["status"] == "syntax_error"
        assert "IndentationError" in r["message"]
        assert "line 2" in r["message"]

    def test_tab_error(self, run):
        """TabError (inconsistent tabs and spaces) is a syntax_error."""
        r = run("if True:\n        x = 1\n\ty = 2\n")
        assert r["status"] == "syntax_error"
        assert "TabError" in r["message"]
        assert "line 3" in r["message"]

    def test_syntax_error_in_imported_module(self, run, tmp_path):
        """A syntax error in a --file module imported by main is syntax_error naming that module."""
        h = write(tmp_path, "h.py", "x = 1\ndef f(:\n    pass\n")
        r = run("print('start', flush=True)\nimport helper\n", "--file", f"helper.py={h}")
        assert r["status"] == "syntax_error"
        assert r["stdout"] == "start\n"
        assert "helper.py" in r["message"]
        assert "line 2" in r["message"]
        assert "column 7" in r["message"]

    def test_eval_syntax_error_is_runtime_error(self, run):
        """eval('(') at run time is a runtime_error, not a syntax_error."""
        r = run("eval('(')\n")
        assert r["status"] == "runtime_error"
        assert r["exitCode"] == 1
        assert "SyntaxError" in r["stderr"]

    def test_raised_syntax_error_is_runtime_error(self, run):
        """A SyntaxError the program raises at run time (a parser exercise) is a runtime_error."""
        r = run(code("""
            def parse(tokens):
                if tokens.count('(') != tokens.count(')'):
                    raise SyntaxError('unbalanced parentheses')
            parse(['(', '1'])
        """))
        assert r["exitCode"] == 1
        assert r["stderr"].endswith("SyntaxError: unbalanced parentheses\n")
        assert r["status"] == "runtime_error"

    def test_wall_clock_timeout(self, run):
        """Sleeping past --timeout: timeout, message says wall-clock, killed promptly."""
        r = run("import time\nprint('start', flush=True)\ntime.sleep(10)\nprint('never')\n", "--timeout", "300")
        assert r["status"] == "timeout"
        assert "wall-clock" in r["message"]
        assert "300 ms" in r["message"]
        assert r["stdout"] == "start\n"
        assert r["exitCode"] is None
        assert r["signal"] == "SIGKILL"
        assert 250 <= r["time"]["wallMs"] < 3000
        assert r.returncode == 0

    def test_cpu_timeout(self, run):
        """A busy loop past --cpu-time (with a larger --timeout): timeout, message says CPU."""
        r = run("while True:\n    pass\n", "--cpu-time", "500", "--timeout", "8000")
        assert r["status"] == "timeout"
        assert "CPU" in r["message"]
        assert "wall-clock" not in r["message"]
        assert r["exitCode"] is None
        assert r["time"]["cpuMs"] >= 450
        assert r["time"]["wallMs"] < 7000

    def test_memory_limit(self, run):
        """Allocating well past --memory: memory_limit, message says memory."""
        r = run(
            "print('start', flush=True)\nx = b'x' * (300 * 1024 * 1024)\nprint('never')\n",
            "--memory", "64",
        )
        assert r["status"] == "memory_limit"
        assert "memory" in r["message"]
        assert "64 MB" in r["message"]
        assert r["stdout"] == "start\n"
        assert r["exitCode"] != 0

    def test_moderate_allocation_within_limit(self, run):
        """Allocating well within --memory is fine."""
        r = run("x = b'x' * (20 * 1024 * 1024)\nprint(len(x))\n", "--memory", "128")
        assert r["status"] == "ok", r["message"]
        assert r["stdout"] == f"{20 * 1024 * 1024}\n"

    def test_killed_by_signal(self, run):
        """A program that kills itself: runtime_error with the signal, no exit code."""
        r = run("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n")
        assert r["status"] == "runtime_error"
        assert r["exitCode"] is None
        assert r["signal"] == "SIGKILL"
        assert "SIGKILL" in r["message"]

    def test_background_child_does_not_outlive_main(self, run):
        """When main exits, a forked child still holding stdout is killed: the result is prompt."""
        r = run(code("""
            import os, time
            if os.fork() == 0:
                time.sleep(30)
                print('child never prints')
                os._exit(0)
            print('parent done')
        """), "--timeout", "20000")
        assert r["status"] == "ok"
        assert r["stdout"] == "parent done\n"
        assert r["time"]["wallMs"] < 5000

    def test_abort_is_sigabrt(self, run):
        """os.abort() is SIGABRT, a runtime_error."""
        r = run("import os\nos.abort()\n")
        assert r["status"] == "runtime_error"
        assert r["signal"] == "SIGABRT"

    @pytest.mark.parametrize(
        "src,opts",
        [
            ("raise ValueError\n", ()),
            ("x = (\n", ()),
            ("import time\ntime.sleep(5)\n", ("--timeout", "200")),
            ("print('x' * 100)\n", ("--max-output", "10")),
        ],
        ids=["runtime_error", "syntax_error", "timeout", "output_limit"],
    )
    def test_json_exit_code_zero_on_failure(self, run, src, opts):
        """With --json, pyexec exits 0 whatever the program did."""
        r = run(src, *opts)
        assert r["status"] != "ok"
        assert r.returncode == 0


# ---------------------------------------------------------------------------
# --test mode
# ---------------------------------------------------------------------------


class TestTestMode:
    def test_starter_module(self, run, tmp_path):
        """--test: the code is starter.py, the test file is main and imports it."""
        t = write(tmp_path, "test.py", code("""
            import os, sys
            import starter
            print(__name__, starter.__name__, starter.add(2, 3))
            print(sorted(f for f in os.listdir('.') if f.endswith('.py')))
        """))
        r = run("def add(a, b):\n    return a + b\n", "--test", t)
        assert r["status"] == "ok", r
        assert r["stdout"] == "__main__ starter 5\n['main.py', 'starter.py']\n"

    def test_starter_main_guard_not_run(self, run, tmp_path):
        """The starter's `if __name__ == '__main__'` block does not run when imported."""
        t = write(tmp_path, "test.py", "import starter\nprint('test ran')\n")
        r = run("if __name__ == '__main__':\n    print('starter main')\n", "--test", t)
        assert r["stdout"] == "test ran\n"

    def test_module_name(self, run, tmp_path):
        """--module NAME saves the code as NAME.py."""
        t = write(tmp_path, "test.py", "import solution\nprint(solution.VALUE)\nimport os\nprint(os.path.exists('starter.py'))\n")
        r = run("VALUE = 'from solution'\n", "--test", t, "--module", "solution")
        assert r["status"] == "ok", r
        assert r["stdout"] == "from solution\nFalse\n"

    def test_failing_assertion(self, run, tmp_path):
        """A failing assert in the test file is a runtime_error with AssertionError."""
        t = write(tmp_path, "test.py", "import starter\nassert starter.add(2, 2) == 5, 'wrong sum'\n")
        r = run("def add(a, b):\n    return a + b\n", "--test", t)
        assert r["status"] == "runtime_error"
        assert "AssertionError: wrong sum" in r["message"]

    def test_syntax_error_in_starter(self, run, tmp_path):
        """A syntax error in the tested code is a syntax_error naming starter.py."""
        t = write(tmp_path, "test.py", "import starter\n")
        r = run("def broken(:\n    pass\n", "--test", t)
        assert r["status"] == "syntax_error"
        assert "starter.py" in r["message"]
        assert "line 1" in r["message"]

    def test_module_without_test_is_usage_error(self, tmp_path):
        """--module without --test is a usage error."""
        prog = write(tmp_path, "p.py", "pass\n")
        p = pyexec("run", "--module", "solution", prog)
        assert p.returncode == EXIT_USAGE
        assert b"--module goes with --test" in p.stderr
        assert p.stdout == b""

    @pytest.mark.parametrize("name", ["main", "1abc", "a-b", "a.b", "", "x" * 65])
    def test_bad_module_names(self, tmp_path, name):
        """--module must be an identifier other than main."""
        prog = write(tmp_path, "p.py", "pass\n")
        t = write(tmp_path, "t.py", "pass\n")
        p = pyexec("run", "--test", t, "--module", name, prog)
        assert p.returncode == EXIT_USAGE
        assert b"--module must be a Python identifier" in p.stderr
        assert f"got '{name}'".encode() in p.stderr

    def test_file_colliding_with_starter(self, tmp_path):
        """A --file named like the tested module collides with the program's own file."""
        prog = write(tmp_path, "p.py", "pass\n")
        t = write(tmp_path, "t.py", "pass\n")
        p = pyexec("run", "--test", t, "--file", f"starter.py={prog}", prog)
        assert p.returncode == EXIT_USAGE
        assert b"starter.py" in p.stderr


# ---------------------------------------------------------------------------
# Without --json: pass-through and exit codes
# ---------------------------------------------------------------------------


class TestPlainMode:
    def test_passthrough_byte_exact(self, run_plain):
        """stdout and stderr pass through unchanged, invalid UTF-8 and NULs included."""
        p = run_plain(
            "import sys\nsys.stdout.buffer.write(b'out \\xff\\x00 \\xe2\\x9c\\x93\\n')\n"
            "sys.stderr.buffer.write(b'err \\x80\\x00\\n')\n"
        )
        assert p.returncode == 0
        assert p.stdout == b"out \xff\x00 \xe2\x9c\x93\n"
        assert p.stderr == b"err \x80\x00\n"

    def test_passthrough_matches_host(self, run_plain, tmp_path):
        """The same program gives the same bytes and exit code as python3 on the host."""
        src = code("""
            import sys
            print('häppy', 1, [2, 3])
            sys.stdout.write('no newline')
            print('warn', file=sys.stderr)
            sys.exit(7)
        """)
        host = host_run(tmp_path, src)
        p = run_plain(src)
        assert (p.returncode, p.stdout, p.stderr) == (host.returncode, host.stdout, host.stderr)
        assert p.returncode == 7

    @pytest.mark.parametrize("n", [0, 1, 3, 255])
    def test_exit_code(self, run_plain, n):
        """pyexec exits with the program's exit code."""
        p = run_plain(f"import sys\nsys.exit({n})\n")
        assert p.returncode == n
        assert p.stderr == b""

    def test_uncaught_exception_exit_1(self, run_plain):
        """An uncaught exception: exit 1 and the traceback on stderr, nothing from pyexec."""
        p = run_plain("raise RuntimeError('bad')\n")
        assert p.returncode == 1
        assert p.stderr.endswith(b"RuntimeError: bad\n")
        assert b"pyexec:" not in p.stderr

    def test_sigkill_is_137(self, run_plain):
        """Killed by SIGKILL: 128 + 9."""
        p = run_plain("import os\nprint('x', flush=True)\nos.kill(os.getpid(), 9)\n")
        assert p.returncode == 137
        assert p.stdout == b"x\n"

    def test_sigsegv_is_139(self, run_plain):
        """A segfault: 128 + SIGSEGV."""
        p = run_plain("import ctypes\nctypes.string_at(0)\n")
        assert p.returncode == 139

    def test_keyboard_interrupt_is_130(self, run_plain):
        """raise KeyboardInterrupt: 128 + SIGINT, like a shell reports for python3."""
        p = run_plain("raise KeyboardInterrupt\n")
        assert p.returncode == 130

    def test_syntax_error_exit_1(self, run_plain):
        """A syntax error exits 1 with Python's own message only."""
        p = run_plain("x = (\n")
        assert p.returncode == 1
        assert p.stderr.endswith(b"SyntaxError: '(' was never closed\n")
        assert b"pyexec:" not in p.stderr

    def test_timeout_verdict(self, run_plain):
        """Wall-clock limit: exit 124 and exactly one `pyexec: timeout: ...` line."""
        p = run_plain("import time\nprint('a', flush=True)\ntime.sleep(10)\n", "--timeout", "200")
        assert p.returncode == EXIT_TIMEOUT
        assert p.stdout == b"a\n"
        lines = p.stderr.decode().splitlines()
        assert len(lines) == 1 and p.stderr.endswith(b"\n")
        assert lines[0].startswith("pyexec: timeout: ")
        assert "wall-clock" in lines[0]

    def test_cpu_timeout_verdict(self, run_plain):
        """CPU limit: exit 124, one line that says CPU."""
        p = run_plain("while True:\n    pass\n", "--cpu-time", "300", "--timeout", "8000")
        assert p.returncode == EXIT_TIMEOUT
        lines = p.stderr.decode().splitlines()
        assert len(lines) == 1
        assert lines[0].startswith("pyexec: timeout: ")
        assert "CPU" in lines[0]

    def test_memory_verdict(self, run_plain):
        """Memory limit: exit 122 and one `pyexec: memory_limit: ...` line last on stderr."""
        p = run_plain("x = b'x' * (300 * 1024 * 1024)\n", "--memory", "64")
        assert p.returncode == EXIT_MEMORY
        lines = p.stderr.decode().splitlines()
        # Under RLIMIT_AS the program's own MemoryError traceback comes first.
        assert lines[-1].startswith("pyexec: memory_limit: ")
        assert sum(l.startswith("pyexec:") for l in lines) == 1

    def test_output_verdict(self, run_plain):
        """Output cap: exit 123, the prefix on stdout, one `pyexec: output_limit: ...` line."""
        p = run_plain("print('y' * 5000)\n", "--max-output", "100")
        assert p.returncode == EXIT_OUTPUT
        assert p.stdout == b"y" * 100
        lines = p.stderr.decode().splitlines()
        assert len(lines) == 1
        assert lines[0].startswith("pyexec: output_limit: ")

    def test_program_from_stdin(self):
        """`-` reads the program from pyexec's stdin."""
        p = pyexec("run", "--arg", "a1", "-", stdin=b"import sys\nprint('from stdin', sys.argv[1:], __name__)\n")
        assert p.returncode == 0, p.stderr
        assert p.stdout == b"from stdin ['a1'] __main__\n"

    def test_program_from_stdin_json(self):
        """`-` works with --json too; the program's own stdin stays empty."""
        p = pyexec("run", "--json", "-", stdin=b"import sys\nprint(repr(sys.stdin.read()))\n")
        assert p.returncode == 0
        r = json.loads(p.stdout)
        assert r["status"] == "ok"
        assert r["stdout"] == "''\n"

    def test_stdin_dash_feeds_program(self, tmp_path):
        """`--stdin -` gives the program pyexec's own stdin."""
        prog = write(tmp_path, "rev.py", "print(input()[::-1])\n")
        p = pyexec("run", "--stdin", "-", prog, stdin=b"hello\n")
        assert p.returncode == 0
        assert p.stdout == b"olleh\n"

    def test_json_is_one_line(self, run_plain):
        """--json prints exactly one JSON document followed by a newline on stdout."""
        p = pyexec("run", "--json", "-", stdin=b"print('a\\nb')\n")
        assert p.stdout.endswith(b"\n")
        assert p.stdout.count(b"\n") == 1
        assert json.loads(p.stdout)["stdout"] == "a\nb\n"
        assert p.stderr == b""


# ---------------------------------------------------------------------------
# Usage errors
# ---------------------------------------------------------------------------


def usage(*args, stdin=None):
    """Run pyexec expecting a usage error; returns its stderr text."""
    p = pyexec(*args, stdin=stdin)
    assert p.returncode == EXIT_USAGE, (p.returncode, p.stderr)
    assert p.stdout == b""
    return p.stderr.decode()


@pytest.fixture
def prog(tmp_path):
    return str(write(tmp_path, "prog.py", "print('should not run')\n"))


LIMIT_RANGES = [
    ("timeout", 1, 600000, " (ms)"),
    ("cpu-time", 1, 600000, " (ms)"),
    ("memory", 16, 4096, " (MB)"),
    ("max-output", 1, 67108864, " (bytes)"),
    ("pids", 1, 4096, ""),
    ("disk", 1, 1024, " (MB)"),
    ("file-size", 1, 1024, " (MB)"),
    ("open-files", 16, 4096, ""),
]


class TestUsageErrors:
    def test_unknown_option(self, prog):
        err = usage("run", "--bogus", prog)
        assert "unknown option '--bogus'" in err
        assert "usage: pyexec run" in err

    def test_unknown_command(self):
        p = pyexec("frobnicate")
        assert p.returncode == EXIT_USAGE
        assert b"unknown command 'frobnicate'" in p.stderr

    def test_no_command(self):
        p = pyexec()
        assert p.returncode == EXIT_USAGE
        assert b"usage:" in p.stderr

    def test_missing_value(self):
        err = usage("run", "--timeout")
        assert "option '--timeout' needs a value" in err

    @pytest.mark.parametrize("opt,lo,hi,unit", LIMIT_RANGES)
    def test_limit_below_range(self, prog, opt, lo, hi, unit):
        """A value below the minimum names the option and the allowed range."""
        err = usage("run", f"--{opt}", str(lo - 1), prog)
        assert f"--{opt} must be a whole number between {lo} and {hi}{unit}, got '{lo - 1}'" in err

    @pytest.mark.parametrize("opt,lo,hi,unit", LIMIT_RANGES)
    def test_limit_above_range(self, prog, opt, lo, hi, unit):
        """A value above the maximum names the option and the allowed range."""
        err = usage("run", f"--{opt}", str(hi + 1), prog)
        assert f"--{opt} must be a whole number between {lo} and {hi}{unit}, got '{hi + 1}'" in err

    def test_memory_message_exact(self, prog):
        err = usage("run", "--memory", "100000", prog)
        assert err.startswith("pyexec run: --memory must be a whole number between 16 and 4096 (MB), got '100000'\n")

    @pytest.mark.parametrize("bad", ["12abc", "-5", "1e3", "", " 5", "5 ", "+5", "0x10", "1.5", "99999999999999999999999"])
    def test_non_numeric_values(self, prog, bad):
        """Anything but plain decimal digits in range is refused, naming the value."""
        err = usage("run", "--timeout", bad, prog)
        assert f"--timeout must be a whole number between 1 and 600000 (ms), got '{bad}'" in err

    def test_limit_boundaries_accepted(self, run):
        """The range ends themselves are accepted."""
        r = run("pass\n", "--memory", "4096", "--pids", "4096", "--open-files", "16", "--disk", "1",
                "--file-size", "1", "--max-output", "1")
        assert r["status"] == "ok", r
        assert r["limits"]["memoryMb"] == 4096
        assert r["limits"]["openFiles"] == 16

    @pytest.mark.parametrize("spec", ["../x=PATH", "a/b=PATH", ".=PATH", "..=PATH", "/abs=PATH", "tab\there=PATH"])
    def test_file_bad_names(self, prog, spec):
        """--file names must be plain file names."""
        spec = spec.replace("PATH", prog)
        name = spec.split("=")[0]
        err = usage("run", "--file", spec, prog)
        assert f"--file name '{name}' must be a plain file name" in err

    @pytest.mark.parametrize("spec", ["", "noequals", "=PATH", "name="])
    def test_file_malformed(self, prog, spec):
        """--file needs NAME=PATH with both parts."""
        spec = spec.replace("PATH", prog)
        err = usage("run", "--file", spec, prog)
        assert f"--file takes NAME=PATH, got '{spec}'" in err

    def test_file_missing_path(self, prog):
        err = usage("run", "--file", "data.txt=/nonexistent/file", prog)
        assert "/nonexistent/file" in err
        assert "No such file or directory" in err

    def test_file_named_main_py(self, prog):
        """A --file called main.py collides with the program."""
        err = usage("run", "--file", f"main.py={prog}", prog)
        assert "main.py" in err
        assert "collides" in err

    def test_file_given_twice(self, prog):
        err = usage("run", "--file", f"a.txt={prog}", "--file", f"a.txt={prog}", prog)
        assert "'a.txt' is given twice" in err

    def test_too_many_args(self, run, prog):
        """256 --arg options are accepted, 257 are not."""
        opts = [f"--arg={i}" for i in range(256)]
        r = run("import sys\nprint(len(sys.argv))\n", *opts)
        assert r["stdout"] == "257\n"
        err = usage("run", *opts, "--arg=x", prog)
        assert "at most 256 --arg options" in err

    def test_missing_program(self):
        err = usage("run", "--json")
        assert "a program FILE (or - for stdin) is required" in err

    def test_nonexistent_program(self):
        err = usage("run", "/nonexistent/prog.py")
        assert "cannot read program '/nonexistent/prog.py'" in err

    def test_two_programs(self, prog, tmp_path):
        other = write(tmp_path, "other.py", "pass\n")
        err = usage("run", prog, str(other))
        assert f"exactly one program FILE is allowed, got '{other}' as well" in err

    def test_nonexistent_stdin_file(self, prog):
        err = usage("run", "--stdin", "/nonexistent/in.txt", prog)
        assert "cannot read --stdin file '/nonexistent/in.txt'" in err

    def test_python_relative(self, prog):
        err = usage("run", "--python", "python3", prog)
        assert "--python must be an absolute path, got 'python3'" in err

    def test_python_nonexistent(self, prog):
        err = usage("run", "--python", "/nonexistent/python3", prog)
        assert "--python '/nonexistent/python3' is not an executable file" in err

    def test_python_outside_usr(self, prog, tmp_path):
        """An interpreter outside /usr is refused: the sandbox cannot see it."""
        fake = write(tmp_path, "python3", "#!/bin/sh\nexit 0\n")
        fake.chmod(0o755)
        err = usage("run", "--python", str(fake), prog)
        assert f"--python '{fake}' resolves to '{os.path.realpath(fake)}', outside /usr" in err

    def test_help(self):
        p = pyexec("run", "--help")
        assert p.returncode == 0
        assert p.stdout.startswith(b"usage: pyexec run")


# ---------------------------------------------------------------------------
# pyexec check
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def check_json():
    p = pyexec("check", "--json")
    assert p.returncode == 0, p.stdout.decode() + p.stderr.decode()
    return json.loads(p.stdout)


class TestCheck:
    def test_human(self):
        """`pyexec check` exits 0 and reports python, seccomp and cgroups."""
        p = pyexec("check")
        assert p.returncode == 0, p.stdout
        out = p.stdout.decode()
        assert re.search(r"^python: .*3\.\d+", out, re.M)
        assert re.search(r"^seccomp: +yes", out, re.M)
        assert re.search(r"^cgroup:", out, re.M)
        assert "self-test:        passed" in out
        assert "ok: the sandbox can run here" in out

    def test_json_report(self, check_json, privileged):
        """`pyexec check --json`: ok, python 3, a passing self-test with no network."""
        r = check_json
        assert r["ok"] is True
        assert r["problems"] == []
        assert r["privileged"] is privileged
        assert r["python"]["available"] is True
        assert r["python"]["version"].startswith("3.")
        assert r["seccomp"]["available"] is True
        assert r["seccomp"]["rules"] > 0
        st = r["selfTest"]
        assert st["ok"] is True
        assert st["status"] == "ok"
        assert st["inside"]["network"] != "reachable"
        assert st["inside"]["hostname"] == "sandbox"
        assert st["inside"]["hostVisible"] == []

    def test_json_limits(self, check_json):
        """Every limit is listed with its range, default and what enforces it."""
        lims = {l["name"]: l for l in check_json["limits"]}
        assert set(lims) == {o for o, *_ in LIMIT_RANGES}
        for opt, lo, hi, _ in LIMIT_RANGES:
            assert lims[opt]["min"] == lo
            assert lims[opt]["max"] == hi
            assert isinstance(lims[opt]["enforcedBy"], str) and lims[opt]["enforcedBy"]
        assert lims["memory"]["default"] == 128
        assert lims["timeout"]["default"] == 10000

    def test_json_identity(self, check_json, privileged):
        """Unprivileged runs use user namespaces; root runs use a uid range."""
        us = check_json["userNamespaces"]
        if privileged:
            assert us["usedForRuns"] is False
            assert check_json["uids"]["base"] >= 1900000000
            assert check_json["uids"]["count"] > 0
            assert check_json["selfTest"]["inside"]["uid"] >= 1900000000
        else:
            assert us["usedForRuns"] is True
            assert us["available"] is True
            assert check_json["selfTest"]["inside"]["uid"] == 1000

    def test_check_bad_argument(self):
        p = pyexec("check", "--bogus")
        assert p.returncode == EXIT_USAGE
        assert b"unknown argument '--bogus'" in p.stderr


def test_stdin_can_feed_only_one_of_program_and_stdin():
    """`-` for both the program and --stdin would hand the program an empty
    stdin silently: it is a usage error naming the clash."""
    p = pyexec("run", "--stdin", "-", "-", stdin=b"print(1)\n")
    assert p.returncode == 2
    assert b"only one of the program, --test and --stdin can be '-'" in p.stderr


def test_job_and_check_options_missing_their_value():
    p = pyexec("job", "list", "--jobs")
    assert p.returncode == 2 and b"option '--jobs' needs a file" in p.stderr
    p = pyexec("check", "--python")
    assert p.returncode == 2 and b"option '--python' needs a path" in p.stderr
