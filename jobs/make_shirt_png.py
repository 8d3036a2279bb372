#!/usr/bin/python3
"""Draw a plain t-shirt template PNG for the `compose` job.

    python3 make_shirt_png.py OUT.png [--size=N] [--color=RRGGBB]

The shirt is the outline make_shirt_blend.py builds its mesh from, drawn
where that mesh's UV map puts it: the image's square spans x in [-1.5, 1.5]
(left to right) and z in [1.5, -1.5] (top to bottom). So a design composed
onto this template by the `compose` job lands on the same spot of the mesh
when the `render` job uses the result as the texture of a template made by
make_shirt_blend.py. The shirt is opaque (--color, default light grey
ebebeb) on a transparent background; the image is N x N pixels (--size,
16..8192, default 512). Only Pillow is needed (Debian: python3-pil).

A photograph of a real shirt works as a template too: `compose` places the
design by fractions of the image's size (see compose_design.py), assuming
the shirt is roughly centred and fills the frame.
"""

import sys

sys.dont_write_bytecode = True

from PIL import Image, ImageDraw  # noqa: E402

# The same outline as make_shirt_blend.py (tests/jobs/test_templates.py
# holds the two equal): x right, z up, in the mesh's units.
OUTLINE = [
    (-0.9, -1.5), (0.9, -1.5),      # hem
    (0.9, 0.55),                     # right side up to the armpit
    (1.5, 0.25), (1.5, 0.85),        # right sleeve
    (0.55, 1.3),                     # right shoulder
    (0.25, 1.15), (-0.25, 1.15),     # neckline
    (-0.55, 1.3),                    # left shoulder
    (-1.5, 0.85), (-1.5, 0.25),      # left sleeve
    (-0.9, 0.55),                    # left side
]

USAGE = "usage: python3 make_shirt_png.py OUT.png [--size=N] [--color=RRGGBB]"


def parse_args(argv):
    out, size, color = None, 512, (0xEB, 0xEB, 0xEB)
    for a in argv:
        if a.startswith("--size="):
            v = a.split("=", 1)[1]
            if not (v.isascii() and v.isdigit() and 16 <= int(v) <= 8192):
                raise SystemExit(f"make_shirt_png: --size must be 16..8192 pixels, got {v!r}\n{USAGE}")
            size = int(v)
        elif a.startswith("--color="):
            v = a.split("=", 1)[1]
            if len(v) != 6 or any(c not in "0123456789abcdefABCDEF" for c in v):
                raise SystemExit(f"make_shirt_png: --color must be RRGGBB in hex, got {v!r}\n{USAGE}")
            color = tuple(int(v[i:i + 2], 16) for i in (0, 2, 4))
        elif a.startswith("-"):
            raise SystemExit(f"make_shirt_png: unknown option {a!r}\n{USAGE}")
        elif out is None:
            out = a
        else:
            raise SystemExit(f"make_shirt_png: too many arguments\n{USAGE}")
    if out is None or not out.lower().endswith(".png"):
        raise SystemExit(f"make_shirt_png: give an output file ending in .png\n{USAGE}")
    return out, size, color


def draw(size, color):
    im = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    # UV (u, v) = ((x + 1.5) / 3, (z + 1.5) / 3); image rows run down, v up.
    points = [((x + 1.5) / 3 * size, (1.5 - z) / 3 * size) for x, z in OUTLINE]
    ImageDraw.Draw(im).polygon(points, fill=(*color, 255))
    return im


def main(argv):
    out, size, color = parse_args(argv)
    draw(size, color).save(out, format="PNG")
    print(f"make_shirt_png: wrote {out} ({size}x{size})")


if __name__ == "__main__":
    main(sys.argv[1:])
