"""The documents hold: README.md and docs/*.md are parsed with markdown-it
(CommonMark), and

* every fenced block whose info string is ``console test`` runs against the
  built binary and a live `pyexec serve` on its defaults, and must print what
  the block shows;
* every relative link resolves to a file of the repository, and every
  ``#anchor`` into a Markdown document to one of its headings (GitHub's slugs);
* the configuration keys in docs/configuration.md's tables are exactly those
  `pyexec serve --help` lists, plus environment variables the sources read.

A ``console test`` block:

    $ command arg \\
        continued                 (a line ending in a backslash continues)
    > more of the command         (a PS2 line, e.g. a here-document's body)
    expected output line          (`...` inside a line matches any text)
    ...                           (a line of its own: any lines, also none)
    [exit 3]                      (last line: the exit status; else 0)

A command followed by no expected lines has its output unchecked (its exit
status still is). The commands of a block run in one bash (pipefail), in
order; the blocks of a document run in order in one temporary directory
where each top-level entry of the repository is a symlink. PATH starts with
the built binary's directory; `localhost:3002` and `127.0.0.1:3002` in
commands are rewritten to the live service's address. The examples run as
root only (the operator jobs write under /srv/pyexec).
"""
import os
import pathlib
import re
import shutil
import subprocess
import unicodedata

import pytest

from conftest import PRIVILEGED, PYEXEC, ROOT, pyexec

markdown_it = pytest.importorskip("markdown_it")

if not (ROOT / "README.md").is_file():
    # The unprivileged suite runs from a copy without the documents (only
    # docs/openapi.json, which responses are checked against): they are
    # static, checked once, by the suite that runs as root.
    pytest.skip("the documents are not beside the tests", allow_module_level=True)

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
DEFAULT_ADDRESSES = ("localhost:3002", "127.0.0.1:3002")
EXIT_LINE = re.compile(r"^\[exit (\d+)\]$")


def tokens(path):
    md = markdown_it.MarkdownIt("commonmark").enable("table")
    return md.parse(path.read_text())


# ---------------------------------------------------------------------------
# Runnable examples
# ---------------------------------------------------------------------------


class Command:
    def __init__(self, line):
        self.line = line  # 1-based line of the `$ ` in its document
        self.text = ""
        self.expected = []
        self.status = 0


def parse_block(content, first_line):
    """The commands of a ``console test`` block's content."""
    commands = []
    lines = content.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.startswith("$ "):
            if not commands:
                raise ValueError(f"line {first_line + i}: output before the first '$ ' command")
            commands[-1].expected.append(line)
            i += 1
            continue
        cmd = Command(first_line + i)
        text = line[2:]
        while text.endswith("\\") and i + 1 < len(lines):
            i += 1
            text += "\n" + lines[i]
        while i + 1 < len(lines) and (lines[i + 1].startswith("> ") or lines[i + 1] == ">"):
            i += 1
            text += "\n" + lines[i][2:]
        cmd.text = text
        commands.append(cmd)
        i += 1
    for cmd in commands:
        if cmd.expected and EXIT_LINE.match(cmd.expected[-1]):
            cmd.status = int(EXIT_LINE.match(cmd.expected.pop()).group(1))
    return commands


def expected_regex(expected):
    """A regex for a command's whole output from its expected lines."""
    parts = []
    for line in expected:
        line = line.rstrip()
        if line == "...":
            parts.append(r"(?:[^\n]*\n)*?")
        else:
            parts.append(".*".join(re.escape(piece) for piece in line.split("...")) + r"\n")
    return re.compile("".join(parts))


def output_matches(expected, actual):
    text = "\n".join(line.rstrip() for line in actual.split("\n"))
    if text and not text.endswith("\n"):
        text += "\n"
    return expected_regex(expected).fullmatch(text) is not None


def runnable_blocks(path):
    for tok in tokens(path):
        if tok.type == "fence" and tok.info.split() == ["console", "test"]:
            yield tok.map[0] + 2, tok.content


