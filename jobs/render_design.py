"""pyexec `render` job: put a design on the t-shirt template and render it.

Run by Blender (3.4, Debian's build) as

    blender --background TEMPLATE.blend --python render_design.py -- \
        TEMPLATE.blend TEXTURE.png OUTDIR SAMPLES [--no-animation] \
        [--still-name NAME.png] [--animation-name NAME.mp4]

  TEMPLATE.blend  the template Blender has loaded; it must hold an object
                  `Shirt` with a material `ShirtMaterial` whose node tree has
                  an Image Texture node `DesignTexture`
  TEXTURE.png     the design (a PNG file) to put into `DesignTexture`
  OUTDIR          existing writable directory; gets render.png (or the
                  --still-name) and, unless --no-animation, animation.mp4
                  (or the --animation-name)
  SAMPLES         Cycles samples, an integer 1..4096

It renders a still with Cycles on the CPU (denoising only when the build has
OpenImageDenoise) to OUTDIR/render.png and, unless --no-animation, a
12-frame turntable of the shirt to OUTDIR/animation.mp4 (FFmpeg, MPEG-4
container, H.264). The resolution is the template's. Inputs are only read
(they may be read-only); nothing is written outside OUTDIR except Blender's
own session directory under $TMPDIR (or /tmp), which it removes on exit.

While it renders it reports its progress on stderr, one line per frame
rendered ("PYEXEC_PROGRESS 3/13": the still, then each frame of the
turntable), which pyexec shows as an asynchronous job's progress.

Exit status: 0 on success, 2 on bad arguments or inputs, 3 when rendering or
encoding fails. Errors are one line on stderr starting with "render_design:
error:"; success prints one summary line starting with "render_design: ok".
Blender itself exits with 1 before this script runs when it cannot load the
template.
"""

import json
import math
import os
import re
import shutil
import stat
import sys
import time

import bpy

USAGE = ("usage: blender --background TEMPLATE.blend --python render_design.py -- "
         "TEMPLATE.blend TEXTURE.png OUTDIR SAMPLES [--no-animation] [--still-name NAME.png] "
         "[--animation-name NAME.mp4]")
SAMPLES_MIN, SAMPLES_MAX = 1, 4096
ANIMATION_FRAMES = 12
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# Bound on the design image's pixel count (decoded RGBA float is 16 B/pixel).
MAX_TEXTURE_PIXELS = 8192 * 8192

EXIT_USAGE = 2
EXIT_RENDER = 3


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


class JobError(Exception):
    def __init__(self, msg, code=EXIT_USAGE):
        super().__init__(msg)
        self.code = code


# --------------------------------------------------------------------------
# arguments


def parse_args(argv):
    """argv: Blender's full sys.argv. Returns (blend, texture, outdir, samples, animation,
    still file name, animation file name)."""
    if "--" not in argv:
        raise JobError("no script arguments (missing '--')\n" + USAGE)
    args = argv[argv.index("--") + 1:]
    positional, animation = [], True
    names = {"--still-name": "render.png", "--animation-name": "animation.mp4"}
    it = iter(args)
    for a in it:
        if a == "--no-animation":
            animation = False
        elif a in names:
            name = next(it, None)
            if not name or "/" in name or name.startswith(".") or len(name) > 255:
                raise JobError(f"{a} needs a plain file name, got {name!r}")
            names[a] = name
        elif a.startswith("-") and a != "-" and not _is_int(a):
            raise JobError(f"unknown option {a!r}\n" + USAGE)
        else:
            positional.append(a)
    if len(positional) != 4:
        raise JobError(f"expected 4 arguments, got {len(positional)}\n" + USAGE)
    blend, texture, outdir, samples_s = positional
    if not _is_int(samples_s):
        raise JobError(f"samples must be an integer in {SAMPLES_MIN}..{SAMPLES_MAX}, got {samples_s!r}")
    samples = int(samples_s)
    if not SAMPLES_MIN <= samples <= SAMPLES_MAX:
        raise JobError(f"samples out of range {SAMPLES_MIN}..{SAMPLES_MAX}: {samples}")
    return blend, texture, outdir, samples, animation, names["--still-name"], names["--animation-name"]


def _is_int(s):
    t = s[1:] if s[:1] in "+-" else s
    return t.isascii() and t.isdigit()


def check_inputs(blend, texture, outdir):
    for what, path in (("template", blend), ("texture", texture)):
        try:
            st = os.stat(path)
        except OSError as e:
            raise JobError(f"{what} {path!r}: {e.strerror}") from None
        if not stat.S_ISREG(st.st_mode):
            raise JobError(f"{what} {path!r}: not a regular file")
        if not os.access(path, os.R_OK):
            raise JobError(f"{what} {path!r}: not readable")
    with open(texture, "rb") as f:
        if f.read(8) != PNG_MAGIC:
            raise JobError(f"texture {texture!r}: not a PNG file")
    if not os.path.isdir(outdir):
        raise JobError(f"output directory {outdir!r}: does not exist or is not a directory")
    if not os.access(outdir, os.W_OK | os.X_OK):
        raise JobError(f"output directory {outdir!r}: not writable")
    # The template must be what Blender actually loaded (it is passed twice:
    # once for Blender, once for us).
    loaded = bpy.data.filepath
    if not loaded:
        raise JobError(f"template {blend!r}: Blender did not load it "
                       "(pass it before --python, and make sure it is a .blend file)")
    if os.path.realpath(loaded) != os.path.realpath(blend):
        raise JobError(f"template {blend!r}: Blender loaded {loaded!r} instead")


