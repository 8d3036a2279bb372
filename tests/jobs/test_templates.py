"""Tests of the template makers in jobs/: make_shirt_png.py (Pillow) draws
the outline make_shirt_blend.py (Blender) builds its mesh from, where the
mesh's UV map puts it, so that a design composed onto the PNG lands on the
same spot of the rendered shirt.

Run with Debian's interpreter: /usr/bin/python3 -m pytest tests/jobs
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PIL = pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent.parent
PNG_SCRIPT = ROOT / "jobs" / "make_shirt_png.py"
BLEND_SCRIPT = ROOT / "jobs" / "make_shirt_blend.py"


def outline_of(path):
    """The OUTLINE list assigned at the top level of a script."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and [t.id for t in node.targets if isinstance(t, ast.Name)] == ["OUTLINE"]:
            return ast.literal_eval(node.value)
    raise AssertionError(f"no OUTLINE in {path}")


def make_png(out, *args):
    return subprocess.run([sys.executable, str(PNG_SCRIPT), str(out), *args], capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)


def test_the_two_makers_share_the_outline():
    assert outline_of(PNG_SCRIPT) == outline_of(BLEND_SCRIPT)


def test_png_template_is_the_shirt_on_transparency(tmp_path):
    out = tmp_path / "shirt.png"
    p = make_png(out, "--size=300", "--color=102030")
    assert p.returncode == 0, p.stderr
    assert p.stdout == f"make_shirt_png: wrote {out} (300x300)\n"
    im = Image.open(out)
    assert im.format == "PNG" and im.mode == "RGBA" and im.size == (300, 300)
    # The chest (x 0, z 0.5) is shirt; the corners and the neckline's middle
    # (x 0, z 1.3: above the neckline at z 1.15) are background.
    def at(x, z):
        return im.getpixel((int((x + 1.5) / 3 * 300), int((1.5 - z) / 3 * 300)))
    assert at(0.0, 0.5) == (0x10, 0x20, 0x30, 255)
    assert at(1.4, 0.6) == (0x10, 0x20, 0x30, 255)       # a sleeve
    for x, z in ((-1.45, 1.45), (1.45, -1.45), (0.0, 1.3), (1.2, -1.0)):
        assert at(x, z)[3] == 0, (x, z)


def test_png_template_default_size(tmp_path):
    out = tmp_path / "shirt.png"
    assert make_png(out).returncode == 0
    assert Image.open(out).size == (512, 512)


@pytest.mark.parametrize("args", [["--size=8"], ["--size=big"], ["--color=red"], ["--what"]])
def test_png_template_refuses_bad_options(tmp_path, args):
    out = tmp_path / "shirt.png"
    p = make_png(out, *args)
    assert p.returncode == 1 and "make_shirt_png:" in p.stderr and "usage:" in p.stderr
    assert not out.exists()


def test_png_template_needs_a_png_name(tmp_path):
    p = make_png(tmp_path / "shirt.jpg")
    assert p.returncode == 1 and "ending in .png" in p.stderr
