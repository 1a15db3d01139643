"""Preprocessing of images from outside the dataset: every PIL mode, EXIF orientation, crops, and a
clear ImageError (never a crash) for files that cannot be used."""
from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from signlab.errors import ImageError
from signlab.preprocess import (Crop, canvas_to_gray, crop_box, frame_box, load_gray, looks_unusual, prepare,
                                prepare_array)

ROOT = Path(__file__).resolve().parent.parent


def _encode(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _ok(prep):
    x = prep.image28
    assert x.shape == (28, 28) and x.dtype == np.float32
    assert np.isfinite(x).all() and x.min() >= 0 and x.max() <= 1
    return x


# --------------------------------------------------------------------------- every image mode
def _gradient(w=40, h=30):
    return np.tile(np.linspace(0, 255, w, dtype=np.float64), (h, 1))  # dark left, bright right


def _check_gradient(x):
    # left columns dark, right columns bright, whatever the mode
    assert x[:, :4].mean() < 0.35 and x[:, -4:].mean() > 0.65, (x[:, :4].mean(), x[:, -4:].mean())


@pytest.mark.parametrize("mode,fmt", [
    ("RGB", "PNG"), ("RGB", "JPEG"), ("L", "PNG"), ("LA", "PNG"), ("RGBA", "PNG"), ("P", "PNG"),
    ("P", "GIF"), ("CMYK", "JPEG"), ("CMYK", "TIFF"), ("I;16", "PNG"), ("I", "TIFF"), ("F", "TIFF"),
    ("1", "PNG"), ("RGB", "BMP"), ("RGB", "WEBP"), ("L", "TIFF"),
])
def test_every_mode_gives_a_28x28_image(mode, fmt):
    g = _gradient()
    if mode == "I;16":
        img = Image.fromarray((g * 257).astype(np.uint16))
    elif mode == "I":
        img = Image.fromarray((g * 257).astype(np.int32))  # 16-bit range in a 32-bit image
    elif mode == "F":
        img = Image.fromarray((g / 255).astype(np.float32))
    else:
        img = Image.fromarray(g.astype(np.uint8)).convert(mode)
    data = _encode(img, fmt)
    assert Image.open(io.BytesIO(data)).mode.startswith(mode[0])
    prep = prepare(data, f"x.{fmt.lower()}")
    x = _ok(prep)
    _check_gradient(x)
    assert prep.gray.shape == (30, 40)


def test_a_tiff_with_premultiplied_grey_alpha_is_read():
    """A grey TIFF whose alpha is premultiplied (ExtraSamples 1) opens in PIL's mode "La": the frame
    check converted it to L, which PIL cannot do, and the ValueError escaped as a traceback (exit 1)."""
    import struct

    g = np.tile(np.linspace(0, 255, 80), (80, 1)).astype(np.uint8)  # 80 px: past the frame check's minimum
    data = bytearray(_encode(Image.merge("LA", (Image.fromarray(g), Image.new("L", (80, 80), 255))), "TIFF"))
    at = data.find(struct.pack("<HHI", 338, 3, 1))  # ExtraSamples: 2 (unassociated alpha) -> 1 (premultiplied)
    data[at + 8:at + 10] = struct.pack("<H", 1)
    assert Image.open(io.BytesIO(bytes(data))).mode == "La"
    _check_gradient(_ok(prepare(bytes(data), "la.tif")))


def test_16bit_grey_is_scaled_by_its_own_range():
    img = Image.fromarray(np.full((8, 8), 32768, np.uint16))
    assert Image.open(io.BytesIO(_encode(img))).mode == "I;16"
    assert _ok(prepare(_encode(img))).mean() == pytest.approx(0.5, abs=0.01)
    dark = Image.fromarray(np.full((8, 8), 200, np.uint16))  # very dark in 16 bits, not 200/255
    assert _ok(prepare(_encode(dark))).mean() < 0.01


@pytest.mark.parametrize("mode,fmt", [("I;16", "PNG"), ("I;16", "TIFF"), ("I", "TIFF"), ("F", "TIFF")])
def test_a_large_wide_image_is_reduced_not_refused(mode, fmt):
    """A 16-bit grey photo of 2048 pixels or more was refused as "truncated or corrupt (image has wrong
    mode)": the reduction's first step (Image.reduce) has no 16-bit modes."""
    y, x = np.mgrid[0:1536, 0:2048]
    g = x / 2048 * 0.6 + y / 1536 * 0.4  # dark top left, bright bottom right
    img = Image.fromarray({"I;16": (g * 65535).astype(np.uint16), "I": (g * 65535).astype(np.int32),
                           "F": g.astype(np.float32)}[mode])
    prep = prepare(_encode(img, fmt), f"big.{fmt.lower()}", "centre")
    x28 = _ok(prep)
    assert max(prep.gray.shape) <= 512 and x28[:4, :4].mean() < 0.35 and x28[-4:, -4:].mean() > 0.6


def test_a_float_image_with_pixels_that_are_not_numbers_is_refused_by_name():
    """A float TIFF with one NaN pixel made every pixel NaN, and the refusal named no file."""
    a = np.full((100, 100), 0.5, np.float32)
    a[0, 0] = np.nan
    with pytest.raises(ImageError, match="^nan.tif: some pixels are not numbers"):
        prepare(_encode(Image.fromarray(a), "TIFF"), "nan.tif")
    a[0, 0] = np.inf
    with pytest.raises(ImageError, match="^inf.tif: some pixels are not numbers"):
        prepare(_encode(Image.fromarray(a), "TIFF"), "inf.tif")


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_a_colour_marked_transparent_leaves_no_outline_when_reduced(mode):
    """A large PNG with one colour marked transparent (tRNS), reduced before the transparency was
    applied, had the marked colour blended into its neighbours: a dark outline round a grey shape."""
    a = np.zeros((1000, 1000), np.uint8)
    a[300:700, 300:700] = 128
    img = Image.fromarray(a).convert(mode)
    data = _encode(img, transparency=(0, 0, 0) if mode == "RGB" else 0)
    gray, _ = load_gray(data, background=1.0)
    assert gray.min() >= 128 / 255 - 0.02, gray.min()


def test_float_image_in_0_255():
    img = Image.fromarray(np.full((8, 8), 127.5, np.float32))
    assert _ok(prepare(_encode(img, "TIFF"))).mean() == pytest.approx(0.5, abs=0.01)


def test_rgba_transparency_is_composited_over_the_background():
    a = np.zeros((20, 20, 4), np.uint8)  # black, fully transparent ...
    a[:, 10:] = [0, 0, 0, 255]  # ... except the opaque black right half
    data = _encode(Image.fromarray(a, "RGBA"))
    gray, _ = load_gray(data, background=1.0)
    assert gray[:, :10].min() == pytest.approx(1.0) and gray[:, 10:].max() == pytest.approx(0.0)
    gray0, _ = load_gray(data, background=0.0)
    assert gray0.max() == pytest.approx(0.0)
    half = np.zeros((4, 4, 4), np.uint8)
    half[..., 3] = 128
    g, _ = load_gray(_encode(Image.fromarray(half, "RGBA")), background=1.0)
    assert g.mean() == pytest.approx(1 - 128 / 255, abs=1e-3)


def test_la_transparency():
    la = Image.fromarray(np.dstack([np.zeros((6, 6), np.uint8), np.zeros((6, 6), np.uint8)]), "LA")
    gray, _ = load_gray(_encode(la), background=1.0)
    assert gray.min() == pytest.approx(1.0)


@pytest.mark.parametrize("transparent", [False, True])
def test_palette_with_and_without_transparency(transparent):
    img = Image.new("P", (10, 10), 0)
    img.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)  # index 0 black, 1 white
    img.paste(1, (5, 0, 10, 10))  # right half white
    kw = {"transparency": 0} if transparent else {}
    data = _encode(img, "PNG", **kw)
    gray, _ = load_gray(data, background=1.0)
    assert gray[:, 5:].min() == pytest.approx(1.0)
    if transparent:  # the black left half is see-through: the white background shows
        assert gray[:, :5].min() == pytest.approx(1.0)
    else:
        assert gray[:, :5].max() == pytest.approx(0.0)


