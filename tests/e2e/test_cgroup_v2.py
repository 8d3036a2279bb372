"""cgroup v2 under systemd: pyexec in a delegated cgroup.

On a pure cgroup v2 host pyexec started in a cgroup delegated to it (a unit
with Delegate=yes: pyexec.service, a scope) moves itself into the leaf
<own>/supervisor, enables memory, pids and cpu in <own>, and creates the
runs' cgroups beside the leaf, so they belong to the unit and go with it.
A program started in a leaf of a delegated cgroup (a unit whose main
process moved itself aside, as the test harness of scripts/test-vm.sh does)
uses that cgroup the same way. Every check reads the cgroup tree from
outside the sandbox.

These tests need a cgroup2-only host with systemd as PID 1 (make test-vm's
guest); elsewhere they skip and say which of the two is missing.
"""
import http.client
import json
import os
import pathlib
import socket
import subprocess
import threading
import time
import uuid

import pytest

from conftest import PRIVILEGED, PYEXEC, wait_for

CG = pathlib.Path("/sys/fs/cgroup")


def _fstype():
    try:
        return subprocess.run(["stat", "-fc", "%T", str(CG)], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "?"


def _systemd_pid1():
    try:
        return pathlib.Path("/proc/1/comm").read_text().strip() == "systemd"
    except OSError:
        return False


FSTYPE = _fstype()
needs_v2 = pytest.mark.skipif(
    FSTYPE != "cgroup2fs",
    reason=f"no pure cgroup v2 hierarchy: /sys/fs/cgroup is {FSTYPE} (hybrid or v1); make test-vm runs these",
)
needs_systemd = pytest.mark.skipif(not _systemd_pid1(), reason="systemd is not PID 1 (make test-vm runs these)")
needs_root = pytest.mark.skipif(not PRIVILEGED, reason="starts system units (root)")


def own_cgroup():
    for line in pathlib.Path("/proc/self/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return CG / line[3:].lstrip("/")
    raise AssertionError("no cgroup2 line in /proc/self/cgroup")


def delegated_to_us(d):
    """Is d delegated to this user, as pyexec judges it?"""
    for attr in ("trusted.delegate", "user.delegate"):
        try:
            if os.getxattr(d, attr) == b"1":
                return True
        except OSError:
            pass
    return not PRIVILEGED and d.stat().st_uid == os.geteuid() and d.parent.stat().st_uid != os.geteuid()


def read(d, name):
    return (d / name).read_text().strip()


def run_dirs(d):
    """The run cgroups below d: every child but pyexec's own leaf."""
    return [c for c in d.iterdir() if c.is_dir() and c.name != "supervisor"]


def runner_env():
    env = []
    if os.environ.get("PYEXEC_RUNNER"):
        env += ["-E", f"PYEXEC_RUNNER={os.environ['PYEXEC_RUNNER']}"]
    return env


def unit_cgroup(unit):
    out = subprocess.run(["systemctl", "show", "-P", "ControlGroup", unit], capture_output=True, text=True).stdout
    return CG / out.strip().lstrip("/") if out.strip() else None


def assert_run_cgroup(d, memory_mb, pids):
    """d is a live run's cgroup with the run's limits: memory (no swap),
    pids, and the cpu controller enabled by its parent."""
    assert read(d, "memory.max") == str(memory_mb * 1024 * 1024), f"{d}/memory.max"
    assert read(d, "memory.swap.max") == "0", f"{d}/memory.swap.max: a run may swap"
    assert read(d, "pids.max") == str(pids), f"{d}/pids.max"
    assert (d / "cpu.max").exists(), f"{d} has no cpu.max: cpu is not enabled in {d.parent}"
    assert "usage_usec" in read(d, "cpu.stat")


@needs_root
@needs_systemd
@needs_v2
def test_cold_run_in_delegated_unit_uses_the_units_cgroup(tmp_path):
    """`pyexec run` as the only process of a unit with Delegate=yes: the
    run's cgroup is a child of the unit's, beside pyexec's leaf."""
    unit = f"pyexec-v2-cold-{uuid.uuid4().hex[:8]}"
    prog = tmp_path / "main.py"
    prog.write_text("import time\nprint('started', flush=True)\ntime.sleep(4)\n")
    top_before = set(p.name for p in (CG / "pyexec").iterdir()) if (CG / "pyexec").is_dir() else set()
    proc = subprocess.Popen(
        ["systemd-run", "--quiet", "--wait", "--pipe", "--collect", f"--unit={unit}", "-p", "Delegate=yes",
         *runner_env(), PYEXEC, "run", "--json", "--memory", "48", "--pids", "20", str(prog)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        d = wait_for(lambda: unit_cgroup(f"{unit}.service"), 30, f"the cgroup of {unit}.service")
        runs = wait_for(lambda: d.is_dir() and [r for r in run_dirs(d) if read(r, "cgroup.procs")], 60,
                        f"a run cgroup with processes below {d} (pyexec did not place the run in its unit)")
        assert len(runs) == 1, runs
        assert_run_cgroup(runs[0], 48, 21)
        assert read(d, "cgroup.procs") == "", f"{d} holds processes beside enabled controllers"
        assert {"memory", "pids", "cpu"} <= set(read(d, "cgroup.subtree_control").split())
        assert read(d / "supervisor", "cgroup.procs"), f"pyexec is not in {d}/supervisor"
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            subprocess.run(["systemctl", "kill", "-s", "KILL", f"{unit}.service"], capture_output=True)
            proc.wait(timeout=30)
    res = json.loads(out)
    assert res["status"] == "ok", (res, err)
    assert not d.exists(), f"{d} left behind after the unit stopped"
    top_after = set(p.name for p in (CG / "pyexec").iterdir()) if (CG / "pyexec").is_dir() else set()
    assert top_after <= top_before, f"runs placed at the top of the hierarchy: {sorted(top_after - top_before)}"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _execute(port, body, timeout=60):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    c.request("POST", "/api/execute", json.dumps(body), {"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, json.loads(data)


def _ready(port):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        c.request("GET", "/health/ready")
        ok = c.getresponse().status == 200
        c.close()
        return ok
    except OSError:
        return False


@needs_root
@needs_systemd
@needs_v2
def test_service_in_delegated_unit_keeps_its_sandboxes_in_the_unit():
    """`pyexec serve` (the warm path: zygote, prebuilt sandboxes) in a unit
    with Delegate=yes: the service and its zygote sit in the leaf, every
    sandbox's cgroup below the unit's with the request's limits and a
    hugetlb bound, an OOM is the cgroup's, and nothing is left once the
    unit stops."""
    unit = f"pyexec-v2-serve-{uuid.uuid4().hex[:8]}"
    port = _free_port()
    top_before = set(p.name for p in (CG / "pyexec").iterdir()) if (CG / "pyexec").is_dir() else set()
    subprocess.run(
        ["systemd-run", "--quiet", "--collect", f"--unit={unit}", "-p", "Delegate=yes", "-p", "KillMode=control-group",
         *runner_env(), PYEXEC, "serve", "--port", str(port)], check=True, capture_output=True)
    d = None
    try:
        wait_for(lambda: _ready(port), 120, f"/health/ready of {unit}")
        d = unit_cgroup(f"{unit}.service")
        assert d is not None and d.is_dir()
        main = subprocess.run(["systemctl", "show", "-P", "MainPID", f"{unit}.service"], capture_output=True,
                              text=True).stdout.strip()
        leaf = read(d / "supervisor", "cgroup.procs").split()
        assert main in leaf, f"the service (pid {main}) is not in {d}/supervisor: {leaf}"
        assert read(d, "cgroup.procs") == "", f"{d} holds processes beside enabled controllers"
        # A run in flight: its cgroup is below the unit's, with its limits.
        result = {}
        t = threading.Thread(target=lambda: result.update(r=_execute(port, {
            "code": "import time\nprint('hi')\ntime.sleep(3)\n", "memoryLimit": 64})))
        t.start()
        busy = wait_for(lambda: [r for r in run_dirs(d) if read(r, "cgroup.procs")
                                 and read(r, "memory.max") == str(64 * 1024 * 1024)], 60,
                        f"the running sandbox's cgroup below {d}")
        assert_run_cgroup(busy[0], 64, int(read(busy[0], "pids.max")))
        # systemd leaves hugetlb out of what it delegates; root enables it
        # down to the unit, so each sandbox's share of the pool is bounded.
        if "hugetlb" in read(CG, "cgroup.controllers").split():
            assert "hugetlb" in read(d, "cgroup.subtree_control").split(), f"{d} does not enable hugetlb"
            assert (busy[0] / "hugetlb.2MB.max").exists(), f"{busy[0]} has no hugetlb.2MB.max"
        t.join(timeout=60)
        status, res = result["r"]
        assert status == 200 and res["status"] == "ok", res
        # The memory limit is the cgroup's: the kernel's OOM killer ends it.
        status, res = _execute(port, {"code": "b = bytearray(200 * 1024 * 1024)\nprint(len(b))\n",
                                      "memoryLimit": 32})
        assert res["status"] == "memory_limit", res
        assert "OOM" in (res["message"] or "") or "MemoryError" in (res["message"] or ""), res
    finally:
        subprocess.run(["systemctl", "stop", f"{unit}.service"], capture_output=True)
    wait_for(lambda: d is None or not d.exists(), 30, f"{d} to go with its unit")
    top_after = set(p.name for p in (CG / "pyexec").iterdir()) if (CG / "pyexec").is_dir() else set()
    assert top_after <= top_before, f"sandboxes placed at the top of the hierarchy: {sorted(top_after - top_before)}"


@needs_v2
def test_run_in_a_leaf_of_a_delegated_cgroup_uses_it(tmp_path):
    """Started in a leaf of a delegated cgroup (the unit's main process moved
    itself aside), `pyexec run` places the run below the delegated cgroup,
    as root and as the unit's unprivileged user alike."""
    own = own_cgroup()
    parent = own.parent
    if not delegated_to_us(parent):
        pytest.skip(f"{parent} is not delegated to uid {os.geteuid()} (make test-vm runs this in a delegated unit)")
    check = subprocess.run([PYEXEC, "check"], capture_output=True, text=True, timeout=120)
    assert "cgroup:           v2" in check.stdout, check.stdout + check.stderr
    assert f"memory:         {parent}\n" in check.stdout, check.stdout
    prog = tmp_path / "main.py"
    prog.write_text("import time\nprint('started', flush=True)\ntime.sleep(3)\n")
    proc = subprocess.Popen([PYEXEC, "run", "--json", "--memory", "40", "--pids", "12", str(prog)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        runs = wait_for(lambda: [r for r in run_dirs(parent) if r != own and read(r, "cgroup.procs")
                                 and read(r, "memory.max") == str(40 * 1024 * 1024)], 60,
                        f"the run's cgroup below {parent}")
        assert_run_cgroup(runs[0], 40, 13)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert json.loads(out)["status"] == "ok", err
    wait_for(lambda: not runs[0].exists(), 10, f"{runs[0]} to be removed after the run")
    hog = tmp_path / "hog.py"
    hog.write_text("b = bytearray(200 * 1024 * 1024)\nprint(len(b))\n")
    p = subprocess.run([PYEXEC, "run", "--json", "--memory", "32", str(hog)], capture_output=True, timeout=120)
    res = json.loads(p.stdout)
    assert res["status"] == "memory_limit", res
    assert "RLIMIT_AS" not in (res["message"] or ""), res
