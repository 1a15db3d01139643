"""The one frozen configuration of a training run, with every training setting declared once.

Each field of :class:`TrainConfig` is a training setting declared with :func:`setting`: its type
(the annotation), default, range or choices, help text, the presets that change it, its Train-page
label and the sweep's search space. :data:`SETTINGS` reads those declarations back as
:class:`Setting` records, and everything else is derived from them: the range and choice checks
(:func:`validate`), :data:`RANGES`, :data:`PRESETS`, and, in :mod:`signlab.settings`, the command
line's options, the Train page's widgets and link parsing, and the sweep's search space.

Why the declaration is field metadata on the dataclass rather than a separate table: a run's
``config.json`` and the code (``cfg.lr``) need the dataclass's typed fields anyway, so declaring the
rest beside each field leaves nothing to keep in step; a separate table would need a second list of
fields checked against it, and a dataclass generated from a table loses the typed attributes that
readers and editors rely on. Adding a setting is one field here, plus its use in the trainer.

The run directory saves the config as ``config.json`` beside the weights, and loading a run
rebuilds the model from it. The fields' order is the order of the Train page's widgets (within each
column), of the command line's help and of the sweep's searched settings (``suggest`` asks in that order,
so a seeded sampler draws what it drew before).
"""
from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field, fields
from types import UnionType
from typing import Any, Callable, Mapping, Sequence

from .errors import ConfigError

# The choices and numbers the declarations below name, kept here so that this module imports no
# torch: the command line's --help, the settings' words on the charts (signlab.figures, which takes
# plain data) and link parsing read the declaration without loading it. The modules that use them
# import them from here (import-linter's "config-without-torch" contract).
AUGMENT_STYLES = ("shift", "affine")  # signlab.augment
FRAMINGS = ("wide", "detector")  # how augment.photo_like frames the hand
NORMALIZATIONS: tuple[str, ...] = ("standardize", "equalize")  # signlab.normalize
# the filters' rate against the run's under Muon (signlab.optim): on s2net (the fast preset at lr
# 4e-3) 3x reached 99.9% in the fewest steps over seeds 0-4 of the settings tried
# (docs/speed-research.md, Part 24)
MUON_LR_SCALE = 3.0
# how `calibrate` adapts a run to a user's photos (signlab.calibrate, the CLI's --method): "head" won
# with 3 photos a letter (docs/real-photos.md, bench/calibrate.py): 99.4% of the rest of development
# set 1 against 96.4% for fine-tuning the last convolution too and 99.4% for nearest class mean, which
# forgot the dataset (21% of its test set); on set 2, 51.2% against 45.6% for fine-tuning.
CALIBRATION_METHODS = ("head", "finetune", "ncm")
DEFAULT_CALIBRATION_METHOD = "head"


def model_names() -> list[str]:
    """The registered models (asked when a model setting is checked or offered: the registry loads torch)."""
    from .models import model_names as registered

    return registered()

OPTIMIZERS = ("adam", "adamw", "sgd", "muon")
SCHEDULES = ("none", "cosine", "onecycle")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16")

# the presets, by name: what each is for. The values each one sets are declared on the settings
# (``presets=``) and gathered in PRESETS below.
PRESET_DESCRIPTIONS: dict[str, str] = {
    # the quickest way to a strong model on a CPU: the Train page's and the CLI's default
    "fast": "Recommended: the quickest way to a strong model",
    # the most robust model for real photos of hands (the Classify page's default), chosen lever by
    # lever on the real-photo dev set while keeping >= 99.5% test accuracy (bench/real_photos.py):
    # photo-like augmentation with mirroring (single network, mirror test-time augmentation:
    # 30-44% of the dev photos depending on the seed, 99.4-99.8% test), histogram equalisation
    # (+5 points on average, but 99.2-99.3% test for one network), three networks averaged
    # (test back to 100%, and the seed matters less), four-view test-time augmentation
    # (+0.4-3.8 points): 46.9-54.8% dev, 99.76-100% test over five runs (docs/real-photos.md)
    "robust": "Best on real photos of hands (slower)",
    # the lecture's own settings: Adam 1e-3, batch 32, no schedule, no augmentation
    "lecture": "The lecture's settings, flaw included",
}