def test_one_bit_image():
    a = np.zeros((16, 16), bool)
    a[:, 8:] = True
    gray, _ = load_gray(_encode(Image.fromarray(a).convert("1")))
    assert gray[:, :8].max() == 0.0 and gray[:, 8:].min() == 1.0


# --------------------------------------------------------------------------- orientation and crops
def test_exif_orientation_is_applied():
    a = np.zeros((20, 40), np.uint8)  # 40 wide, 20 high
    a[:, 20:] = 255  # right half white
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    data = _encode(Image.fromarray(a), "JPEG", exif=exif.tobytes(), quality=95)
    assert Image.open(io.BytesIO(data)).getexif().get(0x0112) == 6
    gray, _ = load_gray(data)
    assert gray.shape == (40, 20)  # now 20 wide, 40 high
    # rotated clockwise: the white right half is at the bottom
    assert gray[:15].mean() < 0.1 and gray[25:].mean() > 0.9
    x = _ok(prepare(data))
    assert x[:10].mean() < 0.2 and x[-10:].mean() > 0.8


@pytest.mark.parametrize("w,h", [(28, 28), (1, 1), (1000, 3), (3, 700), (640, 480), (33, 1999)])
def test_any_size_and_aspect(w, h):
    rng = np.random.default_rng(w * h)
    img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")
    prep = prepare(_encode(img), "any.png")
    _ok(prep)
    left, top, right, bottom = prep.box
    assert right - left == bottom - top == min(prep.gray.shape)  # the largest centred square


