"""Predictions for single images and the views that show why a model decided.

All functions take 28x28 float images in [0, 1] (what :func:`signlab.preprocess.prepare`
returns) and a model in eval mode; normalisation happens inside, as in training.

- :func:`predict` / :func:`top_k`: probabilities for the 24 letters; :func:`predict_prepared` for
  one photo or drawing, with test-time augmentation for robust runs.
- :func:`saliency_map`: Grad-CAM on the last convolution for convolutional models (upsampled to
  28x28), or for ``logreg`` the letter's weight template times the input.
- :func:`occlusion_map`: the letter's probability while a grey patch slides over the image;
  :func:`occlude` paints one such patch.
- :func:`verdict` / :class:`Verdict`: the reading of one probability vector (its top letters and how
  far to trust them), and :func:`read_sign`, the whole pipeline for one prepared input, which the
  Classify page and ``predict`` share.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import handshape as _handshape
from .labels import IMAGE_SIZE, LETTERS
from .normalize import equalize, input_norm, normalize_for
from .models import LogisticRegression, conv_layers, first_network, watch
from .numbers import percent_text
from .predict import forward_views
from .preprocess import Prepared, looks_unusual, zoomed_views


def _batch(images: np.ndarray | list[np.ndarray], model: nn.Module) -> torch.Tensor:
    dev = next(model.parameters()).device
    x = torch.as_tensor(np.asarray(images, dtype=np.float32), device=dev)
    return x.reshape(-1, 1, IMAGE_SIZE, IMAGE_SIZE)  # (B, 1, 28, 28)


@torch.no_grad()
def predict(model: nn.Module, images: np.ndarray | list[np.ndarray], mirror: bool = False) -> np.ndarray:
    """Softmax probabilities (B, 24) for 28x28 images in [0, 1].

    ``mirror``: test-time augmentation for models trained on mirrored images too (the robust
    preset): average the probabilities of each image and its mirror image, so a sign made with
    either hand counts the same.
    """
    x = _batch(images, model)
    probs = torch.softmax(forward_views(model, normalize_for(model, x)).float(), dim=1)
    if mirror:
        probs = (probs + torch.softmax(forward_views(model, normalize_for(model, x.flip(3))).float(), dim=1)) / 2
    return probs.cpu().numpy()


def predict_prepared(model: nn.Module, prep: Prepared, tta: bool = False) -> np.ndarray:
    """Probabilities (24,) for one prepared image, the way ``predict`` and the Classify page ask.

    ``tta`` (robust runs: trained on mirrored, zoomed-out hands): average over the crop at the zooms
    of :data:`signlab.preprocess.TTA_ZOOMS` (:func:`signlab.preprocess.zoomed_views`), each with its
    mirror image: ``TTA_VIEWS`` views.
    """
    views = zoomed_views(prep) if tta else prep.image28[None]  # (V, 28, 28)
    return predict(model, views, mirror=tta).mean(0)


# Top probability under which the page and `predict` say the model is not sure. Tuned on the
# real-photo dev set with the robust preset (seeds 0-3): of the thresholds 0.35-0.65, 0.5 separated
# wrong from right predictions best or within 0.01 of it (it flags 43-55% of the wrong ones and
# 13-28% of the right; AUROC of the confidence 0.55-0.68). Adding "the ensemble's members
# disagree" did not help.
UNSURE_BELOW = 0.5
# Photos (the Classify page's uploads and camera, `predict`) get two tiers, set on the three
# development sets with the robust preset and the detector crop (docs/real-photos.md): under
# PHOTO_UNSURE_BELOW "not sure" (the threshold with the best balance of wrong answers warned and
# right ones spared, averaged over the three sets); under PHOTO_DOUBT_BELOW "may well be wrong":
# there, 31-66% of the answers were wrong, against 17-50% above it. The top probability separated
# wrong from right answers better than the margin to the second letter, the agreement of the four
# views or their lowest probability (AUROC 0.66-0.75 over the three sets).
PHOTO_UNSURE_BELOW = 0.5
PHOTO_DOUBT_BELOW = 0.8
# Where the hand's shape weighed in (signlab.handshape.combine: the product of two readings), the
# top probability runs higher, so its tiers sit higher; set on the same sets (robust seeds 0-2,
# docs/real-photos.md, "Hand shape"): under SHAPE_UNSURE_BELOW 68-73% of the answers were wrong on
# each set, from there to SHAPE_DOUBT_BELOW 44-75%, above it 3-40%. Together they warn 51 / 84 / 83%
# of the wrong answers and 12 / 35 / 13% of the right ones (dev / dev2 / dev3), against 69 / 84 / 76%
# and 57 / 58 / 34% for the image model alone with its tiers. AUROC of the top probability 0.68 /
# 0.81 / 0.91 (image model alone 0.67 / 0.72 / 0.79).
SHAPE_UNSURE_BELOW = 0.8
SHAPE_DOUBT_BELOW = 0.95
# Below this probability of a letter the page shows no Grad-CAM for it: the map is scaled to its own
# maximum, so a letter the model gives 0.0% would otherwise glow as bright as the prediction.
NO_EVIDENCE_BELOW = 0.01


def photo_tiers(shape: bool) -> tuple[float, float]:
    """A photo's (not sure, may well be wrong) thresholds: with the hand shape weighed in, or not."""
    return (SHAPE_UNSURE_BELOW, SHAPE_DOUBT_BELOW) if shape else (PHOTO_UNSURE_BELOW, PHOTO_DOUBT_BELOW)


