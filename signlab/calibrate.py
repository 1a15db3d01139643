"""Teach a run your hand: adapt it to a few of your own photos per letter, saved as a new run.

A model trained on Sign Language MNIST has only seen 1,704 photos of a few hands in one setting,
so a new hand, room and camera look unlike all of them. A few photos of *your* hand per letter
fix most of that. This module holds the whole feature as plain functions:

- :func:`load_folder` reads a ``<LETTER>/<image>`` folder into :class:`Photo` records (clear
  :class:`~signlab.errors.SignlabError` messages for bad input);
- :func:`prepare_photos` sends them through the one preprocessing path of prediction
  (:func:`signlab.preprocess.prepare`) and takes the views prediction averages over;
- :func:`adapt` returns a copy of the model adapted to them (see :data:`METHODS`);
- :func:`calibrate_run` does all of it for a saved run and saves the result as a new run whose
  parent is the chosen one, with the photos kept in ``<run>/calibration/<LETTER>/``;
- :func:`calibration_info` and :func:`delete_photos` read the record and drop the kept photos.

The adapted model keeps its architecture (only weights change), so ``predict``, the Classify
page and the ONNX export work on the new run like on any other.
"""
from __future__ import annotations

import copy
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from . import augment as aug
from . import handshape
from . import hands
from .access import local_user
from .config import CALIBRATION_METHODS, DEFAULT_CALIBRATION_METHOD
from .data import Dataset, load_dataset
from .errors import ImageError, SignlabError
from .events import Logged
from .evaluate import evaluate_model
from .fsutil import atomic_write, atomic_write_bytes, atomic_write_json, atomic_write_safetensors, read_json_inside
from .inference import predict
from .labels import IMAGE_SIZE, LETTERS
from .models import Ensemble, watch
from .normalize import normalize_for
from .predict import to_float_images
from .preprocess import (MAX_FILE_BYTES, PHOTO_CROP, Crop, Prepared, cut, is_blank, prepare, read_image_file, to_png,
                         zoomed_views)
from .runs import (CALIBRATION_RECORD, WEIGHTS_FILE, Run, RunWriter, create_held_run, delete_run, display_name,
                   list_runs, open_run, unique_name)
from .store import Claim, Heartbeat, LeaseLost, RunState, new_worker_id
from .numbers import count_text

PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff")
MAX_PHOTOS = 2000  # a calibration is a few photos per letter; this bounds memory and time
CALIBRATION_DIR = "calibration"  # <run>/calibration/<LETTER>/<photo>: the photos it learned from

# the methods, and why "head" is the default: signlab.config (the command line reads them without torch)
METHODS, DEFAULT_METHOD = CALIBRATION_METHODS, DEFAULT_CALIBRATION_METHOD
# dataset images mixed in, at least: with as many as there were photo views, one photo a letter let
# the dataset's test accuracy fall by 6 points (dev, robust run at epoch 4)
REPLAY_MIN = 2000
# how far the photos' copies move and zoom: framing varies between sessions far more than within one
# (development set 2); on it, shifts of 15% and zooms of 0.7-1.3 gave 51.2% against 50.0% for 6% and
# 0.9-1.12, with 3 photos a letter
SHIFT, SCALE = 0.15, (0.7, 1.3)


class CalibrationError(SignlabError):
    """The calibration photos cannot be used (names the folder, letter or file)."""


@dataclass(frozen=True)
class Photo:
    """One calibration photo: the letter it shows, a file name, and the file's bytes."""

    letter: str
    name: str
    data: bytes
    source: str = ""  # where it came from, for messages (the file's path); default: LETTER/name

    @property
    def label(self) -> str:
        return self.source or f"{self.letter}/{self.name}"


# --------------------------------------------------------------------------- loading photos
def natural_key(name: str) -> list[Any]:
    """Sort key for "natural" order: ``a2.jpg`` before ``a10.jpg`` (digits compared as numbers)."""
    return [(0, int(t), "") if t.isascii() and t.isdigit() else (1, 0, t.lower())
            for t in re.split(r"([0-9]+)", name) if t]


def letter_of(folder_name: str, where: str | Path | None = None) -> str:
    """The letter a folder name stands for (case-insensitive); CalibrationError for anything else.

    ``where`` names the folder in the message (its path), else the name itself.
    """
    s = folder_name.strip().upper()
    shown = f"{where or folder_name}/"
    if s in ("J", "Z"):
        raise CalibrationError(f"{shown}: {s} is signed with a movement, so it is not one of the "
                               f"24 static letters a photo can show ({LETTERS})")
    if len(s) != 1 or s not in LETTERS:
        raise CalibrationError(f"{shown}: not a letter folder; name each folder after the letter its "
                               f"photos show, one of {LETTERS}")
    return s


