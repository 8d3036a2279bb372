#!/usr/bin/python3
"""Compose a customer's design onto a t-shirt template at a placement preset.

Usage (exactly these four flags, all required; anything else is rejected):

    python3 compose_design.py --template T --design D --preset P --output O.png

The design is scaled to fit inside the preset's box with its aspect ratio kept,
centred in the box, alpha-composited onto the template and the result is written
as an RGBA PNG to --output.  Nothing else is ever written: no temporary files, no
bytecode caches, no files in the working directory or $HOME.  Only the standard
library and Pillow are used; no network.

Placement presets
-----------------
Each preset is a box on the template given as fractions of the template's width
and height: x and y are the box's top-left corner, w and h its size.  The box in
pixels is [round(x*W), round((x+w)*W)) by [round(y*H), round((y+h)*H)), so the
nesting of the table survives rounding.  The template is assumed to show the
whole shirt, roughly centred and filling the frame; back-* presets are meant for
a template showing the back of the shirt.

    preset               x      y      w      h      placement
    chest-large          0.30   0.20   0.40   0.30   top edge at 20 % of height,
    chest-medium         0.35   0.20   0.30   0.225  centred horizontally; sizes
    chest-small          0.40   0.20   0.20   0.15   nest, sharing the top edge
    dead-center-large    0.28   0.30   0.44   0.40   centred on the template's
    dead-center-medium   0.33   0.35   0.34   0.30   centre (0.5, 0.5); sizes
    dead-center-small    0.38   0.39   0.24   0.22   nest concentrically
    back-large           0.27   0.16   0.46   0.38   higher (top at 16 %) and
    back-medium          0.32   0.16   0.36   0.29   larger than the chest boxes;
    back-small           0.37   0.16   0.26   0.20   nest, sharing the top edge

Scaling
-------
The design is scaled by one factor so that it fits the box and touches the box's
edges along its limiting dimension: a print shop "scales to fit", so a design
smaller than the box is scaled UP as well as a larger one down.  The other
dimension is rounded to the nearest pixel (at least 1).  Resampling is LANCZOS
(Pillow premultiplies alpha for RGBA, so transparent pixels do not bleed colour).
EXIF orientation of either image is applied first (a phone photo is placed the
way it is displayed).  For an animated image the first frame is used.  No colour
management is done (embedded ICC profiles are ignored).

Input limits
------------
Accepted formats: PNG, JPEG, WEBP, GIF, BMP, TIFF.  Each input must be a regular
file of at most 256 MiB whose header declares at most 40 megapixels; the size is
checked from the header before any pixel data is decoded, and
Image.MAX_IMAGE_PIXELS is set to the same limit (with Pillow's decompression-bomb
warning turned into an error), so a bomb is refused with a clear message.
Truncated or corrupt images are refused.

Exit status
-----------
0  success; one summary line is printed on stdout
1  an input could not be used or the output could not be written (message on
   stderr says which)
2  usage error: unknown or missing flag, unknown preset (the valid ones are
   listed), output not ending in .png (any case; a bare ".png" name is refused)
"""

import sys

sys.dont_write_bytecode = True  # never leave __pycache__ anywhere

import argparse  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import stat  # noqa: E402
import warnings  # noqa: E402

from PIL import Image, ImageOps, UnidentifiedImageError  # noqa: E402
# Register exactly the accepted formats' decoders.  With all of ALLOWED_FORMATS
# registered, Image.open(formats=...) never calls Image.init(), which would import
# every Pillow plugin (and optional third-party modules such as olefile).
from PIL import (  # noqa: E402
    BmpImagePlugin, GifImagePlugin, JpegImagePlugin, PngImagePlugin,
    TiffImagePlugin, WebPImagePlugin)

_DECODERS = (BmpImagePlugin, GifImagePlugin, JpegImagePlugin, PngImagePlugin,
             TiffImagePlugin, WebPImagePlugin)

PROG = "compose_design.py"


def shown(text):
    """text with the sandbox's paths (/job/...) replaced by the ones the caller
    gave: pyexec passes the map in PYEXEC_JOB_PATHS (a JSON object). Unchanged
    when run by hand."""
    try:
        paths = json.loads(os.environ.get("PYEXEC_JOB_PATHS") or "{}")
    except ValueError:
        return text
    if not isinstance(paths, dict) or not paths:
        return text
    keys = sorted(paths, key=len, reverse=True)
    pattern = re.compile("(?:" + "|".join(re.escape(k) for k in keys) + r")(?![\w-])")
    return pattern.sub(lambda m: str(paths[m.group(0)]), text)