# --------------------------------------------------------------------------
# scene


def find_design_node(blend):
    shirt = bpy.data.objects.get("Shirt")
    if shirt is None:
        raise JobError(f"template {blend!r}: no object named 'Shirt'")
    mats = [s.material for s in shirt.material_slots if s.material is not None]
    mat = next((m for m in mats if m.name == "ShirtMaterial"), None)
    if mat is None:
        raise JobError(f"template {blend!r}: object 'Shirt' has no material 'ShirtMaterial'")
    if not mat.use_nodes or mat.node_tree is None:
        raise JobError(f"template {blend!r}: material 'ShirtMaterial' does not use nodes "
                       "(no 'DesignTexture' node)")
    node = mat.node_tree.nodes.get("DesignTexture")
    if node is None:
        raise JobError(f"template {blend!r}: material 'ShirtMaterial' has no node 'DesignTexture'")
    if node.bl_idname != "ShaderNodeTexImage":
        raise JobError(f"template {blend!r}: node 'DesignTexture' is a {node.bl_idname}, "
                       "not an Image Texture node")
    return shirt, node


def load_texture(node, texture):
    try:
        img = bpy.data.images.load(os.path.abspath(texture), check_existing=False)
    except RuntimeError as e:
        raise JobError(f"texture {texture!r}: cannot be loaded: {e}") from None
    w, h = img.size  # forces the decode
    if w <= 0 or h <= 0:
        raise JobError(f"texture {texture!r}: cannot be decoded as an image")
    if w * h > MAX_TEXTURE_PIXELS:
        raise JobError(f"texture {texture!r}: too large ({w}x{h}, at most "
                       f"{MAX_TEXTURE_PIXELS} pixels)")
    img.name = "Design"
    img.colorspace_settings.name = "sRGB"
    node.image = img
    return w, h


def denoise_available():
    try:
        import _cycles
        return bool(getattr(_cycles, "with_openimagedenoise", False))
    except ImportError:
        return False


def setup_cycles(scene, samples):
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = samples
    denoise = denoise_available()
    scene.cycles.use_denoising = denoise
    if denoise:
        scene.cycles.denoiser = "OPENIMAGEDENOISE"
    # Nothing from the template may read or write elsewhere.
    scene.render.use_persistent_data = False
    scene.render.use_compositing = False
    scene.render.use_sequencer = False
    scene.render.use_stamp = False
    scene.render.use_file_extension = True
    scene.render.use_overwrite = True
    scene.render.use_placeholder = False
    return denoise


def add_turntable(scene, shirt):
    """Rotate the shirt once about its own Z axis over ANIMATION_FRAMES frames."""
    shirt.animation_data_clear()
    start = scene.frame_current
    z0 = shirt.rotation_euler.z
    scene.frame_start = start
    scene.frame_end = start + ANIMATION_FRAMES - 1
    scene.frame_step = 1
    shirt.rotation_mode = "XYZ"
    shirt.rotation_euler.z = z0
    shirt.keyframe_insert("rotation_euler", index=2, frame=start)
    # Frame start+N would equal frame start again: the loop is seamless.
    shirt.rotation_euler.z = z0 + 2.0 * math.pi
    shirt.keyframe_insert("rotation_euler", index=2, frame=start + ANIMATION_FRAMES)
    for fc in shirt.animation_data.action.fcurves:
        for kp in fc.keyframe_points:
            kp.interpolation = "LINEAR"
    shirt.rotation_euler.z = z0


def has_h264_encoder():
    """True/False if the libavcodec Blender uses can be asked, None if not."""
    try:
        import ctypes
        path = None
        with open("/proc/self/maps") as f:
            for line in f:
                if "libavcodec.so" in line:
                    path = line.split(None, 5)[-1].strip()
                    break
        if path is None:
            return None
        lib = ctypes.CDLL(path)
        lib.avcodec_find_encoder.restype = ctypes.c_void_p
        lib.avcodec_find_encoder.argtypes = [ctypes.c_int]
        AV_CODEC_ID_H264 = 27
        return bool(lib.avcodec_find_encoder(AV_CODEC_ID_H264))
    except Exception:
        return None


def mp4_is_h264(path):
    """Look for an 'ftyp' box first and an 'avc1' sample entry in the file."""
    with open(path, "rb") as f:
        data = f.read()
    return len(data) >= 12 and data[4:8] == b"ftyp" and b"avc1" in data


