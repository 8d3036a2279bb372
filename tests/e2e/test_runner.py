"""Differential tests of the embedded runner against `python3 main.py`.

Each program runs twice: (a) as `/usr/bin/python3 main.py ARGS` on the host,
in a fresh directory that holds main.py and the program's other files, with
cwd that directory and a small environment (LANG=C.UTF-8, HOME that
directory), and (b) through `pyexec run --json`, where it is /sandbox/main.py
run by the embedded CPython (src/runner/runner.c). The runner must reproduce the
first exactly: stdout, stderr (with the host directory's path read as
/sandbox, and object addresses blanked) and the exit status (code, or the
signal that killed it) are compared.

Every program runs with no --policy and with --policy permissive; those that
import only modules the education policy allows run under it too, with the
same expected result.

Where the sandbox legitimately differs from the host (cwd string, HOME,
user, pid, hostname), the sandbox's value is asserted explicitly instead
(test_sandbox_*).
"""
import os
import re
import signal
import subprocess

import pytest

from conftest import SANDBOX_LIBRARY_ENV

HOST_PYTHON = "/usr/bin/python3"
SANDBOX_DIR = "/sandbox"

pytestmark = pytest.mark.skipif(not os.access(HOST_PYTHON, os.X_OK), reason="needs /usr/bin/python3 on the host")


# ---- the cases -------------------------------------------------------------


class Case:
    def __init__(self, id, code, args=(), stdin=None, files=None, education=False, merged=False, status=None,
                 subs=(), xfail=None, timeout=60):
        self.id = id
        self.code = code
        self.args = tuple(args)
        self.stdin = stdin  # bytes or None (then stdin is /dev/null on the host)
        self.files = files or {}  # name -> str|bytes, beside main.py
        self.education = education  # imports only what the education policy allows
        self.merged = merged  # also compare `output` with python3's 2>&1 output
        self.status = status  # expected "status" when not the ok/runtime_error default
        self.subs = subs  # extra (regex, replacement) normalizations, for timing
        self.xfail = xfail  # reason: a known product bug
        self.timeout = timeout


CASES = []


def case(*a, **kw):
    CASES.append(Case(*a, **kw))


# sys.argv, __main__, sys.path, sys.executable

case("argv", r"""
import sys
print(sys.argv)
print(len(sys.argv))
for a in sys.argv[1:]:
    print(repr(a), len(a), len(a.encode()))
""", args=["plain", "with space", "  two  spaces  ", "ünïcødé", "日本語", "emoji 🐍🎉", "", "-x", "--flag=1",
           "a\tb", 'quo"te', "$HOME", "*", "-c", "main.py"], education=True)

case("argv-none", "import sys\nprint(sys.argv, sys.orig_argv[1:])\n", education=True)

case("argv-mutable", r"""
import sys
sys.argv.append("added")
sys.argv[0] = "renamed"
print(sys.argv)
""", args=["x"], education=True)

case("main-identity", r"""
import os, sys
print(__name__)
print(__file__, os.path.isabs(__file__), os.path.basename(__file__))
print(sys.path[0], sys.path[0] == os.path.dirname(__file__))
print(sys.argv[0])
print(sys.executable, sys._base_executable)
print(sys.orig_argv)
print(__package__, __spec__, __doc__, __cached__)
print(type(__loader__).__name__, __loader__.name, __loader__.path)
print(type(__builtins__).__name__, __builtins__.__name__)
print(sys._getframe().f_back, sys._getframe().f_code.co_filename, sys._getframe().f_code.co_name)
print(sys._getframe().f_globals is globals())
""", args=["one", "two words", "ü"], education=True)

case("main-globals", "print(sorted(globals()))\n", education=True)

case("main-annotations", "print(__annotations__)\n", education=True)

case("main-annotations-declared", "x: int = 1\nprint(__annotations__)\n", education=True)

case("main-module", r"""
import sys
import __main__
print(__main__.__dict__ is globals(), sys.modules["__main__"] is __main__)
print(__main__.__file__, __main__.__name__, __main__.__spec__)
print(repr(__main__).replace(__main__.__file__, "FILE"))
def f():
    return 1
print(f.__module__, f.__qualname__, f.__code__.co_filename)
class C:
    pass
print(C.__module__, repr(C))
import pickle
class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y
p = pickle.loads(pickle.dumps(Point(1, 2)))
print(type(p).__module__, p.x, p.y)
""")

case("sys-config", r"""
import sys
print(sys.path)
print(sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix, sys.platlibdir)
print(sys.flags)
print(sys.warnoptions, sys._xoptions)
print(sys.dont_write_bytecode, sys.pycache_prefix)
print(sys.getrecursionlimit(), sys.getswitchinterval(), sys.get_int_max_str_digits())
print(sys.gettrace(), sys.getprofile())
print(hasattr(sys, "ps1"), hasattr(sys, "last_value"), sys.meta_path and [type(m).__name__ for m in sys.meta_path])
print([type(h).__name__ if not isinstance(h, type) else h.__name__ for h in sys.path_hooks])
print(sys.version_info[:2], sys.implementation.name, sys.platform, sys.byteorder)
print(sys.getdefaultencoding(), sys.getfilesystemencoding(), sys.getfilesystemencodeerrors())
print(sys.stdin.isatty(), sys.stdout.isatty(), sys.stderr.isatty())
""", education=True)

case("sys-modules-site", r"""
import sys
# what python3 has imported by the time main.py starts, among the modules a
# program may test for
for m in ["site", "os", "codecs", "io", "abc", "encodings", "_distutils_hack", "sitecustomize", "usercustomize"]:
    print(m, m in sys.modules)
""", education=True)

case("gc-threads-state", r"""
import gc, threading, sys
print(gc.isenabled(), gc.get_threshold())
print(threading.current_thread() is threading.main_thread(), threading.current_thread().name)
print(threading.active_count(), [t.name for t in threading.enumerate()])
print(threading.get_ident() == threading.main_thread().ident)
""")

