"""What the Data, Evaluate, Kernels and Runs pages compute, as plain functions (no Streamlit).

The pages stay thin: they draw widgets and call these helpers, which turn splits, evaluations,
models and runs into arrays, titles and rows that :mod:`signlab.figures` and ``st.dataframe`` show.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
from torch import nn

from .errors import RunError, SignlabError
from .evaluate import Evaluation
from .labels import LETTERS, NUM_CLASSES
from .models import MLP, LogisticRegression, conv_layers, first_weights
from .runs import Run


# --------------------------------------------------------------------------- the Data page
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


# --------------------------------------------------------------------------- the Evaluate page
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
    return [f"{100 * float(c):.0f}%" for c in confidences]


def mistake_titles(mistakes: Sequence[dict[str, Any]]) -> list[str]:
    return [f"{m['true']}→{m['predicted']} {100 * m['confidence']:.0f}%" for m in mistakes]


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


# --------------------------------------------------------------------------- the Kernels page
def model_kind(model: nn.Module) -> str:
    """``conv`` (has convolutions), ``logreg``, ``mlp`` or ``other``."""
    if conv_layers(model):
        return "conv"
    if isinstance(model, LogisticRegression):
        return "logreg"
    if isinstance(model, MLP):
        return "mlp"
    return "other"


def _np(w: Any) -> np.ndarray:
    return w.detach().cpu().float().numpy() if hasattr(w, "detach") else np.asarray(w, dtype=float)


def first_layer_weight(model: nn.Module) -> np.ndarray:
    """The model's first weight layer now (what :meth:`Run.kernel_history` snapshots each epoch)."""
    w = first_weights(model)
    if w is None:
        raise RunError("this model has no convolution or linear layer")
    return _np(w)


def first_layer_tiles(weight: Any) -> np.ndarray:
    """A snapshot of :meth:`Run.kernel_history` as images: (N, h, w).

    Conv weights (C_out, C_in, k, k) give one k x k tile per output channel (the first input
    channel: a grey image has one); linear weights (units, 784) give one 28 x 28 template per unit.
    """
    w = _np(weight)
    if w.ndim == 4:
        return w[:, 0]
    if w.ndim == 2 and w.shape[1] == 784:
        return w.reshape(-1, 28, 28)
    raise RunError(f"cannot show first-layer weights of shape {tuple(w.shape)} as images")


def kernel_change(history: dict[int, Any]) -> dict[int, float]:
    """For each epoch, how far the first-layer weights moved from epoch 0: ||W_e - W_0|| / ||W_0||."""
    if 0 not in history:
        return {}
    w0 = _np(history[0])
    n0 = float(np.linalg.norm(w0)) or 1.0
    return {e: float(np.linalg.norm(_np(w) - w0)) / n0 for e, w in history.items()}


def conv_layer_info(model: nn.Module) -> list[dict[str, Any]]:
    """Every convolution: name, input and output channels, kernel size, and a label for a selectbox."""
    out = []
    for i, (name, m) in enumerate(conv_layers(model)):
        k = m.kernel_size[0]
        out.append({"name": name, "position": i + 1, "in": m.in_channels, "out": m.out_channels, "k": k,
                    "label": f"conv {i + 1} ({name}): {m.in_channels}→{m.out_channels} channels, {k}×{k}"})
    return out


def conv_kernels(model: nn.Module, layer: str, in_channel: int) -> np.ndarray:
    """The kernels of convolution ``layer`` that read input channel ``in_channel``: (C_out, k, k)."""
    for name, m in conv_layers(model):
        if name == layer:
            if not 0 <= in_channel < m.in_channels:
                raise RunError(f"layer {name} has input channels 0-{m.in_channels - 1}, not {in_channel}")
            return _np(m.weight[:, in_channel])
    raise RunError(f"the model has no convolution called {layer!r}")


def strongest_units(weight: Any, n: int) -> np.ndarray:
    """Indices of the ``n`` hidden units with the largest first-layer weight norm (the most tuned)."""
    w = _np(weight).reshape(len(_np(weight)), -1)
    return np.argsort(-np.linalg.norm(w, axis=1), kind="stable")[:n]


def feature_map_tiles(maps: np.ndarray, cap: int = 32) -> tuple[np.ndarray, list[str]]:
    """The first ``cap`` maps of one layer (C, h, w) and their titles (channel numbers)."""
    maps = np.asarray(maps)
    shown = maps[:cap]
    return shown, [f"#{i}" for i in range(len(shown))]


def random_test_index(targets: np.ndarray, letter: int | None, seed: int) -> int:
    """A random image index, of one letter when ``letter`` is given."""
    idx = sample_indices(targets, [letter] if letter is not None else None, 1, seed)
    return int(idx[0]) if len(idx) else 0


# --------------------------------------------------------------------------- the Runs page
def runs_table(runs: Sequence[Run]) -> list[dict[str, Any]]:
    """One row per run for the runs table (accuracy in percent, the creation time as a datetime)."""
    import datetime as dt

    rows = []
    for r in runs:
        s = r.summary()
        created = s.get("created")
        rows.append({
            "name": s["name"], "model": s["model"], "preset": s.get("preset"),
            "networks": s.get("ensemble") or 1, "status": s["status"],
            "epochs": f"{s['epochs']}/{s['target_epochs']}" if s.get("target_epochs") else s["epochs"],
            "batch": s["batch_size"], "lr": s["lr"], "optimizer": s["optimizer"], "schedule": s["schedule"],
            "augment": bool(s["augment"]) if s["augment"] is not None else None,
            "test accuracy": 100 * s["test_accuracy"] if isinstance(s["test_accuracy"], (int, float)) else None,
            "training time": s["train_seconds"] if isinstance(s["train_seconds"], (int, float)) else None,
            "created": dt.datetime.fromtimestamp(created) if isinstance(created, (int, float)) else None,
        })
    return rows


def curve_series(runs: Sequence[Run]) -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[dict[str, Any]]]]:
    """The epoch and batch records of each run, keyed by a unique display name (for the overlays)."""
    epochs: dict[str, list[dict[str, Any]]] = {}
    batches: dict[str, list[dict[str, Any]]] = {}
    names: set[str] = set()
    for r in runs:
        name = r.name
        if name in names:
            name = f"{name} ({r.id})"
        names.add(name)
        records = r.metrics()
        epochs[name] = [x for x in records if x.get("type") == "epoch"]
        batches[name] = [x for x in records if x.get("type") == "batch"]
    return epochs, batches


def onnx_path(run: Run) -> Path | None:
    """The run's ONNX export if it exists and is newer than the weights; else None."""
    p = run.dir / "model.onnx"
    try:
        if p.is_symlink():  # a planted link is never offered for download (read with run.file_bytes)
            return None
        if p.stat().st_mtime >= (run.dir / "model.safetensors").stat().st_mtime:
            return p
    except OSError:
        pass
    return None


def export_onnx(run: Run) -> Path:
    """Export the run to ``<run>/model.onnx``; any failure becomes a RunError with one clear line."""
    from .api import export_onnx as _export

    if not run.has_weights():
        raise RunError(f"run {run.id} has no weights yet; train it for one epoch first")
    try:
        return _export(run)
    except SignlabError:
        raise
    except Exception as err:  # noqa: BLE001 - the exporter raises many kinds; the page shows one line
        raise RunError(f"the ONNX export of run {run.id} failed ({type(err).__name__}: {err})") from err
