"""End-to-end tests of the checks a job's inputs pass before anything runs.

An input_file that declares `format` is checked by its content (the
signature, and for images the width and height read from the header against
`max_pixels`) before any sandbox is built; a job whose roots are missing is
not ready (503 job_unavailable, the CLI's exit 69), whatever the values; and
what a result says names the caller's paths, never the sandbox's (/job/...).

That nothing ran is checked from the host: no staging directory and no
output appeared (the output directory is unchanged, down to its mtime), and
for the service the executions counter of /api/metrics did not move.
The layout, the jobs file and the helpers are test_jobs.py's.
"""
import json
import os
import re
import shutil
import struct

import pytest

from test_jobs import (  # noqa: F401 - assets and lay are fixtures
    EXIT_USAGE, HAVE_BLENDER, Image, assets, cli, lay, png_header, run_job, snapshot, staging_leftovers,
    start_server)

EXIT_UNAVAILABLE = 69

CHECK_JOBS = """
  sniff:
    description: echo the argument of an image input (the checks are what is tested)
    interpreter: /usr/bin/python3
    script: @SCRIPTS@/echo_args.py
    args: ["{script}", "{image}"]
    params:
      image: {type: input_file, roots: ["@UPLOADS@"], extensions: [png, jpg, webp], format: [png, jpeg, webp]}
  named:
    description: write the files its output directory names (the naming is what is tested)
    interpreter: /usr/bin/python3
    script: @SCRIPTS@/write_named.py
    args: ["{script}", "{outdir}", "{outdir.main}", "{outdir.extra}", "{source}", "{skip_extra}"]
    params:
      source: {type: input_file, roots: ["@UPLOADS@"], extensions: [png], format: png}
      design_name:
        type: string
        pattern: "[A-Za-z0-9_-][A-Za-z0-9._-]*"
        max_length: 64
        default_stem: source
      outdir:
        type: output_dir
        roots: ["@RENDERS@"]
        files:
          main: {name: "{design_name}_render.png", result: renderPath}
          extra: {name: "{design_name}_animation.mp4", result: animationPath}
      skip_extra: {type: bool, flag: --skip-extra}
  complain:
    description: fail naming its input, output and script by their sandbox paths
    interpreter: /usr/bin/python3
    script: @SCRIPTS@/complain.py
    args: ["{script}", "{source}", "{output}"]
    params:
      source: {type: input_file, roots: ["@UPLOADS@"], extensions: [png]}
      output: {type: output_file, roots: ["@COMPOSED@"], extensions: [png]}
"""

COMPLAIN = """
import sys
print(f"{sys.argv[0]}: cannot use {sys.argv[1]} for {sys.argv[2]} in /job/out/output.", file=sys.stderr)
sys.exit(1)
"""

WRITE_NAMED = """
import os, sys
outdir, main, extra = sys.argv[1:4]
for name in [main] + ([] if "--skip-extra" in sys.argv[4:] else [extra]):
    with open(os.path.join(outdir, name), "wb") as f:
        f.write(name.encode())
print("wrote", os.path.join(outdir, main))
"""


def jpeg_bytes(w, h):
    import io
    b = io.BytesIO()
    Image.new("RGB", (w, h), (0, 0, 255)).save(b, "JPEG")
    return b.getvalue()


def executions(srv):
    """The service's pyexec_executions_total, all statuses."""
    text = srv.get("/api/metrics").body.decode()
    return sum(float(m) for m in re.findall(r'^pyexec_executions_total\{[^}]*\} (\S+)$', text, re.M))


def outputs_state(lay):
    """What would show that something ran: the output roots' trees and mtimes."""
    return ({str(d): snapshot(d) for d in lay.output_roots()},
            {str(d): os.stat(d).st_mtime_ns for d in lay.output_roots()})