case("signals-and-fds", r"""
import os, signal
fds = []
for fd in range(1024):
    try:
        os.fstat(fd)
        if fd > 2 and os.readlink(f"/proc/self/fd/{fd}").startswith("pipe:"):
            continue  # pyexec's images pipe, which python3 lacks (test_images.py)
        fds.append(fd)
    except OSError:
        pass
print("open fds", fds)
print({s.name: str(signal.getsignal(s)) for s in signal.valid_signals()
       if isinstance(s, signal.Signals) and signal.getsignal(s) is not signal.SIG_DFL})
print("blocked", signal.pthread_sigmask(signal.SIG_BLOCK, []))
print("pending", signal.sigpending())
""")

case("builtins-from-site", r"""
print(repr(exit), repr(quit))
print(type(exit).__name__, type(help).__name__, type(copyright).__name__, type(credits).__name__)
print(str(license)[:40])
""", education=True)

case("inspect-own-source", r"""
import inspect, sys
def greet(name):
    return "hello " + name
print(inspect.getsource(greet), end="")
print(inspect.getfile(greet))
print(inspect.getsourcelines(greet)[1])
print(len(inspect.stack()), inspect.stack()[0].filename, inspect.stack()[0].function)
print(inspect.getmodule(greet).__name__)
""", education=True)

case("print-stack", r"""
import traceback
def a():
    b()
def b():
    traceback.print_stack()
a()
""", education=True)

# exit statuses

case("exit-end", "print('done')\n", education=True)
case("exit-empty-program", "", education=True)
case("exit-3", "import sys\nprint('before')\nsys.exit(3)\nprint('after')\n", education=True)
case("exit-0", "import sys\nprint('before')\nsys.exit(0)\nprint('after')\n", education=True)
case("exit-none", "import sys\nsys.exit(None)\n", education=True)
case("exit-noarg", "import sys\nsys.exit()\n", education=True)
case("exit-message", "import sys\nprint('out')\nsys.exit('fatal: it went wrong ü')\n", education=True)
case("exit-empty-message", "import sys\nsys.exit('')\n", education=True)
case("exit-true", "import sys\nsys.exit(True)\n", education=True)
case("exit-false", "import sys\nsys.exit(False)\n", education=True)
case("exit-masked", "raise SystemExit(256 + 5)\n", education=True)
case("exit-negative", "import sys\nsys.exit(-1)\n", education=True)
case("exit-256", "import sys\nsys.exit(256)\n", education=True)
case("exit-big-truncated", "import sys\nsys.exit(2**40 + 7)\n", education=True)
case("exit-overflow", "import sys\nsys.exit(2**70)\n", education=True)
case("exit-float", "import sys\nsys.exit(3.5)\n", education=True)
case("exit-list", "import sys\nsys.exit(['a', 1])\n", education=True)
case("exit-two-args", "raise SystemExit(1, 2)\n", education=True)
case("exit-subclass", "class MyExit(SystemExit):\n    pass\nraise MyExit(6)\n", education=True)
case("exit-int-subclass", r"""
import sys
class Code(int):
    def __str__(self):
        return "code!"
sys.exit(Code(9))
""", education=True)
case("exit-str-subclass", r"""
import sys
class Msg(str):
    pass
sys.exit(Msg("custom message"))
""", education=True)
case("exit-builtin-exit", "print('x')\nexit(4)\n", education=True)
case("exit-builtin-quit", "quit()\nprint('not reached')\n", education=True)
case("exit-finally-runs", r"""
import sys
try:
    sys.exit(2)
finally:
    print("finally ran")
""", education=True)
case("exit-caught", r"""
import sys
try:
    sys.exit(2)
except SystemExit as e:
    print("caught", e.code)
print("still running")
""", education=True)
case("exit-in-function", r"""
import sys
def main():
    print("main")
    return 11
if __name__ == "__main__":
    sys.exit(main())
""", education=True)
case("exit-in-thread-ignored", r"""
import sys, threading
t = threading.Thread(target=sys.exit, args=(4,))
t.start()
t.join()
print("main continues")
""", education=True)
case("exit-message-in-thread-ignored", r"""
import sys, threading
t = threading.Thread(target=sys.exit, args=("thread message",))
t.start()
t.join()
print("main continues")
""", education=True)
case("os-exit-in-thread", r"""
import os, threading
print("a", flush=True)
t = threading.Thread(target=os._exit, args=(9,))
t.start()
t.join()
print("b")
""", education=True)
case("os-exit-unflushed", "import os\nprint('x', end='')\nos._exit(7)\n", education=True)
case("os-exit-unflushed-stderr", "import os, sys\nsys.stderr.write('partial')\nos._exit(0)\n", education=True)
case("os-exit-flushed", "import os, sys\nprint('x', flush=True)\nos._exit(7)\n", education=True)
# A line not ended is lost, as under python3 (complete lines are kept:
# test_output_kept.py).
case("os-abort", "import os\nprint('lost', end='')\nos.abort()\n", education=True)
case("sigterm-self", "import signal\nprint('lost', end='')\nsignal.raise_signal(signal.SIGTERM)\n")
case("sigkill-self", "import os, signal\nprint('lost', end='')\nos.kill(os.getpid(), signal.SIGKILL)\n")
case("sigusr1-handler", r"""
import signal
def h(sig, frame):
    print("handled", signal.Signals(sig).name, frame.f_code.co_name)
signal.signal(signal.SIGUSR1, h)
signal.raise_signal(signal.SIGUSR1)
print("after")
""")
case("sigalrm-raises", r"""
import signal, time
class Timeout(Exception):
    pass
def h(sig, frame):
    raise Timeout("too slow")
signal.signal(signal.SIGALRM, h)
signal.setitimer(signal.ITIMER_REAL, 0.05)
time.sleep(5)
""")

# uncaught exceptions

