"""Accuracy on the files people upload: the test images re-saved the ways real files come.

    python bench/upload_robustness.py RUN [--runs-dir runs] [--limit N] [--json]

Each Sign Language MNIST test image is written as a file in several ways (an upscaled RGB PNG, a
JPEG at quality 70, RGBA, 16-bit grey, a palette PNG, CMYK, a phone JPEG rotated by its EXIF tag,
a wider photo, a larger canvas with a plain border, brighter, darker and flatter copies) and every
file goes through the path of ``python -m signlab predict`` (``signlab.api.predict_files``: the one
preprocessing function, then the model). The table gives each variant's accuracy beside the clean
test accuracy of the same run, computed on the dataset tensors (``signlab.api.evaluate_run``).

Goal: changes of format only (size, colour mode, JPEG quality >= 70, 16-bit) cost at most one
point. Framing and lighting changes are reported as they are: the centre crop cannot undo a wide
border (the Classify page's crop sliders are the user's fix), and the per-image standardisation
undoes brightness and contrast only up to clipping.
"""
from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import run_main  # noqa: E402

import numpy as np  # noqa: E402
from PIL import Image, ImageEnhance  # noqa: E402

from signlab.api import evaluate_run, predict_files  # noqa: E402
from signlab.data import load_dataset  # noqa: E402
from signlab.labels import LETTERS  # noqa: E402
from signlab.runs import open_run  # noqa: E402

UP = 224  # the size of a typical phone or webcam crop of a hand
R = Image.Resampling


def _up(a: np.ndarray, size: int = UP) -> Image.Image:
    """A 28x28 uint8 image upscaled smoothly to a photo-like size (8-bit grey)."""
    return Image.fromarray(a).resize((size, size), R.BICUBIC)


def _save(img: Image.Image, fmt: str, **kw) -> bytes:
    if fmt == "PNG":
        kw.setdefault("compress_level", 1)  # lossless either way; level 1 keeps the benchmark quick
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _plain(a: np.ndarray) -> int:
    """The shade of a plain background for this image: the median of its outer ring."""
    ring = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    return int(np.median(ring))


def v_png_gray28(a):
    return _save(Image.fromarray(a), "PNG"), "png"


def v_rgb_png(a):
    return _save(_up(a).convert("RGB"), "PNG"), "png"


def v_jpeg70(a):
    return _save(_up(a).convert("RGB"), "JPEG", quality=70), "jpg"


def v_jpeg90(a):
    return _save(_up(a).convert("RGB"), "JPEG", quality=90), "jpg"


def v_rgba(a):
    img = _up(a).convert("RGBA")  # opaque: a screenshot or an editor's export
    return _save(img, "PNG"), "png"


def v_gray16(a):
    up = np.asarray(Image.fromarray(a.astype(np.float32), mode="F").resize((UP, UP), R.BICUBIC))
    return _save(Image.fromarray(np.clip(up * 257 + 0.5, 0, 65535).astype(np.uint16)), "PNG"), "png"


def v_gray16_28(a):
    return _save(Image.fromarray(a.astype(np.uint16) * 257), "PNG"), "png"


def v_palette(a):
    return _save(_up(a).convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=256), "PNG"), "png"


def v_cmyk(a):
    return _save(_up(a).convert("RGB").convert("CMYK"), "JPEG", quality=90), "jpg"


def v_exif_rotated(a):
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned 90 degrees counter-clockwise; viewers rotate it back clockwise
    img = _up(a).convert("RGB").transpose(Image.Transpose.ROTATE_90)
    return _save(img, "JPEG", quality=90, exif=exif.tobytes()), "jpg"