class Via:
    """One way of calling a job: the CLI, or POST /api/jobs/NAME on a server of the layout."""

    def __init__(self, kind, lay, tmp_path):
        self.kind, self.lay, self.srv = kind, lay, None
        if kind == "http":
            (tmp_path / "srv").mkdir()
            self.srv = start_server(tmp_path / "srv", "--jobs-file", lay.jobs_file)

    def refused(self, job, params):
        """Run a job that must be refused: (http status or exit code, error dict)."""
        before = outputs_state(self.lay)
        if self.srv:
            n = executions(self.srv)
            r = run_job(self.srv, job, {k: str(v) for k, v in params.items()})
            # from the host first: no execution was counted, nothing was staged
            assert executions(self.srv) == n, f"a sandbox ran: {r}"
            assert outputs_state(self.lay) == before, "something was staged or published"
            err = r.error()
            code, err["retry_after"] = r.status, r.headers.get("Retry-After")
        else:
            p = cli(self.lay.jobs_file, job, params, json_out=False)
            assert outputs_state(self.lay) == before, f"something was staged or published: {p.stderr[-300:]}"
            assert p.stdout == b"", p.stdout
            text = p.stderr.decode()
            assert text.startswith("pyexec job: ") and text.count("\n") == 1, text
            code, err = p.returncode, {"message": text[len("pyexec job: "):].rstrip("\n")}
        assert staging_leftovers(*self.lay.output_roots()) == []
        assert "/job/" not in err["message"]
        return code, err

    def ran(self, job, params):
        if self.srv:
            r = run_job(self.srv, job, {k: str(v) for k, v in params.items()})
            assert r.status == 200, r
            return r.json()
        p = cli(self.lay.jobs_file, job, params)
        return json.loads(p.stdout)

    def close(self):
        if self.srv:
            assert self.srv.stop() == 0, self.srv.log_text()[-2000:]


@pytest.fixture(params=["cli", "http"])
def via(request, lay, tmp_path):
    lay.write_jobs(CHECK_JOBS)
    lay.add_script("write_named.py", WRITE_NAMED)
    lay.add_script("complain.py", COMPLAIN)
    v = Via(request.param, lay, tmp_path)
    yield v
    v.close()


def check_invalid(via, code, err, param, message):
    if via.srv:
        assert code == 400, (code, err)
        assert err["code"] == "invalid_parameter" and err["field"] == f"params.{param}", err
    else:
        assert code == EXIT_USAGE, (code, err)
    assert err["message"] == f"parameter '{param}': {message}", err


def test_text_named_png_refused(via, lay):
    fake = lay.uploads / "fake.png"
    fake.write_text("hello, I am text\n")
    code, err = via.refused("compose", lay.compose_params(design=fake))
    check_invalid(via, code, err, "design", f"'{fake}' is not a PNG, JPEG or WebP image (it starts like text)")


def test_jpeg_where_png_required(via, lay):
    texture = lay.composed / "texture.png"
    texture.write_bytes(jpeg_bytes(16, 16))
    code, err = via.refused("render", {"blend": lay.blend, "texture": texture, "outdir": lay.renders / "o"})
    check_invalid(via, code, err, "texture", f"'{texture}' is not a PNG image (it is a JPEG image)")


def test_png_header_over_max_pixels_refused(via, lay):
    """A few bytes claiming 30000x30000: refused from the header, never decoded."""
    bomb = lay.uploads / "bomb.png"
    bomb.write_bytes(png_header(30000, 30000))
    assert bomb.stat().st_size < 64
    code, err = via.refused("compose", lay.compose_params(design=bomb))
    check_invalid(via, code, err, "design", f"'{bomb}' is 30000x30000 pixels, more than the 40000000 allowed")
    # the default max_pixels (50 megapixels) of a parameter that does not set it
    code, err = via.refused("sniff", {"image": bomb})
    check_invalid(via, code, err, "image", f"'{bomb}' is 30000x30000 pixels, more than the 50000000 allowed")


def test_damaged_header_refused(via, lay):
    cut = lay.uploads / "cut.png"
    cut.write_bytes(png_header(100, 100)[:20])
    code, err = via.refused("sniff", {"image": cut})
    check_invalid(via, code, err, "image", f"'{cut}' is a PNG image whose header is damaged (its header is cut short)")


def test_fake_blend_refused(via, lay):
    fake = lay.templates / "fake.blend"
    fake.write_bytes(b"\x00\x01\x02\x03 not a blend")
    code, err = via.refused("render", {"blend": fake, "texture": lay.composed / "t.png", "outdir": lay.renders / "o"})
    check_invalid(via, code, err, "blend",
                  f"'{fake}' is not a Blender file (.blend) (it starts with the bytes 00 01 02 03 20 6e 6f 74)")