case("uncaught", r"""
def f(x):
    return g(x) + 1

def g(x):
    return {"a": 1}[x]

print("start")
f("b")
print("not reached")
""", education=True)

case("uncaught-chained-cause", r"""
def parse(s):
    try:
        return int(s)
    except ValueError as e:
        raise RuntimeError("conversion failed") from e
parse("x")
""", education=True)

case("uncaught-chained-context", r"""
try:
    [][1]
except IndexError:
    {}["k"]
""", education=True)

case("uncaught-suppressed-context", r"""
try:
    [][1]
except IndexError:
    raise KeyError("k") from None
""", education=True)

case("uncaught-exception-group", r"""
def f():
    raise ExceptionGroup("several", [ValueError(1), TypeError("two"), ExceptionGroup("inner", [OSError(3)])])
f()
""", education=True)

case("uncaught-notes", r"""
e = ValueError("bad value")
e.add_note("first note")
e.add_note("second note ü")
raise e
""", education=True)

case("uncaught-bad-str", r"""
class E(Exception):
    def __str__(self):
        raise RuntimeError("no str")
raise E()
""", education=True)

case("uncaught-custom-module-exception", r"""
class AppError(Exception):
    pass
raise AppError("custom")
""", education=True)

case("uncaught-recursion", "def r(n):\n    return r(n + 1)\nr(0)\n", education=True)

case("uncaught-name-error-suggestion", "values = [1]\nprint(valuse)\n", education=True)
case("uncaught-attribute-suggestion", "import math\nmath.sqr(2)\n", education=True)
case("uncaught-syntax-error-runtime", "compile('x = = 1', 'snippet', 'exec')\n", education=True)
case("uncaught-exec-string", "exec('def f():\\n    1/0\\nf()')\n", education=True)

case("uncaught-after-stdout", r"""
import sys
print("line 1")
sys.stdout.write("partial")
raise ValueError("boom")
""", education=True)

case("uncaught-unicode", "raise ValueError('ünïcødé 日本語 🐍')\n", education=True)

case("keyboard-interrupt-raised", "print('before')\nraise KeyboardInterrupt\n", education=True)
case("keyboard-interrupt-signal", r"""
import signal, time
print("before")
signal.raise_signal(signal.SIGINT)
time.sleep(5)
""")
case("keyboard-interrupt-caught", r"""
try:
    raise KeyboardInterrupt
except KeyboardInterrupt:
    print("caught")
""", education=True)
case("keyboard-interrupt-subclass", r"""
class Stop(KeyboardInterrupt):
    pass
raise Stop("stopping")
""", education=True)
case("keyboard-interrupt-custom-hook", r"""
import sys
sys.excepthook = lambda t, v, tb: print("hook:", t.__name__, file=sys.stderr)
raise KeyboardInterrupt
""", education=True)

# exit-time behavior: atexit, threads, excepthook, finalizers

case("atexit-order", r"""
import atexit, sys
def a():
    print("atexit a")
def b(n, *, tag=""):
    print("atexit b", n, tag)
atexit.register(a)
atexit.register(b, 1)
atexit.register(b, 2, tag="kw")
@atexit.register
def c():
    print("atexit c to stderr", file=sys.stderr)
def never():
    print("unregistered")
atexit.register(never)
atexit.unregister(never)
print("main done")
""")

case("atexit-with-exit-code", r"""
import atexit, sys
atexit.register(print, "atexit ran")
sys.exit(3)
""")

case("atexit-after-exception", r"""
import atexit, sys
atexit.register(print, "atexit ran", file=sys.stderr)
atexit.register(print, "atexit stdout")
raise ValueError("boom")
""")

case("atexit-raises", r"""
import atexit
def bad():
    raise ValueError("in atexit")
atexit.register(print, "runs after")
atexit.register(bad)
atexit.register(print, "runs first")
""")

case("atexit-system-exit", r"""
import atexit, sys
def bye():
    sys.exit(5)
atexit.register(bye)
print("main")
""")

case("atexit-not-after-os-exit", r"""
import atexit, os, sys
atexit.register(print, "must not run")
sys.stdout.flush()
os._exit(0)
""")

case("atexit-after-keyboard-interrupt", r"""
import atexit
atexit.register(print, "atexit ran")
raise KeyboardInterrupt
""")

case("atexit-after-threads", r"""
import atexit, threading, time
atexit.register(print, "atexit")
def w():
    time.sleep(0.3)
    print("thread")
threading.Thread(target=w).start()
print("main")
""")

case("thread-nondaemon-awaited", r"""
import threading, time
def w(n):
    time.sleep(0.3)
    print("worker", n, "done")
for i in range(3):
    threading.Thread(target=w, args=(i,), name=f"w{i}").start()
    time.sleep(0.05)
print("main done")
""", education=True)

case("thread-daemon-not-awaited", r"""
import threading, time
def w():
    time.sleep(5)
    print("daemon finished (must not appear)")
threading.Thread(target=w, daemon=True).start()
print("main done")
""", education=True)

case("thread-exception", r"""
import threading
def work():
    raise ValueError("in thread")
t = threading.Thread(target=work)
t.start()
t.join()
print("main still exits 0")
""", education=True)

case("thread-excepthook-custom", r"""
import sys, threading
def hook(args):
    print("thread hook:", args.exc_type.__name__, args.exc_value, args.thread.name, file=sys.stderr)
threading.excepthook = hook
t = threading.Thread(target=lambda: 1 / 0, name="calc")
t.start()
t.join()
""", education=True)

case("main-raises-thread-still-awaited", r"""
import threading, time
def w():
    time.sleep(0.3)
    print("thread finished")
threading.Thread(target=w).start()
raise RuntimeError("main failed")
""", education=True)

case("excepthook-custom", r"""
import sys
def hook(t, v, tb):
    print("custom:", t.__name__, v, tb.tb_frame.f_code.co_filename, tb.tb_lineno, file=sys.stderr)
sys.excepthook = hook
print("x")
raise ValueError("boom")
""", education=True)