# what a copied or unzipped folder carries beside the photos (Windows' thumbnails and folder settings,
# the resource forks a macOS zip keeps, a Synology NAS's index): each ended a calibration with exit 2
JUNK_NAMES = frozenset({"thumbs.db", "ehthumbs.db", "desktop.ini", "__macosx", "@eadir"})


def _kept(entry: Path) -> bool:
    """Whether a folder entry is one calibration reads: not hidden, not the system's own junk."""
    return not entry.name.startswith(".") and entry.name.lower() not in JUNK_NAMES


def repeat_problem(name: str, letter: str, data: bytes, collected: Sequence[Photo],
                   shown: Callable[[Photo], str] = lambda p: p.name) -> str | None:
    """Why a photo cannot join ``collected``: the same picture is there already (under another letter
    it would teach the model both), named by ``shown``; else None. The Calibrate page and
    ``signlab calibrate`` ask the same (the command trained on a picture filed under two letters)."""
    for p in collected:
        if p.data == data:
            return (f"{name}: this picture is already collected ({shown(p)})" if p.letter == letter
                    else f"{name}: the same picture is already a photo of {p.letter} ({shown(p)})")
    return None


def _inside(path: Path, root: Path) -> bool:
    """Whether ``path``, links followed, is inside ``root`` (resolved; a link out of the folder was
    followed, and the file it named copied into the new run with the photos)."""
    try:
        return path.resolve().is_relative_to(root)
    except OSError:
        return False


def _listed(folder: Path, keep: Callable[[Path], bool]) -> list[Path]:
    """The entries of ``folder`` that ``keep`` accepts; a folder (or an entry) this user may not read is
    a :class:`CalibrationError` naming it (it was a traceback and exit 1 from ``calibrate``)."""
    try:
        return [p for p in folder.iterdir() if keep(p)]
    except OSError as err:
        where = err.filename or folder
        raise CalibrationError(f"{where}: cannot be read ({err.strerror or err}); check its permissions") from err


def load_folder(folder: str | Path) -> list[Photo]:
    """Every photo of a ``<LETTER>/<image>`` folder, letters in alphabet order, files in natural order.

    Missing letters are fine. Files at the top level (a README), hidden files and the system's own
    (:data:`JUNK_NAMES`) are ignored; a folder that is not a letter, a letter folder without images,
    a file too large, a link out of the folder, the same picture twice or a folder without any photo
    raise :class:`CalibrationError` naming it. Whether each file is an image is checked when it is
    prepared (:func:`prepare_photos`). Files whose names sort alike (1.jpg, 01.jpg) go in name order:
    the listing's order changed the calibrated weights.
    """
    root = Path(folder).expanduser()
    if root.is_file():
        raise CalibrationError(f"{folder}: is a file; give a folder of <LETTER>/<image> files "
                               "(A/photo1.jpg, B/photo1.jpg, ...)")
    if not root.is_dir():
        raise CalibrationError(f"{folder}: no such folder (expected <LETTER>/<image> files inside)")
    photos: list[Photo] = []
    real_root = root.resolve()
    dirs = sorted(_listed(root, lambda d: d.is_dir() and _kept(d)), key=lambda d: (d.name.upper(), d.name))
    seen: dict[str, str] = {}
    for d in dirs:
        letter = letter_of(d.name, d)
        if letter in seen:
            raise CalibrationError(f"{root / d.name}/: a second folder for {letter} (beside {seen[letter]}/)")
        seen[letter] = d.name
        if not _inside(d, real_root):
            raise CalibrationError(f"{root / d.name}/: a link out of {root}; put the photos themselves in it")
        files = sorted(_listed(d, lambda f: f.is_file() and _kept(f)), key=lambda f: (natural_key(f.name), f.name))
        if not files:
            raise CalibrationError(f"{root / d.name}/: the folder holds no photos")
        for f in files:
            if not _inside(f, real_root):
                raise CalibrationError(f"{f}: a link out of {root}; put the photo itself in the folder")
            if f.suffix.lower() not in PHOTO_SUFFIXES:
                raise CalibrationError(f"{f}: not an image file (expected {', '.join(PHOTO_SUFFIXES)})")
            try:  # as predict reads a file: never past the limit, a read error in one line
                data = read_image_file(f)
            except ImageError as err:
                raise CalibrationError(str(err)) from err
            if problem := repeat_problem(str(f), letter, data, photos, shown=lambda p: p.label):
                raise CalibrationError(problem)
            photos.append(Photo(letter, f.name, data, str(f)))
            if len(photos) > MAX_PHOTOS:
                raise CalibrationError(f"{root}: more than {MAX_PHOTOS} photos; a few per letter are enough")
    if not photos:
        raise CalibrationError(f"{root}: no photos found; put them in one folder per letter, such as "
                               f"{root / 'A'}/1.jpg")
    return photos