def doubt(probs: np.ndarray, photo: bool = False, shape: bool = False) -> str | None:
    """Why the prediction should not be trusted, in words, or None.

    "the model is not sure": the top probability under :data:`UNSURE_BELOW` (drawings, dataset
    images) or the photo's first tier (:func:`photo_tiers`; ``shape``: the hand shape weighed in).
    "the model may well be wrong": a photo's top probability under its second tier, where on real
    photos about half the answers were wrong (such as V taken for F at 74%).
    """
    p = float(np.max(probs))
    unsure, doubtful = photo_tiers(shape) if photo else (UNSURE_BELOW, 0.0)
    if p < unsure:
        return "the model is not sure"
    if photo and p < doubtful:
        return "the model may well be wrong"
    return None


def model_view(model: nn.Module, image: np.ndarray) -> np.ndarray:
    """The 28x28 image as the model's normalisation leaves it, rescaled to [0, 1] for display.

    Standardisation only shifts and scales the grey levels, so the image looks the same; a run
    trained with ``input_norm="equalize"`` sees its histogram-equalised version, which can look
    quite different for a dim photo.
    """
    if input_norm(model) != "equalize":
        return np.asarray(image, dtype=np.float32)
    x = torch.as_tensor(np.asarray(image, dtype=np.float32)).reshape(1, 1, IMAGE_SIZE, IMAGE_SIZE)
    return equalize(x)[0, 0].numpy()


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
        xn = normalize_for(model, x)[0, 0]  # (28, 28)
        w = model.linear.weight[target].detach().reshape(IMAGE_SIZE, IMAGE_SIZE)
        contrib = (w * xn).detach().cpu().numpy()
        m = float(np.abs(contrib).max()) or 1.0
        return contrib / m  # signed, in [-1, 1]
    convs = conv_layers(model)
    if not convs:  # an MLP: plain input-gradient saliency
        xn = normalize_for(model, x).requires_grad_(True)
        with torch.enable_grad():
            model(xn)[0, target].backward(inputs=[xn])  # the input's gradient only: the model may be shared
        sal = xn.grad[0, 0].abs().cpu().numpy()
        return sal / (sal.max() or 1.0)
    store: dict[str, torch.Tensor] = {}
    layer, rectify = _cam_layer(model)

    def hook(_m, _i, out):
        out.retain_grad()
        store["a"] = out

    with watch(layer, hook), torch.enable_grad():
        # no zero_grad: the model may be shared with other sessions, and only the activation's
        # own gradient (retain_grad above) is read, never the weights'
        score = model(normalize_for(model, x))[0, target]
        score.backward(inputs=[store["a"]])
    a, g = store["a"], store["a"].grad  # (1, C, h, w)
    if rectify:  # relu(a) is what the lecture's order passes on; the gradient is the same
        a = F.relu(a)
    weights = g.mean(dim=(2, 3), keepdim=True)  # (1, C, 1, 1)
    cam = F.relu((weights * a).sum(1, keepdim=True))  # (1, 1, h, w)
    cam = F.interpolate(cam, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False)[0, 0]
    cam = cam.detach().cpu().numpy()
    return cam / (cam.max() or 1.0)


