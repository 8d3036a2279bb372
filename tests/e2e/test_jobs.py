"""End-to-end tests of operator jobs: `pyexec job` and POST /api/jobs/{name}.

Every test writes its own jobs YAML with roots under its temporary directory
(templates/, uploads/, composed/, renders/) and points `script:` at copies of
the real job scripts (jobs/compose_design.py, jobs/render_design.py) and at
small scripts written here. The verdicts that concern the host are checked
from the host side: the published file's bytes, hash, owner and mode; the
absence of staging directories, planted files and marker files; the
listener that must see no connection; the process that must not survive.

The scripts (and jobs/make_shirt_blend.py, which builds the .blend
template) are found in jobs/ beside this checkout, or where PYEXEC_JOBS_DIR
says; they are copied into the test's own directory so that the sandbox's
throwaway uid (as root) and an unprivileged user (scripts/test-unprivileged.sh
copies them too) can read them. Blender renders a 64x64 template in one or
two seconds; the render tests skip when /usr/bin/blender is missing.
"""
import hashlib
import json
import os
import pathlib
import shutil
import socket
import stat
import struct
import subprocess
import time
import uuid
import zlib

import pytest

from conftest import Listener, PRIVILEGED, PYEXEC, host_pids_matching
from test_serve import JSON_HEADERS, free_port, start_server as serve_start

PIL = pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
JOBS_DIR = pathlib.Path(os.environ.get("PYEXEC_JOBS_DIR") or ROOT / "jobs")
COMPOSE_SRC = JOBS_DIR / "compose_design.py"
RENDER_SRC = JOBS_DIR / "render_design.py"
MAKE_TEMPLATE_SRC = JOBS_DIR / "make_shirt_blend.py"
BLENDER = "/usr/bin/blender"
HAVE_BLENDER = os.access(BLENDER, os.X_OK)
CLEAN_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
PRESETS = ["chest-large", "chest-medium", "chest-small", "dead-center-large", "dead-center-medium",
           "dead-center-small", "back-large", "back-medium", "back-small"]
DESIGN_MAX_BYTES = 100000
EXIT_USAGE = 2


def _readable(p):
    try:
        with open(p, "rb"):
            return True
    except OSError:
        return False


for _src in (COMPOSE_SRC, RENDER_SRC, MAKE_TEMPLATE_SRC):
    if not _readable(_src):
        pytest.skip(f"job script {_src} is missing or unreadable by uid {os.geteuid()} (set PYEXEC_JOBS_DIR, "
                    "or copy jobs/ beside tests/e2e)",
                    allow_module_level=True)

needs_blender = pytest.mark.skipif(not HAVE_BLENDER, reason=f"{BLENDER} is not installed")


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def sha256(path):
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def staging_leftovers(*dirs):
    """Every .pyexec-* entry below dirs (staging directories must not remain)."""
    found = []
    for d in dirs:
        for dirpath, dirnames, filenames in os.walk(d):
            found += [os.path.join(dirpath, n) for n in dirnames + filenames if n.startswith(".pyexec-")]
    return found


def snapshot(d):
    """{relative path: sha256 or 'dir'/'link'/'other'} of everything below d, never following links."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(d):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            rel = os.path.relpath(p, d)
            if stat.S_ISREG(st.st_mode):
                out[rel] = sha256(p)
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = "dir"
            elif stat.S_ISLNK(st.st_mode):
                out[rel] = "link->" + os.readlink(p)
            else:
                out[rel] = "other"
    return out


def cli(jobs_file, job, params=None, *extra, json_out=True, env=None, timeout=180):
    """`pyexec job JOB k=v... --jobs FILE [--json]`; params: dict or list of (k, v)."""
    items = params.items() if isinstance(params, dict) else (params or [])
    args = [PYEXEC, "job", job, *[f"{k}={v}" for k, v in items], *extra, "--jobs", str(jobs_file)]
    if json_out:
        args.append("--json")
    return subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env or CLEAN_ENV,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def cli_json(jobs_file, job, params=None, env=None, timeout=180):
    p = cli(jobs_file, job, params, env=env, timeout=timeout)
    assert p.stdout, f"no JSON on stdout (exit {p.returncode}); stderr: {p.stderr.decode(errors='replace')}"
    doc = json.loads(p.stdout)
    assert p.returncode == 0, (p.returncode, doc)
    return doc


def job_list(jobs_file, json_out=True):
    args = [PYEXEC, "job", "list", "--jobs", str(jobs_file)] + (["--json"] if json_out else [])
    return subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=CLEAN_ENV, timeout=30)


def png_header(width, height):
    """A PNG's signature and IHDR chunk (8-bit RGBA), nothing else."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr
            + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr)))


def red(px):
    r, g, b = px[:3]
    return r > 180 and g < 80 and b < 80


def white(px):
    return all(c > 230 for c in px[:3])


def assert_outputs_match(outputs, expected_paths):
    """outputs lists exactly expected_paths, each with the published file's size and SHA-256."""
    assert sorted(o["path"] for o in outputs) == sorted(str(p) for p in expected_paths), outputs
    for o in outputs:
        assert set(o) == {"path", "bytes", "sha256"}, o
        data = pathlib.Path(o["path"]).read_bytes()
        assert o["bytes"] == len(data), o
        assert o["sha256"] == hashlib.sha256(data).hexdigest(), o


def assert_published_file(path, dir_owner):
    st = os.lstat(path)
    assert stat.S_ISREG(st.st_mode), path
    assert stat.S_IMODE(st.st_mode) == 0o644, oct(st.st_mode)
    assert (st.st_uid, st.st_gid) == dir_owner, ((st.st_uid, st.st_gid), dir_owner)


# ---------------------------------------------------------------------------
# the jobs file and the directory layout
# ---------------------------------------------------------------------------

BASE_JOBS = """\
jobs:
  compose:
    description: Compose a customer's design onto a t-shirt template at a placement preset (Pillow)
    interpreter: /usr/bin/python3
    script: @SCRIPTS@/compose_design.py
    args: ["{script}", --template, "{template}", --design, "{design}", --preset, "{preset}", --output, "{output}"]
    limits:
      timeout: 60000
      memory: 1024
      pids: 8
      output: 65536
    params:
      template:
        type: input_file
        description: the t-shirt template image
        roots: ["@TEMPLATES@"]
        extensions: [png, jpg, jpeg]
        format: [png, jpeg]
        max_pixels: 40000000
        max_bytes: 104857600
      design:
        type: input_file
        description: the customer's design
        roots: ["@UPLOADS@"]
        extensions: [png, jpg, jpeg, webp]
        format: [png, jpeg, webp]
        max_pixels: 40000000
        max_bytes: @DESIGN_MAX@
      preset:
        type: enum
        description: where the design goes
        values: [chest-large, chest-medium, chest-small,
                 dead-center-large, dead-center-medium, dead-center-small,
                 back-large, back-medium, back-small]
      output:
        type: output_file
        description: the composited PNG
        roots: ["@COMPOSED@"]
        extensions: [png]

  render:
    description: Render a composited texture on the shirt of a .blend template with Cycles
    interpreter: /usr/bin/blender
    script: @SCRIPTS@/render_design.py
    args: [--background, "{blend}", -noaudio, --disable-autoexec, --python, "{script}", --,
           "{blend}", "{texture}", "{outdir}", "{samples}", "{no_animation}",
           --still-name, "{outdir.render}", --animation-name, "{outdir.animation}"]
    limits:
      timeout: 120000
      memory: 2048
      pids: 64
      output: 1048576
      file_size: 1024
    params:
      blend:
        type: input_file
        description: the .blend template
        roots: ["@TEMPLATES@"]
        extensions: [blend]
        format: blend
        max_bytes: 268435456
      texture:
        type: input_file
        description: the composited PNG (from compose)
        roots: ["@COMPOSED@"]
        extensions: [png]
        format: png
        max_pixels: 67108864
      design_name:
        type: string
        description: the name the outputs take (NAME_render.png, NAME_animation.mp4); default the texture's file name without its extension
        pattern: "[A-Za-z0-9_-][A-Za-z0-9._-]*"
        max_length: 64
        default_stem: texture
      outdir:
        type: output_dir
        description: where {design_name}_render.png and {design_name}_animation.mp4 go
        roots: ["@RENDERS@"]
        files:
          render: {name: "{design_name}_render.png", result: renderPath}
          animation: {name: "{design_name}_animation.mp4", result: animationPath}
      samples:
        type: int
        description: Cycles samples
        min: 1
        max: 4096
        default: "128"
      no_animation:
        type: bool
        description: render the still only
        flag: --no-animation

  label:
    description: Echo two strings back (argv, verbatim)
    interpreter: /usr/bin/python3
    script: @SCRIPTS@/echo_args.py
    args: ["{script}", --name, "{name}", --free, "{free}"]
    limits: {timeout: 20000}
    params:
      name:
        type: string
        pattern: "[A-Za-z0-9 _-]+"
        max_length: 200
      free:
        type: string
        max_length: 1000
        default: "nothing"
"""

ECHO_ARGS = """\
import json, sys
print(json.dumps(sys.argv[1:]))
"""


