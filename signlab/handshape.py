"""Hand shape: the letter read from the 21 hand landmarks, learned from Sign Language MNIST alone.

The image models see a 28x28 grey crop: a real photo's light, background, camera and skin all reach
them. The hand detector's landmarks (:mod:`signlab.hands`) are none of that, only where the wrist,
knuckles and fingertips are. This module turns them into 42 numbers (:func:`features`) and reads a
letter from them with small networks (:class:`HandShapeNet`: :data:`MEMBERS` of them, each from its
own seed, their probabilities averaged) trained on landmarks found in the dataset's own training
images (each upscaled to 224x224, where the landmark model finds a hand in about 97% of them). No
photo of a real hand is used to train them.

On the photo path, :func:`combine` multiplies the image model's probabilities by the hand shape's
(a weighted product: log-probabilities added), so a letter must look right both as a picture and as
a hand. Measured on the three development sets of real photos, with the robust preset
(docs/real-photos.md, "Hand shape"): the shape network alone gets more of them right than the
image model, and the product more than either.

Shipped in ``signlab/assets/hands/``: ``sign_mnist_landmarks.npz`` (the landmarks of every dataset
image, :func:`extract`) and ``handshape.safetensors`` (the networks, :func:`train_net`); both are
rebuilt by ``python -m signlab handshape --extract``, the networks alone in a minute or two by
``python -m signlab handshape``.
"""
from __future__ import annotations

import copy
import json
import math
import threading
import time
import zipfile
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image
from torch import nn

from .errors import DataError, SignlabError
from .fsutil import atomic_write_npz, atomic_write_safetensors, read_bytes_inside
from .hands import ASSETS, HandFound, find_hand
from .labels import NUM_CLASSES

LANDMARKS_FILE = ASSETS / "sign_mnist_landmarks.npz"
WEIGHTS_FILE = ASSETS / "handshape.safetensors"
RUN_FILE = "handshape.safetensors"  # a calibrated run's own network, adapted to its photos' hands
UPSCALE = 224  # dataset images are upscaled to the landmark model's input size before the detector
N_FEATURES = 42  # 21 landmarks, x and y
WRIST, MIDDLE_MCP = 0, 9  # landmark indices: the origin, and the knuckle that sets the scale
HIDDEN = 256
MEMBERS = 5  # networks from seeds SEED.. averaged: one alone read 1-3 points fewer real photos (docs/real-photos.md)
WEIGHT = 0.5  # the hand shape's weight in :func:`combine` (log-probabilities): docs/real-photos.md, "Hand shape"
EPOCHS = 40
SEED = 0


class HandShapeError(SignlabError):
    """A hand-shape network file that cannot be read (a symlink, the wrong size or shape, damaged)."""


# ----------------------------------------------------------------------------- features
def features(landmarks: np.ndarray, left: np.ndarray | bool) -> np.ndarray:
    """Landmarks (N, 21, 2 or 3) in pixels -> features (N, 42): the wrist at the origin, the
    wrist-to-middle-knuckle length 1, left hands mirrored (so either hand reads the same).

    Orientation is kept: some letters differ mainly by it (G and H point sideways, P and K down
    and up). ``left``: (N,) bools, MediaPipe's handedness is "Left"."""
    pts = np.asarray(landmarks, dtype=np.float32)[..., :2]  # (N, 21, 2)
    pts = pts - pts[:, WRIST:WRIST + 1]
    scale = np.linalg.norm(pts[:, MIDDLE_MCP], axis=1)[:, None, None]  # (N, 1, 1)
    pts = pts / np.maximum(scale, 1e-6)
    flip = np.broadcast_to(np.asarray(left, dtype=bool), (len(pts),))
    pts[flip, :, 0] *= -1
    return pts.reshape(len(pts), N_FEATURES)


def hand_features(hand: HandFound | None) -> np.ndarray:
    """One hand's features, (42,); a row of NaN for no hand (how every array here marks one)."""
    if hand is None:
        return np.full(N_FEATURES, np.nan, np.float32)
    return features(hand.landmarks[None], hand.handedness == "Left")[0]


def has_hand(rows: np.ndarray) -> np.ndarray:
    """Which rows of features (N, 42) or shape probabilities (N, 24) hold a hand: (N,) bools."""
    return ~np.isnan(rows).any(axis=-1)


