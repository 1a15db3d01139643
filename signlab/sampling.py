"""Which dataset images a page shows: seeded samples of chosen letters, their titles, and the image a
drawing starts from."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .errors import DataError
from .labels import LETTERS, unit_pixels


def sample_indices(targets: np.ndarray, letters: Sequence[int] | None, n: int, seed: int) -> np.ndarray:
    """``n`` random image indices (fewer when there are fewer) of the given class indices.

    ``letters`` empty or None means every letter. The same seed gives the same sample, so a page
    redraws the same images until the user asks for a reshuffle.
    """
    targets = np.asarray(targets)
    pool = np.flatnonzero(np.isin(targets, list(letters))) if letters else np.arange(len(targets))
    if len(pool) == 0 or n <= 0:
        return np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng(seed)
    return rng.choice(pool, size=min(n, len(pool)), replace=False)


def letter_titles(targets: np.ndarray) -> list[str]:
    return [LETTERS[int(t)] for t in targets]


def letters_present(targets: np.ndarray) -> list[int]:
    """The label indices that have at least one image: what a page offers to pick from. A dataset of
    one's own (``SIGNLAB_DATA``) may lack letters: picking one showed image 0 of another letter as it
    (the Kernels page), or raised ZeroDivisionError (the Classify page's canvas)."""
    return [k for k in range(len(LETTERS)) if np.any(targets == k)]


def random_test_index(targets: np.ndarray, letter: int | None, seed: int) -> int | None:
    """A random image index, of one letter when ``letter`` is given; None when there is none."""
    idx = sample_indices(targets, [letter] if letter is not None else None, 1, seed)
    return int(idx[0]) if len(idx) else None


def nth_image_of(images: np.ndarray, targets: np.ndarray, letter: str, n: int) -> tuple[int, np.ndarray]:
    """The ``n``-th image of ``letter`` (counting round, so "Another image" never runs out) as floats
    in [0, 1]: ``(index, (28, 28))``, what the Classify page's canvas starts from. DataError when the
    images hold none of ``letter``."""
    indices = np.flatnonzero(targets == LETTERS.index(letter))
    if not len(indices):
        raise DataError(f"the test images hold no {letter}; pick another letter")
    index = int(indices[n % len(indices)])
    return index, unit_pixels(images[index])