def v_wide(a):
    """A 4:3 landscape photo with the hand in the middle: the centre crop finds it."""
    img = Image.new("RGB", (UP * 4 // 3, UP), (_plain(a),) * 3)
    img.paste(_up(a).convert("RGB"), ((UP * 4 // 3 - UP) // 2, 0))
    return _save(img, "JPEG", quality=90), "jpg"


def v_border(a):
    """A larger canvas: the hand fills the middle 60% of the width, a plain border around it."""
    side = int(UP / 0.6)
    img = Image.new("RGB", (side, side), (_plain(a),) * 3)
    img.paste(_up(a).convert("RGB"), ((side - UP) // 2, (side - UP) // 2))
    return _save(img, "PNG"), "png"


def v_border_white(a):
    side = int(UP / 0.6)
    img = Image.new("RGB", (side, side), (255, 255, 255))
    img.paste(_up(a).convert("RGB"), ((side - UP) // 2, (side - UP) // 2))
    return _save(img, "PNG"), "png"


def _enhance(kind, factor):
    def f(a):
        img = _up(a).convert("RGB")
        img = (ImageEnhance.Brightness if kind == "brightness" else ImageEnhance.Contrast)(img).enhance(factor)
        return _save(img, "PNG"), "png"
    return f


# (name, group, maker); group "format" is held to the one-point goal
VARIANTS: list[tuple[str, str, Callable[[np.ndarray], tuple[bytes, str]]]] = [
    ("28x28 grey PNG (control)", "format", v_png_gray28),
    ("upscaled 224 RGB PNG", "format", v_rgb_png),
    ("JPEG quality 70 (224 RGB)", "format", v_jpeg70),
    ("JPEG quality 90 (224 RGB)", "format", v_jpeg90),
    ("RGBA PNG (224, opaque)", "format", v_rgba),
    ("16-bit grey PNG (224)", "format", v_gray16),
    ("16-bit grey PNG (28)", "format", v_gray16_28),
    ("palette PNG, 256 colours (224)", "format", v_palette),
    ("CMYK JPEG q90 (224)", "format", v_cmyk),
    ("JPEG rotated, EXIF orientation 6", "format", v_exif_rotated),
    ("4:3 landscape, hand centred", "framing", v_wide),
    ("larger canvas, plain border (hand 60%)", "framing", v_border),
    ("larger canvas, white border (hand 60%)", "framing", v_border_white),
    ("brightness x1.3", "light", _enhance("brightness", 1.3)),
    ("brightness x0.6", "light", _enhance("brightness", 0.6)),
    ("contrast x0.5", "light", _enhance("contrast", 0.5)),
    ("contrast x1.5", "light", _enhance("contrast", 1.5)),
]


def measure(run_ref: str, runs_dir: str | None = None, limit: int | None = None, only: str | None = None,
            workdir: str | None = None, progress=print) -> dict:
    run = open_run(run_ref, runs_dir)
    ds = load_dataset(run.config.data)
    clean = evaluate_run(run, ds)  # the same run's model on the dataset tensors
    test = ds.test
    n = len(test) if limit is None else min(limit, len(test))
    idx = np.arange(n) if n == len(test) else np.sort(np.random.default_rng(0).choice(len(test), n, replace=False))
    clean_subset = float((clean.y_pred[idx] == clean.y_true[idx]).mean())
    truth = [LETTERS[t] for t in test.targets[idx]]
    root = Path(workdir or tempfile.mkdtemp(prefix="signlab_uploads_"))
    rows = []
    try:
        for name, group, make in VARIANTS:
            if only and only.lower() not in name.lower():
                continue
            t = time.perf_counter()
            folder = root / f"v{len(rows):02d}"
            folder.mkdir(parents=True, exist_ok=True)
            files = []
            for j, i in enumerate(idx):
                data, ext = make(test.images[i])
                path = folder / f"{j:05d}.{ext}"
                path.write_bytes(data)
                files.append(path)
            records = predict_files(run, files, k=1)
            pred = [r["top"][0]["letter"] for r in records]
            acc = float(np.mean([p == y for p, y in zip(pred, truth)]))
            warned = float(np.mean([bool(r["warnings"]) for r in records]))
            agree = float(np.mean([p == LETTERS[c] for p, c in zip(pred, clean.y_pred[idx])]))
            rows.append({"variant": name, "group": group, "accuracy": acc, "delta_points": 100 * (acc - clean_subset),
                         "agreement": agree, "warned": warned, "seconds": time.perf_counter() - t})
            progress(f"{name}: {100 * acc:.2f}% ({time.perf_counter() - t:.0f} s)")
            shutil.rmtree(folder, ignore_errors=True)
    finally:
        if workdir is None:
            shutil.rmtree(root, ignore_errors=True)
    return {"run_id": run.id, "model": run.config.model, "preset": run.config.preset, "n": int(n),
            "clean_test_accuracy": clean.accuracy, "clean_accuracy_on_these": clean_subset, "rows": rows}


def table(result: dict) -> str:
    lines = [f"run {result['run_id']} ({result['model']}, preset {result['preset']}): clean test accuracy "
             f"{100 * result['clean_test_accuracy']:.2f}% (dataset tensors); "
             f"{100 * result['clean_accuracy_on_these']:.2f}% on the {result['n']} images used here"]
    lines += ["", "| variant | group | accuracy | Δ vs clean (points) | same letter as clean | warned | goal |",
              "|---|---|---:|---:|---:|---:|---|"]
    for r in result["rows"]:
        goal = ("✅ ≤ 1 point" if r["delta_points"] >= -1.0 else "❌ > 1 point") if r["group"] == "format" else "report"
        lines.append(f"| {r['variant']} | {r['group']} | {100 * r['accuracy']:.2f}% | {r['delta_points']:+.2f} | "
                     f"{100 * r['agreement']:.1f}% | {100 * r['warned']:.1f}% | {goal} |")
    lines += ["", "warned: the share of files for which predict printed a note (looks_unusual or a preprocessing "
                  "note). Same letter as clean: predictions equal to the model's on the dataset tensor."]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", help="a run id in --runs-dir, or a path to a run directory")
    ap.add_argument("--runs-dir", default=None)
    ap.add_argument("--limit", type=int, default=None, help="use this many test images (a fixed random subset)")
    ap.add_argument("--only", default=None, help="run only the variants whose name contains this text")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    result = measure(args.run, args.runs_dir, args.limit, args.only,
                     progress=(lambda s: print(s, file=sys.stderr, flush=True)))
    print(json.dumps(result, indent=1) if args.json else table(result))


if __name__ == "__main__":
    run_main(main)