def test_print_resolution_header_accepted(via, lay):
    """A 4500x5400 print template passes the default bound (its header is enough: the job does not decode it)."""
    tpl = lay.uploads / "print.png"
    tpl.write_bytes(png_header(4500, 5400))
    doc = via.ran("sniff", {"image": tpl})
    assert doc["status"] == "ok", doc
    assert json.loads(doc["stdout"]) == ["/job/in/image/print.png"]


def test_valid_template_and_webp_accepted(via, lay):
    from PIL import features
    doc = via.ran("compose", lay.compose_params())
    assert doc["status"] == "ok", doc
    if not features.check("webp"):
        pytest.skip("Pillow here cannot write WebP")
    for name, kw in (("lossy.webp", {"lossless": False}), ("lossless.webp", {"lossless": True})):
        d = lay.uploads / name
        Image.new("RGB", (24, 12), (255, 0, 0)).save(d, "WEBP", **kw)
        doc = via.ran("compose", lay.compose_params(design=d, output=lay.composed / f"{name}.png"))
        assert doc["status"] == "ok", doc
        assert doc["outputs"][0]["path"] == f"{lay.composed / name}.png", doc


def test_webp_where_not_declared_refused(via, lay):
    """The template takes PNG and JPEG: a WebP with a .png name is refused."""
    from PIL import features
    if not features.check("webp"):
        pytest.skip("Pillow here cannot write WebP")
    tpl = lay.templates / "webp.png"
    Image.new("RGB", (24, 12)).save(tpl, "WEBP")
    code, err = via.refused("compose", lay.compose_params(template=tpl))
    check_invalid(via, code, err, "template", f"'{tpl}' is not a PNG or JPEG image (it is a WebP image)")


def test_missing_root_is_not_ready(via, lay):
    shutil.rmtree(lay.composed)
    # the values are wrong too: not ready comes first
    before = outputs_state_existing(lay)
    for params in (lay.compose_params(), lay.compose_params(design="/etc/passwd", preset="nowhere")):
        code, err = refused_not_ready(via, params)
        want = f"job 'compose' is not ready: parameter 'output': root {lay.composed} does not exist"
        assert err["message"] == want, err
        if via.srv:
            assert code == 503 and err["code"] == "job_unavailable", (code, err)
            assert err["retry_after"] and int(err["retry_after"]) > 0, err
        else:
            assert code == EXIT_UNAVAILABLE, (code, err)
    assert outputs_state_existing(lay) == before
    assert not lay.composed.exists()


def outputs_state_existing(lay):
    return {str(d): (snapshot(d), os.stat(d).st_mtime_ns) for d in lay.output_roots() if d.exists()}


def refused_not_ready(via, params):
    if via.srv:
        n = executions(via.srv)
        r = run_job(via.srv, "compose", params)
        assert executions(via.srv) == n, "a sandbox ran"
        err = r.error()
        err["retry_after"] = r.headers.get("Retry-After")
        return r.status, err
    p = cli(via.lay.jobs_file, "compose", params, json_out=False)
    assert p.stdout == b""
    return p.returncode, {"message": p.stderr.decode().removeprefix("pyexec job: ").rstrip("\n")}


def test_script_errors_name_the_callers_paths(via, lay):
    """A PNG whose header passes and whose data does not decode: the script fails, and
    neither the result's message nor the script's own error names a sandbox path."""
    bad = lay.uploads / "undecodable.png"
    bad.write_bytes(png_header(8, 8) + b"no image data here")
    doc = via.ran("compose", lay.compose_params(design=bad))
    assert doc["status"] == "runtime_error", doc
    assert "/job/" not in doc["message"] and "/job/" not in doc["stderr"], doc
    assert str(bad) in doc["message"] and str(bad) in doc["stderr"], doc