def first_k(photos: Sequence[Photo], k: int) -> tuple[list[Photo], list[Photo]]:
    """(the first ``k`` photos of each letter, the rest), keeping the given order within a letter."""
    count: dict[str, int] = {}
    head, rest = [], []
    for p in photos:
        count[p.letter] = count.get(p.letter, 0) + 1
        (head if count[p.letter] <= k else rest).append(p)
    return head, rest


def spread_k(photos: Sequence[Photo], k: int) -> tuple[list[Photo], list[Photo]]:
    """(``k`` photos of each letter spread evenly over its photos in the given order, the rest).

    With photos in name order over several sessions these come from different sessions (for
    k = 3: the first, the middle and the last), where :func:`first_k` takes one sitting's frames:
    ``bench/calibrate.py --spread`` measures what varied photos are worth."""
    by_letter: dict[str, list[int]] = {}
    for i, p in enumerate(photos):
        by_letter.setdefault(p.letter, []).append(i)
    chosen: set[int] = set()
    for idx in by_letter.values():
        picks = np.linspace(0, len(idx) - 1, min(k, len(idx))).round().astype(int)  # k >= n: all of them
        chosen.update(idx[j] for j in picks)
    head = [p for i, p in enumerate(photos) if i in chosen]
    return head, [p for i, p in enumerate(photos) if i not in chosen]


def prepare_photos(photos: Sequence[Photo], crop: Crop | str | None = PHOTO_CROP) -> tuple[np.ndarray, np.ndarray]:
    """Photos -> (views (N, V, 28, 28) float in [0, 1], class indices (N,)).

    Each photo goes through :func:`signlab.preprocess.prepare` exactly as ``predict`` sends it
    (``crop`` as there: ``"detector"``, predict's default, crops to the hand MediaPipe's models find;
    ``"centre"`` or None the centre square; ``"hand"`` the skin colour; or a Crop), and
    gives the V framings prediction averages over (:func:`signlab.preprocess.zoomed_views`).
    An unreadable file raises :class:`~signlab.errors.ImageError` naming it.
    """
    views, targets, _ = prepare_photos_and_hands(photos, crop)
    return views, targets


