"""One preprocessing path for every image a model sees outside the dataset.

The canvas, uploads, the camera, ``signlab predict`` and the benchmarks all call
:func:`prepare`: decode safely (size caps, decompression bombs, truncation), apply the EXIF
orientation, leave out a thin one-shade frame (:func:`frame_box`), make any mode grayscale
(transparency composited over a background), crop a square (centre by default, adjustable by zoom
and offset) and resize to 28x28 with antialiasing. The result is a float image in [0, 1], the same
scale as ``pixels / 255`` in training; the model then applies :func:`signlab.normalize.normalize`
as it does in training.
"""
from __future__ import annotations

import io
import math
import stat
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageError
from . import hands
from .hands import CROP_MARGIN, HandFound
from .labels import IMAGE_SIZE, unit_pixels
from .numbers import and_list

MAX_FILE_BYTES = 20 * 1024 * 1024  # also the upload cap in .streamlit/config.toml (20 MB)
MAX_PIXELS = 50_000_000  # about 7000x7000; more is refused before decoding (decompression bombs)
WORK_SIZE = 512  # large images are reduced to about this before cropping, which bounds memory


@dataclass(frozen=True)
class Crop:
    """A square crop: ``zoom`` 1 takes the largest centred square; >1 takes a smaller one.

    ``cx``/``cy`` move the square's centre across the image (0 = left/top edge, 1 = right/bottom).
    ``pad``: the square stays centred where asked even where it reaches past the image (then the
    image's edge pixels are repeated, and a zoom under 1 takes a square larger than the image);
    without it the square is moved back inside the image. The hand detector's crops pad.
    """

    zoom: float = 1.0
    cx: float = 0.5
    cy: float = 0.5
    pad: bool = False


@dataclass
class Prepared:
    """What the model gets (``image28``) and what the page shows beside the user's photo."""

    image28: np.ndarray  # (28, 28) float32 in [0, 1]
    gray: np.ndarray  # the grayscale image before cropping, (H, W) float32 in [0, 1], at most WORK_SIZE
    box: tuple[int, int, int, int]  # the crop box in ``gray`` (left, top, right, bottom); may reach past it
    notes: list[str] = field(default_factory=list)  # what was done that the user should know
    hand: HandFound | None = None  # what the hand detector found (``crop="detector"``), in ``gray``'s pixels
    crop: Crop | None = None  # the crop that made ``box``
    whole: str | None = None  # why the detector was not asked: the image is read whole (a key of WHOLE_WHY)


def _too_big(name: str, size: int) -> str:
    # in MB of 2**20 bytes, as Streamlit counts server.maxUploadSize, so the page and the message agree
    return f"{name}: the file is {size / 2**20:.1f} MB, over the limit of {MAX_FILE_BYTES / 2**20:.0f} MB"


