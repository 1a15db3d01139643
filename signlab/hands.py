"""Find the hand in a photo: MediaPipe's palm detector and hand-landmark model, without mediapipe.

Sign Language MNIST's images are tight crops of a hand; a photo shows the hand somewhere in a room.
:func:`find_hand` runs MediaPipe's two hand models (shipped in ``signlab/assets/hands/``, Apache-2.0,
see ``PROVENANCE.md`` there) with LiteRT (``ai-edge-litert``, the TFLite runtime, which needs no
protobuf pin) and does in NumPy what MediaPipe's graphs do between them, with the options of the
published graphs (``palm_detection_cpu.pbtxt``, ``hand_landmark_cpu.pbtxt``,
``palm_detection_detection_to_roi.pbtxt``):

1. letterbox the photo to 192x192 (zero padding, values in [0, 1]) and run the palm detector;
2. decode its 2016 SSD anchors (:func:`ssd_anchors`, :func:`decode`), keep scores >= 0.5 and merge
   overlapping boxes by weighted non-maximum suppression (:func:`weighted_nms`, IoU 0.3);
3. turn the best palm into a rotated square around the whole hand (:func:`palm_roi`: rotation from
   the wrist to the middle finger's knuckle, shifted half a box towards the fingers, 2.6x larger);
4. cut that square out at 224x224 (:func:`crop_rotated`) and run the landmark model: 21 points,
   hand presence and handedness, projected back into the photo.

Everything is in pixels of the image passed in. The interpreters load once per process, on first
use. Dataset images (28x28) are far too small for the detector: it serves photos only.
"""
from __future__ import annotations

import importlib
import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .labels import unit_pixels

ASSETS = Path(__file__).resolve().parent / "assets" / "hands"
PALM_MODEL = ASSETS / "palm_detection_full.tflite"
LANDMARK_MODEL = ASSETS / "hand_landmark_full.tflite"

# palm_detection_cpu.pbtxt: SsdAnchorsCalculator and TensorsToDetectionsCalculator options
PALM_SIZE = 192
ANCHOR_STRIDES = (8, 16, 16, 16)
NUM_BOXES = 2016
MIN_PALM_SCORE = 0.5
NMS_IOU = 0.3
# palm_detection_detection_to_roi.pbtxt: keypoint 0 is the wrist's centre, 2 the middle finger's knuckle
WRIST, MIDDLE_MCP = 0, 2
ROI_SCALE = 2.6
ROI_SHIFT_Y = -0.5
# hand_landmark_cpu.pbtxt
LANDMARK_SIZE = 224
MIN_PRESENCE = 0.5
CROP_MARGIN = 1.5  # the photo path's square: this many times the hand's landmark box (measured in issue #16)
HANDEDNESS = ("Left", "Right")  # handedness.txt; MediaPipe labels hands as in a mirrored (selfie) image

