"""Running a model on images: pixels to float tensors, and logits in eval mode in batches.

Evaluation, the embedding map, calibration and the trainer's validation share these, so none of
them needs the trainer.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .normalize import normalize_for


def to_float_images(images: np.ndarray | torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 (N, 28, 28) or float 0..1 arrays -> float tensor (N, 1, 28, 28) in [0, 1]."""
    t = torch.as_tensor(images)
    if t.dtype == torch.uint8:
        t = t.to(device).float().div_(255.0)
    else:
        t = t.to(device=device, dtype=torch.float32)
    return t.reshape(-1, 1, 28, 28)


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int = 2048) -> torch.Tensor:
    """Logits (N, 24) for float images (N, 1, 28, 28) in [0, 1], in eval mode, normalised here."""
    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device
    out = [model(normalize_for(model, x[i:i + batch_size].to(dev))).float() for i in range(0, len(x), batch_size)]
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, 24)
