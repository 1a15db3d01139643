"""The network's health while it trains: gradient and weight sizes, dead ReLUs, clipped logits.

:class:`HealthMonitor` is a Trainer callback. At every logged step (every ``BatchEnd`` event, so
at the run's ``log_every``) it hands ``log`` one plain record::

    {"type": "health", "step": 120, "epoch": 1,
     "layers": {"features.0": {"grad_norm": 0.41, "weight_norm": 5.2}, ...},
     "dead": {"features.2": 0.12, ...},          # share of ReLU units dead on that batch
     "dead_logits": 0.63}                          # only for a model with a ReLU on its logits

A ReLU unit (one feature, or one channel of a convolution) is *dead on a batch* when its output
is zero for every image of the batch (and every position of its map). ``dead_logits`` is the
share of (image, letter) scores that the lecture ConvNet's output ReLU clips to zero.

Cost: forward hooks stay registered, but they only look at the batch that is about to be logged
(one batch in ``log_every``); gradient and weight norms are read once, at that step's end, with a
single device-to-host copy. No Streamlit, no files: the run writer's ``log`` stores the records.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from .events import BatchEnd, FitEnd, FitStart, Logged, continued_steps, logged
from .models import LectureConvNet, first_network

Record = dict[str, Any]


def weight_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The layers whose weights are tracked: convolutions, linear layers and batch norms, in order."""
    return [(n, m) for n, m in model.named_modules()
            if isinstance(m, (nn.Conv2d, nn.Linear, nn.BatchNorm2d, nn.BatchNorm1d))
            and getattr(m, "weight", None) is not None]


def layer_labels(model: nn.Module) -> dict[str, str]:
    """A name a student can read for each layer the records name (its module name), as the charts'
    legend shows it: "conv 2 (features.0.0)", "batch norm after conv 2 (features.0.1)", "ReLU after
    conv 2 (features.0.2)", "output layer (classifier)". Convolutions are counted as the Kernels page
    counts them (a frozen whitening layer is conv 1)."""
    net = first_network(model)
    linears = [n for n, m in net.named_modules() if isinstance(m, nn.Linear)]
    labels: dict[str, str] = {}
    convs = dense = 0
    last = ""  # the last convolution or linear layer: what a batch norm or ReLU follows
    for name, m in net.named_modules():
        if isinstance(m, nn.Conv2d):
            convs += 1
            last = f"conv {convs}"
            labels[name] = f"{last} ({name})"
        elif isinstance(m, nn.Linear):
            dense += 1
            last = "output layer" if name == linears[-1] else f"linear {dense}"
            labels[name] = f"{last} ({name})"
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d, nn.ReLU)):
            kind = "ReLU" if isinstance(m, nn.ReLU) else "batch norm"
            labels[name] = f"{kind} after {last} ({name})" if last else f"{kind} ({name})"
    return labels


def relu_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The model's ReLU modules, in order (the ReLU of seed_convnet's logits is a function, not one)."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.ReLU)]


def dead_share(out: torch.Tensor) -> float:
    """Share of units whose output is zero for the whole batch.

    ``out`` is (B, C) for a dense layer or (B, C, H, W) for a convolution; a unit is a feature or
    a channel, dead when no image of the batch gives it a positive value anywhere.
    """
    alive = (out.detach() > 0).flatten(2).any(2) if out.ndim > 2 else out.detach() > 0  # (B, C)
    dead = int((~alive.any(0)).sum().item())
    return dead / max(alive.shape[1], 1)


def clipped_share(pre_logits: torch.Tensor) -> float:
    """Share of scores an output ReLU sets to zero: those not above zero before it."""
    return int((pre_logits.detach() <= 0).sum().item()) / max(pre_logits.numel(), 1)


