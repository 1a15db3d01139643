"""Muon for the convolution filters, AdamW for everything else, as one optimiser (``optimizer="muon"``).

Muon (Keller Jordan, 2024; the optimiser behind the later CIFAR-10 and nanoGPT speed records)
takes the momentum of a weight matrix's gradient and replaces it by the nearest orthogonal matrix,
found by five Newton-Schulz iterations: every direction of the matrix moves by the same amount,
so the directions a plain gradient barely touches learn as fast as the strong ones. A convolution's
filters are a matrix once each filter is flattened: ``(out, in, k, k)`` -> ``(out, in * k * k)``.

Muon is only for such matrices. The linear classifier, the batch-norm scales and every bias keep
AdamW, as in the records. Each Muon update is scaled by ``0.2 * sqrt(max(rows, cols))`` so that
its size matches a typical AdamW update's (Moonshot AI's "Muon is scalable", 2025): the learning
rate and its schedule then mean what they mean for AdamW. The new numbers are the filters' rate
against the run's and Muon's momentum (:data:`MUON_LR_SCALE`, :data:`MUON_MOMENTUM`); the
filters' weight decay, ``lr * weight_decay`` a step as in AdamW, is taken at their own (higher) rate.

Why our own class and not ``torch.optim.Muon``: that one takes 2-D parameters only (no convolution
filters), and two optimisers side by side would need two state files and a scheduler each. Here
each parameter group says which rule it follows (``"muon": True``); the state is one
``state_dict`` that a continued run restores like any other optimiser's.

On s2net (the fast preset, lr 4e-3, fp32, a 2-core Intel Xeon) seeds 0-9 reached 99.9% test
accuracy in 224.5 steps on average against 231.5 with AdamW alone at the same rate (the worst seed
310 both), and each step took 11% longer (10.5 against 9.4 ms): so it is a choice to learn from,
not the fast preset's optimiser (docs/speed-research.md, Part 24).
"""
from __future__ import annotations

import math
from typing import Any, Iterable

import torch

from .config import MUON_LR_SCALE  # declared with the settings, whose help names it

# Newton-Schulz coefficients of the quintic iteration that Muon's authors tuned to converge in 5
# steps (torch.optim.Muon's defaults too)
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)

# Muon's momentum: with MUON_LR_SCALE (the filters' rate against the run's, signlab.config), on s2net
# (the fast preset at lr 4e-3) 3x and 0.95 reached 99.9% in the fewest steps over seeds 0-4 of the
# settings tried (docs/speed-research.md, Part 24)
MUON_MOMENTUM = 0.95


def orthogonalize(g: torch.Tensor, steps: int = 5) -> torch.Tensor:
    """The nearest (semi-)orthogonal matrix to ``g`` (rows, cols), approximately: U V^T of its SVD."""
    a, b, c = NS_COEFFICIENTS
    x = g / (g.norm() + 1e-7)  # spectral norm <= 1, where the iteration converges
    tall = x.size(0) > x.size(1)
    if tall:  # iterate on the smaller Gram matrix
        x = x.T
    for _ in range(steps):
        gram = x @ x.T  # (r, r), r = min(rows, cols)
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if tall else x


def uses_muon(p: torch.Tensor) -> bool:
    """Whether Muon updates this parameter: the filters of a convolution (4-D weights)."""
    return p.ndim == 4


def muon_groups(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each optimiser group split in two: the convolution filters (``"muon": True``, at
    :data:`MUON_LR_SCALE` times the group's ``lr_scale``), then the rest. A group left empty is dropped."""
    out = []
    for g in groups:
        filters = [p for p in g["params"] if uses_muon(p)]
        rest = [p for p in g["params"] if not uses_muon(p)]
        if filters:
            out.append({**g, "params": filters, "muon": True, "lr_scale": g.get("lr_scale", 1.0) * MUON_LR_SCALE})
        if rest:
            out.append({**g, "params": rest, "muon": False})
    return out


class MuonAdamW(torch.optim.Optimizer):
    """Muon on the parameter groups marked ``"muon": True``, AdamW (decoupled weight decay) on the rest.

    Every group has ``lr`` and ``weight_decay``; a Muon group also ``momentum`` (Nesterov) and
    ``ns_steps``, an AdamW group ``betas`` and ``eps``.
    """

    def __init__(self, groups: Iterable[dict[str, Any]], lr: float, weight_decay: float = 0.0,
                 momentum: float = MUON_MOMENTUM, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 ns_steps: int = 5) -> None:
        defaults = dict(lr=lr, weight_decay=weight_decay, momentum=momentum, betas=betas, eps=eps,
                        ns_steps=ns_steps, muon=False)
        super().__init__(list(groups), defaults)
        for group in self.param_groups:
            if group["muon"] and any(p.ndim < 2 for p in group["params"]):
                raise ValueError("a Muon group holds matrices (or filters) only")

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:  # noqa: D401 - torch's signature
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, wd = group["lr"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if group["muon"]:
                    self._muon(p, state, lr, wd, group["momentum"], group["ns_steps"])
                else:
                    self._adamw(p, state, lr, wd, group["betas"], group["eps"])
        return loss

    @staticmethod
    def _muon(p: torch.Tensor, state: dict[str, Any], lr: float, wd: float, momentum: float, ns_steps: int) -> None:
        g = p.grad
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = torch.zeros_like(p)
        buf = state["momentum_buffer"]
        buf.mul_(momentum).add_(g)
        g = g.add(buf, alpha=momentum)  # Nesterov
        matrix = g.reshape(len(g), -1)  # (out, in * k * k)
        update = orthogonalize(matrix.float(), ns_steps).to(p.dtype)
        scale = 0.2 * math.sqrt(max(matrix.shape))  # the size of an AdamW update (see the module's docs)
        p.mul_(1 - lr * wd)
        p.add_(update.view_as(p), alpha=-lr * scale)

    @staticmethod
    def _adamw(p: torch.Tensor, state: dict[str, Any], lr: float, wd: float, betas: tuple[float, float],
               eps: float) -> None:
        g = p.grad
        if "step" not in state:
            state["step"] = torch.zeros((), dtype=torch.float32)
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros_like(p)
        state["step"] += 1
        t = float(state["step"])
        b1, b2 = betas
        state["exp_avg"].lerp_(g, 1 - b1)
        state["exp_avg_sq"].mul_(b2).addcmul_(g, g, value=1 - b2)
        p.mul_(1 - lr * wd)
        denom = (state["exp_avg_sq"].sqrt() / math.sqrt(1 - b2 ** t)).add_(eps)
        p.addcdiv_(state["exp_avg"], denom, value=-lr / (1 - b1 ** t))