# the 21 landmarks joined as a hand skeleton, for drawing: (from, to) index pairs
HAND_CONNECTIONS = ((0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (5, 9), (9, 10),
                    (10, 11), (11, 12), (9, 13), (13, 14), (14, 15), (15, 16), (13, 17), (0, 17),
                    (17, 18), (18, 19), (19, 20))


@dataclass(frozen=True)
class HandFound:
    """A hand found in an image; all coordinates in pixels of that image (x right, y down)."""

    box: tuple[float, float, float, float]  # the landmarks' bounding box (left, top, right, bottom)
    landmarks: np.ndarray  # (21, 3): x, y in pixels; z (depth, relative to the wrist) in pixels too
    score: float  # the palm detector's score, 0-1 (0 when the landmark model read the whole photo: no palm found)
    presence: float  # the landmark model's "this is a hand", 0-1
    handedness: str  # "Left" or "Right", MediaPipe's label (it assumes a mirrored selfie image)
    roi: tuple[float, float, float, float]  # the rotated square the landmarks were read in: cx, cy, side, radians

    def shifted(self, dx: float, dy: float) -> "HandFound":
        """The same hand with every coordinate moved by (dx, dy) pixels."""
        left, top, right, bottom = self.box
        pts = self.landmarks.copy()
        pts[:, 0] += dx
        pts[:, 1] += dy
        cx, cy, side, rot = self.roi
        return HandFound(box=(left + dx, top + dy, right + dx, bottom + dy), landmarks=pts, score=self.score,
                         presence=self.presence, handedness=self.handedness, roi=(cx + dx, cy + dy, side, rot))

    def square(self, margin: float = CROP_MARGIN) -> tuple[float, float, float]:
        """A square around the hand: centre (x, y) and side, ``margin`` times the box's longer side."""
        left, top, right, bottom = self.box
        return (left + right) / 2, (top + bottom) / 2, margin * max(right - left, bottom - top, 1.0)


# ----------------------------------------------------------------------------- geometry, pure NumPy

def ssd_anchors(size: int = PALM_SIZE, strides: tuple[int, ...] = ANCHOR_STRIDES) -> np.ndarray:
    """The palm detector's anchor centres, (2016, 2) as fractions of the input (x, y).

    MediaPipe's SsdAnchorsCalculator with ``fixed_anchor_size`` (every anchor 1x1) and aspect
    ratio 1 plus the interpolated one: two anchors per cell per layer; consecutive layers with the
    same stride share one grid, so stride 8 gives 24x24x2 and the three stride-16 layers 12x12x6.
    """
    out = []
    layer = 0
    while layer < len(strides):
        same = layer
        while same < len(strides) and strides[same] == strides[layer]:
            same += 1
        per_cell = 2 * (same - layer)
        n = math.ceil(size / strides[layer])
        ys, xs = np.meshgrid((np.arange(n) + 0.5) / n, (np.arange(n) + 0.5) / n, indexing="ij")
        cells = np.stack([xs.ravel(), ys.ravel()], 1)  # row by row, as the calculator loops
        out.append(np.repeat(cells, per_cell, axis=0))
        layer = same
    return np.concatenate(out).astype(np.float32)


def decode(raw: np.ndarray, anchors: np.ndarray, size: int = PALM_SIZE) -> np.ndarray:
    """Raw regressor output (N, 18) -> (N, 18) in fractions of the input.

    Per row: box centre x, y, width, height, then 7 keypoints (x, y). Offsets are in input pixels
    relative to the anchor's centre (TensorsToDetectionsCalculator, ``reverse_output_order``,
    scales 192, anchors of size 1).
    """
    out = raw.astype(np.float32) / size
    out[:, 0::2] += anchors[:, :1]  # x: the centre and every keypoint
    out[:, 1::2] += anchors[:, 1:2]
    out[:, 2:4] = raw[:, 2:4] / size  # width and height are not offsets
    return out


def _iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """IoU of one (cx, cy, w, h) box with many."""
    def corners(b):
        return b[..., 0] - b[..., 2] / 2, b[..., 1] - b[..., 3] / 2, b[..., 0] + b[..., 2] / 2, b[..., 1] + b[..., 3] / 2
    ax0, ay0, ax1, ay1 = corners(box)
    bx0, by0, bx1, by1 = corners(others)
    iw = np.clip(np.minimum(ax1, bx1) - np.maximum(ax0, bx0), 0, None)
    ih = np.clip(np.minimum(ay1, by1) - np.maximum(ay0, by0), 0, None)
    inter = iw * ih
    union = np.abs(box[2] * box[3]) + np.abs(others[:, 2] * others[:, 3]) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def weighted_nms(dets: np.ndarray, scores: np.ndarray, iou: float = NMS_IOU) -> list[tuple[float, np.ndarray]]:
    """MediaPipe's weighted non-maximum suppression: [(score, detection)], best first.

    Take the best remaining detection and every remaining one overlapping it by more than ``iou``;
    the merged detection is their score-weighted mean (box and keypoints), with the best score.
    """
    order = np.argsort(-scores, kind="stable")
    dets, scores = dets[order], scores[order]
    out = []
    while len(dets):
        overlap = _iou(dets[0, :4], dets[:, :4]) > iou
        overlap[0] = True
        w = scores[overlap][:, None]
        out.append((float(scores[0]), (dets[overlap] * w).sum(0) / w.sum()))
        dets, scores = dets[~overlap], scores[~overlap]
    return out


def palm_roi(det: np.ndarray, width: int, height: int) -> tuple[float, float, float, float]:
    """The rotated square the landmark model reads, from a palm detection in image fractions.

    Returns (cx, cy, side, rotation) in pixels and radians. Rotation turns the wrist->knuckle
    direction upright (0 when the fingers point up, positive clockwise on screen); the square is
    the palm box's longer side times 2.6, shifted half a box towards the fingers.
    """
    cx, cy, w, h = det[0] * width, det[1] * height, det[2] * width, det[3] * height
    x0, y0 = det[4 + 2 * WRIST] * width, det[5 + 2 * WRIST] * height
    x1, y1 = det[4 + 2 * MIDDLE_MCP] * width, det[5 + 2 * MIDDLE_MCP] * height
    rot = math.pi / 2 - math.atan2(-(y1 - y0), x1 - x0)
    rot = rot - 2 * math.pi * math.floor((rot + math.pi) / (2 * math.pi))  # into [-pi, pi)
    # the shift is along the rotated box's own axes (RectTransformationCalculator)
    cx += -h * ROI_SHIFT_Y * math.sin(rot)
    cy += h * ROI_SHIFT_Y * math.cos(rot)
    return cx, cy, max(w, h) * ROI_SCALE, rot


def roi_matrix(cx: float, cy: float, side: float, rot: float, size: int) -> np.ndarray:
    """2x3 matrix taking a point (u, v) of a ``size`` x ``size`` crop to image coordinates (x, y).

    Continuous coordinates, as PIL and MediaPipe use them: (0, 0) is the top-left corner of the
    first pixel, (size, size) the bottom-right corner of the last.
    """
    c, s, k = math.cos(rot), math.sin(rot), side / size
    # (u / size - 0.5) of the side along the square's rotated axes, around its centre
    return np.array([[c * k, -s * k, cx - (c - s) * side / 2],
                     [s * k, c * k, cy - (s + c) * side / 2]], dtype=np.float64)


def crop_rotated(rgb: np.ndarray, roi: tuple[float, float, float, float], size: int) -> np.ndarray:
    """The rotated square ``roi`` (cx, cy, side, radians) of an RGB image, as a (size, size, 3) float array in [0, 1].

    Outside the image is black, as in MediaPipe's ImageToTensorCalculator (BORDER_ZERO).
    """
    m = roi_matrix(*roi, size)
    img = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), mode="RGB")
    out = img.transform((size, size), Image.Transform.AFFINE, tuple(m.ravel()), resample=Image.Resampling.BILINEAR,
                        fillcolor=(0, 0, 0))
    return unit_pixels(out)