@pytest.mark.parametrize("source, given, design", [
    ("order-17.png", None, "order-17"),
    ("my design #2 (front).v1.png", None, "my_design__2__front_.v1"),
    (".hidden.png", None, "_hidden"),
    ("order-17.png", "Custom-Name.v2", "Custom-Name.v2"),
], ids=["stem", "stem-made-safe", "stem-leading-dot", "given"])
def test_outputs_named_after_the_design(via, lay, source, given, design):
    src = lay.uploads / source
    shutil.copyfile(lay.design, src)
    outdir = lay.renders / "order"
    params = {"source": src, "outdir": outdir}
    if given:
        params["design_name"] = given
    doc = via.ran("named", params)
    assert doc["status"] == "ok", doc
    main, extra = outdir / f"{design}_render.png", outdir / f"{design}_animation.mp4"
    assert sorted(o["path"] for o in doc["outputs"]) == sorted([str(extra), str(main)])
    assert doc["renderPath"] == str(main) and doc["animationPath"] == str(extra), doc
    assert sorted(os.listdir(outdir)) == sorted([main.name, extra.name])
    assert main.read_bytes() == main.name.encode()
    # the script's own output, verbatim: it was given the file's name in its sandbox directory
    assert doc["stdout"] == f"wrote /job/out/outdir/{main.name}\n", doc["stdout"]


def test_named_output_not_produced_is_null(via, lay):
    outdir = lay.renders / "still-only"
    doc = via.ran("named", {"source": lay.design, "outdir": outdir, "skip_extra": "true"})
    assert doc["status"] == "ok", doc
    assert doc["renderPath"] == str(outdir / "design_render.png") and doc["animationPath"] is None, doc


@pytest.mark.parametrize("name", [".hidden", "a/b", "x" * 65, "", "sp ace", "-" * 3 + "\u00e9"])
def test_invalid_design_name_refused(via, lay, name):
    code, err = via.refused("named", {"source": lay.design, "outdir": lay.renders / "o", "design_name": name})
    if via.srv:
        assert code == 400 and err["field"] == "params.design_name", (code, err)
    else:
        assert code == EXIT_USAGE, (code, err)
    assert err["message"].startswith("parameter 'design_name': "), err
    assert not (lay.renders / "o").exists()


@pytest.mark.skipif(not HAVE_BLENDER, reason="Blender is not installed")
def test_render_named_after_the_design(via, lay):
    """The render job names its still after the texture's design (or design_name), and says where it is."""
    texture = lay.composed / "Order 42 (front).png"
    shutil.copyfile(lay.design, texture)
    outdir = lay.renders / "o42"
    params = {"blend": lay.blend, "texture": texture, "outdir": outdir, "samples": "1", "no_animation": "true"}
    if via.srv:
        params["design_name"] = "order-42.front"
    design = "order-42.front" if via.srv else "Order_42__front_"
    doc = via.ran("render", params)
    assert doc["status"] == "ok", {k: doc.get(k) for k in ("status", "message", "stderr")}
    still = outdir / f"{design}_render.png"
    assert [o["path"] for o in doc["outputs"]] == [str(still)]
    assert doc["renderPath"] == str(still) and doc["animationPath"] is None, doc
    assert os.listdir(outdir) == [still.name]
    assert Image.open(still).size == (64, 64)


def test_result_message_names_the_callers_paths(via, lay):
    """A script that names its sandbox paths: the result's message says the caller's
    (its stderr stays as the script wrote it)."""
    out = lay.composed / "x.png"
    doc = via.ran("complain", {"source": lay.design, "output": out})
    assert doc["status"] == "runtime_error", doc
    assert doc["message"] == (f"exited with code 1: complain.py: cannot use {lay.design} for {out} "
                              f"in {lay.composed}."), doc["message"]
    assert "/job/in/source/design.png" in doc["stderr"], doc["stderr"]


def test_job_list_describes_checks_and_named_files(lay):
    """GET /api/jobs and `pyexec job list --json` show formats, maxPixels, files and defaultStem."""
    p = cli(lay.jobs_file, "list")
    jobs = {j["name"]: j for j in json.loads(p.stdout)["jobs"]}
    r = jobs["render"]["params"]
    assert r["texture"]["formats"] == ["png"] and r["texture"]["maxPixels"] == 67108864
    assert r["blend"]["formats"] == ["blend"] and "maxPixels" not in r["blend"]
    assert r["design_name"]["required"] is False and r["design_name"]["defaultStem"] == "texture"
    assert r["outdir"]["files"] == {
        "render": {"name": "{design_name}_render.png", "result": "renderPath"},
        "animation": {"name": "{design_name}_animation.mp4", "result": "animationPath"}}
    assert jobs["compose"]["params"]["design"]["formats"] == ["png", "jpeg", "webp"]
