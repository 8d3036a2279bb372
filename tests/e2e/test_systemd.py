"""pyexec.service under a real systemd: installs the build under test (the
directory of PYEXEC_BIN) with `meson install`, then drives the unit with
systemctl. It runs only where systemd is PID 1 and the test runs as root (a
VM or a machine of its own: it installs into the system and starts a
service); elsewhere every test is skipped, saying why.

- `systemctl start` returns only once /health/ready answers 200 (Type=notify,
  READY=1 after the self-test), and a hello world runs;
- `systemctl stop` is graceful: the service logs "stopped", exits 0, and
  leaves no process, no run cgroup with processes, nothing in /run/pyexec but
  its two lock files, and no lock held on them;
- `systemctl restart` under load loses no admitted request: client threads
  POST throughout; every answer is a 200 with the right output, or a refusal
  before admission (connection refused, 503, or a reset of a connection the
  stopping service never read: its log has no line for that request id);
- a job reads and writes /srv/pyexec under the unit's hardening;
- after `systemctl enable` and `systemctl daemon-reexec` the unit is enabled
  and the same process still serves.

A runtime drop-in (/run/systemd/system/pyexec.service.d) sets the port and
turns the rate limit off; the module disables and stops the unit at the end.
"""
import http.client
import json
import os
import pathlib
import re
import shutil
import socket
import subprocess
import threading
import time

import pytest

from conftest import PYEXEC, host_pids_with_uid_range

BUILD = pathlib.Path(PYEXEC).resolve().parent
HOST = "127.0.0.1"
UNIT = "pyexec.service"
DROPIN = pathlib.Path("/run/systemd/system/pyexec.service.d/50-test.conf")
UID_BASE, UID_SPAN = 1900000000, 2 * 1024  # PYEXEC_UID_BASE, 2 x PYEXEC_UID_COUNT (defaults)


def _skip_reason():
    if os.geteuid() != 0:
        return "needs root: it installs pyexec and starts pyexec.service"
    try:
        comm = pathlib.Path("/proc/1/comm").read_text().strip()
    except OSError:
        comm = "?"
    if comm != "systemd" or not os.path.isdir("/run/systemd/system"):
        return f"needs systemd as PID 1 (PID 1 here is {comm!r}); tests/e2e/test_install.py covers what runs without"
    if shutil.which("meson") is None or not (BUILD / "build.ninja").exists():
        return f"{BUILD} is not a meson build directory"
    return None


pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or "")


def sh(*args, check=True, timeout=300):
    p = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)
    if check:
        assert p.returncode == 0, f"{' '.join(args)}: exit {p.returncode}\n{p.stdout}\n{p.stderr}"
    return p


def show(*props):
    out = sh("systemctl", "show", UNIT, *(f"--property={p}" for p in props)).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def get(port, path, timeout=10):
    c = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def execute(port, code, request_id=None, timeout=120):
    c = http.client.HTTPConnection(HOST, port, timeout=timeout)
    headers = {"Content-Type": "application/json"}
    if request_id:
        headers["X-Request-Id"] = request_id
    try:
        c.request("POST", "/api/execute", body=json.dumps({"code": code}), headers=headers)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def journal_of(pid):
    """The JSON log lines of the service process pid (its stderr, in the journal)."""
    p = sh("journalctl", "--no-pager", "-o", "cat", f"_PID={pid}", check=False)
    lines = []
    for line in p.stdout.splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            pass
    return lines


def wait_journal(pid, message, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [e for e in journal_of(pid) if e.get("message") == message]
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"no {message!r} from pid {pid} in the journal; it has:\n"
                         + "\n".join(json.dumps(e) for e in journal_of(pid)[-30:]))


def journal_cursor():
    out = sh("journalctl", "-n", "1", "--show-cursor", "--no-pager", "-q").stdout
    cursors = [line[len("-- cursor: "):] for line in out.splitlines() if line.startswith("-- cursor: ")]
    assert cursors, f"journalctl printed no cursor: {out!r}"
    return cursors[-1]


def manager_lines(cursor):
    """What systemd said about the unit since cursor."""
    return sh("journalctl", "--no-pager", "-o", "cat", f"--after-cursor={cursor}", f"UNIT={UNIT}").stdout


def run_cgroups_with_processes():
    """Run cgroups (box-N, run-PID-N, warm-PID-N) anywhere under
    /sys/fs/cgroup that still hold a process."""
    busy = []
    for dirpath, dirnames, filenames in os.walk("/sys/fs/cgroup"):
        name = os.path.basename(dirpath)
        if re.fullmatch(r"(box-\d+|run-\d+-\d+|warm-\d+-\d+)", name) and "cgroup.procs" in filenames:
            try:
                if pathlib.Path(dirpath, "cgroup.procs").read_text().strip():
                    busy.append(dirpath)
            except OSError:
                pass
    return busy


