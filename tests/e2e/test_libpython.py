"""The libpython pyexec-runner embeds against the standard library under /usr.

The build records the Debian version of the libpython3.11.a it links
(`pyexec-runner --libpython`); `pyexec check`, GET /api/environment and
readiness compare it with the installed libpython3.11-stdlib. The installed
side is read from a dpkg status file: PYEXEC_DPKG_STATUS points it at a
fixture here, to make the system's version read as another one.
"""
import json
import os
import shutil
import subprocess
import time

import pytest

from conftest import PYEXEC, pyexec
from test_serve import start_server

RUNNER = os.path.join(os.path.dirname(PYEXEC), "pyexec-runner")
HAS_DPKG = os.path.exists("/var/lib/dpkg/status") and shutil.which("dpkg-query") is not None
OTHER = "3.11.2-6+deb12u99"


def installed_version():
    return subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "libpython3.11-stdlib"], check=True,
                          capture_output=True, text=True).stdout


def dpkg_status(tmp_path, version):
    p = tmp_path / "status"
    p.write_text("Package: libpython3.11-minimal\nStatus: install ok installed\nVersion: 1.0\n\n"
                 "Package: libpython3.11-stdlib\nStatus: install ok installed\nArchitecture: amd64\n"
                 f"Version: {version}\nDescription: the standard library\n\n")
    return p


def check(env_extra):
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", **env_extra}
    r = pyexec("check", "--json", env=env)
    return r.returncode, json.loads(r.stdout)


def stale_message(embedded):
    return f"pyexec-runner embeds libpython3.11 {embedded}, the system has {OTHER}: rebuild with make"


@pytest.mark.skipif(not HAS_DPKG, reason="no dpkg database")
def test_the_runner_reports_the_libpython_it_embeds():
    out = subprocess.run([RUNNER, "--libpython"], check=True, capture_output=True, text=True).stdout
    name, version, sha = out.split()
    assert name == "libpython3.11" and version == installed_version()
    assert sha.startswith("sha256:") and len(sha) == len("sha256:") + 64


@pytest.mark.skipif(not HAS_DPKG, reason="no dpkg database")
def test_check_reports_the_embedded_libpython_matches_the_system():
    code, rep = check({})
    lp = rep["runner"]["libpython"]
    assert lp["embedded"] == lp["installed"] == installed_version()
    assert lp["match"] is True and "message" not in lp
    assert not any("libpython" in p for p in rep["problems"]), rep["problems"]


@pytest.mark.skipif(not HAS_DPKG, reason="no dpkg database")
def test_check_reports_a_runner_embedding_another_libpython(tmp_path):
    code, rep = check({"PYEXEC_DPKG_STATUS": str(dpkg_status(tmp_path, OTHER))})
    lp = rep["runner"]["libpython"]
    assert lp["installed"] == OTHER and lp["match"] is False
    assert stale_message(installed_version()) in rep["problems"]
    assert code == 1 and rep["ok"] is False


def test_check_without_a_dpkg_database_says_unknown(tmp_path):
    code, rep = check({"PYEXEC_DPKG_STATUS": str(tmp_path / "absent")})
    lp = rep["runner"]["libpython"]
    assert lp["installed"] == "unknown" and lp["match"] is None
    assert not any("libpython" in p for p in rep["problems"]), rep["problems"]


def wait_not_ready(srv, reason, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = srv.get("/health/ready")
        assert r.status == 503, r
        if reason in r.json()["reason"]:
            return r
        time.sleep(0.2)
    raise AssertionError(f"/health/ready never gave the reason: {r.json()}")


@pytest.mark.skipif(not HAS_DPKG, reason="no dpkg database")
@pytest.mark.parametrize("mode", ["warm", "cold"])
def test_a_stale_runner_keeps_the_service_not_ready(serve_stale, tmp_path, mode):
    srv = serve_stale(env={"PYEXEC_DPKG_STATUS": dpkg_status(tmp_path, OTHER), "EXECUTION_MODE": mode},
                      ready=False)
    r = wait_not_ready(srv, stale_message(installed_version()))
    assert r.json()["status"] == "not_ready"
    env = srv.get("/api/environment").json()
    assert env["runner"]["libpython"]["match"] is False and env["ok"] is False


@pytest.mark.skipif(not HAS_DPKG, reason="no dpkg database")
def test_allow_stale_runner_lets_the_service_become_ready(serve_stale, tmp_path):
    srv = serve_stale(env={"PYEXEC_DPKG_STATUS": dpkg_status(tmp_path, OTHER), "ALLOW_STALE_RUNNER": "true"},
                      timeout=60)
    assert srv.get("/health/ready").status == 200
    lp = srv.get("/api/environment").json()["runner"]["libpython"]
    assert lp["match"] is False and "ALLOW_STALE_RUNNER=true" in lp["message"]


@pytest.fixture
def serve_stale(tmp_path):
    servers = []

    def _serve(**kw):
        srv = start_server(tmp_path, **kw)
        servers.append(srv)
        return srv

    yield _serve
    for s in servers:
        assert s.stop() == 0, s.log_text()[-3000:]
