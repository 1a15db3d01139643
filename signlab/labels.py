"""Class names, the label map and the pixel scale: the one source for each (plain numpy, no torch).

Sign Language MNIST labels run 0..24 with 9 (J) absent; J and Z need motion, so there are 24
static letters. Everything in signlab works with *class indices* 0..23; raw CSV labels are mapped
here and nowhere else.
"""
from __future__ import annotations

import numpy as np

LETTERS: str = "ABCDEFGHIKLMNOPQRSTUVWXY"  # the 24 static letters, in class-index order
NUM_CLASSES: int = len(LETTERS)  # 24
IMAGE_SIZE: int = 28
NUM_PIXELS: int = IMAGE_SIZE * IMAGE_SIZE  # 784
PIXEL_MAX: float = 255.0  # a CSV pixel's white; models, charts and the canvas take pixels / PIXEL_MAX


def unit_pixels(images: np.ndarray) -> np.ndarray:
    """Pixels 0..255 (any shape, e.g. (N, 28, 28)) as float32 in [0, 1]: what a model's
    normalisation (:mod:`signlab.normalize`) and the image charts take."""
    return np.asarray(images, dtype=np.float32) / np.float32(PIXEL_MAX)

# raw CSV label (0..24, no 9) -> class index (0..23); -1 marks labels that are not a letter we know
_RAW_TO_INDEX = np.full(256, -1, dtype=np.int64)
for _raw in range(25):
    if _raw != 9:
        _RAW_TO_INDEX[_raw] = _raw if _raw < 9 else _raw - 1
VALID_RAW_LABELS: frozenset[int] = frozenset(int(r) for r in np.flatnonzero(_RAW_TO_INDEX >= 0))


def raw_labels_to_index(raw: np.ndarray) -> np.ndarray:
    """Map raw dataset labels (0..24 without 9) to class indices 0..23 (callers validate first)."""
    return _RAW_TO_INDEX[np.asarray(raw, dtype=np.int64)]


def letter(index: int) -> str:
    """The letter of a class index."""
    return LETTERS[int(index)]
