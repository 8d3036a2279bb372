"""Tests for jobs/compose_design.py, the `compose` job's script.

The script is run as a subprocess with Debian's /usr/bin/python3 (the interpreter
the sandbox uses), HOME=/sandbox and a minimal environment, on images generated
here.  Run with:  /usr/bin/python3 -m pytest tests/jobs/test_compose_script.py
"""

import ast
import importlib.util
import io
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from PIL import Image, ImageChops

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "jobs" / "compose_design.py"
PYTHON = "/usr/bin/python3"

# The documented table (fractions x, y, w, h), pinned here on purpose so a change
# to the script's table is a deliberate, reviewed change of this file too.
EXPECTED_PRESETS = {
    "chest-large": (0.30, 0.20, 0.40, 0.30),
    "chest-medium": (0.35, 0.20, 0.30, 0.225),
    "chest-small": (0.40, 0.20, 0.20, 0.15),
    "dead-center-large": (0.28, 0.30, 0.44, 0.40),
    "dead-center-medium": (0.33, 0.35, 0.34, 0.30),
    "dead-center-small": (0.38, 0.39, 0.24, 0.22),
    "back-large": (0.27, 0.16, 0.46, 0.38),
    "back-medium": (0.32, 0.16, 0.36, 0.29),
    "back-small": (0.37, 0.16, 0.26, 0.20),
}
PRESETS = list(EXPECTED_PRESETS)
PLACEMENTS = ("chest", "dead-center", "back")
SIZES = ("large", "medium", "small")

TW, TH = 400, 500           # template size used throughout
WHITE = (255, 255, 255, 255)
RED = (255, 0, 0, 255)

ENV = {"HOME": "/sandbox", "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}


# ----------------------------------------------------------------- helpers

def run(*args, cwd):
    return subprocess.run([PYTHON, str(SCRIPT), *map(str, args)], cwd=cwd,
                          env=ENV, capture_output=True, text=True, timeout=60)


def compose(tmp, template, design, preset, name="out.png"):
    """Run the script; return (CompletedProcess, output image or None)."""
    out = Path(tmp) / name
    p = run("--template", template, "--design", design, "--preset", preset,
            "--output", out, cwd=tmp)
    img = Image.open(out) if p.returncode == 0 else None
    if img is not None:
        img.load()
    return p, img


def box_px(preset, size=(TW, TH)):
    """The preset's box in pixels, as documented: (left, top, right, bottom)."""
    x, y, w, h = EXPECTED_PRESETS[preset]
    W, H = size
    return round(x * W), round(y * H), round((x + w) * W), round((y + h) * H)


def changed_bbox(out, template):
    """Bounding box (l, t, r, b; r/b exclusive) of pixels that differ."""
    diff = ImageChops.difference(out.convert("RGBA"), template.convert("RGBA"))
    # (an RGBA image's getbbox() looks at alpha only, so go band by band)
    boxes = [b for b in (band.getbbox() for band in diff.split()) if b]
    if not boxes:
        return None
    return (min(b[0] for b in boxes), min(b[1] for b in boxes),
            max(b[2] for b in boxes), max(b[3] for b in boxes))


def outside_box_untouched(out, template, box):
    """True if every pixel outside box equals the template's."""
    t = template.convert("RGBA")
    o = out.convert("RGBA").copy()
    o.paste(t.crop(box), box[:2])
    return o.tobytes() == t.tobytes()


def inside(inner, outer):
    return (inner[0] >= outer[0] and inner[1] >= outer[1]
            and inner[2] <= outer[2] and inner[3] <= outer[3])


def png_bytes(img):
    b = io.BytesIO()
    img.save(b, "PNG")
    return b.getvalue()


def png_with_size(width, height):
    """A small valid-looking PNG whose IHDR claims width x height (CRC fixed)."""
    data = bytearray(png_bytes(Image.new("RGB", (1, 1), "white")))
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def snapshot(*dirs):
    return {d: sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns)
                      for p in Path(d).iterdir()) for d in dirs}


