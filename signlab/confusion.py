"""Reading an evaluation for the Evaluate page: the worst pair, the crowded column, per-letter rows,
the clicked confusion-matrix square and the titles of image tiles (plain numpy, no torch)."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .evaluate import Evaluation
from .labels import LETTERS, NUM_CLASSES
from .numbers import percent_text


def click_to_pair(points: Sequence[dict[str, Any]] | None) -> tuple[int, int] | None:
    """The (true, predicted) class pair of the first clicked confusion-matrix square, if any.

    Each square of :func:`signlab.figures.confusion_matrix` carries ``customdata = [true, pred]``;
    Streamlit hands it over as a list or, from a numpy array, as ``{"0": true, "1": pred}``. A click
    on the selection outline (no customdata) or anything malformed gives None.
    """
    for p in points or []:
        cd = p.get("customdata") if isinstance(p, dict) else None
        if isinstance(cd, dict):
            cd = [cd.get("0", cd.get(0)), cd.get("1", cd.get(1))]
        if not isinstance(cd, (list, tuple)) or len(cd) < 2:
            continue
        try:
            t, q = int(cd[0]), int(cd[1])
        except (TypeError, ValueError):
            continue
        if 0 <= t < NUM_CLASSES and 0 <= q < NUM_CLASSES:
            return t, q
    return None


def worst_pair(ev: Evaluation) -> tuple[int, int]:
    """The most frequent mistake (true, predicted); the weakest diagonal cell when there is none."""
    cm = ev.confusion.copy()
    np.fill_diagonal(cm, 0)
    if cm.max() > 0:
        t, p = np.unravel_index(int(cm.argmax()), cm.shape)
        return int(t), int(p)
    diag = np.diag(ev.confusion)
    k = int(np.argmin(np.where(diag > 0, diag, diag.max() + 1)))
    return k, k


def confidence_titles(confidences: np.ndarray) -> list[str]:
    return [percent_text(float(c), 0) for c in confidences]


def mistake_titles(mistakes: Sequence[dict[str, Any]]) -> list[str]:
    """Each mistake's title, its letters (true→said) over its confidence: on one line ("N→T 99%")
    the titles of a phone's shrunken tiles ran together ("N→T 99%N→T 99%")."""
    return [f"{m['true']}→{m['predicted']}<br>{percent_text(m['confidence'], 0)}" for m in mistakes]


def per_class_rows(ev: Evaluation) -> list[dict[str, Any]]:
    """Precision, recall and F1 in percent, with the support, one row per letter."""
    return [{"letter": r["letter"], "precision": 100 * r["precision"], "recall": 100 * r["recall"],
             "F1": 100 * r["f1"], "images": r["support"]} for r in ev.per_class()]


def crowded_column(ev: Evaluation, ratio: float = 2.0, min_wrong: int = 50) -> dict[str, Any] | None:
    """A predicted letter that collects far more images than it has: the lecture ReLU's phantom column.

    Returns the letter whose column holds at least ``ratio`` times its true count and at least
    ``min_wrong`` mistakes (the one with most mistakes), or None.
    """
    cm = ev.confusion
    predicted, support = cm.sum(0), cm.sum(1)
    wrong = predicted - np.diag(cm)
    ok = (predicted >= ratio * np.maximum(support, 1)) & (wrong >= min_wrong)
    if not ok.any():
        return None
    k = int(np.argmax(np.where(ok, wrong, -1)))
    return {"index": k, "letter": LETTERS[k], "predicted": int(predicted[k]), "support": int(support[k]),
            "wrong": int(wrong[k]), "share": float(predicted[k] / max(int(cm.sum()), 1))}