def run_block(commands, cwd, env, address, timeout=300):
    """Run commands in one bash; returns [(command, status, output)]."""
    outdir = pathlib.Path(cwd) / ".docs-test"
    outdir.mkdir(exist_ok=True)
    script = ["set -o pipefail"]
    for n, cmd in enumerate(commands):
        text = cmd.text
        for default in DEFAULT_ADDRESSES:
            text = text.replace(default, address)
        script.append(f"{{\n{text}\n}} >{outdir}/out.{n} 2>&1 </dev/null; echo $? >{outdir}/rc.{n}")
    subprocess.run(["bash", "-c", "\n".join(script)], cwd=cwd, env=env, timeout=timeout,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results = []
    for n, cmd in enumerate(commands):
        rc_file = outdir / f"rc.{n}"
        status = int(rc_file.read_text()) if rc_file.exists() else None
        out = (outdir / f"out.{n}").read_text(errors="replace") if (outdir / f"out.{n}").exists() else ""
        results.append((cmd, status, out))
    shutil.rmtree(outdir)
    return results


def failures(doc, results):
    msgs = []
    for cmd, status, out in results:
        where = f"{doc.relative_to(ROOT)}:{cmd.line}: $ {cmd.text}"
        if status is None:
            msgs.append(f"{where}\n  did not run (the block's shell stopped before it)")
        elif status != cmd.status:
            msgs.append(f"{where}\n  exit {status}, expected {cmd.status}; output:\n{out}")
        elif cmd.expected and not output_matches(cmd.expected, out):
            shown = "\n".join(cmd.expected)
            msgs.append(f"{where}\n  output differs.\n--- expected\n{shown}\n--- actual\n{out}")
    return msgs


@pytest.fixture(scope="module")
def live_service(tmp_path_factory):
    from test_serve import start_server
    srv = start_server(tmp_path_factory.mktemp("docs-serve"), default_policy=None, timeout=60)
    yield srv
    assert srv.stop() == 0, srv.log_text()[-3000:]


def example_env():
    bindir = str(pathlib.Path(PYEXEC).resolve().parent)
    env = {"PATH": f"{bindir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
           "LANG": "C.UTF-8", "HOME": os.environ.get("HOME", "/root"), "TERM": "dumb"}
    if os.environ.get("PYEXEC_RUNNER"):
        env["PYEXEC_RUNNER"] = os.environ["PYEXEC_RUNNER"]
    return env


def documents_with_examples():
    return [d for d in DOCS if any(True for _ in runnable_blocks(d))]


@pytest.mark.skipif(not PRIVILEGED, reason="the documents' examples run as root (jobs write under /srv/pyexec)")
@pytest.mark.parametrize("doc", documents_with_examples(), ids=lambda d: getattr(d, "name", str(d)))
def test_examples_run_as_documented(doc, live_service, tmp_path):
    for entry in ROOT.iterdir():
        if entry.name not in (".git",) and not (tmp_path / entry.name).exists():
            (tmp_path / entry.name).symlink_to(entry)
    for d in ("templates", "uploads", "composed", "renders"):
        os.makedirs(f"/srv/pyexec/{d}", exist_ok=True)
    msgs = []
    for first_line, content in runnable_blocks(doc):
        commands = parse_block(content, first_line)
        assert commands, f"{doc}:{first_line}: a 'console test' block without a '$ ' command"
        msgs += failures(doc, run_block(commands, tmp_path, example_env(), f"127.0.0.1:{live_service.port}"))
    assert not msgs, "\n\n".join(msgs)


def test_there_are_examples_to_run():
    """The README's tour and the API and jobs pages carry runnable examples."""
    names = {d.relative_to(ROOT).as_posix() for d in documents_with_examples()}
    assert {"README.md", "docs/api.md", "docs/jobs.md", "docs/configuration.md"} <= names


def test_block_parser_and_matcher(tmp_path):
    block = ("$ echo 'a b' \\\n  c\na b c\n$ cat <<'EOF'\n> one\n> two\n> EOF\none\n...\n"
             "$ printf 'x=1 y=2\\n'; (exit 3)\nx=... y=2\n[exit 3]\n$ true\n")
    cmds = parse_block(block, 1)
    assert [c.text for c in cmds] == ["echo 'a b' \\\n  c", "cat <<'EOF'\none\ntwo\nEOF",
                                      "printf 'x=1 y=2\\n'; (exit 3)", "true"]
    assert [c.status for c in cmds] == [0, 0, 3, 0]
    assert [c.line for c in cmds] == [1, 4, 10, 13]
    env = example_env()
    assert failures(ROOT / "README.md", run_block(cmds, tmp_path, env, "127.0.0.1:1")) == []
    # A command that ends the shell: it and the commands after it did not run.
    msgs = failures(ROOT / "README.md", run_block(parse_block("$ exit 4\n$ true\n", 1), tmp_path, env, "x"))
    assert len(msgs) == 2 and all("did not run" in m for m in msgs)
    # A wrong status fails, and so does wrong output.
    msgs = failures(ROOT / "README.md", run_block(parse_block("$ echo a; (exit 3)\na\n", 1), tmp_path, env, "x"))
    assert len(msgs) == 1 and "exit 3, expected 0" in msgs[0]
    msgs = failures(ROOT / "README.md", run_block(parse_block("$ echo b\na\n", 1), tmp_path, env, "x"))
    assert len(msgs) == 1 and "output differs" in msgs[0]
    # The service's default address is rewritten.
    results = run_block(parse_block("$ echo localhost:3002/x\n", 1), tmp_path, env, "127.0.0.1:9")
    assert results[0][2] == "127.0.0.1:9/x\n"
    # Wrong output, a wrong status and a too-short output all fail.
    assert not output_matches(["a b"], "a b c\n")
    assert not output_matches(["one", "...", "three"], "one\ntwo\n")
    assert output_matches(["one", "...", "three"], "one\nthree\n")
    assert output_matches(["{\"status\":\"ok\",...}"], '{"status":"ok","stdout":"42\\n"}\n')
    with pytest.raises(ValueError):
        parse_block("stray output\n$ true\n", 1)


# ---------------------------------------------------------------------------
# Links
# ---------------------------------------------------------------------------


def inline_text(tok):
    return "".join(c.content for c in (tok.children or []) if c.type in ("text", "code_inline"))


def slug(text):
    """GitHub's heading anchor: lower case, punctuation but '-' and '_'
    dropped, spaces to '-'."""
    out = []
    for ch in text.strip().lower():
        cat = unicodedata.category(ch)
        if ch in "-_" or cat[0] in "LN" or cat == "Mn":
            out.append(ch)
        elif ch == " ":
            out.append("-")
    return "".join(out)


def anchors(path):
    seen = {}
    result = set()
    toks = tokens(path)
    for i, tok in enumerate(toks):
        if tok.type == "heading_open":
            base = slug(inline_text(toks[i + 1]))
            n = seen.get(base, 0)
            seen[base] = n + 1
            result.add(base if n == 0 else f"{base}-{n}")
    return result


def links(path):
    for tok in tokens(path):
        for child in tok.children or []:
            if child.type == "link_open":
                yield tok.map[0] + 1, child.attrs["href"]
            elif child.type == "image":
                yield tok.map[0] + 1, child.attrs["src"]


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: getattr(d, "name", str(d)))
def test_links_resolve(doc):
    bad = []
    for line, href in links(doc):
        if re.match(r"^[a-z][a-z0-9+.-]*:", href):
            if not re.match(r"^(https?|mailto):", href):
                bad.append(f"line {line}: {href}: only http(s) and mailto links leave the repository")
            continue
        target, _, anchor = href.partition("#")
        path = (doc.parent / target).resolve() if target else doc
        if not path.exists():
            bad.append(f"line {line}: {href}: no such file {path}")
            continue
        if ROOT.resolve() not in path.parents and path != ROOT.resolve():
            bad.append(f"line {line}: {href}: outside the repository")
        if anchor and path.suffix == ".md" and anchor not in anchors(path):
            bad.append(f"line {line}: {href}: no heading '#{anchor}' in {path.name}")
    assert not bad, f"{doc.relative_to(ROOT)}:\n" + "\n".join(bad)