def cam_size(model: nn.Module) -> tuple[int, int] | None:
    """The (h, w) of the maps Grad-CAM reads (:func:`_cam_layer`), before they are stretched over the
    28x28 input; None for a model without convolutions."""
    if isinstance(model, LogisticRegression) or not conv_layers(model):
        return None
    layer, _ = _cam_layer(model)
    seen: dict[str, tuple[int, int]] = {}

    def hook(_m, _i, out):
        seen["hw"] = tuple(out.shape[-2:])

    with watch(layer, hook), torch.no_grad():
        model(normalize_for(model, _batch([np.zeros((IMAGE_SIZE, IMAGE_SIZE), np.float32)], model)))
    return seen.get("hw")


def _cam_layer(model: nn.Module) -> tuple[nn.Module, bool]:
    """The layer Grad-CAM reads, and whether its maps still need a ReLU: the activation right
    after the last convolution.

    Grad-CAM is defined on the feature maps a network passes on, so a convolution followed by
    batch norm and ReLU is read after the ReLU; a convolution with nothing after it, as is. A
    convolution followed by max-pool and then ReLU (the lecture ConvNet, which pools first) is
    read at the convolution and rectified here: the maps of conv -> ReLU, the lecture's order,
    without the pooling that would leave a single position. (The gradient differs only where a
    pooling window holds no positive value: zero here, in the lecture's order handed to the
    window's first position by max-pool's tie-break; the maps agree within 0.06.)
    """
    # an ensemble: its first network, as on the Kernels page and in the feature maps
    leaves = [m for m in first_network(model).modules() if not list(m.children())]
    last_conv = max(i for i, m in enumerate(leaves) if isinstance(m, nn.Conv2d))
    after = leaves[last_conv + 1:last_conv + 3]
    if len(after) == 2 and isinstance(after[0], nn.MaxPool2d) and isinstance(after[1], nn.ReLU):
        return leaves[last_conv], True
    for m in after:
        if isinstance(m, (nn.ReLU, nn.GELU, nn.SiLU, nn.LeakyReLU)):
            return m, False
        if not isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            break
    return leaves[last_conv], False


def occlude(image: np.ndarray, top: int, left: int, patch: int = 7, fill: float | None = None) -> np.ndarray:
    """A copy of a 28x28 image with a ``patch`` x ``patch`` square at (top, left) painted over.

    The square takes the image's mean shade unless ``fill`` is given: after the per-image
    standardisation that is zero, "no evidence either way".
    """
    img = np.array(image, dtype=np.float32)
    top, left = int(np.clip(top, 0, IMAGE_SIZE - patch)), int(np.clip(left, 0, IMAGE_SIZE - patch))
    img[top:top + patch, left:left + patch] = float(image.mean()) if fill is None else fill
    return img


@torch.no_grad()
def occlusion_map(model: nn.Module, image: np.ndarray, target: int, patch: int = 7, stride: int = 2) -> np.ndarray:
    """Probability of ``target`` when a patch of the image's mean shade covers each position.

    Returns (28, 28): each pixel holds the mean probability over the patches that covered it, so
    dark areas are the parts the decision depends on.
    """
    patch, stride = int(min(max(patch, 1), IMAGE_SIZE)), max(int(stride), 1)
    starts = list(range(0, IMAGE_SIZE - patch + 1, stride))
    if starts[-1] != IMAGE_SIZE - patch:  # the last row and column are covered too
        starts.append(IMAGE_SIZE - patch)
    positions = [(t, l) for t in starts for l in starts]
    batch = np.stack([occlude(image, t, l, patch) for t, l in positions])  # (P, 28, 28)
    probs = predict(model, batch)[:, target]  # (P,)
    total, count = np.zeros((IMAGE_SIZE, IMAGE_SIZE)), np.zeros((IMAGE_SIZE, IMAGE_SIZE))
    for p, (t, l) in zip(probs, positions):
        total[t:t + patch, l:l + patch] += p
        count[t:t + patch, l:l + patch] += 1
    return (total / np.maximum(count, 1)).astype(np.float32)