case("excepthook-custom-stdout", r"""
import sys
sys.excepthook = lambda t, v, tb: print("handled on stdout:", v)
raise LookupError("missing")
""", education=True)

case("excepthook-raises", r"""
import sys
def hook(t, v, tb):
    raise RuntimeError("hook broke")
sys.excepthook = hook
raise ValueError("original")
""", education=True)

case("excepthook-none", r"""
import sys
sys.excepthook = None
raise ValueError("original")
""", education=True)

case("excepthook-deleted", r"""
import sys
del sys.excepthook
raise ValueError("original")
""", education=True)

case("excepthook-system-exit", r"""
import sys
def hook(t, v, tb):
    print("hook exits", file=sys.stderr)
    sys.exit(42)
sys.excepthook = hook
raise ValueError("x")
""", education=True)

case("del-at-exit", r"""
class Noisy:
    def __init__(self, name):
        self.name = name
    def __del__(self):
        print("del", self.name)
a = Noisy("a")
b = Noisy("b")
c = Noisy("c")
items = [Noisy("in list")]
print("main done")
""", education=True)

case("del-cycle-at-exit", r"""
class Node:
    def __init__(self, name):
        self.name = name
        self.other = None
    def __del__(self):
        print("del", self.name)
x = Node("x")
y = Node("y")
x.other, y.other = y, x
del x, y
print("main done")
""", education=True)

case("del-raises-at-exit", r"""
class Bad:
    def __del__(self):
        raise ValueError("in __del__")
obj = Bad()
print("main done")
""", education=True)

case("del-uses-module-globals", r"""
import sys
GREETING = "bye"
class Late:
    def __del__(self):
        print(GREETING, sys is not None)
late = Late()
""", education=True)

case("weakref-finalize-at-exit", r"""
import weakref
class Thing:
    pass
t = Thing()
weakref.finalize(t, print, "finalized at exit")
print("main done")
""", education=True)

case("flush-fails-at-exit", r"""
import sys
class W:
    def write(self, s):
        return len(s)
    def flush(self):
        raise ValueError("cannot flush")
sys.stdout = W()
print("swallowed")
sys.exit(3)
""", education=True)

case("flush-fails-at-exit-code-0", r"""
import sys
class W:
    def write(self, s):
        return len(s)
    def flush(self):
        raise ValueError("cannot flush")
sys.stdout = W()
""", education=True)

case("stdout-closed", r"""
import sys
print("visible")
sys.stdout.close()
print("x", file=sys.stderr)
""", education=True)

case("stdout-none", r"""
import sys
sys.stdout = None
print("dropped")
print("to stderr", file=sys.stderr)
""", education=True)

case("exit-flushes-replaced-stdout", r"""
import io, sys
print("written to the real stdout, still buffered")
sys.stdout = io.StringIO()
print("into the StringIO")
""", education=True)

case("exit-flushes-helper-file", r"""
import helper
helper.log.write("buffered in a helper's file object\n")
print("main")
""", files={"helper.py": "import sys\nlog = open(sys.stdout.fileno(), 'w', closefd=False)\n"}, education=True)

case("logging-at-exit", r"""
import logging
logging.basicConfig(format="%(levelname)s:%(name)s:%(message)s")
logging.warning("careful %s", "ü")
logging.getLogger("app").error("failed")
""")

# UTF-8 and stdio

case("utf8-print", r"""
import sys
print("héllo wörld", "日本語", "emoji 🐍🎉👩‍👩‍👧", "עברית", "e\u0301", "\u00a0nbsp")
print("stderr ünïcødé ✓", file=sys.stderr)
print(len("🐍"), len("🐍".encode()))
""", education=True)

case("utf8-stdio-encodings", r"""
import sys
for name in ("stdin", "stdout", "stderr"):
    f = getattr(sys, name)
    # stdout is flushed at each newline (test_output_kept.py)
    lb = f.line_buffering if name != "stdout" else "-"
    print(name, f.encoding, f.errors, lb, f.write_through, repr(f.newlines), f.name, f.fileno(),
          type(f).__name__, type(f.buffer).__name__, type(f.buffer.raw).__name__, f.buffer.raw.mode)
print(sys.flags.utf8_mode, sys.getfilesystemencoding())
""", education=True)

case("utf8-locale", r"""
import locale, sys
print(locale.getpreferredencoding(False), locale.getencoding(), locale.setlocale(locale.LC_ALL))
print(locale.getlocale())
""")

case("utf8-surrogate-print", "print('a\\udce9b')\n", education=True)
case("utf8-buffer-write", r"""
import sys
sys.stdout.buffer.write("raw ünï\n".encode())
sys.stdout.flush()
print("after")
""", education=True)
case("utf8-file-default-encoding", r"""
with open("out.txt", "w") as f:
    f.write("é🐍\n")
with open("out.txt", "rb") as f:
    print(f.read())
with open("out.txt") as f:
    print(repr(f.read()), f.encoding)
""", education=True)

case("stdin-read-utf8", r"""
import sys
data = sys.stdin.read()
print(repr(data))
print(len(data), data.upper(), end="")
""", stdin="héllo\n世界 🐍\nlast line without newline".encode(), education=True)

case("stdin-read-bytes", r"""
import sys
data = sys.stdin.buffer.read()
print(data, len(data))
""", stdin="héllo\n\x00\x01 🐍".encode(), education=True)

case("stdin-invalid-utf8", "import sys\nprint(repr(sys.stdin.read()))\n", stdin=b"ok \xff\xfe bad\n", education=True)
case("stdin-crlf", "import sys\nprint(repr(sys.stdin.read()))\n", stdin=b"a\r\nb\r\nc\rd\n", education=True)
case("stdin-readline-loop", r"""
import sys
for i, line in enumerate(sys.stdin):
    print(i, repr(line), line.rstrip("\n")[::-1])
""", stdin="one\ntwo ü\n\nfour".encode(), education=True)
case("stdin-empty-file", r"""
import sys
print(repr(sys.stdin.read()), repr(sys.stdin.readline()))
""", stdin=b"", education=True)
case("stdin-none-given", r"""
import sys
print(repr(sys.stdin.read()))
""", education=True)

