"""The model registry: every architecture signlab can train, created by name.

``list_models()`` gives each model's name, one-line description and parameter count;
``create_model(name, **kwargs)`` builds it; ``build_model(cfg)`` builds the one a run's settings
describe. Every model takes (B, 1, 28, 28) images that went
through :func:`signlab.normalize.normalize` and returns (B, 24) logits, one per static letter.

About the lecture's models: the lecture's layers end in ``Linear(50, 26)`` (one output per raw
label 0..25). signlab uses 24 outputs everywhere, so J and Z, which never occur, cannot pollute
the confusion matrix or the probability bars. ``seed_convnet`` keeps the lecture's real flaw, the
ReLU on the output logits, so students can see what it does.
"""
from __future__ import annotations

import functools
import math
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator

import torch
from torch import nn

from .errors import ConfigError
from .labels import IMAGE_SIZE, NUM_CLASSES, NUM_PIXELS

if TYPE_CHECKING:  # only for the annotation: config imports models (model_names) to check a name
    from .config import TrainConfig


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows of a model."""

    name: str
    description: str
    parameters: int
    widths: tuple[int, ...] = ()  # the widths a sweep tries (the right range depends on the model); () none
    output_relu: bool = False  # a ReLU on its output scores (the lecture's flaw: the pages explain what it does)
    cpu_threads: int | None = None  # the most CPU threads its training uses (None: torch's default)

    @property
    def has_width(self) -> bool:
        """Whether ``width=`` changes its size (sweeps search it)."""
        return bool(self.widths)


_REGISTRY: dict[str, tuple[Callable[..., nn.Module], str, tuple[int, ...], int | None]] = {}


def register_model(name: str, description: str, widths: tuple[int, ...] = (), cpu_threads: int | None = None
                   ) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: add a model factory to the registry under ``name``; ``widths``: for a model whose
    factory takes ``width=``, the widths a sweep tries; ``cpu_threads``: the most CPU threads its
    training should use (see :func:`cpu_threads`)."""

    def wrap(factory: Callable[..., nn.Module]):
        _REGISTRY[name] = (factory, description, tuple(widths), cpu_threads)
        return factory

    return wrap


def list_models() -> list[ModelInfo]:
    """Every registered model, in registration order (simplest first)."""
    return [model_info(n) for n in _REGISTRY]


def model_names() -> list[str]:
    return list(_REGISTRY)


def model_info(name: str) -> ModelInfo:
    factory, description, widths, threads = _lookup(name)
    net = factory()
    return ModelInfo(name, description, count_parameters(net), widths, bool(getattr(net, "output_relu", False)),
                     threads)


def cpu_threads(name: str) -> int | None:
    """The most CPU threads training ``name`` should use, None for torch's default (all cores).

    A step of the small models (logistic regression, the MLP: 0.5-1.5 ms at batch 32) is too little
    work to share: a second thread gains at most 12% on an idle 2-core machine, and when anything else
    runs there (the browser drawing the chart beside it) every operation waits for the thread that was
    descheduled. Measured on 2 cores with one other busy process, one epoch at batch 32: logreg 6.3 s
    on 2 threads against 0.45 s on one, the MLP 20-23 s against 1.3 s (idle: 0.46 / 0.45 s and
    1.09 / 1.23 s). The convolutional networks gain 1.4-1.5x from a second thread on an idle machine,
    so they keep torch's default.
    """
    return _lookup(name)[3]


# networks that train at the same speed as another (the same layers; a ReLU on the output costs
# nothing): the time estimates read one's measured speed for the other (the tour trains both, and
# said "about 4 min" for one beside "about 75 s" for the other, from one slow run under load)
_SAME_SPEED = {"seed_convnet": "convnet"}


def speed_family(name: str) -> str:
    """The name whose measured speed stands for ``name``'s (itself, unless :data:`_SAME_SPEED` says)."""
    return _SAME_SPEED.get(name, name)