def test_anchor_slugs_are_githubs():
    assert slug("The warm path's trade-offs") == "the-warm-paths-trade-offs"
    assert slug("`POST /execute`: run code") == "post-execute-run-code"
    assert slug("Limits and defaults") == "limits-and-defaults"


def test_every_document_is_reachable_from_the_readme():
    """Following links from README.md through the documents reaches every page."""
    reached, todo = set(), [(ROOT / "README.md").resolve()]
    while todo:
        doc = todo.pop()
        if doc in reached or doc.suffix != ".md" or not doc.is_file():
            continue
        reached.add(doc)
        todo += [(doc.parent / href.partition("#")[0]).resolve() for _, href in links(doc)
                 if not re.match(r"^[a-z]+:", href) and href.partition("#")[0]]
    missing = [d.name for d in DOCS[1:] if d.resolve() not in reached]
    assert not missing, f"no link from README.md leads to {missing}"


# ---------------------------------------------------------------------------
# Configuration keys
# ---------------------------------------------------------------------------


def serve_help_keys():
    p = pyexec("serve", "--help")
    assert p.returncode == 0
    return set(re.findall(r"^  --[a-z-]+ {2,}([A-Z][A-Z0-9_]*) {2,}", p.stdout.decode(), re.M))


def documented_keys():
    """First-column `KEY`s of the tables in docs/configuration.md."""
    keys = set()
    toks = tokens(ROOT / "docs" / "configuration.md")
    first = False
    for i, tok in enumerate(toks):
        if tok.type == "tr_open":
            first = True
        elif tok.type in ("td_open", "th_open"):
            if first:
                m = re.fullmatch(r"`([A-Z][A-Z0-9_]*(?:<NAME>)?)`", toks[i + 1].content.strip())
                if m:
                    keys.add(m.group(1))
            first = False
    return keys


def sources_getenv():
    names = set()
    for f in (ROOT / "src").rglob("*.c"):
        names |= set(re.findall(r'getenv\("([A-Z_][A-Z0-9_]*)"\)', f.read_text()))
    return names


def test_configuration_md_lists_every_key():
    keys = serve_help_keys()
    assert len(keys) > 20
    documented = documented_keys()
    missing = keys - documented
    assert not missing, f"docs/configuration.md does not document {sorted(missing)}"
    unknown = documented - keys - sources_getenv() - {"POLICY_<NAME>"}
    assert not unknown, f"docs/configuration.md documents keys pyexec does not read: {sorted(unknown)}"


def test_meson_installs_every_document():
    """`meson install` puts every page of docs/ with the README (share/doc/pyexec)."""
    build = (ROOT / "meson.build").read_text()
    missing = [d.relative_to(ROOT).as_posix() for d in DOCS if f"'{d.relative_to(ROOT).as_posix()}'" not in build]
    assert not missing, f"meson.build does not install {missing}"
