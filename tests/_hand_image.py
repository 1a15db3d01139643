"""A drawn open hand that MediaPipe's hand models take for a hand: for tests of the hand detector.

No photo of a real hand is shipped with the project (the development photos have no licence), so
the tests draw one: a skin-coloured palm, four fingers, a thumb and a forearm on a plain wall,
blurred and softly lit. The palm detector gives it about 0.95 and the landmark model about 0.97.
"""
from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SKIN = (198, 134, 100)
WALL = (230, 230, 225)


def drawn_hand(size: int = 320, skin: tuple[int, int, int] = SKIN, wall: tuple[int, int, int] = WALL) -> Image.Image:
    """An RGB ``size`` x ``size`` image of an open right hand, fingers up, in the middle of the frame."""
    w = size * 2  # drawn at twice the size, then shrunk: smooth edges
    img = Image.new("RGB", (w, w), wall)
    d = ImageDraw.Draw(img)
    cx, cy, pw = w * 0.5, w * 0.62, w * 0.30
    darker = tuple(int(c * 0.92) for c in skin)
    d.rounded_rectangle([cx - pw * 0.42, cy + pw * 0.3, cx + pw * 0.42, w * 1.1], radius=int(pw * 0.2), fill=darker)
    d.ellipse([cx - pw / 2, cy - pw / 2, cx + pw / 2, cy + pw / 2 * 1.05], fill=skin)
    for i, length in enumerate((0.95, 1.05, 0.98, 0.78)):  # index, middle, ring, little finger
        angle = math.radians(-90 + (i - 1.5) * 9)
        bx, by = cx + (i - 1.5) * pw * 0.24, cy - pw * 0.40
        fl, fw = w * 0.27 * length, pw * 0.20
        ex, ey = bx + fl * math.cos(angle), by + fl * math.sin(angle)
        d.line([bx, by, ex, ey], fill=skin, width=int(fw))
        d.ellipse([ex - fw / 2, ey - fw / 2, ex + fw / 2, ey + fw / 2], fill=skin)
        for t in (0.35, 0.65):  # knuckle creases
            kx, ky = bx + (ex - bx) * t, by + (ey - by) * t
            d.line([kx - fw * 0.35, ky, kx + fw * 0.35, ky], fill=tuple(int(c * 0.8) for c in skin), width=2)
        d.ellipse([ex - fw * 0.28, ey - fw * 0.1, ex + fw * 0.28, ey + fw * 0.55],
                  fill=tuple(min(255, int(c * 1.08)) for c in skin))  # the nail
    tb = (cx - pw * 0.45, cy + pw * 0.05)
    te = (tb[0] + w * 0.2 * math.cos(math.radians(-150)), tb[1] + w * 0.2 * math.sin(math.radians(-150)))
    d.line([*tb, *te], fill=skin, width=int(pw * 0.24))
    d.ellipse([te[0] - pw * 0.12, te[1] - pw * 0.12, te[0] + pw * 0.12, te[1] + pw * 0.12], fill=skin)
    a = np.asarray(img.filter(ImageFilter.GaussianBlur(3.0)), dtype=np.float32)
    xx = np.mgrid[0:w, 0:w][1] / w
    a = a * (0.85 + 0.3 * (1 - xx))[..., None]  # light from the left
    a = a + np.random.default_rng(0).normal(0, 4, a.shape)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).resize((size, size), Image.Resampling.LANCZOS)


def hand_in_room(width: int = 640, height: int = 480, at: tuple[int, int] = (260, 120), size: int = 320) -> Image.Image:
    """The drawn hand pasted into a larger, landscape frame of the same wall (a photo with room around the hand)."""
    frame = Image.new("RGB", (width, height), WALL)
    frame.paste(drawn_hand(size), at)
    return frame