def _lookup(name: str):
    if name not in _REGISTRY:
        raise ConfigError(f"model {name!r} is unknown; choose one of {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def create_model(name: str, members: int = 1, input_norm: str = "standardize", tta: bool = False,
                 **kwargs: Any) -> nn.Module:
    """Build the model called ``name``; ``kwargs`` (such as ``width``) go to its factory.

    ``members`` > 1 builds an :class:`Ensemble` of that many independently initialised copies.
    ``input_norm`` is recorded on the model (``model.input_norm``) so that everything that feeds
    it images normalises them as in training (:func:`signlab.normalize.normalize`). ``tta`` is
    recorded as ``model.tta``: whether predictions average the image's 1-pixel shifts
    (:func:`signlab.predict.forward_views`).
    """
    factory, _, widths, _ = _lookup(name)
    if not widths or kwargs.get("width") is None:  # a model without widths, or its own default width
        kwargs.pop("width", None)
    model = Ensemble([factory(**kwargs) for _ in range(members)]) if members > 1 else factory(**kwargs)
    for m in [model, *getattr(model, "members", [])]:  # a member taken alone still normalises as trained
        m.input_norm = input_norm
        m.tta = tta
    return model


def build_model(cfg: "TrainConfig") -> nn.Module:
    """The model a run's settings describe (kind, ensemble size, width, input normalisation).

    Its initial weights come from ``cfg.seed``, so the same settings start from the same weights;
    the seeding happens in a forked generator, so loading a model never disturbs the random stream
    of training elsewhere in the process. Training, loading a run and the benches all build
    models here.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        return create_model(cfg.model, members=cfg.ensemble, input_norm=cfg.input_norm, tta=cfg.tta, width=cfg.width)


def first_network(model: nn.Module) -> nn.Module:
    """The model itself, or for an :class:`Ensemble` its first member (what the Kernels page shows)."""
    return model.members[0] if isinstance(model, Ensemble) else model


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def conv_layers(model: nn.Module) -> list[tuple[str, nn.Conv2d]]:
    """The model's convolutions in forward order, with their qualified names.

    For an :class:`Ensemble`, those of its first member: the Kernels page and the feature maps show
    one network's view, which is what a student can read (the members share an architecture).
    """
    if isinstance(model, Ensemble):
        return [(f"members.0.{n}", m) for n, m in conv_layers(first_network(model))]
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]


@contextmanager
def watch(modules: "nn.Module | list[nn.Module]", fn: Callable[..., None], pre: bool = False) -> Iterator[None]:
    """Call ``fn`` on each forward pass of ``modules`` made by this thread, while the block runs.

    ``fn(module, inputs, output)`` (``pre=True``: ``fn(module, inputs)``, before the layer runs).
    The dashboard keeps one copy of a run's model for every student (a cached resource), and a
    forward hook fires on every thread's forward pass, so a hook that only checked "during my
    call" would also collect a classmate's batch (the Map page once got 18,436 rows for 7,172
    images). Filtering on the thread that registered it keeps each caller's capture its own;
    forward passes never change an eval-mode model, so nothing else needs a lock. ``fn`` returns
    None: the layer's output is never replaced.
    """
    me = threading.get_ident()
    mods = [modules] if isinstance(modules, nn.Module) else list(modules)

    def hook(m: nn.Module, *args: Any) -> None:
        if threading.get_ident() == me:
            fn(m, *args)

    handles = [m.register_forward_pre_hook(hook) if pre else m.register_forward_hook(hook) for m in mods]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def first_weights(model: nn.Module) -> torch.Tensor | None:
    """A CPU copy of the first layer's weights: the first convolution's kernels (C_out, C_in, k, k),
    else the first linear layer's (24, 784) for logreg; None for a model with neither."""
    convs = conv_layers(model)
    if convs:
        return convs[0][1].weight.detach().cpu().clone()
    for m in model.modules():
        if isinstance(m, nn.Linear):
            return m.weight.detach().cpu().clone()
    return None


class Ensemble(nn.Module):
    """Several networks of one architecture whose predicted probabilities are averaged.

    Averaging independently initialised networks is the plainest way to make a model steadier on
    inputs unlike its training data: each member errs on different photos. In the robust preset's
    runs, single members reached 39-54% of the real-photo dev set and 98.6-99.99% of the dataset's
    test set; the three averaged, 47-55% and 99.8-100% (docs/real-photos.md).

    In training mode ``forward`` returns every member's logits, (B, K, 24), and the trainer gives
    each member its own cross-entropy loss, so they learn as if trained apart (on the same
    batches). In eval mode it returns the log of the members' mean probability, (B, 24), which
    softmax, argmax and cross-entropy treat exactly like logits.
    """

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.stack([m(x) for m in self.members], 1)  # (B, K, 24)
        if self.training:
            return logits
        log_p = torch.log_softmax(logits.float(), dim=2)
        return torch.logsumexp(log_p, dim=1) - math.log(len(self.members))  # (B, 24)