def held_locks(path):
    """Entries of /proc/locks on path's inode."""
    try:
        ino = os.stat(path).st_ino
    except FileNotFoundError:
        return []
    return [line for line in pathlib.Path("/proc/locks").read_text().splitlines()
            if re.search(rf":{ino} ", line)]


@pytest.fixture(scope="module")
def unit():
    """pyexec installed, a drop-in with a free port, the unit loaded; yields the port."""
    sh("meson", "install", "-C", str(BUILD), "--no-rebuild", timeout=600)
    port = free_port()
    DROPIN.parent.mkdir(parents=True, exist_ok=True)
    DROPIN.write_text("[Service]\n"
                      f"Environment=PORT={port}\n"
                      # The load test sends hundreds of requests from one address.
                      "Environment=RATE_LIMIT_MAX=0\n")
    sh("systemctl", "daemon-reload")
    props = show("Type", "FragmentPath", "LoadState")
    assert props["LoadState"] == "loaded", props
    assert props["Type"] == "notify", \
        f"pyexec.service is Type={props['Type']}: the build has no libsystemd (-Dsystemd); readiness cannot be tested"
    yield port
    sh("systemctl", "disable", UNIT, check=False)
    sh("systemctl", "stop", UNIT, check=False, timeout=1000)
    DROPIN.unlink(missing_ok=True)
    sh("systemctl", "daemon-reload", check=False)


def start(port):
    sh("systemctl", "start", UNIT, timeout=300)
    # No polling: start has returned, so the service must be ready now.
    status, body = get(port, "/health/ready")
    assert status == 200, f"systemctl start returned while /health/ready answered {status} {body!r}"
    props = show("ActiveState", "SubState", "MainPID", "StatusText")
    assert (props["ActiveState"], props["SubState"]) == ("active", "running"), props
    assert props["StatusText"].startswith("ready: "), props
    return int(props["MainPID"])


def test_start_returns_once_ready_and_runs_hello(unit):
    sh("systemctl", "stop", UNIT, timeout=1000)
    start(unit)
    status, body = execute(unit, "print('hello from systemd')")
    assert status == 200, body
    res = json.loads(body)
    assert (res["status"], res["stdout"]) == ("ok", "hello from systemd\n"), res


def test_stop_is_graceful_and_leaves_nothing(unit):
    if show("ActiveState")["ActiveState"] != "active":
        start(unit)
    pid = int(show("MainPID")["MainPID"])
    status, body = execute(unit, "print(sum(range(10)))")
    assert status == 200 and json.loads(body)["stdout"] == "45\n", body

    cursor = journal_cursor()
    sh("systemctl", "stop", UNIT, timeout=1000)
    assert show("ActiveState")["ActiveState"] == "inactive"
    # A stopped unit may be unloaded at once (its ExecMain* properties then
    # read 0): what systemd logged says how it ended. Exit status 0 is
    # "Deactivated successfully"; any other end is "Failed with result".
    deadline = time.monotonic() + 20
    while "Deactivated successfully" not in (said := manager_lines(cursor)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "Deactivated successfully" in said and "Failed with result" not in said, said
    wait_journal(pid, "stopped")
    shutting = wait_journal(pid, "shutting down: no new connections, finishing admitted executions")
    assert shutting[0].get("signal") == "SIGTERM", shutting

    assert not os.path.exists(f"/proc/{pid}"), f"the service's process {pid} is still there"
    assert host_pids_with_uid_range(UID_BASE, UID_BASE + UID_SPAN) == [], "sandbox processes survived the stop"
    assert run_cgroups_with_processes() == [], "run cgroups still hold processes"
    # /run/pyexec outlives the stop on purpose (RuntimeDirectoryPreserve=yes:
    # a `pyexec run` may hold a slot), with nothing in it but the lock files,
    # and no lock of the service's held.
    if os.path.isdir("/run/pyexec"):
        extra = set(os.listdir("/run/pyexec")) - {"uid-slots.lock", "hugetlb-pool.lock"}
        assert not extra, f"left in /run/pyexec: {extra}"
        for f in ("uid-slots.lock", "hugetlb-pool.lock"):
            assert held_locks(f"/run/pyexec/{f}") == [], f"a lock on /run/pyexec/{f} is still held"


RESETS = (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected, http.client.IncompleteRead,
          http.client.BadStatusLine)


def test_restart_under_load_loses_no_admitted_request(unit):
    if show("ActiveState")["ActiveState"] != "active":
        start(unit)
    old_pid = int(show("MainPID")["MainPID"])
    stop = threading.Event()
    outcomes = []  # (request id, kind, detail)
    lock = threading.Lock()

    def client(n):
        i = 0
        while not stop.is_set():
            i += 1
            rid = f"restart-{n}-{i}"
            code = f"import time\ntime.sleep(0.3)\nprint('{rid}')"
            try:
                status, body = execute(unit, code, rid)
                if status == 200 and json.loads(body).get("stdout") == f"{rid}\n":
                    kind = "ok"
                elif status == 503:
                    kind = "refused"
                else:
                    kind = "wrong"
                detail = f"{status} {body[:300]!r}"
            except ConnectionRefusedError as e:
                kind, detail = "refused", repr(e)
                time.sleep(0.05)
            except RESETS as e:
                kind, detail = "reset", repr(e)
            except (OSError, http.client.HTTPException) as e:
                kind, detail = "wrong", repr(e)
            with lock:
                outcomes.append((rid, kind, detail))

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(4)]
    for t in threads:
        t.start()
    time.sleep(3)
    with lock:
        before = sum(1 for o in outcomes if o[1] == "ok")
    sh("systemctl", "restart", UNIT, timeout=1000)
    # Restart has returned: the new instance is ready.
    status, _ = get(unit, "/health/ready")
    assert status == 200
    with lock:
        n_at_restart = len(outcomes)
    time.sleep(3)
    stop.set()
    for t in threads:
        t.join(180)
    new_pid = int(show("MainPID")["MainPID"])
    assert new_pid != old_pid

    wait_journal(old_pid, "stopped")
    answered = {e.get("requestId") for pid in (old_pid, new_pid) for e in journal_of(pid)
                if e.get("message") == "request"}
    wrong = [o for o in outcomes if o[1] == "wrong"]
    lost = [o for o in outcomes if o[1] == "reset" and o[0] in answered]
    assert not wrong, f"answers that are neither the right output nor a refusal: {wrong[:10]}"
    assert not lost, f"requests the service answered (its log says so) whose client got a reset: {lost[:10]}"
    assert before > 0, f"no request succeeded before the restart: {outcomes[:10]}"
    assert any(o[1] == "ok" for o in outcomes[n_at_restart:]), \
        f"no request succeeded after the restart: {outcomes[n_at_restart:][:10]}"
    counts = {k: sum(1 for o in outcomes if o[1] == k) for k in ("ok", "refused", "reset")}
    print(f"restart under load: {counts}")
    # The old instance drained: it ran what it had admitted, then exited 0.
    assert any(e.get("message") == "shutting down: no new connections, finishing admitted executions"
               for e in journal_of(old_pid))