case("input-prompt", r"""
name = input("Name: ")
age = int(input("Age: "))
print(f"Hello {name}, next year you are {age + 1}")
""", stdin="Ada Lövelace\n36\n".encode(), education=True)

case("input-unicode-prompt", r"""
answer = input("Quelle réponse ? 🤔 ")
print(repr(answer))
""", stdin="оui ✓\n".encode(), education=True)

case("input-no-trailing-newline", "print(repr(input()))\nprint(repr(input('again: ')))\n",
     stdin=b"first\nsecond without newline", education=True)

case("input-eof-no-stdin", "print('ask')\nx = input('prompt> ')\nprint('not reached')\n", education=True)
case("input-eof-after-lines", r"""
while True:
    line = input("> ")
    print("got", line)
""", stdin=b"a\nb\n", education=True)
case("input-eof-caught", r"""
lines = []
try:
    while True:
        lines.append(input())
except EOFError:
    pass
print(lines)
""", stdin=b"x\ny\nz\n", education=True)
case("input-mixed-with-readline", r"""
import sys
a = input("1: ")
b = sys.stdin.readline()
c = input("3: ")
print([a, b, c])
""", stdin=b"one\ntwo\nthree\n", education=True)

# buffering

case("buffered-interleave", r"""
import sys
print("out 1")
print("err 1", file=sys.stderr)
print("out 2")
sys.stderr.write("err 2 without newline")
sys.stderr.write(" continued\n")
print("out 3", end="")
sys.stderr.write("err 3 unterminated at exit")
""", education=True)

case("flushed-order-paced", r"""
import sys, time
print("a", flush=True)
time.sleep(0.1)
print("b", file=sys.stderr, flush=True)
time.sleep(0.1)
print("c", flush=True)
time.sleep(0.1)
sys.stderr.write("d\n")
sys.stderr.flush()
time.sleep(0.1)
print("e", flush=True)
""", education=True, merged=True)

case("flushed-order-burst", r"""
import sys
for i in range(500):
    print("out", i, flush=True)
    print("err", i, file=sys.stderr, flush=True)
""", education=True, merged=True)

case("flushed-order-exception", r"""
import sys, time
print("before", flush=True)
time.sleep(0.1)
raise ValueError("boom")
""", education=True, merged=True)

case("large-output", r"""
import sys
for i in range(400):
    print(f"line {i:04d}")
for i in range(100):
    print(f"err {i:03d}", file=sys.stderr)
""", education=True)

# site-packages and site

case("pil", r"""
import PIL
print(PIL.__version__, PIL.__file__)
from PIL import Image
im = Image.new("RGB", (4, 3), "red")
print(im.size, im.mode, im.getpixel((0, 0)))
""", education=True)

case("site", r"""
import site, sys
print(site.ENABLE_USER_SITE, sys.flags.no_user_site, sys.flags.no_site)
print(site.USER_SITE, site.USER_BASE, site.getusersitepackages(), site.getuserbase())
print(site.getsitepackages(), site.PREFIXES)
print([p for p in sys.path if "site-packages" in p or "dist-packages" in p])
""")

case("sysconfig", r"""
import sysconfig
print(sysconfig.get_paths()["purelib"], sysconfig.get_paths()["stdlib"])
print(sysconfig.get_platform(), sysconfig.get_python_version(), sysconfig.get_config_var("EXT_SUFFIX"))
print(sysconfig.get_default_scheme(), sysconfig.get_preferred_scheme("user"))
""")

# tracebacks through the program's modules

HELPER = """\
def divide(a, b):
    # a comment
    return a / b

def outer(b):
    return divide(1, b) * 2
"""

case("traceback-helper", r"""
import helper
print(helper.__file__)
print(helper.outer(2))
helper.outer(0)
""", files={"helper.py": HELPER}, education=True)

case("traceback-helper-raises-at-import", "print('start')\nimport helper\n",
     files={"helper.py": "x = 1\nraise ImportError('helper refuses')\n"}, education=True)

case("traceback-print-exc", r"""
import traceback, helper
try:
    helper.outer(0)
except ZeroDivisionError:
    traceback.print_exc()
print("recovered")
print(traceback.format_exc().splitlines()[-1])
""", files={"helper.py": HELPER}, education=True)

case("traceback-helper-from-import", "from helper import outer\nouter(0)\n", files={"helper.py": HELPER},
     education=True)

case("pycache-written", r"""
import os
import helper
print(sorted(os.listdir(".")))
print(sorted(os.listdir("__pycache__")))
print(helper.__cached__)
""", files={"helper.py": HELPER}, education=True)

case("workdir-listing", r"""
import os
print(sorted(os.listdir(".")))
print(sorted(os.listdir(os.path.dirname(__file__))))
""", files={"data.txt": "some data\n", "helper.py": HELPER}, education=True)

case("read-data-file", r"""
with open("data.txt", encoding="utf-8") as f:
    print(f.read(), end="")
import os
print(os.path.exists("data.txt"), os.path.abspath("data.txt"))
""", files={"data.txt": "líne 1\nline 2\n"}, education=True)

case("syntax-error-main", 'print("a")\nx = = 1\n', status="syntax_error", education=True)
case("syntax-error-unclosed", 'print("a"\nx = 1\n', status="syntax_error", education=True)
case("indentation-error-main", 'if True:\nprint("x")\n', status="syntax_error", education=True)
case("tab-error-main", 'if True:\n        x = 1\n\ty = 2\n', status="syntax_error", education=True)
case("syntax-error-unicode-line", 'x = "ü" +\n', status="syntax_error", education=True)
# Errors of the compiler rather than the parser: python3 reports them before
# running anything too (the static check compiles main.py once, as it does).
case("syntax-error-compiler-return", 'print("a")\nreturn 1\n', status="syntax_error", education=True)
case("syntax-error-compiler-nonlocal", 'print("a")\ndef f():\n    nonlocal x\n', status="syntax_error",
     education=True)