# the lecture trained its logistic regression for 2 epochs; the preset's 10 are its ConvNet's
LECTURE_LOGREG_EPOCHS = 2


@dataclass(frozen=True)
class Log:
    """A log-uniform search range for the sweep (``low`` to ``high``)."""

    low: float
    high: float


LOG_SCALE_FORMAT = "%.2e"  # a value of a setting on a log scale, in text and in table columns (3.00e-03)


@dataclass(frozen=True)
class Setting:
    """One training setting as declared on :class:`TrainConfig` (read it from :data:`SETTINGS`)."""

    name: str
    type: type  # int, float, str or bool
    optional: bool  # None is allowed (meaning: the model's or torch's own default)
    default: Any
    help: str  # one or two sentences: the Train page's tooltip and the command line's help
    range: tuple[float, float] | None = None  # inclusive; ints as bounds make a whole-number setting
    least_above_zero: float | None = None  # with a range from 0: 0 itself, or at least this
    choices: tuple[str, ...] | Callable[[], Sequence[str]] | None = None  # a callable: asked when needed
    presets: Mapping[str, Any] = field(default_factory=dict)  # preset name -> the value it sets
    label: str | None = None  # the Train page's widget label; None: not on the page, not read from links
    # the Train page's settings column (0 left, 1 right); None and toggles: full width below both
    # (a choice whose words do not fit half of a third of a 1280-px page: 'standardize' was cut)
    column: int | None = 0
    step: float | None = None  # the widget's step (default 1 for whole numbers, 1e-4 otherwise)
    search: tuple[Any, ...] | Log | None = None  # what the sweep tries (signlab.sweep)
    # a choice whose name alone says too little, in words the pages show instead (the box, a run's
    # settings line, the runs table): a teacher read schedule "none" as no schedule at all. One word:
    # "none (constant rate)" was cut to "none (constan" in the Train page's half-width box
    choice_words: Mapping[str, str] = field(default_factory=dict)

    @property
    def words(self) -> str:
        """The setting in running text and on a chart's axis: its label in lower case ("learning
        rate"), else its name with spaces ("width")."""
        return self.label.lower() if self.label else self.name.replace("_", " ")

    @property
    def log_scale(self) -> bool:
        """Whether its values span decades (the sweep searches it on a log scale): charts give it a log axis."""
        return isinstance(self.search, Log)

    def option_text(self, value: Any) -> str:
        """A choice as the pages write it: its words where declared, else the value the command line takes."""
        return self.choice_words.get(value, str(value))

    def text(self, value: Any) -> str:
        """A value as the pages write it: 3.00e-03 on a log scale, on/off for a toggle."""
        if isinstance(value, bool):
            return "on" if value else "off"
        if self.log_scale and isinstance(value, (int, float)):
            return LOG_SCALE_FORMAT % value
        return str(value)

    @property
    def flag(self) -> str:
        """The command line's option: ``--batch-size`` for ``batch_size``."""
        return "--" + self.name.replace("_", "-")

    def allowed(self) -> tuple[str, ...] | None:
        """The allowed values of a choice setting, else None."""
        if self.choices is None:
            return None
        return tuple(self.choices() if callable(self.choices) else self.choices)

    def allowed_text(self) -> str:
        """What may be given, for messages: ``1 to 200`` or ``adam, adamw, sgd``."""
        allowed = self.allowed()
        if allowed is not None:
            return ", ".join(allowed)
        if self.range is not None:
            return _allowed_range(self.range, self.least_above_zero)
        return "true or false" if self.type is bool else "text"

    def problem(self, value: Any) -> str | None:
        """Why ``value`` cannot be this setting (the message without the setting's name), else None."""
        if value is None and self.optional:
            return None
        if self.type is bool:
            return None if isinstance(value, bool) else f"{shown_value(value)} must be true or false"
        allowed = self.allowed()
        if allowed is not None:
            return None if value in allowed else f"{shown_value(value)} is unknown; choose one of {', '.join(allowed)}"
        if self.range is not None:
            return range_problem(self.range, value, integer=self.type is int,
                                 least_above_zero=self.least_above_zero)
        if not isinstance(value, str):
            return f"{shown_value(value)} must be text"
        return None if value.strip() else EMPTY  # not a silent default


