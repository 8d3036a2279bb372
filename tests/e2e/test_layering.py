"""The layering of the binaries: pyexec-runner, the program every warm
sandbox is a copy of (the zygote), links only the code that runs inside a
sandbox (libpyexec-sandbox and libpyexec-basic, of src/sandbox and
src/basic), never the service's: its logging, configuration, HTTP API,
metrics, job runner, the supervisor or the warm pool. What is not in the
binary cannot be reached from inside. And the build keeps the layering of
src/: each folder is compiled with the include directories of the folders
it may use and no other (compile_commands.json of the build directory).
"""
import json
import os
import pathlib
import shlex
import shutil
import subprocess

import pytest

from conftest import PYEXEC, ROOT

# Exact names and prefixes of the service's functions. Prefixes are chosen
# so that none matches a symbol of the embedded CPython (it has its own
# config_*, check_*, log_*, sha256_* functions): the test below also fails
# if one ever does, as the runner would then look like it links service code.
FORBIDDEN_PREFIXES = (
    "pyexec_run",        # supervise.c: the supervisor
    "pyexec_sandbox_",   # supervise.c: the host's sandbox object
    "pyexec_limit",      # limits.c: the CLI's and the API's limit parsing
    "warm_pool_",        # zygote.c: the service's pool
    "verdict_",          # verdict.c
    "api_",              # api.c
    "http_serve",        # http.c
    "metrics_",          # metrics.c
    "executor_",         # executor.c
    "ratelimit_",        # ratelimit.c
    "job_",              # jobs-def.c, jobs-path.c, jobs-run.c
    "jobs_",
    "uidpool_",          # uidpool.c: the service hands out uids
    "cgroup_",           # cgroup.c: the service makes the cgroups
    "result_",           # result.c
    "client_execute",    # client.c
)
FORBIDDEN_NAMES = {
    "log_event", "log_set_level", "log_enabled",  # log.c
    "config_load", "config_done", "config_print", "config_build_policies", "config_policy_line",  # config.c
    "check_report", "check_print",  # check.c
    "sha256_fd", "sha256_hex",      # sha256.c
}
# Proof that the list names the right binary: these must be there.
REQUIRED = {"runner_zygote_main", "seccomp_prog_apply", "cred_drop", "mount_build_root"}


def runner_path():
    return pathlib.Path(PYEXEC).resolve().parent / "pyexec-runner"


def defined_symbols(path):
    out = subprocess.run(["nm", "--defined-only", str(path)], capture_output=True, text=True, check=True).stdout
    return {line.split()[-1] for line in out.splitlines() if len(line.split()) >= 3}


def forbidden(symbols):
    return sorted(s for s in symbols if s in FORBIDDEN_NAMES or s.startswith(FORBIDDEN_PREFIXES))


@pytest.mark.skipif(shutil.which("nm") is None, reason="needs nm (binutils)")
def test_runner_links_no_service_code():
    runner = runner_path()
    if not runner.exists():
        pytest.skip(f"no pyexec-runner beside {PYEXEC}")
    symbols = defined_symbols(runner)
    if not REQUIRED <= symbols:
        pytest.skip(f"{runner} has no symbol table (stripped): {sorted(REQUIRED - symbols)} missing")
    assert forbidden(symbols) == [], f"{runner} links service code"


def service_binary():
    """The pyexec executable: PYEXEC itself, or, where PYEXEC is the
    sanitized runs' wrapper script (scripts/test-sanitized.sh), the binary
    it runs, bin/pyexec beside it."""
    path = pathlib.Path(PYEXEC).resolve()
    for candidate in (path, path.parent / "bin" / "pyexec"):
        if candidate.exists() and candidate.read_bytes()[:4] == b"\x7fELF":
            return candidate
    pytest.skip(f"no pyexec executable at {PYEXEC}")


@pytest.mark.skipif(shutil.which("nm") is None, reason="needs nm (binutils)")
def test_service_symbols_are_recognized():
    """The list above is not empty words: the service binary has them."""
    symbols = defined_symbols(service_binary())
    for name in ("pyexec_run", "warm_pool_take", "log_event", "config_load", "http_serve", "api_execute"):
        assert name in symbols
        assert forbidden({name}) == [name]


# The folders of src/ whose headers the sources of each folder may include
# (docs/architecture.md, "Layering"): meson.build gives each library these
# include directories and no others, which is what makes a header included
# across the layering fail to compile.
MAY_INCLUDE = {
    "basic": {"basic", "include"},
    "log": {"log", "basic"},
    "sandbox": {"sandbox", "basic", "include"},
    "json": {"json", "basic", "include"},
    "jobs": {"jobs", "json", "basic", "include"},
    "service": {"service", "jobs", "json", "log", "basic", "include"},
    "cli": {"cli", "service", "jobs", "json", "log", "basic", "include"},
    "runner": {"runner", "sandbox", "basic", "include"},
    "init": {"init", "sandbox", "basic"},
}
# The host's side shares src/sandbox with the sandbox's and may also log.
HOST_SIDE = {"supervise.c", "verdict.c", "zygote.c", "cgroup.c", "uidpool.c", "images.c"}


def src_include_folders(entry):
    """The folders of src/ on one compile command's include path."""
    args = entry["arguments"] if "arguments" in entry else shlex.split(entry["command"])
    folders = set()
    for i, a in enumerate(args):
        d = a[2:] if a.startswith("-I") and len(a) > 2 else args[i + 1] if a == "-I" else None
        if d is None:
            continue
        d = (pathlib.Path(entry["directory"]) / d).resolve()
        if d.parent == ROOT / "src":
            folders.add(d.name)
    return folders


def test_include_directories_follow_the_layering():
    """Every source of src/ is compiled with the include directories of the
    folders it may use and no other, so the build refuses a header from a
    layer it may not use."""
    db = pathlib.Path(PYEXEC).resolve().parent / "compile_commands.json"
    if not db.exists():
        pytest.skip(f"no {db} (the meson build directory of {PYEXEC})")
    checked = 0
    for entry in json.loads(db.read_text()):
        src = (pathlib.Path(entry["directory"]) / entry["file"]).resolve()
        if src.parent.parent != ROOT / "src" and src != ROOT / "tools" / "seccomp-gen.c":
            continue  # the unit tests and the fuzz targets see every folder
        output = entry.get("output", "")
        if src.parent.name == "tools" or src.name == "seccomp-policy.c":
            # <seccomp.h> must be libseccomp's: src/sandbox is not on the path.
            allowed = {"basic"}
        elif output.startswith("pyexec-init.p"):
            allowed = MAY_INCLUDE["init"]  # reap.c and cred.c, built again for it
        elif src.parent.name == "sandbox" and src.name in HOST_SIDE:
            allowed = MAY_INCLUDE["sandbox"] | {"log"}
        else:
            allowed = MAY_INCLUDE[src.parent.name]
        extra = src_include_folders(entry) - allowed
        assert not extra, f"{src.relative_to(ROOT)} ({output}) may not include from src/{sorted(extra)}"
        checked += 1
    assert checked > 40
