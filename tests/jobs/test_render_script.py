"""Tests of the `render` job's Blender script, jobs/render_design.py.

Blender is run directly here (no sandbox; the sandboxed job is tested
elsewhere) on a tiny template built by jobs/make_shirt_blend.py: 64x64, Cycles CPU.
Run with Debian's interpreter: /usr/bin/python3 -m pytest tests/jobs
"""

import hashlib
import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

PIL = pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

BLENDER = "/usr/bin/blender"
if not os.access(BLENDER, os.X_OK):
    pytest.skip(f"{BLENDER} is not installed", allow_module_level=True)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
MAKE_TEMPLATE = ROOT / "jobs" / "make_shirt_blend.py"
RENDER_SCRIPT = ROOT / "jobs" / "render_design.py"
SIZE = (64, 64)          # make_shirt_blend.py's default resolution
SAMPLES = "4"
TIMEOUT = 180


def blender_env(scratch):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "BLENDER"))}
    home = scratch / "home"
    tmp = scratch / "tmp"
    home.mkdir(exist_ok=True)
    tmp.mkdir(exist_ok=True)
    env.update(HOME=str(home), TMPDIR=str(tmp), LANG="C.UTF-8")
    return env


def run_blender(args, scratch):
    return subprocess.run([BLENDER, *args], env=blender_env(scratch), capture_output=True,
                          text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL)


def make_template(path, scratch, broken=None, *extra):
    extra = [*extra, f"--broken={broken}"] if broken else list(extra)
    p = run_blender(["--background", "--factory-startup", "--python", str(MAKE_TEMPLATE),
                     "--", str(path), *extra], scratch)
    assert p.returncode == 0 and path.is_file(), p.stdout + p.stderr
    path.chmod(0o444)
    return path


def render(blend, texture, outdir, samples=SAMPLES, *extra, scratch, loaded=None):
    """Run render_design.py as the job does; `loaded` is what Blender opens
    (defaults to `blend`)."""
    return run_blender(["--background", str(loaded or blend), "--python", str(RENDER_SCRIPT),
                        "--", str(blend), str(texture), str(outdir), str(samples), *extra],
                       scratch)


def solid_png(path, rgb):
    Image.new("RGB", (32, 32), rgb).save(path)
    path.chmod(0o444)
    return path


def snapshot(d):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.iterdir())}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    base = tmp_path_factory.mktemp("render")
    scratch = base / "scratch"
    scratch.mkdir()
    inputs = base / "in"
    inputs.mkdir()
    e = {
        "scratch": scratch,
        "inputs": inputs,
        "blend": make_template(inputs / "template.blend", scratch),
        "red": solid_png(inputs / "red.png", (255, 0, 0)),
        "green": solid_png(inputs / "green.png", (0, 200, 0)),
    }
    for broken in ("no-shirt", "no-material", "no-texture"):
        e[broken] = make_template(inputs / f"{broken}.blend", scratch, broken)
    notpng = inputs / "design.jpg.png"
    Image.new("RGB", (8, 8), (255, 0, 0)).save(notpng, format="JPEG")
    e["notpng"] = notpng
    return e


@pytest.fixture(scope="module")
def red_run(env, tmp_path_factory):
    out = tmp_path_factory.mktemp("out_red")
    before = snapshot(env["inputs"])
    p = render(env["blend"], env["red"], out, scratch=env["scratch"])
    return p, out, before


@pytest.fixture(scope="module")
def green_run(env, tmp_path_factory):
    out = tmp_path_factory.mktemp("out_green")
    p = render(env["blend"], env["green"], out, SAMPLES, "--no-animation", scratch=env["scratch"])
    return p, out


# --------------------------------------------------------------------------
# image helpers


def dominant_fraction(img, channel, box=(20, 22, 44, 46), margin=40):
    """Fraction of pixels in `box` whose `channel` (0=r, 1=g) exceeds both
    other channels by more than `margin`."""
    px = img.convert("RGB").crop(box).getdata()
    others = [c for c in range(3) if c != channel]
    hits = sum(1 for p in px if all(p[channel] > p[o] + margin for o in others))
    return hits / len(px)