def test_one_pixel_image():
    x = _ok(prepare(_encode(Image.new("L", (1, 1), 200))))
    assert np.allclose(x, 200 / 255, atol=1e-3)


def test_crop_box():
    assert crop_box((100, 200), Crop()) == (50, 0, 150, 100)  # centred square
    assert crop_box((100, 200), Crop(zoom=2)) == (75, 25, 125, 75)
    assert crop_box((100, 200), Crop(zoom=2, cx=0, cy=0)) == (0, 0, 50, 50)  # clamped into the image
    assert crop_box((100, 200), Crop(zoom=2, cx=1, cy=1)) == (150, 50, 200, 100)
    assert crop_box((100, 200), Crop(zoom=0.1)) == (50, 0, 150, 100)  # zoom below 1 acts as 1
    assert crop_box((100, 200), Crop(cx=-5, cy=9)) == (0, 0, 100, 100)
    assert crop_box((3, 3), Crop(zoom=1000)) == (1, 1, 2, 2)  # never empty


def test_crop_with_zoom_and_offsets():
    a = np.zeros((100, 100), np.uint8)
    a[:50, :50] = 255  # top-left quadrant white
    data = _encode(Image.fromarray(a))
    assert _ok(prepare(data, crop=Crop(zoom=2, cx=0, cy=0))).min() > 0.95
    assert _ok(prepare(data, crop=Crop(zoom=2, cx=1, cy=1))).max() < 0.05
    assert _ok(prepare(data)).mean() == pytest.approx(0.25, abs=0.02)


def _framed(w: int = 200, h: int = 200, frame: bool = True) -> np.ndarray:
    """A wall-like grey gradient; with ``frame`` a dark frame as some webcam crops have: 2 pixels
    on the top and left, 1 on the bottom and right."""
    a = np.tile(np.linspace(90, 200, w), (h, 1)).astype(np.uint8)
    if frame:
        a[:2], a[:, :2], a[-1:], a[:, -1:] = 29, 29, 29, 29
    return a


def test_a_thin_frame_is_left_out_before_cropping():
    img = Image.fromarray(_framed())
    assert frame_box(img) == (2, 2, 199, 199)
    gray, notes = load_gray(_encode(img))
    assert gray.shape == (197, 197) and gray.min() > 0.3
    assert "a thin frame around the image was left out" in notes
    # a padded crop reaching past the left edge repeats the wall, not the frame: no dark bar
    past_edge = Crop(zoom=0.6, cx=0.05, cy=0.5, pad=True)
    x = _ok(prepare(_encode(img), crop=past_edge))
    assert x[:, :6].min() > 0.3, x[:, :6].min()
    assert x[:, :6].mean() == pytest.approx(90 / 255, abs=0.05)


def test_images_without_a_frame_are_not_trimmed(dataset):
    assert frame_box(Image.fromarray(_framed(frame=False))) is None
    assert frame_box(Image.fromarray(dataset.test.images[0])) is None  # 28x28: never trimmed
    a = _framed()
    a[:2, 60:140] = 230  # something in the photo reaches the top edge: that line is not one shade
    assert frame_box(Image.fromarray(a))[1] == 0
    thick = _framed()
    thick[:20] = 29  # a dark band much wider than 3% of the side is part of the photo
    assert frame_box(Image.fromarray(thick))[1] == 0
    rgba = Image.fromarray(_framed()).convert("RGBA")
    assert frame_box(rgba) is None  # transparent edges are filled with a background colour instead
    gray, notes = load_gray(_encode(Image.fromarray(_framed(frame=False))))
    assert gray.shape == (200, 200) and not any("frame" in n for n in notes)


def test_prepare_from_a_path(tmp_path):
    path = tmp_path / "hand.png"
    path.write_bytes(_encode(Image.new("RGB", (50, 50), (255, 255, 255))))
    x = _ok(prepare(path))
    assert x.min() > 0.99
    assert looks_unusual(x) == ["the image is almost blank"]
    with pytest.raises(ImageError, match="cannot read"):
        prepare(tmp_path / "missing.png")