class Layout:
    """A directory with the four roots, the inputs, copies of the scripts and a jobs file."""

    def __init__(self, base, assets, extra_jobs=""):
        self.base = pathlib.Path(base)
        self.base.mkdir(exist_ok=True)
        self.templates = self.base / "templates"
        self.uploads = self.base / "uploads"
        self.composed = self.base / "composed"
        self.renders = self.base / "renders"
        self.scripts = self.base / "scripts"
        for d in (self.templates, self.uploads, self.composed, self.renders, self.scripts):
            d.mkdir()
        for name in ("compose_design.py", "render_design.py"):
            shutil.copyfile(assets.scripts / name, self.scripts / name)
        (self.scripts / "echo_args.py").write_text(ECHO_ARGS)
        self.template = self.templates / "template.png"
        self.design = self.uploads / "design.png"
        shutil.copyfile(assets.template, self.template)
        shutil.copyfile(assets.design, self.design)
        self.blend = self.templates / "shirt.blend"
        if assets.blend:
            shutil.copyfile(assets.blend, self.blend)
        else:
            self.blend.write_bytes(b"BLENDER-v304 (not a real template: Blender is not installed)")
        for p in self.base.rglob("*"):
            p.chmod(0o755 if p.is_dir() else 0o644)
        self.jobs_file = self.base / "jobs.yaml"
        self.write_jobs(extra_jobs)

    def sub(self, text):
        return (text.replace("@SCRIPTS@", str(self.scripts)).replace("@TEMPLATES@", str(self.templates))
                .replace("@UPLOADS@", str(self.uploads)).replace("@COMPOSED@", str(self.composed))
                .replace("@RENDERS@", str(self.renders)).replace("@BASE@", str(self.base))
                .replace("@DESIGN_MAX@", str(DESIGN_MAX_BYTES)))

    def write_jobs(self, extra_jobs=""):
        self.jobs_file.write_text(self.sub(BASE_JOBS + extra_jobs))
        return self.jobs_file

    def add_script(self, name, code):
        p = self.scripts / name
        p.write_text(code)
        p.chmod(0o644)
        return p

    def compose_params(self, **kw):
        params = {"template": self.template, "design": self.design, "preset": "chest-large",
                  "output": self.composed / "out.png"}
        params.update(kw)
        return {k: str(v) for k, v in params.items() if v is not None}

    def output_roots(self):
        return (self.composed, self.renders)


class Assets:
    pass


def blender_env(scratch):
    home, tmp = scratch / "home", scratch / "tmp"
    home.mkdir(exist_ok=True)
    tmp.mkdir(exist_ok=True)
    return {**CLEAN_ENV, "HOME": str(home), "TMPDIR": str(tmp)}


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    """The scripts (copied), a 64x64 white template PNG, a 16x16 red design and, with Blender, a .blend."""
    a = Assets()
    base = tmp_path_factory.mktemp("job-assets")
    a.scripts = base / "scripts"
    a.scripts.mkdir()
    for src in (COMPOSE_SRC, RENDER_SRC, MAKE_TEMPLATE_SRC):
        shutil.copyfile(src, a.scripts / src.name)
    a.template = base / "template.png"
    Image.new("RGB", (64, 64), (255, 255, 255)).save(a.template)
    a.design = base / "design.png"
    Image.new("RGB", (16, 16), (255, 0, 0)).save(a.design)
    a.blend = None
    if HAVE_BLENDER:
        scratch = base / "scratch"
        scratch.mkdir()
        blend = base / "shirt.blend"
        p = subprocess.run([BLENDER, "--background", "--factory-startup", "--python",
                            str(a.scripts / "make_shirt_blend.py"), "--", str(blend)],
                           env=blender_env(scratch), capture_output=True, text=True, timeout=180,
                           stdin=subprocess.DEVNULL)
        assert p.returncode == 0 and blend.is_file(), p.stdout[-2000:] + p.stderr[-2000:]
        a.blend = blend
    return a


@pytest.fixture
def lay(tmp_path, assets):
    return Layout(tmp_path / "lay", assets)


# ---------------------------------------------------------------------------
# a small HTTP server fixture (the pattern of test_serve.py)
# ---------------------------------------------------------------------------


def start_server(log_dir, *flags, env=None, timeout=30):
    """test_serve's start_server for the jobs tests: no rate limit, no
    DEFAULT_POLICY, and a client that waits as long as a render may take."""
    srv = serve_start(pathlib.Path(log_dir), "--rate-limit-max", "0", *flags, env=env, timeout=timeout,
                      default_policy=None)
    srv.client = srv.new_client(timeout=180)
    return srv


def run_job(srv, name, params):
    """POST /api/jobs/NAME with these parameters."""
    return srv.post(f"/api/jobs/{name}", {"params": params})


