"""`meson install` of the build under test (the directory of PYEXEC_BIN) into a
temporary DESTDIR: every file lands where docs/operations.md ("Installing")
says; the installed pyexec, run from the DESTDIR with the environment
overrides it documents, finds its runner, pyexec-init and jobs; the installed
/etc/pyexec/pyexec.conf loads as it is, names every key `pyexec serve --help`
lists, and a key uncommented in it changes the configuration; a reinstall
keeps an edited one; and `systemd-analyze verify` accepts pyexec.service.

The layout expected is computed from the build's own options (meson
introspect), so the test holds for any prefix; a build that does not have
every installable file built (the sanitizer builds build pyexec alone) is
skipped.
"""
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import stat
import subprocess
import time
import urllib.request

import pytest

from conftest import PYEXEC

BUILD = pathlib.Path(PYEXEC).resolve().parent
# What the installed binary reads: nothing of the caller's environment but
# what a test passes (a PORT or PYEXEC_JOBS of the caller would change the
# results).
BASE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}


def meson_json(*what):
    p = subprocess.run(["meson", "introspect", *what, str(BUILD)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, f"meson introspect {what} failed: {p.stderr}"
    return json.loads(p.stdout)


@pytest.fixture(scope="module")
def layout():
    """The build's install locations: prefix, bin, libexec/pyexec,
    share/pyexec, sysconfdir, the unit directory, mandir, docdir."""
    if shutil.which("meson") is None or not (BUILD / "build.ninja").exists():
        pytest.skip(f"{BUILD} is not a meson build directory")
    installed = meson_json("--installed")
    missing = [src for src in installed if not os.path.exists(src)]
    if missing:
        pytest.skip(f"the build in {BUILD} has not built every installed file (e.g. {missing[0]})")
    opts = {o["name"]: o["value"] for o in meson_json("--buildoptions")}
    prefix = pathlib.Path(opts["prefix"])

    def under_prefix(path):
        return prefix / path  # an absolute option stays absolute

    unitdir = opts.get("systemdsystemunitdir") or ""
    if not unitdir:
        dests = [d for s, d in installed.items() if s.endswith("/pyexec.service")]
        assert len(dests) == 1, f"pyexec.service is not installed exactly once: {dests}"
        unitdir = str(pathlib.Path(dests[0]).parent)
        if str(prefix) != "/usr":
            assert pathlib.Path(unitdir) == prefix / "lib/systemd/system", unitdir
    return {
        "prefix": prefix,
        "bin": under_prefix(opts["bindir"]),
        "libexec": under_prefix(opts["libexecdir"]) / "pyexec",
        "data": under_prefix(opts["datadir"]) / "pyexec",
        "doc": under_prefix(opts["datadir"]) / "doc" / "pyexec",
        "man": under_prefix(opts["mandir"]),
        "sysconf": under_prefix(opts["sysconfdir"]) / "pyexec",
        "unitdir": pathlib.Path(unitdir),
        "man_built": (BUILD / "pyexec.1").exists(),
        "init_built": (BUILD / "pyexec-init").exists(),
        "notify": "HAVE_LIBSYSTEMD" in (BUILD / "build.ninja").read_text(errors="replace"),
    }


def install(destdir):
    p = subprocess.run(["meson", "install", "-C", str(BUILD), "--no-rebuild", "--destdir", str(destdir)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, f"meson install failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return p.stdout


@pytest.fixture(scope="module")
def dest(tmp_path_factory, layout):
    d = tmp_path_factory.mktemp("destdir")
    install(d)
    return d


def at(dest, path):
    """path (absolute, as installed) inside the DESTDIR."""
    return dest / pathlib.Path(path).relative_to("/")


@pytest.fixture(scope="module")
def installed_env(dest, layout):
    """The documented overrides that point the installed pyexec at the
    DESTDIR's runner (pyexec-init beside it) and jobs."""
    return {**BASE_ENV,
            "PYEXEC_RUNNER": str(at(dest, layout["libexec"] / "pyexec-runner")),
            "PYEXEC_JOBS": str(at(dest, layout["data"] / "jobs" / "jobs.yaml"))}


def run_installed(dest, layout, *args, env=None, timeout=120, stdin=None):
    exe = at(dest, layout["bin"] / "pyexec")
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env=env or BASE_ENV, input=stdin)


def test_installed_layout(dest, layout):
    expected = {
        layout["bin"] / "pyexec": 0o755,
        layout["libexec"] / "pyexec-runner": 0o755,
        layout["data"] / "jobs" / "jobs.yaml": None,
        layout["data"] / "jobs" / "compose_design.py": None,
        layout["data"] / "jobs" / "render_design.py": None,
        layout["data"] / "jobs" / "make_shirt_png.py": None,
        layout["data"] / "jobs" / "make_shirt_blend.py": None,
        layout["data"] / "pyexec.conf": None,
        layout["sysconf"] / "pyexec.conf": 0o640,
        layout["unitdir"] / "pyexec.service": None,
        layout["doc"] / "README.md": None,
        layout["doc"] / "operations.md": None,
        layout["doc"] / "configuration.md": None,
        layout["doc"] / "LICENSE": None,
    }
    if layout["init_built"]:
        expected[layout["libexec"] / "pyexec-init"] = 0o755
    if layout["man_built"]:
        expected[layout["man"] / "man1" / "pyexec.1"] = None
    problems = []
    for path, mode in expected.items():
        p = at(dest, path)
        if not p.is_file():
            problems.append(f"{path}: not installed")
        elif mode is not None and stat.S_IMODE(p.stat().st_mode) != mode:
            problems.append(f"{path}: mode {oct(stat.S_IMODE(p.stat().st_mode))}, expected {oct(mode)}")
    assert not problems, "\n".join(problems)
    # Nothing outside the prefix but the config file and the unit.
    outside = [p for p in dest.rglob("*") if p.is_file()
               and not str(p).startswith(str(at(dest, layout["prefix"])) + "/")
               and p not in (at(dest, layout["sysconf"] / "pyexec.conf"),
                             at(dest, layout["unitdir"] / "pyexec.service"))]
    assert not outside, f"installed outside {layout['prefix']}: {outside}"


def test_installed_binary_defaults_are_the_installed_paths(dest, layout):
    """The paths compiled into the binary (its --help says them) are where
    meson installed the runner and the jobs."""
    run_help = run_installed(dest, layout, "run", "--help").stdout
    job_help = run_installed(dest, layout, "job", "--help").stdout
    assert f"{layout['libexec']}/pyexec-runner" in run_help, run_help
    assert f"{layout['data']}/jobs/jobs.yaml" in job_help, job_help


def test_installed_binary_finds_runner_init_and_jobs(dest, layout, installed_env, tmp_path):
    runner = installed_env["PYEXEC_RUNNER"]
    p = run_installed(dest, layout, "check", env=installed_env)
    assert p.returncode == 0, f"pyexec check failed:\n{p.stdout}\n{p.stderr}"
    assert re.search(r"^runner:\s+" + re.escape(runner) + r"\b", p.stdout, re.M), p.stdout
    assert "jobs/jobs.yaml" in p.stdout and "compose" in p.stdout, p.stdout

    (tmp_path / "hello.py").write_text('print(f"hello, {input()}")\n')
    p = run_installed(dest, layout, "run", "--stdin", "/dev/stdin", tmp_path / "hello.py", env=installed_env,
                      stdin="installed\n")
    assert (p.returncode, p.stdout) == (0, "hello, installed\n"), p.stderr

    p = run_installed(dest, layout, "job", "list", env=installed_env)
    assert p.returncode == 0, p.stderr
    assert {line.split()[0] for line in p.stdout.splitlines() if line.strip()} >= {"compose", "render"}, p.stdout


def test_installed_service_runs_warm_with_its_init(dest, layout, installed_env, tmp_path):
    """The installed service, on the warm path, finds pyexec-init beside the
    DESTDIR's runner (no warning that each sandbox's init is a copy of the
    zygote) and runs a hello world."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path / "serve.log"
    exe = at(dest, layout["bin"] / "pyexec")
    with open(log, "wb") as logf:
        proc = subprocess.Popen([str(exe), "serve", "--port", str(port), "--default-policy", "permissive"],
                                stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, env=installed_env)
    try:
        deadline, ready = time.monotonic() + 90, False
        while not ready and time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=5) as r:
                    ready = r.status == 200
            except OSError:
                time.sleep(0.05)
        assert ready, log.read_text()[-3000:]
        req = urllib.request.Request(f"http://127.0.0.1:{port}/api/execute", data=b'{"code": "print(6 * 7)"}',
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            res = json.loads(r.read())
        assert (res["status"], res["stdout"]) == ("ok", "42\n"), res
        text = log.read_text()
        assert "zygote started" in text, text[-3000:]
        if layout["init_built"]:
            assert "pyexec-init not found" not in text, text[-3000:]
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log.read_text()[-3000:]


def serve_keys(dest, layout):
    """The keys `pyexec serve --help` lists (the second column of its key lines)."""
    text = run_installed(dest, layout, "serve", "--help").stdout
    keys = [key for flag, key in re.findall(r"^  --([a-z0-9-]+)\s+([A-Z][A-Z0-9_]+)\s", text, re.M)
            if flag == key.lower().replace("_", "-")]
    assert len(keys) > 20, text
    return keys


def print_config(dest, layout, conf):
    p = run_installed(dest, layout, "serve", "--config", conf, "--print-config")
    assert p.returncode == 0, f"--print-config of {conf} failed: {p.stderr}"
    out = {}
    for line in p.stdout.splitlines():
        m = re.match(r"^([A-Z][A-Z0-9_]*)=(.*?)  # (\S+)$", line)
        if m:
            out[m.group(1)] = (m.group(2), m.group(3))
    return out


def test_config_file_loads_and_names_every_key(dest, layout):
    conf = at(dest, layout["sysconf"] / "pyexec.conf")
    text = conf.read_text()
    assert text == at(dest, layout["data"] / "pyexec.conf").read_text(), "the /etc copy differs from the pristine one"
    # Loadable as it is, every key at its default.
    resolved = print_config(dest, layout, conf)
    defaults = print_config(dest, layout, "/dev/null")
    assert resolved == defaults
    # Every line is a comment or blank: nothing set.
    assert all(not line.strip() or line.lstrip().startswith("#") for line in text.splitlines())
    # Every key, commented out with its default, after a line saying what it is.
    lines = text.splitlines()
    for key in serve_keys(dest, layout):
        hits = [i for i, line in enumerate(lines) if line.startswith(f"#{key}=")]
        assert len(hits) == 1, f"{key} is listed {len(hits)} times in {conf}"
        i = hits[0]
        assert lines[i - 1].startswith("# ") and len(lines[i - 1]) > 4, f"{key} has no meaning above it"
        value = lines[i][len(key) + 2:]
        if key != "API_KEYS" and key != "REQUEST_TIME_LIMIT":  # printed as a count; resolved from 0
            assert value == defaults[key][0], f"{key}: the file says {value!r}, the default is {defaults[key][0]!r}"


def test_uncommented_key_changes_the_config(dest, layout, tmp_path):
    text = at(dest, layout["sysconf"] / "pyexec.conf").read_text()
    edited = tmp_path / "pyexec.conf"
    edited.write_text(re.sub(r"^#PORT=3002$", "PORT=4123", text, flags=re.M))
    assert edited.read_text() != text, "no '#PORT=3002' line to uncomment"
    assert print_config(dest, layout, edited)["PORT"] == ("4123", "file")
    # Every key uncommented as it is loads too, with the same values.
    everything = tmp_path / "all.conf"
    everything.write_text(re.sub(r"^#([A-Z][A-Z0-9_]*=)", r"\1", text, flags=re.M))
    resolved = print_config(dest, layout, everything)
    defaults = print_config(dest, layout, "/dev/null")
    for key in serve_keys(dest, layout):
        assert resolved[key][1] == "file", f"{key} uncommented is not read from the file: {resolved[key]}"
        assert resolved[key][0] == defaults[key][0], f"{key}: {resolved[key][0]!r} != default {defaults[key][0]!r}"


def test_reinstall_keeps_an_edited_config(layout, tmp_path):
    install(tmp_path)
    conf = at(tmp_path, layout["sysconf"] / "pyexec.conf")
    pristine = at(tmp_path, layout["data"] / "pyexec.conf")
    conf.write_text(conf.read_text() + "\nPORT=4124\n")
    pristine.write_text("changed\n")
    out = install(tmp_path)
    assert conf.read_text().endswith("\nPORT=4124\n"), f"the edited config was replaced:\n{out[-2000:]}"
    assert pristine.read_text() != "changed\n", "the pristine copy was not reinstalled"
    # A removed config file comes back.
    conf.unlink()
    install(tmp_path)
    assert conf.read_text() == pristine.read_text()


def verify(unit_path):
    p = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit_path)], capture_output=True, text=True,
                       timeout=120, env={**os.environ, "SYSTEMD_LOG_COLOR": "0"})
    return p.returncode, (p.stdout + p.stderr).strip()


def test_unit_verifies(dest, layout, tmp_path):
    """systemd-analyze verify works without systemd as PID 1. It needs
    ExecStart's binary to exist, so the unit is checked with that path
    inside the DESTDIR; it reports a bad line with exit status 0, so any
    output fails."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    unit = at(dest, layout["unitdir"] / "pyexec.service").read_text()
    exe = layout["bin"] / "pyexec"
    conf = layout["sysconf"] / "pyexec.conf"
    assert re.search(rf"^ExecStart={re.escape(str(exe))} serve --config {re.escape(str(conf))}$", unit, re.M), unit
    assert re.search(rf"^Type={'notify' if layout['notify'] else 'exec'}$", unit, re.M), unit
    for line in ("KillMode=mixed", "Delegate=yes", "Restart=on-failure", "RuntimeDirectory=pyexec",
                 "OOMPolicy=continue", "NoNewPrivileges=yes"):
        assert re.search(rf"^{line}$", unit, re.M), f"{line} missing from pyexec.service"
    local = tmp_path / "pyexec.service"
    local.write_text(unit.replace(f"ExecStart={exe} ", f"ExecStart={at(dest, exe)} "))
    rc, out = verify(local)
    assert (rc, out) == (0, ""), f"systemd-analyze verify: exit {rc}\n{out}"
    # The check can fail: a bad directive is reported.
    local.write_text(unit.replace("KillMode=mixed", "KillMode=drain").replace(f"ExecStart={exe} ",
                                                                              f"ExecStart={at(dest, exe)} "))
    rc, out = verify(local)
    assert "kill mode" in out, f"systemd-analyze verify did not report a bad KillMode: exit {rc} {out!r}"