case("syntax-error-compiler-await", 'print("a")\nawait f()\n', status="syntax_error", education=True)
# A compile-time warning is printed once, before the program's output.
case("syntax-warning-is-literal", 'print("first")\nx = 1\nprint(x is 1)\n', education=True)
# A helper that does not compile is reported as python3 reports it, when it
# is imported; pyexec's verdict for the uncaught error is syntax_error.
case("syntax-error-helper-uncaught", "print('start')\nimport helper\n",
     files={"helper.py": "def f(:\n    pass\n"}, status="syntax_error", education=True)
case("syntax-error-helper-caught", r"""
try:
    import helper
except SyntaxError as e:
    print("caught", type(e).__name__, e.lineno, e.filename)
""", files={"helper.py": "def f(:\n    pass\n"}, education=True)
case("syntax-error-unused-file", "print('main does not import it')\n",
     files={"scratch.py": "def f(:\n    pass\n"}, education=True)

case("source-latin1-cookie", "# -*- coding: latin-1 -*-\nprint('caf\xe9', len('caf\xe9'))\n".encode("latin-1"),
     education=True)
case("source-bom", b"\xef\xbb\xbfprint('bom ok')\n", education=True)
case("source-crlf", b"x = 1\r\nif x:\r\n    print('crlf ok')\r\n", education=True)
case("source-shebang", "#!/usr/bin/env python3\nprint('shebang ok')\n", education=True)
case("source-invalid-utf8", b"print('caf\xe9')\n", status="syntax_error", education=True)
case("source-null-byte", b"print('a')\x00\n", education=True)

# warnings

case("warnings-user", r"""
import warnings
warnings.warn("careful now")
warnings.warn("careful ü", RuntimeWarning)
for i in range(3):
    warnings.warn("only once per location")
print("done")
""", education=True)

case("warnings-deprecation-in-main", r"""
import warnings
warnings.warn("old api", DeprecationWarning)
warnings.warn("pending", PendingDeprecationWarning)
""", education=True)

case("warnings-deprecation-in-helper", "import helper\nhelper.old()\nprint('done')\n", files={
    "helper.py": "import warnings\ndef old():\n    warnings.warn('helper deprecated', DeprecationWarning)\n"
                 "    warnings.warn('helper user warning', stacklevel=2)\n"}, education=True)

case("warnings-filters", r"""
import sys, warnings
print(sys.warnoptions)
for f in warnings.filters:
    print(f[0], f[1] and f[1].pattern, f[2].__name__, f[3] and f[3].pattern, f[4])
""", education=True)

case("warnings-syntax-warning", "x = 1\nprint(x is 1)\n", education=True)
case("warnings-invalid-escape", "import re\nprint(re.findall('\\d', 'a1b2'))\n", education=True)
case("warnings-error-filter", r"""
import warnings
warnings.simplefilter("error")
warnings.warn("now an error")
""", education=True)

# a module in the work directory shadows the standard library as it would
# under python3 (and does not where python3 imported the module already)

case("shadow-random", r"""
import random
print(random.randint(1, 6), random.MARK, random.__file__)
""", files={"random.py": "MARK = 'local random'\ndef randint(a, b):\n    return 42\n"}, education=True)

case("shadow-random-breaks-stdlib-user", "import tempfile\nprint(tempfile.gettempdir())\n",
     files={"random.py": "MARK = 'local random'\n"}, education=True)

for _name in ["os", "sys", "site", "codecs", "io", "abc", "stat", "posixpath", "encodings", "string", "json",
              "collections", "typing", "enum", "re", "functools", "types", "warnings", "traceback", "textwrap",
              "heapq", "keyword", "copy", "math", "time", "datetime", "operator", "struct", "threading",
              "linecache", "tokenize", "ast", "dataclasses", "statistics", "fractions", "pathlib", "signal",
              "inspect", "queue", "bisect", "itertools", "weakref", "calendar", "decimal"]:
    case(f"shadow-{_name}", f"""
import {_name}
print("{_name}", getattr({_name}, "MARK", "standard"), getattr({_name}, "__file__", "built-in"))
""", files={f"{_name}.py": f"MARK = 'local {_name}'\n"},
         education=_name in ("os", "sys", "string", "json", "collections", "typing", "enum", "re", "functools",
                             "types", "warnings", "traceback", "textwrap", "heapq", "keyword", "copy", "math",
                             "time", "datetime", "operator", "struct", "threading", "dataclasses", "statistics",
                             "fractions", "pathlib", "inspect", "queue", "bisect", "itertools", "weakref",
                             "calendar", "decimal", "io", "abc", "codecs", "site", "stat", "posixpath",
                             "encodings", "linecache", "tokenize", "ast", "signal"))

# libraries that read sys.argv, __main__ or the program's file

case("argparse-ok", r"""
import argparse
p = argparse.ArgumentParser(description="demo")
p.add_argument("name")
p.add_argument("--count", type=int, default=1)
a = p.parse_args()
print(p.prog, a.name * a.count)
""", args=["ab", "--count", "3"], education=True)

case("argparse-help", r"""
import argparse
p = argparse.ArgumentParser(description="demo")
p.add_argument("name", help="who")
p.parse_args()
""", args=["--help"], education=True)

case("argparse-error", r"""
import argparse
p = argparse.ArgumentParser()
p.add_argument("--count", type=int, required=True)
p.parse_args()
""", args=["--count", "many"], education=True)

case("unittest-main", r"""
import unittest
class T(unittest.TestCase):
    def test_ok(self):
        self.assertEqual(1 + 1, 2)
    def test_fails(self):
        self.assertEqual("a", "b")
if __name__ == "__main__":
    unittest.main()
""", subs=[(r"Ran (\d+) tests? in \d+\.\d+s", r"Ran \1 tests in Ns")], education=True)

