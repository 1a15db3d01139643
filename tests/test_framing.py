"""The detector-like framing of the photo-like augmentation, and its setting in TrainConfig."""
from __future__ import annotations

import pytest
import torch

from signlab import augment
from signlab.config import TrainConfig, preset
from signlab.errors import ConfigError


def test_detector_framing_is_reproducible_and_in_range():
    x = torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    a = augment.photo_like(x, torch.Generator().manual_seed(0), framing="detector")
    b = augment.photo_like(x, torch.Generator().manual_seed(0), framing="detector")
    assert a.shape == x.shape and torch.equal(a, b)
    assert float(a.min()) >= 0 and float(a.max()) <= 1
    wide = augment.photo_like(x, torch.Generator().manual_seed(0))
    assert not torch.equal(a, wide)
    with pytest.raises(ValueError, match="framing"):
        augment.photo_like(x, torch.Generator().manual_seed(0), framing="tight")


def test_photo_framing_setting():
    assert TrainConfig().photo_framing == "wide" and preset("robust").photo_framing == "wide"
    assert preset("robust", photo_framing="detector").photo_framing == "detector"
    with pytest.raises(ConfigError, match="photo_framing"):
        TrainConfig(photo_framing="tight")