# --------------------------------------------------------------------------- the lecture's models
class LogisticRegression(nn.Module):
    """Multiclass logistic regression: scores = x W + b, one column of W per letter."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(NUM_PIXELS, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))  # (B, 784) -> (B, 24)


class LectureConvNet(nn.Module):
    """The lecture's ConvNet: three conv + max-pool stages and a linear layer on 50 features.

    The lecture writes each stage as conv, ReLU, max-pool. Here the pool comes first (conv,
    max-pool, ReLU; ``as_written=True`` keeps the lecture's order): the same function with the
    same gradients, because ReLU never changes which value of a window is the largest, so
    ``relu(max(window)) == max(relu(window))`` and a window whose largest value is not positive
    passes no gradient either way. The ReLU then runs on a quarter of the values: on a 2-core AVX2
    CPU the median training step took 2-25% less time in three sittings (docs/speed-research.md,
    Part 8), and training is the same to the bit (tests/test_models.py). The convolutions keep
    their indices (0, 3, 6), so weights saved by either order load into the other.
    """

    def __init__(self, output_relu: bool, as_written: bool = False) -> None:
        super().__init__()

        def stage(conv: nn.Conv2d) -> list[nn.Module]:
            pool, relu = nn.MaxPool2d(2), nn.ReLU()
            return [conv, relu, pool] if as_written else [conv, pool, relu]

        self.features = nn.Sequential(
            *stage(nn.Conv2d(1, 100, 5)),  # (B, 100, 24, 24) -> (B, 100, 12, 12)
            *stage(nn.Conv2d(100, 50, 3)),  # (B, 50, 10, 10) -> (B, 50, 5, 5)
            *stage(nn.Conv2d(50, 50, 3)),  # (B, 50, 3, 3) -> (B, 50, 1, 1)
        )
        self.classifier = nn.Linear(50, NUM_CLASSES)
        # The lecture's flaw, kept on purpose in seed_convnet: a ReLU on the logits zeroes every
        # negative score and its gradient, so letters whose scores go negative stop learning.
        self.output_relu = output_relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.classifier(self.features(x).flatten(1))  # (B, 50) -> (B, 24)
        return torch.relu(z) if self.output_relu else z


class MLP(nn.Module):
    """A small multilayer perceptron: 784 -> width -> width/2 -> 24 with ReLU and dropout (256 and 128 by default)."""

    def __init__(self, width: int = 256) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(NUM_PIXELS, width), nn.ReLU(), nn.Dropout(0.2),
            nn.Linear(width, width // 2), nn.ReLU(), nn.Dropout(0.2),
            nn.Linear(width // 2, NUM_CLASSES),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def model_kind(model: nn.Module) -> str:
    """``conv`` (has convolutions), ``logreg``, ``mlp`` or ``other``: which weights and which
    explanation a page can show (the Kernels page's tiles, the Classify page's template, Grad-CAM
    or input gradient)."""
    if conv_layers(model):
        return "conv"
    if isinstance(model, LogisticRegression):
        return "logreg"
    if isinstance(model, MLP):
        return "mlp"
    return "other"


def conv_bn(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    """3x3 convolution, batch norm, ReLU: the building block of the stronger CNNs."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class FastCNN(nn.Module):
    """Three conv + batch-norm + max-pool stages and a linear head on the flattened 3x3 maps.

    Sized for seconds-long training on a CPU: measured on 2 cores, a flatten head learned much
    faster than global average pooling at the same cost, and width 24 was the narrowest that
    reached 99.9% reliably across seeds (width 16 ranged from 98.9% to 99.9%).
    """

    def __init__(self, width: int = 24) -> None:
        super().__init__()
        w1, w2, w3 = width, 2 * width, (8 * width) // 3  # 24, 48, 64
        self.features = nn.Sequential(
            conv_bn(1, w1), nn.MaxPool2d(2),  # (B, w1, 14, 14)
            conv_bn(w1, w2), nn.MaxPool2d(2),  # (B, w2, 7, 7)
            conv_bn(w2, w3), nn.MaxPool2d(2),  # (B, w3, 3, 3)
        )
        self.classifier = nn.Linear(w3 * 9, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))  # (B, w3 * 9) -> (B, 24)