case("unittest-main-verbose-argv", r"""
import unittest
class T(unittest.TestCase):
    def test_ok(self):
        pass
unittest.main()
""", args=["-v"], subs=[(r"Ran (\d+) tests? in \d+\.\d+s", r"Ran \1 tests in Ns")], education=True)

case("doctest-testmod", r'''
def add(a, b):
    """
    >>> add(1, 2)
    3
    >>> add("a", "b")
    'ab!'
    """
    return a + b
import doctest
print(doctest.testmod())
''', education=True)

case("subprocess-sys-executable", r"""
import subprocess, sys
r = subprocess.run([sys.executable, "-c", "import sys; print(sys.argv, sys.executable)", "x"],
                   capture_output=True, text=True)
print(r.returncode, r.stdout, r.stderr)
""")


# allowed standard modules that start-up did not load (their .pyc is unmarshalled
# by the import machinery, not by the program)
case("education-imports-stdlib", r"""
import json, textwrap, collections
print(json.dumps({"a": [1, 2]}), textwrap.shorten("a b c d e f", 7), collections.Counter("aab"))
""", education=True)


# multiprocessing: its locks, semaphores and queues are POSIX named semaphores
# (sem_open), files in /dev/shm, as are its shared ctypes (Value, Array) and
# shared_memory blocks; the education policy refuses the import
case("multiprocessing-pool", r"""
import multiprocessing

def square(x):
    return x * x

if __name__ == "__main__":
    with multiprocessing.Pool(2) as pool:
        print(pool.map(square, range(10)))
        print(sorted(pool.imap_unordered(square, [3, 1, 2])))
        print(pool.apply_async(square, (7,)).get(timeout=30))
""")

case("multiprocessing-lock", r"""
import multiprocessing

def add(counter, lock, n):
    for _ in range(n):
        with lock:
            counter.value += 1

if __name__ == "__main__":
    lock = multiprocessing.Lock()
    counter = multiprocessing.Value("i", 0, lock=False)
    workers = [multiprocessing.Process(target=add, args=(counter, lock, 500)) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    print(counter.value, [w.exitcode for w in workers])
    print(lock.acquire(timeout=5), lock.acquire(block=False))
    lock.release()
    rlock, sem = multiprocessing.RLock(), multiprocessing.Semaphore(2)
    with rlock, rlock:
        print("rlock twice")
    print(sem.acquire(), sem.acquire(), sem.acquire(block=False), sem.get_value())
""")

case("multiprocessing-queue", r"""
import multiprocessing

def produce(q, n):
    for i in range(n):
        q.put({"i": i, "sq": i * i})
    q.put(None)

if __name__ == "__main__":
    q = multiprocessing.Queue()
    p = multiprocessing.Process(target=produce, args=(q, 5))
    p.start()
    got = []
    while (item := q.get(timeout=30)) is not None:
        got.append(item)
    p.join()
    print(got, p.exitcode)
    jq = multiprocessing.JoinableQueue()
    jq.put("task")
    print(jq.get(timeout=30))
    jq.task_done()
    jq.join()
    print("joined")
""")

case("multiprocessing-shared-memory", r"""
from multiprocessing import Process, shared_memory

def fill(name):
    shm = shared_memory.SharedMemory(name=name)
    shm.buf[:5] = b"hello"
    shm.close()

if __name__ == "__main__":
    shm = shared_memory.SharedMemory(create=True, size=4096)
    p = Process(target=fill, args=(shm.name,))
    p.start()
    p.join()
    print(bytes(shm.buf[:5]), p.exitcode)
    shm.close()
    shm.unlink()
""")


# ---- product bugs found by these tests (strict xfails: they must fail) ------

FINISH = "the runner's finish() replaces Py_FinalizeEx() and differs from python3's exit: "

KNOWN_BUGS = {
    "del-uses-module-globals": FINISH + (
        "PyDict_Clear(__main__.__dict__) deletes the globals a __del__ uses before it runs: NameError "
        "('Exception ignored in ...') instead of its output"),
    "del-raises-at-exit": FINISH + (
        "an exception in __del__ at exit: python3's 'Exception ignored' traceback has no source line "
        "(the module is being torn down); the runner's shows it"),
    "flushed-order-burst": (
        "`output` is not in write order when flushed writes to stdout and stderr alternate faster than the "
        "supervisor polls: watch_run() reads the ready pipes in fd order, stdout before stderr"),
}

for _c in CASES:
    _c.xfail = KNOWN_BUGS.get(_c.id)
assert set(KNOWN_BUGS) <= {_c.id for _c in CASES}
assert len({_c.id for _c in CASES}) == len(CASES)


# ---- the harness -----------------------------------------------------------


ADDRESS = re.compile(r"0x[0-9a-fA-F]{4,}")


def normalize(text, hostdir, subs):
    text = text.replace(hostdir, SANDBOX_DIR)
    text = ADDRESS.sub("0xADDR", text)
    for pat, rep in subs:
        text = re.sub(pat, rep, text)
    return text


def _pristine_signals():
    # python3 as a shell starts it: no inherited ignored or blocked signals.
    for s in signal.valid_signals():
        if s in (signal.SIGKILL, signal.SIGSTOP):
            continue
        try:
            signal.signal(s, signal.SIG_DFL)
        except (OSError, ValueError):
            pass
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def write_program(directory, c):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "main.py").write_bytes(c.code if isinstance(c.code, bytes) else c.code.encode())
    for name, content in c.files.items():
        (directory / name).write_bytes(content if isinstance(content, bytes) else content.encode())