def letterbox(rgb: np.ndarray, size: int = PALM_SIZE) -> tuple[np.ndarray, float, float, float]:
    """Fit an RGB image into a black ``size`` square, keeping its shape: (array in [0, 1], scale, pad_x, pad_y).

    A point (x, y) of the image lands at (x * scale + pad_x, y * scale + pad_y) in the square.
    """
    h, w = rgb.shape[:2]
    scale = size / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    small = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), mode="RGB").resize(
        (nw, nh), Image.Resampling.BILINEAR, reducing_gap=None)
    out = np.zeros((size, size, 3), np.float32)
    px, py = (size - nw) // 2, (size - nh) // 2
    out[py:py + nh, px:px + nw] = unit_pixels(small)
    return out, scale, float(px), float(py)


# ----------------------------------------------------------------------------- the models

_lock = threading.Lock()
_interpreters: dict[str, object] = {}


def _quiet_interpreter(path: Path):
    """A LiteRT interpreter for ``path``, without the "Created XNNPACK delegate" line on stderr."""
    from ai_edge_litert.interpreter import Interpreter

    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            it = Interpreter(model_path=str(path), num_threads=min(2, os.cpu_count() or 1))
            it.allocate_tensors()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    return it


def _run(name: str, path: Path, x: np.ndarray) -> list[np.ndarray]:
    """Run one model on one input; its outputs in the model's order. One caller at a time."""
    with _lock:
        it = _interpreters.get(name)
        if it is None:
            it = _interpreters[name] = _quiet_interpreter(path)
        it.set_tensor(it.get_input_details()[0]["index"], x[None].astype(np.float32))
        it.invoke()
        return [it.get_tensor(d["index"]).copy() for d in it.get_output_details()]


def available() -> bool:
    """Whether the runtime and both model files are here (else :func:`find_hand` returns None)."""
    try:
        importlib.import_module("ai_edge_litert.interpreter")
    except ImportError:
        return False
    return PALM_MODEL.is_file() and LANDMARK_MODEL.is_file()


_ANCHORS = ssd_anchors()


