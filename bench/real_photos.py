"""Accuracy on real photos of hands: folders of ``<LETTER>/<image>`` files, for any run.

    python bench/real_photos.py RUN DIR [DIR ...] [--crop detector centre] [--hand-shape on off] [--runs-dir runs] [--json]

Every photo goes through the same path as ``python -m signlab predict`` (``signlab.api.predict_files``:
the one preprocessing function, then the model), once per crop: ``detector`` (MediaPipe's hand
models find the hand; the centre square where they find none; the default of ``predict``),
``centre`` (the largest centred square) and ``hand`` (skin colour); with the detector, also with
and without the hand-shape network (``detector``, predict's default, and ``detector-no-shape``,
predict's ``--no-hand-shape``: the image model alone). For each folder and for all
photos pooled it prints accuracy, how often the detector found the hand and how long a photo took,
and how well the "not sure" warning separates wrong predictions from right ones (the AUROC of the
top probability, and the share of wrong and right predictions warned). For the first folder it
also prints accuracy per letter and the letters most often confused. Sign Language MNIST's own
test accuracy cannot show any of this: its test images come from the same source photos as its
training images.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from collections import Counter
from pathlib import Path

run_main = importlib.import_module("_common").run_main  # also puts the project on sys.path

from signlab.api import predict_files
from signlab.errors import SignlabError
from signlab.labels import LETTERS
from signlab.preprocess import CROPS, PHOTO_CROP
from signlab.runs import open_run

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}


def collect(folder: Path) -> list[tuple[Path, str]]:
    if not folder.is_dir():
        raise SystemExit(f"{folder}: not a folder")
    items = []
    for d in sorted(p for p in folder.iterdir() if p.is_dir()):
        letter = d.name.strip().upper()
        if len(letter) == 1 and letter in LETTERS:
            items += [(f, letter) for f in sorted(d.iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
        else:  # J and Z need motion; anything else is not a letter's folder
            print(f"{d}: left out: not one of the {len(LETTERS)} letters", file=sys.stderr)
    if not items:
        raise SystemExit(f"{folder}: no <LETTER>/<image> files found")
    return items


def _predict(run, items: list[tuple[Path, str]], crop: str, shape: bool, k: int) -> list[dict]:
    """``predict``'s records for the photos of ``items`` (crop "hand" is predict's "auto")."""
    return predict_files(run, [f for f, _ in items], k=k, crop="auto" if crop == "hand" else crop, shape=shape)


def usable(run, items: list[tuple[Path, str]], crop: str, shape: bool) -> list[tuple[Path, str]]:
    """``items`` without the photos ``predict`` refuses, each named on stderr (one odd file must not
    end the measurement of a whole folder)."""
    kept = []
    for f, letter in items:
        try:
            _predict(run, [(f, letter)], crop, shape, k=1)
        except SignlabError as err:
            print(f"left out: {err}", file=sys.stderr)
        else:
            kept.append((f, letter))
    if not kept:
        raise SystemExit("no photo could be read")
    return kept


def summarize(rows: list[dict]) -> dict:
    """Accuracy, warning and detector figures for a list of per-photo rows."""
    from sklearn.metrics import roc_auc_score

    right = [r for r in rows if r["true"] == r["pred"]]
    wrong = [r for r in rows if r["true"] != r["pred"]]
    is_right = [r["true"] == r["pred"] for r in rows]
    auroc = roc_auc_score(is_right, [r["p"] for r in rows]) if 0 < len(right) < len(rows) else None
    per_letter = {}
    for letter in LETTERS:
        sel = [r for r in rows if r["true"] == letter]
        if sel:
            per_letter[letter] = sum(r["true"] == r["pred"] for r in sel) / len(sel)
    confused = Counter((r["true"], r["pred"]) for r in wrong).most_common(8)
    return {
        "n": len(rows), "accuracy": len(right) / len(rows),
        "hand_found": sum(bool(r["hand_found"]) for r in rows) / len(rows),
        "ms_per_photo": 1000 * sum(r["seconds"] for r in rows) / len(rows),
        "warned_wrong": sum(r["warned"] for r in wrong) / max(len(wrong), 1),
        "warned_right": sum(r["warned"] for r in right) / max(len(right), 1),
        "confidence_auroc": auroc, "per_letter": per_letter,
        "most_confused": [{"true": t, "predicted": p, "count": c} for (t, p), c in confused],
    }


def measure(run_ref: str, folders: list[Path], runs_dir: str | None = None,
            crops: tuple[str, ...] = ("detector", "centre"), hand_shape: tuple[bool, ...] = (True,)) -> dict:
    """Per crop: each folder's figures and the pooled ones (all photos together). ``hand_shape``:
    with the hand-shape network (predict's default), without it, or both; it weighs in only where
    the detector found the hand, so for the other crops only the first setting is measured."""
    run = open_run(run_ref, runs_dir)
    out: dict = {"run_id": run.id, "model": run.config.model, "preset": run.config.preset,
                 "folders": [str(f) for f in folders], "crops": {}}
    sets = {f: collect(f) for f in folders}
    variants = [(c, s) for c in crops for s in (hand_shape if c == "detector" else hand_shape[:1])]
    for crop, shape in variants:
        per_folder, pooled = {}, []
        for folder, items in sets.items():
            try:
                t = time.perf_counter()
                records = _predict(run, items, crop, shape, k=2)
            except SignlabError:  # a file predict refuses (not an image, broken): left out and named
                items = sets[folder] = usable(run, items, crop, shape)  # for the other crops too
                t = time.perf_counter()
                records = _predict(run, items, crop, shape, k=2)
            seconds = (time.perf_counter() - t) / len(items)  # the model loads once a folder: included
            rows = []
            for (f, truth), rec in zip(items, records):
                top = rec["top"][0]
                rows.append({"file": str(f), "true": truth, "pred": top["letter"], "p": top["probability"],
                             "warned": bool(rec["warnings"]), "hand_found": rec.get("hand_found", False),
                             "seconds": seconds})
            per_folder[str(folder)] = summarize(rows)
            pooled += rows
        name = crop if shape or crop != "detector" else "detector-no-shape"  # "detector": predict's default path
        out["crops"][name] = {"folders": per_folder, "pooled": summarize(pooled),
                              "hand_shape": shape and crop == "detector"}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("dirs", nargs="+", type=Path, metavar="DIR")
    ap.add_argument("--runs-dir", default=None)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--crop", nargs="+", choices=CROPS, default=[PHOTO_CROP, "centre"],
                    help="the crops to compare (default: detector and centre), as in signlab predict --crop")
    ap.add_argument("--hand-shape", nargs="+", choices=("on", "off"), default=["on", "off"],
                    help="with the hand-shape network (predict's default) and/or without it (predict --no-hand-shape)")
    args = ap.parse_args()
    res = measure(args.run, args.dirs, args.runs_dir, tuple(args.crop), tuple(s == "on" for s in args.hand_shape))
    if args.json:
        print(json.dumps(res))
        return
    print(f"run {res['run_id']} ({res['model']}, preset {res['preset']}); chance {100 / len(LETTERS):.1f}%")
    print(f"{'crop':<15} {'photos':<32} {'n':>5} {'acc':>7} {'hand':>6} {'ms':>6} {'AUROC':>6} "
          f"{'warned wrong/right':>19}")
    for crop, r in res["crops"].items():
        for name, s in [*r["folders"].items(), ("pooled", r["pooled"])]:
            auroc = "–" if s["confidence_auroc"] is None else f"{s['confidence_auroc']:.2f}"
            print(f"{crop:<15} {Path(name).name[:32]:<32} {s['n']:>5} {100 * s['accuracy']:>6.1f}% "
                  f"{100 * s['hand_found']:>5.0f}% {s['ms_per_photo']:>6.0f} {auroc:>6} "
                  f"{100 * s['warned_wrong']:>8.0f}% / {100 * s['warned_right']:.0f}%")
    first_crop = next(iter(res["crops"].values()))
    first = next(iter(first_crop["folders"].values()))
    print(f"{Path(res['folders'][0]).name}, {next(iter(res['crops']))} crop, per letter: "
          + "  ".join(f"{k} {100 * v:.0f}%" for k, v in first["per_letter"].items()))
    print("most confused (true -> predicted): " + ", ".join(
        f"{c['true']}->{c['predicted']} x{c['count']}" for c in first["most_confused"]))


if __name__ == "__main__":
    run_main(main)