def run_host(tmp_path, c, merged=False):
    hostdir = tmp_path / ("host-merged" if merged else "host")
    write_program(hostdir, c)
    env = {
        "LANG": "C.UTF-8",
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(hostdir),
        "USER": "sandbox",
        "LOGNAME": "sandbox",
        **SANDBOX_LIBRARY_ENV,
    }
    p = subprocess.run(
        [HOST_PYTHON, "main.py", *c.args],
        cwd=hostdir,
        env=env,
        input=c.stdin,
        stdin=subprocess.DEVNULL if c.stdin is None else None,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if merged else subprocess.PIPE,
        timeout=c.timeout,
        preexec_fn=_pristine_signals,
    )
    out = normalize(p.stdout.decode("utf-8", errors="replace"), str(hostdir), c.subs)
    err = normalize(p.stderr.decode("utf-8", errors="replace"), str(hostdir), c.subs) if not merged else None
    return out, err, p.returncode


def run_sandbox(run, tmp_path, c, policy):
    opts = []
    if policy:
        opts += ["--policy", policy]
    for a in c.args:
        opts += ["--arg", a]
    if c.stdin is not None:
        stdin_file = tmp_path / "stdin.bin"
        stdin_file.write_bytes(c.stdin)
        opts += ["--stdin", stdin_file]
    if c.files:
        filesdir = tmp_path / "files"
        filesdir.mkdir(exist_ok=True)
        for name, content in c.files.items():
            (filesdir / name).write_bytes(content if isinstance(content, bytes) else content.encode())
            opts += ["--file", f"{name}={filesdir / name}"]
    return run(c.code, *opts, timeout=c.timeout)


def expected_exit(returncode):
    if returncode < 0:
        return {"exitCode": None, "signal": signal.Signals(-returncode).name}
    return {"exitCode": returncode, "signal": None}


def _params():
    out = []
    for c in CASES:
        policies = [None, "permissive"] + (["education"] if c.education else [])
        for pol in policies:
            marks = [pytest.mark.xfail(strict=True, reason=c.xfail)] if c.xfail else []
            out.append(pytest.param(c, pol, id=f"{c.id}-{pol or 'default'}", marks=marks))
    return out


@pytest.mark.parametrize("c,policy", _params())
def test_same_as_python3(run, tmp_path, c, policy):
    h_out, h_err, h_rc = run_host(tmp_path, c)
    r = run_sandbox(run, tmp_path, c, policy)
    got = {
        "stdout": normalize(r["stdout"], SANDBOX_DIR, c.subs),
        "stderr": normalize(r["stderr"], SANDBOX_DIR, c.subs),
        "exitCode": r["exitCode"],
        "signal": r["signal"],
    }
    want = {"stdout": h_out, "stderr": h_err, **expected_exit(h_rc)}
    assert got == want, f"pyexec message: {r.get('message')!r}"
    assert r["truncated"] is False
    if c.status:
        assert r["status"] == c.status
    else:
        assert r["status"] == ("ok" if h_rc == 0 else "runtime_error"), r.get("message")
    if c.merged:
        m_out, _, m_rc = run_host(tmp_path, c, merged=True)
        assert m_rc == h_rc
        assert normalize(r["output"], SANDBOX_DIR, c.subs) == m_out


# ---- what legitimately differs from the host: asserted explicitly ----------


SANDBOX_FACTS = r"""
import os, sys
print(os.getcwd())
print(os.environ.get("HOME"), os.path.expanduser("~"), os.environ.get("USER"))
print(os.environ.get("LANG"))
print(os.path.dirname(__file__) == os.getcwd() == sys.path[0])
print(os.path.abspath("main.py"), os.path.realpath(sys.argv[0]))
print(os.getpid() > 0, os.getppid() >= 0)
print(os.uname().nodename)
print(os.getuid() == os.geteuid() != 0, os.getgid() == os.getegid() != 0)
"""


@pytest.mark.parametrize("policy", [None, "permissive", "education"])
def test_sandbox_facts(run, policy):
    r = run(SANDBOX_FACTS, *(["--policy", policy] if policy else []))
    assert r["status"] == "ok", r
    assert r["stderr"] == ""
    assert r["stdout"].splitlines() == [
        "/sandbox",
        "/sandbox /sandbox sandbox",
        "C.UTF-8",
        "True",
        "/sandbox/main.py /sandbox/main.py",
        "True True",
        "sandbox",
        "True True",
    ]


@pytest.mark.parametrize("policy", [None, "permissive"])
def test_sandbox_identity(run, policy):
    """The user the program runs as: not root, named sandbox, home /sandbox."""
    code = ("import os, pwd, socket\n"
            "pw = pwd.getpwuid(os.getuid())\n"
            "print(pw.pw_name, pw.pw_dir, pw.pw_uid == os.getuid(), socket.gethostname())\n"
            "print(os.path.expanduser('~sandbox'))\n")
    r = run(code, *(["--policy", policy] if policy else []))
    assert r["status"] == "ok", r
    assert r["stdout"] == "sandbox /sandbox True sandbox\n/sandbox\n"


@pytest.mark.parametrize("policy", [None, "permissive"])
def test_sandbox_getcwd_in_traceback_and_warning(run, policy):
    """The paths python3 prints (tracebacks, warnings) are /sandbox ones."""
    r = run("import warnings\nwarnings.warn('w')\n1/0\n", *(["--policy", policy] if policy else []))
    assert r["exitCode"] == 1
    assert r["stderr"].startswith("/sandbox/main.py:2: UserWarning: w\n")
    assert '  File "/sandbox/main.py", line 3, in <module>\n' in r["stderr"]
    assert r["message"] == "exited with code 1: ZeroDivisionError: division by zero"


@pytest.mark.parametrize("policy", [None, "permissive", "education"])
def test_policies_agree(run, policy):
    """The same program gives the same result under every policy that lets it run."""
    code = "import sys\nprint(sys.argv)\nprint('é', file=sys.stderr)\nsys.exit(4)\n"
    r = run(code, "--arg", "ü x", *(["--policy", policy] if policy else []))
    assert (r["stdout"], r["stderr"], r["exitCode"], r["signal"]) == ("['main.py', 'ü x']\n", "é\n", 4, None)