def test_job_writes_its_output_under_the_hardening(unit, tmp_path):
    """The compose job reads /srv/pyexec and publishes its output there:
    ProtectSystem=strict leaves that root writable (ReadWritePaths=), and
    nothing else of the host's file systems."""
    if subprocess.run(["/usr/bin/python3", "-c", "import PIL"], capture_output=True).returncode != 0:
        pytest.skip("python3-pil is not installed")
    for d in ("templates", "uploads", "composed"):
        os.makedirs(f"/srv/pyexec/{d}", exist_ok=True)
    # ReadWritePaths= applies to what exists at start.
    sh("systemctl", "restart", UNIT, timeout=1000)
    name = f"systemd-{os.getpid()}"
    template, design = f"/srv/pyexec/templates/{name}.png", f"/srv/pyexec/uploads/{name}.png"
    output = f"/srv/pyexec/composed/{name}.png"
    sh("/usr/bin/python3", "-c", f"""from PIL import Image
Image.new("RGB", (600, 700), "white").save("{template}")
Image.new("RGBA", (200, 200), (200, 30, 30, 255)).save("{design}")""")
    try:
        c = http.client.HTTPConnection(HOST, unit, timeout=120)
        c.request("POST", "/api/jobs/compose", headers={"Content-Type": "application/json"},
                  body=json.dumps({"params": {"template": template, "design": design, "preset": "chest-large",
                                              "output": output}}))
        r = c.getresponse()
        body = r.read()
        c.close()
        assert r.status == 200 and json.loads(body)["status"] == "ok", body
        assert os.path.getsize(output) > 0
    finally:
        for f in (template, design, output):
            try:
                os.unlink(f)
            except FileNotFoundError:
                pass


def test_enabled_and_serving_after_daemon_reexec(unit):
    if show("ActiveState")["ActiveState"] != "active":
        start(unit)
    sh("systemctl", "enable", UNIT)
    assert sh("systemctl", "is-enabled", UNIT, check=False).stdout.strip() == "enabled"
    assert os.path.islink(f"/etc/systemd/system/multi-user.target.wants/{UNIT}")
    pid = int(show("MainPID")["MainPID"])
    sh("systemctl", "daemon-reexec", timeout=300)
    deadline = time.monotonic() + 60
    while sh("systemctl", "show", UNIT, check=False).returncode != 0 and time.monotonic() < deadline:
        time.sleep(0.5)  # the manager is coming back
    props = show("ActiveState", "MainPID", "UnitFileState")
    assert props["ActiveState"] == "active" and props["UnitFileState"] == "enabled", props
    assert int(props["MainPID"]) == pid, f"daemon-reexec restarted the service: {pid} -> {props['MainPID']}"
    status, _ = get(unit, "/health/ready")
    assert status == 200
    status, body = execute(unit, "print('after reexec')")
    assert status == 200 and json.loads(body)["stdout"] == "after reexec\n", body
