"""The layering of the binaries: pyexec-runner, the program every warm
sandbox is a copy of (the zygote), links only the code that runs inside a
sandbox (libpyexec-sandbox and libpyexec-basic, of src/sandbox and
src/basic), never the service's: its logging, configuration, HTTP API,
metrics, job runner, the supervisor or the warm pool. What is not in the
binary cannot be reached from inside.
"""
import os
import pathlib
import shutil
import subprocess

import pytest

from conftest import PYEXEC

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