def report_progress(total):
    """Count every frame rendered (render_post runs after each) and say so
    on stderr in the form pyexec reads as the job's progress."""
    done = 0

    def frame_rendered(scene, *rest):
        nonlocal done
        done = min(done + 1, total)
        print(f"PYEXEC_PROGRESS {done}/{total}", file=sys.stderr, flush=True)

    bpy.app.handlers.render_post.append(frame_rendered)


def render_still(scene, outdir, name):
    path = os.path.join(outdir, name)
    r = scene.render
    r.image_settings.file_format = "PNG"
    r.image_settings.color_mode = "RGB"
    r.image_settings.color_depth = "8"
    r.image_settings.compression = 15
    r.filepath = path
    bpy.ops.render.render(write_still=True)
    if not os.path.isfile(path):
        raise JobError(f"still render did not produce {path!r}", EXIT_RENDER)
    return path


def render_animation(scene, shirt, outdir, name):
    r = scene.render
    ff = r.ffmpeg
    codecs = {e.identifier for e in ff.bl_rna.properties["codec"].enum_items}
    if "H264" not in codecs or has_h264_encoder() is False:
        raise JobError("this Blender/FFmpeg build cannot encode H.264 video "
                       "(use --no-animation)", EXIT_RENDER)
    path = os.path.join(outdir, name)
    add_turntable(scene, shirt)
    r.image_settings.file_format = "FFMPEG"
    r.image_settings.color_mode = "RGB"
    ff.format = "MPEG4"
    ff.codec = "H264"
    ff.audio_codec = "NONE"
    ff.constant_rate_factor = "MEDIUM"
    ff.ffmpeg_preset = "GOOD"
    ff.gopsize = ANIMATION_FRAMES
    ff.use_max_b_frames = False
    ff.use_autosplit = False
    r.filepath = path
    bpy.ops.render.render(animation=True)
    if not os.path.isfile(path) or os.path.getsize(path) == 0:
        raise JobError(f"animation render did not produce {path!r}", EXIT_RENDER)
    if not mp4_is_h264(path):
        os.unlink(path)
        raise JobError(f"{path!r} is not an H.264 MP4 (FFmpeg build without H.264?)",
                       EXIT_RENDER)
    return path


# --------------------------------------------------------------------------


def main(argv):
    t0 = time.monotonic()
    blend, texture, outdir, samples, animation, still_name, anim_name = parse_args(argv)
    check_inputs(blend, texture, outdir)
    outdir = os.path.abspath(outdir)
    shirt, node = find_design_node(blend)
    tw, th = load_texture(node, texture)

    scene = bpy.context.scene
    if scene.camera is None:
        raise JobError(f"template {blend!r}: scene has no camera")
    denoise = setup_cycles(scene, samples)
    r = scene.render
    width = r.resolution_x * r.resolution_percentage // 100
    height = r.resolution_y * r.resolution_percentage // 100
    if animation and (width % 2 or height % 2):
        raise JobError(f"template {blend!r}: resolution {width}x{height} is odd; "
                       "H.264 video needs even sizes (or use --no-animation)")

    report_progress(1 + (ANIMATION_FRAMES if animation else 0))
    try:
        still = render_still(scene, outdir, still_name)
        t_still = time.monotonic() - t0
        anim = render_animation(scene, shirt, outdir, anim_name) if animation else None
    except RuntimeError as e:  # bpy.ops report errors as RuntimeError
        raise JobError(f"render failed: {str(e).strip()}", EXIT_RENDER) from None

    summary = (f"render_design: ok {width}x{height} samples={samples} "
               f"denoise={'on' if denoise else 'off'} threads={r.threads} texture={tw}x{th} "
               f"still={still} ({t_still:.1f}s)")
    if anim:
        summary += (f" animation={anim} ({ANIMATION_FRAMES} frames, H.264, "
                    f"{os.path.getsize(anim)} bytes)")
    summary += f" total={time.monotonic() - t0:.1f}s"
    print(summary, flush=True)


def _exit(code):
    """Exit now with `code`. Blender cannot be told an exit status from a
    --python script, and sys.exit would skip its cleanup anyway, so remove
    its session temp directory (what its own exit would do) and _exit."""
    sys.stdout.flush()
    sys.stderr.flush()
    d = bpy.app.tempdir
    if d and os.path.basename(os.path.normpath(d)).startswith("blender_"):
        shutil.rmtree(d, ignore_errors=True)
    os._exit(code)


def run():
    # Blender exits 0 after an uncaught exception in a --python script, so
    # every failure is turned into an explicit exit status here.
    try:
        main(sys.argv)
    except JobError as e:
        print(shown(f"render_design: error: {e}"), file=sys.stderr, flush=True)
        _exit(e.code)
    except BaseException as e:  # noqa: BLE001 - anything else is a bug or a crash
        import traceback
        traceback.print_exc()
        print(shown(f"render_design: error: internal: {type(e).__name__}: {e}"),
              file=sys.stderr, flush=True)
        _exit(EXIT_RENDER)
    sys.stdout.flush()
    sys.stderr.flush()


run()