# --------------------------------------------------------------------------
# MP4 helpers: walk ISO BMFF boxes (enough to find the video sample entry).


def boxes(data, start=0, end=None):
    end = len(data) if end is None else end
    i = start
    while i + 8 <= end:
        size, kind = struct.unpack(">I4s", data[i:i + 8])
        hdr = 8
        if size == 1:
            size = struct.unpack(">Q", data[i + 8:i + 16])[0]
            hdr = 16
        elif size == 0:
            size = end - i
        if size < hdr or i + size > end:
            raise ValueError(f"bad box {kind!r} at {i}")
        yield kind.decode("latin-1"), i + hdr, i + size
        i += size


def find_box(data, path, start=0, end=None):
    kind, rest = path[0], path[1:]
    for k, s, e in boxes(data, start, end):
        if k == kind:
            if not rest:
                return s, e
            found = find_box(data, rest, s, e)
            if found:
                return found
    return None


def mp4_info(path):
    data = Path(path).read_bytes()
    first = next(boxes(data))
    info = {"first": first[0], "brand": data[first[1]:first[1] + 4].decode("latin-1")}
    stbl = ["moov", "trak", "mdia", "minf", "stbl"]
    stsd = find_box(data, stbl + ["stsd"])
    # stsd: version/flags(4) entry_count(4), then sample entries (boxes).
    info["codec"] = next(boxes(data, stsd[0] + 8, stsd[1]))[0] if stsd else None
    stsz = find_box(data, stbl + ["stsz"])
    # stsz: version/flags(4) sample_size(4) sample_count(4)
    info["frames"] = struct.unpack(">I", data[stsz[0] + 8:stsz[0] + 12])[0] if stsz else None
    tkhd = find_box(data, ["moov", "trak", "tkhd"])
    if tkhd:
        w, h = struct.unpack(">II", data[tkhd[1] - 8:tkhd[1]])  # 16.16 fixed point
        info["size"] = (w >> 16, h >> 16)
    return info


# --------------------------------------------------------------------------
# success


def test_red_render_succeeds(red_run):
    p, out, _ = red_run
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    summary = [line for line in p.stdout.splitlines() if line.startswith("render_design: ok")]
    assert len(summary) == 1, p.stdout[-2000:]
    assert "64x64" in summary[0] and "samples=4" in summary[0]
    assert sorted(os.listdir(out)) == ["animation.mp4", "render.png"]


def test_progress_counts_every_frame(red_run, green_run):
    """One PYEXEC_PROGRESS line per frame: the still and the twelve frames
    of the turntable, or the still alone."""
    for p, total in ((red_run[0], 13), (green_run[0], 1)):
        lines = [line for line in p.stderr.splitlines() if line.startswith("PYEXEC_PROGRESS ")]
        assert lines == [f"PYEXEC_PROGRESS {i}/{total}" for i in range(1, total + 1)], p.stderr[-2000:]


def test_still_has_template_size_and_texture_colour(red_run):
    p, out, _ = red_run
    img = Image.open(out / "render.png")
    assert img.format == "PNG"
    assert img.size == SIZE
    assert dominant_fraction(img, 0) > 0.8, "shirt centre is not red"
    # The background (a corner) is not the design's colour.
    corner = img.convert("RGB").getpixel((1, 1))
    assert not corner[0] > corner[1] + 40


def test_colour_follows_texture(red_run, green_run):
    p, out = green_run
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    green = Image.open(out / "render.png")
    red = Image.open(red_run[1] / "render.png")
    assert green.size == SIZE
    assert dominant_fraction(green, 1) > 0.8, "shirt centre is not green"
    assert dominant_fraction(green, 0) < 0.05
    assert dominant_fraction(red, 1) < 0.05


def test_template_size_option(env, tmp_path):
    blend = make_template(tmp_path / "small.blend", env["scratch"], None, "--size=32")
    out = tmp_path / "out"
    out.mkdir()
    p = render(blend, env["red"], out, SAMPLES, "--no-animation", scratch=env["scratch"])
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert Image.open(out / "render.png").size == (32, 32)