def read_image_file(path: Path, name: str = "") -> bytes:
    """The bytes of an image file, at most :data:`MAX_FILE_BYTES`; ImageError (naming ``name``, else the
    path) for a folder, a device, a pipe or a socket, a file over the limit or one that cannot be read."""
    name = name or str(path)
    try:
        info = path.stat()
    except OSError as err:
        raise ImageError(f"{name}: cannot read the file ({err.strerror or err})") from err
    if stat.S_ISDIR(info.st_mode):
        raise ImageError(f"{name}: is a folder; give image files (a shell pattern such as {path / '*.jpg'} lists them)")
    # a device or a pipe has no size to check: /dev/zero was read until the machine ran out of memory
    if not stat.S_ISREG(info.st_mode):
        raise ImageError(f"{name}: is not a file (a device, a pipe or a socket); give image files")
    if info.st_size > MAX_FILE_BYTES:
        raise ImageError(_too_big(name, info.st_size))
    try:
        with path.open("rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)  # never more than the limit, even if the file grew since stat
    except OSError as err:  # unreadable (permissions) or gone since stat
        raise ImageError(f"{name}: cannot read the file ({err.strerror or err})") from err
    if len(data) > MAX_FILE_BYTES:
        raise ImageError(_too_big(name, len(data)))
    return data


def _open(data: bytes | str | Path, name: str) -> Image.Image:
    if isinstance(data, (str, Path)):
        data = read_image_file(Path(data), name)
    if not data:
        raise ImageError(f"{name}: the file is empty")
    if len(data) > MAX_FILE_BYTES:
        raise ImageError(_too_big(name, len(data)))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF"))  # uploader types only: no EPS/Ghostscript
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        if isinstance(err, UnidentifiedImageError):
            raise ImageError(f"{name}: not an image we can open; use a picture file (PNG, JPEG, WebP, GIF, BMP or TIFF)") from err
        raise ImageError(f"{name}: the image claims more pixels than the {MAX_PIXELS / 1e6:.0f} megapixels signlab "
                         "reads; make it smaller (a photo of a few megapixels is plenty, it is cut to 28×28)") from err
    except Exception as err:  # noqa: BLE001 - any decoder failure is a bad file, not a crash
        raise ImageError(f"{name}: cannot read the image ({err})") from err
    w, h = img.size
    if w * h > MAX_PIXELS:
        raise ImageError(f"{name}: {w}x{h} pixels is too large (limit {MAX_PIXELS / 1e6:.0f} megapixels); make it "
                         "smaller (a photo of a few megapixels is plenty, it is cut to 28×28)")
    if w < 1 or h < 1:
        raise ImageError(f"{name}: the image has no pixels")
    return img


INT_WIDE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")  # 16-bit and 32-bit whole-number pixels
WIDE_MODES = (*INT_WIDE_MODES, "F")  # ... and float ones: PIL's RGB conversion clips them all at 255


def _to_gray(img: Image.Image, background: float, notes: list[str] | None = None, name: str = "image") -> np.ndarray:
    """Any PIL mode -> (H, W) float32 in [0, 1]; transparency composited over ``background``.

    16-bit grey is scaled by 65535 (so a 16-bit copy of an 8-bit image gives the same values);
    palette, CMYK, YCbCr, HSV, LAB and 1-bit images are converted to RGB first; RGBA, LA, PA and
    palette or RGB images with a transparent colour are composited over ``background``.
    """
    mode = img.mode
    if mode in INT_WIDE_MODES:
        a = np.asarray(img, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or a.max() > 255 else 255.0
        return np.clip(a / top, 0, 1).astype(np.float32)
    if mode == "F":
        a = np.asarray(img, dtype=np.float32)
        if not np.isfinite(a).all():  # NaN made every pixel NaN, and the refusal named no file
            raise ImageError(f"{name}: some pixels are not numbers (NaN or infinite); save the image again "
                             "as an ordinary PNG or JPEG")
        top = 1.0 if a.max() <= 1.0 else (255.0 if a.max() <= 255 else float(a.max()))
        return np.clip(a / top, 0, 1)
    try:
        if mode in ("P", "PA") or (mode in ("L", "RGB") and "transparency" in img.info):
            img = img.convert("RGBA")
        elif mode in ("CMYK", "YCbCr", "LAB", "HSV", "1", "RGBX"):
            img = img.convert("RGB")
        if img.mode in ("RGBA", "LA"):  # premultiplied La and RGBa are made these by _decode
            rgba = unit_pixels(img.convert("RGBA"))  # (H, W, 4)
            gray = rgba[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
            alpha = rgba[..., 3]
            if notes is not None and float(alpha.min()) < 1.0:
                shade = "white" if background >= 0.99 else ("black" if background <= 0.01 else "grey")
                notes.append(f"transparent areas were filled with {shade}")
            return (gray * alpha + background * (1 - alpha)).astype(np.float32)
        return unit_pixels(img.convert("L"))
    except ValueError as err:  # a mode PIL cannot convert
        raise ImageError(f"{name}: the colour mode {mode} is not supported ({err})") from err


def _decode(data: bytes | str | Path, name: str, notes: list[str]) -> Image.Image:
    """Open and decode an image once: first frame, upright, at most about WORK_SIZE on its long side."""
    img = _open(data, name)
    try:
        if getattr(img, "n_frames", 1) > 1:
            notes.append(f"the image has {img.n_frames} frames; the first was used")
            img.seek(0)
        if img.format == "JPEG":  # decode big JPEGs at a reduced scale: fast and memory-bounded
            img.draft(img.mode, (WORK_SIZE, WORK_SIZE))
        img.load()
        if img.mode in ("La", "RGBa"):  # premultiplied alpha (a TIFF can say so): PIL converts it to LA/RGBA only
            img = img.convert(img.mode[:-1] + "A")
        if img.mode in ("L", "RGB", "P") and "transparency" in img.info:
            # one colour marked transparent becomes an alpha band before the reduction: reduced first, the
            # marked colour blended with its neighbours and drew a dark outline round the transparent areas
            img = img.convert("RGBA")
        if max(img.size) > WORK_SIZE:
            # no reducing_gap for 16- and 32-bit pixels: Image.reduce, which it calls first, has no such
            # modes, and a 16-bit grey photo of 2048 pixels or more was refused as corrupt
            img.thumbnail((WORK_SIZE, WORK_SIZE), Image.Resampling.LANCZOS,
                          reducing_gap=None if img.mode in INT_WIDE_MODES else 2.0)
            # the note said only "reduced in size before cropping", and a student asked why
            notes.append(f"reduced to {WORK_SIZE} pixels on its longer side before cropping: the model reads "
                         f"{IMAGE_SIZE}×{IMAGE_SIZE}, so more pixels would add only work")
        img = ImageOps.exif_transpose(img)  # after the reduction: it copies the whole image
    except Exception as err:  # noqa: BLE001 - truncated or corrupt pixel data
        raise ImageError(f"{name}: the image data is truncated or corrupt ({err})") from err
    try:
        box = frame_box(img)
    except ValueError:  # a mode PIL cannot turn grey here: no frame is looked for (_to_gray says why later)
        box = None
    if box is not None:
        notes.append("a thin frame around the image was left out")
        img = img.crop(box)
    return img


SMALL_IMAGE = 64  # at most this many pixels a side: a dataset-sized crop, read whole (the Classify page says so)
FRAME_MIN_SIDE = 64  # smaller images (a dataset image, an icon) are never trimmed
FRAME_MAX = 0.03  # a frame is at most 3% of the shorter side on each edge
FRAME_FLAT = 0.03  # a frame line is one shade: its pixels' standard deviation (0-1 scale) below this
FRAME_STEP = 0.1  # ... and it differs from the image just inside by more than this


def frame_box(img: Image.Image) -> tuple[int, int, int, int] | None:
    """The box (left, top, right, bottom) inside a thin one-shade frame around ``img``, or None.

    Some photos carry a line or two of one dark or light shade along their edges (webcam crops
    and screenshots: every photo of one development set has a 1-2 pixel dark frame). The
    detector's crop repeats the image's edge pixels where it reaches past the photo, and a
    repeated frame line becomes a dark bar across the model's input; so the frame goes before
    anything else looks at the image. Each edge loses only lines that are one shade and differ
    from the image a few pixels inside, at most ``FRAME_MAX`` of the shorter side.
    """
    w, h = img.size
    if min(w, h) < FRAME_MIN_SIDE or "A" in img.getbands() or "transparency" in img.info:
        return None  # small, or transparent edges (filled with a background colour later)
    g = unit_pixels(img.convert("L"))  # (H, W)
    k = max(1, int(round(FRAME_MAX * min(h, w))))

    def depth(lines: np.ndarray) -> int:  # lines (k + 1, L), from the edge inwards
        inner = float(lines[k].mean())
        d = 0
        while d < k and lines[d].std() < FRAME_FLAT and abs(float(lines[d].mean()) - inner) > FRAME_STEP:
            d += 1
        return d

    top, bottom = depth(g[:k + 1]), depth(g[::-1][:k + 1])
    left, right = depth(g[:, :k + 1].T), depth(g[:, ::-1][:, :k + 1].T)
    if top == bottom == left == right == 0:
        return None
    return left, top, w - right, h - bottom


def load_gray(data: bytes | str | Path, name: str = "image", background: float = 1.0) -> tuple[np.ndarray, list[str]]:
    """Decode a file to a grayscale float image (at most about WORK_SIZE on its long side)."""
    notes: list[str] = []
    img = _decode(data, name, notes)
    return _to_gray(img, background, notes, name), notes


# a padded crop's square is at most 4 times the image's shorter side (a robust run's widest framing,
# TTA_ZOOMS' 0.8, reads 1/0.8 of that: 5 times)
MIN_PAD_ZOOM = 0.25


def crop_box(shape: tuple[int, int], crop: Crop) -> tuple[int, int, int, int]:
    """The square crop box (left, top, right, bottom) for an (H, W) image.

    Inside the image unless ``crop.pad``, when it may reach past the image's edges.
    """
    h, w = shape
    if crop.pad:
        side = max(1, int(round(min(h, w) / max(crop.zoom, MIN_PAD_ZOOM))))
        left = int(round(min(max(crop.cx, -1.0), 2.0) * w - side / 2))
        top = int(round(min(max(crop.cy, -1.0), 2.0) * h - side / 2))
        return left, top, left + side, top + side
    side = max(1, int(round(min(h, w) / max(crop.zoom, 1.0))))
    cx = min(max(crop.cx, 0.0), 1.0) * w
    cy = min(max(crop.cy, 0.0), 1.0) * h
    left = int(round(min(max(cx - side / 2, 0), w - side)))
    top = int(round(min(max(cy - side / 2, 0), h - side)))
    return left, top, left + side, top + side


def cut(gray: np.ndarray, left: int, top: int, right: int, bottom: int) -> np.ndarray:
    """``gray[top:bottom, left:right]``, with the image's edge pixels repeated where the box reaches past it."""
    h, w = gray.shape
    if left >= 0 and top >= 0 and right <= w and bottom <= h:
        return gray[top:bottom, left:right]
    ys = np.clip(np.arange(top, bottom), 0, h - 1)
    xs = np.clip(np.arange(left, right), 0, w - 1)
    return gray[np.ix_(ys, xs)]


def hand_crop(hand: HandFound, shape: tuple[int, int], margin: float = CROP_MARGIN) -> Crop:
    """The detector's crop: a square ``margin`` times the hand's landmark box, centred on it, padded.

    ``CROP_MARGIN`` (1.5) is the margin the issue measured with MediaPipe (dev sets 54 -> 55%, 34 -> 38%, 58 -> 62%).
    """
    h, w = shape
    x, y, side = hand.square(margin)
    return Crop(zoom=float(min(h, w) / max(side, 1.0)), cx=float(x / w), cy=float(y / h), pad=True)


def resize28(gray: np.ndarray) -> np.ndarray:
    """Antialiased resize of a float image to (28, 28)."""
    img = Image.fromarray(np.ascontiguousarray(gray, dtype=np.float32), mode="F")
    small = img.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.LANCZOS, reducing_gap=None)
    return np.clip(np.asarray(small, dtype=np.float32), 0, 1)


def prepare_array(gray: np.ndarray, crop: Crop | None = None, notes: list[str] | None = None) -> Prepared:
    """Crop and resize an already decoded grayscale float image (H, W) in [0, 1]."""
    gray = np.asarray(gray, dtype=np.float32)
    if gray.ndim != 2 or gray.size == 0 or not np.isfinite(gray).all():
        raise ImageError("the image must be a non-empty 2-D grayscale array of finite values")
    crop = crop or Crop()
    box = crop_box(gray.shape, crop)
    return Prepared(resize28(cut(gray, *box)), gray, box, list(notes or []), crop=crop)


# The framings a robust run averages over (each also mirrored): the crop as chosen first (the 28x28
# input the Classify page shows), then zoomed out and in around its centre. Five since 2026-12-07,
# where (1, 1.15) was: more of the several-sessions development set read, before and after
# calibration (docs/real-photos.md, "Five framings instead of two").
TTA_ZOOMS = (1.0, 0.8, 0.9, 1.15, 1.3)
TTA_VIEWS = 2 * len(TTA_ZOOMS)  # each framing and its mirror image


def _framings(zooms: tuple[float, ...]) -> str:
    """How ``zooms`` frame the crop, in words:
    "the crop as shown, and the same crop zoomed out to 0.8×, and in to 1.15×"."""
    wider, closer = [z for z in zooms if z < 1], [z for z in zooms if z > 1]
    ways = ([f"out to {and_list(f'{z:g}×' for z in wider)}"] if wider else []) + \
        ([f"in to {and_list(f'{z:g}×' for z in closer)}"] if closer else [])
    return "the crop as shown" + (", and the same crop zoomed " + ", and ".join(ways) if ways else "")


TTA_FRAMINGS = _framings(TTA_ZOOMS)  # said where the Classify and Calibrate pages explain the views
# the whole sentence, on the Classify page's caption and in its explanation
TTA_WORDS = f"{TTA_VIEWS} views of the input: {TTA_FRAMINGS}, each also mirrored"


def zoomed_views(prep: Prepared, zooms: tuple[float, ...] = TTA_ZOOMS) -> np.ndarray:
    """The prepared crop at several zooms around its centre, for test-time augmentation: (V, 28, 28).

    A zoom of 1 is the crop box itself (``prep.image28``); 1.15 takes a square 1/1.15 its side,
    so the hand fills more of the input, and 0.8 one 1/0.8 its side (the photo's edge repeated where
    it reaches past it), so the hand fills less. Averaging the model over several framings makes
    the prediction depend less on exactly how the photo was framed (docs/real-photos.md).
    """
    left, top, right, bottom = prep.box
    views = []
    for z in zooms:
        side = max(1, int(round((right - left) / z)))
        x0, y0 = left + ((right - left) - side) // 2, top + ((bottom - top) - side) // 2
        views.append(resize28(cut(prep.gray, x0, y0, x0 + side, y0 + side)))
    return np.stack(views)  # (V, 28, 28)


CROPS = ("detector", "centre", "hand")  # the named crops of prepare(), `predict --crop` and the benchmarks
PHOTO_CROP = "detector"  # the photo path's default: predict, calibration (so it learns the framing predict uses), benchmarks


def prepare(data: bytes | str | Path, name: str = "image", crop: Crop | str | None = None,
            background: float = 1.0, margin: float = CROP_MARGIN) -> Prepared:
    """The one preprocessing function: file bytes or a path -> the 28x28 model input.

    ``crop``: a :class:`Crop`; ``"detector"`` finds the hand with MediaPipe's hand models
    (:func:`signlab.hands.find_hand`) and crops a square ``margin`` times its landmark box
    (:func:`hand_crop`); ``"hand"`` (or the older ``"auto"``) looks for skin colour
    (:func:`find_hand`); None or ``"centre"``: the largest centred square. When no hand is found,
    the centre crop is used and a note says so.
    """
    notes: list[str] = []
    img = _decode(data, name, notes)  # decoded once, for the grey image and the hand search
    gray = _to_gray(img, background, notes, name)
    hand = whole = None
    if crop == "detector":
        hand, crop, whole = detect_unless_whole(img, gray.shape, margin, gray)
        notes.append(f"cropped to the hand the detector found ({hand.presence:.0%} sure it is a hand)" if hand
                     else f"read whole, as the dataset's images are: {WHOLE_WHY[whole]}" if whole
                     else "the hand detector found no hand; centre crop used")
    elif crop in ("auto", "hand"):
        crop = find_hand(img)
        notes.append("cropped to the hand found by its colour" if crop else "no hand found; centre crop used")
    elif isinstance(crop, str) and crop != "centre":
        raise ImageError(f"crop: {crop!r} is unknown; choose one of {', '.join(CROPS)}")
    prep = prepare_array(gray, crop if isinstance(crop, Crop) else None, notes)
    prep.hand = hand
    prep.whole = whole
    return prep


ENLARGED_ERROR = 0.004  # mean difference (0-1 scale) from the image's own 28x28 blocks, enlarged again
ENLARGED_CONTRAST = 0.045  # ... and that difference over the image's contrast (its standard deviation)
FLAT_CONTRAST = 0.02  # a standard deviation under this (5 of 255 levels): one flat shade, not an enlarged image
WHOLE_WHY = {  # why the photo path reads an image whole, at its own framing, instead of looking for a hand
    "small": f"at most {SMALL_IMAGE} pixels a side, the size of the dataset's crops",
    "enlarged": f"an enlarged {IMAGE_SIZE}×{IMAGE_SIZE} image, with no more detail than the dataset's own",
}


def read_whole(img: Image.Image, gray: np.ndarray | None = None) -> str | None:
    """Why the hand detector is not asked about a decoded image (a key of ``WHOLE_WHY``), or None.
    ``gray``: the image in grey, where the caller has made it already (:func:`prepare`).

    The dataset's images are already tight crops of a hand. Enlarged to 224 pixels and uploaded,
    one went through the detector, whose square (1.5 times the hand's landmark box) showed the hand
    smaller than the model ever saw it: "G (87%)" for another letter, where the image read whole
    was right. So an image of dataset size (at most ``SMALL_IMAGE`` pixels a side: the page already
    said those were read whole), or one that is its own 28x28 blocks enlarged (pixel blocks, as the
    Draw tab and most image viewers enlarge), is read whole. The blocks' test: reduced to 28x28 by
    averaging and enlarged again by repeating pixels, it differs from itself on average by under
    ``ENLARGED_ERROR``, and by under ``ENLARGED_CONTRAST`` of its own contrast (standard deviation).
    Measured by ``bench/read_whole.py``: 100 test images enlarged to 224 or 512 pixels (PNG or JPEG)
    0.0000 and 0.0000; to 300 pixels as JPEG at most 0.0025 and 0.018; enlarged to 1000 and reduced to
    512, 88 of them under both. The 2,119 development photos differ by 0.0054 at least and by 0.059
    of their contrast at least (dev3's blurred crops; dev2 0.087, dev 0.123). Darkened to 0.3 or 0.15
    of its brightness a photo differs less (836 of dev2's 960 under 0.004 at 0.3, all at 0.15), but
    no less over its contrast: the first test alone (until 2026-12-06) took a photo of a hand in a
    dim room for an enlarged image, and the detector was never asked. A smooth gradient passes the
    second alone (0.031): a plain wall is still searched for a hand. A flat picture (a contrast
    under ``FLAT_CONTRAST``) is its own blocks too, and is not one: a plain red upload read "a 28×28
    image enlarged in blocks of pixels, like the dataset's own crops".
    """
    w, h = img.size
    if max(w, h) <= SMALL_IMAGE:
        return "small"
    gray = _to_gray(img, 1.0) if gray is None else gray  # (H, W) in [0, 1], whatever the mode
    return "enlarged" if is_enlarged(*block_difference(gray)) else None


def block_difference(gray: np.ndarray) -> tuple[float, float]:
    """How far a grey image (H, W) in [0, 1] is from its own 28x28 blocks enlarged again: the mean
    difference, and that over the image's contrast. About 0 and 0 for a 28x28 image enlarged in
    blocks of pixels (:func:`read_whole`); infinitely far over its contrast where it has none to speak
    of (``FLAT_CONTRAST``): a flat picture is no enlarged image."""
    h, w = gray.shape
    f = Image.fromarray(gray.astype(np.float32), mode="F")
    blocks = f.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BOX).resize((w, h), Image.Resampling.NEAREST)
    mean, contrast = float(np.abs(gray - np.asarray(blocks)).mean()), float(gray.std())
    return mean, mean / contrast if contrast >= FLAT_CONTRAST else math.inf


def is_enlarged(mean: float, over_contrast: float) -> bool:
    """Whether a :func:`block_difference` is that of an enlarged 28x28 image."""
    return mean < ENLARGED_ERROR and over_contrast < ENLARGED_CONTRAST


def detect_unless_whole(img: Image.Image, shape: tuple[int, int], margin: float = CROP_MARGIN,
                        gray: np.ndarray | None = None) -> tuple[HandFound | None, Crop | None, str | None]:
    """The photo path's look for a hand: why ``img`` is read whole (:func:`read_whole`, given its
    ``gray`` where made), else what :func:`detect` finds; (the hand, its crop, why it is read whole),
    None where each is not."""
    whole = read_whole(img, gray)
    return (None, None, whole) if whole else (*detect(img, shape, margin, gray), None)


def detect(img: Image.Image, shape: tuple[int, int], margin: float = CROP_MARGIN,
           gray: np.ndarray | None = None) -> tuple[HandFound | None, Crop | None]:
    """Run the hand detector on a decoded image: (the hand, its crop), or (None, None). ``gray``: the
    image in grey, where made; 16-bit and float images are shown to the detector from it (PIL's
    conversion to RGB clips them at 255: a 16-bit photo came out all white, a float one all black,
    and no hand was ever found in either)."""
    if img.mode in WIDE_MODES:
        g = _to_gray(img, 1.0) if gray is None else gray  # (H, W) in [0, 1]
        rgb = np.repeat((g * 255 + 0.5).astype(np.uint8)[..., None], 3, axis=2)  # (H, W, 3)
    else:
        rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)
    hand = hands.find_hand(rgb)
    return (hand, hand_crop(hand, shape, margin)) if hand is not None else (None, None)