@torch.no_grad()
def feature_maps(model: nn.Module, image: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """The output of every convolution for one image: [(layer name, (C, h, w) array)]."""
    out: list[tuple[str, np.ndarray]] = []
    names = {m: name for name, m in conv_layers(model)}
    with watch(list(names), lambda m, _i, o: out.append((names[m], o[0].float().cpu().numpy()))):
        model(normalize_for(model, _batch([image], model)))
    return out


# --------------------------------------------------------------------------- the verdict on one input
@dataclass(frozen=True)
class Verdict:
    """What the model says about one input: its top letters and how far to trust them."""

    index: int  # the predicted letter's index
    letter: str
    confidence: float
    top: tuple[dict[str, Any], ...]
    kind: str  # "unusual" (far from the training data), "unsure", "doubt" (a photo, may be wrong) or "sure"
    unusual: tuple[str, ...] = ()
    worry: str | None = None  # inference.doubt's words
    warnings: tuple[str, ...] = ()  # predict --json's warnings
    headline: str = ""
    advice: str = ""  # the warning box's text, empty when "sure"
    probs: np.ndarray = field(default=None, repr=False, compare=False)  # type: ignore[assignment]
    # the hand-shape network's own reading of the detector's landmarks (signlab.handshape), when it
    # weighed in: its probabilities (24,), and the image model's alone before they were combined
    shape: np.ndarray | None = field(default=None, repr=False, compare=False)
    image: np.ndarray | None = field(default=None, repr=False, compare=False)


def verdict(probs: np.ndarray, *, photo: bool, unusual: Sequence[str] = (), k: int = 5,
            shape: bool = False) -> Verdict:
    """The Classify page's and ``predict``'s reading of one probability vector (``shape``: the hand
    shape weighed in, so the photo's warning tiers are those set for the combined probabilities)."""
    probs = np.asarray(probs, dtype=float)
    top = tuple(top_k(probs, max(k, 2)))
    pred = int(np.argmax(probs))
    conf = float(probs[pred])
    worry = doubt(probs, photo=photo, shape=shape)
    warnings = list(unusual) + ([f"{worry}: its best letter gets {percent_text(conf, 0)}"] if worry else [])
    second = top[1]
    letter = LETTERS[pred]
    if unusual:
        kind, headline = "unusual", f"A guess, not to be trusted: {letter} ({percent_text(conf, 0)})"
        advice = ("**This input looks far from the training data**, so the letter is a guess, not an answer:\n"
                  + "\n".join(f"- {r}" for r in unusual))
    elif worry == "the model is not sure":
        kind, headline = "unsure", f"Not sure: perhaps {letter} ({percent_text(conf, 0)})"
        tip = ("Move the square so the hand fills it, add light, or try another angle." if photo
               else "A drawing is not a photo: the model learned from photographs of hands.")
        advice = (f"**{worry.capitalize()}.** Its best letter, {letter}, gets {percent_text(conf, 0)}; "
                  f"{second['letter']} comes next with {percent_text(second['probability'], 0)}. {tip}")
    elif worry:
        kind, headline = "doubt", f"Perhaps {letter} ({percent_text(conf, 0)})"
        low, high = photo_tiers(shape)
        advice = (f"**{worry.capitalize()}.** On real photos of other people's hands, about half of the answers "
                  f"given with {percent_text(low, 0)}–{percent_text(high, 0)} were wrong; {second['letter']} "
                  f"comes next with {percent_text(second['probability'], 0)}.")
    else:
        kind, headline, advice = "sure", f"The model says **{letter}** ({percent_text(conf, 0)})", ""
    return Verdict(pred, letter, conf, top[:k], kind, tuple(unusual), worry, tuple(warnings), headline, advice, probs)


def read_sign(model: Any, prepared: Prepared, *, photo: bool, tta: bool = False, k: int = 5,
              shape: bool = True, run_dir: Any = None) -> Verdict:
    """The whole prediction pipeline for one prepared input: probabilities (several views for robust runs),
    the checks for inputs unlike the training data, and the verdict. A hand the detector found is a
    photo of a hand whatever its background, so the image checks are only for the rest.

    ``shape``: for a photo whose hand the detector found, weigh in the hand-shape network's reading
    of its landmarks (:func:`signlab.handshape.combine`): the run's own network when calibration
    adapted one (``run_dir``), else the shipped one."""
    image = predict_prepared(model, prepared, tta=tta)
    unusual = [] if prepared.hand is not None else looks_unusual(prepared.image28)
    shape_p = (_handshape.shape_probs(prepared.hand, _handshape.net_for(run_dir))
               if (photo and shape and prepared.hand is not None) else None)
    v = verdict(_handshape.combine(image, shape_p), photo=photo, unusual=unusual, k=k, shape=shape_p is not None)
    return replace(v, shape=shape_p, image=image) if shape_p is not None else v
