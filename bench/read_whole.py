"""Where the photo path reads an image whole: how far images are from their own 28x28 blocks.

    python bench/read_whole.py [DIR ...] [--images 100]

``signlab.preprocess.read_whole`` reads an upload whole, at its own framing, when it is a 28x28 image
enlarged in blocks of pixels (a dataset image, as the Draw tab and most image viewers enlarge one),
and asks the hand detector otherwise. The test is ``preprocess.block_difference`` (the mean difference
from the image's own 28x28 blocks enlarged again, and that over the image's contrast) against
``ENLARGED_ERROR`` and ``ENLARGED_CONTRAST``. This prints the smallest and largest of both for the
dataset's test images enlarged several ways, and for every photo in each DIR (``<LETTER>/<image>`` folders, such as the
development photos) as it is and darkened to 0.3 and 0.15 of its brightness (a dim room), with how
many of each would be read whole. Every enlarged image should be read whole and no photo.
"""
from __future__ import annotations

import argparse
import importlib
import io
from pathlib import Path

import numpy as np
from PIL import Image

run_main = importlib.import_module("_common").run_main  # also puts the project on sys.path

from signlab.data import load_dataset  # noqa: E402
from signlab.preprocess import (ENLARGED_CONTRAST, ENLARGED_ERROR, SMALL_IMAGE, block_difference, is_enlarged,  # noqa: E402
                                load_gray)

SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
ENLARGED = {  # name: (enlarged to, saved as, then reduced to)
    "224 px, PNG": (224, "PNG", None), "224 px, JPEG": (224, "JPEG", None), "512 px, PNG": (512, "PNG", None),
    "300 px, JPEG": (300, "JPEG", None), "1000 px reduced to 512, PNG": (1000, "PNG", 512),
}


def _encoded(image: np.ndarray, size: int, fmt: str, reduced: int | None) -> bytes:
    img = Image.fromarray(image).resize((size, size), Image.Resampling.NEAREST)
    if reduced:
        img = img.resize((reduced, reduced), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buf.getvalue()


def _line(name: str, errors: list[tuple[float, float]]) -> str:
    e = np.array(errors)  # (N, 2): the mean difference, and over the contrast
    whole = sum(is_enlarged(m, c) for m, c in errors)
    return (f"{name:<52} {len(e):>5} {e[:, 0].min():>7.4f} {e[:, 0].max():>7.4f} {e[:, 1].min():>7.4f} "
            f"{e[:, 1].max():>7.4f} {whole:>6}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dirs", nargs="*", type=Path, help="folders of <LETTER>/<image> photos")
    ap.add_argument("--images", type=int, default=100, help="test images enlarged each way (default 100)")
    args = ap.parse_args()
    print(f"read whole: a mean difference under {ENLARGED_ERROR} and under {ENLARGED_CONTRAST} of the contrast "
          f"(images over {SMALL_IMAGE} px a side)")
    print(f"{'images':<52} {'count':>5} {'mean':>7} {'':>7} {'/contr':>7} {'':>7} {'whole':>6}")
    test = load_dataset().test.images[:args.images]  # (N, 28, 28) uint8
    for name, (size, fmt, reduced) in ENLARGED.items():
        errors = [block_difference(load_gray(_encoded(a, size, fmt, reduced))[0]) for a in test]
        print(_line(f"test images enlarged to {name}", errors))
    for folder in args.dirs:
        files = sorted(f for f in folder.rglob("*") if f.suffix.lower() in SUFFIXES)
        by_light: dict[float, list[tuple[float, float]]] = {1.0: [], 0.3: [], 0.15: []}
        for f in files:
            gray, _ = load_gray(f.read_bytes(), str(f))
            if max(gray.shape) <= SMALL_IMAGE:
                continue
            for light, errors in by_light.items():  # darkened, then 8-bit again as a dim photo is
                errors.append(block_difference((np.round(gray * light * 255) / 255).astype(np.float32)))
        for light, errors in by_light.items():
            if errors:
                print(_line(f"{folder.name}" + ("" if light == 1.0 else f" at {light} of its brightness"), errors))


if __name__ == "__main__":
    run_main(main)