def setting(default: Any, *, help: str, **declaration: Any) -> Any:
    """Declare a TrainConfig field as a training setting (the keywords are :class:`Setting`'s)."""
    return field(default=default, metadata={"setting": {"help": help, **declaration}})


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run. Defaults are the recommended ``fast`` preset."""

    # s2net, 2 epochs, shifts, label smoothing 0.1, 10x LR on the norm layers, shift-averaged
    # predictions: 99.9% test accuracy within 0.25 lecture-epochs on each of 5 seeds
    # (bench/time_to_accuracy.py, docs/speed-research.md)
    model: str = setting("s2net", choices=model_names, label="Architecture",
                         help="The network to train (python -m signlab models lists them).",
                         presets={"robust": "fastcnn", "lecture": "seed_convnet"})
    epochs: int = setting(2, range=(1, 200), label="Epochs", presets={"robust": 12, "lecture": 10},
                          help="How many times the model sees every training image.")
    # 4e-3 since 2026-12-05 (3e-3 before): steps to 99.9% over seeds 0-9, mean / worst, fp32 231.5 / 310
    # against 254 / 320, bf16 on an Intel Xeon with AMX 230.5 / 300 against seed 0 never; the cost: the
    # worst of seeds 0-4 in fp32 270 -> 290 steps, and one seed of ten never as AVX2 (docs/speed-research.md,
    # Parts 24-25). The robust preset keeps 3e-3, at which its photo levers were chosen
    lr: float = setting(4e-3, range=(1e-6, 10.0), label="Learning rate", step=1e-4, search=Log(1e-4, 1e-2),
                        presets={"lecture": 1e-3, "robust": 3e-3}, help="The step size (the peak of the schedule for one-cycle).")
    batch_size: int = setting(128, range=(1, 4096), label="Batch size", column=1, step=16,
                              search=(32, 64, 128, 256), presets={"lecture": 32}, help="Images per gradient step.")
    # muon is a choice, not the fast preset's: at one rate it took 3% fewer steps to 99.9% (mean of
    # 10 seeds) and each step 11% longer on a 2-core Xeon (docs/speed-research.md, Part 24)
    optimizer: str = setting("adamw", choices=OPTIMIZERS, label="Optimizer", column=1, presets={"lecture": "adam"},
                             help="The update rule: adam, adamw (Adam with decoupled weight decay), sgd "
                                  "(with Nesterov momentum) or muon (each convolution's filters move by their "
                                  "momentum made orthogonal, so weak directions learn as fast as strong ones; "
                                  f"the filters at {MUON_LR_SCALE:g}x the learning rate, AdamW for the other "
                                  "weights). Each wants its own learning rate (sgd one about ten times Adam's: with the fast "
                                  "preset it did far better at 0.05 than at 0.003), so compare optimizers each "
                                  "at a rate that suits it.")
    weight_decay: float = setting(5e-4, range=(0.0, 1.0), label="Weight decay", step=1e-4, search=Log(1e-6, 1e-2),
                                  presets={"lecture": 0.0},
                                  help="How strongly every step pulls the weights towards zero (regularisation).")
    schedule: str = setting("onecycle", choices=SCHEDULES, label="Schedule", column=1, presets={"lecture": "none"},
                            choice_words={"none": "constant"},
                            help="constant (none on the command line and in links): the rate never changes; "
                                 "cosine: decays smoothly; onecycle: warms up, then decays.")
    # on batches on the device
    augment: bool = setting(True, label="Augmentation", search=(True, False),
                            presets={"lecture": False},
                            help="Random changes to the training images (shifts, or those --augment-style names); photo-like "
                                 "augmentation (the robust preset), when set, replaces them and applies either way.")
    augment_style: str = setting("shift", choices=AUGMENT_STYLES, presets={"robust": "affine"},
                                 help="shift: move each image by up to 2 pixels (cheap; best for short runs). "
                                      "affine: small shifts, rotations and scaling.")
    # searched by a sweep where the model has a width: the widths tried are each model's own (register_model)
    width: int | None = setting(None, range=(4, 256), search=(8, 16, 24, 32),
                                help="Model width, for models that have one (none: the model's default).")
    seed: int = setting(0, range=(0, 2**31 - 1), label="Seed",
                        help="The same seed on the same device gives the same run.")
    device: str = setting("auto", choices=DEVICES, label="Device", column=1,
                          help="Where to train; auto: CUDA, then Apple MPS, then the CPU.")
    # networks trained side by side whose probabilities are averaged (models.Ensemble)
    ensemble: int = setting(1, range=(1, 8), label="Ensemble size", presets={"robust": 3},
                            help="Train this many networks side by side and average their predictions: steadier "
                                 "on real photos, and each one costs another network's training time.")
    # per-image normalisation (normalize.normalize)
    input_norm: str = setting("standardize", choices=NORMALIZATIONS, label="Input normalisation", column=None,
                              presets={"robust": "equalize"},
                              help="standardize: each image to zero mean and unit variance. equalize: first spread "
                                   "each image's grey levels evenly (histogram equalisation), so lighting and "
                                   "contrast matter less.")
    augment_photo: bool = setting(False, presets={"robust": True},
                                  help="Make training images look like photos instead of augment_style's changes: "
                                       "framing, rotation, mirroring, brightness, contrast, gamma, blur and noise.")
    photo_framing: str = setting("wide", choices=FRAMINGS,
                                 help="How photo-like augmentation frames the hand: wide (centre crops) or "
                                      "detector (the hand detector's square).")
    # the last three on the page too: a student who changed the fast preset's model kept them, unseen,
    # and then read of "label smoothing 0.1" in the result
    label_smoothing: float = setting(0.1, range=(0.0, 0.5), presets={"robust": 0.0, "lecture": 0.0},
                                     label="Label smoothing", column=1, step=0.05,
                                     help="The share of each target spread evenly over all letters (0: none). "
                                          "It keeps the network from growing ever surer, so the loss stops "
                                          "above 0.")
    # airbench's larger step for batch-norm biases: on s2net it turned 99.9% on 2-3 of 5 seeds
    # into 5 of 5 (docs/speed-research.md)
    norm_lr_scale: float = setting(10.0, range=(0.01, 100.0), presets={"robust": 1.0, "lecture": 1.0},
                                   label="Bias rate ×", column=0, step=1.0,
                                   help="Learning-rate multiplier for the batch-norm scales and every bias, "
                                        "which then also get no weight decay; 1 gives every weight one rate "
                                        "and the same weight decay.")
    tta: bool = setting(True, presets={"robust": False, "lecture": False}, label="Test-time shifts",
                        help="Average the predictions for the image and its four "
                             "1-pixel shifts (test accuracy, evaluation and Classify).")
    # auto in every preset. The lecture preset was once pinned to fp32 after a reading of bf16 at
    # 0.96x the lecture loop's samples/s against 1.40x for fp32; on a quiet 2-core AVX512-BF16 CPU
    # bench/train_speed.py measured bf16 + channels-last at 2.23x and fp32 + channels-last at 1.43x
    # (seed_convnet, batch 32; 2026-11-30), so the earlier reading was the load of a shared machine.
    # Where the CPU has no native bf16, auto is fp32. Where it has, auto measures which is faster for
    # the network (signlab.trainer.measure_precision): on a 2-core Intel Xeon with AVX512-BF16, bf16
    # was 1.2x slower than fp32 (docs/speed-research.md, Part 17).
    precision: str = setting("auto", choices=PRECISIONS,
                             help="auto: bf16 autocast where it trains this network faster (on a CPU with native "
                                  "bf16, measured once per machine and network; on a GPU, wherever it supports "
                                  "bf16), else fp32.")
    channels_last: bool = setting(True, help="Channels-last memory layout: with bf16, 1.5-2x faster convolutions "
                                             "on a CPU (measured).")
    threads: int | None = setting(None, range=(1, 256), help="CPU threads for torch (none: torch's default; logistic "
                                  "regression and the MLP use one, which beside other work is many times faster).")
    log_every: int = setting(10, range=(1, 10_000), presets={"lecture": 50},
                             help="Steps between logged training steps (batch-end events).")
    val_fraction: float = setting(0.0, range=(0.0, 0.5), least_above_zero=0.01,
                                  help="Hold out this fraction of the training set for validation (0: validate on "
                                       "the test CSV, the lecture's df_val).")
    max_steps: int | None = setting(None, range=(1, 10_000_000), help="Stop after this many steps (a dry run).")
    data: str | None = setting(None, help="Dataset folder, TRAIN,TEST paths or URL (none: the bundled copy).")
    preset: str | None = None  # not a setting: the preset this config started from, for the record

    def __post_init__(self) -> None:
        validate(self)
        # a whole number written 2.0 (a hand-edited config.json, the Python API) passes validate and is
        # kept as 2: kept as 2.0, the schedule and the batches failed deep in fit ("Expected positive
        # integer total_steps, but got 1.0")
        for s in SETTINGS:
            value = getattr(self, s.name)
            if s.type is int and isinstance(value, float):
                object.__setattr__(self, s.name, int(value))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        """Build from a dict, ignoring keys this version does not know (newer runs).

        A setting added later and missing from an older run's config takes the value that
        reproduces how that run was trained (:data:`LEGACY`), not today's default."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in LEGACY.items() if k not in d}
        values.update({k: v for k, v in d.items() if k in known})
        return cls(**values)

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)