# ---------------------------------------------------------------------------
# the world of refusals: one layout with every hostile file, and a server on it
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory, assets):
    w = Layout(tmp_path_factory.mktemp("jobs-world"), assets)
    U, C, R, B = w.uploads, w.composed, w.renders, w.base
    # symlinks in every component of an input path
    (U / "realdir" / "sub").mkdir(parents=True)
    shutil.copyfile(w.design, U / "realdir" / "design.png")
    shutil.copyfile(w.design, U / "realdir" / "sub" / "design.png")
    os.symlink("realdir", U / "linkdir")                       # first level
    os.symlink("sub", U / "realdir" / "deeplink")              # deeper level
    os.symlink("design.png", U / "alias.png")                  # final, pointing inside the same root
    os.symlink(str(U / "design.png"), U / "alias-abs.png")     # final, absolute, inside the same root
    os.symlink("/etc/passwd", U / "passwd.png")                # final, pointing outside
    # other kinds of files
    Image.new("RGB", (8, 8), (255, 0, 0)).save(U / "design.gif")
    shutil.copyfile(w.design, U / "design")
    (U / "adir.png").mkdir()
    os.mkfifo(U / "fifo.png")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(U / "sock.png"))
    w.sock = sock
    if PRIVILEGED:
        os.mknod(U / "null.png", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    (U / "big.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * (DESIGN_MAX_BYTES + 1 - 8))
    # a sibling directory whose name shares the roots' prefixes
    for evil in ("uploads-evil", "composed-evil", "renders-evil"):
        (B / evil).mkdir()
    shutil.copyfile(w.design, B / "uploads-evil" / "design.png")
    # hostile output locations
    (C / "realdir").mkdir()
    os.symlink("realdir", C / "linkdir")
    shutil.copyfile(w.design, C / "existing.png")
    os.symlink("existing.png", C / "link.png")
    (C / "adir.png").mkdir()
    os.mkfifo(C / "fifo.png")
    shutil.copyfile(w.design, C / "texture.png")
    (R / "realdir").mkdir()
    os.symlink("realdir", R / "linkdir")
    (R / "file.txt").write_text("not a directory")
    for p in (U, C, R):
        for q in p.rglob("*"):
            if q.is_dir() and not q.is_symlink():
                q.chmod(0o755)
    yield w
    sock.close()


@pytest.fixture(scope="module")
def server(world, tmp_path_factory):
    """pyexec serve on the world's jobs file, given through the environment (JOBS_FILE)."""
    srv = start_server(tmp_path_factory.mktemp("jobs-serve"), env={"JOBS_FILE": world.jobs_file})
    yield srv
    code = srv.stop()
    assert code == 0, f"pyexec serve exited {code}: {srv.log_text()[-3000:]}"


# ---------------------------------------------------------------------------
# pyexec job list
# ---------------------------------------------------------------------------


def test_job_list_json(lay):
    p = job_list(lay.jobs_file)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    jobs = {j["name"]: j for j in doc["jobs"]}
    assert list(jobs) == ["compose", "render", "label"]
    assert jobs["compose"]["description"].startswith("Compose a customer's design")
    for j in jobs.values():
        assert j["readiness"] == {"ready": True, "problems": []}, j
    c = jobs["compose"]["params"]
    assert list(c) == ["template", "design", "preset", "output"]
    assert c["template"] == {"type": "input_file", "required": True, "description": "the t-shirt template image",
                             "roots": [str(lay.templates)], "extensions": ["png", "jpg", "jpeg"],
                             "maxBytes": 104857600, "formats": ["png", "jpeg"], "maxPixels": 40000000}
    assert c["design"]["maxBytes"] == DESIGN_MAX_BYTES
    assert c["preset"] == {"type": "enum", "required": True, "description": "where the design goes",
                           "values": PRESETS}
    assert c["output"] == {"type": "output_file", "required": True, "description": "the composited PNG",
                           "roots": [str(lay.composed)], "extensions": ["png"]}
    r = jobs["render"]["params"]
    assert r["samples"] == {"type": "int", "required": False, "description": "Cycles samples", "default": "128",
                            "min": 1, "max": 4096}
    assert r["no_animation"] == {"type": "bool", "required": False, "description": "render the still only",
                                 "flag": "--no-animation"}
    assert r["outdir"]["type"] == "output_dir" and r["outdir"]["roots"] == [str(lay.renders)]
    s = jobs["label"]["params"]
    assert s["name"] == {"type": "string", "required": True, "pattern": "[A-Za-z0-9 _-]+", "maxLength": 200}
    assert s["free"]["required"] is False and s["free"]["default"] == "nothing"


def test_job_list_human(lay):
    p = job_list(lay.jobs_file, json_out=False)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.decode().splitlines()
    assert len(lines) == 3, lines
    assert lines[0].split()[0] == "compose" and "Compose a customer's design" in lines[0]
    assert lines[1].split()[0] == "render" and lines[2].split()[0] == "label"
    assert "not ready" not in p.stdout.decode()


def test_job_list_readiness_problems(lay):
    missing_root = lay.base / "no-such-root"
    lay.write_jobs(f"""
  broken:
    description: cannot run here
    interpreter: /usr/bin/no-such-interpreter-{uuid.uuid4().hex[:6]}
    script: @SCRIPTS@/no-such-script.py
    args: ["{{script}}", "{{src}}"]
    params:
      src: {{type: input_file, roots: ["{missing_root}"], extensions: [png]}}
""")
    doc = json.loads(job_list(lay.jobs_file).stdout)
    jobs = {j["name"]: j for j in doc["jobs"]}
    assert jobs["compose"]["readiness"]["ready"] is True
    rd = jobs["broken"]["readiness"]
    assert rd["ready"] is False
    text = "\n".join(rd["problems"])
    assert len(rd["problems"]) == 3, rd
    assert "interpreter /usr/bin/no-such-interpreter-" in text and "is not installed" in text
    assert f"script {lay.scripts}/no-such-script.py is missing" in text
    assert f"parameter src: root {missing_root} does not exist" in text
    human = job_list(lay.jobs_file, json_out=False).stdout.decode()
    broken_line = [ln for ln in human.splitlines() if ln.startswith("broken")]
    assert broken_line and "(not ready)" in broken_line[0], human
    assert "(not ready)" not in [ln for ln in human.splitlines() if ln.startswith("compose")][0]
    # a root of compose disappears: compose is not ready, and says which root
    shutil.rmtree(lay.renders)
    jobs = {j["name"]: j for j in json.loads(job_list(lay.jobs_file).stdout)["jobs"]}
    assert jobs["compose"]["readiness"]["ready"] is True
    assert jobs["render"]["readiness"] == {"ready": False,
                                           "problems": [f"parameter outdir: root {lay.renders} does not exist"]}


def test_job_cli_usage_errors(lay, tmp_path):
    p = job_list(tmp_path / "no-such-jobs.yaml")
    assert p.returncode == EXIT_USAGE and b"no jobs file" in p.stderr
    p = cli(lay.jobs_file, "nosuch", {"a": "b"})
    assert p.returncode == EXIT_USAGE and b"no job named 'nosuch'" in p.stderr
    p = cli(lay.jobs_file, "compose", None, "not-a-key-value")
    assert p.returncode == EXIT_USAGE and b"expected key=value" in p.stderr


# ---------------------------------------------------------------------------
# compose through the CLI
# ---------------------------------------------------------------------------


def test_compose_cli_json(lay):
    if PRIVILEGED:
        os.chown(lay.composed, 4242, 4343)
    owner = (os.stat(lay.composed).st_uid, os.stat(lay.composed).st_gid)
    before = snapshot(lay.templates), snapshot(lay.uploads)
    out = lay.composed / "out.png"
    doc = cli_json(lay.jobs_file, "compose", lay.compose_params(output=out))
    assert doc["status"] == "ok" and doc["exitCode"] == 0, doc
    assert doc["job"] == "compose"
    assert doc["stdout"].startswith("composed preset=chest-large template=64x64"), doc["stdout"]
    assert_outputs_match(doc["outputs"], [out])
    assert_published_file(out, owner)
    im = Image.open(out).convert("RGB")
    assert im.size == (64, 64)
    # chest-large on 64x64: box x 19..45, y 13..32; the square design is placed 19x19 at (22, 13)
    assert red(im.getpixel((31, 22))) and red(im.getpixel((23, 14))) and red(im.getpixel((40, 31)))
    assert white(im.getpixel((2, 2))) and white(im.getpixel((31, 50))) and white(im.getpixel((10, 22)))
    assert os.listdir(lay.composed) == ["out.png"]
    assert staging_leftovers(*lay.output_roots()) == []
    assert (snapshot(lay.templates), snapshot(lay.uploads)) == before


def test_compose_cli_human_and_uppercase_extension(lay):
    shutil.copyfile(lay.design, lay.uploads / "DESIGN.PNG")
    out = lay.composed / "OUT.PNG"
    p = cli(lay.jobs_file, "compose", lay.compose_params(design=lay.uploads / "DESIGN.PNG", output=out,
                                                         preset="dead-center-small"), json_out=False)
    assert p.returncode == 0, p.stderr
    text = p.stdout.decode()
    assert "composed preset=dead-center-small" in text
    assert f"output: {out} ({out.stat().st_size} bytes, sha256 {sha256(out)})" in text
    im = Image.open(out).convert("RGB")
    assert red(im.getpixel((32, 32))) and white(im.getpixel((2, 2)))
    assert staging_leftovers(*lay.output_roots()) == []


def test_compose_failure_publishes_nothing(lay):
    # a PNG by its header (it passes the format check), whose data does not decode
    (lay.uploads / "corrupt.png").write_bytes(png_header(8, 8) + b"this is not image data")
    out = lay.composed / "out.png"
    out.write_bytes(b"old output")
    p = cli(lay.jobs_file, "compose", lay.compose_params(design=lay.uploads / "corrupt.png", output=out))
    doc = json.loads(p.stdout)
    assert doc["status"] == "runtime_error" and doc["exitCode"] == 1, doc
    assert "compose_design.py: error: design" in doc["stderr"], doc["stderr"]
    assert doc["outputs"] == []
    assert out.read_bytes() == b"old output"
    assert sorted(os.listdir(lay.composed)) == ["out.png"]
    assert staging_leftovers(*lay.output_roots()) == []
    # without --json: the status goes to stderr and the exit code is 1
    p = cli(lay.jobs_file, "compose", lay.compose_params(design=lay.uploads / "corrupt.png", output=out),
            json_out=False)
    assert p.returncode == 1 and b"runtime_error" in p.stderr
    assert out.read_bytes() == b"old output" and staging_leftovers(*lay.output_roots()) == []


def test_compose_overwrites_existing_regular_output(lay):
    out = lay.composed / "out.png"
    out.write_bytes(b"old output")
    doc = cli_json(lay.jobs_file, "compose", lay.compose_params(output=out))
    assert doc["status"] == "ok"
    assert_outputs_match(doc["outputs"], [out])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------------
# refusals: exit 2 on the CLI, 400 with field params.NAME over HTTP
# ---------------------------------------------------------------------------

# id: (job, overrides (None removes the parameter), parameter named, message fragments)
# @U@ uploads, @T@ templates, @C@ composed, @R@ renders, @B@ the layout's base
ENUM_LIST = "must be one of: " + ", ".join(PRESETS)
REFUSALS = {
    # '..' in any form
    "dotdot-middle": ("compose", {"design": "@U@/realdir/../design.png"}, "design", ["'..' is not allowed"]),
    "dotdot-trailing": ("compose", {"design": "@U@/realdir/.."}, "design", ["'..' is not allowed"]),
    "dotdot-only": ("compose", {"design": "@U@/.."}, "design", ["'..' is not allowed"]),
    "dotdot-escape": ("compose", {"design": "@U@/../templates/template.png"}, "design", ["'..' is not allowed"]),
    "dotdot-deep-escape": ("compose", {"design": "@U@/../../../../../../etc/passwd"}, "design",
                           ["'..' is not allowed"]),
    # a symlink in each component
    "symlink-first-level-dir": ("compose", {"design": "@U@/linkdir/design.png"}, "design",
                                ["has a symlink in its path"]),
    "symlink-deeper-dir": ("compose", {"design": "@U@/realdir/deeplink/design.png"}, "design",
                           ["has a symlink in its path"]),
    "symlink-final-inside-root": ("compose", {"design": "@U@/alias.png"}, "design", ["has a symlink in its path"]),
    "symlink-final-absolute-inside-root": ("compose", {"design": "@U@/alias-abs.png"}, "design",
                                           ["has a symlink in its path"]),
    "symlink-final-outside": ("compose", {"design": "@U@/passwd.png"}, "design", ["has a symlink in its path"]),
    # extensions
    "wrong-extension": ("compose", {"design": "@U@/design.gif"}, "design",
                        ["does not have an allowed extension (png, jpg, jpeg, webp)"]),
    "no-extension": ("compose", {"design": "@U@/design"}, "design", ["does not have an allowed extension"]),
    "template-wrong-extension": ("compose", {"template": "@T@/shirt.blend"}, "template",
                                 ["does not have an allowed extension (png, jpg, jpeg)"]),
    # outside the roots
    "outside-etc-passwd": ("compose", {"design": "/etc/passwd"}, "design",
                           ["'/etc/passwd' is outside the allowed roots (@U@)"]),
    "outside-sibling-prefix": ("compose", {"design": "@B@/uploads-evil/design.png"}, "design",
                               ["is outside the allowed roots (@U@)"]),
    "outside-root-itself": ("compose", {"design": "@U@"}, "design", ["is outside the allowed roots"]),
    "outside-root-slash": ("compose", {"design": "@U@/"}, "design", ["is outside the allowed roots"]),
    "outside-other-root": ("compose", {"template": "@U@/design.png"}, "template",
                           ["is outside the allowed roots (@T@)"]),
    # relative paths
    "relative": ("compose", {"design": "uploads/design.png"}, "design", ["must be an absolute path"]),
    "relative-dot": ("compose", {"design": "./design.png"}, "design", ["must be an absolute path"]),
    "empty-path": ("compose", {"design": ""}, "design", ["must be an absolute path"]),
    # what the path names
    "missing-file": ("compose", {"design": "@U@/missing.png"}, "design", ["'@U@/missing.png' does not exist"]),
    "directory": ("compose", {"design": "@U@/adir.png"}, "design", ["is a directory; a regular file is required"]),
    "fifo": ("compose", {"design": "@U@/fifo.png"}, "design", ["is a FIFO; a regular file is required"]),
    "socket": ("compose", {"design": "@U@/sock.png"}, "design", ["is a socket; a regular file is required"]),
    "device": ("compose", {"design": "@U@/null.png"}, "design", ["is a device; a regular file is required"]),
    "over-max-bytes": ("compose", {"design": "@U@/big.png"}, "design",
                       [f"is {DESIGN_MAX_BYTES + 1} bytes; the limit is {DESIGN_MAX_BYTES}"]),
    # enum
    "enum-unknown": ("compose", {"preset": "chest-huge"}, "preset", [ENUM_LIST]),
    "enum-semicolon": ("compose", {"preset": "chest-large; rm -rf /"}, "preset", [ENUM_LIST]),
    "enum-dollar-paren": ("compose", {"preset": "$(touch /tmp/pwned)"}, "preset", [ENUM_LIST]),
    "enum-dollar-paren-local": ("compose", {"preset": "$(touch @B@/pwned-enum)"}, "preset", [ENUM_LIST]),
    "enum-backticks": ("compose", {"preset": "`touch @B@/pwned-enum-bt`"}, "preset", [ENUM_LIST]),
    "enum-empty": ("compose", {"preset": ""}, "preset", [ENUM_LIST]),
    "enum-case": ("compose", {"preset": "Chest-Large"}, "preset", [ENUM_LIST]),
    # unknown and missing parameters
    "unknown-parameter": ("compose", {"colour": "red"}, "colour",
                          ["unknown parameter 'colour' for job 'compose' "
                           "(its parameters: template, design, preset, output)"]),
    "missing-preset": ("compose", {"preset": None}, "preset", ["parameter 'preset': is required"]),
    "missing-output": ("compose", {"output": None}, "output", ["parameter 'output': is required"]),
    "missing-template": ("compose", {"template": None}, "template", ["parameter 'template': is required"]),
    # output_file
    "output-dotdot": ("compose", {"output": "@C@/realdir/../out.png"}, "output", ["'..' is not allowed"]),
    "output-parent-missing": ("compose", {"output": "@C@/nope/out.png"}, "output",
                              ["the directory of '@C@/nope/out.png' does not exist"]),
    "output-symlink-dir": ("compose", {"output": "@C@/linkdir/out.png"}, "output",
                           ["the directory of '@C@/linkdir/out.png' has a symlink in its path"]),
    "output-is-symlink": ("compose", {"output": "@C@/link.png"}, "output", ["exists and is a symlink"]),
    "output-is-directory": ("compose", {"output": "@C@/adir.png"}, "output", ["exists and is a directory"]),
    "output-is-fifo": ("compose", {"output": "@C@/fifo.png"}, "output", ["exists and is a FIFO"]),
    "output-wrong-extension": ("compose", {"output": "@C@/out.jpg"}, "output",
                               ["does not have an allowed extension (png)"]),
    "output-hidden-name": ("compose", {"output": "@C@/.png"}, "output", ["must end in a plain file name"]),
    "output-outside": ("compose", {"output": "/tmp/out.png"}, "output", ["is outside the allowed roots (@C@)"]),
    "output-sibling-prefix": ("compose", {"output": "@B@/composed-evil/out.png"}, "output",
                              ["is outside the allowed roots (@C@)"]),
    "output-relative": ("compose", {"output": "composed/out.png"}, "output", ["must be an absolute path"]),
    # int and bool
    "samples-zero": ("render", {"samples": "0"}, "samples", ["must be between 1 and 4096, got 0"]),
    "samples-5000": ("render", {"samples": "5000"}, "samples", ["must be between 1 and 4096, got 5000"]),
    "samples-negative": ("render", {"samples": "-4"}, "samples", ["must be between 1 and 4096, got -4"]),
    "samples-non-numeric": ("render", {"samples": "12abc"}, "samples", ["must be a whole number, got '12abc'"]),
    "samples-fraction": ("render", {"samples": "4.5"}, "samples", ["must be a whole number, got '4.5'"]),
    "samples-empty": ("render", {"samples": ""}, "samples", ["must be a whole number"]),
    "samples-huge": ("render", {"samples": "99999999999999999999999"}, "samples", ["must be a whole number"]),
    "samples-injection": ("render", {"samples": "4; touch @B@/pwned-int"}, "samples", ["must be a whole number"]),
    "bool-garbage": ("render", {"no_animation": "maybe"}, "no_animation", ["must be true or false"]),
    # output_dir
    "outdir-symlink": ("render", {"outdir": "@R@/linkdir"}, "outdir", ["has a symlink in its path"]),
    "outdir-under-symlink": ("render", {"outdir": "@R@/linkdir/new"}, "outdir",
                             ["'@R@/linkdir/new' has a symlink in its path"]),
    "outdir-is-file": ("render", {"outdir": "@R@/file.txt"}, "outdir", ["is not a directory"]),
    "outdir-parent-missing": ("render", {"outdir": "@R@/no/such"}, "outdir",
                              ["the parent of '@R@/no/such' does not exist"]),
    "outdir-root-itself": ("render", {"outdir": "@R@"}, "outdir", ["is outside the allowed roots"]),
    "outdir-dotdot": ("render", {"outdir": "@R@/realdir/.."}, "outdir", ["'..' is not allowed"]),
    "outdir-sibling-prefix": ("render", {"outdir": "@B@/renders-evil/x"}, "outdir", ["outside the allowed roots"]),
    "blend-wrong-extension": ("render", {"blend": "@T@/template.png"}, "blend",
                              ["does not have an allowed extension (blend)"]),
    "texture-outside-root": ("render", {"texture": "@U@/design.png"}, "texture",
                             ["is outside the allowed roots (@C@)"]),
    "render-unknown-parameter": ("render", {"engine": "eevee"}, "engine",
                                 ["(its parameters: blend, texture, design_name, outdir, samples, no_animation)"]),
    # strings with a pattern
    "string-dollar-paren": ("label", {"name": "$(touch @B@/pwned-str)"}, "name",
                            ["does not match the pattern [A-Za-z0-9 _-]+"]),
    "string-backticks": ("label", {"name": "`touch @B@/pwned-str-bt`"}, "name", ["does not match the pattern"]),
    "string-semicolon": ("label", {"name": "ok; touch @B@/pwned-str-sc"}, "name", ["does not match the pattern"]),
    "string-too-long": ("label", {"name": "x" * 201}, "name", ["must be at most 200 bytes"]),
    "string-missing": ("label", {"name": None}, "name", ["parameter 'name': is required"]),
}


def refusal_params(w, job, overrides):
    if job == "compose":
        params = w.compose_params(output=w.composed / "refused.png")
    elif job == "render":
        params = {"blend": str(w.blend), "texture": str(w.composed / "texture.png"),
                  "outdir": str(w.renders / "refused"), "samples": "4"}
    else:
        params = {"name": "Alice", "free": "x"}
    subs = {"@U@": w.uploads, "@T@": w.templates, "@C@": w.composed, "@R@": w.renders, "@B@": w.base}

    def s(text):
        for k, v in subs.items():
            text = text.replace(k, str(v))
        return text

    for k, v in overrides.items():
        if v is None:
            params.pop(k, None)
        else:
            params[k] = s(v)
    return params, s


def check_no_side_effects(w, pwned_before):
    assert staging_leftovers(*w.output_roots()) == []
    assert not (w.composed / "refused.png").exists()
    assert not list(w.base.glob("pwned*"))
    if not pwned_before:
        assert not os.path.exists("/tmp/pwned"), "a shell ran the value"


def refusal_case(case):
    job, overrides, name, fragments = REFUSALS[case]
    if case == "device" and not PRIVILEGED:
        pytest.skip("creating a device node under the root needs root (mknod)")
    return job, overrides, name, fragments


@pytest.mark.parametrize("case", list(REFUSALS))
def test_refused_cli(world, case):
    job, overrides, name, fragments = refusal_case(case)
    params, s = refusal_params(world, job, overrides)
    pwned_before = os.path.exists("/tmp/pwned")
    p = cli(world.jobs_file, job, params)
    err = p.stderr.decode()
    assert p.returncode == EXIT_USAGE, (p.returncode, err, p.stdout[:500])
    assert p.stdout == b"", p.stdout[:500]
    assert f"parameter '{name}'" in err, err
    for f in fragments:
        assert s(f) in err, err
    check_no_side_effects(world, pwned_before)


@pytest.mark.parametrize("case", list(REFUSALS))
def test_refused_http(world, server, case):
    job, overrides, name, fragments = refusal_case(case)
    params, s = refusal_params(world, job, overrides)
    pwned_before = os.path.exists("/tmp/pwned")
    r = run_job(server, job, params)
    assert r.status == 400, r
    err = r.error()
    assert err["code"] == "invalid_parameter", err
    assert err["field"] == f"params.{name}", err
    for f in fragments:
        assert s(f) in err["message"], err
    check_no_side_effects(world, pwned_before)


def test_refused_duplicate_cli_parameter(world):
    params = list(world.compose_params(output=world.composed / "refused.png").items()) + [("preset", "back-small")]
    p = cli(world.jobs_file, "compose", params)
    assert p.returncode == EXIT_USAGE
    assert b"parameter 'preset' is given twice" in p.stderr
    check_no_side_effects(world, True)


def test_refused_request_leaves_no_output_directory(lay):
    """A refused request has no effect on the host: the output_dir it names is
    not created when a later parameter (samples) is refused."""
    outdir = lay.renders / "never-made"
    p = cli(lay.jobs_file, "render", {"blend": lay.blend, "texture": lay.composed / "t.png", "outdir": outdir,
                                      "samples": "4"})
    assert p.returncode == EXIT_USAGE and b"parameter 'texture'" in p.stderr  # texture (before outdir) missing
    assert not outdir.exists()
    shutil.copyfile(lay.design, lay.composed / "t.png")
    p = cli(lay.jobs_file, "render", {"blend": lay.blend, "texture": lay.composed / "t.png", "outdir": outdir,
                                      "samples": "0"})
    assert p.returncode == EXIT_USAGE and b"parameter 'samples'" in p.stderr
    assert staging_leftovers(*lay.output_roots()) == []
    assert os.listdir(lay.renders) == [], "a refused request created its output directory"


def test_http_json_typed_values_refused(world, server):
    base = {"blend": str(world.blend), "texture": str(world.composed / "texture.png"),
            "outdir": str(world.renders / "refused")}
    cases = [({"samples": 0}, "samples", "must be between 1 and 4096, got 0"),
             ({"samples": 5000}, "samples", "got 5000"),
             ({"samples": 4.5}, "samples", "must be a whole number"),
             ({"samples": True}, "samples", "must be a whole number"),
             ({"no_animation": "maybe"}, "no_animation", "must be true or false"),
             ({"no_animation": 2}, "no_animation", "must be true or false"),
             ({"blend": 5}, "blend", "must be a path")]
    for extra, name, msg in cases:
        r = run_job(server, "render", {**base, "samples": 4, **extra})
        assert r.status == 400, (extra, r)
        err = r.error()
        assert err["field"] == f"params.{name}" and msg in err["message"], (extra, err)
    r = run_job(server, "compose", {**world.compose_params(output=world.composed / "refused.png"), "preset": 3})
    assert r.status == 400 and r.error()["field"] == "params.preset" and ENUM_LIST in r.error()["message"]
    check_no_side_effects(world, True)


# ---------------------------------------------------------------------------
# strings reach the script verbatim, as one argument each, with no shell
# ---------------------------------------------------------------------------


def test_strings_passed_verbatim_without_shell(lay):
    marker = lay.base / f"pwned-{uuid.uuid4().hex[:8]}"
    tmp_marker = f"/tmp/pyexec-pwned-{uuid.uuid4().hex[:8]}"
    free = f"$(touch {marker}) `touch {tmp_marker}`; touch {marker}2 | x > {marker}3 && '\"\\ *"
    doc = cli_json(lay.jobs_file, "label", {"name": "Alice Smith-Jones_2", "free": free})
    assert doc["status"] == "ok", doc
    assert json.loads(doc["stdout"]) == ["--name", "Alice Smith-Jones_2", "--free", free]
    doc = cli_json(lay.jobs_file, "label", {"name": "Bob"})
    assert json.loads(doc["stdout"]) == ["--name", "Bob", "--free", "nothing"]  # the default
    assert not list(lay.base.glob("pwned-*")) and not os.path.exists(tmp_marker)


# ---------------------------------------------------------------------------
# outputs that were not produced
# ---------------------------------------------------------------------------

OUTPUT_JOBS = """
  noop:
    interpreter: /usr/bin/python3
    script: @SCRIPTS@/noop.py
    args: ["{script}", "{mode}", "{output}"]
    params:
      mode: {type: enum, values: [nothing, other-name, symlink, directory, fail]}
      output: {type: output_file, roots: ["@COMPOSED@"], extensions: [png]}
  noopdir:
    interpreter: /usr/bin/python3
    script: @SCRIPTS@/noop.py
    args: ["{script}", "{mode}", "{outdir}"]
    params:
      mode: {type: enum, values: [nothing, hidden, symlink, directory]}
      outdir: {type: output_dir, roots: ["@RENDERS@"]}
"""

NOOP = r"""
import os, sys
mode, out = sys.argv[1], sys.argv[2]
d = out if out.startswith("/job/out/") and "." not in os.path.basename(out) else os.path.dirname(out)
if mode == "other-name":
    open(os.path.join(d, "other.png"), "wb").write(b"x")
elif mode == "symlink":
    os.symlink("/etc/passwd", out if d != out else os.path.join(d, "render.png"))
elif mode == "directory":
    os.mkdir(out if d != out else os.path.join(d, "render.png"))
elif mode == "hidden":
    open(os.path.join(d, ".hidden.png"), "wb").write(b"x")
elif mode == "fail":
    open(out, "wb").write(b"partial")
    sys.exit(1)
print("exiting", mode)
"""


@pytest.mark.parametrize("mode", ["nothing", "other-name", "symlink", "directory"])
def test_declared_output_not_produced(lay, mode):
    lay.write_jobs(OUTPUT_JOBS)
    lay.add_script("noop.py", NOOP)
    out = lay.composed / "out.png"
    doc = json.loads(cli(lay.jobs_file, "noop", {"mode": mode, "output": out}).stdout)
    assert doc["exitCode"] == 0 and doc["stdout"] == f"exiting {mode}\n", doc
    assert doc["status"] == "runtime_error", doc
    assert doc["message"] == f"declared output 'output' ({out}) was not produced", doc
    assert doc["outputs"] == []
    assert os.listdir(lay.composed) == []
    assert staging_leftovers(*lay.output_roots()) == []


def test_failed_run_publishes_nothing(lay):
    lay.write_jobs(OUTPUT_JOBS)
    lay.add_script("noop.py", NOOP)
    out = lay.composed / "out.png"
    doc = json.loads(cli(lay.jobs_file, "noop", {"mode": "fail", "output": out}).stdout)
    assert doc["status"] == "runtime_error" and doc["exitCode"] == 1 and doc["outputs"] == [], doc
    assert os.listdir(lay.composed) == []
    assert staging_leftovers(*lay.output_roots()) == []


@pytest.mark.parametrize("mode", ["nothing", "hidden", "symlink", "directory"])
def test_declared_output_dir_received_nothing(lay, mode):
    lay.write_jobs(OUTPUT_JOBS)
    lay.add_script("noop.py", NOOP)
    outdir = lay.renders / "r"
    doc = json.loads(cli(lay.jobs_file, "noopdir", {"mode": mode, "outdir": outdir}).stdout)
    assert doc["exitCode"] == 0, doc
    assert doc["status"] == "runtime_error", doc
    assert doc["message"] == f"declared output 'outdir' ({outdir}) received no files", doc
    assert doc["outputs"] == []
    assert [p.name for p in lay.renders.rglob("*") if p != outdir] == []
    assert staging_leftovers(*lay.output_roots()) == []


MANY = """
import sys
for i in range(70):
    with open(f"{sys.argv[1]}/frame-{i:03d}.txt", "w") as f:
        f.write(str(i))
print("wrote 70 files")
"""


def test_output_dir_many_files_none_lost(lay):
    """Every file a job leaves in its output_dir is published, or the run is
    an error: never status ok with some of its files silently dropped."""
    lay.write_jobs("""
  many:
    interpreter: /usr/bin/python3
    script: @SCRIPTS@/many.py
    args: ["{script}", "{outdir}"]
    params:
      outdir: {type: output_dir, roots: ["@RENDERS@"]}
""")
    lay.add_script("many.py", MANY)
    outdir = lay.renders / "frames"
    doc = json.loads(cli(lay.jobs_file, "many", {"outdir": outdir}).stdout)
    assert doc["stdout"] == "wrote 70 files\n", doc
    published = sorted(os.listdir(outdir)) if outdir.exists() else []
    assert staging_leftovers(*lay.output_roots()) == []
    if doc["status"] == "ok":
        assert len(doc["outputs"]) == 70, f"status ok but {len(doc['outputs'])} of 70 outputs listed"
        assert published == [f"frame-{i:03d}.txt" for i in range(70)], f"{len(published)} of 70 files published"
        assert_outputs_match(doc["outputs"], [outdir / n for n in published])
    else:
        assert doc["status"] == "runtime_error" and "70" in (doc["message"] or ""), doc


# ---------------------------------------------------------------------------
# the job's sandbox
# ---------------------------------------------------------------------------

PROBE = r"""
import json, os, socket, sys
out = sys.argv[1]
design = sys.argv[2]
reads, writes = sys.argv[3].split("|"), sys.argv[4].split("|")
port = int(sys.argv[5])
res = {"read": {}, "write": {}, "listdir": {}, "connect": {}}
for p in reads:
    try:
        with open(p, "rb") as f:
            res["read"][p] = "READ " + f.read().decode(errors="replace")[:200]
    except Exception as e:
        res["read"][p] = type(e).__name__
for p in writes:
    try:
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(b"planted")
        res["write"][p] = "WROTE"
    except Exception as e:
        res["write"][p] = type(e).__name__
for p in (os.path.dirname(design), "/job/in", "/job"):
    try:
        res["listdir"][p] = sorted(os.listdir(p))
    except Exception as e:
        res["listdir"][p] = type(e).__name__
try:
    os.chmod(design, 0o666)
    res["chmod"] = "CHANGED"
except Exception as e:
    res["chmod"] = type(e).__name__
for host in sys.argv[6:]:
    try:
        socket.create_connection((host, port), timeout=3).close()
        res["connect"][host] = "CONNECTED"
    except Exception as e:
        res["connect"][host] = type(e).__name__
with open(out, "wb") as f:
    f.write(b"\x89PNG probe output")
print(json.dumps(res))
"""


def host_addresses():
    """127.0.0.1 and the host's outward address, if it has one."""
    addrs = ["127.0.0.1"]
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # no packet is sent
            a = s.getsockname()[0]
            if a and a not in addrs and not a.startswith("0."):
                addrs.append(a)
    except OSError:
        pass
    return addrs


def test_job_sandbox_confinement(lay):
    secret = f"SECRET-{uuid.uuid4().hex}"
    other = lay.uploads / "other.png"
    other.write_text(secret)
    other.chmod(0o644)
    (lay.templates / "secret.png").write_text(secret)
    reads = ["/etc/shadow", str(lay.jobs_file), str(other), str(lay.templates / "secret.png"),
             str(lay.design), "/job/in/design/../other.png"]
    # paths the sandbox must not be able to write at all
    sandbox_writes = ["/job/in/design/planted.png", "/job/in/design/design.png", "/job/in/planted.png",
                      "/job/planted.png", "/job/probe.py", "/job/out/planted.png", "/usr/planted", "/etc/planted",
                      "/planted"]
    # host paths: in the sandbox they do not exist (a write may land in its private /tmp); checked host-side
    host_writes = [str(lay.uploads / "planted.png"), str(lay.templates / "planted.png"),
                   str(lay.composed / "planted.png"), str(lay.scripts / "planted.py"), str(lay.base / "planted")]
    writes = sandbox_writes + host_writes
    listener = Listener(socket.AF_INET, "0.0.0.0")
    addrs = host_addresses()
    lay.write_jobs(f"""
  probe:
    interpreter: /usr/bin/python3
    script: @SCRIPTS@/probe.py
    args: ["{{script}}", "{{output}}", "{{design}}", "{'|'.join(reads)}", "{'|'.join(writes)}", "{listener.port}",
           {", ".join(json.dumps(a) for a in addrs)}]
    params:
      design: {{type: input_file, roots: ["@UPLOADS@"], extensions: [png]}}
      output: {{type: output_file, roots: ["@COMPOSED@"], extensions: [png]}}
""")
    lay.add_script("probe.py", PROBE)
    before = {d: snapshot(d) for d in (lay.templates, lay.uploads, lay.scripts, lay.renders)}
    base_before = sorted(os.listdir(lay.base))
    out = lay.composed / "probe.png"
    try:
        doc = cli_json(lay.jobs_file, "probe", {"design": lay.design, "output": out})
    finally:
        time.sleep(0.2)
        listener.close()
    assert doc["status"] == "ok", doc
    res = json.loads(doc["stdout"])
    # reads: only the input given, at its sandbox path, is readable; host paths do not exist in there
    for p, verdict in res["read"].items():
        assert not verdict.startswith("READ"), (p, verdict)
    assert secret not in doc["stdout"] and secret not in doc["stderr"]
    assert res["listdir"]["/job/in/design"] == ["design.png"], res["listdir"]
    assert res["listdir"]["/job/in"] == ["design"], res["listdir"]
    assert res["listdir"]["/job"] == sorted(["in", "out", "probe.py"]), res["listdir"]
    # writes: nowhere but /job/out/output (and the sandbox's own /tmp, which is not the host's)
    for p in sandbox_writes:
        assert res["write"][p] != "WROTE", (p, res["write"][p])
    assert res["chmod"] != "CHANGED"
    # the network: nothing connected, and the host listener saw nothing
    for host, verdict in res["connect"].items():
        assert verdict != "CONNECTED", (host, verdict)
    assert listener.accepted == []
    # from the host: nothing planted, inputs untouched, the output published
    after = {d: snapshot(d) for d in (lay.templates, lay.uploads, lay.scripts, lay.renders)}
    assert after == before
    assert sorted(os.listdir(lay.base)) == base_before
    assert stat.S_IMODE(os.stat(lay.design).st_mode) == 0o644
    assert not pathlib.Path("/usr/planted").exists() and not pathlib.Path("/etc/planted").exists()
    assert_outputs_match(doc["outputs"], [out])
    assert os.listdir(lay.composed) == ["probe.png"]
    assert out.read_bytes() == b"\x89PNG probe output"


ENV_JOB = """
  envdump:
    interpreter: /usr/bin/python3
    script: @SCRIPTS@/envdump.py
    env: [PYEXEC_TEST_ALLOWED, PYEXEC_TEST_ALLOWED_UNSET]
    args: ["{script}"]
"""


def test_job_environment_allowlist(lay):
    lay.write_jobs(ENV_JOB)
    lay.add_script("envdump.py", "import json, os\nprint(json.dumps(dict(os.environ)))\n")
    env = {**CLEAN_ENV, "PYEXEC_TEST_ALLOWED": "allowed value with spaces $(x)", "PYEXEC_TEST_SECRET": "s3cret",
           "HOME": "/root-home-of-the-host", "PYTHONPATH": "/host/pythonpath"}
    doc = cli_json(lay.jobs_file, "envdump", {}, env=env)
    assert doc["status"] == "ok", doc
    got = json.loads(doc["stdout"])
    assert got["PYEXEC_TEST_ALLOWED"] == "allowed value with spaces $(x)"
    assert "PYEXEC_TEST_SECRET" not in got and "PYEXEC_TEST_ALLOWED_UNSET" not in got
    assert "PYTHONPATH" not in got
    assert got["HOME"] != "/root-home-of-the-host"
    assert set(got) == {"PATH", "HOME", "LANG", "USER", "LOGNAME", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                        "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS", "MPLBACKEND", "MPLCONFIGDIR",
                        "PYEXEC_TEST_ALLOWED"}, got
    assert "s3cret" not in doc["stdout"]


# ---------------------------------------------------------------------------
# time and memory limits from the YAML
# ---------------------------------------------------------------------------

LIMIT_JOBS = """
  term:
    interpreter: /usr/bin/python3
    script: @SCRIPTS@/@TERM@
    args: ["{script}"]
    limits: {timeout: 1000}
    grace: 500
  ignore:
    interpreter: /usr/bin/python3
    script: @SCRIPTS@/@IGNORE@
    args: ["{script}"]
    limits: {timeout: 1000, pids: 8}
    grace: 500
  hog:
    interpreter: /usr/bin/python3
    script: @SCRIPTS@/hog.py
    args: ["{script}"]
    limits: {memory: 64}
"""

TERM_SCRIPT = """
import signal, sys, time
def on_term(sig, frame):
    print("got TERM", flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
print("waiting", flush=True)
time.sleep(60)
print("not reached", flush=True)
"""

IGNORE_SCRIPT = """
import os, signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
if os.fork() == 0:
    time.sleep(60)   # the child ignores TERM too (inherited)
    os._exit(0)
print("ignoring", flush=True)
time.sleep(60)
"""

HOG = """
x = bytearray(200 * 1024 * 1024)
for i in range(0, len(x), 4096):
    x[i] = 1
print("allocated 200 MB")
"""


def limit_layout(lay):
    tag = uuid.uuid4().hex[:10]
    names = {"term": f"term-{tag}.py", "ignore": f"ignore-term-{tag}.py"}
    lay.jobs_file.write_text(lay.sub(BASE_JOBS + LIMIT_JOBS).replace("@TERM@", names["term"])
                             .replace("@IGNORE@", names["ignore"]))
    lay.add_script(names["term"], TERM_SCRIPT)
    lay.add_script(names["ignore"], IGNORE_SCRIPT)
    lay.add_script("hog.py", HOG)
    return names


def test_timeout_sends_sigterm_first(lay):
    limit_layout(lay)
    t0 = time.monotonic()
    doc = cli_json(lay.jobs_file, "term", {})
    elapsed = time.monotonic() - t0
    assert doc["status"] == "timeout", doc
    assert doc["stdout"] == "waiting\ngot TERM\n", doc
    assert doc["exitCode"] == 0 and doc["signal"] is None, doc
    assert "1000 ms" in doc["message"]
    assert doc["time"]["wallMs"] >= 900, doc["time"]  # exited on TERM, before the SIGKILL (signal is None)
    assert elapsed < 10


def test_timeout_sends_sigterm_first_under_the_service(lay, tmp_path):
    """The service blocks SIGTERM in all its threads; that mask must not
    reach the job (it survives execve), or the job would never see the
    polite SIGTERM and always die by SIGKILL."""
    limit_layout(lay)
    srv = start_server(tmp_path, "--jobs-file", lay.jobs_file)
    try:
        r = run_job(srv, "term", {})
        doc = json.loads(r.body)
    finally:
        assert srv.stop() == 0
    assert r.status == 200, doc
    assert doc["status"] == "timeout", doc
    assert doc["stdout"] == "waiting\ngot TERM\n", doc
    assert doc["exitCode"] == 0 and doc["signal"] is None, doc


def test_timeout_sigkill_after_grace(lay):
    names = limit_layout(lay)
    t0 = time.monotonic()
    doc = cli_json(lay.jobs_file, "ignore", {})
    elapsed = time.monotonic() - t0
    assert doc["status"] == "timeout", doc
    assert doc["stdout"] == "ignoring\n"
    assert doc["signal"] == "SIGKILL", doc
    assert 1.45 <= doc["time"]["wallMs"] / 1000 < 4, doc["time"]
    assert elapsed < 10
    deadline = time.monotonic() + 2
    while host_pids_matching(names["ignore"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert host_pids_matching(names["ignore"]) == [], "a process of the job survived"


def test_memory_limit_from_yaml(lay):
    limit_layout(lay)
    doc = cli_json(lay.jobs_file, "hog", {})
    assert doc["status"] == "memory_limit", doc
    assert doc["limits"]["memoryMb"] == 64
    assert "allocated" not in doc["stdout"]


# ---------------------------------------------------------------------------
# compose -> render, end to end
# ---------------------------------------------------------------------------


def red_fraction(im):
    px = list(im.convert("RGB").getdata())
    return sum(1 for p in px if red(p)) / len(px)


def compose_for_render(lay, run):
    out = lay.composed / "shirt-texture.png"
    doc = run("compose", lay.compose_params(preset="dead-center-large", output=out))
    assert doc["status"] == "ok", doc
    assert_outputs_match(doc["outputs"], [out])
    return out


def check_render_outputs(lay, doc, outdir, animation, design):
    """The outputs are named after the design, and the result names them."""
    assert doc["status"] == "ok", {k: doc[k] for k in ("status", "message", "stderr")}
    assert doc["job"] == "render"
    still, anim = outdir / f"{design}_render.png", outdir / f"{design}_animation.mp4"
    expected = [still] + ([anim] if animation else [])
    assert_outputs_match(doc["outputs"], expected)
    assert doc["renderPath"] == str(still)
    assert doc["animationPath"] == (str(anim) if animation else None)
    assert sorted(os.listdir(outdir)) == sorted(p.name for p in expected)
    owner = (os.stat(outdir).st_uid, os.stat(outdir).st_gid)
    for p in expected:
        assert_published_file(p, owner)
    im = Image.open(still)
    assert im.size == Image.open(lay.template).size == (64, 64)
    assert red_fraction(im) > 0.03, "the design's red does not reach the render"
    if animation:
        data = anim.read_bytes()
        assert data[4:8] == b"ftyp", data[:16]
        assert b"avc1" in data
    assert staging_leftovers(*lay.output_roots()) == []


@needs_blender
@pytest.mark.parametrize("animation", [False, True], ids=["still", "animation"])
def test_compose_then_render_cli(lay, animation):
    texture = compose_for_render(lay, lambda job, params: cli_json(lay.jobs_file, job, params))
    outdir = lay.renders / "order-1"
    params = {"blend": lay.blend, "texture": texture, "outdir": outdir, "samples": "4"}
    if not animation:
        params["no_animation"] = "true"
    before = snapshot(lay.templates), sha256(texture)
    doc = cli_json(lay.jobs_file, "render", params)
    check_render_outputs(lay, doc, outdir, animation, "shirt-texture")
    assert doc["limits"]["memoryMb"] == 2048 and doc["limits"]["pids"] == 64
    assert (snapshot(lay.templates), sha256(texture)) == before


@needs_blender
def test_compose_then_render_http(world, server):
    name = f"http-{uuid.uuid4().hex[:8]}"

    def run(job, params):
        r = run_job(server, job, params)
        assert r.status == 200, r
        return r.json()

    out = world.composed / f"{name}.png"
    doc = run("compose", world.compose_params(preset="dead-center-large", output=out))
    assert doc["status"] == "ok" and doc["job"] == "compose", doc
    assert_outputs_match(doc["outputs"], [out])
    outdir = world.renders / name
    doc = run("render", {"blend": str(world.blend), "texture": str(out), "outdir": str(outdir), "samples": 4,
                         "no_animation": False})
    check_render_outputs(world, doc, outdir, animation=True, design=name)


# ---------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------


def test_http_get_jobs_matches_cli(world, server):
    r = server.get("/api/jobs")
    assert r.status == 200, r
    doc = r.json()
    assert [j["name"] for j in doc["jobs"]] == ["compose", "render", "label"]
    assert doc == json.loads(job_list(world.jobs_file).stdout)
    for j in doc["jobs"]:
        assert j["readiness"] == {"ready": True, "problems": []}


def test_http_unknown_job_404(server):
    r = run_job(server, "unknown", {})
    assert r.status == 404, r
    assert r.error()["code"] == "not_found" and "unknown" in r.error()["message"]


@pytest.mark.parametrize("body,field,fragment", [
    ("{not json", None, "malformed JSON"),
    ('{"params": {"preset": "a", "preset": "b"}}', None, "malformed JSON"),
    ("", None, "malformed JSON"),
    ("{}", "params", "{\"params\": {...}}"),
    ('{"parameters": {}}', "params", "{\"params\""),
    ('{"params": {}, "extra": 1}', "params", "{\"params\""),
    ('{"params": [1, 2]}', "params", "{\"params\""),
    ('{"params": "preset=chest-large"}', "params", "{\"params\""),
    ('{"params": null}', "params", "{\"params\""),
    ("[]", "params", "{\"params\""),
    ('{"params": {"preset": {"value": "chest-large"}}}', "params.preset", "must be a string, number or boolean"),
    ('{"params": {"preset": ["chest-large"]}}', "params.preset", "must be a string, number or boolean"),
    ('{"params": {"design": null}}', "params.design", "must be a string, number or boolean"),
], ids=["malformed", "duplicate-keys", "empty", "no-params", "misnamed-params", "extra-key", "params-array",
        "params-string", "params-null", "array-body", "param-object", "param-array", "param-null"])
def test_http_malformed_requests(world, server, body, field, fragment):
    r = server.request("POST", "/api/jobs/compose", body, JSON_HEADERS)
    assert r.status == 400, r
    err = r.error()
    assert err["code"] in ("invalid_request", "invalid_parameter"), err
    if field is None:
        assert "field" not in err, err
    else:
        assert err["field"] == field, err
    assert fragment in err["message"], err
    check_no_side_effects(world, True)


def test_http_environment_lists_jobs(world, server):
    r = server.get("/api/environment")
    assert r.status == 200, r
    env = r.json()
    assert env["jobs"]["file"] == str(world.jobs_file)
    jobs = {j["name"]: j for j in env["jobs"]["jobs"]}
    assert list(jobs) == ["compose", "render", "label"]
    assert jobs["compose"]["ready"] is True and jobs["compose"]["problems"] == []
    assert jobs["compose"]["interpreter"] == "/usr/bin/python3"
    assert jobs["compose"]["script"] == str(world.scripts / "compose_design.py")
    assert jobs["render"]["interpreter"] == "/usr/bin/blender"


def test_http_environment_not_ready_job(lay, tmp_path):
    lay.write_jobs("""
  broken:
    interpreter: /usr/bin/python3
    script: @SCRIPTS@/gone.py
    args: ["{script}"]
""")
    srv = start_server(tmp_path, "--jobs-file", lay.jobs_file)
    try:
        env = srv.get("/api/environment").json()
        jobs = {j["name"]: j for j in env["jobs"]["jobs"]}
        assert jobs["broken"]["ready"] is False
        assert jobs["broken"]["problems"] == [f"script {lay.scripts}/gone.py is missing"]
        r = run_job(srv, "broken", {})
        assert r.status == 503, r
        assert "gone.py is missing" in r.error()["message"]
    finally:
        assert srv.stop() == 0, srv.log_text()[-2000:]


# ---------------------------------------------------------------------------
# an invalid jobs file: `pyexec job list` exits 2, `pyexec serve` does not start
# ---------------------------------------------------------------------------

GOOD_JOB = """\
jobs:
  good:
    interpreter: /usr/bin/python3
    script: s.py
    args: ["{script}", "{x}"]
    params:
      x: {type: string}
"""


def bad_job(body):
    return GOOD_JOB + "  bad:\n" + "".join("    " + ln + "\n" for ln in body.strip("\n").splitlines())


BAD_BASE = """\
interpreter: /usr/bin/python3
script: s.py
args: ["{script}", "{x}"]
params:
  x: {type: string}
"""

INVALID = {
    "unknown-job-key": (bad_job(BAD_BASE + "timeout: 5\n"), True, ["unknown key 'timeout'"]),
    "unknown-param-key": (bad_job(BAD_BASE.replace("{type: string}", "{type: string, regex: a}")), True,
                          ["params.x.", "unknown key 'regex'"]),
    "unknown-param-type": (bad_job(BAD_BASE.replace("{type: string}", "{type: path}")), True,
                           ["params.x.type must be one of input_file, output_file, output_dir, enum, int, number, "
                            "bool, string"]),
    "interpreter-outside-usr": (bad_job(BAD_BASE.replace("/usr/bin/python3", "/bin/sh")), True,
                                ["interpreter must be an absolute path under /usr", "'/bin/sh'"]),
    "interpreter-dotdot": (bad_job(BAD_BASE.replace("/usr/bin/python3", "/usr/../bin/sh")), True,
                           ["interpreter must be an absolute path under /usr", "'/usr/../bin/sh'"]),
    "interpreter-relative": (bad_job(BAD_BASE.replace("/usr/bin/python3", "python3")), True,
                             ["interpreter must be an absolute path under /usr"]),
    "placeholder-names-nothing": (bad_job(BAD_BASE.replace('"{x}"]', '"{x}", "{y}"]')), True,
                                  ["args[2] '{y}' names no parameter"]),
    "parameter-unused": (bad_job(BAD_BASE + "  z: {type: int}\n"), True, ["parameter 'z' is not used in args"]),
    "placeholder-not-whole": (bad_job(BAD_BASE.replace('"{x}"]', '"--x={x}"]')), True,
                              ["args[1] '--x={x}': a placeholder must be a whole argument"]),
    "placeholder-unclosed": (bad_job(BAD_BASE.replace('"{x}"]', '"{x}", "{x"]')), True,
                             ["args[2] '{x': a placeholder must be a whole argument"]),
    "duplicate-key": (bad_job(BAD_BASE + "script: t.py\n"), True,
                      ["key 'script' appears twice", f"line {bad_job(BAD_BASE + 'script: t.py').count(chr(10))}"]),
    "invalid-regex": (bad_job(BAD_BASE.replace("{type: string}", '{type: string, pattern: "([a-z"}')), True,
                      ["params.x.pattern is not a valid POSIX extended regular expression"]),
    "unknown-limit": (bad_job(BAD_BASE + "limits: {memry: 64}\n"), True, ["unknown key 'memry'"]),
    "key-of-another-type": (bad_job(BAD_BASE.replace("{type: string}", "{type: output_dir, roots: [/srv], extensions: [png]}")),
                            True, ["params.x.extensions does not apply to a parameter of type output_dir"]),
    "limit-out-of-range": (bad_job(BAD_BASE + "limits: {memory: 8}\n"), True,
                           ["limits.memory must be a whole number between 16 and 4096"]),
    "limit-above-run-max": (bad_job(BAD_BASE + "limits: {memory: 8192}\n"), True,
                            ["limits.memory must be a whole number between 16 and 4096"]),
    "file-param-without-roots": (bad_job(BAD_BASE.replace("{type: string}", "{type: input_file, extensions: [png]}")),
                                 True, ["params.x.roots is required"]),
    "root-with-dotdot": (bad_job(BAD_BASE.replace("{type: string}",
                                                  "{type: input_file, roots: [/srv/../etc], extensions: [png]}")),
                         True, ["params.x.roots[0] must be an absolute path without '..'"]),
    "enum-without-values": (bad_job(BAD_BASE.replace("{type: string}", "{type: enum}")), True,
                            ["params.x.values is required"]),
    "int-min-above-max": (bad_job(BAD_BASE.replace("{type: string}", "{type: int, min: 5, max: 1}")), True,
                          ["params.x.min is above max"]),
    "bool-flag-not-option": (bad_job(BAD_BASE.replace("{type: string}", "{type: bool, flag: yes}")), True,
                             ["params.x.flag must be an option"]),
}


@pytest.mark.parametrize("case", list(INVALID))
def test_invalid_jobs_file(tmp_path, case):
    text, names_job, fragments = INVALID[case]
    f = tmp_path / "jobs.yaml"
    f.write_text(text)
    p = job_list(f)
    err = p.stderr.decode()
    assert p.returncode == EXIT_USAGE, (p.returncode, err)
    assert p.stdout == b""
    assert err.startswith(f"pyexec job: {f}: "), err
    for frag in fragments:
        assert frag in err, err
    # running a job of the file is refused the same way
    p = cli(f, "good", {"x": "1"})
    assert p.returncode == EXIT_USAGE and p.stderr.decode() == err
    # pyexec serve does not start
    log = tmp_path / "serve.log"
    with open(log, "wb") as logf:
        s = subprocess.run([PYEXEC, "serve", "--port", str(free_port()), "--jobs-file", str(f)],
                           stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, env=CLEAN_ENV, timeout=30)
    text = log.read_text()
    assert s.returncode != 0, text
    assert "invalid jobs file" in text, text
    lines = [json.loads(ln) for ln in text.splitlines() if ln.startswith("{")]
    entry = [e for e in lines if e.get("message") == "invalid jobs file"]
    assert entry, text
    msg = entry[0]["error"]
    assert msg.startswith(f"{f}: "), msg
    for frag in fragments:
        assert frag in msg, msg
    assert "listening" not in text
    # last, so that a missing job name does not hide the checks above
    if names_job:
        assert "job 'bad'" in err, err
        assert "job 'bad'" in msg, msg


def test_invalid_jobs_file_via_environment(tmp_path):
    f = tmp_path / "jobs.yaml"
    f.write_text(INVALID["unknown-job-key"][0])
    log = tmp_path / "serve.log"
    with open(log, "wb") as logf:
        s = subprocess.run([PYEXEC, "serve", "--port", str(free_port())], stdin=subprocess.DEVNULL, stdout=logf,
                           stderr=logf, env={**CLEAN_ENV, "JOBS_FILE": str(f)}, timeout=30)
    assert s.returncode != 0 and "unknown key 'timeout'" in log.read_text()


def test_missing_explicit_jobs_file_stops_serve(tmp_path):
    f = tmp_path / "nope.yaml"
    log = tmp_path / "serve.log"
    with open(log, "wb") as logf:
        s = subprocess.run([PYEXEC, "serve", "--port", str(free_port()), "--jobs-file", str(f)],
                           stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, env=CLEAN_ENV, timeout=30)
    assert s.returncode != 0 and str(f) in log.read_text()


# ---------------------------------------------------------------------------
# staging trees of any depth; inputs with more than one link
# ---------------------------------------------------------------------------

DEEP_JOBS = """
  deepfile:
    interpreter: /usr/bin/python3
    script: @SCRIPTS@/deep.py
    args: ["{script}", "{depth}", "{output}", "@BASE@/victim"]
    params:
      depth: {type: int, min: 1, max: 100000}
      output: {type: output_file, roots: ["@COMPOSED@"], extensions: [png]}
  deepdir:
    interpreter: /usr/bin/python3
    script: @SCRIPTS@/deep.py
    args: ["{script}", "{depth}", "{outdir}", "@BASE@/victim"]
    params:
      depth: {type: int, min: 1, max: 100000}
      outdir: {type: output_dir, roots: ["@RENDERS@"]}
"""

# A chain of `depth` directories below the output's staging directory, built
# through descriptors (the whole path is longer than PATH_MAX), each level
# holding a file, a symlink to a host directory and one to a host file, and
# a read-only directory with a file in it; in an output_dir, one real output.
DEEP = r"""
import os, sys
depth, out, victim = int(sys.argv[1]), sys.argv[2], sys.argv[3]
d = os.path.dirname(out) if out.endswith(".png") else out
fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
os.mkdir("d", dir_fd=fd)
for i in range(depth):
    nfd = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
    os.close(fd)
    fd = nfd
    if i + 1 < depth:
        os.mkdir("d", dir_fd=fd)
    os.close(os.open("f", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
    os.symlink(victim, "to-dir", dir_fd=fd)
    os.symlink(victim + "/keep.txt", "to-file", dir_fd=fd)
os.mkdir("ro", dir_fd=fd)
os.close(os.open("ro/inside", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
os.chmod("ro", 0o500, dir_fd=fd)
os.chmod(".", 0o500, dir_fd=fd)
if not out.endswith(".png"):
    with open(os.path.join(out, "result.txt"), "w") as f:
        f.write("done")
print("built", depth)
"""


def deep_layout(lay):
    lay.write_jobs(DEEP_JOBS)
    lay.add_script("deep.py", DEEP)
    victim = lay.base / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("keep")
    victim.chmod(0o755)
    (victim / "keep.txt").chmod(0o644)
    return victim


def assert_deep_tree_removed(lay, victim):
    """From the host: no staging directory left, nothing of the tree
    published, and the symlinks' host targets untouched. A tree left behind
    is removed here (rm walks any depth; pytest's cleanup recurses)."""
    # Staging directories sit in the output's directory: two levels down
    # at most (os.walk recurses, and would not reach the bottom of a tree
    # left behind).
    left = [str(p) for root in lay.output_roots() for p in [*root.glob(".pyexec-*"), *root.glob("*/.pyexec-*")]]
    if left:
        subprocess.run(["rm", "-rf", "--one-file-system", *left], check=False)
    assert left == []
    assert [p for p in lay.composed.rglob("*")] == []
    assert [p.name for p in lay.renders.rglob("*")] in ([], ["out"], ["out", "result.txt"])
    assert sorted(os.listdir(victim)) == ["keep.txt"]
    assert (victim / "keep.txt").read_text() == "keep"


@pytest.mark.parametrize("depth", [33, 40, 3000])
@pytest.mark.parametrize("kind", ["output_file", "output_dir"])
def test_staging_tree_of_any_depth_is_removed(lay, kind, depth):
    victim = deep_layout(lay)
    if kind == "output_file":
        doc = json.loads(cli(lay.jobs_file, "deepfile", {"depth": depth, "output": lay.composed / "out.png"}).stdout)
        assert doc["stdout"] == f"built {depth}\n", doc
        assert doc["status"] == "runtime_error" and "was not produced" in doc["message"], doc
    else:
        doc = json.loads(cli(lay.jobs_file, "deepdir", {"depth": depth, "outdir": lay.renders / "out"}).stdout)
        assert doc["stdout"] == f"built {depth}\n", doc
        assert doc["status"] == "ok", doc
        assert [o["path"] for o in doc["outputs"]] == [str(lay.renders / "out" / "result.txt")], doc
    assert_deep_tree_removed(lay, victim)


def test_staging_tree_of_any_depth_is_removed_under_the_service(lay, tmp_path):
    victim = deep_layout(lay)
    srv = start_server(tmp_path, env={"JOBS_FILE": lay.jobs_file})
    try:
        r = run_job(srv, "deepdir", {"depth": "100", "outdir": str(lay.renders / "out")})
        assert r.status == 200, r
        doc = r.json()
        assert doc["stdout"] == "built 100\n" and doc["status"] == "ok", doc
    finally:
        assert srv.stop() == 0
    assert_deep_tree_removed(lay, victim)


def hard_linked_input(lay):
    """A design outside every root, hard-linked into the uploads root, and a
    plain copy of it there (the control)."""
    secret = lay.base / "secret.png"
    shutil.copyfile(lay.design, secret)
    secret.chmod(0o644)
    os.link(secret, lay.uploads / "linked.png")
    shutil.copyfile(lay.design, lay.uploads / "copy.png")
    (lay.uploads / "copy.png").chmod(0o644)
    return lay.uploads / "linked.png"


LINK_MESSAGE = "has 2 hard links; an input must have exactly one"


def test_hard_linked_input_refused_cli(lay):
    linked = hard_linked_input(lay)
    out = lay.composed / "out.png"
    p = cli(lay.jobs_file, "compose", lay.compose_params(design=linked, output=out))
    err = p.stderr.decode()
    assert p.returncode == EXIT_USAGE, (p.returncode, err, p.stdout[:500])
    assert f"parameter 'design': '{linked}' {LINK_MESSAGE}" in err, err
    assert not out.exists() and staging_leftovers(*lay.output_roots()) == []
    # The control: the same bytes with one link are accepted and read.
    doc = cli_json(lay.jobs_file, "compose", lay.compose_params(design=lay.uploads / "copy.png", output=out))
    assert doc["status"] == "ok", doc
    assert out.is_file()


def test_hard_linked_input_refused_http(lay, tmp_path):
    linked = hard_linked_input(lay)
    out = lay.composed / "out.png"
    srv = start_server(tmp_path, env={"JOBS_FILE": lay.jobs_file})
    try:
        r = run_job(srv, "compose", lay.compose_params(design=linked, output=out))
        assert r.status == 400, r
        err = r.error()
        assert err["code"] == "invalid_parameter" and err["field"] == "params.design", err
        assert f"'{linked}' {LINK_MESSAGE}" in err["message"], err
    finally:
        assert srv.stop() == 0
    assert not out.exists() and staging_leftovers(*lay.output_roots()) == []

PROGRESS_JOB = """
  steps:
    interpreter: /usr/bin/python3
    script: @SCRIPTS@/steps.py
    args: ["{script}"]
"""

# Reports a quarter, then things that are not reports (out of range, on
# stdout, inside a longer line), then three quarters; a pause after each
# report leaves the poller time to see it.
STEPS_SCRIPT = """
import sys, time
def say(line, stream=sys.stderr):
    print(line, file=stream, flush=True)
say("PYEXEC_PROGRESS 1/4")
time.sleep(1.5)
say("PYEXEC_PROGRESS 2")
say("PYEXEC_PROGRESS 0.9", sys.stdout)
say("step PYEXEC_PROGRESS 0.9")
say("PYEXEC_PROGRESS 3/4")
time.sleep(1.5)
print("done")
"""


def test_async_job_reports_progress(lay, tmp_path):
    """A job's "PYEXEC_PROGRESS" lines on stderr are its submission's
    progress while it runs; the finished submission has none."""
    lay.write_jobs(PROGRESS_JOB)
    lay.add_script("steps.py", STEPS_SCRIPT)
    srv = start_server(tmp_path, env={"JOBS_FILE": lay.jobs_file})
    try:
        r = srv.post("/api/jobs/steps", {"params": {}, "async": True})
        assert r.status == 202, r
        sid = r.json()["id"]
        seen = []
        deadline = time.monotonic() + 60
        while True:
            doc = srv.get(f"/api/submissions/{sid}").json()
            if doc["state"] == "done":
                break
            assert "progress" not in doc or doc["state"] == "running", doc
            if "progress" in doc and (not seen or seen[-1] != doc["progress"]):
                seen.append(doc["progress"])
            assert time.monotonic() < deadline, doc
            time.sleep(0.05)
        assert seen == [0.25, 0.75], seen
        assert "progress" not in doc, doc
        assert doc["result"]["status"] == "ok" and doc["result"]["stdout"] == "PYEXEC_PROGRESS 0.9\ndone\n", doc
        assert "PYEXEC_PROGRESS 1/4\n" in doc["result"]["stderr"], doc
    finally:
        assert srv.stop() == 0


def test_compose_asynchronously(world, server):
    """"async": true queues the job: 202 with an id, then the job's own
    answer as the submission's result, the output published as before."""
    out = world.composed / f"async-{uuid.uuid4().hex[:8]}.png"
    r = server.post("/api/jobs/compose", {"params": world.compose_params(output=out), "async": True})
    assert r.status == 202, r
    sid = r.json()["id"]
    assert r.headers["Location"] == f"/api/submissions/{sid}"
    deadline = time.monotonic() + 120
    while True:
        doc = server.get(f"/api/submissions/{sid}").json()
        if doc["state"] == "done":
            break
        assert time.monotonic() < deadline, doc
        time.sleep(0.1)
    assert doc["httpStatus"] == 200 and doc["result"]["status"] == "ok" and doc["result"]["job"] == "compose", doc
    assert_outputs_match(doc["result"]["outputs"], [out])
    # Refusals come before anything is queued.
    r = server.post("/api/jobs/compose", {"params": world.compose_params(output=out), "async": True, "x": 1})
    assert r.status == 400 and r.error()["field"] == "x", r
    r = server.post("/api/jobs/nope", {"params": {}, "async": True})
    assert r.status == 404, r