def detect_palms(rgb: np.ndarray, min_score: float = MIN_PALM_SCORE) -> list[tuple[float, np.ndarray]]:
    """Palms in an RGB image: [(score, detection)], best first; detection (18,) in fractions of the image."""
    x, scale, px, py = letterbox(rgb)
    boxes, logits = _run("palm", PALM_MODEL, x)
    if boxes.shape[1] != NUM_BOXES:  # another model file: its boxes would not line up with the anchors
        raise RuntimeError(f"{PALM_MODEL.name} gave {boxes.shape[1]} boxes, not one for each of {NUM_BOXES} anchors")
    scores = 1 / (1 + np.exp(-np.clip(logits[0, :, 0], -100, 100)))
    keep = scores >= min_score
    if not keep.any():
        return []
    dets = decode(boxes[0][keep], _ANCHORS[keep])
    h, w = rgb.shape[:2]
    # undo the letterbox: fractions of the square -> fractions of the image
    dets[:, 0::2] = (dets[:, 0::2] * PALM_SIZE - px) / scale / w
    dets[:, 1::2] = (dets[:, 1::2] * PALM_SIZE - py) / scale / h
    dets[:, 2] = dets[:, 2] * PALM_SIZE / scale / w
    dets[:, 3] = dets[:, 3] * PALM_SIZE / scale / h
    return weighted_nms(dets, scores[keep])


def _as_rgb(image: np.ndarray) -> np.ndarray:
    a = np.asarray(image)
    if a.dtype != np.uint8:
        a = np.clip(a.astype(np.float32) * (255.0 if a.max(initial=0) <= 1.0 else 1.0) + 0.5, 0, 255).astype(np.uint8)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise ValueError("find_hand expects an (H, W, 3) RGB or (H, W) grey image")
    return a[..., :3]


RETRY_PAD = 1.5  # a second look, with the photo's edges repeated out to 1.5 times its size
WHOLE_FRAME_SCALES = (1.0, 1.3)  # a third look: the landmark model reads the whole photo, then a bit more


def find_hand(rgb: np.ndarray, min_score: float = MIN_PALM_SCORE, min_presence: float = MIN_PRESENCE,
              retry: bool = True) -> HandFound | None:
    """The most confident hand in an image, or None (none found, image too small, or no runtime).

    ``rgb``: (H, W, 3) uint8 RGB (or a grey (H, W) image, used as RGB; floats in [0, 1] are scaled).
    ``retry``: when the palm detector finds nothing, look again at the photo with its edge pixels
    repeated to 1.5 times its size: the detector misses hands that fill the frame, as in a tight
    webcam crop (on the three development sets this took the share of photos with a hand found
    from 17-87% to 46-98%). When that finds nothing either, a third look skips the palm detector:
    the landmark model reads the whole photo (a centred square, then one 1.3 times as large), and
    its own presence score decides. A photo that is already a crop around the hand is what the
    landmark model was trained to read; on blank, noisy or patterned images its presence stays
    under 1%, so the third look does not invent hands (docs/real-photos.md, "A third look").
    """
    a = _as_rgb(rgb)
    h, w = a.shape[:2]
    if min(h, w) < 32 or not available():
        return None
    found = _find(a, min_score, min_presence)
    if found is None and retry:
        p = int(round(max(h, w) * (RETRY_PAD - 1) / 2))
        found = _find(np.pad(a, ((p, p), (p, p), (0, 0)), mode="edge"), min_score, min_presence)
        if found is not None:
            found = found.shifted(-p, -p)
    if found is None and retry:
        for scale in WHOLE_FRAME_SCALES:
            found = _landmarks(a, (w / 2, h / 2, max(h, w) * scale, 0.0), 0.0, min_presence)
            if found is not None:
                break
    return found


def _find(a: np.ndarray, min_score: float, min_presence: float) -> HandFound | None:
    h, w = a.shape[:2]
    palms = detect_palms(a, min_score)
    if not palms:
        return None
    score, det = palms[0]
    return _landmarks(a, palm_roi(det, w, h), score, min_presence)


def _landmarks(a: np.ndarray, roi: tuple[float, float, float, float], score: float,
               min_presence: float) -> HandFound | None:
    """The landmark model on the rotated square ``roi`` of ``a``: the hand in image pixels, or None
    when its presence score is under ``min_presence``. ``score`` is the palm detector's (0 without one)."""
    out = _run("landmark", LANDMARK_MODEL, crop_rotated(a, roi, LANDMARK_SIZE))
    coords, presence, hand = out[0].reshape(21, 3), float(out[1].ravel()[0]), float(out[2].ravel()[0])
    if presence < min_presence:
        return None
    m = roi_matrix(*roi, LANDMARK_SIZE)
    xy = coords[:, :2] @ m[:, :2].T + m[:, 2]
    z = coords[:, 2:3] * roi[2] / LANDMARK_SIZE
    pts = np.concatenate([xy, z], 1).astype(np.float32)
    box = (float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max()))
    return HandFound(box=box, landmarks=pts, score=score, presence=presence,
                     handedness=HANDEDNESS[0] if hand > 0.5 else HANDEDNESS[1], roi=roi)