# settings added after runs were saved without them: the values those runs were trained with
LEGACY: dict[str, Any] = {"augment_style": "affine", "norm_lr_scale": 1.0, "tta": False}

RECORD_FIELDS = ("preset",)  # TrainConfig fields that are not settings

# what a continuation (train --resume, api.continue_run) may set: the optimiser's state, restored from
# the run, keeps the run's other settings (its weight decay, its norm layers' rate), so a change to
# them was saved in config.json and never used
RESUMABLE = ("epochs", "lr", "device", "max_steps")


def _declared() -> tuple[Setting, ...]:
    """The settings as records, checked so a mistake in a declaration fails at import, not in a page."""
    hints = typing.get_type_hints(TrainConfig)
    out = []
    for f in fields(TrainConfig):
        if f.name in RECORD_FIELDS:
            continue
        if "setting" not in f.metadata:
            raise TypeError(f"TrainConfig.{f.name} is not declared with setting(...)")
        hint = hints[f.name]
        args = typing.get_args(hint) if isinstance(hint, UnionType) else (hint,)
        base = [a for a in args if a is not type(None)]
        if len(base) != 1 or base[0] not in (int, float, str, bool):
            raise TypeError(f"TrainConfig.{f.name}: {hint} is not int, float, str or bool (or one of them | None)")
        s = Setting(f.name, base[0], type(None) in args, f.default, **f.metadata["setting"])
        unknown = set(s.presets) - set(PRESET_DESCRIPTIONS)
        if unknown:
            raise TypeError(f"TrainConfig.{f.name}: unknown preset(s) {', '.join(sorted(unknown))}")
        if s.type in (int, float) and s.range is None:
            raise TypeError(f"TrainConfig.{f.name}: a number needs a range")
        if s.label is not None and s.optional:
            raise TypeError(f"TrainConfig.{f.name}: the Train page has no widget for an optional setting")
        out.append(s)
    return tuple(out)