@pytest.mark.parametrize("size", ["15", "33", "9000", "x"])
def test_template_size_must_be_even_and_in_range(env, tmp_path, size):
    p = run_blender(["--background", "--factory-startup", "--python", str(MAKE_TEMPLATE), "--",
                     str(tmp_path / "t.blend"), f"--size={size}"], env["scratch"])
    assert p.returncode != 0
    assert "--size must be an even number of pixels between 16 and 8192" in p.stdout + p.stderr
    assert not (tmp_path / "t.blend").exists()


def test_no_animation_flag(green_run):
    _, out = green_run
    assert sorted(os.listdir(out)) == ["render.png"]


def test_animation_is_h264_mp4(red_run):
    _, out, _ = red_run
    mp4 = out / "animation.mp4"
    assert mp4.stat().st_size > 1000
    info = mp4_info(mp4)
    assert info["first"] == "ftyp"
    assert info["codec"] == "avc1", info
    assert info["frames"] == 12, info
    assert info["size"] == SIZE, info
    if shutil.which("ffprobe"):
        probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0",
                                "-show_entries", "stream=codec_name", "-of", "csv=p=0",
                                str(mp4)], capture_output=True, text=True, timeout=60)
        assert probe.stdout.strip() == "h264"


def test_inputs_untouched_and_scratch_clean(env, red_run):
    _, _, before = red_run
    assert snapshot(env["inputs"]) == before
    # Blender's session directory under TMPDIR is gone.
    assert not [n for n in os.listdir(env["scratch"] / "tmp") if n.startswith("blender_")]


# --------------------------------------------------------------------------
# errors


ERROR_CASES = {
    # id: (blend key, texture key or path, samples, extra args, expected text)
    "missing-texture": ("blend", "missing.png", SAMPLES, [], "missing.png"),
    "texture-not-png": ("blend", "notpng", SAMPLES, [], "not a PNG"),
    "samples-0": ("blend", "red", "0", [], "samples out of range"),
    "samples-5000": ("blend", "red", "5000", [], "samples out of range"),
    "samples-not-int": ("blend", "red", "4.5", [], "samples must be an integer"),
    "unknown-flag": ("blend", "red", SAMPLES, ["--loop"], "unknown option '--loop'"),
    "too-many-args": ("blend", "red", SAMPLES, ["extra"], "expected 4 arguments"),
    "no-shirt": ("no-shirt", "red", SAMPLES, [], "'Shirt'"),
    "no-material": ("no-material", "red", SAMPLES, [], "'ShirtMaterial'"),
    "no-texture-node": ("no-texture", "red", SAMPLES, [], "'DesignTexture'"),
}


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_errors(env, tmp_path, case):
    blend_key, tex, samples, extra, expected = ERROR_CASES[case]
    texture = env[tex] if tex in env else env["inputs"] / tex
    out = tmp_path / "out"
    out.mkdir()
    p = render(env[blend_key], texture, out, samples, *extra, scratch=env["scratch"])
    assert p.returncode != 0, p.stdout[-2000:]
    errors = [line for line in p.stderr.splitlines() if line.startswith("render_design: error:")]
    assert errors, p.stderr[-2000:]
    assert expected in errors[0], errors
    assert os.listdir(out) == []
    assert not [n for n in os.listdir(env["scratch"] / "tmp") if n.startswith("blender_")]


def test_missing_outdir(env, tmp_path):
    p = render(env["blend"], env["red"], tmp_path / "nope", scratch=env["scratch"])
    assert p.returncode != 0
    assert "output directory" in p.stderr and "nope" in p.stderr


def test_template_must_be_the_loaded_one(env, tmp_path):
    p = render(env["no-shirt"], env["red"], tmp_path, loaded=env["blend"], scratch=env["scratch"])
    assert p.returncode != 0
    assert "Blender loaded" in p.stderr
    assert os.listdir(tmp_path) == []


def test_missing_template_fails_in_blender(env, tmp_path):
    # Blender itself refuses before the script runs.
    missing = env["inputs"] / "missing.blend"
    p = render(missing, env["red"], tmp_path, scratch=env["scratch"])
    assert p.returncode != 0
    assert "missing.blend" in p.stdout + p.stderr
    assert os.listdir(tmp_path) == []
