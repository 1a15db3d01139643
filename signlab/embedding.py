"""A map of what a network learned: the test images' activations at one layer, embedded in 2-D.

:func:`map_layers` lists the layers a map can be drawn from (the raw pixels, every ReLU, the last
hidden layer that feeds the classifier, the output scores); :func:`activations` runs the test
images through the model and keeps one layer's output, (N, D); :func:`embed` reduces it to
(N, 2) with PCA (about a second) or t-SNE (a minute or so on a CPU, with progress reports);
:func:`run_map` does all of that for a run and caches the result in the run folder as
``<run>/embeddings/<layer>-<method>.npz``, keyed by the weights' modification time, so a map is
computed once per run, layer and method (and again after more training).

Convolution outputs (B, C, H, W) are averaged over positions to one value per channel, (B, C):
a map of 57,600-dimensional activations would cost gigabytes and mostly show where the hand is.
No Streamlit here; the Map page draws the result with :func:`signlab.figures.feature_map`.
"""
from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn

from .data import Split
from .errors import RunError, SignlabError
from .fsutil import atomic_write_npz
from .labels import IMAGE_SIZE, LETTERS, NUM_CLASSES, NUM_PIXELS
from .models import first_network, watch
from .numbers import duration, newest_median
from .normalize import normalize_for
from .predict import forward_views, to_float_images
from .runs import Run

METHODS: tuple[str, ...] = ("pca", "tsne")
METHOD_WORDS = {"pca": "PCA", "tsne": "t-SNE"}  # their names in a sentence
# the Map's choice between them: short, a longer label overflowed an 820 px window
METHOD_NAMES = {m: f"{METHOD_WORDS[m]} ({speed})" for m, speed in (("pca", "fast"), ("tsne", "slower"))}
PIXELS, HIDDEN, LOGITS = "pixels", "hidden", "logits"
Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class MapLayer:
    """A layer a map can be made of: its key (``pixels``, ``hidden``, ``logits`` or a module name)."""

    key: str
    label: str
    dims: int


@dataclass(frozen=True)
class FeatureMap:
    """The 2-D map of a split at one layer, with the model's predictions for every point."""

    coords: np.ndarray  # (N, 2) float32
    y_true: np.ndarray  # (N,) class index
    y_pred: np.ndarray  # (N,)
    probs: np.ndarray  # (N, 24) softmax probabilities (float32)
    layer: str
    method: str
    dims: int  # dimensions of the layer before embedding
    seconds: float  # time it took to compute (activations and embedding), as first computed
    cached: bool = False  # read from the run folder rather than computed now

    @property
    def wrong(self) -> np.ndarray:
        """Indices of the misclassified points."""
        return np.flatnonzero(self.y_true != self.y_pred)


# --------------------------------------------------------------------------- layers
def _classifier(net: nn.Module) -> nn.Linear | None:
    """The last linear layer: what turns the last hidden layer into the 24 scores."""
    last = None
    for m in net.modules():
        if isinstance(m, nn.Linear):
            last = m
    return last


def _probe_shapes(net: nn.Module, modules: dict[str, nn.Module]) -> dict[str, tuple[int, ...]]:
    """Output shapes of ``modules`` for one blank image (one forward pass on the CPU)."""
    shapes: dict[str, tuple[int, ...]] = {}

    names = {m: n for n, m in modules.items()}
    dev = next(net.parameters()).device
    was = net.training  # eval keeps batch norm's statistics; a shared model is already in eval mode
    if was:
        net.eval()
    try:
        with watch(list(names), lambda m, _i, out: shapes.setdefault(names[m], tuple(out.shape[1:]))), torch.no_grad():
            net(torch.zeros(2, 1, IMAGE_SIZE, IMAGE_SIZE, device=dev))
    finally:
        if was:
            net.train()
    return shapes