def prepare_photos_and_hands(photos: Sequence[Photo], crop: Crop | str | None = PHOTO_CROP
                             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`prepare_photos`, and each photo's hand-shape features (N, 42) where the detector found
    its hand (NaN rows for the others; :func:`signlab.handshape.hand_features`)."""
    if not photos:
        raise CalibrationError("no photos to calibrate on")
    _kept, views, targets, feats = _prepare(photos, crop, None)
    return views, targets, feats


def prepare_usable(photos: Sequence[Photo], crop: Crop | str | None = PHOTO_CROP
                   ) -> tuple[list[Photo], np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """:func:`prepare_photos_and_hands` for measuring over whole folders (``bench/calibrate.py``):
    a photo it would refuse is left out and its reason listed instead of ending the measurement
    (one low-contrast photo of 960 in a development set did). Returns (the photos kept, views,
    targets, features, the reasons)."""
    refused: list[str] = []
    kept, views, targets, feats = _prepare(photos, crop, refused)
    return kept, views, targets, feats, refused


def _prepare(photos: Sequence[Photo], crop: Crop | str | None, refused: list[str] | None
             ) -> tuple[list[Photo], np.ndarray, np.ndarray, np.ndarray]:
    """Each photo prepared; an unusable one raises, or with a ``refused`` list is named there."""
    kept, views, targets, feats = [], [], [], []
    for p in photos:
        try:
            prep = _usable(p, crop)
        except ImageError as err:
            if refused is None:
                raise
            refused.append(str(err))
            continue
        kept.append(p)
        views.append(zoomed_views(prep))
        targets.append(LETTERS.index(p.letter))
        feats.append(handshape.hand_features(prep.hand))  # NaN: no hand found
    if not kept:
        raise CalibrationError("no usable photos" + (": " + "; ".join(refused[:3]) if refused else ""))
    return (kept, np.stack(views).astype(np.float32), np.asarray(targets, dtype=np.int64),
            np.stack(feats).astype(np.float32))


def _usable(photo: Photo, crop: Crop | str | None) -> Prepared:
    """The photo prepared as ``predict`` prepares it; ImageError naming it when it is unreadable or
    blank (one shade: a covered lens, an empty file from a camera), which Classify would refuse
    too and which would teach the letter nothing but noise."""
    prep = prepare(photo.data, photo.label, crop)
    if is_blank(prep.image28):
        raise ImageError(f"{photo.label}: the square the model would see is almost one shade; "
                         "take a photo with your hand in it")
    return prep


def preview(photo: Photo, crop: Crop | str | None = PHOTO_CROP, size: int = 112) -> tuple[bytes, bool]:
    """A PNG of the square the model will see (grey, before it shrinks to 28x28), for a gallery, and
    whether the hand detector found a hand in it (True for a crop other than the detector's, and for
    an image read whole as the dataset's are, which Classify reads whole too: the Calibrate page
    marked a 28x28 dataset image "no hand" and told the student its centre square showed room).

    Also the check that the photo can be used: an unreadable file raises ImageError naming it.
    """
    prep = _usable(photo, crop)
    left, top, right, bottom = prep.box
    # cut repeats the edge pixels where the detector's square reaches past the photo, as the model's
    # input does; plain slicing read a negative edge as "from the end" and showed a corner of the room
    square = Image.fromarray(np.ascontiguousarray(cut(prep.gray, left, top, right, bottom)), mode="F")
    png = to_png(np.asarray(square.resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32))
    # other crops do not look for a hand; where the detector cannot run here, nothing is known of one
    # (every photo read "no hand", and the warning told the student to drop them all)
    return png, crop != "detector" or prep.hand is not None or prep.whole is not None or not hands.available()


def thumbnail(photo: Photo, crop: Crop | str | None = PHOTO_CROP, size: int = 112) -> bytes:
    """:func:`preview`'s PNG alone."""
    return preview(photo, crop, size)[0]


# --------------------------------------------------------------------------- adapting a model
def _members(model: nn.Module) -> list[nn.Module]:
    return list(model.members) if isinstance(model, Ensemble) else [model]


def _last_linear(net: nn.Module) -> nn.Linear:
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise CalibrationError(f"{type(net).__name__} has no linear output layer to adapt")
    return linears[-1]


@torch.no_grad()
def _features(net: nn.Module, x: torch.Tensor, batch: int = 1024) -> torch.Tensor:
    """What the last linear layer of ``net`` receives for normalised images ``x``: (N, D)."""
    layer, store = _last_linear(net), []
    with watch(layer, lambda _m, i: store.append(i[0].detach().float()), pre=True):
        for s in range(0, len(x), batch):
            net(x[s:s + batch])
    return torch.cat(store).flatten(1)


def _augment_photos(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Small changes of framing and light, and either hand, for copies of the calibration views.

    The photos are already photos, so no zoom-out onto a wall (as in ``photo_like``); mirrored
    because prediction averages each photo with its mirror image.
    """
    x = aug.affine(x, g, max_shift=SHIFT, max_rotate_deg=15.0, scale=SCALE)
    x = aug.photometric(x, g)
    flip = (torch.rand(x.shape[0], generator=g) < 0.5).view(-1, 1, 1, 1)
    return torch.where(flip, x.flip(3), x)


def _replay(dataset: Dataset, n: int, photo: bool, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` dataset images with the run's own training augmentation: they keep the other letters,
    and the letters the user did not photograph, where training left them."""
    idx = torch.randint(len(dataset.train), (n,), generator=g).numpy()
    x = to_float_images(dataset.train.images[idx])  # (n, 1, 28, 28) in [0, 1], as every reader scales them
    x = aug.photo_like(x, g) if photo else aug.affine(x, g)
    return x, torch.as_tensor(dataset.train.targets[idx])


def adapt(model: nn.Module, views: np.ndarray, targets: np.ndarray, dataset: Dataset, method: str = DEFAULT_METHOD,
          photo_augment: bool = True, steps: int | None = None, seed: int = 0,
          progress: Callable[[float], None] | None = None) -> nn.Module:
    """A copy of ``model`` adapted to calibration photos; the model itself is left untouched.

    ``views`` (N, V, 28, 28) and ``targets`` (N,) come from :func:`prepare_photos`; ``dataset``
    gives replay images. Methods (each network of an ensemble adapted on its own, batch-norm
    statistics frozen, so a handful of photos cannot shift them):

    - ``head``: retrain the last linear layer on the features of 8 augmented copies of every
      view plus as many augmented dataset images, starting from the trained weights.
    - ``finetune``: train the last convolution and the last linear layer on batches half
      augmented photos, half dataset images.
    - ``ncm``: nearest class mean: the last layer becomes distances to the mean feature of each
      letter's photos (letters without photos: the mean of augmented dataset images).
    """
    if method not in METHODS:
        raise CalibrationError(f"method: {method!r} is unknown; choose one of {', '.join(METHODS)}")
    views = np.asarray(views, dtype=np.float32)
    if views.ndim != 4 or len(views) != len(targets) or len(views) == 0:
        raise CalibrationError("no photos to calibrate on")
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = copy.deepcopy(model).cpu().float().eval()
    v = views.shape[1]
    x_cal = torch.as_tensor(views).reshape(-1, 1, IMAGE_SIZE, IMAGE_SIZE)  # (N * V, 1, 28, 28)
    y_cal = torch.as_tensor(targets).repeat_interleave(v)
    report = progress or (lambda _p: None)
    if method == "finetune":
        _finetune(model, x_cal, y_cal, dataset, photo_augment, steps or 60, g, report)
    else:
        _fit_heads(model, x_cal, y_cal, dataset, photo_augment, method, steps or 100, g, report)
    report(1.0)
    return model.eval()


def _fit_heads(model: nn.Module, x_cal: torch.Tensor, y_cal: torch.Tensor, dataset: Dataset, photo: bool,
               method: str, steps: int, g: torch.Generator, report: Callable[[float], None]) -> None:
    copies = max(2, min(8, 4000 // len(x_cal)))  # 8 for a few photos a letter; bounded for many
    xa = _augment_photos(x_cal.repeat(copies, 1, 1, 1), g)
    xa = torch.cat([x_cal, x_cal.flip(3), xa])  # the views as prediction sees them, and augmented copies
    ya = y_cal.repeat(copies + 2)
    xr, yr = _replay(dataset, max(len(xa), REPLAY_MIN), photo, g)
    nets = _members(model)
    for k, net in enumerate(nets):
        fa = _features(net, normalize_for(model, xa))
        fr = _features(net, normalize_for(model, xr))
        layer = _last_linear(net)
        if method == "ncm":
            _ncm(layer, fa, ya, fr, yr)
        else:
            _logistic(layer, fa, ya, fr, yr, steps)
        report((k + 1) / len(nets))


def _logistic(layer: nn.Linear, fa: torch.Tensor, ya: torch.Tensor, fr: torch.Tensor, yr: torch.Tensor,
              steps: int) -> None:
    """Retrain one linear layer, full batch, from its trained weights."""
    w0, b0 = layer.weight.detach().clone(), layer.bias.detach().clone()
    w, b = w0.clone().requires_grad_(True), b0.clone().requires_grad_(True)
    opt = torch.optim.Adam([w, b], lr=1e-2)
    x, y = torch.cat([fa, fr]), torch.cat([ya, yr])
    with torch.enable_grad():
        for _ in range(steps):
            loss = F.cross_entropy(x @ w.T + b, y) + 1e-3 * (w - w0).pow(2).sum()  # stay near what training learned
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        layer.weight.copy_(w)
        layer.bias.copy_(b)


def _ncm(layer: nn.Linear, fa: torch.Tensor, ya: torch.Tensor, fr: torch.Tensor, yr: torch.Tensor) -> None:
    """Nearest class mean as a linear layer: -|f - mu|^2 / T = (2 f.mu - |mu|^2) / T - |f|^2 / T,
    and the last term is the same for every letter, so softmax ignores it."""
    n_cls, d = layer.weight.shape
    mu = torch.zeros(n_cls, d)
    for c in range(n_cls):
        sel = fa[ya == c] if bool((ya == c).any()) else fr[yr == c]
        mu[c] = sel.mean(0) if len(sel) else fr.mean(0)
    # temperature: the mean squared distance of a photo to its own letter's mean, so typical
    # margins come out at a few units, as in the trained layer's logits
    t = float(((fa - mu[ya]) ** 2).sum(1).mean().clamp_min(1e-6))
    with torch.no_grad():
        layer.weight.copy_(2 * mu / t)
        layer.bias.copy_(-(mu ** 2).sum(1) / t)


def _finetune(model: nn.Module, x_cal: torch.Tensor, y_cal: torch.Tensor, dataset: Dataset, photo: bool,
              steps: int, g: torch.Generator, report: Callable[[float], None]) -> None:
    params: list[nn.Parameter] = []
    for p in model.parameters():
        p.requires_grad_(False)
    for net in _members(model):
        mods = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        for m in mods[-2:]:  # the last convolution and the output layer
            for p in m.parameters():
                p.requires_grad_(True)
                params.append(p)
    opt = torch.optim.Adam(params, lr=1e-3)
    half = 64
    nets = _members(model)
    with torch.enable_grad():
        for s in range(steps):
            i = torch.randint(len(x_cal), (half,), generator=g)
            xr, yr = _replay(dataset, half, photo, g)
            xb = normalize_for(model, torch.cat([_augment_photos(x_cal[i], g), xr]))
            yb = torch.cat([y_cal[i], yr])
            loss = sum(F.cross_entropy(net(xb), yb) for net in nets)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if s % 10 == 0:
                report(s / steps)
    for p in model.parameters():
        p.requires_grad_(True)


@torch.no_grad()
def predict_views(model: nn.Module, views: np.ndarray, mirror: bool, shapes: np.ndarray | None = None) -> np.ndarray:
    """Probabilities (N, 24) for prepared views (N, V, 28, 28): what ``predict`` gives each photo.
    ``shapes``: the hand shape's probabilities (N, 24) (:func:`signlab.handshape.probs_of` on
    :func:`prepare_photos_and_hands`' features), combined as ``predict`` combines them where a hand
    was found (rows of NaN: none)."""
    n, v = views.shape[:2]
    probs = predict(model, views.reshape(n * v, IMAGE_SIZE, IMAGE_SIZE), mirror=mirror).reshape(n, v, -1).mean(1)
    return handshape.combine(probs, shapes)


# --------------------------------------------------------------------------- saving the new run
def _safe_name(name: str, taken: set[str], index: int) -> str:
    """A file name safe in any folder: letters, digits, '.', '-', '_'; unique within ``taken``."""
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", Path(name).name).lstrip(".")[:80] or "photo"
    if not Path(stem).suffix:
        stem += ".img"
    out = stem
    while out.lower() in taken:
        out = f"{index:03d}-{stem}"
        index += 1000
    taken.add(out.lower())
    return out


def _keep_photos(run: Run, photos: Sequence[Photo]) -> None:
    taken: dict[str, set[str]] = {}
    for i, p in enumerate(photos):
        name = _safe_name(p.name, taken.setdefault(p.letter, set()), i)
        atomic_write_bytes(run.dir / CALIBRATION_DIR / p.letter / name, p.data)


def _finish(run: Run, claim: Claim, lease: Heartbeat, message: str, epochs: int, test_accuracy: float | None,
            seconds: float, parent: str) -> None:
    """Mark the new run completed in the run store (this process held it while writing it, its
    lease renewed by ``lease``); ``seconds``, the calibration's, are its training time (the runs
    tables showed 0.0 s). Raises when the run was taken from this process meanwhile: the page
    said "Saved" for a run the store then called interrupted."""
    writer = RunWriter(run, claim, lease)
    writer.log({"type": Logged.CALIBRATION, "message": message})
    writer.set_state(RunState.RUNNING, epochs_completed=epochs, target_epochs=epochs)
    # the parent in the store's row too: a listing tells a calibrated run from a trained one without reading
    # each folder (Home said "4.9 s, 3 epochs": the calibration's seconds beside the parent's epochs)
    writer.set_state(RunState.COMPLETED, message=message, test_accuracy=test_accuracy, train_seconds=seconds,
                     parent=parent)
    writer.close()
    if writer.lost:  # set_state found the lease taken (LeaseLost) and wrote nothing
        raise CalibrationError(f"run {run.id} was taken over before calibration could save it "
                               "(was the machine paused?); calibrate again")


def calibrate_run(ref: Run | str, photos: Sequence[Photo], runs_dir: Path | str | None = None,
                  method: str = DEFAULT_METHOD, crop: Crop | str | None = PHOTO_CROP, name: str | None = None,
                  steps: int | None = None, seed: int = 0, dataset: Dataset | None = None,
                  evaluate_test: bool = True, progress: Callable[[float], None] | None = None,
                  owner: str | None = None, max_runs: int | None = None) -> dict[str, Any]:
    """Adapt run ``ref`` to ``photos`` and save the result as a new run of ``owner``; returns its record.
    ``max_runs``: the owner's run quota, counted again as the run is made (QuotaError): checked only
    before the seconds of adapting, two calibrations at once both passed it.

    The record (``calibrate --json``): run_id, run_dir, parent, photos, letters, method,
    seconds (photos read to run saved), test_accuracy (on the dataset's test set, to show the
    other letters were kept) and status.
    """
    t0 = time.perf_counter()
    parent = ref if isinstance(ref, Run) else open_run(ref, runs_dir)
    if not photos:
        raise CalibrationError("no photos to calibrate on")
    if len(photos) > MAX_PHOTOS:
        raise CalibrationError(f"{len(photos)} photos; at most {MAX_PHOTOS}, and a few per letter are enough")
    cfg = parent.config
    model = parent.load_model("cpu")
    views, targets, feats = prepare_photos_and_hands(photos, crop)
    dataset = dataset if dataset is not None else load_dataset(cfg.data)
    adapted = adapt(model, views, targets, dataset, method=method, photo_augment=cfg.augment_photo,
                    steps=steps, seed=seed, progress=progress)
    shape_net = handshape.net_for(parent.dir)  # the hand's shape learns the photos too (when any hand was found)
    hands_found = int(handshape.has_hand(feats).sum())
    if shape_net is not None and hands_found:
        shape_net = handshape.adapt(shape_net, feats, targets, seed=seed)
    letters = sorted({p.letter for p in photos}, key=LETTERS.index)
    root = runs_dir if runs_dir is not None else parent.dir.parent
    run, claim = create_held_run(cfg, new_worker_id("calibrate"), root,
                                 name=name or calibrated_name(len(photos), parent, (r.name for r in list_runs(root))),
                                 owner=owner or local_user().id, max_runs=max_runs)
    # The lease is renewed while the files are written and the test set evaluated: unrenewed, a
    # busy 2-core machine let it lapse (20 s), and the store marked the saved run interrupted.
    with Heartbeat(run.store, claim) as lease:
        seconds, test_accuracy, message = _write_calibrated(run, claim, lease, parent, adapted, shape_net, hands_found,
                                                            photos, letters, method, crop, dataset, evaluate_test, t0)
    return {"run_id": run.id, "run_dir": str(run.dir.resolve()), "parent": parent.id, "photos": len(photos),
            "hands_found": hands_found, "letters": "".join(letters), "method": method, "seconds": seconds,
            "test_accuracy": test_accuracy, "status": "completed", "message": message}


def _copy_kernels(parent: Run, run: Run) -> None:
    """The parent's first-layer kernels (an older signlab's single file, or one file an epoch), each
    file written atomically, as a run's own are: a calibration killed while copying leaves whole
    files. Links are not followed (a planted one would copy a file from outside the parent)."""
    sources = [("kernels.safetensors", parent.dir / "kernels.safetensors")]
    if (parent.dir / "kernels").is_dir() and not (parent.dir / "kernels").is_symlink():
        sources += [(f"kernels/{e.name}", Path(e.path)) for e in os.scandir(parent.dir / "kernels")]
    for name, src in sources:
        if src.is_file() and not src.is_symlink():
            atomic_write(run.dir / name, lambda p, src=src: shutil.copyfile(src, p))


def _write_calibrated(run: Run, claim: Claim, lease: Heartbeat, parent: Run, adapted: torch.nn.Module,
                      shape_net: Any, hands_found: int, photos: Sequence[Photo], letters: list[str], method: str,
                      crop: Any, dataset: Dataset, evaluate_test: bool, t0: float
                      ) -> tuple[float, float | None, str]:
    """The calibrated run's files and its completed state: (seconds, test accuracy, message). A
    half-made run is removed, never left claimed."""
    try:
        state = {k: v.detach().cpu().contiguous() for k, v in adapted.state_dict().items()}
        atomic_write_safetensors(run.dir / WEIGHTS_FILE, state, {"parent": parent.id, "method": method})
        _copy_kernels(parent, run)  # the first layer is unchanged: the Kernels page shows the parent's history
        if shape_net is not None and hands_found:
            handshape.save_net(shape_net, {"parent": parent.id, "hands": hands_found}, run.dir / handshape.RUN_FILE)
        _keep_photos(run, photos)
        test_accuracy = None
        if evaluate_test:
            test_accuracy = evaluate_model(adapted, dataset.test).accuracy
        # rounded once: the record, the store's training time and the message show one number (rounded
        # twice, 9.6449 s was "9.6 s" in the store's and "9.7 s" in the record's)
        seconds = round(time.perf_counter() - t0, 2)
        info = {"parent": parent.id, "parent_name": parent.name, "letters": letters, "photos": len(photos),
                "hands_found": hands_found, "method": method,
                "crop": crop if isinstance(crop, (str, type(None))) else "custom",
                "seconds": seconds, "created": time.time()}
        atomic_write_json(run.dir / CALIBRATION_RECORD, info)  # parent, letters, photo count, method, seconds
        message = (f"calibrated from {parent.id} on {count_text(len(photos), 'photo')} of {count_text(len(letters), 'letter')} "
                   f"({method}, {seconds:.1f}s)")
        _finish(run, claim, lease, message, parent.epochs_completed(), test_accuracy, seconds, parent.id)
        return seconds, test_accuracy, message
    except BaseException:  # a half-made run is removed, never left claimed
        try:
            run.store.update(claim, RunState.FAILED, message="calibration did not finish")
        except LeaseLost:  # taken over: it is not this process's to mark any more, only to remove
            pass
        delete_run(run.id, run.dir.parent)
        raise


# --------------------------------------------------------------------------- reading it back
def calibration_info(run: Run) -> dict[str, Any] | None:
    """The calibration record of a run (parent, letters, photos, method, seconds); None for a trained run.

    ``photos_kept`` says how many of the photos are still in the run folder.
    """
    info = read_json_inside(run.dir, CALIBRATION_RECORD)  # never through a link planted in the run folder
    if not isinstance(info, dict):
        return None
    return {**info, "photos_kept": len(kept_photos(run))}


def kept_photos(run: Run) -> list[Path]:
    """The calibration photos kept in the run folder, by letter and name."""
    root = run.dir / CALIBRATION_DIR
    if not root.is_dir():
        return []
    return sorted((f for f in root.glob("*/*") if f.is_file()), key=lambda f: (f.parent.name, natural_key(f.name)))


def delete_photos(run: Run) -> int:
    """Delete the calibration photos kept in a run (the adapted weights stay); returns how many."""
    n = len(kept_photos(run))
    shutil.rmtree(run.dir / CALIBRATION_DIR, ignore_errors=True)
    return n


def photos_from_files(letter: str, files: Iterable[tuple[str, bytes]]) -> list[Photo]:
    """Photos of one letter from (name, bytes) pairs, such as uploads or camera shots."""
    letter = letter_of(letter)
    out = []
    for name, data in files:
        # named as the photo's other errors name it (Photo.label): "B/fake.png: not an image" sat beside
        # "empty.png: the file is empty" on the page
        label = Photo(letter, name, b"").label
        if not data:
            raise ImageError(f"{label}: the file is empty")
        if len(data) > MAX_FILE_BYTES:
            raise ImageError(f"{label}: the file is over the limit of {MAX_FILE_BYTES // 2**20} MB")
        out.append(Photo(letter, name, bytes(data)))
    return out


_CALIBRATED = re.compile(r"^(calibrated on [\d,]+ photos?( \(\d+\))? · (from )?)+")  # count_text writes "1,200 photos"


def calibrated_name(photos: int, parent: Any, taken: Iterable[str] = ()) -> str:
    """A calibrated run's name: "calibrated on 3 photos · from <the parent's name>", the calibration
    first (tables cut long names, and the parent's name first made the two runs look the same);
    "from", as an unnamed parent's name is when it was started ("· 5 Dec 02:28:01" read as when the
    calibrated run was made, a student saw two runs of one time)).
    A parent that was itself calibrated gives its own base name, not its prefix again: three
    calibrations in a row made an 86-character name that Rename then cut to "… · 4 Dec 15".
    A name in ``taken`` (the runs there are) gets " (2)", " (3)"… after its photos: two calibrations
    of one run on as many photos were told apart on Classify by their ids only, and at the end of
    the name "· from 6 Dec 10:39:18 (2)" read as the parent's name."""
    base = _CALIBRATED.sub("", display_name(parent.id, parent.name)) or parent.id
    head = f"calibrated on {count_text(photos, 'photo')}"
    return unique_name(f"{head} · from {base}", taken, at=len(head))