# name: (x, y, w, h) as fractions of the template's width / height.
PRESETS = {
    # Chest: high on the front, centred horizontally, top edges aligned.
    "chest-large": (0.30, 0.20, 0.40, 0.30),
    "chest-medium": (0.35, 0.20, 0.30, 0.225),
    "chest-small": (0.40, 0.20, 0.20, 0.15),
    # Dead centre: concentric boxes centred on (0.5, 0.5).
    "dead-center-large": (0.28, 0.30, 0.44, 0.40),
    "dead-center-medium": (0.33, 0.35, 0.34, 0.30),
    "dead-center-small": (0.38, 0.39, 0.24, 0.22),
    # Back: a bit higher and larger than chest, top edges aligned.
    "back-large": (0.27, 0.16, 0.46, 0.38),
    "back-medium": (0.32, 0.16, 0.36, 0.29),
    "back-small": (0.37, 0.16, 0.26, 0.20),
}

MAX_PIXELS = 40_000_000            # per input image, from the header
MAX_INPUT_BYTES = 256 * 1024 * 1024  # per input file
ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")

EXIF_ORIENTATION = 0x0112

EXIT_INPUT = 1     # usage errors exit 2 through argparse's parser.error()


class ComposeError(Exception):
    """An input or output problem, reported on stderr with exit status 1."""


def preset_box(preset, template_size):
    """Return the preset's box (left, top, right, bottom) in template pixels."""
    x, y, w, h = PRESETS[preset]
    width, height = template_size
    left, top = round(x * width), round(y * height)
    right, bottom = round((x + w) * width), round((y + h) * height)
    if right <= left or bottom <= top:
        raise ComposeError(
            f"template is {width}x{height}, too small for preset {preset} "
            "(its box would be empty)")
    return left, top, right, bottom