def locate_hand(data: bytes | str | Path, name: str = "image",
                margin: float = CROP_MARGIN) -> tuple[HandFound | None, Crop | None, str | None]:
    """The hand detector on an image file (the page's first look): the hand, the detector's crop
    (None and None where it found none), and why the image is read whole instead (:func:`read_whole`)."""
    notes: list[str] = []
    img = _decode(data, name, notes)
    return detect_unless_whole(img, (img.height, img.width), margin)


def find_hand(img: Image.Image) -> Crop | None:
    """A square crop around the hand in a decoded colour photo, by skin colour; None if there is none.

    Sign Language MNIST's images are tight crops of the hand, while photos show the hand smaller,
    with the arm and the room. Skin is found in YCbCr (Cr 135-180, Cb 80-135, a classic range that
    holds across skin tones under ordinary light); the crop is the width of the skin region and
    starts just above its top, so a forearm below the hand is left out. Grayscale images and
    drawings have no colour to go by: None.
    """
    from PIL import ImageFilter

    if img.mode not in ("RGB", "RGBA", "P", "CMYK", "YCbCr"):
        return None
    small = img.copy()
    small.thumbnail((256, 256))  # crop fractions do not depend on the size; 256 is plenty to find a hand
    ycc = np.asarray(small.convert("RGB").convert("YCbCr"), dtype=np.int16)  # (H, W, 3)
    cb, cr = ycc[..., 1], ycc[..., 2]
    mask = ((cr >= 135) & (cr <= 180) & (cb >= 80) & (cb <= 135)).astype(np.uint8) * 255
    mask_img = Image.fromarray(mask).filter(ImageFilter.MinFilter(5)).filter(ImageFilter.MaxFilter(5))
    m = np.asarray(mask_img) > 0  # (H, W) skin, specks removed
    h, w = m.shape
    if m.mean() < 0.02 or m.mean() > 0.8:  # no hand, or everything skin-coloured (a close-up): keep the centre
        return None
    cols, rows = m.sum(0), m.sum(1)
    xs, ys = np.flatnonzero(cols > 0.1 * cols.max()), np.flatnonzero(rows > 0.1 * rows.max())
    x0, x1, y0, y1 = xs[0], xs[-1], ys[0], ys[-1]
    side = min(max(x1 - x0 + 1, min(y1 - y0 + 1, 1.25 * (x1 - x0 + 1))), min(h, w))
    top = max(0.0, y0 - 0.08 * side)
    return Crop(zoom=float(min(h, w) / side), cx=float((x0 + x1) / 2 / w), cy=float((top + side / 2) / h))


