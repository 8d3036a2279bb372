"""Pictures a program shows come back in its result (`images`): matplotlib's
plt.show() and the figures still open at exit, Pillow's Image.show(). The
supervisor reads them from a pipe of their own and keeps only well-formed
PNGs within the caps (MAX_IMAGES, MAX_IMAGE_BYTES), their size read from
the PNG itself; a program that writes to that pipe directly gets nothing
else into the result, and its other output still comes back.

Each picture is decoded here, on the host side, with Pillow. On the warm
path (the service's zygote), the cold one (`pyexec serve --cold`) and
`pyexec run`; as root and unprivileged (scripts/test-unprivileged.sh).
"""
import base64
import io
import struct
import time
import zlib
from pathlib import Path

import pytest

from test_submissions import submit, wait_done
from test_warm import execute, start, stop_ok, warm_stats

PIL = pytest.importorskip("PIL.Image")

needs_matplotlib = pytest.mark.skipif(not Path("/usr/lib/python3/dist-packages/matplotlib").is_dir(),
                                      reason="python3-matplotlib is not installed (scripts/deps.sh)")

# matplotlib's address space passes 128 MB (RLIMIT_AS where no cgroup counts).
MEMORY = 512
MAX_IMAGES = 3
MAX_IMAGE_BYTES = 65536
SERVICE = {"POLICIES": "education,permissive,science", "MEMORY_LIMIT": MEMORY, "MAX_IMAGES": MAX_IMAGES,
           "MAX_IMAGE_BYTES": MAX_IMAGE_BYTES}


@pytest.fixture(scope="module", params=["warm", "cold"])
def srv(request, tmp_path_factory):
    s = start(tmp_path_factory.mktemp("images"), *(["--cold"] if request.param == "cold" else []),
              env={**SERVICE, "WARM_POOL_SIZE": 1})
    s.mode = request.param
    yield s
    stop_ok(s)


def decode(img):
    """The image entry's PNG, decoded; its stated size checked against it."""
    assert set(img) == {"format", "width", "height", "data"} and img["format"] == "png", img.keys()
    im = PIL.open(io.BytesIO(base64.b64decode(img["data"], validate=True)))
    im.load()
    assert im.format == "PNG" and im.size == (img["width"], img["height"])
    return im.convert("RGB")


def taken(srv):
    w = warm_stats(srv)
    return w["takenReady"] + w["builtOnDemand"]


def run_ok(srv, code, policy="permissive", **fields):
    before = taken(srv) if srv.mode == "warm" else None
    res = execute(srv, code, policy=policy, memoryLimit=MEMORY, **fields)
    assert res["status"] == "ok", (res["status"], res["stderr"][-2000:])
    if srv.mode == "warm":  # the run took a sandbox of the pool
        assert taken(srv) > before
    return res


FIGURES = """\
import matplotlib.pyplot as plt
plt.figure(figsize=(2, 1), dpi=50, facecolor=(1, 0, 0))
plt.show()
plt.figure(figsize=(1, 1), dpi=40, facecolor=(0, 1, 0))
plt.show()
plt.show()  # nothing open: nothing sent
plt.figure(figsize=(1.5, 1), dpi=20, facecolor=(0, 0, 1))
print("drawn")
"""