def fit(design_size, box):
    """Scale design_size to fit box keeping aspect; return (w, h), (x, y).

    The limiting dimension becomes exactly the box's; the other is rounded to
    the nearest pixel (half up), at least 1.  The result is centred in the box
    (an odd leftover pixel goes right/below).  Integer arithmetic only.
    """
    dw, dh = design_size
    if dw <= 0 or dh <= 0:
        raise ComposeError(f"design has zero size ({dw}x{dh})")
    left, top, right, bottom = box
    bw, bh = right - left, bottom - top
    if bw * dh <= bh * dw:       # width-limited (bw/dw <= bh/dh)
        w = bw
        h = min(bh, max(1, (2 * dh * bw + dw) // (2 * dw)))
    else:                        # height-limited
        h = bh
        w = min(bw, max(1, (2 * dw * bh + dh) // (2 * dh)))
    return (w, h), (left + (bw - w) // 2, top + (bh - h) // 2)


def load_image(role, path, opaque_as_rgb=False):
    """Open, check and decode one input image; errors name the role and path.

    Returns an RGBA image, or with opaque_as_rgb an RGB one when the image has
    no alpha at all (resizing RGB is cheaper and gives the same pixels).
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ComposeError(f"{role} image not found: {path}") from None
    except OSError as e:
        raise ComposeError(f"cannot read {role} image {path}: {e.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ComposeError(f"{role} image {path} is not a regular file")
    if st.st_size > MAX_INPUT_BYTES:
        raise ComposeError(
            f"{role} image {path} is {st.st_size} bytes, over the "
            f"{MAX_INPUT_BYTES // (1024 * 1024)} MiB limit")
    try:
        f = open(path, "rb")
    except OSError as e:
        raise ComposeError(f"cannot read {role} image {path}: {e.strerror}") from None
    with f:
        try:
            im = Image.open(f, formats=ALLOWED_FORMATS)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise ComposeError(
                f"{role} image {path} refused: its header declares more than "
                f"{MAX_PIXELS // 1_000_000} megapixels (possible decompression "
                f"bomb): {e}") from None
        except UnidentifiedImageError:
            raise ComposeError(
                f"{role} file {path} is not a readable image (supported: "
                f"{', '.join(ALLOWED_FORMATS)})") from None
        except Exception as e:  # malformed headers raise all sorts of things
            raise ComposeError(
                f"{role} file {path} is not a readable image: {e}") from None
        width, height = im.size
        if width <= 0 or height <= 0:
            raise ComposeError(f"{role} image {path} has zero size ({width}x{height})")
        if width * height > MAX_PIXELS:
            raise ComposeError(
                f"{role} image {path} is {width}x{height} "
                f"({width * height / 1e6:.1f} megapixels), over the "
                f"{MAX_PIXELS // 1_000_000} megapixel limit")
        try:
            im.load()
            if im.getexif().get(EXIF_ORIENTATION, 1) != 1:
                im = ImageOps.exif_transpose(im)
            has_alpha = (any(b in ("A", "a") for b in im.getbands())
                         or "transparency" in im.info)
            mode = "RGB" if opaque_as_rgb and not has_alpha else "RGBA"
            if im.mode != mode:             # convert() to the same mode copies
                im = im.convert(mode)
        except Exception as e:
            raise ComposeError(f"{role} image {path} could not be decoded: {e}") from None
    return im


def compose(template, design, preset):
    """Composite design onto template (RGBA, modified in place: inputs can be
    40 MP, so no copy) and return (template, summary dict)."""
    box = preset_box(preset, template.size)
    (w, h), (x, y) = fit(design.size, box)
    placed = design
    if placed.size != (w, h):
        # RGBA is resized premultiplied by Pillow: no colour from transparent
        # pixels bleeds into the edges.
        placed = placed.resize((w, h), Image.LANCZOS)
    if placed.mode != "RGBA":
        placed = placed.convert("RGBA")
    template.alpha_composite(placed, dest=(x, y))
    return template, {"box": box, "placed": (w, h), "at": (x, y)}


def write_output(path, image):
    """Encode in memory, then write path in one go; remove it if writing fails."""
    buf = io.BytesIO()
    try:
        image.save(buf, format="PNG")
    except Exception as e:
        raise ComposeError(f"could not encode the PNG: {e}") from None
    data = buf.getvalue()
    try:
        f = open(path, "wb")
    except OSError as e:
        raise ComposeError(f"cannot write output {path}: {e.strerror}") from None
    try:
        with f:
            f.write(data)
    except OSError as e:
        try:
            os.unlink(path)
        except OSError:
            pass
        raise ComposeError(f"cannot write output {path}: {e.strerror}") from None


def check_output_path(output, inputs):
    """Refuse an output path that could not or should not be written."""
    if os.path.isdir(output):
        raise ComposeError(f"output {output} is a directory")
    parent = os.path.dirname(output) or "."
    if not os.path.isdir(parent):
        raise ComposeError(f"output directory {parent} does not exist")
    for role, path in inputs:
        try:
            if os.path.exists(output) and os.path.samefile(output, path):
                raise ComposeError(f"output {output} is the {role} image")
        except OSError:
            pass  # the input is missing/unreadable: reported when loading it


def build_parser():
    parser = argparse.ArgumentParser(
        prog=PROG, allow_abbrev=False,
        description="Compose a design onto a t-shirt template at a preset.")
    parser.add_argument("--template", required=True, help="t-shirt template image")
    parser.add_argument("--design", required=True, help="customer design image")
    parser.add_argument("--preset", required=True,
                        help="placement preset: " + ", ".join(PRESETS))
    parser.add_argument("--output", required=True, help="output PNG path (.png)")
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.preset not in PRESETS:
        parser.error(f"unknown preset {args.preset!r}; valid presets: "
                     + ", ".join(PRESETS))
    if not args.output.lower().endswith(".png") or \
            os.path.basename(args.output).lower() == ".png":
        parser.error(f"output {args.output!r} must be a path ending in .png")

    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    warnings.simplefilter("error", Image.DecompressionBombWarning)
    try:
        check_output_path(args.output, [("template", args.template),
                                        ("design", args.design)])
        template = load_image("template", args.template)
        design = load_image("design", args.design, opaque_as_rgb=True)
        out, info = compose(template, design, args.preset)
        write_output(args.output, out)
    except ComposeError as e:
        print(shown(f"{PROG}: error: {e}"), file=sys.stderr)
        return EXIT_INPUT
    except MemoryError:
        print(f"{PROG}: error: out of memory", file=sys.stderr)
        return EXIT_INPUT

    left, top, right, bottom = info["box"]
    w, h = info["placed"]
    x, y = info["at"]
    print(f"composed preset={args.preset} template={template.width}x{template.height} "
          f"box={right - left}x{bottom - top}+{left}+{top} "
          f"design={design.width}x{design.height} placed={w}x{h}+{x}+{y} "
          f"output={args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
