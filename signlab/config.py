"""The one frozen configuration of a training run, its range checks and the named presets.

The command line and the Train page both fill a :class:`TrainConfig`; the run directory saves it
as ``config.json`` beside the weights, and loading a run rebuilds the model from it.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields
from typing import Any

from .errors import ConfigError
from .models import model_names
from .normalize import NORMALIZATIONS

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("none", "cosine", "onecycle")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16")

# (low, high) inclusive ranges, checked in one place for the CLI, the page and loaded configs
RANGES: dict[str, tuple[float, float]] = {
    "epochs": (1, 200),
    "batch_size": (1, 4096),
    "lr": (1e-6, 10.0),
    "weight_decay": (0.0, 1.0),
    "seed": (0, 2**31 - 1),
    "log_every": (1, 10_000),
    "val_fraction": (0.0, 0.5),
    "max_steps": (1, 10_000_000),
    "width": (4, 256),
    "ensemble": (1, 8),
    "label_smoothing": (0.0, 0.5),
    "threads": (1, 256),
}


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run. Defaults are the recommended ``fast`` preset."""

    model: str = "fastcnn"
    width: int | None = None  # model width where the model has one (None: the model's default)
    ensemble: int = 1  # networks trained side by side whose probabilities are averaged (models.Ensemble)
    input_norm: str = "standardize"  # per-image normalisation (normalize.normalize): standardize or equalize
    epochs: int = 5  # 5: >= 99.5% test accuracy within 10 s on 2 CPU cores, 99.97% at the end (2 of 3 seeds)
    batch_size: int = 128
    lr: float = 3e-3  # the peak learning rate under a one-cycle schedule
    optimizer: str = "adamw"
    weight_decay: float = 5e-4
    schedule: str = "onecycle"
    augment: bool = True  # small random shifts, rotations and scaling, on batches on the device
    augment_photo: bool = False  # also brightness/contrast/gamma, blur, noise, crops (robust preset)
    photo_framing: str = "wide"  # how augment_photo frames the hand: wide (centre crops) or detector (augment.FRAMINGS)
    label_smoothing: float = 0.0
    seed: int = 0
    device: str = "auto"  # auto: CUDA, then Apple MPS, then CPU
    precision: str = "auto"  # auto: bf16 autocast where the hardware has fast bf16, else fp32
    channels_last: bool = True  # with bf16, 1.5-2x faster convolutions on a CPU (measured)
    threads: int | None = None  # CPU threads for torch (None: torch's default)
    log_every: int = 10  # steps between batch-end events
    val_fraction: float = 0.0  # 0: validate on the test CSV (the lecture's df_val); else hold out
    max_steps: int | None = None  # stop after this many steps (a dry run)
    data: str | None = None  # dataset source; None: the bundled copy
    preset: str | None = None  # the preset this config started from, for the record

    def __post_init__(self) -> None:
        validate(self)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        """Build from a dict, ignoring keys this version does not know (old or newer runs)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)


def shown_value(value: Any) -> str:
    """``value`` for a one-line message: a 400-digit number is shortened, not printed whole."""
    try:
        text = repr(value)
    except ValueError:  # an int over Python's 4300-digit str() limit
        return "a number with thousands of digits"
    return text if len(text) <= 24 else f"{text[:10]}…{text[-4:]} ({len(text)} characters)"


def _bound(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) >= 1 else f"{x:g}"


def range_problem(name: str, value: Any, integer: bool | None = None) -> str | None:
    """Why ``value`` cannot be the setting ``name`` (a RANGES entry), else None.

    Safe for any value from outside: a 400-digit int is compared exactly (never converted to a
    float, which raises OverflowError), inf and nan are out of range, bools and strings are refused.
    ``integer`` defaults to whether the range's bounds are written as ints.
    """
    lo, hi = RANGES[name]
    if integer is None:
        integer = isinstance(lo, int) and isinstance(hi, int)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{shown_value(value)} is not a number"
    # ints compare with floats exactly in Python, so no conversion (and no OverflowError) happens here
    if (isinstance(value, float) and not math.isfinite(value)) or not lo <= value <= hi:
        return f"{shown_value(value)} is out of range; allowed {_bound(lo)} to {_bound(hi)}"
    if integer and isinstance(value, float) and not value.is_integer():
        return f"{shown_value(value)} must be a whole number"
    return None


def check_setting(name: str, value: Any, integer: bool | None = None) -> None:
    """Raise ConfigError naming ``name`` and its allowed range when ``value`` is not in RANGES[name]."""
    problem = range_problem(name, value, integer)
    if problem:
        raise ConfigError(f"{name}: {problem}")


def _check_range(name: str, value: Any, integer: bool) -> None:
    check_setting(name, value, integer)


def validate(c: TrainConfig) -> None:
    """Raise ConfigError naming the first setting that is out of range or unknown."""
    if c.model not in model_names():
        raise ConfigError(f"model: {c.model!r} is unknown; choose one of {', '.join(model_names())}")
    for name in ("epochs", "batch_size", "seed", "log_every", "ensemble"):
        _check_range(name, getattr(c, name), integer=True)
    for name in ("lr", "weight_decay", "val_fraction", "label_smoothing"):
        _check_range(name, getattr(c, name), integer=False)
    for name in ("max_steps", "width", "threads"):
        if getattr(c, name) is not None:
            _check_range(name, getattr(c, name), integer=True)
    if 0 < c.val_fraction < 0.01:
        raise ConfigError("val_fraction: hold out at least 0.01 of the training set, or 0 for the test CSV")
    for name, allowed in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES), ("device", DEVICES),
                          ("precision", PRECISIONS), ("input_norm", NORMALIZATIONS),
                          ("photo_framing", ("wide", "detector"))):
        if getattr(c, name) not in allowed:
            raise ConfigError(f"{name}: {getattr(c, name)!r} is unknown; choose one of {', '.join(allowed)}")
    for name in ("augment", "augment_photo", "channels_last"):
        if not isinstance(getattr(c, name), bool):
            raise ConfigError(f"{name}: {getattr(c, name)!r} must be true or false")


PRESETS: dict[str, dict[str, Any]] = {
    # seconds to a strong model on a 2-core CPU: the Train page's and the CLI's default
    "fast": {},
    # the most robust model for real photos of hands (the Classify page's default), chosen lever by
    # lever on the real-photo dev set while keeping >= 99.5% test accuracy (bench/real_photos.py):
    # photo-like augmentation with mirroring (single network, mirror test-time augmentation:
    # 30-44% of the dev photos depending on the seed, 99.4-99.8% test), histogram equalisation
    # (+5 points on average, but 99.2-99.3% test for one network), three networks averaged
    # (test back to 100%, and the seed matters less), four-view test-time augmentation
    # (+0.4-3.8 points): 46.9-54.8% dev, 99.76-100% test over five runs (docs/real-photos.md)
    "robust": dict(model="fastcnn", epochs=12, augment_photo=True, ensemble=3, input_norm="equalize"),
    # the lecture's own settings: Adam 1e-3, batch 32, no schedule, no augmentation
    # (fp32: for this model at batch 32, bf16 autocast was slower than fp32 with channels-last on a
    # 2-core AVX512-BF16 CPU: 0.96x against 1.40x the lecture loop's samples/s, bench/train_speed.py)
    "lecture": dict(model="seed_convnet", epochs=10, batch_size=32, lr=1e-3, optimizer="adam",
                    weight_decay=0.0, schedule="none", augment=False, log_every=50, precision="fp32"),
}
PRESET_DESCRIPTIONS: dict[str, str] = {
    "fast": "Recommended: a strong model in seconds",
    "robust": "Best on real photos of hands (slower)",
    "lecture": "The lecture's settings, flaw included",
}


def preset(name: str, **overrides: Any) -> TrainConfig:
    """The config of a named preset, with ``overrides`` applied (None values are ignored)."""
    if name not in PRESETS:
        raise ConfigError(f"preset: {name!r} is unknown; choose one of {', '.join(PRESETS)}")
    values = {**PRESETS[name], "preset": name}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig(**values)