class DeepCNN(nn.Module):
    """A deeper, wider CNN: two conv-bn blocks a stage, three stages, global pooling, dropout."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            conv_bn(1, w), conv_bn(w, w), nn.MaxPool2d(2),  # (B, w, 14, 14)
            conv_bn(w, 2 * w), conv_bn(2 * w, 2 * w), nn.MaxPool2d(2),  # (B, 2w, 7, 7)
            conv_bn(2 * w, 4 * w), conv_bn(4 * w, 4 * w), nn.AdaptiveAvgPool2d(1),  # (B, 4w, 1, 1)
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(0.3), nn.Linear(4 * w, NUM_CLASSES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class WhitenStem(nn.Module):
    """A frozen first layer: the whitened principal directions of the training images' 2x2 patches.

    CIFAR-10 speed records start this way (airbench): instead of learning the first kernels, take
    the eigenvectors of the patches' covariance, scaled so every direction has unit variance, and
    both signs of each (4 directions -> 8 channels, so the ReLU after it keeps all information).
    With stride 2 it also halves the image, so the learned layers run on 14x14 maps. It is fitted
    once, from the training images, before the first step (:meth:`fit`); ``fitted`` is saved with
    the weights, so a loaded or continued model is never refitted.
    """

    def __init__(self, k: int = 2, eps: float = 5e-3) -> None:
        super().__init__()
        self.k, self.eps = k, eps
        self.conv = nn.Conv2d(1, 2 * k * k, k, stride=k)
        self.conv.weight.requires_grad_(False)
        self.conv.bias.requires_grad_(False)
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def fit(self, x: torch.Tensor, max_patches: int = 200_000) -> None:
        """Fit the filters to normalised training images ``x`` (N, 1, 28, 28); 5,000 are plenty."""
        k = self.k
        p = nn.functional.unfold(x.float().cpu(), k, stride=k).transpose(1, 2).reshape(-1, k * k)  # (P, 4)
        g = torch.Generator().manual_seed(0)
        p = p[torch.randperm(len(p), generator=g)[:max_patches]]
        mu = p.mean(0)
        eigval, eigvec = torch.linalg.eigh(torch.cov(p.T))
        w = (eigvec / torch.sqrt(eigval.clamp_min(0) + self.eps)).T  # (4, 4): a whitened direction a row
        b = -(w @ mu)
        dev = self.conv.weight.device
        self.conv.weight.copy_(torch.cat([w, -w]).reshape(-1, 1, k, k).to(dev))
        self.conv.bias.copy_(torch.cat([b, -b]).to(dev))
        self.fitted.fill_(True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)  # (B, 8, 14, 14)


class S2Net(nn.Module):
    """The fast preset's network: a frozen whitening stem, then three conv + batch-norm stages.

    Found for issue #18 (docs/speed-research.md): against ``fastcnn`` it costs a third per step
    (the learned convolutions run on 14x14 maps, not 28x28) and reaches 99.9% test accuracy in
    fewer steps. ``width`` is the first stage's; the later two have 4/3 of it (48 -> 64, 64).
    """

    def __init__(self, width: int = 48) -> None:
        super().__init__()
        w1, w2 = width, (4 * width) // 3
        self.whiten = WhitenStem()
        self.features = nn.Sequential(
            conv_bn(8, w1), nn.MaxPool2d(2),  # (B, w1, 7, 7)
            conv_bn(w1, w2), nn.MaxPool2d(2),  # (B, w2, 3, 3)
            conv_bn(w2, w2),  # (B, w2, 3, 3)
        )
        self.classifier = nn.Linear(w2 * 9, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.whiten(x))  # (B, 8, 14, 14)
        return self.classifier(self.features(h).flatten(1))  # (B, w2 * 9) -> (B, 24)


def fit_to_data(model: nn.Module, images: Callable[[], torch.Tensor]) -> None:
    """Fit every unfitted data-dependent layer (a :class:`WhitenStem`) to normalised images.

    ``images()`` is called only when such a layer exists, so other models, and a loaded or
    continued s2net (already fitted), cost nothing here.
    """
    layers = [m for m in model.modules() if isinstance(m, WhitenStem) and not bool(m.fitted)]
    if layers:
        x = images()
        for m in layers:
            m.fit(x)


@register_model("logreg", "Multiclass logistic regression: one 28x28 weight template per letter (the lecture's first model)",
                cpu_threads=1)
def _logreg() -> nn.Module:
    return LogisticRegression()


@register_model("mlp", "Multilayer perceptron: two hidden layers, of 256 and 128 units by default", widths=(64, 128, 192, 256),
                cpu_threads=1)
def _mlp(width: int = 256) -> nn.Module:
    return MLP(width)


@register_model("seed_convnet", "The lecture's ConvNet as written, ReLU on the output logits included (its flaw)")
def _seed_convnet() -> nn.Module:
    return LectureConvNet(output_relu=True)


@register_model("convnet", "The lecture's ConvNet with the flaw fixed: no ReLU on the output logits")
def _convnet() -> nn.Module:
    return LectureConvNet(output_relu=False)


@register_model("fastcnn", "Three 3x3 conv + batch-norm + pooling stages, width 24: a strong model, quickly",
                widths=(8, 16, 24, 32))
def _fastcnn(width: int = 24) -> nn.Module:
    return FastCNN(width)


@register_model("s2net", "A frozen whitening layer, then three conv + batch-norm stages on half-size maps: "
                         "the fastest to 99.9%", widths=(24, 32, 48, 64))
def _s2net(width: int = 48) -> nn.Module:
    return S2Net(width)


@register_model("deepcnn", "Six conv + batch-norm layers with dropout, width 32: the deepest", widths=(16, 24, 32, 48))
def _deepcnn(width: int = 32) -> nn.Module:
    return DeepCNN(width)


# --------------------------------------------------------------------------- summaries
def layer_summary(model_or_name: nn.Module | str, batch_size: int = 1) -> list[dict[str, Any]]:
    """The layer table of a model as data: one dict per layer (via torchinfo).

    Keys: ``layer`` (indented name), ``depth``, ``type``, ``output_shape`` (list), ``parameters``,
    ``mult_adds``. Computed on the CPU so it never touches (or moves the model to) a GPU.
    """
    from torchinfo import summary

    model = create_model(model_or_name) if isinstance(model_or_name, str) else model_or_name
    stats = summary(model, input_size=(batch_size, 1, IMAGE_SIZE, IMAGE_SIZE), device="cpu",
                    verbose=0, col_names=("output_size", "num_params", "mult_adds"))
    rows = []
    for layer in stats.summary_list:
        if layer.depth == 0:  # the model itself; its totals are in summary_totals()
            continue
        rows.append({
            "layer": "  " * (layer.depth - 1) + f"{layer.class_name} ({layer.var_name})",
            "depth": layer.depth,
            "type": layer.class_name,
            "output_shape": list(layer.output_size),
            "parameters": int(layer.num_params) if not layer.is_recursive else 0,
            "mult_adds": int(layer.macs),
        })
    # torchinfo gives a container the parameters times its output size, not its layers' work: a
    # group's row is the sum of its leaf layers, so the rows add up to summary_totals' mult-adds
    for i, row in enumerate(rows):
        inside = []
        for later in rows[i + 1:]:
            if later["depth"] <= row["depth"]:
                break
            inside.append(later)
        leaves = [r for j, r in enumerate(inside) if j + 1 == len(inside) or inside[j + 1]["depth"] <= r["depth"]]
        if leaves:
            row["mult_adds"] = sum(r["mult_adds"] for r in leaves)
    return rows


@functools.cache
def mult_adds(name: str) -> int:
    """Mult-adds of the registered network ``name`` for one image (its default width), computed once
    a process: the work an image costs, for guessing a speed this machine has not measured."""
    return summary_totals(name)["mult_adds"]


def summary_totals(model_or_name: nn.Module | str) -> dict[str, int]:
    """Total parameters and mult-adds for one image."""
    from torchinfo import summary

    model = create_model(model_or_name) if isinstance(model_or_name, str) else model_or_name
    stats = summary(model, input_size=(1, 1, IMAGE_SIZE, IMAGE_SIZE), device="cpu", verbose=0)
    return {"parameters": int(stats.total_params), "mult_adds": int(stats.total_mult_adds)}