def map_layers(model: nn.Module) -> list[MapLayer]:
    """The layers of ``model`` (an ensemble: its first network) a map can show, input first.

    The raw pixels, each ReLU (a convolution's averaged over positions), the last hidden layer
    (the features the classifier reads; for logistic regression that is the pixels, so it is not
    repeated), and the output scores.
    """
    net = first_network(model)
    relus = {n: m for n, m in net.named_modules() if isinstance(m, nn.ReLU)}
    shapes = _probe_shapes(net, relus)
    clf = _classifier(net)
    out: list[MapLayer] = [MapLayer(PIXELS, f"input pixels ({NUM_PIXELS})", NUM_PIXELS)]
    # one value a channel (a dense layer, or maps pooled down to 1x1, as the lecture ConvNet's last)
    dense_relus = [n for n in relus if len(shapes.get(n, ())) == 1 or shapes.get(n, ())[1:] == (1, 1)]
    # counted in order ("after convolution 2"), the module's name last in brackets: "ReLU
    # features.0.2" first told a student nothing; the name is what the code and the health chart use
    conv_seen = dense_seen = 0
    for n in relus:
        shape = shapes.get(n)
        if not shape:
            continue
        if clf is not None and dense_relus and n == dense_relus[-1] and shape[0] == clf.in_features:
            continue  # the same values as the last hidden layer below
        if len(shape) == 3:
            conv_seen += 1
            # short enough for the Map's box: "…, averaged over positions [features.0.2]" was cut at 1280 px
            label = f"after convolution {conv_seen}: {shape[0]} channels of {shape[1]}×{shape[2]}, each averaged [{n}]"
        else:
            dense_seen += 1
            label = f"hidden layer {dense_seen}: {shape[0]} units [{n}]"
        out.append(MapLayer(n, label, int(shape[0])))
    if clf is not None and clf.in_features != NUM_PIXELS:
        out.append(MapLayer(HIDDEN, f"last hidden layer ({clf.in_features} features the classifier reads)",
                            int(clf.in_features)))
    relu_out = " after the output ReLU" if getattr(net, "output_relu", False) else ""
    out.append(MapLayer(LOGITS, f"output scores ({NUM_CLASSES} logits{relu_out})", NUM_CLASSES))
    return out


def default_layer(model: nn.Module) -> str:
    """The last hidden layer; for logistic regression, which has none, the pixels."""
    keys = [layer.key for layer in map_layers(model)]
    return HIDDEN if HIDDEN in keys else PIXELS