def load_script_module():
    spec = importlib.util.spec_from_file_location("compose_design", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    dwb = sys.dont_write_bytecode      # the script sets it; don't leak that
    try:
        spec.loader.exec_module(mod)
    finally:
        sys.dont_write_bytecode = dwb
    return mod


# ----------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def imgdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("compose_inputs")
    Image.new("RGB", (TW, TH), "white").save(d / "template.png")
    Image.new("RGB", (100, 50), (255, 0, 0)).save(d / "red.png")
    return d


@pytest.fixture(scope="module")
def template(imgdir):
    return Image.open(imgdir / "template.png").convert("RGBA")


@pytest.fixture(scope="module")
def preset_runs(imgdir, tmp_path_factory):
    """The red 100x50 design composed at every preset, once per module."""
    out = tmp_path_factory.mktemp("compose_presets")
    results = {}
    for preset in PRESETS:
        p, img = compose(out, imgdir / "template.png", imgdir / "red.png",
                         preset, name=f"{preset}.png")
        results[preset] = (p, img)
    return results


@pytest.fixture
def work(tmp_path):
    """An empty directory to write into; the inputs live elsewhere."""
    d = tmp_path / "work"
    d.mkdir()
    return d


# ----------------------------------------------------------------- table

def test_script_table_matches_documented_table():
    mod = load_script_module()
    assert mod.PRESETS == EXPECTED_PRESETS
    # The docstring documents each preset with the same numbers.
    rows = {}
    for line in mod.__doc__.splitlines():
        tok = line.split()
        if tok and tok[0] in EXPECTED_PRESETS:
            rows[tok[0]] = tuple(float(t) for t in tok[1:5])
    assert rows == EXPECTED_PRESETS


def test_table_geometry():
    for name, (x, y, w, h) in EXPECTED_PRESETS.items():
        assert 0 <= x and 0 <= y and x + w <= 1 and y + h <= 1, name
        assert abs(x + w / 2 - 0.5) < 1e-9, f"{name} not centred horizontally"
    for place in PLACEMENTS:
        lg, md, sm = (EXPECTED_PRESETS[f"{place}-{s}"] for s in SIZES)
        for outer, inner in ((lg, md), (md, sm)):
            ox, oy, ow, oh = outer
            ix, iy, iw, ih = inner
            assert ox < ix and oy <= iy and ix + iw < ox + ow and iy + ih < oy + oh
            assert iw < ow and ih < oh
    for s in SIZES:
        chest = EXPECTED_PRESETS[f"chest-{s}"]
        center = EXPECTED_PRESETS[f"dead-center-{s}"]
        back = EXPECTED_PRESETS[f"back-{s}"]
        assert chest[1] + chest[3] / 2 < 0.45          # chest: high on the front
        assert abs(center[1] + center[3] / 2 - 0.5) < 1e-9  # dead centre
        assert back[1] < chest[1]                      # back: higher ...
        assert back[2] > chest[2] and back[3] > chest[3]  # ... and larger
        assert back != chest


# ----------------------------------------------------------------- pixels

def test_chest_large_pixels(preset_runs, template):
    p, out = preset_runs["chest-large"]
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""
    assert out.format == "PNG" and out.mode == "RGBA" and out.size == (TW, TH)

    box = box_px("chest-large")
    assert box == (120, 100, 280, 250)               # 160x150 box
    l, t, r, b = bb = changed_bbox(out, template)
    assert inside(bb, box)
    # 100x50 into 160x150 is width-limited: touches left and right edges.
    assert (l, r) == (box[0], box[2])
    # centred vertically (±1 px) ...
    assert abs((t - box[1]) - (box[3] - b)) <= 1
    # ... with the design's 2:1 aspect ratio (±1 px).
    assert abs((b - t) - (r - l) / 2) <= 1
    assert bb == (120, 135, 280, 215)
    # every placed pixel is pure red; everything outside the box is white.
    assert set(out.crop(bb).getdata()) == {RED}
    assert outside_box_untouched(out, template, box)

    lines = p.stdout.splitlines()
    assert len(lines) == 1
    assert "preset=chest-large" in lines[0]
    assert "box=160x150+120+100" in lines[0]
    assert "placed=160x80+120+135" in lines[0]


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_inside_its_box(preset, preset_runs, template):
    p, out = preset_runs[preset]
    assert p.returncode == 0, p.stderr
    box = box_px(preset)
    l, t, r, b = bb = changed_bbox(out, template)
    assert inside(bb, box), (bb, box)
    bw, bh = box[2] - box[0], box[3] - box[1]
    assert bw / 100 <= bh / 50 + 1e-9        # all boxes are width-limited for 2:1
    assert (l, r) == (box[0], box[2])
    assert abs((t - box[1]) - (box[3] - b)) <= 1
    assert abs((b - t) - (r - l) / 2) <= 1
    assert outside_box_untouched(out, template, box)
    assert f"preset={preset} " in p.stdout


def test_output_boxes_nest_and_differ(preset_runs, template):
    bbox = {k: changed_bbox(img, template) for k, (_, img) in preset_runs.items()}
    for place in PLACEMENTS:
        lg, md, sm = (f"{place}-{s}" for s in SIZES)
        assert inside(box_px(md), box_px(lg)) and inside(box_px(sm), box_px(md))
        # each placed design lies in its own box and in every larger box;
        # (the placed regions themselves need not nest: boxes sharing a top
        # edge centre their designs at different heights)
        assert inside(bbox[sm], box_px(md)) and inside(bbox[sm], box_px(lg))
        assert inside(bbox[md], box_px(lg))
        area = {k: (bbox[k][2] - bbox[k][0]) * (bbox[k][3] - bbox[k][1])
                for k in (lg, md, sm)}
        assert area[lg] > area[md] > area[sm]
    for s in SIZES:
        assert box_px(f"back-{s}") != box_px(f"chest-{s}")
        assert bbox[f"back-{s}"] != bbox[f"chest-{s}"]


def test_tall_design_is_height_limited(imgdir, template, work):
    Image.new("RGB", (40, 200), (0, 0, 255)).save(work.parent / "tall.png")
    p, out = compose(work, imgdir / "template.png", work.parent / "tall.png",
                     "chest-large")
    assert p.returncode == 0, p.stderr
    box = box_px("chest-large")
    l, t, r, b = bb = changed_bbox(out, template)
    assert inside(bb, box)
    assert (t, b) == (box[1], box[3])                 # touches top and bottom
    assert abs((l - box[0]) - (box[2] - r)) <= 1      # centred horizontally
    assert abs((r - l) - (b - t) / 5) <= 1            # 1:5 aspect
    assert (r - l, b - t) == (30, 150)
    assert set(out.crop(bb).getdata()) == {(0, 0, 255, 255)}
    assert outside_box_untouched(out, template, box)


def test_tiny_design_is_scaled_up_to_fit(imgdir, template, work):
    Image.new("RGB", (4, 2), (255, 0, 0)).save(work.parent / "tiny.png")
    p, out = compose(work, imgdir / "template.png", work.parent / "tiny.png",
                     "chest-large")
    assert p.returncode == 0, p.stderr
    assert changed_bbox(out, template) == (120, 135, 280, 215)   # 160x80
    assert "placed=160x80+120+135" in p.stdout
    assert set(out.crop((120, 135, 280, 215)).getdata()) == {RED}


def test_lanczos_resampling(imgdir, template, work):
    # 1-px red/white stripes, halved: a smoothing filter blends them to pink;
    # the result matches Pillow's own LANCZOS resize exactly.
    design = Image.new("RGB", (320, 160), "white")
    for x in range(0, 320, 2):
        design.paste((255, 0, 0), (x, 0, x + 1, 160))
    design.save(work.parent / "stripes.png")
    p, out = compose(work, imgdir / "template.png", work.parent / "stripes.png",
                     "chest-large")
    assert p.returncode == 0, p.stderr
    r, g, b, a = out.getpixel((200, 175))
    assert r == 255 and abs(g - 128) <= 20 and abs(b - 128) <= 20
    expected = template.copy()
    expected.alpha_composite(design.convert("RGBA").resize((160, 80), Image.LANCZOS),
                             (120, 135))
    assert out.tobytes() == expected.tobytes()


def test_exif_orientation_is_applied(imgdir, template, work):
    design = Image.new("RGB", (100, 50), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6                      # "rotate 90 CW to display"
    design.save(work.parent / "rot.png", exif=exif.tobytes())
    p, out = compose(work, imgdir / "template.png", work.parent / "rot.png",
                     "chest-large")
    assert p.returncode == 0, p.stderr
    l, t, r, b = changed_bbox(out, template)
    assert (t, b) == (100, 250) and (r - l) == 75    # displayed as 50x100


# ----------------------------------------------------------------- alpha

def test_transparent_half_leaves_template_visible(imgdir, template, work):
    design = Image.new("RGBA", (100, 50), (255, 0, 0, 255))
    # right half fully transparent; blue there must not bleed into the result
    design.paste((0, 0, 255, 0), (50, 0, 100, 50))
    design.save(work.parent / "half.png")
    p, out = compose(work, imgdir / "template.png", work.parent / "half.png",
                     "chest-large")
    assert p.returncode == 0, p.stderr
    # placed at 120..280 x 135..215: left half 120..200 red, right half white
    assert set(out.crop((120, 135, 195, 215)).getdata()) == {RED}
    assert set(out.crop((205, 135, 280, 215)).getdata()) == {WHITE}
    assert changed_bbox(out, template)[2] <= 205
    # no colour bleed from transparent blue, even at the seam
    assert all(abs(g - bl) <= 1 for _, g, bl, _ in out.crop((120, 135, 280, 215)).getdata())
    assert outside_box_untouched(out, template, box_px("chest-large"))


def test_semi_transparent_pixels_blend(imgdir, template, work):
    Image.new("RGBA", (100, 50), (255, 0, 0, 128)).save(work.parent / "semi.png")
    p, out = compose(work, imgdir / "template.png", work.parent / "semi.png",
                     "chest-large")
    assert p.returncode == 0, p.stderr
    for xy in ((125, 140), (200, 175), (275, 210)):
        r, g, b, a = out.getpixel(xy)
        assert abs(r - 255) <= 2 and abs(g - 128) <= 2 and abs(b - 128) <= 2 and a == 255
    assert out.getpixel((119, 175)) == WHITE


def test_other_modes_and_template_alpha(work):
    # template: RGBA with transparent background; design: palette PNG with a
    # transparent index and a JPEG-free path through convert("RGBA").
    tpl = Image.new("RGBA", (TW, TH), (0, 0, 0, 0))
    tpl.paste((10, 20, 30, 255), (100, 100, 300, 400))
    tpl.save(work.parent / "tpl.png")
    pal = Image.new("P", (100, 50), 1)
    pal.putpalette([0, 0, 0, 0, 200, 0] + [0] * 762)
    pal.paste(0, (0, 0, 50, 50))
    pal.save(work.parent / "pal.png", transparency=0)
    p, out = compose(work, work.parent / "tpl.png", work.parent / "pal.png",
                     "chest-large")
    assert p.returncode == 0, p.stderr
    assert out.mode == "RGBA"
    assert out.getpixel((5, 5)) == (0, 0, 0, 0)          # template alpha kept
    assert out.getpixel((150, 175)) == (10, 20, 30, 255)  # transparent index
    assert out.getpixel((250, 175)) == (0, 200, 0, 255)


# ----------------------------------------------------------------- errors

def assert_failed(p, code, *needles):
    assert p.returncode == code, (p.returncode, p.stdout, p.stderr)
    assert p.stdout == ""
    for n in needles:
        assert n in p.stderr, (n, p.stderr)
    assert "Traceback" not in p.stderr


@pytest.fixture
def errcase(imgdir, work):
    """Run the script expecting an error; check nothing was written."""
    def go(template, design, preset, output, code, *needles):
        before = snapshot(work, imgdir, work.parent)
        p = run("--template", template, "--design", design, "--preset", preset,
                "--output", output, cwd=work)
        assert_failed(p, code, *needles)
        assert snapshot(work, imgdir, work.parent) == before
        return p
    return go


def test_unknown_preset_lists_valid_ones(imgdir, errcase):
    p = errcase(imgdir / "template.png", imgdir / "red.png", "chest-huge",
                "out.png", 2, "chest-huge")
    for name in PRESETS:
        assert name in p.stderr


def test_missing_template(imgdir, errcase, work):
    errcase(work.parent / "nope.png", imgdir / "red.png", "chest-large",
            "out.png", 1, "template", "nope.png", "not found")


def test_design_not_an_image(imgdir, errcase, work):
    (work.parent / "design.png").write_text("this is not an image\n")
    errcase(imgdir / "template.png", work.parent / "design.png", "chest-large",
            "out.png", 1, "design", "design.png", "not a readable image")


def test_template_not_an_image(imgdir, errcase, work):
    (work.parent / "tpl.txt").write_text("hello\n")
    p = errcase(work.parent / "tpl.txt", imgdir / "red.png", "chest-large",
                "out.png", 1, "template", "tpl.txt")
    assert "design" not in p.stderr.split("error:", 1)[1]


def test_unsupported_format_refused(imgdir, errcase, work):
    Image.new("RGB", (10, 10)).save(work.parent / "d.ppm")
    errcase(imgdir / "template.png", work.parent / "d.ppm", "chest-large",
            "out.png", 1, "design", "not a readable image")


def test_design_is_directory(imgdir, errcase, work):
    errcase(imgdir / "template.png", work.parent, "chest-large",
            "out.png", 1, "design", "not a regular file")


@pytest.mark.parametrize("output", ["out.jpg", "out.png.txt", "out", ".png"])
def test_output_must_be_png(imgdir, errcase, output):
    errcase(imgdir / "template.png", imgdir / "red.png", "chest-large",
            output, 2, ".png")


def test_output_directory_missing(imgdir, errcase):
    errcase(imgdir / "template.png", imgdir / "red.png", "chest-large",
            "no/such/dir/out.png", 1, "does not exist")


def test_output_is_an_input(imgdir, errcase):
    errcase(imgdir / "template.png", imgdir / "red.png", "chest-large",
            imgdir / "template.png", 1, "is the template")


@pytest.mark.parametrize("role", ["design", "template"])
@pytest.mark.parametrize("size", [(100000, 100000), (8000, 6000)])
def test_decompression_bomb_refused(role, size, imgdir, errcase, work):
    # 100000x100000 is over Pillow's hard (2x) limit; 8000x6000 = 48 MP is over
    # the 40 MP limit but under 2x of it.
    bomb = work.parent / "bomb.png"
    bomb.write_bytes(png_with_size(*size))
    assert bomb.stat().st_size < 100
    args = {"template": imgdir / "template.png", "design": imgdir / "red.png"}
    args[role] = bomb
    errcase(args["template"], args["design"], "chest-large", "out.png", 1,
            role, "bomb.png", "megapixel")


def test_zero_size_design_refused(imgdir, errcase, work):
    (work.parent / "zero.png").write_bytes(png_with_size(0, 10))
    errcase(imgdir / "template.png", work.parent / "zero.png", "chest-large",
            "out.png", 1, "design", "zero.png")
    # Pillow refuses such headers itself; the script's own check as a unit:
    mod = load_script_module()
    with pytest.raises(mod.ComposeError, match="zero size"):
        mod.fit((0, 10), (0, 0, 10, 10))


def test_truncated_design_refused(imgdir, errcase, work):
    data = png_bytes(Image.effect_noise((200, 200), 64).convert("RGB"))
    (work.parent / "trunc.png").write_bytes(data[: len(data) // 2])
    errcase(imgdir / "template.png", work.parent / "trunc.png", "chest-large",
            "out.png", 1, "design", "trunc.png", "could not be decoded")


def test_existing_output_untouched_on_error(imgdir, work):
    out = work / "out.png"
    out.write_bytes(b"sentinel")
    p = run("--template", imgdir / "template.png", "--design", work / "missing.png",
            "--preset", "chest-large", "--output", out, cwd=work)
    assert_failed(p, 1, "design", "missing.png")
    assert out.read_bytes() == b"sentinel"


# ----------------------------------------------------------------- contract

def test_parser_has_exactly_the_four_flags():
    mod = load_script_module()
    opts = {o for a in mod.build_parser()._actions for o in a.option_strings}
    assert opts == {"-h", "--help", "--template", "--design", "--preset", "--output"}


FULL = ["--template", "t.png", "--design", "d.png", "--preset", "chest-large",
        "--output", "o.png"]


@pytest.mark.parametrize("argv", [
    FULL + ["--quality", "90"],                     # unknown flag
    FULL + ["extra"],                               # positional
    ["--temp", "t.png"] + FULL[2:],                 # abbreviation
    FULL[2:],                                       # missing --template
    FULL[:2] + FULL[4:],                            # missing --design
    FULL[:4] + FULL[6:],                            # missing --preset
    FULL[:6],                                       # missing --output
    [],
], ids=["unknown", "positional", "abbrev", "no-template", "no-design",
        "no-preset", "no-output", "empty"])
def test_command_line_rejected(argv, work):
    (work / "t.png").write_bytes(png_bytes(Image.new("RGB", (40, 50), "white")))
    (work / "d.png").write_bytes(png_bytes(Image.new("RGB", (10, 5), "red")))
    p = subprocess.run([PYTHON, str(SCRIPT), *argv], cwd=work, env=ENV,
                       capture_output=True, text=True, timeout=60)
    assert_failed(p, 2, "usage:")
    assert not (work / "o.png").exists()


def test_relative_paths_in_read_only_cwd(imgdir, work):
    """Runs in an otherwise read-only cwd (HOME=/sandbox, minimal env) and
    writes nothing but --output: no __pycache__, no stray files."""
    out_dir = work.parent / "outdir"
    out_dir.mkdir()
    cwd = work.parent / "ro"
    cwd.mkdir()
    (cwd / "template.png").write_bytes((imgdir / "template.png").read_bytes())
    (cwd / "design.png").write_bytes((imgdir / "red.png").read_bytes())
    (cwd / "compose_design.py").write_bytes(SCRIPT.read_bytes())
    before = snapshot(cwd)
    os.chmod(cwd, 0o555)        # not enforced for root, hence the snapshot
    try:
        p = subprocess.run([PYTHON, "compose_design.py", "--template", "template.png",
                            "--design", "design.png", "--preset", "back-medium",
                            "--output", str(out_dir / "o.png")],
                           cwd=cwd, env=ENV, capture_output=True, text=True, timeout=60)
    finally:
        os.chmod(cwd, 0o755)
    assert p.returncode == 0, p.stderr
    assert snapshot(cwd) == before
    assert [x.name for x in out_dir.iterdir()] == ["o.png"]


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "TIFF", "WEBP", "GIF", "BMP"])
def test_only_stdlib_and_pil_imported(fmt, imgdir, work):
    """Every accepted format decodes without importing anything outside the
    standard library and PIL (e.g. no olefile via Image.init()); Pillow's
    own import of defusedxml, for XMP, where Debian's python3-defusedxml is
    installed (python3-pandas brings it, through python3-odf), is the one
    exception."""
    ext = {"JPEG": "jpg", "TIFF": "tif"}.get(fmt, fmt.lower())
    design = work / f"d.{ext}"
    Image.new("RGB", (100, 50), (255, 0, 0)).save(design, fmt)
    code = (
        "import runpy, sys\n"
        "before = set(sys.modules)\n"
        f"sys.argv = ['compose_design.py', '--template', {str(imgdir / 'template.png')!r},"
        f" '--design', {str(design)!r}, '--preset', 'chest-small',"
        f" '--output', {str(work / 'o.png')!r}]\n"
        "try:\n"
        f"    runpy.run_path({str(SCRIPT)!r}, run_name='__main__')\n"
        "except SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "new = {m.split('.')[0] for m in set(sys.modules) - before}\n"
        "print(sorted(new - set(sys.stdlib_module_names)))\n"
    )
    p = subprocess.run([PYTHON, "-c", code], cwd=work, env=ENV,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    imported = set(ast.literal_eval(p.stdout.splitlines()[-1]))
    assert "PIL" in imported and imported - {"PIL", "defusedxml"} == set(), imported
    assert (work / "o.png").exists()