def test_prepare_array_and_canvas():
    with pytest.raises(ImageError):
        prepare_array(np.zeros((0, 5)))
    with pytest.raises(ImageError):
        prepare_array(np.full((5, 5), np.nan))
    with pytest.raises(ImageError):
        prepare_array(np.zeros((5, 5, 3)))
    canvas = np.zeros((10, 10, 4), np.uint8)
    canvas[2:5, 2:5] = [255, 255, 255, 255]
    gray = canvas_to_gray(canvas, background=0.0)
    assert gray[3, 3] == pytest.approx(1.0) and gray[8, 8] == 0.0
    with pytest.raises(ImageError):
        canvas_to_gray(np.zeros((10, 10, 3)))


def test_dataset_like_image_is_not_unusual(dataset):
    img = Image.fromarray(dataset.test.images[0])
    x = _ok(prepare(_encode(img)))
    np.testing.assert_allclose(x, dataset.test.images[0] / 255, atol=0.02)  # 28x28 stays as it was
    assert looks_unusual(x) == []


# --------------------------------------------------------------------------- bad files
def _png_claiming(width: int, height: int) -> bytes:
    data = bytearray(_encode(Image.new("L", (1, 1))))
    ihdr = 8  # after the signature: length (4), b"IHDR" (4), then the 13 header bytes
    assert data[ihdr + 4:ihdr + 8] == b"IHDR"
    struct.pack_into(">II", data, ihdr + 8, width, height)
    crc = zlib.crc32(bytes(data[ihdr + 4:ihdr + 8 + 13])) & 0xFFFFFFFF
    struct.pack_into(">I", data, ihdr + 8 + 13, crc)
    return bytes(data)


def test_bad_files_raise_image_error():
    png = _encode(Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)))
    cases = {
        b"": "empty",
        png[: len(png) // 2]: "truncated or corrupt",
        b"label,pixel1\n3,4\n": "not an image",
        b"\x89PNG\r\n\x1a\n": "",
        _png_claiming(60000, 60000): "more pixels than the 50 megapixels signlab reads; make it smaller",
        _png_claiming(0, 5): "",
    }
    for data, words in cases.items():
        with pytest.raises(ImageError) as err:
            prepare(data, "upload.png")
        msg = str(err.value)
        assert msg.startswith("upload.png: ") and words in msg and "\n" not in msg, msg


def test_pixel_cap_below_the_bomb_threshold():
    with pytest.raises(ImageError, match="too large"):
        prepare(_png_claiming(8000, 8000), "big.png")  # 64 MP: above signlab's 50 MP cap


def test_file_size_cap(tmp_path):
    big = tmp_path / "big.png"
    with open(big, "wb") as f:
        f.truncate(21 * 1024 * 1024)
    with pytest.raises(ImageError, match="limit"):
        prepare(big)
    with pytest.raises(ImageError, match="limit"):
        prepare(b"\0" * (21 * 1024 * 1024))


def test_animated_gif_uses_the_first_frame():
    frames = [Image.new("L", (20, 20), 0), Image.new("L", (20, 20), 255), Image.new("L", (20, 20), 128)]
    data = _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    prep = prepare(data, "anim.gif")
    assert _ok(prep).max() < 0.05  # the black first frame, not the white later ones
    assert any("3 frames" in n and "first" in n for n in prep.notes)


def test_huge_jpeg_is_reduced_with_bounded_memory(tmp_path):
    path = tmp_path / "huge.jpg"
    img = Image.linear_gradient("L").resize((6000, 6000)).convert("RGB")
    img.save(path, "JPEG", quality=80)
    del img
    script = f"""
import json, resource
from signlab.preprocess import prepare
def peak():
    for line in open('/proc/self/status'):
        if line.startswith('VmHWM'):
            return int(line.split()[1]) * 1024
def rss():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS'):
            return int(line.split()[1]) * 1024
base = rss()
try:
    open('/proc/self/clear_refs', 'w').write('5')  # reset the peak to the current size
except OSError:
    pass
prep = prepare({str(path)!r})
print(json.dumps({{"growth": peak() - base, "shape": list(prep.image28.shape), "notes": prep.notes,
                  "gray": list(prep.gray.shape), "top": float(prep.image28[:3].mean()),
                  "bottom": float(prep.image28[-3:].mean())}}))
"""
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["shape"] == [28, 28]
    assert max(r["gray"]) <= 512
    assert r["top"] < 0.2 and r["bottom"] > 0.8  # the gradient survives
    # decoding at full size would need about 280 MB; the reduced JPEG decode needs a few MB
    assert r["growth"] < 150 * 1024 * 1024, r["growth"]
