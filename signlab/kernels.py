"""A model's weights as arrays to look at: first-layer tiles, convolution kernels, how far they moved.

What the Kernels page and the Guided tour show; :mod:`signlab.figures` draws the arrays.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from torch import nn

from .errors import RunError
from .labels import IMAGE_SIZE, NUM_PIXELS
from .models import conv_layers, first_weights


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
    if w.ndim == 2 and w.shape[1] == NUM_PIXELS:
        return w.reshape(-1, IMAGE_SIZE, IMAGE_SIZE)
    raise RunError(f"cannot show first-layer weights of shape {tuple(w.shape)} as images")


def kernel_change(history: dict[int, Any]) -> dict[int, float]:
    """For each epoch, how far the first-layer weights moved from epoch 0: ||W_e - W_0|| / ||W_0||."""
    if 0 not in history:
        return {}
    w0 = _np(history[0])
    n0 = float(np.linalg.norm(w0)) or 1.0
    return {e: float(np.linalg.norm(_np(w) - w0)) / n0 for e, w in history.items()}


def conv_layer_info(model: nn.Module) -> list[dict[str, Any]]:
    """Every convolution: name, input and output channels, kernel size, whether it is frozen (fixed
    before training, as s2net's whitening layer, not learned), and a label for a selectbox."""
    out = []
    for i, (name, m) in enumerate(conv_layers(model)):
        k = m.kernel_size[0]
        out.append({"name": name, "position": i + 1, "in": m.in_channels, "out": m.out_channels, "k": k,
                    "frozen": not m.weight.requires_grad,
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
