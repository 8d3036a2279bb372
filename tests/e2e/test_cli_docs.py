"""The command line documents itself: `pyexec --version` is meson.build's version,
each command's --help names every option its parser accepts (one line each, with a
meaning), and the man page, when built, covers every command and the exit status.

The option lists below are what the commands' parsers accept
(src/cli/cmd-run.c, src/cli/cmd-job.c, src/cli/cmd-check.c; serve:
src/service/config.c); each is also checked against those sources, so an
option added there without help fails here, and so does an option line
removed from a --help text."""
import pathlib
import re

import pytest

from conftest import PYEXEC, ROOT, pyexec

# What each command's parser accepts (src/cli/cmd-*.c; serve: src/service/config.c).
RUN_OPTIONS = {
    "--json", "--stdin", "--arg", "--file", "--test", "--module", "--python",
    "--policy", "--service", "--help",
    # pyexec_limit_table (src/basic/limits.c)
    "--timeout", "--cpu-time", "--memory", "--max-output", "--pids", "--disk",
    "--file-size", "--open-files",
}
JOB_OPTIONS = {"--jobs", "--json", "--help"}
CHECK_OPTIONS = {"--json", "--python", "--help"}
SERVE_OPTIONS = {"--config", "--print-config", "--print-default-config", "--cold", "--help"}  # besides one per key


def source(name):
    return (ROOT / "src" / name).read_text()


def documented(help_text):
    """The options of a --help text: those that begin one of its lines (an
    option's own line, with its meaning after it)."""
    opts = {}
    for line in help_text.splitlines():
        m = re.match(r"  (--[a-z][a-z-]*)\b(.*)", line)
        if m:
            opts[m.group(1)] = m.group(2)
    return opts


def help_of(cmd):
    p = pyexec(cmd, "--help")
    assert p.returncode == 0, p.stderr
    assert p.stderr == b""
    return p.stdout.decode()


def serve_keys():
    return re.findall(r'^\s+\{ "([A-Z_]+)", KEY_', source("service/config.c"), re.M)


def test_version_is_meson_project_version():
    version = re.search(r"version\s*:\s*'([^']+)'", (ROOT / "meson.build").read_text()).group(1)
    p = pyexec("--version")
    assert p.returncode == 0
    assert p.stdout.decode() == f"pyexec {version}\n"


def function_body(text, head):
    """The body of the function whose definition starts with head."""
    body = text[text.index(head):]
    return body[:body.index("\n}\n")]


def test_option_lists_match_the_parsers():
    limits = re.findall(r'^\s+\{ "([a-z-]+)", "[A-Za-z]+", "', source("basic/limits.c"), re.M)
    body = function_body(source("cli/cmd-run.c"), "static bool run_parse_options(")
    run = {"--" + o for o in re.findall(r'\(struct option\)\{ "([a-z-]+)"', body)}
    assert run | {"--" + o for o in limits} == RUN_OPTIONS
    body = function_body(source("cli/cmd-job.c"), "static int job_parse_args(")
    assert set(re.findall(r'!strcmp\(argv\[i\], "(--[a-z-]+)"\)', body)) == JOB_OPTIONS
    body = function_body(source("cli/cmd-check.c"), "int cmd_check(")
    assert set(re.findall(r'strcmp\(argv\[i\], "(--[a-z-]+)"\) == 0', body)) == CHECK_OPTIONS
    assert len(serve_keys()) > 20


@pytest.mark.parametrize("cmd,expected", [
    ("run", RUN_OPTIONS), ("job", JOB_OPTIONS), ("check", CHECK_OPTIONS),
])
def test_help_names_every_option(cmd, expected):
    text = help_of(cmd)
    assert text.startswith(f"usage: pyexec {cmd}")
    opts = documented(text)
    assert set(opts) == expected, f"pyexec {cmd} --help: missing {expected - set(opts)}, " \
                                  f"unknown {set(opts) - expected}"
    for o, meaning in opts.items():
        assert len(meaning.split()) >= 2, f"{o} has no meaning in pyexec {cmd} --help"
    assert "Exit status" in text
    assert "Environment:" in text


def test_serve_help_names_every_key():
    text = help_of("serve")
    opts = documented(text)
    flags = {"--" + k.lower().replace("_", "-"): k for k in serve_keys()}
    assert set(opts) == set(flags) | SERVE_OPTIONS, \
        f"missing {(set(flags) | SERVE_OPTIONS) - set(opts)}, unknown {set(opts) - set(flags) - SERVE_OPTIONS}"
    for flag, key in flags.items():
        assert opts[flag].split()[0] == key  # the environment variable beside it
    assert "PYEXEC_CONFIG" in text
    assert "Exit status" in text


def test_run_help_names_its_exit_codes_and_environment():
    text = help_of("run")
    for code in ("121", "122", "123", "124", "125", "128+N"):
        assert re.search(rf"^  {re.escape(code)}\s+\S", text, re.M), code
    for var in ("PYEXEC_PYTHON", "PYEXEC_RUNNER", "PYEXEC_UID_BASE", "PYEXEC_UID_COUNT",
                "PYEXEC_CGROUP", "PYEXEC_API_KEY"):
        assert var in text


def test_man_page():
    page = pathlib.Path(PYEXEC).resolve().parent / "pyexec.1"
    if not page.exists():
        pytest.skip("no pyexec.1 beside the binary (scdoc not installed)")
    text = page.read_text()
    for cmd in ("run", "serve", "job", "check"):
        assert re.search(rf"pyexec\S* {cmd}\b", text), cmd
    assert "EXIT STATUS" in text
    for opt in RUN_OPTIONS | JOB_OPTIONS | CHECK_OPTIONS | SERVE_OPTIONS:
        assert "\\-" + "\\-" + opt[2:].replace("-", "\\-") in text or opt in text, opt
