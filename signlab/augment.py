"""Augmentation on whole batches of tensors, on the training device (no per-sample Python).

``affine`` applies small random shifts, rotations and scaling with one ``affine_grid`` +
``grid_sample`` call for the batch. ``photometric`` makes dataset images look more like photos
(brightness, contrast, gamma, blur, noise, random inversion of the background), for the robust
preset. Both take and return float images in [0, 1], shape (B, 1, 28, 28), and draw their
randomness from the given generator so a seed reproduces a run.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .config import FRAMINGS  # TrainConfig.photo_framing's choices, declared with it


def _uniform(n: int, lo: float, hi: float, g: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.rand(n, generator=g, device=device) * (hi - lo) + lo


def affine(x: torch.Tensor, g: torch.Generator, max_shift: float = 0.075, max_rotate_deg: float = 15.0,
           scale: tuple[float, float] = (0.87, 1.18), padding: str = "border") -> torch.Tensor:
    """Random shift (fraction of the image), rotation and zoom for every image of the batch.

    The defaults (shifts up to 7.5% of the image, 15 degrees, zoom 0.87-1.18) were the best of
    four strengths tried on the fast preset: weaker augmentation overfitted (98.5% test accuracy
    at a third of this strength), stronger cost accuracy. The shift is drawn before the zoom and
    the turn, which carry it with them: measured on the image, up to 10% (one image in ten moves
    more than 7.5% on an axis).

    ``scale`` below 1 zooms out: the hand gets smaller and the frame fills with ``padding``
    ("border" repeats the edge pixels, "reflection" mirrors the image), as in photos where the
    hand does not fill the frame.
    """
    b, dev = x.shape[0], x.device
    angle = _uniform(b, -max_rotate_deg, max_rotate_deg, g, dev) * (math.pi / 180)
    s = 1.0 / _uniform(b, scale[0], scale[1], g, dev)  # grid scale is the inverse of the zoom
    tx = _uniform(b, -max_shift, max_shift, g, dev) * 2  # grid coordinates span [-1, 1]
    ty = _uniform(b, -max_shift, max_shift, g, dev) * 2
    cos, sin = torch.cos(angle) * s, torch.sin(angle) * s
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)  # (B, 2, 3)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    # border padding repeats the edge, like the plain backgrounds of the dataset's crops
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=padding, align_corners=False)




def shift(x: torch.Tensor, g: torch.Generator, pad: int = 2) -> torch.Tensor:
    """Move every image by a random whole number of pixels, up to ``pad`` each way.

    Edges are repeated (replicate padding), then a 28x28 window is cut at a random offset with one
    gather for the batch. For short runs it beat ``affine`` on both counts (docs/speed-research.md):
    a quarter of the cost per step, and 99.97% against 98.93% test accuracy after 2.5 epochs.
    """
    b, _, h, w = x.shape
    xp = F.pad(x, (pad,) * 4, mode="replicate")  # (B, 1, h + 2p, w + 2p)
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=g, device=x.device)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=g, device=x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, :, None]  # (B, h, 1)
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, :]  # (B, 1, w)
    return xp[torch.arange(b, device=x.device)[:, None, None], 0, rows, cols].unsqueeze(1)  # (B, 1, h, w)




def photo_like(x: torch.Tensor, g: torch.Generator, share: float = 1.0, framing: str = "wide") -> torch.Tensor:
    """The robust preset's augmentation: make dataset crops look like photos of a hand in a room.

    A ``share`` of the batch (all by default: on the real-photo dev set a half share gave 32%
    against 34-49% for all) gets a photo-like framing with photometric changes; the rest gets the
    ordinary affine augmentation, which keeps Sign Language MNIST's own test accuracy high. Half
    of all images are mirrored: a left hand signs the mirror image of a right hand's letter, and
    the dataset's signers used one hand (on the dev photos, mirroring alone took 18% to 49%).

    ``framing="wide"``: a strong zoom-out (the hand down to 60-110% of the frame, as in a centre
    crop of a webcam photo), shifts up to 12% and rotation up to 15 degrees, the uncovered frame a
    random plain shade (a wall). ``framing="detector"``: crops like the hand detector's square
    (1.5 times the hand's landmark box, centred on it): the hand at 62-90% of the frame, shifts up
    to 6%, rotation up to 20 degrees, and the uncovered frame half the time a plain wall, half the
    time the crop's own edge repeated (the detector's crop pads a photo's edge that way).
    """
    if framing not in FRAMINGS:
        raise ValueError(f"framing: {framing!r} is unknown; choose one of {', '.join(FRAMINGS)}")
    b, dev = x.shape[0], x.device
    ones = torch.ones_like(x)
    if framing == "wide":
        both = affine(torch.cat([x, ones], 1), g, max_shift=0.12, max_rotate_deg=15.0, scale=(0.6, 1.1),
                      padding="zeros")  # (B, 2, 28, 28): the image and where it landed
        img, mask = both[:, :1], both[:, 1:]
        wall = _uniform(b, 0.2, 1.0, g, dev).view(b, 1, 1, 1)
        framed = img * mask + wall * (1 - mask)
    else:
        # one geometry for the image, its landing mask and its edge-repeated version: same generator state
        state = g.get_state()
        both = affine(torch.cat([x, ones], 1), g, max_shift=0.06, max_rotate_deg=20.0, scale=(0.62, 0.9),
                      padding="zeros")
        g.set_state(state)
        edge = affine(x, g, max_shift=0.06, max_rotate_deg=20.0, scale=(0.62, 0.9), padding="border")
        img, mask = both[:, :1], both[:, 1:]
        wall = _uniform(b, 0.2, 1.0, g, dev).view(b, 1, 1, 1)
        use_wall = (torch.rand(b, generator=g, device=dev) < 0.5).view(b, 1, 1, 1)
        framed = torch.where(use_wall, img * mask + wall * (1 - mask), edge)
    photo = photometric(framed, g)
    pick = (torch.rand(b, generator=g, device=dev) < share).view(b, 1, 1, 1)
    x = torch.where(pick, photo, affine(x, g))
    flip = (torch.rand(b, generator=g, device=dev) < 0.5).view(b, 1, 1, 1)
    return torch.where(flip, x.flip(3), x)


def photometric(x: torch.Tensor, g: torch.Generator, invert_p: float = 0.0) -> torch.Tensor:
    """Random brightness, contrast, gamma, blur and noise; optional random inversion."""
    b, dev = x.shape[0], x.device
    shape = (b, 1, 1, 1)
    gamma = torch.exp(_uniform(b, -0.3, 0.3, g, dev)).view(shape)
    x = x.clamp(1e-4, 1).pow(gamma)
    contrast = _uniform(b, 0.7, 1.3, g, dev).view(shape)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * contrast + mean + _uniform(b, -0.1, 0.1, g, dev).view(shape)
    # blur a third of the batch with a 3x3 box filter mixed in at a random strength
    blur = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    w = (_uniform(b, 0, 0.6, g, dev) * (torch.rand(b, generator=g, device=dev) < 0.33)).view(shape)
    x = x * (1 - w) + blur * w
    x = x + torch.randn(x.shape, generator=g, device=dev) * _uniform(b, 0, 0.02, g, dev).view(shape)
    if invert_p > 0:
        flip = (torch.rand(b, generator=g, device=dev) < invert_p).view(shape)
        x = torch.where(flip, 1 - x, x)
    return x.clamp(0, 1)
