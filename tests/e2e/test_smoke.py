from conftest import pyexec


def test_hello(run):
    r = run("print('Hello, World!')")
    assert r["status"] == "ok"
    assert r["stdout"] == "Hello, World!\n"
    assert r.returncode == 0


def test_version():
    p = pyexec("--version")
    assert p.returncode == 0
    assert p.stdout.startswith(b"pyexec ")