SETTINGS: tuple[Setting, ...] = _declared()  # in field order, which is the Train page's order
SETTING: dict[str, Setting] = {s.name: s for s in SETTINGS}

# (low, high) inclusive ranges, checked in one place for the CLI, the page and loaded configs
RANGES: dict[str, tuple[float, float]] = {s.name: s.range for s in SETTINGS if s.range is not None}

DEFAULT_PRESET = "fast"  # the Train page's and the command line's; TrainConfig's defaults are its values
PHOTO_PRESET = "robust"  # the preset trained for photos (its runs set augment_photo): Classify offers it
PRESETS: dict[str, dict[str, Any]] = {
    name: {s.name: s.presets[name] for s in SETTINGS if name in s.presets} for name in PRESET_DESCRIPTIONS}
# the networks the lecture itself trained with the lecture preset's settings, and for how many epochs
LECTURE_MODEL_EPOCHS = {"logreg": LECTURE_LOGREG_EPOCHS, PRESETS["lecture"]["model"]: PRESETS["lecture"]["epochs"]}


EMPTY = "is empty; give a value or leave it out"  # an empty text setting or argument (signlab.settings.given)


def shown_value(value: Any) -> str:
    """``value`` for a one-line message: a 400-digit number is shortened, not printed whole."""
    try:
        text = repr(value)
    except ValueError:  # an int over Python's 4300-digit str() limit
        return "a number with thousands of digits"
    return text if len(text) <= 24 else f"{text[:10]}…{text[-4:]} ({len(text)} characters)"