def canvas_to_gray(rgba: np.ndarray, background: float | np.ndarray = 0.0) -> np.ndarray:
    """A drawing canvas's RGBA pixels (H, W, 4), uint8 or float, to a grayscale float image.

    The canvas starts transparent and strokes live in the alpha channel, so transparency is
    composited over ``background``: the canvas's own background shade, or an (H, W) grayscale
    image in [0, 1] when the canvas was drawn over a picture (the component returns the strokes
    only, never its background image).
    """
    a = np.asarray(rgba, dtype=np.float32)
    if a.ndim != 3 or a.shape[2] != 4:
        raise ImageError("canvas: expected RGBA pixels of shape (H, W, 4)")
    if a.max(initial=0) > 1.0:
        a = unit_pixels(a)
    bg = np.asarray(background, dtype=np.float32)
    if bg.ndim == 2 and bg.shape != a.shape[:2]:
        raise ImageError(f"canvas: the background is {bg.shape[1]}x{bg.shape[0]}, the drawing "
                         f"{a.shape[1]}x{a.shape[0]}")
    gray = a[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return (gray * a[..., 3] + bg * (1 - a[..., 3])).astype(np.float32)


def upscale(image: np.ndarray, size: int) -> np.ndarray:
    """A small grayscale float image (a 28x28 dataset image) blown up to (size, size) pixel blocks.

    Nearest-neighbour on purpose: each of the model's pixels stays a visible square, and resizing
    back with :func:`resize28` returns (almost exactly) the original image.
    """
    img = Image.fromarray(np.ascontiguousarray(image, dtype=np.float32), mode="F")
    return np.asarray(img.resize((size, size), Image.Resampling.NEAREST), dtype=np.float32)


def to_png(gray: np.ndarray) -> bytes:
    """A grayscale float image in [0, 1] as 8-bit PNG bytes (a canvas background, a download)."""
    a = np.clip(np.asarray(gray, dtype=np.float32) * 255 + 0.5, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


# What looks_unusual measures, calibrated on Sign Language MNIST (all 34,627 images) so that about
# 0.2% of its images are flagged, while line drawings and empty canvases almost always are.
BLANK_STD = 0.03  # the whole image within a few shades of one value
# Nothing to classify at all (Classify shows no letter, calibration refuses the photo): an empty
# canvas or a covered lens is one shade (std near 0). Lower than BLANK_STD, which only warns: the
# dimmest real hand among the 2,119 development photos (a grey webcam frame, the hand found by the
# detector) has std 0.029; the dataset's lowest is 0.073.
NOTHING_STD = 0.02
FLAT_FRACTION = 0.6  # the most common of 20 shade bins holds this much of the image (dataset: 99% below 0.45)
TWO_SHADE_FRACTION = 0.8  # the two most common of 16 bins hold this much (dataset: 99% below 0.73)
SHARPNESS = 1.0  # mean neighbour difference / standard deviation (dataset: 99% below 0.9; thin lines above)


def is_blank(image28: np.ndarray) -> bool:
    """Whether there is nothing to classify: the whole image within a shade or two of one value."""
    return float(np.asarray(image28, dtype=np.float32).std()) < NOTHING_STD


def looks_unusual(image28: np.ndarray) -> list[str]:
    """Plain-words reasons why an input looks unlike the dataset's photos of hands (may be empty).

    Dataset images are tightly cropped hands on a plain background, softly shaded. Flagged: an
    almost blank image; one flat shade over most of the image (an empty canvas, a wide border, a
    hand too small in the frame); only about two shades (a line drawing); thin hard lines or noise.
    """
    x = np.asarray(image28, dtype=np.float32)
    std = float(x.std())
    if std < NOTHING_STD:
        return ["the image is almost blank"]
    if std < BLANK_STD:
        return ["the image has very little contrast: what it shows is hard to tell from its background; "
                "more light, or a background darker or lighter than the hand, helps"]
    reasons = []
    hist20, _ = np.histogram(x, bins=20, range=(0, 1))
    if hist20.max() / x.size > FLAT_FRACTION:
        reasons.append("most of the image is one flat shade: the hand is small in the square, or this is a "
                       "drawing or an empty canvas; the model learned from photos of hands that fill the frame")
    hist16, _ = np.histogram(x, bins=16, range=(0, 1))
    if np.sort(hist16)[-2:].sum() / x.size > TWO_SHADE_FRACTION:
        reasons.append("the image has about two shades only, like a line drawing; the dataset's photos are "
                       "softly shaded")
    sharp = (np.abs(np.diff(x, axis=0)).mean() + np.abs(np.diff(x, axis=1)).mean()) / std
    if sharp > SHARPNESS:
        reasons.append("the image is full of thin hard lines or noise, unlike the dataset's smooth photos")
    return reasons
