"""Predictions for single images and the views that show why a model decided.

All functions take 28x28 float images in [0, 1] (what :func:`signlab.preprocess.prepare`
returns) and a model in eval mode; normalisation happens inside, as in training.

- :func:`predict` / :func:`top_k`: probabilities for the 24 letters.
- :func:`saliency_map`: Grad-CAM on the last convolution for convolutional models (upsampled to
  28x28), or for ``logreg`` the letter's weight template times the input.
- :func:`occlusion_map`: the letter's probability while a grey patch slides over the image.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .labels import LETTERS, normalize
from .models import LogisticRegression, conv_layers


def _batch(images: np.ndarray | list[np.ndarray], model: nn.Module) -> torch.Tensor:
    dev = next(model.parameters()).device
    x = torch.as_tensor(np.asarray(images, dtype=np.float32), device=dev)
    return x.reshape(-1, 1, 28, 28)  # (B, 1, 28, 28)


@torch.no_grad()
def predict(model: nn.Module, images: np.ndarray | list[np.ndarray]) -> np.ndarray:
    """Softmax probabilities (B, 24) for 28x28 images in [0, 1]."""
    x = _batch(images, model)
    return torch.softmax(model(normalize(x)).float(), dim=1).cpu().numpy()


def top_k(probs: np.ndarray, k: int = 5) -> list[dict[str, Any]]:
    """The ``k`` most probable letters of one probability vector."""
    order = np.argsort(-probs)[:k]
    return [{"letter": LETTERS[i], "probability": float(probs[i])} for i in order]


def saliency_map(model: nn.Module, image: np.ndarray, target: int) -> np.ndarray:
    """Where the evidence for letter ``target`` lies: (28, 28), scaled to [0, 1] (or signed for logreg).

    Grad-CAM: the last convolution's feature maps weighted by the gradient of the letter's score,
    kept where positive. For logistic regression the score is a sum over pixels of weight x
    input, so that product *is* the explanation (positive: pixel votes for the letter).
    """
    x = _batch([image], model)
    if isinstance(model, LogisticRegression):
        xn = normalize(x)[0, 0]  # (28, 28)
        w = model.linear.weight[target].detach().reshape(28, 28)
        contrib = (w * xn).detach().cpu().numpy()
        m = float(np.abs(contrib).max()) or 1.0
        return contrib / m  # signed, in [-1, 1]
    convs = conv_layers(model)
    if not convs:  # an MLP: plain input-gradient saliency
        xn = normalize(x).requires_grad_(True)
        model(xn)[0, target].backward()
        sal = xn.grad[0, 0].abs().cpu().numpy()
        return sal / (sal.max() or 1.0)
    store: dict[str, torch.Tensor] = {}
    layer = convs[-1][1]

    def hook(_m, _i, out):
        out.retain_grad()
        store["a"] = out

    handle = layer.register_forward_hook(hook)
    try:
        model.zero_grad(set_to_none=True)
        with torch.enable_grad():
            score = model(normalize(x))[0, target]
            score.backward()
    finally:
        handle.remove()
    a, g = store["a"], store["a"].grad  # (1, C, h, w)
    weights = g.mean(dim=(2, 3), keepdim=True)  # (1, C, 1, 1)
    cam = F.relu((weights * a).sum(1, keepdim=True))  # (1, 1, h, w)
    cam = F.interpolate(cam, size=(28, 28), mode="bilinear", align_corners=False)[0, 0]
    cam = cam.detach().cpu().numpy()
    return cam / (cam.max() or 1.0)


@torch.no_grad()
def occlusion_map(model: nn.Module, image: np.ndarray, target: int, patch: int = 7, stride: int = 2) -> np.ndarray:
    """Probability of ``target`` when a patch of the image's mean shade covers each position.

    Returns (28, 28): each pixel holds the mean probability over the patches that covered it, so
    dark areas are the parts the decision depends on.
    """
    img = np.asarray(image, dtype=np.float32)
    fill = float(img.mean())
    positions = [(t, l) for t in range(0, 28 - patch + 1, stride) for l in range(0, 28 - patch + 1, stride)]
    batch = np.repeat(img[None], len(positions), axis=0)  # (P, 28, 28)
    for i, (t, l) in enumerate(positions):
        batch[i, t:t + patch, l:l + patch] = fill
    probs = predict(model, batch)[:, target]  # (P,)
    total, count = np.zeros((28, 28)), np.zeros((28, 28))
    for p, (t, l) in zip(probs, positions):
        total[t:t + patch, l:l + patch] += p
        count[t:t + patch, l:l + patch] += 1
    return (total / np.maximum(count, 1)).astype(np.float32)


@torch.no_grad()
def feature_maps(model: nn.Module, image: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """The output of every convolution for one image: [(layer name, (C, h, w) array)]."""
    out: list[tuple[str, np.ndarray]] = []
    handles = [m.register_forward_hook(lambda _m, _i, o, n=name: out.append((n, o[0].float().cpu().numpy())))
               for name, m in conv_layers(model)]
    try:
        model(normalize(_batch([image], model)))
    finally:
        for h in handles:
            h.remove()
    return out