def _bound(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) >= 1 else f"{x:g}"


def _allowed_range(bounds: tuple[float, float], least_above_zero: float | None = None) -> str:
    """A range as messages write it: ``1 to 200``, or ``0, or 0.01 to 0.5`` (:attr:`Setting.least_above_zero`)."""
    least = least_above_zero
    return f"0, or {_bound(least)} to {_bound(bounds[1])}" if least else f"{_bound(bounds[0])} to {_bound(bounds[1])}"


def range_problem(bounds: tuple[float, float], value: Any, integer: bool,
                  least_above_zero: float | None = None) -> str | None:
    """Why ``value`` is not a number in ``bounds`` (nor between 0 and ``least_above_zero``), else None."""
    lo, hi = bounds
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{shown_value(value)} is not a number"
    # ints compare with floats exactly in Python, so no conversion (and no OverflowError) happens here
    if (isinstance(value, float) and not math.isfinite(value)) or not lo <= value <= hi or (
            least_above_zero and 0 < value < least_above_zero):
        return f"{shown_value(value)} is out of range; allowed {_allowed_range(bounds, least_above_zero)}"
    if integer and isinstance(value, float) and not value.is_integer():
        return f"{shown_value(value)} must be a whole number"
    return None


def check_setting(name: str, value: Any) -> None:
    """Raise ConfigError naming ``name`` and what is allowed when ``value`` cannot be that setting, by its
    declaration (:meth:`Setting.problem`; a second copy of the range rule here had lost
    ``least_above_zero``). Safe for any value from outside: a 400-digit int is compared exactly (never
    converted to a float, which raises OverflowError), inf and nan are out of range, bools and strings
    are refused."""
    problem = SETTING[name].problem(value)
    if problem:
        raise ConfigError(f"{name}: {problem}")


def validate(c: TrainConfig) -> None:
    """Raise ConfigError naming the first setting that is out of range or unknown. Settings whose
    choices come from the model registry are checked last: it loads torch (about 2 s), and a
    refused ``--epochs 0`` waited for it."""
    for s in sorted(SETTINGS, key=lambda s: callable(s.choices)):
        problem = s.problem(getattr(c, s.name))
        if problem:
            raise ConfigError(f"{s.name}: {problem}")


def preset(name: str, **overrides: Any) -> TrainConfig:
    """The config of a named preset, with ``overrides`` applied (None values are ignored)."""
    if name not in PRESETS:
        raise ConfigError(f"preset: {name!r} is unknown; choose one of {', '.join(PRESETS)}")
    values = {**PRESETS[name], "preset": name}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig(**values)