# --------------------------------------------------------------------------- activations
@torch.no_grad()
def activations(model: nn.Module, images: np.ndarray, layer: str, batch_size: int = 512,
                progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One layer's output for every image, and the model's probabilities: ((N, D), (N, 24)).

    ``images``: uint8 (N, 28, 28). The model runs in eval mode on its own device; ``pixels`` are
    the normalised input the model sees, ``logits`` its output (an ensemble's: log mean probability).
    """
    net = first_network(model)
    dev = next(model.parameters()).device
    captured: list[torch.Tensor] = []

    def keep(t: torch.Tensor, pool: bool = True) -> None:
        t = t.detach().float()
        captured.append((t.mean(dim=(2, 3)) if t.ndim == 4 and pool else t.flatten(1)).cpu())  # (B, D)

    watching: Callable[[], Any] = contextlib.nullcontext  # a fresh context for each batch's plain pass
    if layer == HIDDEN:
        clf = _classifier(net)
        if clf is None:
            raise RunError("this model has no linear classifier, so no last hidden layer")
        watching = lambda: watch(clf, lambda _m, inputs: keep(inputs[0]), pre=True)  # noqa: E731
    elif layer not in (PIXELS, LOGITS):
        mods = dict(net.named_modules())
        if layer not in mods:
            raise RunError(f"the model has no layer called {layer!r}")
        watching = lambda: watch(mods[layer], lambda _m, _i, out: keep(out))  # noqa: E731
    was = model.training
    if was:  # a cached, shared model is already in eval mode: toggling it would touch others' passes
        model.eval()
    probs: list[torch.Tensor] = []
    try:
        n = len(images)
        for i in range(0, n, batch_size):
            x = normalize_for(model, to_float_images(images[i:i + batch_size], dev))  # (B, 1, 28, 28)
            with watching():  # the image alone: the one pass whose layer output is a row of the map
                logits = model(x).float()  # (B, 24)
            if getattr(model, "tta", False):  # the prediction Evaluate and Classify make: with its shifts
                logits = forward_views(model, x).float()
            if layer == PIXELS:
                keep(x, pool=False)  # (B, 784): every pixel is a dimension
            elif layer == LOGITS:
                keep(logits)
            probs.append(torch.softmax(logits, 1).cpu())
            if progress:
                progress(min(i + batch_size, n) / max(n, 1), f"running the model: {min(i + batch_size, n):,} of {n:,} images")
    finally:
        if was:
            model.train()
    if not captured:
        return np.zeros((0, 0), np.float32), np.zeros((0, NUM_CLASSES), np.float32)
    return torch.cat(captured).numpy(), torch.cat(probs).numpy()


# --------------------------------------------------------------------------- embedding
def expected_tsne_seconds(n: int) -> float:
    """A rough guess of t-SNE's time on 2 CPU cores, for the progress bar (about n log n)."""
    return max(2.0, 9e-4 * n * np.log2(max(n, 2)))


def measured_tsne_seconds(rows: Iterable[dict[str, Any]], limit: int = 5) -> float | None:
    """How long a t-SNE map of the test set took here: the median of the newest ``limit`` runs'
    ``tsne_seconds`` (kept in the run store by :func:`run_map`); None before the first. CPUs differ
    several-fold (20 s here, the rough guess 83 s), so a page says this, not a constant."""
    return newest_median(rows, "tsne_seconds", least=1e-9, limit=limit)


def embed(features: np.ndarray, method: str = "pca", seed: int = 0, progress: Progress | None = None,
          expected: float | None = None) -> np.ndarray:
    """(N, D) features -> (N, 2) coordinates with ``pca`` or ``tsne``.

    t-SNE first reduces to 50 dimensions with PCA (the usual practice: faster, less noise); it
    reports progress by elapsed time, since scikit-learn's t-SNE has no callback: against
    ``expected`` seconds (measured on this server, :func:`measured_tsne_seconds`) when given, else
    against a rough guess, which the text then does not claim.
    """
    from sklearn.decomposition import PCA

    x = np.asarray(features, dtype=np.float32)
    n, d = x.shape
    if method not in METHODS:
        raise ValueError(f"unknown embedding method {method!r}; choose one of {', '.join(METHODS)}")
    if n < 3:
        return np.zeros((n, 2), np.float32)
    if d < 2:  # nothing to project: a single feature, spread on the x axis
        return np.column_stack([x[:, 0] if d else np.zeros(n), np.zeros(n)]).astype(np.float32)
    if method == "pca":
        return PCA(n_components=2, random_state=seed).fit_transform(x).astype(np.float32)
    from sklearn.manifold import TSNE

    if d > 50:
        x = PCA(n_components=50, random_state=seed).fit_transform(x).astype(np.float32)
    tsne = TSNE(n_components=2, init="pca", learning_rate="auto", perplexity=min(30.0, (n - 1) / 3),
                random_state=seed)
    if progress is None:
        return tsne.fit_transform(x).astype(np.float32)
    result: dict[str, Any] = {}

    def work() -> None:
        try:
            result["y"] = tsne.fit_transform(x)
        except BaseException as err:  # noqa: BLE001 - re-raised in the caller's thread
            result["error"] = err

    worker = threading.Thread(target=work, daemon=True)
    t0, guess = time.perf_counter(), expected or expected_tsne_seconds(n)
    said = f" ({duration(expected)} here before)" if expected else ""
    progress(0.0, f"t-SNE on {n:,} points…{said}")  # at once: a short t-SNE may end before the first tick
    worker.start()
    while worker.is_alive():
        worker.join(0.5)
        elapsed = time.perf_counter() - t0
        progress(min(0.97, elapsed / guess), f"t-SNE on {n:,} points: {elapsed:.0f} s{said}")
    if "error" in result:
        raise result["error"]
    return np.asarray(result["y"], dtype=np.float32)


# --------------------------------------------------------------------------- per run, cached
# 4: the test images' fingerprint kept with the map; 3: probabilities in float32 (2: float16; 2 and
# on: predictions with the model's test-time shifts)
CACHE_VERSION = 4
_FINGERPRINTS: list[tuple[np.ndarray, np.ndarray, str]] = []  # the last few splits' (kept alive: ids stay theirs)


def split_fingerprint(split: Split) -> str:
    """A SHA-256 of a split's images and letters: the map cached for one test set is never served for
    another of the same size (a server restarted with another SIGNLAB_DATA drew the new images under
    the old map's letters). 7 ms for the test set, so the last few are remembered."""
    for images, targets, digest in _FINGERPRINTS:
        if images is split.images and targets is split.targets:
            return digest
    h = hashlib.sha256(np.ascontiguousarray(split.images).tobytes())
    h.update(np.ascontiguousarray(split.targets, dtype=np.int64).tobytes())
    _FINGERPRINTS[:] = [*_FINGERPRINTS[-3:], (split.images, split.targets, h.hexdigest())]
    return _FINGERPRINTS[-1][2]


def cache_path(run: Run, layer: str, method: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in layer)
    return run.dir / "embeddings" / f"{safe}-{method}.npz"


def cached_map(run: Run, layer: str, method: str, split: Split) -> FeatureMap | None:
    """The cached map of ``run`` if it was made from the current weights for these images (``split``,
    the test set); else None."""
    path = cache_path(run, layer, method)
    n = len(split)
    try:
        with np.load(path, allow_pickle=False) as z:  # plain arrays only: nothing is unpickled
            if float(z["weights_mtime"]) != run.weights_mtime() or int(z.get("version", 1)) != CACHE_VERSION:
                return None
            if str(z["data"]) != split_fingerprint(split):  # another test set, of the same size or not
                return None
            if any(len(z[k]) != n for k in ("coords", "y_true", "y_pred", "probs")):
                return None  # a map that does not fit the test set (as an older version could write): remade
            return FeatureMap(z["coords"], z["y_true"], z["y_pred"], z["probs"].astype(np.float32), layer,
                              method, int(z["dims"]), float(z["seconds"]), cached=True)
    except (OSError, KeyError, ValueError):
        return None


def run_map(run: Run, split: Split, layer: str | None = None, method: str = "pca", model: nn.Module | None = None,
            progress: Progress | None = None, seed: int = 0, expected: float | None = None,
            keep: bool = True) -> FeatureMap:
    """The map of ``split`` (the test set) at ``layer`` of the run's model, from the cache or computed.

    ``layer`` None: the last hidden layer (:func:`default_layer`). ``model``: the loaded model, if
    the caller has it (else it is loaded from the run). The result is cached in the run folder unless
    ``keep`` is False (a classmate or an instructor only looking: the file would count against the
    owner's disk quota). ``expected``: t-SNE's measured seconds on this server, for its progress
    (:func:`embed`).
    """
    mtime = run.weights_mtime()
    model = model if model is not None else run.load_model("cpu")
    layer = layer or default_layer(model)
    hit = cached_map(run, layer, method, split)
    if hit is not None:
        return hit
    t0 = time.perf_counter()
    stage = (lambda lo, hi: (lambda f, text: progress(lo + (hi - lo) * f, text))) if progress else (lambda lo, hi: None)
    run_share = 0.8 if method == "pca" else 0.15
    feats, probs = activations(model, split.images, layer, progress=stage(0.0, run_share))
    if len(feats) != len(split) or len(probs) != len(split):  # never draw, or cache, a map of other images
        raise RunError(f"the {layer!r} layer gave {len(feats):,} rows for {len(split):,} images")
    if progress:
        progress(run_share, f"embedding {feats.shape[1]}-dimensional activations with {method.upper()}…")
    coords = embed(feats, method, seed=seed, progress=stage(run_share, 1.0), expected=expected)
    # probabilities as the cache keeps them (float32): a map computed now and the same map read back
    # later must draw the very same figure, or Streamlit takes it for a new chart and drops a click.
    # Not float16 (half the file): two letters closer than its resolution became a tie, and the panel
    # named the prediction H beside a tie note and a top-5 chart that put G first
    fm = FeatureMap(coords.astype(np.float32), np.asarray(split.targets), probs.argmax(1),
                    probs.astype(np.float32), layer, method, int(feats.shape[1]),
                    time.perf_counter() - t0)
    arrays = dict(coords=fm.coords, y_true=fm.y_true, y_pred=fm.y_pred, probs=fm.probs,
                  dims=np.int64(fm.dims), seconds=np.float64(fm.seconds), weights_mtime=np.float64(mtime),
                  version=np.int64(CACHE_VERSION), data=np.str_(split_fingerprint(split)))

    try:  # parents=False: a run deleted (in another tab) while its map was computed is not made again
        if keep:
            atomic_write_npz(cache_path(run, layer, method), arrays, parents=False)
    except (OSError, SignlabError):
        if not run.dir.is_dir():
            raise RunError(f"run {run.id} was deleted while its map was being computed; pick another run") from None
        # else a read-only runs folder or a full disk: the map is simply not cached
    if method == "tsne":  # the time it took, where the Map page reads it for the next one (one query, no files)
        try:
            run.store.annotate(run.id, tsne_seconds=float(fm.seconds))
        except SignlabError:
            pass  # the run left the store meanwhile: nothing to keep
    return fm


# --------------------------------------------------------------------------- what the page asks
def point_indices(points: Sequence[dict[str, Any]] | None) -> list[int]:
    """Image indices of selected map points: each point's ``customdata`` is its image index.

    Streamlit hands ``customdata`` over as a number, a one-element list, or ``{"0": index}``.
    """
    out: list[int] = []
    for p in points or []:
        cd = p.get("customdata") if isinstance(p, dict) else None
        if isinstance(cd, dict):
            cd = cd.get("0", cd.get(0))
        if isinstance(cd, (list, tuple)):
            cd = cd[0] if cd else None
        try:
            i = int(cd)
        except (TypeError, ValueError):
            continue
        if i >= 0 and i not in out:
            out.append(i)
    return out


def spread_sample(coords: np.ndarray, indices: Sequence[int], limit: int = 48) -> list[int]:
    """At most ``limit`` of ``indices``, spread over the region they cover (a grid, one per cell).

    For the thumbnails drawn on a zoomed region: neighbouring points would hide each other.
    """
    idx = np.asarray(list(indices), dtype=np.int64)
    if len(idx) <= limit:
        return idx.tolist()
    pts = coords[idx]
    lo, hi = pts.min(0), pts.max(0)
    side = int(np.ceil(np.sqrt(limit)))
    cells = np.floor((pts - lo) / np.maximum(hi - lo, 1e-9) * (side - 1e-6)).astype(int)
    _, first = np.unique(cells[:, 0] * side + cells[:, 1], return_index=True)
    chosen = idx[np.sort(first)]
    return chosen[:limit].tolist()


@dataclass(frozen=True)
class Pile:
    """Many images on one spot of a map: the layer gave them the same values (the lecture ConvNet's
    output ReLU cuts every score of hundreds of images to 0, and they all land on one point)."""

    x: float
    y: float
    mask: np.ndarray  # (N,) bool: the images on it
    uniform: bool  # most of their predictions give every letter the same probability (all scores equal)

    @property
    def count(self) -> int:
        return int(self.mask.sum())


PILE_SHARE = 0.05  # a spot with at least this share of the images is named on the map


def pile(coords: np.ndarray, probs: np.ndarray | None = None, min_share: float = PILE_SHARE) -> Pile | None:
    """The spot holding the most images, when it holds at least ``min_share`` of them; None else.
    Points count as one spot within a thousandth of the map's span (equal inputs give equal PCA
    coordinates, and t-SNE puts them within a hair of each other)."""
    coords = np.asarray(coords, dtype=float)
    if len(coords) < 20:
        return None
    span = float(np.ptp(coords, axis=0).max())
    if not np.isfinite(span) or span <= 0:
        return None
    cells = np.round(coords / (span * 1e-3)).astype(np.int64)
    _, inverse, counts = np.unique(cells, axis=0, return_inverse=True, return_counts=True)
    top = int(counts.argmax())
    if counts[top] < max(2, min_share * len(coords)):
        return None
    mask = inverse.ravel() == top
    # "most": the test-time shifts of a few images give a score or two above 0
    uniform = probs is not None and bool(np.mean(np.ptp(np.asarray(probs)[mask], axis=1) < 1e-3) > 0.5)
    x, y = np.median(coords[mask], axis=0)
    return Pile(float(x), float(y), mask, uniform)


def class_centres(coords: np.ndarray, y: np.ndarray, away: np.ndarray | None = None
                  ) -> dict[int, tuple[float, float]]:
    """The median position of each letter's points (where its label goes on the map). ``away``: points
    a label should not sit on (a pile's), left out of a letter's median unless they are all it has;
    else a dozen letters' labels stacked on the pile and hid it."""
    out = {}
    for k in np.unique(y):
        mine = y == k
        if away is not None and (mine & ~away).any():
            mine = mine & ~away
        out[int(k)] = (float(np.median(coords[mine, 0])), float(np.median(coords[mine, 1])))
    return out


def map_summary(fm: FeatureMap) -> dict[str, Any]:
    """Numbers for the page's caption: points, mistakes, letters predicted, the most predicted letter."""
    counts = np.bincount(fm.y_pred, minlength=NUM_CLASSES)
    top = int(counts.argmax())
    return {"points": int(len(fm.y_true)), "wrong": int(len(fm.wrong)),
            "accuracy": float((fm.y_true == fm.y_pred).mean()) if len(fm.y_true) else 0.0,
            "letters_predicted": int((counts > 0).sum()), "top_letter": LETTERS[top],
            "top_share": float(counts[top] / max(len(fm.y_pred), 1))}