# ----------------------------------------------------------------------------- landmarks of the dataset
def extract(images: np.ndarray, progress: Callable[[int, int], None] | None = None) -> dict[str, np.ndarray]:
    """The hand detector on dataset images (N, 28, 28) uint8, each upscaled to 224x224 (bicubic).

    Returns ``landmarks`` (N, 21, 3) float32 (NaN where no hand was found), ``presence`` (N,)
    (0 where none) and ``left`` (N,) bool. About 15-30 ms an image on one core."""
    n = len(images)
    lm = np.full((n, 21, 3), np.nan, np.float32)
    presence = np.zeros(n, np.float32)
    left = np.zeros(n, bool)
    for i, img in enumerate(images):
        big = np.asarray(Image.fromarray(np.asarray(img, np.uint8)).resize((UPSCALE, UPSCALE), Image.Resampling.BICUBIC))
        hand = find_hand(big)
        if hand is not None:
            lm[i], presence[i], left[i] = hand.landmarks, hand.presence, hand.handedness == "Left"
        if progress and (i % 500 == 0 or i == n - 1):
            progress(i + 1, n)
    return {"landmarks": lm, "presence": presence, "left": left}


def save_landmarks(parts: dict[str, dict[str, np.ndarray]], targets: dict[str, np.ndarray],
                   path: Path = LANDMARKS_FILE) -> None:
    """Write ``{split: extract(...)}`` and the splits' class indices to one compressed .npz (atomic)."""
    arrays: dict[str, np.ndarray] = {}
    for split, d in parts.items():
        arrays[f"{split}_landmarks"] = d["landmarks"].astype(np.float16)  # pixels of 224: 0.1 px is plenty
        arrays[f"{split}_presence"] = d["presence"].astype(np.float16)
        arrays[f"{split}_left"] = d["left"]
        arrays[f"{split}_targets"] = np.asarray(targets[split], np.int8)
    atomic_write_npz(path, arrays)


@lru_cache(maxsize=4)  # calibration reads the training hands each time: read and decompress them once
def load_landmarks(split: str, path: Path = LANDMARKS_FILE) -> tuple[np.ndarray, np.ndarray]:
    """The shipped features and class indices of one split ("train" or "test"), hands found only:
    (N, 42) float32 and (N,) int64 (cached: do not modify them)."""
    try:
        with np.load(path, allow_pickle=False) as z:  # plain arrays only: nothing is unpickled
            lm = z[f"{split}_landmarks"].astype(np.float32)
            ok = z[f"{split}_presence"] >= 0.5
            x = features(lm[ok], z[f"{split}_left"][ok])
            return x, z[f"{split}_targets"][ok].astype(np.int64)
    # not an .npz, a truncated one (zipfile's own errors), pickled objects, missing arrays
    except (OSError, ValueError, KeyError, IndexError, EOFError, zipfile.BadZipFile) as err:
        raise DataError(f"{path}: not a landmarks file signlab wrote ({type(err).__name__}: "
                        f"{str(err).splitlines()[0][:120] if str(err) else 'unreadable'}); "
                        "python -m signlab handshape --extract makes it again") from err


# ----------------------------------------------------------------------------- the network
def _member(hidden: int = HIDDEN) -> nn.Sequential:
    """One network: 42 features -> two hidden layers of ``hidden`` -> 24 letter logits."""
    return nn.Sequential(nn.Linear(N_FEATURES, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, NUM_CLASSES))


class HandShapeNet(nn.Module):
    """42 landmark features -> 24 letter scores: ``members`` networks (:func:`_member`), each trained
    from its own seed, whose probabilities are averaged. Their softmax is that average: forward gives
    its logarithm (one member: that member's logits)."""

    def __init__(self, hidden: int = HIDDEN, members: int = MEMBERS) -> None:
        super().__init__()
        self.members = nn.ModuleList(_member(hidden) for _ in range(members))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 42) -> (B, 24)
        if len(self.members) == 1:
            return self.members[0](x)
        logp = torch.stack([m(x).log_softmax(1) for m in self.members])  # (M, B, 24)
        return torch.logsumexp(logp, 0) - math.log(len(self.members))


def _augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """The same hand a little turned (up to 0.25 rad), scaled (0.9-1.1) and jittered: (B, 42)."""
    pts = x.view(len(x), 21, 2)
    angle = (torch.rand(len(x), generator=g) - 0.5) * 0.5
    scale = 0.9 + 0.2 * torch.rand(len(x), 1, generator=g)
    c, s = torch.cos(angle)[:, None], torch.sin(angle)[:, None]
    px, py = pts[..., 0], pts[..., 1]
    turned = torch.stack([c * px - s * py, s * px + c * py], -1) * scale[:, :, None]
    return (turned + 0.03 * torch.randn(turned.shape, generator=g)).reshape(len(x), N_FEATURES)