@needs_matplotlib
def test_plt_show_and_figures_open_at_exit_come_back_as_png(srv):
    res = run_ok(srv, FIGURES, policy="science")
    assert res["stdout"] == "drawn\n" and res["imagesTruncated"] is False
    ims = [decode(i) for i in res["images"]]
    # Two plt.show() calls with a figure each, then the one open at exit.
    assert [im.size for im in ims] == [(100, 50), (40, 40), (30, 20)]
    assert [im.getpixel((im.width // 2, im.height // 2)) for im in ims] == [(255, 0, 0), (0, 255, 0), (0, 0, 255)]


PIL_SHOW = """\
from PIL import Image
Image.new("RGB", (7, 5), (0, 128, 255)).show()
Image.new("L", (3, 9), 200).show()
print("shown")
"""


def test_pil_image_show_comes_back_as_png(srv):
    res = run_ok(srv, PIL_SHOW, policy="education")
    assert res["stdout"] == "shown\n" and res["imagesTruncated"] is False
    ims = [decode(i) for i in res["images"]]
    assert [im.size for im in ims] == [(7, 5), (3, 9)]
    assert ims[0].getpixel((3, 2)) == (0, 128, 255) and ims[1].getpixel((1, 4)) == (200, 200, 200)


def test_pictures_through_modules_the_zygote_imported_ahead(tmp_path):
    # PIL.ImageShow is in sys.modules before the program starts: patched
    # when the run starts, not on import.
    s = start(tmp_path, env={**SERVICE, "WARM_POOL_SIZE": 1, "ZYGOTE_PREIMPORT": "PIL.Image,PIL.ImageShow"})
    s.mode = "warm"
    try:
        res = run_ok(s, "import sys\nprint('PIL.ImageShow' in sys.modules)\n" + PIL_SHOW, policy="education")
        assert res["stdout"] == "True\nshown\n"
        assert [decode(i).size for i in res["images"]] == [(7, 5), (3, 9)]
    finally:
        stop_ok(s)


FDS = """\
import fcntl, os, stat, sys
for fd in range(1024):
    try:
        st = os.fstat(fd)
    except OSError:
        continue
    if fd > 2:
        print(fd, stat.S_ISFIFO(st.st_mode), fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_WRONLY)
print([type(f).__name__ for f in sys.meta_path])
"""


def test_the_images_pipe_is_the_one_extra_descriptor(srv):
    # The one difference from python3 the program can see (test_runner.py
    # holds the rest): a write-only pipe, fd 5 on the cold path; the finder
    # is only in sys.meta_path while pyplot or ImageShow is being imported.
    res = run_ok(srv, FDS)
    lines = res["stdout"].splitlines()
    assert len(lines) == 2 and lines[0].endswith(" True True"), lines
    assert srv.mode == "warm" or lines[0] == "5 True True"
    assert "ImagesFinder" not in lines[1]


def test_no_images_pipe_with_max_images_0(tmp_path):
    s = start(tmp_path, env={**SERVICE, "WARM_POOL_SIZE": 1, "MAX_IMAGES": 0})
    s.mode = "warm"
    try:
        res = run_ok(s, FDS + PIL_SHOW, policy="permissive")
        assert res["stdout"].splitlines()[0].startswith("[") and res["stdout"].endswith("shown\n")
        assert res["images"] == [] and res["imagesTruncated"] is False
    finally:
        stop_ok(s)


def test_no_pictures_no_images(srv):
    res = run_ok(srv, "print('plain')", policy="education")
    assert res["images"] == [] and res["imagesTruncated"] is False


def test_count_cap_keeps_the_first_and_says_so(srv):
    code = ("from PIL import Image\n"
            "for i in range(5):\n"
            "    Image.new('RGB', (4 + i, 4), (i * 40, 0, 0)).show()\n"
            "print('five')\n")
    res = run_ok(srv, code, policy="education")
    assert res["stdout"] == "five\n" and res["imagesTruncated"] is True
    assert [decode(i).size for i in res["images"]] == [(4, 4), (5, 4), (6, 4)]
    # The service goes on as before.
    assert run_ok(srv, PIL_SHOW, policy="education")["imagesTruncated"] is False


def test_byte_cap_skips_what_does_not_fit_and_says_so(srv):
    # Noise does not compress: 200 x 200 RGB is about 120 KB of PNG, beyond
    # MAX_IMAGE_BYTES; the small one after it still fits.
    code = ("import os\nfrom PIL import Image\n"
            "Image.frombytes('RGB', (200, 200), os.urandom(200 * 200 * 3)).show()\n"
            "Image.new('RGB', (2, 2), (9, 9, 9)).show()\n"
            "print('big')\n")
    res = run_ok(srv, code, policy="education")
    assert res["stdout"] == "big\n" and res["imagesTruncated"] is True
    assert [decode(i).size for i in res["images"]] == [(2, 2)]
    assert sum(len(base64.b64decode(i["data"])) for i in res["images"]) <= MAX_IMAGE_BYTES


def png(width, height, rgb=(1, 2, 3), bad_crc=False, end=True):
    def chunk(kind, data):
        crc = zlib.crc32(kind + data) ^ (1 if bad_crc and kind == b"IHDR" else 0)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)
    raw = b"".join(b"\0" + bytes(rgb) * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(raw)) + (chunk(b"IEND", b"") if end else b""))


def frame(data):
    return b"PXI1" + struct.pack("<I", len(data)) + data


# What a hostile program writes to the images pipe itself, and what the
# result's images must then be (sizes).
HOSTILE = {
    # Not a PNG at all, in a well-formed frame.
    "not_png": (frame(b"GIF89a" + b"\0" * 64), []),
    # A PNG whose IHDR's CRC is wrong (it claims 5000 x 5000).
    "bad_crc": (frame(png(5000, 1, bad_crc=True)), []),
    # A PNG cut before its IEND.
    "no_iend": (frame(png(4, 4, end=False)), []),
    # A PNG with bytes after its IEND.
    "trailing": (frame(png(4, 4) + b"junk"), []),
    # A header that is no frame's: the channel is dropped from there on,
    # with the valid frame after it.
    "garbage": (b"\xff" * 4096 + frame(png(4, 4)), []),
    # A frame announcing 4 GiB, then 8 MiB of junk: skipped unread.
    "huge": (b"PXI1\xff\xff\xff\xff", []),
    # A valid PNG written directly is a picture like any other: its
    # size is the one its IHDR says.
    "valid": (frame(png(3, 2)), [(3, 2)]),
}

HOSTILE_PROGRAM = """\
import os, stat, sys
hexdata, pad = sys.stdin.read().split()
data = bytes.fromhex(hexdata) + b"Z" * int(pad)
fds = [fd for fd in range(3, 256) if os.path.exists(f"/proc/self/fd/{fd}") and stat.S_ISFIFO(os.fstat(fd).st_mode)]
print("pipes", len(fds) >= 1)
for fd in fds:
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    except OSError:
        pass
print("after")
"""


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_bytes_written_to_the_pipe_forge_nothing(srv, kind):
    data, sizes = HOSTILE[kind]
    res = run_ok(srv, HOSTILE_PROGRAM, stdin=f"{data.hex()} {8 << 20 if kind == 'huge' else 0}")
    assert res["stdout"] == "pipes True\nafter\n"
    assert [decode(i).size for i in res["images"]] == sizes
    assert res["imagesTruncated"] is (kind == "huge")


def test_a_program_flooding_the_pipe_does_not_hold_up_its_output(srv):
    # 64 MiB of garbage in a thread while the main thread prints: the
    # supervisor reads and drops it as it comes.
    code = ("import os, stat, threading\n"
            "fds = [fd for fd in range(3, 256) if os.path.exists(f'/proc/self/fd/{fd}')"
            " and stat.S_ISFIFO(os.fstat(fd).st_mode)]\n"
            "def flood():\n"
            "    junk = b'\\x00' * (1 << 20)\n"
            "    for _ in range(64):\n"
            "        for fd in fds:\n"
            "            os.write(fd, junk)\n"
            "t = threading.Thread(target=flood)\n"
            "t.start()\n"
            "for i in range(200):\n"
            "    print('line', i)\n"
            "t.join()\n"
            "print('end')\n")
    res = run_ok(srv, code)
    assert res["stdout"] == "".join(f"line {i}\n" for i in range(200)) + "end\n"
    assert res["images"] == []


def test_submissions_and_stream_carry_the_images(srv):
    r = submit(srv, {"code": PIL_SHOW, "policy": "education"}, query="?wait=30000")
    assert r.status in (200, 202), r
    doc = r.json()
    if doc["state"] != "done":
        doc = wait_done(srv, [doc["id"]])[doc["id"]]
    assert [decode(i).size for i in doc["result"]["images"]] == [(7, 5), (3, 9)]
    got = srv.get("/api/submissions/" + doc["id"]).json()
    assert [decode(i).size for i in got["result"]["images"]] == [(7, 5), (3, 9)]


def test_stream_last_event_carries_the_images(srv):
    from test_stream import Stream
    s = Stream(srv.port, {"code": PIL_SHOW, "policy": "education"})
    last = None
    while (ev := s.next_event()) is not None:
        last = ev
    assert last and last[0] == "result", last
    assert [decode(i).size for i in last[1]["images"]] == [(7, 5), (3, 9)]


@needs_matplotlib
def test_pyexec_run_returns_the_figures(run):
    res = run(FIGURES, "--policy", "science", "--memory", MEMORY)
    assert res["status"] == "ok" and res["stdout"] == "drawn\n", res["stderr"]
    assert [decode(i).size for i in res["images"]] == [(100, 50), (40, 40), (30, 20)]


def test_pyexec_run_caps_the_count_at_eight(run):
    code = ("from PIL import Image\n"
            "for i in range(10):\n"
            "    Image.new('RGB', (1 + i, 1), (0, 0, 0)).show()\n")
    res = run(code)
    assert res["status"] == "ok", res["stderr"]
    assert [decode(i).size for i in res["images"]] == [(1 + i, 1) for i in range(8)]
    assert res["imagesTruncated"] is True


def test_pyexec_run_forges_nothing(run):
    res = run(HOSTILE_PROGRAM, "--policy", "permissive", "--stdin", "-", stdin=HOSTILE["bad_crc"][0].hex().encode() + b" 0")
    assert res["status"] == "ok" and res["stdout"] == "pipes True\nafter\n", res["stderr"]
    assert res["images"] == []