class HealthMonitor:
    """Trainer callback: one health record per logged step, handed to ``log(record)``.

    ``every``: log only every ``every``-th ``BatchEnd`` (1, the default, follows the run's
    ``log_every``). An ensemble is watched through its first network, as the Kernels page shows it.
    """

    def __init__(self, log: Callable[[Record], None], every: int = 1) -> None:
        self.log, self.every = log, max(1, int(every))
        self._hooks: list[Any] = []
        self._dead: dict[str, float] = {}
        self._logits: float | None = None
        self._armed = False
        self._events = 0
        self._trainer = None
        self._layers: list[tuple[str, nn.Module]] = []

    # -- hooks: record only during the forward pass of a training batch that will be logged
    def _due(self) -> bool:
        t = self._trainer
        if t is None or not t.model.training:  # validation and prediction run in eval mode
            return False
        upcoming = t.step + 1  # the step whose forward pass runs now
        logged = upcoming % t.cfg.log_every == 0 or upcoming % t.steps_per_epoch == 0
        return logged and (self._events + 1) % self.every == 0

    def _relu_hook(self, name: str):
        def hook(_module: nn.Module, _inputs: Any, out: torch.Tensor) -> None:
            if self._armed or self._due():
                self._armed = True
                self._dead[name] = dead_share(out)
        return hook

    def _logits_hook(self, _module: nn.Module, _inputs: Any, out: torch.Tensor) -> None:
        if self._armed or self._due():
            self._armed = True
            self._logits = clipped_share(out)  # (B, 24) scores before the output ReLU

    def _attach(self, trainer) -> None:
        self._trainer = trainer
        net = first_network(trainer.model)
        self._layers = weight_layers(net)
        for name, m in relu_layers(net):
            self._hooks.append(m.register_forward_hook(self._relu_hook(name)))
        if isinstance(net, LectureConvNet) and net.output_relu:
            self._hooks.append(net.classifier.register_forward_hook(self._logits_hook))

    def _detach(self) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks.clear()
        self._trainer = None

    def snapshot(self, step: int, epoch: int) -> Record:
        """The record of the step that just ended: norms read now, ReLU shares from its forward pass."""
        norms: list[torch.Tensor] = []
        for _, m in self._layers:
            g = m.weight.grad
            norms.append(torch.stack([g.detach().float().norm() if g is not None else m.weight.new_zeros(()),
                                      m.weight.detach().float().norm()]))
        values = torch.stack(norms).cpu().tolist() if norms else []  # one host copy for every layer
        rec: Record = {"type": Logged.HEALTH, "step": step, "epoch": epoch,
                       "layers": {n: {"grad_norm": round(g, 6), "weight_norm": round(w, 5)}
                                  for (n, _), (g, w) in zip(self._layers, values)},
                       "dead": {k: round(v, 4) for k, v in self._dead.items()}}
        if self._logits is not None:
            rec["dead_logits"] = round(self._logits, 4)
        return rec

    def __call__(self, event, trainer) -> None:
        if isinstance(event, FitStart):
            self._attach(trainer)
        elif isinstance(event, BatchEnd):
            self._events += 1
            if self._events % self.every == 0:
                self.log(self.snapshot(event.step, event.epoch))
            self._dead, self._logits, self._armed = {}, None, False
        elif isinstance(event, FitEnd):
            self._detach()


# --------------------------------------------------------------------------- reading records back
def health_records(metrics: list[Record]) -> list[Record]:
    """The health records of a run's log (:meth:`signlab.runs.Run.metrics`), in log order, their
    steps counted over the whole run as the loss chart's are (:func:`signlab.events.continued_steps`)."""
    return continued_steps(logged(metrics, Logged.HEALTH))


def health_series(records: list[Record]) -> dict[str, Any]:
    """Plain series for the charts: steps, and per layer its gradient norms, weight norms, dead shares.

    Returns ``{"steps": [...], "grad": {layer: [...]}, "weight": {layer: [...]}, "dead": {relu: [...]},
    "dead_logits": [...] or None}``; a value missing at a step is None.
    """
    steps = [int(r["step"]) for r in records]
    grad: dict[str, list[float | None]] = {}
    weight: dict[str, list[float | None]] = {}
    dead: dict[str, list[float | None]] = {}
    order = list(dict.fromkeys(n for r in records for n in r.get("layers", {})))
    relus = list(dict.fromkeys(n for r in records for n in r.get("dead", {})))
    for n in order:
        grad[n] = [r.get("layers", {}).get(n, {}).get("grad_norm") for r in records]
        weight[n] = [r.get("layers", {}).get(n, {}).get("weight_norm") for r in records]
    for n in relus:
        dead[n] = [r.get("dead", {}).get(n) for r in records]
    logits = [r.get("dead_logits") for r in records]
    return {"steps": steps, "grad": grad, "weight": weight, "dead": dead,
            "dead_logits": logits if any(v is not None for v in logits) else None}