def train_net(x: np.ndarray, y: np.ndarray, epochs: int = EPOCHS, seed: int = SEED,
              batch_size: int = 256, lr: float = 1e-3, members: int = MEMBERS) -> HandShapeNet:
    """Train :class:`HandShapeNet` on features (N, 42) and class indices (N,), with :func:`_augment`:
    each member on its own, from seeds ``seed``, ``seed + 1``, ..."""
    net = HandShapeNet(members=0)
    xt, yt = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.long)
    for k in range(members):
        torch.manual_seed(seed + k)  # the member's first weights
        member = _member()
        net.members.append(member)
        g = torch.Generator().manual_seed(seed + k)  # its batches and their copies
        opt = torch.optim.Adam(member.parameters(), lr=lr)
        for _ in range(epochs):
            order = torch.randperm(len(xt), generator=g)
            for i in range(0, len(xt), batch_size):
                idx = order[i:i + batch_size]
                loss = nn.functional.cross_entropy(member(_augment(xt[idx], g)), yt[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    return net.eval()


@torch.no_grad()
def accuracy(net: HandShapeNet, x: np.ndarray, y: np.ndarray) -> float:
    return float((net(torch.as_tensor(x, dtype=torch.float32)).argmax(1).numpy() == y).mean())


def save_net(net: HandShapeNet, info: dict[str, Any], path: Path = WEIGHTS_FILE) -> None:
    """The network's weights as safetensors, ``info`` (what it was trained on) in its metadata (atomic)."""
    state = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
    atomic_write_safetensors(path, state, {"info": json.dumps(info)})


_LOCK = threading.Lock()
_NET: dict[Path, HandShapeNet | None] = {}
MAX_BYTES = 16 * 2**20  # the networks are 0.3 MB each; a bigger file is not one of ours


def _from_state(state: dict[str, torch.Tensor]) -> HandShapeNet:
    """The network of a saved state: its members counted from the keys. A file written before the
    members (one network, keys ``net.*``: a run calibrated before 2026-12-07) is read as one member."""
    if any(k.startswith("net.") for k in state):
        state = {"members.0." + k.removeprefix("net."): v for k, v in state.items()}
    members = {k.split(".")[1] for k in state if k.startswith("members.")}
    net = HandShapeNet(members=max(len(members), 1))
    net.load_state_dict(state)  # strict: a missing, extra or misshapen tensor raises
    return net


def load_net(path: Path = WEIGHTS_FILE) -> HandShapeNet | None:
    """The network in ``path`` (loaded once per process), or None when there is no such file.

    A run's own copy (:data:`RUN_FILE`) is read like its other weights: never through a symlink,
    never pickle; an unreadable file raises :class:`HandShapeError` naming it."""
    path = Path(path)
    with _LOCK:
        if path not in _NET:
            net = None
            if path.is_file() or path.is_symlink():
                from safetensors import SafetensorError
                from safetensors.torch import load as load_bytes

                try:
                    net = _from_state(load_bytes(read_bytes_inside(path.parent, path.name, MAX_BYTES)))
                except (OSError, ValueError, RuntimeError, SafetensorError, SignlabError) as err:
                    raise HandShapeError(f"{path}: cannot read the hand-shape network: {err}") from err
                net.eval()
            _NET[path] = net
        return _NET[path]


def net_for(run_dir: Path | None) -> HandShapeNet | None:
    """The network a run predicts with: its own (a calibrated run, :func:`adapt`) or the shipped one."""
    own = load_net(Path(run_dir) / RUN_FILE) if run_dir is not None else None
    return own if own is not None else load_net()


@torch.no_grad()
def probs_of(net: HandShapeNet | None, feats: np.ndarray) -> np.ndarray:
    """Probabilities (N, 24) for features (N, 42); rows of NaN (no hand) stay NaN, and all do without a net."""
    out = np.full((len(feats), NUM_CLASSES), np.nan, np.float32)
    found = has_hand(feats)
    if net is not None and found.any():
        out[found] = torch.softmax(net(torch.as_tensor(feats[found], dtype=torch.float32)), 1).numpy()
    return out


def adapt(net: HandShapeNet, feats: np.ndarray, targets: np.ndarray, steps: int = 300, seed: int = 0,
          lr: float = 1e-3, landmarks_file: Path | None = None, members: int = 1) -> HandShapeNet:
    """A copy of ``net``'s first ``members`` networks fine-tuned on calibration photos' hands (features
    (N, 42), NaN rows skipped): batches half their augmented features, half the dataset's (so the
    letters without photos are kept). Measured on the development sets with 3 photos a letter
    (docs/real-photos.md): one adapted network read more of the other photos, with the calibrated
    image model, than five (dev2 84.9 against 84.1%, dev3 93.2 against 92.1%), in a fifth of the time."""
    found = has_hand(feats)
    kept, net = net, HandShapeNet(members=0)
    net.members.extend(copy.deepcopy(m) for m in kept.members[:members])  # the others are not copied
    net.train()
    if not found.any():
        return net.eval()
    xc = torch.as_tensor(feats[found], dtype=torch.float32)
    yc = torch.as_tensor(np.asarray(targets)[found], dtype=torch.long)
    xr, yr = (torch.from_numpy(a) for a in load_landmarks("train", landmarks_file or LANDMARKS_FILE))
    for k, member in enumerate(net.members):  # each on its own, as it was trained
        torch.manual_seed(seed + k)
        g = torch.Generator().manual_seed(seed + k)
        opt = torch.optim.Adam(member.parameters(), lr=lr)
        for _ in range(steps):
            ic = torch.randint(0, len(xc), (128,), generator=g)
            ir = torch.randint(0, len(xr), (128,), generator=g)
            loss = nn.functional.cross_entropy(member(_augment(torch.cat([xc[ic], xr[ir]]), g)),
                                               torch.cat([yc[ic], yr[ir]]))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return net.eval()


@torch.no_grad()
def shape_probs(hand: HandFound | None, net: HandShapeNet | None = None) -> np.ndarray | None:
    """The letter probabilities (24,) of a found hand's shape; None without a hand or a network."""
    net = net or load_net()
    if hand is None or net is None:
        return None
    return probs_of(net, hand_features(hand)[None])[0]


def combine(image_probs: np.ndarray, shape: np.ndarray | None, weight: float = WEIGHT) -> np.ndarray:
    """The image model's probabilities times the hand shape's to the power ``weight``, renormalised:
    (24,) or (B, 24). Without a shape, and in rows of NaN (no hand found), the image model's unchanged."""
    if shape is None or weight == 0:
        return image_probs
    logp = np.log(np.clip(image_probs, 1e-12, 1)) + weight * np.log(np.clip(np.nan_to_num(shape, nan=1.0), 1e-12, 1))
    logp -= logp.max(axis=-1, keepdims=True)
    p = np.exp(logp)
    return (p / p.sum(axis=-1, keepdims=True)).astype(np.float32)


# ----------------------------------------------------------------------------- rebuilding the assets
def build(extract_again: bool = False, progress: Callable[[str, int, int], None] | None = None,
          epochs: int | None = None, seed: int = SEED, landmarks_file: Path | None = None,
          weights_file: Path | None = None, members: int = MEMBERS) -> dict[str, Any]:
    """Retrain the network from the landmarks file (``extract_again``, or no such file: first find
    the landmarks in every dataset image again, about 15 minutes on 2 cores) and write the weights.
    Returns what it measured: hands with landmarks, the test hands' accuracy, seconds."""
    landmarks_file = landmarks_file or LANDMARKS_FILE
    weights_file = weights_file or WEIGHTS_FILE
    epochs = epochs or EPOCHS
    t0 = time.perf_counter()
    if extract_again or not landmarks_file.is_file():
        from .data import load_dataset

        ds = load_dataset()
        parts = {name: extract(split.images, (lambda i, n, s=name: progress(s, i, n)) if progress else None)
                 for name, split in (("train", ds.train), ("test", ds.test))}
        save_landmarks(parts, {"train": ds.train.targets, "test": ds.test.targets}, landmarks_file)
        load_landmarks.cache_clear()  # the file was rewritten
    x, y = load_landmarks("train", landmarks_file)
    xt, yt = load_landmarks("test", landmarks_file)
    net = train_net(x, y, epochs=epochs, seed=seed, members=members)
    info = {"train_hands": int(len(y)), "test_hands": int(len(yt)), "test_accuracy": accuracy(net, xt, yt),
            "epochs": epochs, "seed": seed, "members": len(net.members)}
    save_net(net, info, weights_file)
    with _LOCK:
        _NET.pop(weights_file, None)  # the next load_net reads the new weights
    info["seconds"] = time.perf_counter() - t0
    return info
